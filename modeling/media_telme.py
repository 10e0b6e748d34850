# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Decoding for TelME (PyAV): an utterance's media file → a mono waveform and picked RGB frames, and the bad-media
policy applied to that utterance. What a `feature_extraction_*`/`video_processing_*` file is to a transformers model.

Each file is opened once for both streams; only the picked frames are converted, resized by swscale in that
conversion; short clips are decoded forward, never seeked (a MELD clip has one keyframe: a seek re-decodes from
frame 0). Mono is the mean of the channels, as librosa's (PyAV's downmix is `(L + R) / sqrt(2)`).
"""

from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np
from transformers.utils import logging


try:  # decoding files needs PyAV; waveform and frame arrays work without it
    import av
except ImportError:  # pragma: no cover
    av = None


PathLike = Union[str, os.PathLike]

logger = logging.get_logger(__name__)

MODALITIES = ("text", "audio", "video")

# Part of every cache key: bump it when a change here alters decoded arrays, so stale caches are not reused.
MEDIA_DECODER_VERSION = 1

# librosa.load's default rate, which the original fed to a 16 kHz model without resampling.
REFERENCE_AUDIO_RATE = 22050

# A window's seek starts this much earlier, so the audio packets interleaved before the video keyframe are demuxed.
_SEEK_MARGIN_SECONDS = 0.5

# FFmpeg's frame and slice threads: bit-exact with one thread, ~1.4x faster on a 720p clip with 2 cores.
VIDEO_DECODE_THREADS = "AUTO"

_REDOWNLOAD = "Re-extract or re-download this file"


class MediaError(Exception):
    """A media file could not be turned into arrays: `path`, what went wrong (`reason`), what to do (`hint`) and the
    utterance concerned (`where`)."""

    def __init__(self, path: PathLike | bytes, reason: str, hint: str = "", where: str = ""):
        self.path = f"({len(path)} bytes)" if isinstance(path, (bytes, bytearray)) else str(path)
        self.reason = reason
        self.hint = hint
        self.where = where
        context = f" ({where})" if where else ""
        prefix = f"{self.path}: " if self.path else ""
        super().__init__(f"{prefix}{reason}{context}." + (f" {hint}" if hint else ""))

    def with_context(self, where: str, hint: str) -> MediaError:
        """The same error, naming the utterance and ending with `hint`."""
        error = type(self)(self.path, self.reason, hint, where)
        error.__cause__ = self
        return error

    def __reduce__(self):
        # Picklable, so the error crosses DataLoader worker processes intact.
        return (type(self), (self.path, self.reason, self.hint, self.where))


class MissingMediaError(MediaError):
    """The media file does not exist."""


class CorruptMediaError(MediaError):
    """PyAV cannot open or decode the file."""


class NoStreamError(MediaError):
    """The file has no stream of the requested kind (e.g. video asked of a `.wav`)."""


class EmptyMediaError(MediaError):
    """The requested stream (or time window) decodes to zero samples or frames."""


class TooLongMediaError(MediaError):
    """The media (or its window) is longer than `max_media_seconds`."""


class UnusableMediaError(MediaError):
    """The media decodes, but is too short for the audio encoder or has samples that are not finite."""


@dataclass(frozen=True)
class AudioDecodeOptions:
    """How an audio stream becomes a mono waveform.

    Args:
        sampling_rate (`int`, *optional*, defaults to 16000):
            Rate of the returned waveform (resampled with libswresample).
        max_seconds (`float`, *optional*):
            Longest waveform kept, `round(max_seconds * sampling_rate)` samples; `None` keeps everything.
        keep (`"first"` or `"last"`, *optional*, defaults to `"first"`):
            Which end of a too-long waveform is kept.
        reference_rate (`bool`, *optional*, defaults to `False`):
            Decode at 22050 Hz and declare the samples to be at `sampling_rate`, as the original did (a 16 kHz model
            then hears the audio ~1.38x slowed down).
    """

    sampling_rate: int = 16000
    max_seconds: float | None = None
    keep: Literal["first", "last"] = "first"
    reference_rate: bool = False

    def __post_init__(self):
        if self.sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be positive, got {self.sampling_rate}.")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive or None, got {self.max_seconds}.")
        if self.keep not in ("first", "last"):
            raise ValueError(f"keep must be 'first' or 'last', got {self.keep!r}.")

    @classmethod
    def reference(cls, sampling_rate: int = 16000) -> AudioDecodeOptions:
        """The original's audio: 22.05 kHz declared as 16 kHz, the last 400000 samples kept."""
        return cls(sampling_rate=sampling_rate, max_seconds=400000 / sampling_rate, keep="last", reference_rate=True)

    @property
    def decode_rate(self) -> int:
        """The rate the stream is really resampled to."""
        return REFERENCE_AUDIO_RATE if self.reference_rate else self.sampling_rate

    @property
    def max_samples(self) -> int | None:
        return None if self.max_seconds is None else int(round(self.max_seconds * self.sampling_rate))

    def cache_key(self) -> str:
        """A stable string naming every option that changes the decoded array (25 and 25.0 give the same)."""
        limit = "none" if self.max_seconds is None else repr(float(self.max_seconds))
        return (f"audio-v{MEDIA_DECODER_VERSION}:sr={self.sampling_rate}:max={limit}:keep={self.keep}"
                f":ref={int(self.reference_rate)}")


