# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The Hub-portable TelME model code: configuration, model, processor, decoding and pipeline."""

from .configuration_telme import IEMOCAP_LABELS, MELD_LABELS, MODEL_REFERENCE_BEHAVIOUR, TelMEConfig
from .modeling_telme import TelMEForEmotionRecognition, TelMEOutput, TelMEPreTrainedModel
from .processing_telme import PROCESSOR_REFERENCE_BEHAVIOUR, TelMEProcessor


# Every behaviour of the original that changes numbers, (clean, original): what the network computes (`TelMEConfig`)
# and what it is fed (`TelMEProcessor`). `reference_behaviour=True` switches all of them.
REFERENCE_BEHAVIOUR = {**MODEL_REFERENCE_BEHAVIOUR, **PROCESSOR_REFERENCE_BEHAVIOUR}

__all__ = ["IEMOCAP_LABELS", "MELD_LABELS", "REFERENCE_BEHAVIOUR", "TelMEConfig", "TelMEForEmotionRecognition",
           "TelMEOutput", "TelMEPreTrainedModel", "TelMEProcessor"]
