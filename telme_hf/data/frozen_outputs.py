# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The frozen-output cache: the outputs of frozen parts, computed once per sample and kept (the teacher's for the
student stages, every encoder's for the fusion stage and for evaluating a checkpoint again).

Results are stored as dataset columns in an Arrow file named by a fingerprint of the dataset, the weights of the
frozen parts and the collator's decode options, so a changed checkpoint or dataset computes them again and an
unchanged one is read back in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..modeling.modeling_telme import TelMEForEmotionRecognition
from ..modeling.pipeline_telme import TelMEDataCollator, run_inference, to_model


TEACHER_COLUMNS = {"teacher_logits": "text_logits", "teacher_features": "text_features"}
FEATURE_COLUMNS = {"text_features": "text_features", "audio_features": "audio_features", "video_features": "video_features"}
# The parts whose weights the features depend on: the three encoders (with their heads, frozen together).
ENCODER_PARTS = ("text_teacher", "audio_student", "video_student")


def module_fingerprint(module: torch.nn.Module) -> str:
    """A hash of a module's weights (names, shapes and values)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _inputs_fingerprint(collator: TelMEDataCollator, model: TelMEForEmotionRecognition) -> str:
    """Everything besides the weights and rows that changes the outputs: decoding, the processor (its settings
    and tokenizer) and the model's config (pooling, fusion options, ...)."""
    loader = collator.loader
    processor = collator.processor
    tokenizer = getattr(processor.tokenizer, "backend_tokenizer", None)
    parts = (
        collator.modalities,
        loader.audio.cache_key() if loader.audio else None,
        loader.video.cache_key() if loader.video else None,
        loader.max_media_seconds,
        processor.to_json_string(),
        tokenizer.to_str() if tokenizer is not None else len(processor.tokenizer),
        model.config.to_json_string(use_diff=False),
    )
    return hashlib.sha1("|".join(str(part) for part in parts).encode()).hexdigest()


def _media_fingerprint(dataset) -> str:
    """Size and modification time of every media file the rows point to: a replaced clip changes the key."""
    digest = hashlib.sha1()
    paths = set()
    for column in ("audio_path", "video_path"):
        if column in dataset.column_names:
            paths.update(path for path in dataset[column] if path)
    for path in sorted(paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"{path}|missing".encode())
    return digest.hexdigest()


def add_frozen_outputs(
    dataset,
    model: TelMEForEmotionRecognition,
    collator: TelMEDataCollator,
    columns: dict[str, str],
    cache_dir: str | Path,
    parts: Sequence[str],
    batch_size: int = 16,
    desc: str = "caching frozen outputs",
):
    """Add model outputs as float columns, computed once per sample with the model in eval mode.

    Args:
        dataset: a `datasets.Dataset` of utterance rows (without bad-media rows: see `prepare_media`).
        model: the model whose frozen parts compute the outputs.
        collator: builds the inputs (its modalities decide which encoders run).
        columns: new column name → `TelMEOutput` attribute, e.g. `TEACHER_COLUMNS` or `FEATURE_COLUMNS`.
        cache_dir: where the Arrow cache files live.
        parts: names of the model's parts whose weights the outputs depend on (part of the cache key).

    Example:

    ```python
    >>> train = add_frozen_outputs(train, model, text_collator, TEACHER_COLUMNS, "cache", parts=["text_teacher"])
    >>> train.column_names[-2:]
    ['teacher_logits', 'teacher_features']
    ```
    """
    key_parts = [
        dataset._fingerprint,
        _media_fingerprint(dataset),
        _inputs_fingerprint(collator, model),
        repr(sorted(columns.items())),
        *(module_fingerprint(getattr(model, part)) for part in parts),
    ]
    key = hashlib.sha1("|".join(key_parts).encode()).hexdigest()[:20]
    cache_file = Path(cache_dir) / f"{desc.replace(' ', '-')}-{key}.arrow"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    dataset = dataset.remove_columns([name for name in columns if name in dataset.column_names])

    outputs: dict[str, torch.Tensor] = {}

    def step(model, batch) -> dict[str, torch.Tensor]:
        batch = {name: value for name, value in batch.items() if name != "labels"}
        result = model(**to_model(batch, model))
        return {name: getattr(result, attribute).float().cpu() for name, attribute in columns.items()}

    def add(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, np.ndarray]:
        # Run only when the cache file is missing: every output at once, through the inference loop.
        if not outputs:
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
            outputs.update(run_inference(model, loader, step))
            if len(next(iter(outputs.values()))) != len(dataset):
                raise ValueError("Rows were dropped while caching; run prepare_media on the dataset first.")
        return {name: outputs[name][indices].numpy() for name in columns}

    return dataset.map(
        add,
        with_indices=True,
        batched=True,
        batch_size=batch_size,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        new_fingerprint=key,
        desc=desc,
    )


def add_encoder_features(dataset, model: TelMEForEmotionRecognition, processor, loader, cache_dir: str | Path,
                         batch_size: int = 16, desc: str = "features"):
    """Every encoder's features (`FEATURE_COLUMNS`) as columns, computed once per checkpoint, split and decode
    options: the stage-3 training input, and what an evaluation reads instead of running the encoders again.

    `dataset` must have been through `prepare_media` with `loader` (rows that `"skip"` drops are gone). The same
    `desc` and `cache_dir` find the same file: the fusion stage's dev features serve the run's final evaluation.
    """
    collator = TelMEDataCollator(processor, ("text", "audio", "video"), loader=loader)
    return add_frozen_outputs(dataset, model, collator, FEATURE_COLUMNS, cache_dir, ENCODER_PARTS, batch_size, desc)


__all__ = ["add_encoder_features", "add_frozen_outputs", "module_fingerprint", "ENCODER_PARTS", "TEACHER_COLUMNS",
           "FEATURE_COLUMNS"]