@dataclass(frozen=True)
class VideoDecodeOptions:
    """Which frames of a video stream are picked and how they are converted.

    Args:
        num_frames (`int`, *optional*, defaults to 8):
            Frames returned.
        size (`int`, *optional*, defaults to 224):
            Shortest edge after resizing (aspect ratio kept) in the RGB conversion, where it is free: the image
            processor's own resize is then a no-op. `None` keeps the native size.
        center_crop (`bool`, *optional*, defaults to `False`):
            Also centre-crop to `size` x `size`, as the image processor would.
        sampling (`"uniform"` or `"strided"`, *optional*, defaults to `"uniform"`):
            How frames are picked, see [`sample_frame_indices`] and, in a time window, [`strided_window_picks`].
        channel_order (`"rgb"` or `"bgr"`, *optional*, defaults to `"rgb"`):
            `"bgr"` reproduces the original's OpenCV frames.
        window_margin (`float`, *optional*, defaults to 0):
            Seconds added on both sides of a time window (start clamped at 0), for the video only.
    """

    num_frames: int = 8
    size: int | None = 224
    center_crop: bool = False
    sampling: Literal["uniform", "strided"] = "uniform"
    channel_order: Literal["rgb", "bgr"] = "rgb"
    window_margin: float = 0.0

    def __post_init__(self):
        if not self.window_margin >= 0:
            raise ValueError(f"window_margin must be a number of seconds >= 0, got {self.window_margin!r}.")
        if self.num_frames <= 0:
            raise ValueError(f"num_frames must be positive, got {self.num_frames}.")
        if self.size is not None and self.size <= 0:
            raise ValueError(f"size must be positive or None, got {self.size}.")
        if self.center_crop and self.size is None:
            raise ValueError("center_crop=True needs a size to crop to.")
        if self.sampling not in ("uniform", "strided"):
            raise ValueError(f"sampling must be 'uniform' or 'strided', got {self.sampling!r}.")
        if self.channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}.")

    def cache_key(self) -> str:
        """A stable string naming every option that changes the decoded array."""
        return (
            f"video-v{MEDIA_DECODER_VERSION}:n={self.num_frames}:size={self.size or 'native'}"
            f":crop={int(self.center_crop)}:sampling={self.sampling}:order={self.channel_order}"
            f":margin={float(self.window_margin)!r}"
        )


@dataclass
class DecodedClip:
    """What [`decode_clip`] returns: a `float32 (num_samples,)` waveform, `uint8 (num_frames, height, width, 3)`
    frames, and the whole file's duration in seconds, if known."""

    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    duration: float | None = None


def sample_frame_indices(num_available: int, num_frames: int, sampling: str = "uniform") -> list[int]:
    """0-based indices of the `num_frames` frames kept out of `num_available` (repeats allowed).

    `"uniform"`: `round(linspace(0, n - 1, num_frames))`, over the whole clip. `"strided"`, the original's rule:
    `step = n // num_frames`, frames `step - 1, 2*step - 1, ...`; a shorter clip gives all its frames, the last
    repeated.

    Example:

    ```python
    >>> sample_frame_indices(77, 8, "strided"), sample_frame_indices(5, 8, "strided")
    ([8, 17, 26, 35, 44, 53, 62, 71], [0, 1, 2, 3, 4, 4, 4, 4])
    ```
    """
    if num_available <= 0:
        raise ValueError(f"num_available must be positive, got {num_available}.")
    if sampling == "uniform":
        # Round half up (not numpy's half-to-even), so the picks are symmetric.
        positions = np.linspace(0, num_available - 1, num_frames)
        return [int(i) for i in np.floor(positions + 0.5)]
    if sampling == "strided":
        if num_available < num_frames:
            return list(range(num_available)) + [num_available - 1] * (num_frames - num_available)
        step = num_available // num_frames
        return [step * k - 1 for k in range(1, num_frames + 1)]
    raise ValueError(f"sampling must be 'uniform' or 'strided', got {sampling!r}.")


def strided_window_picks(times: list[float], fps: float, start: float, end: float, num_frames: int) -> list[int]:
    """The original's frame picks in a window `[start, end]` of a longer recording (IEMOCAP), as indices into `times`
    (each decoded frame's time), `num_frames` long, or `[]` when none is kept.

    Restated from its `get_video`: `step = (fps * (end - start)) // num_frames` (1 where it would divide by zero);
    count the frames whose number (OpenCV's 1-based `CAP_PROP_POS_FRAMES`, `round(time * fps) + 1`) lies in
    `[fps * start, fps * end]`, keep those whose count is a multiple of `step`, the first `num_frames`, the last
    repeated.
    """
    step = (fps * (end - start)) // num_frames
    step = step if step >= 1 else 1.0
    low, high = fps * start, fps * end
    kept, count = [], 0
    for index, time in enumerate(times):
        number = round(time * fps) + 1
        if low <= number <= high:
            count += 1
            if count % step == 0:
                kept.append(index)
                if len(kept) == num_frames:
                    break
    if not kept:
        return []
    return kept + [kept[-1]] * (num_frames - len(kept))


