# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Trainers for TelME's three stages, one part of the model trained at a time.

- stage `teacher`: the text teacher with cross-entropy;
- stages `audio` / `video`: a student with CE + α·L_response + β·L_feature, the teacher frozen (eval mode);
- stage `fusion`: only the ASF fusion, every encoder frozen, on cached features when given.

Everything else in the model is frozen (`requires_grad=False`) and kept in eval mode, so dropout and SpecAugment
never touch a part that is not being trained. The losses are the pure functions of `telme_hf.training.losses`.

Precision is the stage's own (`args.precision`, resolved by `telme_hf.training.arguments.stage_precision`): the trainer
enters autocast around every forward itself and owns the grad scaler of an fp16 stage, so a process that trains
several stages on one model object gives each its own precision (accelerate wraps a model's forward once, at the
first `prepare`, and makes no scaler for fp16 on a CPU). What the steps really ran in is recorded by
:class:`PrecisionMonitor`: the autocast dtype seen inside the model's forward, the final loss scale and the skipped
steps.

`recipe="reference"` reproduces the original training loop's optimisation, each difference one small override:
its linear schedule sized in samples but stepped per batch (`original_linear_schedule`), weight decay on every
parameter (`get_decay_parameter_names`), gradient clipping on the loss-scaled gradients under fp16 (the scaler is
unscaled before the clip only in the clean recipe, `training_step`), and evaluation without autocast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from torch.nn import functional as F
from transformers import Trainer, TrainerCallback

from ..data.frozen_outputs import FEATURE_ENCODER_COLUMNS, TEACHER_COLUMNS
from ..data.media_cache import MediaCache, as_media_cache
from ..modeling import TelMEForEmotionRecognition
from ..modeling.pipeline_telme import TelMEDataCollator
from .arguments import STAGES, TelMETrainingArguments
from .losses import student_distillation_loss
from .plan import stage_precision
from .progress import StageProgressCallback
from .recipe import original_linear_schedule


STAGE_PARTS = {"teacher": "text_teacher", "audio": "audio_student", "video": "video_student", "fusion": "fusion"}
STAGE_MODALITIES = {"teacher": ("text",), "audio": ("audio",), "video": ("video",), "fusion": ("text", "audio", "video")}


