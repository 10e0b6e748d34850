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
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..logging import progress_bar
from ..modeling.modeling_telme import TelMEForEmotionRecognition
from ..modeling.pipeline_telme import TelMEDataCollator, run_inference, to_model


TEACHER_COLUMNS = {"teacher_logits": "text_logits", "teacher_features": "text_features"}
FEATURE_COLUMNS = {"text_features": "text_features", "audio_features": "audio_features", "video_features": "video_features"}
# The parts whose weights the features depend on: the three encoders (with their heads, frozen together).
ENCODER_PARTS = ("text_teacher", "audio_student", "video_student")


# The weight checksum: sums of 16-bit words times per-position coefficients, modulo the prime 2**31 - 1, in int64
# (every product stays below 2**62 and every chunk's sum below 2**63, so the arithmetic is exact and the result the
# same on any device and in any summation order). Two coefficient sequences give 62 bits per tensor.
_PRIME = 2**31 - 1
_SEEDS = ((1_103_515_245, 12_345), (69_069, 1_013_904_223))
_CHUNK_WORDS = 1 << 22


def tensor_checksums(tensor: torch.Tensor) -> torch.Tensor:
    """Two checksums of a tensor's bytes, as a 2-element int64 tensor on the tensor's device.

    The bytes are read as signed 16-bit words `w_i` (bytes for a tensor of an odd byte count), and checksum `k` is
    `sum_i (w_i mod p) * ((a_k * (i + 1) + b_k) mod p) mod p` with `p = 2**31 - 1`. The words are distinct modulo
    `p` and the two sequences never have a zero coefficient at the same position, so a change of any one word always
    changes at least one checksum. The work runs where the tensor is: a model on a GPU is not copied to the host to
    be fingerprinted.
    """
    flat = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    if flat.numel() % 2 == 0 and flat.storage_offset() % 2:
        flat = flat.clone()  # a view of a byte tensor at an odd offset cannot be read as 16-bit words in place
    words = flat.view(torch.int16) if flat.numel() % 2 == 0 else flat
    sums = torch.zeros(len(_SEEDS), dtype=torch.int64, device=tensor.device)
    for start in range(0, words.numel(), _CHUNK_WORDS):
        chunk = words[start:start + _CHUNK_WORDS].to(torch.int64).remainder_(_PRIME)
        position = torch.arange(start + 1, start + 1 + chunk.numel(), dtype=torch.int64, device=tensor.device)
        position.remainder_(_PRIME)
        for index, (a, b) in enumerate(_SEEDS):
            coefficient = (position * a + b).remainder_(_PRIME)
            sums[index] += (chunk * coefficient).remainder_(_PRIME).sum()
        sums.remainder_(_PRIME)  # each chunk adds under 2**53: the running sums never leave int64
    return sums


def module_fingerprint(module: torch.nn.Module, on_device: bool | None = None) -> str:
    """A hash of a module's weights: names, shapes, dtypes and values.

    Weights in host memory are hashed as they are (SHA-1 of their bytes: about 1 s for the paper's three encoders on
    2 CPU cores). Weights on an accelerator are summarised where they are, by `tensor_checksums`, and fetched once:
    copying 2.3 GB to the host to hash it cost more than a batch of the encoders' work there. The two give different
    keys, as the features computed on each differ in their last bits. `on_device` forces either way (tests).
    """
    state = sorted(module.state_dict().items())
    if on_device is None:
        on_device = any(tensor.device.type != "cpu" for _, tensor in state)
    digest = hashlib.sha1(b"checksums" if on_device else b"bytes")
    if on_device and state:
        device = state[0][1].device  # one fetch at the end, not one synchronisation per tensor
        values = torch.stack([tensor_checksums(tensor).to(device) for _, tensor in state]).tolist()
    else:
        values = [None] * len(state)
    for (name, tensor), value in zip(state, values):
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|{value}".encode())
        if not on_device:
            digest.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
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


def _outputs_key(dataset, collator: TelMEDataCollator, model: TelMEForEmotionRecognition, *parts: str) -> str:
    """The name of a kept-outputs cache: the rows, their media files, the decode and processor options, and `parts`
    (what else the outputs depend on: the columns, the weights of the parts that compute them, a precision)."""
    key_parts = [dataset._fingerprint, _media_fingerprint(dataset), _inputs_fingerprint(collator, model), *parts]
    return hashlib.sha1("|".join(key_parts).encode()).hexdigest()[:20]


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
    key = _outputs_key(dataset, collator, model, repr(sorted(columns.items())),
                       *(module_fingerprint(getattr(model, part)) for part in parts))
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