def _frame_to_array(frame: av.VideoFrame, options: VideoDecodeOptions) -> np.ndarray:
    width, height = frame.width, frame.height
    if options.size is not None:  # shortest edge to `size`, the long edge truncated as transformers does
        size = options.size
        width, height = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    pixel_format = "rgb24" if options.channel_order == "rgb" else "bgr24"
    # swscale converts and resizes in one pass (bilinear, like the VideoMAE processor).
    array = frame.to_ndarray(format=pixel_format, width=width, height=height, interpolation="BILINEAR")
    if options.center_crop:
        top, left = (height - options.size) // 2, (width - options.size) // 2
        array = np.ascontiguousarray(array[top : top + options.size, left : left + options.size])
    return array


class _FramePicker:
    """Collects the picked frames of a decode pass, converting each once: with a known frame count only the picks;
    else every frame at the output size, picking at the end (memory bounded by `max_seconds`, not the resolution)."""

    def __init__(self, options: VideoDecodeOptions, expected_count: int | None,
                 window: tuple[float, float, float] | None = None):
        self.options = options
        self.window = window  # (start, end, fps) for the original's windowed strided rule
        self.count = 0
        self._pending: list[tuple[float | None, Any]] = []  # (time, converted frame or av frame)
        self._converted: dict[int, np.ndarray] = {}
        if expected_count:
            self._picks = sample_frame_indices(expected_count, options.num_frames, options.sampling)
            self._wanted = set(self._picks)
            self.last_wanted = max(self._picks)
        else:
            self._picks, self._wanted, self.last_wanted = None, set(), None

    @property
    def done(self) -> bool:
        """Every picked frame is in: the rest of the stream need not be decoded."""
        return self.last_wanted is not None and self.count > self.last_wanted

    def add(self, frame: av.VideoFrame) -> None:
        if self._picks is None:
            # At the native size a converted frame is no smaller than the decoded one: convert once picked.
            kept = _frame_to_array(frame, self.options) if self.options.size is not None else frame
            self._pending.append((frame.time, kept))
        elif self.count in self._wanted:
            self._converted[self.count] = _frame_to_array(frame, self.options)
        self.count += 1

    def result(self) -> np.ndarray | None:
        """The `(num_frames, H, W, 3)` array, or `None` when the stream ended before the last pick."""
        if self._picks is None:
            if not self._pending:
                return None
            times = [time for time, _ in self._pending]
            if self.window is not None and None not in times:
                start, end, fps = self.window
                picks = strided_window_picks(times, fps, start, end, self.options.num_frames)
                if not picks:
                    return None
            else:
                picks = sample_frame_indices(len(self._pending), self.options.num_frames, self.options.sampling)
            converted = {}
            for i in sorted(set(picks)):
                kept = self._pending[i][1]
                converted[i] = kept if isinstance(kept, np.ndarray) else _frame_to_array(kept, self.options)
        else:
            if not self.done:
                return None
            picks, converted = self._picks, self._converted
        return np.stack([converted[i] for i in picks])


class _AudioCollector:
    """Resamples decoded audio frames to the decode rate and averages the channels into mono (librosa's `to_mono`;
    libswresample's `layout="mono"` would give `(L + R) / sqrt(2)`)."""

    def __init__(self, options: AudioDecodeOptions):
        self.options = options
        self.start_time: float | None = None  # time of the first sample, to cut a window later
        self._resampler = av.AudioResampler(format="fltp", rate=options.decode_rate)
        self._chunks: list[np.ndarray] = []

    def add(self, frame: av.AudioFrame | None) -> None:
        """Feed one decoded frame; `None` flushes the resampler."""
        if frame is not None and self.start_time is None:
            self.start_time = frame.time if frame.time is not None else 0.0
        for out in self._resampler.resample(frame):
            self._chunks.append(out.to_ndarray().mean(axis=0, dtype=np.float32))  # (channels, samples) → mono

    def result(self, start: float | None = None, end: float | None = None) -> np.ndarray:
        self.add(None)
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        if start is not None or end is not None:
            rate, origin = self.options.decode_rate, self.start_time or 0.0
            first = max(0, int(round(((start or 0.0) - origin) * rate)))
            last = len(audio) if end is None else max(first, int(round((end - origin) * rate)))
            audio = audio[first:last]
        limit = self.options.max_samples
        if limit is not None and len(audio) > limit:
            audio = audio[:limit] if self.options.keep == "first" else audio[-limit:]
        return np.ascontiguousarray(audio, dtype=np.float32)


def _open(path: PathLike | bytes) -> av.container.InputContainer:
    if av is None:
        raise ImportError("Decoding media files needs PyAV: `pip install av` (waveform and frame arrays work without "
                          "it).")
    in_memory = isinstance(path, (bytes, bytearray))  # a file's bytes, decoded from memory
    if not in_memory and not os.path.isfile(path):
        raise MissingMediaError(path, "file not found", "Check the media root and the split folder")
    try:
        return av.open(io.BytesIO(path) if in_memory else os.fspath(path), mode="r")
    except av.FFmpegError as error:
        raise CorruptMediaError(path, f"PyAV cannot open it ({error})", _REDOWNLOAD) from error


def _container_duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None:
        return container.duration / av.time_base
    durations = [float(stream.duration * stream.time_base) for stream in container.streams
                 if stream.duration is not None and stream.time_base is not None]
    return max(durations) if durations else None


