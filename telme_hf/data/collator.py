# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Dataset rows → model inputs, decoding only the modalities a stage needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature

from ..modeling import TelMEConfig, TelMEProcessor
from .cache import MediaCache, MediaLoader
from .media import MODALITIES, AudioDecodeOptions, BadMediaPolicy, VideoDecodeOptions


# Columns of precomputed tensors (stage-2 teacher outputs, stage-3 frozen features) passed straight through.
PASSTHROUGH_COLUMNS = ("text_features", "audio_features", "video_features", "teacher_logits", "teacher_features")


def decode_options_from_config(config: TelMEConfig) -> tuple[AudioDecodeOptions, VideoDecodeOptions]:
    """The decode options a model expects, from its config (clean or reference behaviour).

    Frames are resized (shortest edge) and centre-cropped to the video backbone's input size while they are
    converted, so the image processor's own resize and crop are no-ops and the cache stores only what is used.
    Waveforms are decoded whole: the processor keeps `audio_max_samples` of them, before or after normalising as
    the config says (the original normalises the whole clip first).
    """
    audio = AudioDecodeOptions(sampling_rate=config.audio_sampling_rate, reference_rate=config.audio_reference_rate)
    video = VideoDecodeOptions(
        num_frames=config.video_num_frames,
        size=config.video_config.image_size,
        center_crop=True,
        sampling=config.video_frame_sampling,
        channel_order=config.video_channel_order,
        window_margin=float(config.video_window_margin),
    )
    return audio, video


class TelMEDataCollator:
    """Build a batch for `TelMEForEmotionRecognition` from dataset rows (see `telme_hf.data.load_meld`).

    Args:
        processor: the model's `TelMEProcessor`.
        modalities: what the stage needs; the teacher stage passes `("text",)` and touches no media.
        audio_options, video_options: decode options; pass `decode_options_from_config(model.config)` so frames
            and audio match the model (the fallback is the clean 8-frame, 224-pixel, 16 kHz decoding).
        cache: a `MediaCache` so each clip is decoded once across epochs, stages and runs.
        on_bad_media: `"error"`, `"skip"` (the row is left out of the batch and logged) or `"zeros"`.
        max_media_seconds: longer media is treated as bad (the original zeroes MELD clips over 30 s).

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
        audio_options: AudioDecodeOptions | None = None,
        video_options: VideoDecodeOptions | None = None,
        cache: MediaCache | None = None,
        on_bad_media: BadMediaPolicy = "error",
        max_media_seconds: float | None = None,
    ) -> None:
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"Unknown modalities {sorted(unknown)}; choose from {MODALITIES}.")
        self.processor = processor
        self.modalities = tuple(modalities)
        self.loader = MediaLoader(
            audio_options or AudioDecodeOptions() if "audio" in modalities else None,
            video_options or VideoDecodeOptions() if "video" in modalities else None,
            cache=cache,
            on_bad_media=on_bad_media,
            max_media_seconds=max_media_seconds,
            pixel_mean=processor.image_processor.image_mean,
        )

    @property
    def bad_media_report(self):
        return self.loader.report

    def _needs(self, modality: str, row: Mapping[str, Any]) -> bool:
        return modality in self.modalities and row.get(f"{modality}_features") is None

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        conversations, waves, clips, kept = [], [], [], []
        for row in rows:
            need_audio, need_video = self._needs("audio", row), self._needs("video", row)
            loaded = self.loader.load(row, audio=need_audio, video=need_video)
            if loaded is None:  # on_bad_media="skip": the row is left out (and was logged)
                continue
            kept.append(row)
            if self._needs("text", row):
                conversations.append(row["context"])
            if need_audio:
                waves.append(loaded[0])
            if need_video:
                clips.append(loaded[1])
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
        return batch


__all__ = ["TelMEDataCollator", "decode_options_from_config", "MODALITIES", "PASSTHROUGH_COLUMNS"]
