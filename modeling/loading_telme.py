# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Decode each clip once: a disk cache of decoded media, and the loader that fills it through the bad-media policy.

Format: one `.npy` file per clip and modality, named by a hash of (resolved path, size, mtime, decode options,
window). `.npy` is the cheapest thing to read back (0.1–9 ms per clip against ~150 ms to decode a 720p MELD clip,
see `benchmarks/bench_decode.py`), needs no schema, and lets audio-only stages skip the frame files entirely.
Frames are cached at the processor's input size (shortest edge = 224, centre-cropped: 1.2 MB per 8-frame clip,
about 16 GB for all of MELD) rather than at source resolution (22 MB per clip).

Hub-portable: imports only numpy, torch and transformers (and PyAV through `media_telme` to decode files);
copied into every saved checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bad_media_telme import (
    BadMediaPolicy,
    BadMediaReport,
    MediaOutcome,
    check_policy,
    log_report,
    placeholder_media,
    resolve_bad_media,
)
from .media_telme import (
    AudioDecodeOptions,
    CorruptMediaError,
    MediaError,
    MissingMediaError,
    TooLongMediaError,
    UnusableMediaError,
    VideoDecodeOptions,
    decode_clip,
    media_duration,
)
from .logging_telme import progress_bar


def _file_stamp(path: str) -> str:
    stat = os.stat(path)
    return f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def _window_key(start: float | None, end: float | None) -> str:
    def clean(value: float | None) -> str:
        return "none" if value is None or (isinstance(value, float) and np.isnan(value)) else repr(float(value))

    return f"{clean(start)}-{clean(end)}"