def _pick_stream(container, path: PathLike, kind: Literal["audio", "video"]):
    streams = container.streams.audio if kind == "audio" else container.streams.video
    if not streams:
        found = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise NoStreamError(path, f"no {kind} stream (streams found: {found})",
                            f"Give a file with {kind}, or leave the {kind} out")
    if kind == "video":
        streams[0].thread_type = VIDEO_DECODE_THREADS
    return streams[0]


def _decode_pass(container, path: PathLike, audio_stream, video_stream, audio: AudioDecodeOptions | None,
                 video: VideoDecodeOptions | None, audio_window: tuple[float | None, float | None],
                 video_window: tuple[float | None, float | None], expected_frames: int | None,
                 max_seconds: float | None = None) -> tuple[_AudioCollector | None, _FramePicker | None]:
    """One demux pass over the requested streams, each with its own window (`None` bounds are open). A stream going
    on past `max_seconds` (+0.5 s: headers round) raises `TooLongMediaError`, whatever its header says."""
    collector = _AudioCollector(audio) if audio_stream is not None else None
    picker = None
    windows = {}
    if audio_stream is not None:
        windows[audio_stream.index] = audio_window
    if video_stream is not None:
        start, end = video_window
        strided_window = video.sampling == "strided" and (start is not None or end is not None)
        fps = float(video_stream.average_rate or video_stream.guessed_rate or 0) if strided_window else 0.0
        if strided_window and fps > 0:
            start = start or 0.0
            end = end if end is not None else math.inf
            picker = _FramePicker(video, None, window=(start, end, fps))
            # Frame numbers run one frame ahead of times: collect from a little earlier and let the rule decide.
            windows[video_stream.index] = (max(0.0, start - 2.0 / fps), end)
        else:
            picker = _FramePicker(video, expected_frames)
            windows[video_stream.index] = video_window
    starts = [window[0] for window in windows.values() if window[0]]
    if starts:
        # One seek to the keyframe before the earliest window, then forward decoding (exact). Never for whole short
        # clips, where it would re-decode from frame 0.
        anchor = video_stream if video_stream is not None else audio_stream
        target = max(0.0, min(starts) - _SEEK_MARGIN_SECONDS)
        container.seek(int(target / anchor.time_base), stream=anchor, backward=True, any_frame=False)

    # Streams still decoded; a finished stream's packets are demuxed but not decoded.
    active = {s.index: s for s in (audio_stream, video_stream) if s is not None}
    try:
        for packet in container.demux(list(active.values())):
            stream = active.get(packet.stream.index)
            if stream is None:
                continue
            start, end = windows[stream.index]
            for frame in packet.decode():
                time = frame.time
                if max_seconds is not None and time is not None and time - (start or 0.0) > max_seconds + 0.5:
                    raise TooLongMediaError(path, f"more than {max_seconds:g} s of {stream.type} decode",
                                            "Cut the clip, or raise max_media_seconds")
                if end is not None and time is not None and time > end:
                    finished = True
                elif stream.type == "audio":
                    collector.add(frame)
                    finished = False
                else:
                    if start is None or time is None or time >= start:
                        picker.add(frame)
                    finished = picker.done
                if finished:
                    del active[stream.index]
                    break
            if not active:
                break
    except av.FFmpegError as error:
        raise CorruptMediaError(path, f"decoding failed ({error})", _REDOWNLOAD) from error
    return collector, picker


def decode_clip(path: PathLike, audio: AudioDecodeOptions | None = AudioDecodeOptions(),
                video: VideoDecodeOptions | None = VideoDecodeOptions(), *, start: float | None = None,
                end: float | None = None, max_seconds: float | None = None) -> DecodedClip:
    """Decode the audio and/or video of one media file, opening it once.

    Args:
        path: the media file (anything FFmpeg reads).
        audio, video: decode options, or `None` to leave that stream out.
        start, end: a window in seconds (IEMOCAP's dialogue AVIs): frames are picked inside it (widened by
            `video.window_margin`) and the audio is cut to it.
        max_seconds: the longest media (or window) accepted; decoding stops there with `TooLongMediaError`.

    Returns:
        A [`DecodedClip`].

    Example:

    ```python
    >>> decode_clip("dia0_utt0.mp4").video.shape  # doctest: +SKIP
    (8, 224, 398, 3)
    ```
    """
    if audio is None and video is None:
        raise ValueError("Nothing to decode: pass audio and/or video options.")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"Empty window for {path}: end ({end}) must be greater than start ({start}).")
    if start is not None and start <= 0:
        start = None if end is None else 0.0

    video_window = (start, end)
    if video is not None and video.window_margin:
        video_window = (None if start is None else max(start - video.window_margin, 0.0),
                        None if end is None else end + video.window_margin)
    with _open(path) as container:
        audio_stream = _pick_stream(container, path, "audio") if audio is not None else None
        video_stream = _pick_stream(container, path, "video") if video is not None else None
        windowed = start is not None or end is not None
        # The container's frame count (mp4/avi index) fixes the picks up front; 0 when unknown (mkv, webm).
        expected = None if (video_stream is None or windowed) else (video_stream.frames or None)
        collector, picker = _decode_pass(container, path, audio_stream, video_stream, audio, video, (start, end),
                                         video_window, expected, max_seconds)
        frames = picker.result() if picker is not None else None
        if picker is not None and frames is None and picker.count > 0 and expected:
            # The index announced more frames than the stream holds: pick again from the true count.
            logger.warning("%s: the container announces %d video frames but only %d decode; sampling from those %d.",
                           MediaError(path, "").path, expected, picker.count, picker.count)
            container.seek(0)
            _, picker = _decode_pass(container, path, None, video_stream, None, video, (None, None), (None, None),
                                     picker.count)
            frames = picker.result()
        duration = _container_duration(container)

    window = f" in the window [{start}, {end}] s" if windowed else ""
    waveform = None
    if collector is not None:
        waveform = collector.result(start, end)
        if waveform.size == 0:
            raise EmptyMediaError(path, f"the audio stream decodes to zero samples{window}", _REDOWNLOAD)
    if video is not None and frames is None:
        raise EmptyMediaError(path, f"the video stream decodes to zero frames{window}", _REDOWNLOAD)
    return DecodedClip(audio=waveform, video=frames, duration=duration)


