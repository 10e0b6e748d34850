# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Bring a checkpoint written by an earlier telme_hf up to date (`telme upgrade-checkpoint`)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import modeling
from ..inference.prediction import save_checkpoint
from ..modeling import TelMEConfig, TelMEForEmotionRecognition
from ..preprocessing import LEGACY_PREPROCESSING_OPTIONS, apply_legacy_preprocessing, legacy_processor_options


def upgrade_checkpoint(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Upgrade a checkpoint folder in place; its predictions do not change.

    A telme_hf 0.1 checkpoint's preprocessing options move from `config.json` into `processor_config.json`; the
    model, processor and pipeline code the folder carries are replaced by this version's (files of an older layout
    removed), so that `pipeline(model=folder, trust_remote_code=True)` runs the same code whether or not telme_hf is
    imported.

    Returns:
        `{"moved": option names, "code": the code files written, "removed": the obsolete code files removed}`.
    """
    from transformers import AutoProcessor

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json: pass a checkpoint folder (e.g. a run's final/).")
    config = TelMEConfig.from_pretrained(folder)
    moved = sorted(legacy_processor_options(config))
    processor = AutoProcessor.from_pretrained(folder)
    apply_legacy_preprocessing(processor, config, str(folder))
    model = TelMEForEmotionRecognition.from_pretrained(folder)
    for name in (*LEGACY_PREPROCESSING_OPTIONS, "legacy_preprocessing"):
        if hasattr(model.config, name):
            delattr(model.config, name)
    current = {path.name for path in Path(modeling.__file__).parent.glob("*_telme.py")}
    before = {path.name for path in folder.glob("*_telme.py")}
    save_checkpoint(model, processor, folder)
    removed = sorted(name for name in before - current if (folder / name).is_file())
    for name in removed:
        (folder / name).unlink()
    written = sorted(path.name for path in folder.glob("*_telme.py"))
    return {"moved": moved, "code": written, "removed": removed}


__all__ = ["upgrade_checkpoint"]
