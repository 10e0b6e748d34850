# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""A run's plan: everything derived from its options, resolved once before any data is read.

:func:`plan_run` checks the options that only make sense together (a corpus folder, a checkpoint to start a later
stage from) and resolves the corpus folder, the caches, the starting checkpoint and each stage's own
`TrainingArguments` (its learning rate, epochs, precision, ... as the recipe sets them). The run's steps read the
plan; none of them recomputes a value from the options.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .arguments import STAGES, DataArguments, ModelArguments, TelMETrainingArguments
from .recipe import REFERENCE_PRECISION


@dataclass(frozen=True)
class RunPlan:
    """One run (one seed), resolved.

    Attributes:
        model_args, data_args, training_args: the options as given (validated).
        output_dir: where the run writes everything.
        data_root: the corpus folder (for the synthetic corpus, where it is generated).
        cache_dir: the decoded media (`media/`) and the frozen parts' outputs (`frozen/`).
        init_from: the checkpoint the model starts from, or `None` for the preset's backbones.
        stages: the stages to train, in the method's order.
        stage_args: each stage's own `TelMETrainingArguments`.
        modalities: what the corpus loader reads (`text`, and `audio`/`video` when a stage needs media).
    """

    model_args: ModelArguments
    data_args: DataArguments
    training_args: TelMETrainingArguments
    output_dir: Path
    data_root: str | None
    cache_dir: Path
    init_from: str | None
    stages: tuple[str, ...]
    stage_args: dict[str, TelMETrainingArguments]
    modalities: tuple[str, ...]

    @property
    def dataset(self) -> str:
        return self.data_args.dataset

    @property
    def needs_media(self) -> bool:
        return "audio" in self.modalities

    @property
    def reference(self) -> bool:
        return self.training_args.recipe == "reference"

    @property
    def processor_overrides(self) -> dict[str, Any]:
        """The processor options the run's command line sets (saved with the checkpoint's processor)."""
        seconds = self.data_args.max_media_seconds
        return {} if seconds is None else {"max_media_seconds": seconds}


def plan_run(model_args: ModelArguments, data_args: DataArguments,
             training_args: TelMETrainingArguments) -> RunPlan:
    """Check the options together and resolve the run; a `ValueError` naming the option and the fix.

    With `seeds`, this plans the run of the first seed's folder; :func:`plan_seed_runs` gives one plan per seed.

    Example:

    ```python
    >>> from telme_hf.training.arguments import parse_recipe_args
    >>> plan = plan_run(*parse_recipe_args(["output_dir=/tmp/run", "fusion_epochs=3"]))
    >>> plan.data_root, plan.stage_args["fusion"].num_train_epochs
    ('/tmp/run/synthetic-corpus', 3.0)
    ```
    """
    for arguments in (model_args, data_args, training_args):
        arguments.validate()  # once more: a value may have been set after construction
    output_dir = Path(training_args.output_dir)
    if data_args.dataset != "synthetic" and not data_args.data_root:
        raise ValueError(f"dataset={data_args.dataset} needs data_root (the folder of its CSVs and media).")
    if data_args.data_root and not Path(data_args.data_root).is_dir():
        if data_args.dataset == "synthetic":
            # Never a new corpus at a mistyped path: generating is for the default place, or asked for.
            raise ValueError(f"data_root={data_args.data_root} does not exist. Generate a synthetic corpus there with "
                             f"`telme make-corpus {data_args.data_root}`, or leave data_root unset to generate one in "
                             f"{output_dir / 'synthetic-corpus'}.")
        raise ValueError(f"data_root={data_args.data_root} is not a folder; pass the {data_args.dataset} corpus folder.")
    stages = tuple(stage for stage in STAGES if stage in training_args.stages)
    init_from = model_args.init_from
    if init_from and not Path(init_from).exists() and not init_from.count("/") == 1:
        raise ValueError(f"init_from={init_from} is neither a folder nor a Hub id.")
    if "teacher" not in stages and not init_from:
        for folder in training_args.run_dirs():
            if not (folder / "final" / "config.json").exists():
                raise ValueError(
                    f"Stages {list(stages)} build on a trained teacher (and students): pass init_from=<checkpoint> "
                    f"or run the earlier stages first (their result is read from {folder / 'final'})."
                )
        init_from = str(output_dir / "final")
    data_root = data_args.data_root
    if not data_root and data_args.dataset == "synthetic":
        data_root = str(output_dir / "synthetic-corpus")
    needs_media = any(stage != "teacher" for stage in stages)
    return RunPlan(
        model_args=model_args, data_args=data_args, training_args=training_args, output_dir=output_dir,
        data_root=data_root, cache_dir=Path(data_args.cache_dir or output_dir / "cache"), init_from=init_from,
        stages=stages, stage_args={stage: stage_arguments(training_args, stage) for stage in stages},
        modalities=("text", "audio", "video") if needs_media else ("text",),
    )