# The audio student's feature-encoder outputs: the file of each row's (channels, frames) array, and the length of the
# waveform it came from (the frame mask is computed from it, as from the raw audio's mask).
FEATURE_ENCODER_COLUMNS = ("audio_encoder_outputs", "audio_samples")


def add_feature_encoder_outputs(dataset, model: TelMEForEmotionRecognition, processor, loader, cache_dir: str | Path,
                                batch_size: int = 16, autocast_dtype: torch.dtype = torch.float32,
                                desc: str = "feature encoder"):
    """The audio student's convolutional feature encoder's output for every row, computed once and kept: for an audio
    stage whose feature encoder is frozen (`freeze_feature_encoder`), whose steps then start at the feature
    projection (the collator passes these outputs as `input_values`; `telme_hf.training.trainer` runs the student
    with its feature encoder passing them through).

    One `.npy` file per row, `(channels, frames)` in float32, the row's own frames only (the encoder is a stack of
    per-frame convolutions and layer norms: a frame's output does not depend on the batch's padding). The folder is
    named by a fingerprint of the rows, their media, the decode and processor options, the feature encoder's
    weights and `autocast_dtype` (the stage's precision, under which the encoder would have run), and written under
    a temporary name, renamed once complete. Adds the columns of `FEATURE_ENCODER_COLUMNS`.

    `dataset` must have been through `prepare_media` with `loader` (rows that `"skip"` drops are gone).
    """
    collator = TelMEDataCollator(processor, ("audio",), loader=loader)
    encoder = model.audio_student.encoder
    key = _outputs_key(dataset, collator, model, module_fingerprint(encoder.feature_extractor), str(autocast_dtype))
    folder = Path(cache_dir) / f"{desc.replace(' ', '-')}-{key}"
    if not (folder / "samples.npy").is_file():
        _write_feature_encoder_outputs(dataset, encoder, collator, folder, batch_size, autocast_dtype, desc)
    samples = np.load(folder / "samples.npy")
    paths = [str(folder / f"{index}.npy") for index in range(len(dataset))]
    dataset = dataset.remove_columns([name for name in FEATURE_ENCODER_COLUMNS if name in dataset.column_names])
    return dataset.add_column(FEATURE_ENCODER_COLUMNS[0], paths).add_column(FEATURE_ENCODER_COLUMNS[1],
                                                                          samples.tolist())


def _write_feature_encoder_outputs(dataset, encoder, collator, folder: Path, batch_size: int,
                                   autocast_dtype: torch.dtype, desc: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    device = next(encoder.parameters()).device
    samples: list[int] = []
    was_training = encoder.training
    encoder.eval()
    batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype,
                                             enabled=autocast_dtype != torch.float32):
            for batch in progress_bar(batches, desc=desc, unit="batch"):
                lengths = batch["audio_attention_mask"].sum(-1)
                frames = encoder._get_feat_extract_output_lengths(lengths, add_adapter=False).tolist()
                outputs = encoder.feature_extractor(batch["input_values"].to(device)).float().cpu().numpy()
                for output, length, count in zip(outputs, lengths.tolist(), frames):
                    np.save(temporary / f"{len(samples)}.npy", np.ascontiguousarray(output[:, :count]))
                    samples.append(int(length))
        if len(samples) != len(dataset):
            raise ValueError("Rows were dropped while caching; run prepare_media on the dataset first.")
        np.save(temporary / "samples.npy", np.asarray(samples, dtype=np.int64))  # written last: the folder is whole
        shutil.rmtree(folder, ignore_errors=True)  # os.replace cannot put a folder over a non-empty one
        os.replace(temporary, folder)
    finally:
        encoder.train(was_training)
        shutil.rmtree(temporary, ignore_errors=True)


def add_encoder_features(dataset, model: TelMEForEmotionRecognition, processor, loader, cache_dir: str | Path,
                         batch_size: int = 16, desc: str = "features"):
    """Every encoder's features (`FEATURE_COLUMNS`) as columns, computed once per checkpoint, split and decode
    options: the stage-3 training input, and what an evaluation reads instead of running the encoders again.

    `dataset` must have been through `prepare_media` with `loader` (rows that `"skip"` drops are gone). The same
    `desc` and `cache_dir` find the same file: the fusion stage's dev features serve the run's final evaluation.
    """
    collator = TelMEDataCollator(processor, ("text", "audio", "video"), loader=loader)
    return add_frozen_outputs(dataset, model, collator, FEATURE_COLUMNS, cache_dir, ENCODER_PARTS, batch_size, desc)


__all__ = ["add_encoder_features", "add_feature_encoder_outputs", "add_frozen_outputs", "module_fingerprint",
           "tensor_checksums", "FEATURE_ENCODER_COLUMNS", "ENCODER_PARTS", "TEACHER_COLUMNS",
           "FEATURE_COLUMNS"]
