# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Decode each clip once: a disk cache of decoded media, and the bad-media policy applied while filling it.

Format: one `.npy` file per clip and modality, named by a hash of (resolved path, size, mtime, decode options,
window). `.npy` is the cheapest thing to read back (0.1–9 ms per clip against ~150 ms to decode a 720p MELD clip,
see `benchmarks/bench_decode.py`), needs no schema, and lets audio-only stages skip the frame files entirely.
Frames are cached at the processor's input size (shortest edge = 224, centre-cropped: 1.2 MB per 8-frame clip,
about 16 GB for all of MELD) rather than at source resolution (22 MB per clip).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .media import (
    BAD_MEDIA_POLICIES,
    AudioDecodeOptions,
    BadMediaPolicy,
    MediaError,
    VideoDecodeOptions,
    decode_clip,
    media_duration,
)


logger = logging.getLogger("telme_hf.data")

# The original's placeholder: 1412 samples are exactly 4 data2vec frames.
PLACEHOLDER_AUDIO_SAMPLES = 1412


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
            clip = decode_clip(path, missing.get("audio"), missing.get("video"), start=start, end=end)
            for kind in missing:
                array = getattr(clip, kind)
                self._save(entries[kind], array)
                found[kind] = array
        return found.get("audio"), found.get("video")


@dataclass
class BadMediaReport:
    """Every utterance whose media could not be used, and what was done about it."""

    policy: str
    affected: dict[str, str] = field(default_factory=dict)  # utterance_key -> reason

    def add(self, key: str, reason: str) -> None:
        self.affected[key] = reason
        action = "dropped" if self.policy == "skip" else "replaced with zeros"
        logger.warning("bad media for %s (%s): %s", key, action, reason)

    def summary(self) -> str:
        action = "dropped" if self.policy == "skip" else "replaced with zeros"
        return f"{len(self.affected)} utterance(s) with bad media {action} (on_bad_media={self.policy!r})"