@dataclass
class MediaCache:
    """Decoded media on disk, keyed so that a changed file or changed decode options is decoded again.

    Args:
        root: folder of the `.npy` files (created when missing).

    Example:

    ```python
    >>> cache = MediaCache("~/.cache/telme/media")
    >>> audio, video = cache.get("dia0_utt0.mp4", AudioDecodeOptions(), VideoDecodeOptions())  # doctest: +SKIP
    ```
    """

    root: str | os.PathLike
    decode_calls: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def _entry(self, path: str, options_key: str, start: float | None, end: float | None) -> Path:
        digest = hashlib.sha1(f"{_file_stamp(path)}|{options_key}|{_window_key(start, end)}".encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.npy"

    @staticmethod
    def _save(entry: Path, array: np.ndarray) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader (another DataLoader worker) never sees half a file.
        handle, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, array)
        os.replace(tmp, entry)

    def get(
        self,
        path: str,
        audio: AudioDecodeOptions | None,
        video: VideoDecodeOptions | None,
        start: float | None = None,
        end: float | None = None,
        max_seconds: float | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Decoded (audio, video) of a file, decoding (once, both streams together) only what is not cached."""
        if not os.path.exists(path):
            # Let the decoder raise its MissingMediaError (it names the file and the fix).
            decode_clip(path, audio, video, start=start, end=end)
        wanted = {"audio": audio, "video": video}
        entries = {kind: self._entry(path, opts.cache_key(), start, end) for kind, opts in wanted.items() if opts}
        found = {kind: np.load(entry) for kind, entry in entries.items() if entry.exists()}
        missing = {kind: wanted[kind] for kind in entries if kind not in found}
        if missing:
            self.decode_calls += 1
            clip = decode_clip(path, missing.get("audio"), missing.get("video"), start=start, end=end,
                               max_seconds=max_seconds)
            for kind in missing:
                array = getattr(clip, kind)
                self._save(entries[kind], array)
                found[kind] = array
        return found.get("audio"), found.get("video")


def media_options(processor: Any) -> tuple[AudioDecodeOptions, VideoDecodeOptions]:
    """The decode options a checkpoint's processor asks for (`TelMEProcessor.media_options`).

    Frames are resized (shortest edge) and centre-cropped to the image processor's sizes while they are converted,
    so its own resize and crop are no-ops and the cache stores only what is used. They are decoded in RGB: the
    processor applies its channel order. Waveforms are decoded whole: the processor keeps `audio_max_samples` of
    them, before or after normalising as it says (the original normalises the whole clip first).
    """
    options = processor.media_options()
    audio = AudioDecodeOptions(sampling_rate=options["sampling_rate"], reference_rate=options["audio_reference_rate"])
    video = VideoDecodeOptions(
        num_frames=options["num_frames"],
        size=options["frame_size"],
        center_crop=options["frame_crop"] and options["frame_size"] is not None,
        sampling=options["video_frame_sampling"],
        window_margin=options["video_window_margin"],
    )
    return audio, video


def placeholder_colour(processor: Any) -> tuple[float, ...]:
    """The decoded colour the processor normalises to zero: its mean, in decoded (RGB) order."""
    mean = tuple(getattr(processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5))
    # The processor reverses the channels of BGR models before normalising: the stand-in must come out as the mean.
    return mean[::-1] if getattr(processor, "video_channel_order", "rgb") == "bgr" else mean


def _window(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    start, end = row.get("start"), row.get("end")
    start = None if start is None or np.isnan(start) else float(start)
    end = None if end is None or np.isnan(end) else float(end)
    return start, end


class MediaLoader:
    """Decode (through an optional cache) the media of dataset rows or turns, through the bad-media policy.

    Build it for a checkpoint with :meth:`for_processor`. Each bad file is decoded once: a failure is remembered, so
    later epochs neither decode nor log it again.

    Args:
        audio, video: decode options, or `None` for a modality that is never needed.
        cache: a `MediaCache`, or `None` to decode every time.
        on_bad_media: `"error"`, `"skip"` or `"zeros"` (see `telme_hf.modeling.bad_media_telme`).
        max_media_seconds: media (or a window) longer than this is bad media.
        pixel_mean: the decoded colour that reaches the model as zeros (see `placeholder_colour`).
        split: recorded with the report's entries.
        skip: what `"skip"` means for the caller: `"drop"`, `"evaluate"` or `"predict"` (text alone).
        cli: spell hints with the CLI's flags.
        min_audio_samples: a shorter waveform is bad media (the audio encoder's first convolutions need that many
            samples to give a frame).
        report: where to record bad media (default: a new report); a run passes the one its corpus loader filled,
            so that each utterance is recorded, logged and summarised once.
    """

    def __init__(
        self,
        audio: AudioDecodeOptions | None,
        video: VideoDecodeOptions | None,
        cache: MediaCache | None = None,
        on_bad_media: BadMediaPolicy = "error",
        max_media_seconds: float | None = None,
        pixel_mean: Sequence[float] = (0.5, 0.5, 0.5),
        split: str = "",
        skip: str = "drop",
        cli: bool = False,
        min_audio_samples: int = 1,
        report: BadMediaReport | None = None,
    ) -> None:
        check_policy(on_bad_media)
        self.audio, self.video, self.cache = audio, video, cache
        self.on_bad_media = on_bad_media
        self.max_media_seconds = max_media_seconds
        self.pixel_mean = tuple(pixel_mean)
        self.split, self.skip, self.cli = split, skip, cli
        self.min_audio_samples = int(min_audio_samples)
        self.report = report if report is not None else BadMediaReport(on_bad_media)
        self._durations: dict[str, float] = {}
        self._failures: dict[tuple, MediaError] = {}

    @classmethod
    def for_processor(cls, processor: Any, cache: MediaCache | str | os.PathLike | None = None, **kwargs: Any):
        """The loader a checkpoint's processor asks for: its decode options, duration limit and placeholder colour."""
        audio, video = media_options(processor)
        if cache is not None and not isinstance(cache, MediaCache):
            cache = MediaCache(cache)
        kwargs.setdefault("max_media_seconds", processor.max_media_seconds)
        kwargs.setdefault("min_audio_samples", getattr(processor, "audio_min_samples", 1))
        return cls(audio, video, cache=cache, pixel_mean=placeholder_colour(processor), **kwargs)

    def _decode(self, path: str, audio, video, start, end):
        if self.cache is not None:
            return self.cache.get(path, audio, video, start, end, max_seconds=self.max_media_seconds)
        clip = decode_clip(path, audio, video, start=start, end=end, max_seconds=self.max_media_seconds)
        return clip.audio, clip.video

    def _check_length(self, path: str, start: float | None, end: float | None) -> None:
        """Too long by the window or the header: bad media before anything is decoded (decoding also stops at the
        limit, for headers that declare nothing or lie)."""
        if self.max_media_seconds is None:
            return
        if start is not None and end is not None:
            seconds = end - start
        else:
            # Remembered per file, so the check does not reopen every clip in every epoch.
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
        """A waveform the audio encoder can read: long enough and finite, else `UnusableMediaError`."""
        if len(waveform) < self.min_audio_samples:
            rate = self.audio.sampling_rate if self.audio is not None else 16000
            raise UnusableMediaError(
                path, f"{len(waveform)} audio samples ({len(waveform) / rate:.3f} s), fewer than the "
                f"{self.min_audio_samples} the audio encoder needs", "Give a longer clip")
        if not np.isfinite(waveform).all():
            raise UnusableMediaError(path, "audio samples that are not finite (NaN or infinity)",
                                     "Re-encode or replace the file")

    def _load_group(self, path: str, kinds: tuple[str, ...], window: tuple[float | None, float | None]):
        key = (path, kinds, window)
        if key in self._failures:
            raise self._failures[key]
        audio = self.audio if "audio" in kinds else None
        video = self.video if "video" in kinds else None
        try:
            if not path:
                raise MissingMediaError("", "no file given", "Give the file")
            self._check_length(path, *window)
            waveform, frames = self._decode(path, audio, video, *window)
            if waveform is not None:
                self.check_audio(waveform, path)
            return waveform, frames
        except MediaError as error:
            self._failures[key] = error
            raise

    def load(
        self, row: Mapping[str, Any], audio: bool = True, video: bool = True, where: str = ""
    ) -> MediaOutcome:
        """The media of one row (`audio_path`/`video_path`, `start`/`end`; or `audio`/`video` arrays), after the
        bad-media policy.

        `audio`/`video` = False leaves out a modality the row does not need (e.g. one whose features are
        precomputed). The window cuts the file that holds the video (a dialogue-level recording, as in IEMOCAP) and
        the audio only when it comes from that same file: a separate audio file (IEMOCAP's per-utterance wav) is the
        utterance already and is read whole. A bad modality does not spoil the other when they come from separate
        files.
        """
        wanted = [kind for kind, on in (("audio", audio and self.audio is not None),
                                        ("video", video and self.video is not None)) if on]
        decoded: dict[str, np.ndarray | None] = {kind: None for kind in wanted}
        arrays = {kind: row[kind] for kind in wanted if isinstance(row.get(kind), np.ndarray)}
        problems = []
        if "audio" in arrays:
            try:
                self.check_audio(np.asarray(arrays["audio"]), "")
            except UnusableMediaError as error:
                problems.append(("audio", UnusableMediaError("(array)", error.reason, error.hint)))
                del arrays["audio"]
        decoded.update(arrays)
        paths = {kind: str(row.get(f"{kind}_path") or "") for kind in wanted
                 if kind not in arrays and not (kind == "audio" and problems)}
        start, end = _window(row)
        # One decode for both streams when they come from the same file (a MELD clip); else one per file.
        if len(paths) == 2 and paths["audio"] and paths["audio"] == paths["video"]:
            groups = [(("audio", "video"), paths["audio"], (start, end))]
        else:
            groups = [((kind,), path, (start, end) if kind == "video" or path == row.get("video_path") else (None, None))
                      for kind, path in paths.items()]
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
        zero_audio, zero_video = placeholder_media("audio" in wanted, self.video if "video" in wanted else None,
                                                   self.pixel_mean)
        return resolve_bad_media(problems, decoded, self.on_bad_media, key, where, self.split,
                                 {"audio": zero_audio, "video": zero_video}, self.skip, self.cli, self.report)


def prepare_media(dataset, loader: MediaLoader, desc: str = "decoding media", disable_progress: bool | None = None,
                  listed_in: str = ""):
    """Decode every row's media once (into the loader's cache) and apply the bad-media policy up front.

    Returns the dataset without the rows that `on_bad_media="skip"` drops, so that batches (and cached features
    computed from them) stay aligned with the rows. Progress is shown with a bar (see `progress_disabled`); the
    bad media found is summarised, one warning per kind (`listed_in`: the file that will list every utterance).
    """
    kept = []
    for index in progress_bar(range(len(dataset)), disable=disable_progress, desc=desc, unit="clip", leave=False):
        if not loader.load(dataset[index]).skipped:
            kept.append(index)
    log_report(loader.report, desc, listed_in)
    return dataset if len(kept) == len(dataset) else dataset.select(kept)


__all__ = ["MediaCache", "MediaLoader", "media_options", "placeholder_colour", "prepare_media"]