def resample_waveform(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """A mono float waveform at `rate` resampled to `target_rate` with libswresample, as decoded files are."""
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if int(rate) == int(target_rate):
        return waveform
    if av is None:
        raise ImportError(f"Resampling audio from {rate} Hz to {target_rate} Hz needs PyAV: `pip install av`, or pass "
                          f"the waveform at {target_rate} Hz.")
    frame = av.AudioFrame.from_ndarray(waveform[None], format="fltp", layout="mono")
    frame.sample_rate = int(rate)
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=int(target_rate))
    chunks = [out.to_ndarray()[0] for out in resampler.resample(frame)]
    chunks += [out.to_ndarray()[0] for out in resampler.resample(None)]
    return np.ascontiguousarray(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), dtype=np.float32)


# The forms a turn's media may take (see `EmotionRecognitionInConversationPipeline`), for error messages.
MEDIA_FORMS = {
    "audio": "a file path or a file's bytes, {'path'} or {'bytes'}, {'array' or 'raw', 'sampling_rate'}, or a mono "
             "(N,) or stereo (2, N)/(N, 2) float array, tensor or list of floats at the model's rate",
    "video": "a file path or a file's bytes, {'path'} or {'bytes'}, a (T, H, W, 3) array or tensor of uint8 RGB "
             "frames (or floats in [0, 1]), or a list of (H, W, 3) frames (arrays or PIL images)",
    "media": "a file path or a file's bytes, {'path'} or {'bytes'}"}


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)  # a tensor without a copy


def _refused(kind: str, where: str, detail: str) -> ValueError:
    return ValueError(f"The {kind} of {where or 'this turn'} {detail}; give {MEDIA_FORMS[kind]}.")


