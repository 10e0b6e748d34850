# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""telme_hf: TelME emotion recognition in conversation as a Hugging Face model package.

Importing this package registers the `telme` model type with `AutoConfig`, `AutoModel` and `AutoProcessor`, and
marks the classes for `trust_remote_code` export: `save_pretrained` copies the model code into the checkpoint so
that it loads where `telme_hf` is not installed. It also registers the `"emotion-recognition-in-conversation"`
pipeline task; `telme_hf.inference.prediction.save_checkpoint` saves a checkpoint with that pipeline, so that
`pipeline(model=FOLDER, trust_remote_code=True)` runs it with or without telme_hf.
"""

import os as _os

from transformers import AutoConfig, AutoModel, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY


# The Hub folder (`modeling/`) and the recipes (`recipes/`) sit beside this package in a source checkout and are
# installed as `telme_hf.modeling` and `telme_hf.recipes`. When this source folder is imported although the package
# was installed without `-e` (Python started from the repository root puts it first on `sys.path`), they are found
# beside it.
_source_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "modeling")) and _os.path.isfile(
        _os.path.join(_source_root, "modeling", "configuration_telme.py")):
    __path__.append(_source_root)

from .modeling import (
    IEMOCAP_LABELS,
    MELD_LABELS,
    REFERENCE_BEHAVIOUR,
    TelMEConfig,
    TelMEForEmotionRecognition,
    TelMEOutput,
    TelMEPreTrainedModel,
    TelMEProcessor,
)


__version__ = "0.2.0"

AutoConfig.register(TelMEConfig.model_type, TelMEConfig, exist_ok=True)
AutoModel.register(TelMEConfig, TelMEForEmotionRecognition, exist_ok=True)
AutoProcessor.register(TelMEConfig, TelMEProcessor, exist_ok=True)
TelMEConfig.register_for_auto_class()
TelMEForEmotionRecognition.register_for_auto_class("AutoModel")
TelMEProcessor.register_for_auto_class()

from .preprocessing import build_processor, train_tokenizer  # noqa: E402  (needs the registered classes)
from .inference.evaluation import evaluate_split  # noqa: E402
from .modeling.pipeline_telme import (  # noqa: E402
    PIPELINE_TASK,
    EmotionRecognitionInConversationPipeline,
    predict_dialogue,
)


# The pipeline's `save_pretrained` names it in config.json (`custom_pipelines`) from this registration.
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK, pipeline_class=EmotionRecognitionInConversationPipeline, pt_model=AutoModel, type="multimodal"
)


__all__ = [
    "IEMOCAP_LABELS",
    "MELD_LABELS",
    "PIPELINE_TASK",
    "REFERENCE_BEHAVIOUR",
    "EmotionRecognitionInConversationPipeline",
    "TelMEConfig",
    "TelMEForEmotionRecognition",
    "TelMEOutput",
    "TelMEPreTrainedModel",
    "TelMEProcessor",
    "build_processor",
    "evaluate_split",
    "predict_dialogue",
    "train_tokenizer",
]