def placeholder_media(
    audio: AudioDecodeOptions | None,
    video: VideoDecodeOptions | None,
    pixel_mean: Sequence[float] = (0.5, 0.5, 0.5),
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Stand-ins for unusable media that reach the model as zeros, like the original's placeholders.

    Audio: 1412 zero samples (per-utterance normalisation keeps them zero). Frames: filled with `pixel_mean` (the
    frame processor's normalisation mean, in [0, 1]), which its normalisation maps to ~0 (|x| < 0.01), because the
    original put `zeros(8, 3, 224, 224)` directly in as pixel values; black frames would arrive as about -2.
    """
    waveform = np.zeros(PLACEHOLDER_AUDIO_SAMPLES, np.float32) if audio is not None else None
    frames = None
    if video is not None:
        side = video.size or 224
        mean_colour = np.round(255 * np.asarray(pixel_mean, dtype=np.float64)).astype(np.uint8)
        frames = np.broadcast_to(mean_colour, (video.num_frames, side, side, 3)).copy()
    return waveform, frames


class MediaLoader:
    """Decode (through an optional cache) the media of dataset rows, applying the bad-media policy.

    Args:
        audio, video: decode options, or `None` for a modality the stage does not need.
        cache: a `MediaCache`, or `None` to decode every time.
        on_bad_media: `"error"` (raise, naming the file and utterance), `"skip"` (the caller drops the row) or
            `"zeros"` (zeros in place of the media). Every affected utterance is logged and kept in `report`.
        max_media_seconds: media longer than this is treated as bad (the original zeroes MELD clips over 30 s).
        pixel_mean: the frame processor's normalisation mean, so placeholder frames reach the model as zeros.
    """

    def __init__(
        self,
        audio: AudioDecodeOptions | None,
        video: VideoDecodeOptions | None,
        cache: MediaCache | None = None,
        on_bad_media: BadMediaPolicy = "error",
        max_media_seconds: float | None = None,
        pixel_mean: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        if on_bad_media not in BAD_MEDIA_POLICIES:
            raise ValueError(f"on_bad_media must be one of {BAD_MEDIA_POLICIES}, got {on_bad_media!r}.")
        self.audio, self.video, self.cache = audio, video, cache
        self.on_bad_media = on_bad_media
        self.max_media_seconds = max_media_seconds
        self.pixel_mean = tuple(pixel_mean)
        self.report = BadMediaReport(on_bad_media)
        self._durations: dict[str, float] = {}

    def _decode(self, path: str, audio, video, start, end):
        if self.cache is not None:
            return self.cache.get(path, audio, video, start, end)
        clip = decode_clip(path, audio, video, start=start, end=end)
        return clip.audio, clip.video

    def _too_long(self, path: str, start: float | None, end: float | None) -> bool:
        if self.max_media_seconds is None:
            return False
        if start is not None and end is not None:
            return end - start > self.max_media_seconds
        # Remembered per file, so the check does not reopen every clip in every epoch.
        if path not in self._durations:
            self._durations[path] = media_duration(path)
        return self._durations[path] > self.max_media_seconds

    def load(
        self, row: Mapping[str, Any], audio: bool = True, video: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray | None] | None:
        """(audio, video) of one row; `None` when the row must be skipped under `on_bad_media="skip"`.

        `audio`/`video` = False leaves out a modality this loader decodes but the row does not need (e.g. one
        whose features are precomputed). The row's `start`/`end` window cuts the file that holds the video (a
        dialogue-level recording, as in IEMOCAP) and the audio only when it comes from that same file: a separate
        audio file (IEMOCAP's per-utterance wav) is the utterance already and is read whole.
        """
        audio_options = self.audio if audio else None
        video_options = self.video if video else None
        if audio_options is None and video_options is None:
            return None, None
        start, end = row.get("start"), row.get("end")
        start = None if start is None or np.isnan(start) else float(start)
        end = None if end is None or np.isnan(end) else float(end)
        audio_path, video_path = row.get("audio_path") or "", row.get("video_path") or ""
        shared_file = audio_path == video_path
        key = row.get("utterance_key") or audio_path or video_path
        try:
            if audio_options is not None and video_options is not None and shared_file:
                if self._too_long(audio_path, start, end):
                    raise MediaError(audio_path, f"longer than max_media_seconds={self.max_media_seconds}")
                return self._decode(audio_path, audio_options, video_options, start, end)
            waveform = frames = None
            if audio_options is not None:
                audio_window = (start, end) if shared_file else (None, None)
                if self._too_long(audio_path, *audio_window):
                    raise MediaError(audio_path, f"longer than max_media_seconds={self.max_media_seconds}")
                waveform = self._decode(audio_path, audio_options, None, *audio_window)[0]
            if video_options is not None:
                if self._too_long(video_path, start, end):
                    raise MediaError(video_path, f"longer than max_media_seconds={self.max_media_seconds}")
                frames = self._decode(video_path, None, video_options, start, end)[1]
            return waveform, frames
        except MediaError as error:
            if self.on_bad_media == "error":
                raise type(error)(
                    error.path,
                    f"{error.reason} (utterance {key}, row {row.get('row_index', '?')}). To drop such utterances "
                    "pass on_bad_media='skip'; to feed zeros instead pass on_bad_media='zeros'.",
                ) from error
            self.report.add(key, str(error))
            return None if self.on_bad_media == "skip" else placeholder_media(audio_options, video_options, self.pixel_mean)



def prepare_media(dataset, loader: MediaLoader, desc: str = "decoding media"):
    """Decode every row's media once (into the loader's cache) and apply the bad-media policy up front.

    Returns the dataset without the rows that `on_bad_media="skip"` drops, so that batches (and cached features
    computed from them) stay aligned with the rows. Progress is shown with a bar; the policy's report is logged.
    """
    from tqdm.auto import tqdm

    kept = []
    for index in tqdm(range(len(dataset)), desc=desc, unit="clip", leave=False):
        if loader.load(dataset[index]) is not None:
            kept.append(index)
    if loader.report.affected:
        logger.warning(loader.report.summary())
    return dataset if len(kept) == len(dataset) else dataset.select(kept)


__all__ = ["MediaCache", "MediaLoader", "BadMediaReport", "placeholder_media", "prepare_media", "BAD_MEDIA_POLICIES"]
