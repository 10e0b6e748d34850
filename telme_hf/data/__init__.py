# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Data: MELD and IEMOCAP from raw files, PyAV decoding, the decoded-media cache, collation, a synthetic corpus.

A batch flows one way: CSV row → dataset row (paths, dialogue context) → `TelMEDataCollator` (decode or read the
cache) → `TelMEProcessor` → model.
"""

from .cache import BadMediaReport, MediaCache, MediaLoader, placeholder_media, prepare_media
from .collator import TelMEDataCollator, decode_options_from_config
from .dialogues import MissingMediaReport, normalize_text, scan_missing_media
from .iemocap import load_iemocap
from .media import (
    AudioDecodeOptions,
    CorruptMediaError,
    DecodedClip,
    EmptyMediaError,
    MediaError,
    MissingMediaError,
    NoStreamError,
    VideoDecodeOptions,
    decode_audio,
    decode_clip,
    decode_video,
    media_duration,
)
from .meld import load_meld
from .synthetic import make_synthetic_corpus


__all__ = [
    "AudioDecodeOptions",
    "BadMediaReport",
    "CorruptMediaError",
    "DecodedClip",
    "EmptyMediaError",
    "MediaCache",
    "MediaError",
    "MediaLoader",
    "MissingMediaError",
    "MissingMediaReport",
    "NoStreamError",
    "TelMEDataCollator",
    "VideoDecodeOptions",
    "decode_audio",
    "decode_clip",
    "decode_options_from_config",
    "decode_video",
    "load_iemocap",
    "load_meld",
    "make_synthetic_corpus",
    "media_duration",
    "normalize_text",
    "placeholder_media",
    "prepare_media",
    "scan_missing_media",
]