def plan_seed_runs(plan: RunPlan) -> list[RunPlan]:
    """One plan per seed of `seeds`, each writing into `output_dir/seed-N/` and sharing the corpus and the caches."""
    runs = []
    for seed, folder in zip(plan.training_args.seeds, plan.training_args.run_dirs()):
        training_args = dataclasses.replace(plan.training_args, seed=seed, output_dir=str(folder), seeds=None)
        data_args = dataclasses.replace(plan.data_args, cache_dir=str(plan.cache_dir), data_root=plan.data_root)
        runs.append(plan_run(plan.model_args, data_args, training_args))
    return runs


def stage_value(training_args: TelMETrainingArguments, name: str, stage: str) -> Any:
    """A stage's learning rate or epochs: its own option (`fusion_epochs`, ...), else the run's (`learning_rate`,
    `num_train_epochs`)."""
    own = getattr(training_args, f"{stage}_{name}")
    return own if own is not None else getattr(training_args, "num_train_epochs" if name == "epochs" else name)


def stage_precision(training_args: TelMETrainingArguments, stage: str) -> str:
    """The precision a stage trains in: `"no"` (fp32), `"fp16"` or `"bf16"`.

    The stage's own option (`audio_precision`, ...) wins; then `precision` unless it is `"auto"`; then the recipe:
    `reference` trains the teacher in fp32 and the students and fusion under fp16 (on any device: torch has CPU
    autocast and grad scaling), `clean` takes `accelerate launch --mixed_precision fp16|bf16`, else bf16 on a GPU
    that supports it, else fp32.

    Example:

    ```python
    >>> args = TelMETrainingArguments(output_dir="x", recipe="reference", fusion_precision="bf16")
    >>> [stage_precision(args, stage) for stage in STAGES]
    ['no', 'fp16', 'fp16', 'bf16']
    ```
    """
    own = getattr(training_args, f"{stage}_precision")
    if own is not None:
        return own
    if training_args.precision != "auto":
        return training_args.precision
    if training_args.recipe == "reference":
        return REFERENCE_PRECISION[stage]
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower()
    if launched in ("fp16", "bf16"):
        return launched
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def recomputes_frozen_outputs(training_args: TelMETrainingArguments) -> bool:
    """Whether the student and fusion stages recompute the frozen parts' outputs for every batch (`frozen_outputs`)."""
    if training_args.frozen_outputs == "auto":
        return training_args.recipe == "reference"
    return training_args.frozen_outputs == "recomputed"


def stage_arguments(training_args: TelMETrainingArguments, stage: str) -> TelMETrainingArguments:
    """The `TrainingArguments` of one stage, derived from the run's (which stay as they are)."""
    reference = training_args.recipe == "reference"
    args = dataclasses.replace(
        training_args,
        output_dir=str(Path(training_args.output_dir) / stage),
        stage=stage,
        num_train_epochs=float(stage_value(training_args, "epochs", stage)),
        learning_rate=float(stage_value(training_args, "learning_rate", stage)),
        # The original's `torch.optim.AdamW`; the clean recipe keeps the Trainer's (fused where available).
        optim="adamw_torch" if reference else training_args.optim,
        # The run pushes its final/ once; a stage's checkpoints never go to the Hub.
        push_to_hub=False,
        seeds=None,
        dataloader_pin_memory=training_args.dataloader_pin_memory and torch.cuda.is_available(),
        # The stage's trainer runs its own autocast and grad scaler (`telme_hf.training.trainer`): accelerate's would be
        # fixed by the first stage that prepares the model, and does nothing for fp16 on a CPU.
        precision=stage_precision(training_args, stage),
        bf16=False,
        fp16=False,
    )
    # `TrainingArguments` takes the mixed precision from `accelerate launch` when neither flag is set.
    args.mixed_precision = "no"
    return args


__all__ = ["RunPlan", "plan_run", "plan_seed_runs", "recomputes_frozen_outputs", "stage_arguments",
           "stage_precision", "stage_value"]
