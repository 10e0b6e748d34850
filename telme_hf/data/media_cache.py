# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Decode each clip once: a disk cache of decoded media, and the pass that fills it for a whole dataset.

Format: one `.npy` file per clip and modality, named by a hash of (resolved path, size, mtime, decode options,
window). `.npy` is the cheapest thing to read back (0.1–9 ms per clip against ~150 ms to decode a 720p MELD clip,
see `benchmarks/bench_decode.py`) and lets audio-only stages skip the frame files. Frames are cached at the
processor's input size, not at source resolution: with the full-size processor, 1.40 MB per MELD utterance (1.20 MB
of frames, 0.20 MB of 16 kHz audio), 19.3 GB for all of MELD, extrapolated from 20 real-length 720p clips by
`python benchmarks/bench_meld_scale.py` (table in `benchmarks/README.md`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..logging import progress_bar
from ..modeling.media_telme import AudioDecodeOptions, MediaLoader, VideoDecodeOptions, decode_clip
from .bad_media import log_report


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

    Give it to a `MediaLoader` (`cache=`), which asks it for every clip.

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
        # Write then rename, so a reader (another DataLoader worker or process) never sees half a file; a full disk
        # leaves no file behind, a kill only a hidden `*.tmp` that the next run's `take_cache_lock` removes.
        with atomic_open(entry, "wb") as stream:
            np.save(stream, array)

    @staticmethod
    def _load(entry: Path) -> np.ndarray | None:
        """A cached array, or `None` when there is none or it cannot be read whole (it is then decoded again)."""
        try:
            return np.load(entry)
        except (OSError, ValueError, EOFError):  # missing, or cut short by a crash of the machine
            return None

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
        found = {kind: array for kind, entry in entries.items() if (array := self._load(entry)) is not None}
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


def as_media_cache(cache: MediaCache | str | os.PathLike | None) -> MediaCache | None:
    """A `MediaCache`, given one or its folder (`None` stays `None`)."""
    return cache if cache is None or isinstance(cache, MediaCache) else MediaCache(cache)


def _unchanged(item):
    return item


class _Outcomes:
    """Rows of a dataset decoded through a loader: for each, its index, whether `"skip"` set it aside and its bad
    media (the arrays stay in the loader's cache). A map-style dataset, so DataLoader workers decode in parallel."""

    def __init__(self, dataset, loader: MediaLoader) -> None:
        self.dataset, self.loader = dataset, loader

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        outcome = self.loader.load(self.dataset[index])
        return index, outcome.skipped, outcome.entries


def prepare_media(dataset, loader: MediaLoader, desc: str = "decoding media", disable_progress: bool | None = None,
                  listed_in: str = "", num_workers: int = 0):
    """Decode every row's media once (into the loader's cache) and apply the bad-media policy up front.

    Args:
        dataset: a `datasets.Dataset` of utterance rows.
        loader: the `MediaLoader` the run decodes with (its cache is filled, its report records the bad media).
        desc: the progress bar's label and the summary's.
        disable_progress: hide the bar (default: see `telme_hf.logging.progress_disabled`).
        listed_in: the file that will list every affected utterance, named in the summary.
        num_workers: processes decoding in parallel (DataLoader workers; 0: this process). Needs the loader's cache,
            where the workers leave the arrays.

    Returns:
        The dataset without the rows whose media `on_bad_media="skip"` set aside, so that batches (and features
        cached from them) stay aligned with the rows.
    """
    import copy

    import torch

    if num_workers and loader.cache is None:
        raise ValueError("prepare_media with num_workers needs a loader with a cache: the workers' decoded media "
                         "reaches the run through it.")
    # The workers' loader reports nothing itself: their entries come back and are reported here, once.
    quiet = copy.copy(loader)
    quiet.report = None
    outcomes = torch.utils.data.DataLoader(_Outcomes(dataset, quiet if num_workers else loader), batch_size=None,
                                           num_workers=num_workers, collate_fn=_unchanged)
    kept = []
    for index, skipped, entries in progress_bar(outcomes, disable=disable_progress, desc=desc, unit="clip",
                                                leave=False, total=len(dataset)):
        if num_workers and loader.report is not None:
            for entry in entries:
                loader.report.add(entry)
        if not skipped:
            kept.append(index)
    if loader.report is not None:
        log_report(loader.report, desc, listed_in)
    return dataset if len(kept) == len(dataset) else dataset.select(kept)


__all__ = ["MediaCache", "as_media_cache", "prepare_media"]
