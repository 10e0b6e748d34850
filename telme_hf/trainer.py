# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Trainers for TelME's three stages, one part of the model trained at a time.

- stage `teacher`: the text teacher with cross-entropy;
- stages `audio` / `video`: a student with CE + α·L_response + β·L_feature, the teacher frozen (eval mode);
- stage `fusion`: only the ASF fusion, every encoder frozen, on cached features when given.

Everything else in the model is frozen (`requires_grad=False`) and kept in eval mode, so dropout and SpecAugment
never touch a part that is not being trained. The losses are the pure functions of `telme_hf.losses`.

`recipe="reference"` reproduces the original training loop's optimisation, each difference one small override:
its linear schedule sized in samples but stepped per batch (`original_linear_schedule`), weight decay on every
parameter (`get_decay_parameter_names`), and gradient clipping on the loss-scaled gradients under fp16
(`_clip_grad_norm`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F
from transformers import Trainer

from .arguments import STAGES, TelMETrainingArguments
from .losses import student_distillation_loss
from .modeling import TelMEForEmotionRecognition
from .progress import StageProgressCallback
from .recipe import original_linear_schedule


STAGE_PARTS = {"teacher": "text_teacher", "audio": "audio_student", "video": "video_student", "fusion": "fusion"}
STAGE_MODALITIES = {"teacher": ("text",), "audio": ("audio",), "video": ("video",), "fusion": ("text", "audio", "video")}


def freeze_all_but(model: TelMEForEmotionRecognition, stage: str) -> None:
    """Leave only the stage's part trainable and put every other part in eval mode."""
    trained = STAGE_PARTS[stage]
    for name, part in model.named_children():
        part.requires_grad_(name == trained)
        if name != trained:
            part.eval()


class TelMEStageTrainer(Trainer):
    """Shared set-up: freezes all but the stage's part; `compute_loss` returns the stage's logits for evaluation."""

    stage: str = ""

    def __init__(self, model: TelMEForEmotionRecognition, args: TelMETrainingArguments, **kwargs: Any) -> None:
        if self.stage and args.stage != self.stage:
            raise ValueError(f"{type(self).__name__} trains the {self.stage!r} stage but args.stage={args.stage!r}.")
        freeze_all_but(model, args.stage)
        super().__init__(model=model, args=args, **kwargs)
        StageProgressCallback.install(self, args.stage)

    def _keep_frozen_parts_in_eval(self, model: torch.nn.Module) -> None:
        # Trainer calls model.train() before every step; the frozen parts must stay deterministic.
        unwrapped = self.accelerator.unwrap_model(model)
        for name, part in unwrapped.named_children():
            if name != STAGE_PARTS[self.args.stage]:
                part.eval()

    def stage_outputs(self, model: torch.nn.Module, inputs: dict[str, Any]):
        raise NotImplementedError

    # --------------------------------------------------------------------------- the original loop (recipe)
    @property
    def _reference(self) -> bool:
        return self.args.recipe == "reference"

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        # The original builds `torch.optim.AdamW(model.parameters(), lr)`: weight decay on every parameter, biases
        # and LayerNorms included.
        if self._reference:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self._reference and self.lr_scheduler is None:
            self.lr_scheduler = original_linear_schedule(
                optimizer or self.optimizer, len(self.train_dataset), self.args.num_train_epochs
            )
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def _clip_grad_norm(self, model: torch.nn.Module):
        # The original clips before `scaler.step` without `scaler.unscale_`: under fp16 the norm-10 clip acts on the
        # loss-scaled gradients (after unscaling the norm is at most 10 / scale). Without a scaler this is a plain
        # clip, like the clean recipe's.
        if self._reference:
            return torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.grad is not None], self.args.max_grad_norm
            )
        return super()._clip_grad_norm(model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._keep_frozen_parts_in_eval(model)
        loss, logits = self.stage_outputs(model, inputs)
        return (loss, {"logits": logits}) if return_outputs else loss


class TeacherTrainer(TelMEStageTrainer):
    """Stage 1: the text teacher with plain cross-entropy."""

    stage = "teacher"

    def stage_outputs(self, model, inputs):
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return F.cross_entropy(outputs.logits, inputs["labels"]), outputs.logits


class StudentDistillationTrainer(TelMEStageTrainer):
    """Stage 2: an audio or video student distilled from the frozen text teacher.

    The teacher's logits and features are read from the batch (`teacher_logits`, `teacher_features`, computed once
    per sample by `telme_hf.caching`) or, when absent, computed on the fly without gradients. Evaluation uses the
    student's own logits and plain cross-entropy: the teacher is not needed there.
    """

    def stage_outputs(self, model, inputs):
        if self.args.stage == "audio":
            outputs = model(input_values=inputs["input_values"], audio_attention_mask=inputs.get("audio_attention_mask"))
            student_logits, student_features = outputs.audio_logits, outputs.audio_features
        else:
            outputs = model(pixel_values=inputs["pixel_values"])
            student_logits, student_features = outputs.video_logits, outputs.video_features
        labels = inputs["labels"]
        if not model.training:
            return F.cross_entropy(student_logits, labels), student_logits
        teacher_logits, teacher_features = self.teacher_outputs(model, inputs)
        losses = student_distillation_loss(
            student_logits,
            teacher_logits,
            student_features,
            teacher_features,
            labels,
            alpha=self.args.response_weight,
            beta=self.args.feature_weight,
            temperature=self.args.response_temperature,
            feature_temperature=self.args.feature_temperature,
        )
        return losses["loss"], student_logits

    def teacher_outputs(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        if inputs.get("teacher_logits") is not None and inputs.get("teacher_features") is not None:
            return inputs["teacher_logits"], inputs["teacher_features"]
        if inputs.get("input_ids") is None:
            raise ValueError(
                "The student stage needs the teacher's outputs: add `teacher_logits`/`teacher_features` columns "
                "(telme_hf.caching.add_frozen_outputs with TEACHER_COLUMNS) or give the collator the 'text' modality."
            )
        teacher = self.accelerator.unwrap_model(model).text_teacher
        with torch.no_grad():
            features = teacher(inputs["input_ids"], inputs["attention_mask"])
            return teacher.classifier(features), features


class FusionTrainer(TelMEStageTrainer):
    """Stage 3: only the fusion, on precomputed features when the batch carries them (seconds per epoch)."""

    stage = "fusion"

    def stage_outputs(self, model, inputs):
        inputs = {key: value for key, value in inputs.items() if not key.startswith("teacher_")}
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        if outputs.fusion_logits is None:
            raise ValueError("The fusion stage needs all three modalities (inputs or precomputed features).")
        return F.cross_entropy(outputs.fusion_logits, labels), outputs.fusion_logits


def trainer_for_stage(stage: str) -> type[TelMEStageTrainer]:
    """The trainer class of a stage."""
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {STAGES}.")
    return {"teacher": TeacherTrainer, "audio": StudentDistillationTrainer, "video": StudentDistillationTrainer,
            "fusion": FusionTrainer}[stage]


__all__ = [
    "STAGES",
    "STAGE_MODALITIES",
    "TelMETrainingArguments",
    "TelMEStageTrainer",
    "TeacherTrainer",
    "StudentDistillationTrainer",
    "FusionTrainer",
    "freeze_all_but",
    "trainer_for_stage",
]
