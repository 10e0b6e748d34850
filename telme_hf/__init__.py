# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""telme_hf: TelME emotion recognition in conversation as a Hugging Face model package.

Importing this package registers the `telme` model type with `AutoConfig`, `AutoModel` and `AutoProcessor` (as
soon as transformers loads them: see `telme_hf.registration`), and marks the classes for `trust_remote_code` export:
`save_pretrained` copies the model code into the checkpoint so that it loads where `telme_hf` is not installed.
It also registers the `"emotion-recognition-in-conversation"` pipeline task;
`telme_hf.inference.prediction.save_checkpoint` saves a checkpoint with that pipeline, so that
`pipeline(model=FOLDER, trust_remote_code=True)` runs it with or without telme_hf.
"""

import importlib as _importlib
import os as _os


# The Hub folder (`modeling/`) and the recipes (`recipes/`) sit beside this package in a source checkout and are
# installed as `telme_hf.modeling` and `telme_hf.recipes`. When this source folder is imported although the package
# was installed without `-e` (Python started from the repository root puts it first on `sys.path`), they are found
# beside it.
_source_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "modeling")) and _os.path.isfile(
        _os.path.join(_source_root, "modeling", "configuration_telme.py")):
    __path__.append(_source_root)

__version__ = "0.2.0"

from .registration import register_when_loaded  # noqa: E402

register_when_loaded()

# The public names, imported on first use so that `import telme_hf` (and `telme --help`) stays light.
_PUBLIC = {
    ".modeling": ("IEMOCAP_LABELS", "MELD_LABELS", "REFERENCE_BEHAVIOUR", "TelMEConfig", "TelMEForEmotionRecognition",
                  "TelMEOutput", "TelMEPreTrainedModel", "TelMEProcessor"),
    ".modeling.pipeline_telme": ("PIPELINE_TASK", "EmotionRecognitionInConversationPipeline", "predict_dialogue"),
    ".preprocessing": ("build_processor", "train_tokenizer"),
    ".inference.evaluation": ("evaluate_split",),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
