# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The options of a TelME training run, as the dataclasses `HfArgumentParser` reads (like transformers' examples).

- :class:`ModelArguments`: which model the run starts from (a preset's backbones, or a checkpoint);
- :class:`DataArguments`: which corpus, and what to do with its bad media;
- :class:`TelMETrainingArguments`: every `TrainingArguments` option plus TelME's (the stages, the recipe, the seeds,
  per-stage learning rates and epochs, the distillation losses' weights).

`recipes/distill.py` parses the three from a YAML config and command-line overrides (:func:`parse_recipe_args`),
checks them together before any data is read (:func:`check_run`), and never changes them afterwards: each stage
gets its own `TrainingArguments` from :func:`stage_arguments`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from ..modeling.bad_media_telme import BAD_MEDIA_POLICIES
from ..data.registry import CORPUS_NAMES
from .recipe import RECIPES, REFERENCE_PRECISION, original_hyperparameters


STAGES = ("teacher", "audio", "video", "fusion")
PRESETS = ("meld", "iemocap", "tiny")
PRECISIONS = ("auto", "no", "fp16", "bf16")
FROZEN_OUTPUTS = ("auto", "cached", "recomputed")


@dataclass
class ModelArguments:
    """Which model a run starts from."""

    preset: str = field(default="tiny", metadata={
        "help": "meld or iemocap (the paper's backbones and fusion settings) or tiny (random tiny backbones).",
        "choices": list(PRESETS)})
    reference_behaviour: bool = field(default=False, metadata={
        "help": "Switch on every behaviour of the original implementation (data and model; see the README)."})
    text_model: str | None = field(default=None, metadata={
        "help": "Text backbone (Hub id or folder) instead of the preset's roberta-large."})
    audio_model: str | None = field(default=None, metadata={
        "help": "Audio backbone instead of the preset's facebook/data2vec-audio-base-960h."})
    video_model: str | None = field(default=None, metadata={
        "help": "Video backbone instead of the preset's facebook/timesformer-base-finetuned-k400."})
    tokenizer: str | None = field(default=None, metadata={
        "help": "Tokenizer (Hub id or folder); default: the text backbone's."})
    random_weights: bool = field(default=False, metadata={
        "help": "Build the preset's architecture with random weights and a tokenizer trained on the corpus, offline "
                "(benchmarks and GPU checks at full size; the tiny preset always is)."})
    tokenizer_vocab_size: int = field(default=1000, metadata={
        "help": "Vocabulary of the BPE tokenizer trained on the corpus for the tiny preset."})
    init_from: str | None = field(default=None, metadata={
        "help": "A checkpoint to start from (e.g. an earlier run's final/); later stages alone default to the "
        "run's own final/."})

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {self.preset!r}.")


@dataclass
class DataArguments:
    """Which corpus a run reads, and what to do with its bad media."""

    dataset: str = field(default="synthetic", metadata={
        "help": "meld, iemocap or synthetic (the embedded demo corpus).", "choices": list(CORPUS_NAMES)})
    data_root: str | None = field(default=None, metadata={
        "help": "The corpus folder (MELD.Raw, IEMOCAP_full_release); for synthetic, where it is generated "
        "(default OUTPUT_DIR/synthetic-corpus)."})
    on_bad_media: str = field(default="error", metadata={
        "help": "A missing, unreadable or too long clip: error, skip (drop the utterance) or zeros.",
        "choices": list(BAD_MEDIA_POLICIES)})
    max_media_seconds: float | None = field(default=None, metadata={
        "help": "Media longer than this is bad media (saved in the checkpoint's processor); default: the "
        "processor's."})
    cache_dir: str | None = field(default=None, metadata={
        "help": "Where decoded media and frozen outputs are cached (default OUTPUT_DIR/cache)."})
    synthetic_dialogues: int = field(default=120, metadata={"help": "Dialogues of a generated synthetic corpus."})
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of a generated synthetic corpus."})

    def __post_init__(self) -> None:
        if self.dataset not in CORPUS_NAMES:
            raise ValueError(f"dataset must be one of {list(CORPUS_NAMES)}, got {self.dataset!r}.")
        if self.on_bad_media not in BAD_MEDIA_POLICIES:
            raise ValueError(f"on_bad_media must be one of {list(BAD_MEDIA_POLICIES)}, got {self.on_bad_media!r}.")
        if self.max_media_seconds is not None and not self.max_media_seconds > 0:
            raise ValueError(f"max_media_seconds must be positive, got {self.max_media_seconds}.")


def _per_stage(what: str, stage: str) -> Any:
    run_option = {"Epochs": "num_train_epochs", "Learning rate": "learning_rate", "Precision": "precision"}[what]
    metadata = {"help": f"{what} of the {stage} stage (default: {run_option}"
                        + (", or the recipe's for this stage)." if what == "Precision" else ").")}
    if what == "Precision":
        metadata["choices"] = list(PRECISIONS[1:])
    return field(default=None, metadata=metadata)


@dataclass
class TelMETrainingArguments(TrainingArguments):
    r"""
    `TrainingArguments` for a TelME run and for each of its stages.

    Besides every `TrainingArguments` option (the defaults below are TelME's: best dev epoch by weighted F1,
    evaluated and saved every epoch):

    Args:
        stage (`str`, *optional*, defaults to `"teacher"`):
            The part one `Trainer` trains: `"teacher"`, `"audio"`, `"video"` or `"fusion"` (set per stage).
        stages (`list[str]`, *optional*, defaults to all four):
            The stages a run trains, in order.
        recipe (`str`, *optional*, defaults to `"clean"`):
            `"reference"` reproduces the original training loop (see `telme_hf.training.recipe`).
        seeds (`list[int]`, *optional*):
            Run the whole recipe once per seed into `output_dir/seed-N/` and summarise them.
        teacher_learning_rate, audio_learning_rate, video_learning_rate, fusion_learning_rate (`float`, *optional*):
            A stage's own learning rate (default `learning_rate`).
        teacher_epochs, audio_epochs, video_epochs, fusion_epochs (`float`, *optional*):
            A stage's own epochs (default `num_train_epochs`).
        precision (`str`, *optional*, defaults to `"auto"`):
            Every stage's precision unless it has its own: `"no"` (fp32), `"fp16"` (autocast and a grad scaler),
            `"bf16"` (autocast), or `"auto"`: the recipe's choice (`reference`: fp32 teacher, fp16 students and
            fusion; `clean`: `accelerate launch --mixed_precision fp16|bf16` if given, else bf16 on a GPU that
            supports it and fp32 otherwise, since bf16 on a CPU is ~20x slower). See :func:`stage_precision`.
        teacher_precision, audio_precision, video_precision, fusion_precision (`str`, *optional*):
            A stage's own precision (`"no"`, `"fp16"` or `"bf16"`); wins over `precision` and the recipe.
        frozen_outputs (`str`, *optional*, defaults to `"auto"`):
            The frozen parts' outputs a stage learns from (the teacher's in the student stages, every encoder's in
            the fusion stage): `"cached"` once per sample before the stage, or `"recomputed"` for every training
            batch, as the original does. `"auto"`: recomputed under `recipe=reference`, cached otherwise.
        keep_checkpoints (`bool`, *optional*, defaults to `False`):
            Keep each stage's epoch checkpoints (each is the whole model plus optimizer state) after its best epoch
            is loaded.
        response_weight (`float`, *optional*, defaults to 1.0):
            α, weight of the DIST response loss in the student stages (original code: MELD 1, IEMOCAP 0.1).
        response_temperature (`float`, *optional*, defaults to 4.0):
            τ of the response loss (original code: MELD 4, IEMOCAP 2; the paper states the reverse).
        feature_weight (`float`, *optional*, defaults to 1.0):
            β, weight of the feature loss.
        feature_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the feature loss's similarity softmax.
    """

    output_dir: str | None = field(default="outputs/telme", metadata={"help": "Where the run writes everything."})
    stage: str = field(default="teacher", metadata={
        "help": "The part one Trainer trains (set per stage by the run; on the command line --stage means --stages).",
        "choices": list(STAGES)})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={
        "help": "The stages to train, in order (later stages alone start from init_from or OUTPUT_DIR/final)."})
    recipe: str = field(default="clean", metadata={
        "help": "clean (the Trainer's schedule and init) or reference (the original scripts' loop; the README lists what still differs).",
        "choices": list(RECIPES)})
    seeds: list[int] | None = field(default=None, metadata={
        "help": "Run the whole recipe once per seed into OUTPUT_DIR/seed-N/ and write summary.json."})
    teacher_learning_rate: float | None = _per_stage("Learning rate", "teacher")
    audio_learning_rate: float | None = _per_stage("Learning rate", "audio")
    video_learning_rate: float | None = _per_stage("Learning rate", "video")
    fusion_learning_rate: float | None = _per_stage("Learning rate", "fusion")
    teacher_epochs: float | None = _per_stage("Epochs", "teacher")
    audio_epochs: float | None = _per_stage("Epochs", "audio")
    video_epochs: float | None = _per_stage("Epochs", "video")
    fusion_epochs: float | None = _per_stage("Epochs", "fusion")
    precision: str = field(default="auto", metadata={
        "help": "Every stage's precision unless it has its own: no (fp32), fp16 (autocast + grad scaler), bf16, or "
        "auto: the recipe's (reference: fp32 teacher, fp16 students and fusion; clean: accelerate launch "
        "--mixed_precision if fp16/bf16, else bf16 on a GPU that supports it, else fp32).",
        "choices": list(PRECISIONS)})
    teacher_precision: str | None = _per_stage("Precision", "teacher")
    audio_precision: str | None = _per_stage("Precision", "audio")
    video_precision: str | None = _per_stage("Precision", "video")
    fusion_precision: str | None = _per_stage("Precision", "fusion")
    frozen_outputs: str = field(default="auto", metadata={
        "help": "The frozen parts' outputs a stage learns from: cached (once per sample), recomputed (every "
        "training batch, as the original), or auto (recomputed under recipe=reference, else cached).",
        "choices": list(FROZEN_OUTPUTS)})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep each stage's epoch checkpoints after its best epoch is loaded."})
    response_weight: float = field(default=1.0, metadata={"help": "α: weight of the DIST response loss."})
    response_temperature: float = field(default=4.0, metadata={"help": "τ: temperature of the response loss."})
    feature_weight: float = field(default=1.0, metadata={"help": "β: weight of the feature loss."})
    feature_temperature: float = field(default=1.0, metadata={"help": "Temperature of the feature loss."})
    # TelME's defaults for Trainer options.
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (AdamW)."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs of each stage."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Training batch size per device."})
    per_device_eval_batch_size: int = field(default=16, metadata={"help": "Evaluation batch size per device."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up steps, or a ratio of the steps if < 1."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases and norms)."})
    max_grad_norm: float = field(default=10.0, metadata={"help": "Gradient clipping norm."})
    logging_steps: float = field(default=50, metadata={"help": "Log every N steps."})
    eval_strategy: IntervalStrategy | str = field(default="epoch", metadata={"help": "When to evaluate on dev (TelME: every epoch)."})
    save_strategy: SaveStrategy | str = field(default="epoch", metadata={"help": "When to save a checkpoint (TelME: every epoch)."})
    save_total_limit: int | None = field(default=1, metadata={"help": "Checkpoints kept besides the best one."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best dev epoch of each stage."})
    metric_for_best_model: str | None = field(default="weighted_f1", metadata={
        "help": "The dev metric that selects the epoch."})
    greater_is_better: bool | None = field(default=True, metadata={"help": "Higher metric_for_best_model is better."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Integrations to report to (none, all, ...)."})
    # Rows carry dialogue context and media paths that the collator reads: keep every column.
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep dataset columns for the collator."})

    def __post_init__(self) -> None:
        problems = []
        if self.stage not in STAGES:
            problems.append(f"`stage` must be one of {list(STAGES)}, got {self.stage!r}")
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown or not self.stages:
            problems.append(f"`stages` must name some of {list(STAGES)}, got {self.stages}")
        if self.recipe not in RECIPES:
            problems.append(f"`recipe` must be one of {list(RECIPES)}, got {self.recipe!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"`precision` must be one of {list(PRECISIONS)}, got {self.precision!r}")
        for stage in STAGES:
            own = getattr(self, f"{stage}_precision")
            if own is not None and own not in PRECISIONS[1:]:
                problems.append(f"`{stage}_precision` must be one of {list(PRECISIONS[1:])}, got {own!r}")
        if self.frozen_outputs not in FROZEN_OUTPUTS:
            problems.append(f"`frozen_outputs` must be one of {list(FROZEN_OUTPUTS)}, got {self.frozen_outputs!r}")
        if self.seeds is not None:
            seeds = [self.seeds] if isinstance(self.seeds, int) else list(self.seeds)
            if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
                problems.append(f"`seeds` must be a non-empty list of integers (e.g. seeds=[42,43,44]), got {self.seeds!r}")
            elif len(set(seeds)) != len(seeds):
                problems.append(f"`seeds` must not repeat a seed, got {seeds}")
            self.seeds = seeds
        for stage in STAGES:
            for name in (f"{stage}_learning_rate", f"{stage}_epochs"):
                value = getattr(self, name)
                if value is not None and not value > 0:
                    problems.append(f"`{name}` must be positive, got {value}")
        if problems:
            raise ValueError("; ".join(problems) + ".")
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
            # Several processes on a machine without GPUs (torchrun, or accelerate launch --num_processes N): they
            # must talk over gloo, which accelerate sets up for CPU processes only when asked to (use_cpu).
            self.use_cpu = True
        super().__post_init__()

    def run_dirs(self) -> list[Path]:
        """The folder of each run: `output_dir`, or `output_dir/seed-N` per seed of `seeds`."""
        root = Path(self.output_dir)
        return [root / f"seed-{seed}" for seed in self.seeds] if self.seeds else [root]


def starting_checkpoint(model_args: ModelArguments, training_args: TelMETrainingArguments) -> str | None:
    """The checkpoint a run starts from: `init_from`, or for later stages alone the run's own `final/`."""
    if model_args.init_from:
        return model_args.init_from
    if "teacher" not in training_args.stages:
        return str(Path(training_args.output_dir) / "final")
    return None


def corpus_root(data_args: DataArguments, training_args: TelMETrainingArguments) -> str | None:
    """`data_root`, or for the synthetic corpus the folder it is generated into (`output_dir/synthetic-corpus`)."""
    if data_args.data_root or data_args.dataset != "synthetic":
        return data_args.data_root
    return str(Path(training_args.output_dir) / "synthetic-corpus")


def cache_root(data_args: DataArguments, training_args: TelMETrainingArguments) -> Path:
    return Path(data_args.cache_dir or Path(training_args.output_dir) / "cache")


def check_run(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments) -> None:
    """The checks that need several options together, made before any data is read: a `ValueError` naming the
    option and the fix."""
    for arguments in (model_args, data_args, training_args):
        check_types(arguments)
    if data_args.dataset != "synthetic" and not data_args.data_root:
        raise ValueError(f"dataset={data_args.dataset} needs data_root (the folder of its CSVs and media).")
    if data_args.data_root and not Path(data_args.data_root).is_dir():
        if data_args.dataset == "synthetic":
            # Never a new corpus at a mistyped path: generating is for the default place, or asked for.
            raise ValueError(f"data_root={data_args.data_root} does not exist. Generate a synthetic corpus there with "
                             f"`telme make-corpus {data_args.data_root}`, or leave data_root unset to generate one in "
                             f"{Path(training_args.output_dir) / 'synthetic-corpus'}.")
        raise ValueError(f"data_root={data_args.data_root} is not a folder; pass the {data_args.dataset} corpus folder.")
    if "teacher" not in training_args.stages and not model_args.init_from:
        for folder in training_args.run_dirs():
            if not (folder / "final" / "config.json").exists():
                raise ValueError(
                    f"Stages {training_args.stages} build on a trained teacher (and students): pass "
                    f"init_from=<checkpoint> or run the earlier stages first (their result is read from "
                    f"{folder / 'final'})."
                )
    if model_args.init_from and not Path(model_args.init_from).exists() and not model_args.init_from.count("/") == 1:
        raise ValueError(f"init_from={model_args.init_from} is neither a folder nor a Hub id.")


_OWN_FIELDS = {
    ModelArguments: [f.name for f in dataclasses.fields(ModelArguments)],
    DataArguments: [f.name for f in dataclasses.fields(DataArguments)],
}


def check_types(arguments: Any) -> None:
    """A `ValueError` naming an option whose value is not of its declared type (for arguments built in Python,
    which argparse has not checked): e.g. `learning_rate="fast"` is refused here, not after the media pass."""
    import typing

    hints = typing.get_type_hints(type(arguments))
    names = _OWN_FIELDS.get(type(arguments)) or [
        name for name in ("stages", "recipe", "seeds", "precision", "keep_checkpoints", "response_weight",
                          "response_temperature", "feature_weight", "feature_temperature", "learning_rate",
                          "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
                          "weight_decay", "max_grad_norm", "seed", *(f"{s}_{n}" for s in STAGES
                                                                     for n in ("learning_rate", "epochs")))
        if name in hints]
    for name in names:
        value, expected = getattr(arguments, name), hints[name]
        union = typing.get_origin(expected) in (typing.Union, getattr(__import__("types"), "UnionType", None))
        allowed = typing.get_args(expected) if union else (expected,)
        if value is None and type(None) in allowed:
            continue
        plain = [getattr(kind, "__origin__", kind) for kind in allowed if kind is not type(None)]
        ok = any(isinstance(value, kind) for kind in plain if isinstance(kind, type))
        if float in plain and isinstance(value, int):
            ok = True
        if isinstance(value, bool) and bool not in plain:
            ok = False
        if not ok:
            wanted = " or ".join(getattr(kind, "__name__", str(kind)) for kind in plain)
            raise ValueError(f"`{name}` must be {wanted}, got {type(value).__name__} {value!r}.")


def stage_value(training_args: TelMETrainingArguments, dataset: str, name: str, stage: str | None = None) -> Any:
    """A training setting as a stage uses it: the original scripts' value under `recipe=reference` on MELD or
    IEMOCAP (`telme_hf.training.recipe.ORIGINAL_HYPERPARAMETERS`), else the stage's own option (`fusion_epochs`, ...), else
    the run's (`num_train_epochs`, `learning_rate`, ...)."""
    original = original_hyperparameters(training_args.recipe, dataset)
    if stage is not None and name in ("learning_rate", "epochs"):
        if name in original:
            return original[name][stage]
        own = getattr(training_args, f"{stage}_{name}")
        return own if own is not None else getattr(training_args, "num_train_epochs" if name == "epochs" else name)
    return original.get(name, getattr(training_args, name))


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


def stage_arguments(training_args: TelMETrainingArguments, dataset: str, stage: str) -> TelMETrainingArguments:
    """The `TrainingArguments` of one stage, derived from the run's (which stay as they are)."""
    reference = training_args.recipe == "reference"
    args = dataclasses.replace(
        training_args,
        output_dir=str(Path(training_args.output_dir) / stage),
        stage=stage,
        num_train_epochs=float(stage_value(training_args, dataset, "epochs", stage)),
        learning_rate=float(stage_value(training_args, dataset, "learning_rate", stage)),
        per_device_train_batch_size=stage_value(training_args, dataset, "per_device_train_batch_size"),
        per_device_eval_batch_size=stage_value(training_args, dataset, "per_device_eval_batch_size"),
        weight_decay=stage_value(training_args, dataset, "weight_decay"),
        max_grad_norm=stage_value(training_args, dataset, "max_grad_norm"),
        response_weight=stage_value(training_args, dataset, "response_weight"),
        response_temperature=stage_value(training_args, dataset, "response_temperature"),
        feature_weight=stage_value(training_args, dataset, "feature_weight"),
        feature_temperature=stage_value(training_args, dataset, "feature_temperature"),
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


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TelMETrainingArguments)


def _argument_names() -> set[str]:
    return {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls) if f.init}


def _takes_no(name: str) -> bool:
    """Whether an option's choices include `"no"`, which YAML reads as `false` (`precision: no`)."""
    for cls in ARGUMENT_CLASSES:
        for item in dataclasses.fields(cls):
            if item.name == name:
                return "no" in (item.metadata.get("choices") or ())
    return False


def _tokens(name: str, value: Any) -> list[str]:
    """Command-line tokens setting `name` to a YAML value (so argparse checks its type like any flag)."""
    if value is None:
        return []
    if value is False and _takes_no(name):
        return [f"--{name}", "no"]
    if isinstance(value, (list, tuple)):
        return [f"--{name}", *(str(item) for item in value)] if value else []
    if isinstance(value, bool):
        return [f"--{name}", "true" if value else "false"]
    if isinstance(value, dict):
        import json

        return [f"--{name}", json.dumps(value)]
    return [f"--{name}", str(value)]


def _unknown(name: str, source: str) -> ValueError:
    option, _, stage = name.partition(".")
    if stage in STAGES and option in ("epochs", "learning_rate"):  # the per-stage form of telme_hf 0.1
        return ValueError(f"{source}: write {stage}_{option}=... (a stage's own {option.replace('_', ' ')}).")
    close = difflib.get_close_matches(name, sorted(_argument_names()), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else " `--help` lists every option."
    return ValueError(f"{source}: unknown option {name!r}.{hint}")


def configs_dir() -> Path:
    """The folder of the configs shipped with the package (`recipes/configs`, installed as `telme_hf.recipes`)."""
    from .. import recipes

    return Path(recipes.__file__).resolve().parent / "configs"


def packaged_config(name: str) -> Path:
    """The config shipped with the package under that name (`meld`, `iemocap`, `tiny`)."""
    return configs_dir() / f"{name}.yaml"


def resolve_config(path_or_name: str | os.PathLike) -> Path:
    """A config file: the path as given, or the packaged config of that name (`telme train --config meld`)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    packaged = packaged_config(str(path_or_name))
    if not path.suffix and packaged.is_file():
        return packaged
    names = sorted(p.stem for p in configs_dir().glob("*.yaml"))
    raise FileNotFoundError(f"Config file {path} not found; pass a YAML file or one of the packaged configs {names}.")


def config_tokens(path: str | os.PathLike) -> list[str]:
    """A YAML config as command-line tokens, each key checked against the options."""
    path = resolve_config(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must be a mapping of option: value, got {type(values).__name__}.")
    names = _argument_names()
    tokens = []
    for name, value in values.items():
        if name not in names:
            raise _unknown(str(name), str(path))
        tokens += _tokens(name, value)
    return tokens


def override_tokens(overrides: Sequence[str]) -> list[str]:
    """`key=value` overrides (YAML values: `seeds=[42,43]`, `reference_behaviour=true`) and `--flag value` tokens,
    as command-line tokens."""
    names = _argument_names()
    tokens: list[str] = []
    for item in overrides:
        # `--stage fusion` (one stage alone) is the run's `--stages fusion`; `stage` is set per stage.
        if item == "--stage" or item.startswith("--stage="):
            item = item.replace("--stage", "--stages", 1)
        if item == "--resume":  # continue a killed run where it stopped
            tokens += ["--resume_from_checkpoint", "latest"]
            continue
        if item.startswith("-") or "=" not in item:
            tokens.append(item)
            continue
        name, raw = item.split("=", 1)
        name = "stages" if name == "stage" else name
        if name not in names:
            raise _unknown(name, f"override {item!r}")
        value = yaml.safe_load(raw) if raw else None
        tokens += _tokens(name, value) if value is not None else [f"--{name}", raw]
    return tokens


def recipe_parser(with_config: bool = False, **kwargs: Any) -> HfArgumentParser:
    """The parser of the three argument dataclasses (with `--config` for `--help`: `parse_recipe_args` reads it)."""
    parser = HfArgumentParser(ARGUMENT_CLASSES, **kwargs)
    if with_config:
        parser.add_argument("--config", default=None, help="A YAML file of options (recipes/configs/*.yaml, or a "
                            "packaged config's name: meld, iemocap, tiny); command-line options and key=value "
                            "overrides win over it.")
    return parser


def parse_recipe_args(
    argv: Sequence[str] | None = None, defaults: str | os.PathLike | None = None
) -> tuple[ModelArguments, DataArguments, TelMETrainingArguments]:
    """Parse a run's options: `--config FILE` (YAML), then `key=value` overrides and `--flag value` options.

    Args:
        argv: the command line (without the program name).
        defaults: a YAML file read before `--config` (the demo's).

    Raises:
        ValueError / FileNotFoundError: an unknown option, an unreadable config, or options that do not work
            together (:func:`check_run`), named with the fix.
        SystemExit: argparse's own usage errors (a value of the wrong type), with exit status 2.

    Example:

    ```python
    >>> model_args, data_args, training_args = parse_recipe_args(
    ...     ["--config", "recipes/configs/tiny.yaml", "fusion_epochs=3", "--seed", "7"])
    >>> training_args.fusion_epochs, training_args.seed
    (3.0, 7)
    ```
    """
    argv = list(argv or [])
    config = None
    if "--config" in argv:
        position = argv.index("--config")
        if position + 1 >= len(argv):
            raise ValueError("--config needs a YAML file.")
        config = argv[position + 1]
        argv = argv[:position] + argv[position + 2:]
    else:
        for item in argv:
            if item.startswith("--config="):
                config = item.split("=", 1)[1]
                argv.remove(item)
                break
    tokens = (config_tokens(defaults) if defaults else []) + (config_tokens(config) if config else [])
    tokens += override_tokens(argv)
    known = _argument_names()
    for token in tokens:
        name = token[2:].split("=", 1)[0].replace("-", "_") if token.startswith("--") else None
        if name is not None and name not in known and not name.startswith("no_"):
            raise _unknown(name, f"option {token.split('=', 1)[0]!r}")
    model_args, data_args, training_args = recipe_parser().parse_args_into_dataclasses(
        args=tokens, look_for_args_file=False
    )
    check_run(model_args, data_args, training_args)
    return model_args, data_args, training_args


__all__ = [
    "ARGUMENT_CLASSES",
    "DataArguments",
    "ModelArguments",
    "PRESETS",
    "STAGES",
    "TelMETrainingArguments",
    "cache_root",
    "check_run",
    "config_tokens",
    "packaged_config",
    "resolve_config",
    "corpus_root",
    "parse_recipe_args",
    "recomputes_frozen_outputs",
    "stage_precision",
    "recipe_parser",
    "stage_arguments",
    "stage_value",
    "starting_checkpoint",
]
