# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Dataset rows (or turns) → model inputs, decoding only the modalities a stage needs.

Hub-portable: imports only numpy, torch and transformers (and PyAV through `media_telme` to decode files);
copied into every saved checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature

from .processing_telme import TelMEProcessor
from .bad_media_telme import BadMediaPolicy
from .loading_telme import MediaCache, MediaLoader
from .media_telme import MODALITIES


# Columns of precomputed tensors (stage-2 teacher outputs, stage-3 frozen features) passed straight through.
PASSTHROUGH_COLUMNS = ("text_features", "audio_features", "video_features", "teacher_logits", "teacher_features")


class TelMEDataCollator:
    """Build a batch for `TelMEForEmotionRecognition` from dataset rows (see `telme_hf.data.meld.load_meld`) or turns.

    Media is decoded as the processor says (`MediaLoader.for_processor`), through the bad-media policy. Rows that
    already carry `audio`/`video` arrays (decoded upstream, e.g. by DataLoader workers) are not decoded again.

    Args:
        processor: the model's `TelMEProcessor`; it decides how media is decoded and fed.
        modalities: what the stage needs; the teacher stage passes `("text",)` and touches no media.
        cache: a `MediaCache` (or its folder) so each clip is decoded once across epochs, stages and runs.
        on_bad_media: `"error"`, `"skip"` or `"zeros"`; see `telme_hf.modeling.bad_media_telme`.
        skipped: what happens to a row that `"skip"` leaves out: `"drop"` it from the batch (training,
            evaluation), or keep it with its text alone (`"text"`, prediction: `media_rows` then lists the rows
            that have media).
        loader: a ready `MediaLoader` instead of `cache`/`on_bad_media` (to share its report and memory of bad
            files).

    Rows that carry precomputed `text_features`/`audio_features`/`video_features` skip that modality's inputs,
    and `teacher_logits`/`teacher_features` are passed through for distillation.

    Example:

    ```python
    >>> collator = TelMEDataCollator(processor, modalities=("text",))
    >>> batch = collator([dataset["train"][0], dataset["train"][1]])
    >>> sorted(batch)
    ['attention_mask', 'input_ids', 'labels']
    ```
    """

    def __init__(
        self,
        processor: TelMEProcessor,
        modalities: Sequence[str] = MODALITIES,
        cache: MediaCache | str | None = None,
        on_bad_media: BadMediaPolicy = "error",
        skipped: str = "drop",
        loader: MediaLoader | None = None,
    ) -> None:
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"Unknown modalities {sorted(unknown)}; choose from {MODALITIES}.")
        if skipped not in ("drop", "text"):
            raise ValueError(f"`skipped` must be 'drop' or 'text', got {skipped!r}.")
        self.processor = processor
        self.modalities = tuple(modalities)
        self.skipped = skipped
        self.loader = loader or MediaLoader.for_processor(
            processor, cache, on_bad_media=on_bad_media, skip="drop" if skipped == "drop" else "predict"
        )

    @property
    def bad_media_report(self):
        return self.loader.report

    def _needs(self, modality: str, row: Mapping[str, Any]) -> bool:
        return modality in self.modalities and row.get(f"{modality}_features") is None

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        conversations, waves, clips, kept, media_rows = [], [], [], [], []
        for row in rows:
            need_audio, need_video = self._needs("audio", row), self._needs("video", row)
            if self.skipped == "text" and not _names_media(row):
                need_audio = need_video = False  # a turn without media: its text alone
            outcome = self.loader.load(row, audio=need_audio, video=need_video) if need_audio or need_video else None
            if outcome is not None and outcome.skipped and self.skipped == "drop":
                continue  # logged and reported by the loader
            kept.append(row)
            if self._needs("text", row):
                conversations.append(row["context"])
            if outcome is not None and not outcome.skipped:
                media_rows.append(len(kept) - 1)
                if need_audio:
                    waves.append(outcome.audio)
                if need_video:
                    clips.append(outcome.video)
            elif outcome is None and any(row.get(f"{kind}_features") is not None for kind in ("audio", "video")):
                media_rows.append(len(kept) - 1)  # its media was encoded before: its features stand for it
        if not kept:
            raise ValueError("Every row of this batch had bad media and on_bad_media='skip' dropped them all.")
        batch = BatchFeature({})
        if conversations or waves or clips:
            batch = self.processor(
                conversations=conversations or None,
                audio=waves or None,
                videos=clips or None,
                sampling_rate=self.loader.audio.sampling_rate if waves else None,
            )
        for column in PASSTHROUGH_COLUMNS:
            values = [row.get(column) for row in kept]
            if all(value is not None for value in values):
                batch[column] = torch.as_tensor(np.asarray(values, dtype=np.float32))
        if all(row.get("label") is not None for row in kept):
            batch["labels"] = torch.tensor([int(row["label"]) for row in kept], dtype=torch.long)
        if self.skipped == "text":
            batch["media_rows"] = torch.tensor(media_rows, dtype=torch.long)
        return batch


def _names_media(row: Mapping[str, Any]) -> bool:
    return any(isinstance(row.get(kind), np.ndarray) or row.get(f"{kind}_path") for kind in ("audio", "video"))


def to_model(batch: Mapping[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """A batch on the model's device, float tensors in its dtype (a bf16-loaded model), ids and masks as they are.

    Example:

    ```python
    >>> outputs = model(**to_model(collator(rows), model))  # doctest: +SKIP
    ```
    """
    parameter = next(model.parameters())
    moved = {}
    for name, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(parameter.device)
            value = value.to(parameter.dtype) if value.is_floating_point() else value
        moved[name] = value
    return moved


__all__ = ["TelMEDataCollator", "PASSTHROUGH_COLUMNS", "to_model"]
