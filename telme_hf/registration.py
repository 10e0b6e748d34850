# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Registration of TelME with transformers' Auto classes and pipelines, done when transformers loads them.

`import telme_hf` must make `AutoModel.from_pretrained(FOLDER)` and `pipeline("emotion-recognition-in-conversation")`
work, but importing transformers' Auto classes takes over a second, which `telme --help` should not pay. So each
registration runs right after the transformers module it registers with has been imported: at once when it already
is, else from an import hook the first time the process imports it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Callable
from types import ModuleType


__all__ = ["register_when_loaded"]


_PACKAGE = __name__.rpartition(".")[0]
_CONFIG, _MODEL, _PROCESSOR, _PIPELINE = (f"{_PACKAGE}.modeling.{name}" for name in (
    "configuration_telme", "modeling_telme", "processing_telme", "pipeline_telme"))


def _register_config() -> None:
    from transformers import AutoConfig

    config_class = sys.modules[_CONFIG].TelMEConfig
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)


def _register_model() -> None:
    from transformers import AutoModel

    AutoModel.register(sys.modules[_CONFIG].TelMEConfig, sys.modules[_MODEL].TelMEForEmotionRecognition,
                       exist_ok=True)


def _register_processor() -> None:
    from transformers import AutoProcessor

    AutoProcessor.register(sys.modules[_CONFIG].TelMEConfig, sys.modules[_PROCESSOR].TelMEProcessor, exist_ok=True)


def _register_pipeline() -> None:
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    pipeline_module = sys.modules[_PIPELINE]
    # The pipeline's `save_pretrained` names it in config.json (`custom_pipelines`) from this registration.
    PIPELINE_REGISTRY.register_pipeline(pipeline_module.PIPELINE_TASK,
                                        pipeline_class=pipeline_module.EmotionRecognitionInConversationPipeline,
                                        pt_model=AutoModel, type="multimodal")


def _export_with_code() -> None:
    # `save_pretrained` copies a class's code into the checkpoint (loadable with trust_remote_code where telme_hf is
    # not installed) once the class is marked for its Auto class.
    for module, name, auto_class in ((_CONFIG, "TelMEConfig", "AutoConfig"),
                                     (_MODEL, "TelMEForEmotionRecognition", "AutoModel"),
                                     (_PROCESSOR, "TelMEProcessor", "AutoProcessor")):
        getattr(sys.modules[module], name).register_for_auto_class(auto_class)


# Each registration: the module that calls for it, the TelME modules it needs, and the registration.
_PENDING: list[tuple[str, tuple[str, ...], Callable[[], None]]] = [
    ("transformers.models.auto.configuration_auto", (_CONFIG,), _register_config),
    ("transformers.models.auto.modeling_auto", (_CONFIG, _MODEL), _register_model),
    ("transformers.models.auto.processing_auto", (_CONFIG, _PROCESSOR), _register_processor),
    ("transformers.pipelines", (_PIPELINE,), _register_pipeline),
    (f"{_PACKAGE}.modeling", (_CONFIG, _MODEL, _PROCESSOR), _export_with_code),
]
_OURS = {f"{_PACKAGE}.modeling", *(name for _, needs, _ in _PENDING for name in needs)}

# transformers modules being executed through this hook right now. Registering imports TelME's modules, which import
# transformers: done while a transformers module is half-executed, that import could meet the half module (an Auto
# module importing another), so registrations wait until the outermost transformers import has finished.
_depth = 0
_settling = False


def _importing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False)


def _settle() -> None:
    """Run every registration whose trigger is loaded, unless an import it could meet half-done is in progress."""
    global _settling
    if _settling or _depth or any(_importing(name) for name in _OURS):
        return  # settled again when that import has finished
    _settling = True
    try:
        progress = True
        while progress:  # a registration's imports may load the trigger of one checked before it
            progress = False
            for entry in list(_PENDING):
                trigger, needs, register = entry
                if trigger in sys.modules and not _importing(trigger):
                    _PENDING.remove(entry)
                    for name in needs:
                        importlib.import_module(name)
                    register()
                    progress = True
    finally:
        _settling = False


class _SettleAfterExecution(importlib.abc.Loader):
    """Wraps a module's loader: the pending registrations are settled once it has executed."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        global _depth
        counted = module.__name__.startswith("transformers")
        _depth += counted
        try:
            self.loader.exec_module(module)
        finally:
            _depth -= counted
        module.__spec__._initializing = False  # done executing (the import system resets it just after)
        _settle()

    def __getattr__(self, name: str):  # get_resource_reader, is_package, ...: the wrapped loader's
        return getattr(self.loader, name)


class _SettlingFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: while registrations are pending, it wraps the loader the other finders return for
    transformers' modules and TelME's."""

    def find_spec(self, fullname: str, path, target=None):
        if not _PENDING or not (fullname == "transformers" or fullname.startswith("transformers.")
                                or fullname in _OURS):
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        if spec is not None and spec.loader is not None and not isinstance(spec.loader, _SettleAfterExecution):
            spec.loader = _SettleAfterExecution(spec.loader)
        return spec


def register_when_loaded() -> None:
    """Register TelME with every transformers registry already imported, and with the others when they are."""
    if not any(isinstance(finder, _SettlingFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SettlingFinder())
    _settle()
