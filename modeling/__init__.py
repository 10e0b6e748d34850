# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The Hub-portable TelME model code (configuration, model, processor)."""

from .configuration_telme import IEMOCAP_LABELS, MELD_LABELS, REFERENCE_BEHAVIOUR, TelMEConfig
from .modeling_telme import (
    TelMEAudioStudent,
    TelMEForEmotionRecognition,
    TelMEFusion,
    TelMEOutput,
    TelMEPreTrainedModel,
    TelMETextTeacher,
    TelMEVideoStudent,
)
from .processing_telme import TelMEProcessor, speaker_indices, speaker_token


__all__ = [
    "IEMOCAP_LABELS",
    "MELD_LABELS",
    "REFERENCE_BEHAVIOUR",
    "TelMEConfig",
    "TelMEAudioStudent",
    "TelMEForEmotionRecognition",
    "TelMEFusion",
    "TelMEOutput",
    "TelMEPreTrainedModel",
    "TelMETextTeacher",
    "TelMEVideoStudent",
    "TelMEProcessor",
    "speaker_indices",
    "speaker_token",
]