def array_waveform(value: Any, rate: Any, target_rate: int, max_seconds: float | None = None,
                   where: str = "") -> np.ndarray:
    """An array waveform (array, tensor or list) at `rate` Hz → float32 mono at `target_rate`: the channels of
    `(C, N)` or `(N, C)` (C <= 8) averaged, as decoded files are. Longer than `max_seconds`: `TooLongMediaError`,
    before any copy or resampling. A rate that is not a positive number or any other array: `ValueError`."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate < math.inf:
        raise ValueError(f"The audio of {where or 'this turn'} has sampling_rate={rate!r}: give a positive number of "
                         "Hz.")
    array = _numpy(value)
    if array.dtype.kind not in "fiu" or not (array.ndim == 1 or array.ndim == 2 and min(array.shape) <= 8):
        raise _refused("audio", where, f"is a {array.dtype} array of shape {array.shape}")
    array = array.T if array.ndim == 2 and array.shape[0] > array.shape[1] else array
    if max_seconds is not None and array.shape[-1] > max_seconds * rate:
        raise TooLongMediaError("(array)", f"{array.shape[-1] / rate:.1f} s, longer than max_media_seconds="
                                f"{max_seconds:g}", "Cut the waveform, or raise max_media_seconds")
    mono = array.mean(axis=0, dtype=np.float32) if array.ndim == 2 else array.astype(np.float32, copy=False)
    return resample_waveform(mono, int(round(rate)), target_rate)


def array_frames(value: Any, num_frames: int, sampling: str = "uniform", where: str = "") -> np.ndarray:
    """Array frames (a `(T, H, W, 3)` array or tensor, or a list of `(H, W, 3)` arrays or PIL images) → the
    `num_frames` picked ones as uint8 RGB, picked before any conversion; float frames must lie in [0, 1]. Non-finite
    pixels: `UnusableMediaError`; any other array: `ValueError`."""
    if isinstance(value, (list, tuple)):
        picked = [value[i] for i in sample_frame_indices(len(value), num_frames, sampling)] if value else []
        picked = [np.asarray(f.convert("RGB")) if hasattr(f, "convert") else _numpy(f) for f in picked]
        if not picked or len({(f.shape, f.dtype) for f in picked}) > 1:
            raise _refused("video", where, f"is a list of {len(value)} frames of shapes and dtypes "
                           f"{sorted({(f.shape, str(f.dtype)) for f in picked})}, not alike")
        frames = np.stack(picked)
    else:
        frames = _numpy(value)
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise _refused("video", where, f"has frames of shape {frames.shape}, not (T, H, W, 3)")
    frames = frames[sample_frame_indices(len(frames), num_frames, sampling)] if len(frames) != num_frames else frames
    if frames.dtype.kind == "f":
        if not np.isfinite(frames).all():
            raise UnusableMediaError("(array)", "pixels that are not finite (NaN or infinity)", "Replace the frames")
        if frames.min() < 0 or frames.max() > 1:
            raise _refused("video", where, f"has float frames in [{frames.min():g}, {frames.max():g}], not [0, 1] "
                           "(divide 0-255 values by 255)")
        frames = np.round(frames * 255).astype(np.uint8)
    elif frames.dtype != np.uint8:
        raise _refused("video", where, f"has {frames.dtype} frames, not uint8 or float")
    return frames


def media_duration(path: PathLike) -> float:
    """Duration of a media file in seconds, from its header (nothing is decoded)."""
    with _open(path) as container:
        duration = _container_duration(container)
    if duration is None:
        raise CorruptMediaError(path, "the container declares no duration", _REDOWNLOAD)
    return duration


BAD_MEDIA_POLICIES = ("error", "skip", "zeros")
BadMediaPolicy = Literal["error", "skip", "zeros"]

# The original's placeholder: 1412 samples are exactly 4 data2vec frames.
PLACEHOLDER_AUDIO_SAMPLES = 1412

# `"skip"` sets an utterance's media aside. A labelled set (training, evaluation) then drops the utterance; a dialogue
# to predict answers it from its text. `skipped` names which, for the loader's notes and the collator.
SKIPPED = {"drop": "dropped", "text": "predicted from text only"}
_SKIP_REMEDIES = {"drop": "drop such utterances", "text": "that utterance from its text alone"}
_PROBLEMS = ((MissingMediaError, "missing"), (CorruptMediaError, "unreadable"), (NoStreamError, "absent from the file"),
             (EmptyMediaError, "empty"), (TooLongMediaError, "too long"), (UnusableMediaError, "unusable"))


def check_policy(on_bad_media: str) -> None:
    """Raise a `ValueError` naming the valid policies for an unknown `on_bad_media`."""
    if on_bad_media not in BAD_MEDIA_POLICIES:
        raise ValueError(f"on_bad_media must be one of {list(BAD_MEDIA_POLICIES)}, got {on_bad_media!r}.")


def python_spelling(policy: str) -> str:
    """How error hints write a policy by default: `on_bad_media='zeros'`."""
    return f"on_bad_media={policy!r}"


@dataclass(frozen=True)
class BadMediaEntry:
    """One utterance's bad media (`modality` `"audio"`, `"video"` or `"audio+video"`; `problem` such as `"missing"`
    or `"too long"`; the decoder's `detail`) and the `action` taken."""

    utterance: str
    modality: str
    path: str
    problem: str
    detail: str
    action: str
    split: str = ""

    @property
    def note(self) -> str:
        """`"audio+video missing (dia0_utt2.mp4): used zeros"`."""
        name = f" ({os.path.basename(self.path)})" if self.path else ""
        return f"{self.modality} {self.problem}{name}: {self.action}"


@dataclass
class MediaOutcome:
    """One utterance's media after the bad-media policy: the arrays to use (placeholders under `"zeros"`), whether
    `"skip"` set them aside, and the problems found."""

    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    skipped: bool = False
    entries: list[BadMediaEntry] = field(default_factory=list)

    @property
    def note(self) -> str:
        return "; ".join(entry.note for entry in self.entries)


def resolve_bad_media(problems: Sequence[tuple[str, MediaError]], decoded: Mapping[str, np.ndarray | None], policy: str,
                      utterance: str, where: str = "", split: str = "",
                      placeholders: Mapping[str, np.ndarray | None] | None = None, skipped: str = "drop",
                      spelling: Callable[[str], str] = python_spelling) -> MediaOutcome:
    """Apply a bad-media policy to one utterance: the one place a problem becomes an error, a skip or zeros.

    Args:
        problems: `(modality, error)` for each bad modality group.
        decoded: the arrays that did load, keyed by the requested modalities.
        policy: `"error"` (raise the first problem, naming the utterance and the other policies), `"skip"` or
            `"zeros"` (`placeholders` in place of the bad modalities).
        utterance, where: the utterance's key and where it comes from, for messages.
        skipped: what becomes of a skipped utterance, for its note: `"drop"` or `"text"` (see `SKIPPED`).
        spelling: how the error's hint writes a policy.

    Example:

    ```python
    >>> problem = ("audio+video", MissingMediaError("dia1_utt2.mp4", "file not found"))
    >>> resolve_bad_media([problem], {"audio": None, "video": None}, "skip", "dia1_utt2").note
    'audio+video missing (dia1_utt2.mp4): dropped'
    ```
    """
    if not problems:
        return MediaOutcome(audio=decoded.get("audio"), video=decoded.get("video"))
    if policy == "error":
        modality, error = problems[0]
        context = f"{modality} of utterance {utterance}" + (f", {where}" if where else "")
        others = len(problems) - 1
        more = f" ({others} more problem(s) with this utterance)" if others else ""
        hint = (f"choose a bad-media policy: {spelling('zeros')} (zeros in its place) or {spelling('skip')} "
                f"({_SKIP_REMEDIES[skipped]})")
        raise error.with_context(context + more, f"Fix the file or its path, or {hint}.")
    action = "used zeros" if policy == "zeros" else SKIPPED[skipped]
    entries = []
    for modality, error in problems:
        problem = next((name for kind, name in _PROBLEMS if isinstance(error, kind)), "unusable")
        entries.append(BadMediaEntry(utterance, modality, error.path, problem if error.path else "not given",
                                     error.reason, action, split))
    if policy == "skip":
        return MediaOutcome(skipped=True, entries=entries)
    failed = {part for modality, _ in problems for part in modality.split("+")}
    arrays = dict(decoded)
    for modality in failed:
        if modality in arrays:
            arrays[modality] = (placeholders or {}).get(modality)
    return MediaOutcome(audio=arrays.get("audio"), video=arrays.get("video"), entries=entries)


