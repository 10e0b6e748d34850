# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The options of a TelME training run, as the dataclasses `HfArgumentParser` reads (like transformers' examples).

- :class:`ModelArguments`: which model the run starts from (a preset's backbones, or a checkpoint);
- :class:`DataArguments`: which corpus, and what to do with its bad media;
- :class:`TelMETrainingArguments`: every `TrainingArguments` option plus TelME's (the stages, the recipe, the seeds,
  per-stage learning rates and epochs, the distillation losses' weights).

Each option is validated once, by its dataclass (:meth:`validate`, run by `__post_init__`): from Python, a YAML
config or the command line alike, a wrong value is a one-line `ValueError` naming the option. :class:`TelMEParser`
reads a YAML config as the parser's defaults and the command line over it (in the manner of TRL's `TrlParser`);
`telme_hf.training.plan` then resolves everything derived from the options once, before any data is read.
"""

from __future__ import annotations

import argparse
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

from ..modeling.media_telme import BAD_MEDIA_POLICIES
from ..data.registry import CORPUS_NAMES
from .recipe import RECIPES


STAGES = ("teacher", "audio", "video", "fusion")
PRESETS = ("meld", "iemocap", "tiny")
PRECISIONS = ("auto", "no", "fp16", "bf16")
FROZEN_OUTPUTS = ("auto", "cached", "recomputed")
# The values an option takes, checked by `validate` (argparse gets no `choices`: one check, one message).
CHOICES: dict[str, tuple[str, ...]] = {
    "preset": PRESETS, "dataset": CORPUS_NAMES, "on_bad_media": BAD_MEDIA_POLICIES, "stage": STAGES,
    "recipe": RECIPES, "precision": PRECISIONS, "frozen_outputs": FROZEN_OUTPUTS,
    **{f"{stage}_precision": PRECISIONS[1:] for stage in STAGES},
}


def _problems(arguments: Any, names: Sequence[str]) -> list[str]:
    """The options among `names` whose value is not of the field's type or not one of its `CHOICES`."""
    import types
    import typing

    hints = typing.get_type_hints(type(arguments))
    problems = []
    for name in names:
        value, expected = getattr(arguments, name), hints[name]
        union = typing.get_origin(expected) in (typing.Union, types.UnionType)
        allowed = typing.get_args(expected) if union else (expected,)
        if value is None and type(None) in allowed:
            continue
        plain = [getattr(kind, "__origin__", kind) for kind in allowed if kind is not type(None)]
        ok = any(isinstance(value, kind) for kind in plain if isinstance(kind, type))
        ok = (ok or (float in plain and isinstance(value, int))) and not (isinstance(value, bool) and bool not in plain)
        if not ok:
            wanted = " or ".join(getattr(kind, "__name__", str(kind)) for kind in plain)
            problems.append(f"`{name}` must be {wanted}, got {type(value).__name__} {value!r}")
        elif name in CHOICES and value not in CHOICES[name]:
            problems.append(f"`{name}` must be one of {list(CHOICES[name])}, got {value!r}")
    return problems


# The integrations users expect have an extra of their own (`pip install "telme_hf[tensorboard]"`).
REPORT_EXTRAS = ("tensorboard", "wandb")


