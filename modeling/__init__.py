# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The Hub-portable TelME model code (configuration, model, processor)."""

from .configuration_telme import IEMOCAP_LABELS, MELD_LABELS, MODEL_REFERENCE_BEHAVIOUR, TelMEConfig
from .modeling_telme import (
    TelMEAudioStudent,
    TelMEForEmotionRecognition,
    TelMEFusion,
    TelMEOutput,
    TelMEPreTrainedModel,
    TelMETextTeacher,
    TelMEVideoStudent,
)
from .processing_telme import PROCESSOR_REFERENCE_BEHAVIOUR, TelMEProcessor, speaker_indices, speaker_token


# Every behaviour of the original implementation that changes numbers, (clean, original): what the network
# computes (`TelMEConfig`) and what it is fed (`TelMEProcessor`). `reference_behaviour=True` switches all of them.
REFERENCE_BEHAVIOUR = {**MODEL_REFERENCE_BEHAVIOUR, **PROCESSOR_REFERENCE_BEHAVIOUR}


__all__ = [
    "IEMOCAP_LABELS",
    "MELD_LABELS",
    "MODEL_REFERENCE_BEHAVIOUR",
    "PROCESSOR_REFERENCE_BEHAVIOUR",
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