def media_options(processor: Any) -> tuple[AudioDecodeOptions, VideoDecodeOptions]:
    """The decode options of a `TelMEProcessor`: frames resized and cropped to the image processor's sizes in RGB (the
    processor applies `video_channel_order`), waveforms whole (the processor keeps `audio_max_samples` of them)."""
    sizes = getattr(processor.image_processor, "size", None) or {}
    crop = getattr(processor.image_processor, "crop_size", None) or {}
    size = sizes.get("shortest_edge") or crop.get("height")
    audio = AudioDecodeOptions(sampling_rate=int(getattr(processor.feature_extractor, "sampling_rate", 16000)),
                               reference_rate=bool(processor.audio_reference_rate))
    video = VideoDecodeOptions(
        num_frames=int(processor.num_frames),
        size=size,
        center_crop=bool(getattr(processor.image_processor, "do_center_crop", False) and crop) and size is not None,
        sampling=processor.video_frame_sampling,
        window_margin=float(processor.video_window_margin),
    )
    return audio, video


class MediaLoader:
    """Decode the media of dataset rows or dialogue turns through the bad-media policy. A failure is remembered, so a
    bad file is decoded (and reported) once.

    Args:
        audio, video: decode options, or `None` for a modality never needed.
        cache: an object with `get(path, audio, video, start, end, max_seconds) -> (audio, video)`, or `None`.
        on_bad_media: `"error"`, `"skip"` or `"zeros"`.
        max_media_seconds: media (or a window) longer than this is bad media.
        pixel_mean: the decoded colour that reaches the model as zeros (the `"zeros"` frames).
        split, skipped, spelling: see [`resolve_bad_media`].
        min_audio_samples: a shorter waveform is bad media (the audio encoder's convolutions need that many).
        report: an object with `add(entry) -> bool` that collects every entry; each new one is logged.
    """

    def __init__(self, audio: AudioDecodeOptions | None, video: VideoDecodeOptions | None, cache: Any = None,
                 on_bad_media: BadMediaPolicy = "error", max_media_seconds: float | None = None,
                 pixel_mean: Sequence[float] = (0.5, 0.5, 0.5), split: str = "", skipped: str = "drop",
                 spelling: Callable[[str], str] = python_spelling, min_audio_samples: int = 1,
                 report: Any = None) -> None:
        check_policy(on_bad_media)
        if skipped not in SKIPPED:
            raise ValueError(f"`skipped` must be one of {list(SKIPPED)}, got {skipped!r}.")
        self.audio, self.video, self.cache = audio, video, cache
        self.on_bad_media = on_bad_media
        self.max_media_seconds = max_media_seconds
        self.pixel_mean = tuple(pixel_mean)
        self.split, self.skipped, self.spelling = split, skipped, spelling
        self.min_audio_samples = int(min_audio_samples)
        self.report = report
        self._durations: dict[str, float] = {}
        self._failures: dict[tuple, MediaError] = {}

    @classmethod
    def for_processor(cls, processor: Any, cache: Any = None, **kwargs: Any) -> MediaLoader:
        """The loader a processor asks for: its decode options, duration limit and placeholder colour."""
        audio, video = media_options(processor)
        kwargs.setdefault("max_media_seconds", processor.max_media_seconds)
        kwargs.setdefault("min_audio_samples", getattr(processor, "audio_min_samples", 1))
        mean = tuple(getattr(processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5))
        # A BGR processor reverses the channels before normalising: the stand-in must come out as the mean.
        mean = mean[::-1] if getattr(processor, "video_channel_order", "rgb") == "bgr" else mean
        return cls(audio, video, cache=cache, pixel_mean=mean, **kwargs)

    def _check_length(self, path: str, start: float | None, end: float | None) -> None:
        # Too long by the window or the header is bad media before decoding; decoding also stops at the limit, for
        # headers that declare nothing or lie.
        if self.max_media_seconds is None:
            return
        if start is not None and end is not None:
            seconds = end - start
        else:
            if path not in self._durations:
                try:
                    self._durations[path] = media_duration(path)
                except CorruptMediaError:  # no declared duration: the decode pass enforces the limit
                    self._durations[path] = 0.0
            seconds = self._durations[path]
        if seconds > self.max_media_seconds:
            raise TooLongMediaError(path, f"{seconds:.1f} s, longer than max_media_seconds={self.max_media_seconds:g}",
                                    "Cut the clip, or raise max_media_seconds")

    def check_audio(self, waveform: np.ndarray, path: str) -> None:
        """Raise `UnusableMediaError` for a waveform the audio encoder cannot read (too short, not finite)."""
        if len(waveform) < self.min_audio_samples:
            rate = self.audio.sampling_rate if self.audio is not None else 16000
            raise UnusableMediaError(
                path, f"{len(waveform)} audio samples ({len(waveform) / rate:.3f} s), fewer than the "
                f"{self.min_audio_samples} the audio encoder needs", "Give a longer clip")
        if not np.isfinite(waveform).all():
            raise UnusableMediaError(path, "audio samples that are not finite (NaN or infinity)",
                                     "Re-encode or replace the file")

    def placeholder(self, kind: str) -> np.ndarray:
        """The stand-in that reaches the model as zeros, like the original's: 1412 zero samples, or frames of the
        colour the processor normalises to 0 (the original fed zeros as pixel values; black would come out ~-2)."""
        if kind == "audio":
            return np.zeros(PLACEHOLDER_AUDIO_SAMPLES, np.float32)
        side = self.video.size or 224
        colour = np.round(255 * np.asarray(self.pixel_mean, dtype=np.float64)).astype(np.uint8)
        return np.broadcast_to(colour, (self.video.num_frames, side, side, 3)).copy()

    def _load_group(self, path: str | bytes, kinds: tuple[str, ...], window: tuple[float | None, float | None]):
        key = (path, kinds, window)
        if key in self._failures:
            raise self._failures[key]
        audio = self.audio if "audio" in kinds else None
        video = self.video if "video" in kinds else None
        try:
            if not path:
                raise MissingMediaError("", "no file given", "Give the file")
            self._check_length(path, *window)
            if self.cache is not None and not isinstance(path, bytes):
                waveform, frames = self.cache.get(path, audio, video, *window, max_seconds=self.max_media_seconds)
            else:
                clip = decode_clip(path, audio, video, start=window[0], end=window[1],
                                   max_seconds=self.max_media_seconds)
                waveform, frames = clip.audio, clip.video
            if waveform is not None:
                self.check_audio(waveform, path)
            return waveform, frames
        except MediaError as error:
            self._failures[key] = error
            raise

    def load(self, row: Mapping[str, Any], audio: bool = True, video: bool = True, where: str = "") -> MediaOutcome:
        """The media of a row (`audio_path`/`video_path` or `audio`/`video` arrays, a `start`/`end` window) after
        the policy; `audio`/`video=False` leaves a modality out, `where` names the row in messages.

        The window cuts the video, and the audio from the video's file or given alone (IEMOCAP's wav beside the
        session video is the utterance already). A bad modality does not spoil the other when the files differ.
        """
        wanted = [kind for kind, on in (("audio", audio and self.audio is not None),
                                        ("video", video and self.video is not None)) if on]
        decoded: dict[str, np.ndarray | None] = {kind: None for kind in wanted}
        arrays = {kind: row[kind] for kind in wanted if isinstance(row.get(kind), np.ndarray)}
        # An array refused by its contract's checks (too long, not finite) comes as its error.
        problems = [(kind, row[kind]) for kind in wanted if isinstance(row.get(kind), MediaError)]
        if "audio" in arrays:
            try:
                self.check_audio(np.asarray(arrays["audio"]), "")
            except UnusableMediaError as error:
                problems.append(("audio", UnusableMediaError("(array)", error.reason, error.hint)))
                del arrays["audio"]
        decoded.update(arrays)
        paths = {kind: row.get(f"{kind}_path") or "" for kind in wanted if kind not in arrays
                 and not any(kind == bad for bad, _ in problems)}
        paths = {kind: path if isinstance(path, bytes) else str(path) for kind, path in paths.items()}
        start, end = (None if row.get(bound) is None or np.isnan(row[bound]) else float(row[bound])
                      for bound in ("start", "end"))
        # One decode for both streams when they come from the same file (a MELD clip); else one per file.
        if len(paths) == 2 and paths["audio"] and paths["audio"] == paths["video"]:
            groups = [(("audio", "video"), paths["audio"], (start, end))]
        else:
            # The window cuts video, and audio from the video's file or alone; a separate audio file beside a
            # video (IEMOCAP's utterance WAV beside the session AVI) is the utterance already.
            groups = [((kind,), path, (start, end) if kind == "video" or path == row.get("video_path")
                       or not row.get("video_path") else (None, None)) for kind, path in paths.items()]
        for kinds, path, window in groups:
            try:
                loaded_audio, loaded_video = self._load_group(path, kinds, window)
            except MediaError as error:
                problems.append(("+".join(kinds), error))
                continue
            decoded.update({kind: array for kind, array in (("audio", loaded_audio), ("video", loaded_video))
                            if kind in kinds})
        key = str(row.get("utterance_key") or row.get("audio_path") or row.get("video_path") or "?")
        if not where and row.get("row_index") is not None:
            where = f"row {row['row_index']}"
        placeholders = {kind: self.placeholder(kind) for kind in wanted}
        outcome = resolve_bad_media(problems, decoded, self.on_bad_media, key, where, self.split, placeholders,
                                    self.skipped, self.spelling)
        if self.report is not None:
            for entry in outcome.entries:
                if self.report.add(entry):
                    logger.info("Bad media for %s: %s (%s).", key, entry.note, entry.detail)
        return outcome