class TrainingCollator(TelMEDataCollator):
    """The model's collator for training: it also passes the cached teacher outputs (`TEACHER_COLUMNS`) through
    for distillation, and takes a `MediaCache` or its folder as `cache`.

    Rows with the audio student's feature-encoder outputs (`FEATURE_ENCODER_COLUMNS`, kept by
    `add_feature_encoder_outputs` for a stage whose feature encoder is frozen) get them, padded, as `input_values`
    `(batch, channels, frames)` instead of their waveform, and an `audio_attention_mask` of their waveforms'
    lengths: the mask the student would have had.

    Example:

    ```python
    >>> collator = TrainingCollator(processor, ("audio",), cache="cache/media")  # doctest: +SKIP
    ```
    """

    passthrough_columns = (*TelMEDataCollator.passthrough_columns, *TEACHER_COLUMNS)

    def __init__(self, processor, modalities: Sequence[str] = ("text", "audio", "video"),
                 cache: MediaCache | str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(processor, modalities, cache=as_media_cache(cache), **kwargs)

    def __call__(self, rows):
        files, samples = ([row.get(column) for row in rows] for column in FEATURE_ENCODER_COLUMNS)
        if "audio" not in self.modalities or any(file is None for file in files):
            return super().__call__(rows)
        modalities, self.modalities = self.modalities, tuple(m for m in self.modalities if m != "audio")
        try:  # everything else as usual: text, labels, the teacher's outputs
            batch = super().__call__(rows)
        finally:
            self.modalities = modalities
        outputs = [np.load(file) for file in files]
        padded = np.zeros((len(outputs), outputs[0].shape[0], max(o.shape[1] for o in outputs)), dtype=np.float32)
        mask = np.zeros((len(outputs), max(samples)), dtype=np.int64)
        for index, (output, length) in enumerate(zip(outputs, samples)):
            padded[index, :, :output.shape[1]] = output
            mask[index, :length] = 1
        batch["input_values"], batch["audio_attention_mask"] = torch.from_numpy(padded), torch.from_numpy(mask)
        return batch


def _given(input_values: torch.Tensor) -> torch.Tensor:
    return input_values


@contextlib.contextmanager
def feature_encoder_outputs_given(model: TelMEForEmotionRecognition):
    """Inside the block the audio student's convolutional feature encoder returns its input: the batch's
    `input_values` are its outputs already (`TrainingCollator` with `FEATURE_ENCODER_COLUMNS`). The weights stay
    where they are, so checkpoints written meanwhile are whole; a `forward` set on the module before (a hook's
    wrapper) is put back after."""
    feature_encoder = model.audio_student.encoder.feature_extractor
    earlier = vars(feature_encoder).get("forward")
    feature_encoder.forward = _given
    try:
        yield
    finally:
        if earlier is None:
            del feature_encoder.forward
        else:
            feature_encoder.forward = earlier


PRECISION_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def release_from_accelerate(model: torch.nn.Module) -> None:
    """Undo what an earlier `accelerator.prepare` left on a model object: its autocast-wrapped `forward` and the flag
    that makes the next accelerator skip the model, so that the next stage is prepared afresh."""
    if "_original_forward" in model.__dict__:
        extract_model_from_parallel(model, keep_fp32_wrapper=False)
    model.__dict__.pop("_is_accelerate_prepared", None)


class PrecisionMonitor(TrainerCallback):
    """What a stage's training steps really ran in: the autocast dtype seen inside the model's forward (a forward
    pre-hook on the trained part's classifier, training steps only), the grad scaler's final scale and the optimizer steps it skipped.

    A skipped step is read from the scale: torch's `GradScaler` lowers it exactly when a step found inf/NaN gradients
    (accelerate's `step_was_skipped` misses the skips of a fused optimizer, which skips inside its own kernel).
    """

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self.autocast_dtypes: set[str] = set()
        self.scaler: torch.amp.GradScaler | None = None
        self.skipped_steps = 0
        self._scale: float | None = None

    def observe_forward(self, module: torch.nn.Module, args: Any) -> None:
        if module.training:
            dtype = (torch.get_autocast_dtype(self.device_type) if torch.is_autocast_enabled(self.device_type)
                     else torch.float32)
            self.autocast_dtypes.add(str(dtype).removeprefix("torch."))

    def on_train_begin(self, args, state, control, **kwargs):
        self._scale = None if self.scaler is None else float(self.scaler.get_scale())

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.scaler is None:
            return
        scale = float(self.scaler.get_scale())
        if scale < self._scale:
            self.skipped_steps += 1
        self._scale = scale

    def report(self) -> dict[str, Any]:
        """`{"autocast_dtype": "float16", "grad_scaler": {"final_scale", "skipped_steps"}}` (no scaler: `None`);
        several dtypes in one stage are joined with `+` (it never should happen)."""
        scaler = None if self.scaler is None else {"final_scale": float(self.scaler.get_scale()),
                                                   "skipped_steps": self.skipped_steps}
        return {"autocast_dtype": "+".join(sorted(self.autocast_dtypes)) or None, "grad_scaler": scaler}


class ScheduleEveryBatch(TrainerCallback):
    """The original steps its schedule after every batch, also when the grad scaler skipped the optimizer step; the
    Trainer leaves it for the next real step. Added for the reference recipe's fp16 stages."""

    def on_optimizer_step(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if getattr(optimizer, "step_was_skipped", False):
            lr_scheduler.step()


def freeze_all_but(model: TelMEForEmotionRecognition, stage: str, freeze_feature_encoder: bool = False) -> None:
    """Leave only the stage's part trainable and put every other part in eval mode; in the audio stage, with
    `freeze_feature_encoder`, the student's convolutional feature encoder stays frozen too."""
    trained = STAGE_PARTS[stage]
    for name, part in model.named_children():
        part.requires_grad_(name == trained)
        if name != trained:
            part.eval()
    if stage == "audio":
        feature_encoder = model.audio_student.encoder.feature_extractor
        feature_encoder.requires_grad_(not freeze_feature_encoder)
        # transformers' flag: a frozen feature encoder runs without building a graph (no backward through it).
        feature_encoder._requires_grad = not freeze_feature_encoder


class TelMEStageTrainer(Trainer):
    """Shared set-up: freezes all but the stage's part; `compute_loss` returns the stage's logits for evaluation."""

    stage: str = ""

    def __init__(self, model: TelMEForEmotionRecognition, args: TelMETrainingArguments, **kwargs: Any) -> None:
        if self.stage and args.stage != self.stage:
            raise ValueError(f"{type(self).__name__} trains the {self.stage!r} stage but args.stage={args.stage!r}.")
        freeze_all_but(model, args.stage, args.freeze_feature_encoder)
        release_from_accelerate(model)
        self.precision = stage_precision(args, args.stage)  # already resolved in a run's stage arguments
        super().__init__(model=model, args=args, **kwargs)
        StageProgressCallback.install(self, args.stage)
        self.precision_monitor = PrecisionMonitor(self.args.device.type)
        self.add_callback(self.precision_monitor)
        if self._reference and self.precision == "fp16":
            self.add_callback(ScheduleEveryBatch())

    # --------------------------------------------------------------------------------------------- precision
    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if self.precision == "fp16":
            # The stage's own scaler (torch's defaults, as the original's `GradScaler()`): accelerate's mixed
            # precision stays off, so its backward scales the loss and its optimizer steps through this scaler.
            self.accelerator.scaler = torch.amp.GradScaler(self.accelerator.device.type)

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        dtype = PRECISION_DTYPES[self.precision]
        if self._reference and not self.model.training:
            dtype = torch.float32  # the original evaluates without autocast
        # Entered explicitly even for fp32, so that no autocast around the trainer leaks into an fp32 stage.
        return torch.autocast(self.args.device.type, dtype=dtype, enabled=dtype is not torch.float32,
                              cache_enabled=cache_enabled)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        scaler = self.accelerator.scaler
        if scaler is not None and not self._reference and self.accelerator.sync_gradients:
            # The clean recipe clips the true gradients: unscale before the Trainer's clip. The reference recipe
            # leaves them scaled, as the original's `clip_grad_norm_` before `scaler.step` does.
            scaler.unscale_(getattr(self.optimizer, "optimizer", self.optimizer))
        return loss

    def train(self, *args: Any, **kwargs: Any):
        self.precision_monitor.scaler = self.accelerator.scaler
        # On the trained part's classifier: called inside the model's forward, so under any autocast that wraps it.
        part = getattr(self.accelerator.unwrap_model(self.model), STAGE_PARTS[self.args.stage])
        hook = part.classifier.register_forward_pre_hook(self.precision_monitor.observe_forward)
        try:
            return super().train(*args, **kwargs)
        finally:
            hook.remove()

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
    per sample by `telme_hf.data.frozen_outputs`) or, when absent, computed on the fly without gradients. Evaluation uses the
    student's own logits and plain cross-entropy: the teacher is not needed there.
    """

    def stage_outputs(self, model, inputs):
        if self.args.stage == "audio":
            # 3-D `input_values`: the feature encoder's kept outputs (a frozen feature encoder), not waveforms.
            given = inputs["input_values"].dim() == 3
            unwrapped = self.accelerator.unwrap_model(model)
            with feature_encoder_outputs_given(unwrapped) if given else contextlib.nullcontext():
                outputs = model(input_values=inputs["input_values"],
                                audio_attention_mask=inputs.get("audio_attention_mask"))
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
                "(telme_hf.data.frozen_outputs.add_frozen_outputs with TEACHER_COLUMNS) or give the collator the 'text' modality."
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
    "PRECISION_DTYPES",
    "PrecisionMonitor",
    "TelMEStageTrainer",
    "TrainingCollator",
    "TeacherTrainer",
    "StudentDistillationTrainer",
    "FusionTrainer",
    "feature_encoder_outputs_given",
    "freeze_all_but",
    "release_from_accelerate",
    "trainer_for_stage",
]
