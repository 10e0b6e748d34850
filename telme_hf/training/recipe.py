# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The two training recipes: `clean` (the default) and `reference` (the original training scripts).

`reference` differs from `clean` in the named pieces below and in three `TelMEStageTrainer` overrides (the
sample-counted schedule, weight decay on every parameter, clipping on loss-scaled gradients, see
`telme_hf.training.trainer`). Used with the MELD or IEMOCAP corpus, it also takes the original scripts' per-stage learning
rates, epochs and batch size (:data:`ORIGINAL_HYPERPARAMETERS`); on the synthetic corpus (`tiny.yaml`) the config's
own values stay, since from-scratch tiny backbones need other rates.

| piece | clean | reference (the original) |
| --- | --- | --- |
| schedule | linear, `warmup_ratio` of the real steps | warm-up `len(train)` and total `len(train) * epochs` *steps*, stepped per batch |
| weight decay | not on biases and norms | on every parameter |
| head and fusion init | `post_init`: N(0, 0.02), zero biases | PyTorch defaults (:func:`reset_heads_to_pytorch_defaults`) |
| new speaker-token rows | transformers' mean resizing | N(0, 0.02), as transformers 4.27 did |
| precision | `precision` (`auto`: bf16 on a GPU, fp32 on a CPU) | teacher fp32; students and fusion fp16 autocast + grad scaler |
| clipping | after unscaling | on the scaled gradients (under fp16) |
| grad scaler | one per fp16 stage | one for both students: the video student's loop starts from the audio student's scaler |
| frozen outputs | cached once per sample | recomputed for every training batch (`frozen_outputs`) |
| optimizer | `adamw_torch_fused` where available | `torch.optim.AdamW` (`adamw_torch`) |
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from ..logging import get_logger


logger = get_logger("telme_hf")

RECIPES = ("clean", "reference")

# The original trains the teacher in fp32 and the students and the fusion under `torch.cuda.amp.autocast()` (fp16)
# with a `GradScaler`; `precision=auto` under `recipe=reference` takes these (see `telme_hf.training.arguments.stage_precision`).
REFERENCE_PRECISION = {"teacher": "no", "audio": "fp16", "video": "fp16", "fusion": "fp16"}

def original_linear_schedule(
    optimizer: torch.optim.Optimizer, num_samples: int, num_epochs: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """The original's schedule: `get_linear_schedule_with_warmup` sized in *samples*, stepped once per *batch*.

    The original passes `num_warmup_steps=len(train_dataset)` and `num_training_steps=len(train_dataset) * epochs`
    and steps the scheduler after every batch. At batch size 4 the warm-up therefore lasts about 4 epochs and
    training ends a quarter of the way through the nominal decay (the rate ends at ≈0.83x its peak for 10 epochs).

    Example:

    ```python
    >>> optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> schedule = original_linear_schedule(optimizer, num_samples=8, num_epochs=10)
    >>> [round(schedule.lr_lambdas[0](step), 3) for step in (0, 4, 8, 20)]
    [0.0, 0.5, 1.0, 0.833]
    ```
    """
    num_samples = int(num_samples)
    return get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=num_samples, num_training_steps=int(round(num_samples * num_epochs))
    )


def reset_heads_to_pytorch_defaults(model: nn.Module) -> list[str]:
    """Re-initialise every head and the fusion as PyTorch builds them, as in the original (which has no `post_init`).

    `nn.Linear`/`nn.LayerNorm` get their own `reset_parameters()`; `nn.MultiheadAttention` then its
    `_reset_parameters()` (Xavier in-projection, zero biases, the output projection's bias zeroed), in that order,
    so that the attention ends exactly as a freshly built PyTorch module. Backbones are left alone.

    Returns:
        The names of the modules reset.
    """
    heads = {
        "text_teacher.projection": model.text_teacher.projection,
        "text_teacher.classifier": model.text_teacher.classifier,
        "audio_student.projection": model.audio_student.projection,
        "audio_student.classifier": model.audio_student.classifier,
        "video_student.projection": model.video_student.projection,
        "video_student.classifier": model.video_student.classifier,
        "fusion": model.fusion,
    }
    reset = []
    attentions = []
    for prefix, head in heads.items():
        for name, module in head.named_modules(prefix=prefix):
            if isinstance(module, nn.MultiheadAttention):
                attentions.append((name, module))
            elif isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()
                reset.append(name)
    for name, module in attentions:
        module._reset_parameters()
        reset.append(name)
    return reset


def grad_scaler_state(trainer: Any) -> dict[str, Any] | None:
    """The grad scaler's state after a stage (`None` without fp16), for :func:`continue_grad_scaler`."""
    scaler = getattr(trainer.accelerator, "scaler", None)
    return scaler.state_dict() if scaler is not None else None


def continue_grad_scaler(trainer: Any, state: dict[str, Any] | None) -> bool:
    """Start a stage's grad scaler where the previous one ended: the original trains the audio and the video student
    in one loop with one `GradScaler`. Returns whether a state was carried over."""
    scaler = getattr(trainer.accelerator, "scaler", None)
    if scaler is None or not state:
        return False
    scaler.load_state_dict(state)
    return True


__all__ = [
    "RECIPES",
    "continue_grad_scaler",
    "grad_scaler_state",
    "original_linear_schedule",
    "REFERENCE_PRECISION",
    "reset_heads_to_pytorch_defaults",
]
