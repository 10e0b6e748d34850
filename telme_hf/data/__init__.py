# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Data: MELD and IEMOCAP from raw files, PyAV decoding, the decoded-media cache, collation, a synthetic corpus.

A batch flows one way: CSV row → dataset row (paths, dialogue context) → `TelMEDataCollator` (decode or read the
cache, through the bad-media policy) → `TelMEProcessor` → model.
"""

from ..modeling.bad_media_telme import BAD_MEDIA_POLICIES, BadMediaEntry, BadMediaReport, MediaOutcome, resolve_bad_media
from ..modeling.loading_telme import MediaCache, MediaLoader, media_options, prepare_media
from ..modeling.collating_telme import TelMEDataCollator, to_model
from .dialogues import normalize_text, scan_missing_media
from .iemocap import load_iemocap
from ..modeling.media_telme import (
    AudioDecodeOptions,
    CorruptMediaError,
    DecodedClip,
    EmptyMediaError,
    MediaError,
    MissingMediaError,
    NoStreamError,
    TooLongMediaError,
    VideoDecodeOptions,
    decode_audio,
    decode_clip,
    decode_video,
    media_duration,
)
from .meld import load_meld
from .registry import CORPORA, CORPUS_NAMES, load_corpus
from .synthetic import make_synthetic_corpus


__all__ = [
    "AudioDecodeOptions",
    "BAD_MEDIA_POLICIES",
    "BadMediaEntry",
    "BadMediaReport",
    "CORPORA",
    "CORPUS_NAMES",
    "CorruptMediaError",
    "DecodedClip",
    "EmptyMediaError",
    "MediaCache",
    "MediaError",
    "MediaLoader",
    "MediaOutcome",
    "MissingMediaError",
    "NoStreamError",
    "TelMEDataCollator",
    "TooLongMediaError",
    "VideoDecodeOptions",
    "decode_audio",
    "decode_clip",
    "decode_video",
    "load_corpus",
    "load_iemocap",
    "load_meld",
    "make_synthetic_corpus",
    "media_duration",
    "media_options",
    "normalize_text",
    "prepare_media",
    "resolve_bad_media",
    "scan_missing_media",
    "to_model",
]