def _report_to_problems(report_to: Any) -> list[str]:
    """`report_to` names integrations transformers knows, whose package is installed: checked before any data is
    read (the Trainer would fail only when the first stage starts)."""
    from transformers.integrations import integration_utils

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    known = sorted(integration_utils.INTEGRATION_TO_CALLBACK)
    problems = []
    for name in names:
        if name in ("all", "none"):
            continue
        if name not in known:
            close = difflib.get_close_matches(name, known, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            problems.append(f"`report_to` names {name!r}, which is not an integration: choose from none, all, "
                            f"{', '.join(known)}.{hint}")
            continue
        available = getattr(integration_utils, f"is_{name}_available", None)
        if available is not None and not available():
            install = f'pip install "telme_hf[{name}]"' if name in REPORT_EXTRAS else f"pip install {name}"
            problems.append(f"`report_to={name}` needs the {name} package: {install}")
    return problems


def _raise(problems: list[str]) -> None:
    if problems:
        message = "; ".join(problems)
        raise ValueError(message if message.endswith((".", "?")) else message + ".")


@dataclass
class ModelArguments:
    """Which model a run starts from."""

    preset: str = field(default="tiny", metadata={
        "help": "meld or iemocap (the paper's backbones and fusion settings) or tiny (random tiny backbones)."})
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
        self.validate()

    def validate(self) -> None:
        """A `ValueError` naming every option with a value of the wrong type or outside its choices."""
        _raise(_problems(self, [f.name for f in dataclasses.fields(self)]))


@dataclass
class DataArguments:
    """Which corpus a run reads, and what to do with its bad media."""

    dataset: str = field(default="synthetic", metadata={
        "help": "meld, iemocap or synthetic (the embedded demo corpus)."})
    data_root: str | None = field(default=None, metadata={
        "help": "The corpus folder (MELD.Raw, IEMOCAP_full_release); for synthetic, where it is generated "
        "(default OUTPUT_DIR/synthetic-corpus)."})
    on_bad_media: str = field(default="error", metadata={
        "help": "A missing, unreadable or too long clip: error, skip (drop the utterance) or zeros."})
    max_media_seconds: float | None = field(default=None, metadata={
        "help": "Media longer than this is bad media (saved in the checkpoint's processor); default: the "
        "processor's."})
    cache_dir: str | None = field(default=None, metadata={
        "help": "Where decoded media and frozen outputs are cached (default OUTPUT_DIR/cache)."})
    synthetic_dialogues: int = field(default=120, metadata={"help": "Dialogues of a generated synthetic corpus."})
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of a generated synthetic corpus."})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """A `ValueError` naming every option with a wrong value."""
        problems = _problems(self, [f.name for f in dataclasses.fields(self)])
        if not problems and self.max_media_seconds is not None and not self.max_media_seconds > 0:
            problems.append(f"`max_media_seconds` must be positive, got {self.max_media_seconds}")
        _raise(problems)


def _per_stage(what: str, stage: str) -> Any:
    run_option = {"Epochs": "num_train_epochs", "Learning rate": "learning_rate", "Precision": "precision"}[what]
    metadata = {"help": f"{what} of the {stage} stage (default: {run_option}"
                        + (", or the recipe's for this stage)." if what == "Precision" else ").")}
    if what == "Precision":
        metadata["help"] = metadata["help"][:-1] + ": no, fp16 or bf16."
    return field(default=None, metadata=metadata)


_CHECKED_TRAINING_OPTIONS = (
    "stage", "recipe", "seeds", "precision", "frozen_outputs", "freeze_feature_encoder", "license", "keep_checkpoints", "response_weight",
    "response_temperature", "feature_weight", "feature_temperature", "learning_rate", "num_train_epochs",
    "per_device_train_batch_size", "per_device_eval_batch_size", "weight_decay", "max_grad_norm", "seed",
    *(f"{stage}_{name}" for stage in STAGES for name in ("learning_rate", "epochs", "precision")),
)



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
        freeze_feature_encoder (`bool`, *optional*, defaults to `False`):
            In the audio stage, keep the student's convolutional feature encoder frozen (`freeze_feature_encoder` of
            transformers' audio models): the step skips its backward, and with the teacher's outputs cached its
            outputs are computed once before the stage and kept like them (`add_feature_encoder_outputs`), so the
            steps start at the feature projection. The original (and `recipe=reference` unless asked) trains it.
        license (`str`, *optional*):
            The licence in the model card's metadata; default: the training corpus's
            (`telme_hf.hub.model_card.DEFAULT_LICENSES`).
        keep_checkpoints (`bool`, *optional*, defaults to `False`):
            Keep each stage's epoch checkpoints (each is the whole model plus optimizer state). Otherwise a stage's
            are deleted once the next stage has saved its first (until then a resumed run starts from them), the
            last stage's once `final/` is written.
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
        "help": "The part one Trainer trains (set per stage by the run; on the command line --stage means --stages)."})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={
        "help": "The stages to train, in order (later stages alone start from init_from or OUTPUT_DIR/final)."})
    recipe: str = field(default="clean", metadata={
        "help": "clean (the Trainer's schedule and init) or reference (the original scripts' loop; the README lists "
        "what still differs)."})
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
        "--mixed_precision if fp16/bf16, else bf16 on a GPU that supports it, else fp32)."})
    teacher_precision: str | None = _per_stage("Precision", "teacher")
    audio_precision: str | None = _per_stage("Precision", "audio")
    video_precision: str | None = _per_stage("Precision", "video")
    fusion_precision: str | None = _per_stage("Precision", "fusion")
    frozen_outputs: str = field(default="auto", metadata={
        "help": "The frozen parts' outputs a stage learns from: cached (once per sample), recomputed (every "
        "training batch, as the original), or auto (recomputed under recipe=reference, else cached)."})
    freeze_feature_encoder: bool = field(default=False, metadata={
        "help": "Audio stage: keep the student's convolutional feature encoder (over the raw waveform) frozen, as "
        "transformers' audio-classification recipes do; its outputs are then computed once and kept, like the "
        "teacher's. The original trains it."})
    license: str | None = field(default=None, metadata={
        "help": "The licence in the model card's metadata (a Hub licence id, e.g. apache-2.0); default: the "
        "training corpus's (MELD: gpl-3.0, its distribution's; IEMOCAP: other, research only, its agreement's; "
        "synthetic: apache-2.0)."})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep each stage's epoch checkpoints; otherwise a stage's go once the next stage has saved its "
        "first, the last stage's once final/ is written."})
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
        if self.seeds is not None and isinstance(self.seeds, int) and not isinstance(self.seeds, bool):
            self.seeds = [self.seeds]
        self.validate()
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
            # Several processes on a machine without GPUs (torchrun, or accelerate launch --num_processes N): they
            # must talk over gloo, which accelerate sets up for CPU processes only when asked to (use_cpu).
            self.use_cpu = True
        super().__post_init__()

    def validate(self) -> None:
        """A `ValueError` naming every TelME option (and the Trainer options TelME sets) with a wrong value."""
        problems = _problems(self, [name for name in _CHECKED_TRAINING_OPTIONS if name != "seeds"])
        unknown = [stage for stage in self.stages if stage not in STAGES] if isinstance(self.stages, list) else None
        if unknown is None or unknown or not self.stages:
            problems.append(f"`stages` must name some of {list(STAGES)}, got {self.stages}")
        if self.seeds is not None:
            seeds = self.seeds if isinstance(self.seeds, list) else []
            if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
                problems.append(f"`seeds` must be a non-empty list of integers (e.g. seeds=[42,43,44]), got {self.seeds!r}")
            elif len(set(seeds)) != len(seeds):
                problems.append(f"`seeds` must not repeat a seed, got {seeds}")
        for stage in STAGES:
            for name in (f"{stage}_learning_rate", f"{stage}_epochs"):
                value = getattr(self, name)
                if isinstance(value, (int, float)) and not value > 0:
                    problems.append(f"`{name}` must be positive, got {value}")
        problems += _report_to_problems(self.report_to)
        _raise(problems)

    def run_dirs(self) -> list[Path]:
        """The folder of each run: `output_dir`, or `output_dir/seed-N` per seed of `seeds`."""
        root = Path(self.output_dir)
        return [root / f"seed-{seed}" for seed in self.seeds] if self.seeds else [root]


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TelMETrainingArguments)
OPTION_NAMES = frozenset(f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls) if f.init)


def _unknown(name: str, source: str) -> ValueError:
    option, _, stage = name.partition(".")
    if stage in STAGES and option in ("epochs", "learning_rate"):  # the per-stage form of telme_hf 0.1
        return ValueError(f"{source}: write {stage}_{option}=... (a stage's own {option.replace('_', ' ')}).")
    close = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=3)
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


def reference_config(dataset: str) -> Path | None:
    """The original scripts' settings for a corpus (`recipes/configs/reference/DATASET.yaml`), which
    `recipe=reference` reads beneath the run's config; `None` for a corpus the original never trained on."""
    path = configs_dir() / "reference" / f"{dataset}.yaml"
    return path if path.is_file() else None


def load_config(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """A YAML config's options, each name checked (`precision: no`, which YAML reads as false, stays `"no"`)."""
    path = resolve_config(path_or_name)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must be a mapping of option: value, got {type(values).__name__}.")
    for name in values:
        if name not in OPTION_NAMES:
            raise _unknown(str(name), str(path))
    return {name: "no" if value is False and "no" in CHOICES.get(name, ()) else value for name, value in values.items()}


def override_tokens(overrides: Sequence[str]) -> list[str]:
    """The command line as argparse tokens: `key=value` (a YAML value: `seeds=[42,43]`, `reference_behaviour=true`)
    becomes `--key value`; `--flag value` stays. The old spellings `--stage` and `--resume` are mapped."""
    tokens: list[str] = []
    for item in overrides:
        # `--stage fusion` (one stage alone) is the run's `--stages fusion`; `stage` is set per stage.
        if item == "--stage" or item.startswith("--stage="):
            item = item.replace("--stage", "--stages", 1)
        if item == "--resume":  # continue a killed run where it stopped
            tokens += ["--resume_from_checkpoint", "latest"]
            continue
        if item.startswith("-") or "=" not in item:
            if item.startswith("--"):
                name = item[2:].split("=", 1)[0].replace("-", "_")
                if name not in OPTION_NAMES and not name.startswith("no_"):
                    raise _unknown(name, f"option {item.split('=', 1)[0]!r}")
            tokens.append(item)
            continue
        name, raw = item.split("=", 1)
        name = "stages" if name == "stage" else name
        if name not in OPTION_NAMES:
            raise _unknown(name, f"override {item!r}")
        value = yaml.safe_load(raw) if raw else None
        if isinstance(value, (list, tuple)):
            tokens += [f"--{name}", *(str(v) for v in value)] if value else []
        elif isinstance(value, bool) and "no" not in CHOICES.get(name, ()):
            tokens += [f"--{name}", "true" if value else "false"]
        else:
            tokens += [f"--{name}", raw]
    return tokens


class TelMEParser(HfArgumentParser):
    """The run's three argument dataclasses from a YAML config and the command line.

    As TRL's `TrlParser`: the config's values become the parser's defaults and the command line overrides them
    (`--option value` or `option=value`); each dataclass then validates its options once. A mistake is a one-line
    `ValueError` (or `FileNotFoundError` for a config that is not there), never argparse's usage.

    Example:

    ```python
    >>> model_args, data_args, training_args = TelMEParser().parse(
    ...     ["--config", "recipes/configs/tiny.yaml", "fusion_epochs=3", "--seed", "7"])
    >>> training_args.fusion_epochs, training_args.seed
    (3.0, 7)
    ```
    """

    def __init__(self, with_config: bool = True, **kwargs: Any) -> None:
        super().__init__(ARGUMENT_CLASSES, **kwargs)
        if with_config:
            self.add_argument("--config", default=None, help="A YAML file of options (recipes/configs/*.yaml, or a "
                              "packaged config's name: meld, iemocap, tiny); the command line wins over it.")

    def error(self, message: str):
        raise ValueError(message)

    def parse(self, argv: Sequence[str] | None = None, defaults: str | os.PathLike | None = None
              ) -> tuple[ModelArguments, DataArguments, TelMETrainingArguments]:
        """Parse `argv` (without the program name) over the YAML `--config` in it, itself over `defaults`."""
        argv = list(argv or [])
        config = None
        for position, item in enumerate(argv):
            if item == "--config" or item.startswith("--config="):
                if item == "--config" and position + 1 >= len(argv):
                    raise ValueError("--config needs a YAML file.")
                config = argv[position + 1] if item == "--config" else item.split("=", 1)[1]
                del argv[position: position + (2 if item == "--config" else 1)]
                break
        values = {**(load_config(defaults) if defaults else {}), **(load_config(config) if config else {})}
        tokens = override_tokens(argv)
        self.set_defaults(**values)
        parsed = self._dataclasses(tokens)
        reference = reference_config(parsed[1].dataset) if parsed[2].recipe == "reference" else None
        if reference is not None:
            # The original scripts' settings for this corpus, beneath the config and the command line.
            self.set_defaults(**{**load_config(reference), **values})
            parsed = self._dataclasses(tokens)
        return parsed

    def _dataclasses(self, tokens: list[str]) -> tuple[ModelArguments, DataArguments, TelMETrainingArguments]:
        parsed = self.parse_args_into_dataclasses(args=tokens, look_for_args_file=False)
        return tuple(item for item in parsed if not isinstance(item, argparse.Namespace))


def parse_recipe_args(argv: Sequence[str] | None = None, defaults: str | os.PathLike | None = None
                      ) -> tuple[ModelArguments, DataArguments, TelMETrainingArguments]:
    """`TelMEParser().parse(argv, defaults)`: the three argument dataclasses of a run, each option validated."""
    return TelMEParser(with_config=False).parse(argv, defaults)


__all__ = [
    "ARGUMENT_CLASSES",
    "CHOICES",
    "DataArguments",
    "ModelArguments",
    "PRESETS",
    "STAGES",
    "TelMEParser",
    "TelMETrainingArguments",
    "load_config",
    "override_tokens",
    "packaged_config",
    "parse_recipe_args",
    "reference_config",
    "resolve_config",
]
