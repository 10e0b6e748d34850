# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelME's whole training run — teacher, audio student, video student, fusion — as one function.

`recipes/distill.py` (under `accelerate launch`) and `telme demo` both call `run_distillation`; the YAML configs in
`recipes/configs/` are `DistillConfig` fields.
"""

from __future__ import annotations

import json
import shutil
import logging
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import PartialState
from transformers import set_seed
from transformers.utils import logging as hf_logging

from .caching import FEATURE_COLUMNS, TEACHER_COLUMNS, add_frozen_outputs
from .components import build_processor, train_tokenizer
from .data.cache import MediaCache, MediaLoader, prepare_media
from .data.collator import TelMEDataCollator, decode_options_from_config
from .data.registry import get_corpus
from .inference import predict_command, write_example_dialogue
from .metrics import (
    PAPER_RESULTS,
    compute_erc_metrics,
    format_per_class_table,
    format_seed_summary,
    summarize_seed_runs,
    make_compute_metrics,
    plot_confusion_matrix,
    write_metrics_json,
    write_predictions_csv,
)
from .modeling import TelMEConfig, TelMEForEmotionRecognition, TelMEProcessor
from .recipe import (
    RECIPES,
    continue_grad_scaler,
    grad_scaler_state,
    original_hyperparameters,
    reference_precision,
    reset_heads_to_pytorch_defaults,
)
from .trainer import STAGE_MODALITIES, STAGE_PARTS, STAGES, TelMETrainingArguments, trainer_for_stage


logger = logging.getLogger("telme_hf")
# The parts whose weights the cached outputs depend on: the teacher's for stage 2, every encoder's for stage 3.
FROZEN_PARTS = {"teacher": [STAGE_PARTS["teacher"]], "fusion": [STAGE_PARTS[s] for s in ("teacher", "audio", "video")]}


@dataclass
class DistillConfig:
    """Every option of a TelME training run (the YAML configs in `recipes/configs/` set these).

    Per-stage options (`epochs`, `learning_rate`) are mappings `stage -> value`.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    preset: str = "tiny"
    output_dir: str = "outputs/telme"
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    reference_behaviour: bool = False
    # "clean" or "reference": the original training scripts' optimisation (see telme_hf.recipe).
    recipe: str = "clean"
    # Run the whole recipe once per seed into output_dir/seed-N/ and summarise mean ± std in output_dir/summary.json.
    seeds: list[int] | None = None
    text_model: str | None = None
    audio_model: str | None = None
    video_model: str | None = None
    tokenizer: str | None = None
    tokenizer_vocab_size: int = 1000
    init_from: str | None = None
    epochs: dict[str, float] = field(default_factory=lambda: {"teacher": 10, "audio": 10, "video": 10, "fusion": 10})
    learning_rate: dict[str, float] = field(
        default_factory=lambda: {"teacher": 1e-5, "audio": 1e-5, "video": 1e-5, "fusion": 1e-5}
    )
    batch_size: int = 4
    eval_batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 10.0
    response_weight: float = 1.0
    response_temperature: float = 4.0
    feature_weight: float = 1.0
    feature_temperature: float = 1.0
    seed: int = 42
    on_bad_media: str = "error"
    max_media_seconds: float | None = None
    cache_dir: str | None = None
    num_workers: int = 0
    mixed_precision: str = "auto"
    synthetic_dialogues: int = 120
    synthetic_seed: int = 0
    logging_steps: int = 50
    # Each epoch's checkpoint holds the whole model (≈2.3 GB at full size) plus the optimizer state; once a stage
    # has loaded its best epoch they are only needed to resume that stage.
    keep_checkpoints: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = True

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "DistillConfig":
        """Read a YAML config, then apply `key=value` overrides (`epochs.fusion=3` sets one stage's value).

        Example:

        ```python
        >>> DistillConfig.from_yaml("recipes/configs/tiny.yaml", ["epochs.teacher=1", "batch_size=8"]).batch_size
        8
        ```
        """
        values: dict[str, Any] = {}
        if path is not None:
            values = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: unknown option(s) {sorted(unknown)}; valid options are {sorted(known)}.")
        config = cls(**values)
        for override in overrides or []:
            config.apply_override(override)
        config.validate()
        return config

    def apply_override(self, override: str) -> None:
        if "=" not in override:
            raise ValueError(f"Override {override!r} must look like key=value (e.g. epochs.teacher=2).")
        key, raw = override.split("=", 1)
        value = yaml.safe_load(raw)
        name, _, sub_key = key.partition(".")
        if name not in {f.name for f in fields(self)}:
            raise ValueError(f"Unknown option {name!r} in override {override!r}.")
        if sub_key:
            target = dict(getattr(self, name) or {})
            target[sub_key] = value
            value = target
        setattr(self, name, value)

    def validate(self) -> None:
        later_stages_only = self.stages and "teacher" not in self.stages
        if later_stages_only and not self.init_from:
            for folder in self.run_dirs():
                previous = folder / "final"
                if not (previous / "config.json").exists():
                    raise ValueError(
                        f"Stages {self.stages} build on a trained teacher (and students): pass "
                        f"init_from=<checkpoint> or run the earlier stages first (their result is read from "
                        f"{previous})."
                    )
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"Unknown stage(s) {unknown}; choose from {STAGES}.")
        if self.dataset not in ("synthetic", "meld", "iemocap"):
            raise ValueError(f"dataset must be synthetic, meld or iemocap, got {self.dataset!r}.")
        if self.dataset != "synthetic" and not self.data_root:
            raise ValueError(f"dataset={self.dataset!r} needs data_root (the folder of its CSVs and media).")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {list(RECIPES)}, got {self.recipe!r}.")
        if self.seeds is not None:
            if isinstance(self.seeds, int):
                self.seeds = [self.seeds]
            if not self.seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in self.seeds):
                raise ValueError(f"seeds must be a non-empty list of integers (e.g. seeds=[42,43,44]), got {self.seeds!r}.")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds must not repeat a seed, got {self.seeds}.")

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir or Path(self.output_dir) / "cache")

    def run_dirs(self) -> list[Path]:
        """The folder of each run: `output_dir`, or `output_dir/seed-N` per seed of `seeds`."""
        root = Path(self.output_dir)
        return [root / f"seed-{seed}" for seed in self.seeds] if self.seeds else [root]

    @property
    def starting_checkpoint(self) -> str | None:
        """The checkpoint the run starts from: `init_from`, or for later stages alone the run's own `final/`."""
        if self.init_from:
            return self.init_from
        if self.stages and "teacher" not in self.stages:
            return str(Path(self.output_dir) / "final")
        return None

    @property
    def corpus_root(self) -> str | None:
        """`data_root`, or for the synthetic corpus the folder it is generated into (`output_dir/synthetic-corpus`)."""
        if self.data_root or self.dataset != "synthetic":
            return self.data_root
        return str(Path(self.output_dir) / "synthetic-corpus")

    def stage_value(self, name: str, stage: str | None = None) -> Any:
        """A training setting as the run uses it: the original scripts' value under `recipe: reference` on MELD or
        IEMOCAP (see `telme_hf.recipe.ORIGINAL_HYPERPARAMETERS`), else this config's. Per-stage settings
        (`epochs`, `learning_rate`) take the stage."""
        original = original_hyperparameters(self.recipe, self.dataset)
        value = original.get(name, getattr(self, name))
        if stage is not None and isinstance(value, dict):
            defaults = {"epochs": 10, "learning_rate": 1e-5}
            return value.get(stage, defaults.get(name))
        return value


# --------------------------------------------------------------------------------------------------------- data
def load_data(config: DistillConfig, modalities: tuple[str, ...], model_config: TelMEConfig):
    """The run's `DatasetDict` (train/dev/test), generating the synthetic corpus when needed.

    The model's configuration decides every data-side behaviour (labels, speaker indexing, CSV text), as for
    evaluation: see `telme_hf.data.registry.load_corpus`.
    """
    from .data.registry import load_corpus

    root = config.corpus_root
    if config.dataset == "synthetic" and not (Path(root) / "train_sent_emo.csv").exists():
        from .data.synthetic import make_synthetic_corpus

        make_synthetic_corpus(root, num_dialogues=config.synthetic_dialogues, seed=config.synthetic_seed)
    return load_corpus(config.dataset, root, model_config, modalities=modalities, on_bad_media=config.on_bad_media)


def model_config_for(config: DistillConfig) -> TelMEConfig:
    """The configuration the run's model will have (read before any weights, so the data follows it)."""
    if config.starting_checkpoint:
        return TelMEConfig.from_pretrained(config.starting_checkpoint)
    return TelMEConfig.from_preset(config.preset, reference_behaviour=config.reference_behaviour)


def build_model_and_processor(config: DistillConfig, train_texts: list[str], label_names: list[str]):
    """The starting model: a checkpoint (`init_from`, e.g. an earlier run's `final/`), tiny random backbones with a
    tokenizer trained on the corpus, or the paper's pretrained backbones."""
    if config.starting_checkpoint:
        from transformers import AutoProcessor

        source = config.starting_checkpoint
        model = TelMEForEmotionRecognition.from_pretrained(source)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if names != list(label_names):
            raise ValueError(f"{source} predicts {names} but the data's labels are {list(label_names)}.")
        return model, AutoProcessor.from_pretrained(source)
    overrides = {"id2label": dict(enumerate(label_names))}
    reference = config.recipe == "reference"
    if config.preset == "tiny":
        tokenizer = train_tokenizer(train_texts, vocab_size=config.tokenizer_vocab_size)
        model_config = TelMEConfig.from_preset("tiny", reference_behaviour=config.reference_behaviour, **overrides)
        model_config.text_config.vocab_size = len(tokenizer)
        processor = build_processor(model_config, tokenizer)
        model = TelMEForEmotionRecognition(model_config)
    else:
        model_config = TelMEConfig.from_preset(config.preset, reference_behaviour=config.reference_behaviour,
                                               **overrides)
        model = TelMEForEmotionRecognition.from_backbones(
            model_config, text_model=config.text_model, audio_model=config.audio_model,
            video_model=config.video_model, mean_resizing=not reference,
        )
        # After the model: the processor follows the backbones' own configs (image size, vocabulary).
        processor = build_processor(model.config, config.tokenizer or config.text_model)
    if reference:
        reset_heads_to_pytorch_defaults(model)
        logger.info("recipe=reference: heads and fusion re-initialised with PyTorch's defaults%s.",
                    "" if config.preset == "tiny" else ", speaker-token rows drawn from N(0, 0.02)")
    return model, processor


# -------------------------------------------------------------------------------------------------------- stages
def precision_flags(config: DistillConfig, stage: str | None = None) -> dict[str, bool]:
    """`bf16`/`fp16` for the Trainer: `accelerate launch --mixed_precision` wins, then the config; `auto` is bf16 on
    a GPU that supports it and fp32 otherwise (bf16 on a CPU is ~20x slower than fp32). Under `recipe: reference`
    the stage decides, as in the original (see `telme_hf.recipe.reference_precision`)."""
    import os

    if config.recipe == "reference" and stage is not None:
        return reference_precision(stage)
    choice = os.environ.get("ACCELERATE_MIXED_PRECISION") or config.mixed_precision
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if choice not in ("no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be auto, no, fp16 or bf16, got {choice!r}.")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def _selected_epoch(trainer) -> float | None:
    best = trainer.state.best_model_checkpoint
    if not best:
        return None
    step = int(best.rstrip("/").rsplit("-", 1)[-1])
    for entry in trainer.state.log_history:
        if entry.get("step") == step and "eval_weighted_f1" in entry:
            return entry.get("epoch")
    return None


def _evaluate(trainer, dataset, labels: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    prediction = trainer.predict(dataset, metric_key_prefix="eval")
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return compute_erc_metrics(prediction.label_ids, logits.argmax(-1), labels), logits


def train_stage(
    stage: str,
    model: TelMEForEmotionRecognition,
    processor: TelMEProcessor,
    splits: dict[str, Any],
    config: DistillConfig,
    media_cache: MediaCache | None,
    scaler_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one stage, keep its best dev epoch, evaluate dev and test once; return its results.

    `scaler_state` starts the stage's grad scaler where the previous stage's ended (the reference recipe's video
    student continues the audio student's); the returned `_scaler_state` is this stage's final one.
    """
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    audio_options, video_options = decode_options_from_config(model.config)
    collator = TelMEDataCollator(
        processor, STAGE_MODALITIES[stage], audio_options, video_options, cache=media_cache,
        on_bad_media=config.on_bad_media, max_media_seconds=model.config.max_media_seconds,
    )
    train, dev, test = splits["train"], splits["dev"], splits["test"]
    eval_batch_size = config.stage_value("eval_batch_size")
    state = PartialState()
    frozen_dir = config.cache_path / "frozen"
    if stage in ("audio", "video"):
        teacher_collator = TelMEDataCollator(processor, ("text",))
        with state.main_process_first():
            train = add_frozen_outputs(train, model, teacher_collator, TEACHER_COLUMNS, frozen_dir,
                                       FROZEN_PARTS["teacher"], config.eval_batch_size, desc=f"teacher outputs {stage}")
    if stage == "fusion":
        with state.main_process_first():
            train, dev, test = (
                add_frozen_outputs(split, model, collator, FEATURE_COLUMNS, frozen_dir, FROZEN_PARTS["fusion"],
                                   eval_batch_size, desc=f"features {name}")
                for name, split in (("train", train), ("dev", dev), ("test", test))
            )
    args = TelMETrainingArguments(
        output_dir=str(Path(config.output_dir) / stage),
        stage=stage,
        recipe=config.recipe,
        num_train_epochs=float(config.stage_value("epochs", stage)),
        learning_rate=float(config.stage_value("learning_rate", stage)),
        per_device_train_batch_size=config.stage_value("batch_size"),
        per_device_eval_batch_size=eval_batch_size,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (clean recipe only)
        weight_decay=config.stage_value("weight_decay"),
        max_grad_norm=config.stage_value("max_grad_norm"),
        # The original's `torch.optim.AdamW`; the clean recipe keeps the Trainer's (fused where available).
        **({"optim": "adamw_torch"} if config.recipe == "reference" else {}),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="weighted_f1",
        greater_is_better=True,
        logging_steps=config.logging_steps,
        report_to="none",
        seed=config.seed,
        **precision_flags(config, stage),
        dataloader_num_workers=config.num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        response_weight=config.stage_value("response_weight"),
        response_temperature=config.stage_value("response_temperature"),
        feature_weight=config.stage_value("feature_weight"),
        feature_temperature=config.stage_value("feature_temperature"),
    )
    trainer = trainer_for_stage(stage)(
        model=model, args=args, train_dataset=train, eval_dataset=dev, data_collator=collator,
        compute_metrics=make_compute_metrics(labels),
    )
    if continue_grad_scaler(trainer, scaler_state):
        logger.info("stage %s continues the previous stage's grad scaler (scale %.0f), as the original's one loop.",
                    stage, scaler_state["scale"])
    trainer.train()
    # The log history (learning rate and loss of every logged step, dev metrics of every epoch) stays with the
    # stage, also when its checkpoints are removed.
    trainer.save_state()
    if not config.keep_checkpoints and trainer.is_world_process_zero():
        for checkpoint in Path(args.output_dir).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    dev_metrics, _ = _evaluate(trainer, dev, labels)
    test_metrics, test_logits = _evaluate(trainer, test, labels)
    return {
        "selected_epoch": _selected_epoch(trainer),
        "dev": dev_metrics,
        "test": test_metrics,
        "_test_logits": test_logits,
        "_test_keys": list(test["utterance_key"]),
        "_scaler_state": grad_scaler_state(trainer),
    }


# ----------------------------------------------------------------------------------------------------------- run
def run_distillation(config: DistillConfig, announce_next_step: bool = True) -> dict[str, Any]:
    """Run every requested stage in order and write the run's artefacts to `config.output_dir`:

    `results.json` (per stage: selected epoch, dev and test weighted F1, accuracy, per-class F1), `final/` (the
    whole model, processor and model card), `confusion_matrix.png` and `predictions.csv` of the last stage, and per
    stage its `trainer_state.json`. With `seeds`, the whole run is repeated per seed into `output_dir/seed-N/` and
    `output_dir/summary.json` holds the mean and standard deviation over the seeds (see `run_seeds`).
    """
    config.validate()
    if config.seeds:
        return run_seeds(config)
    return _run_once(config, announce_next_step)


def run_seeds(config: DistillConfig) -> dict[str, Any]:
    """The whole recipe once per seed of `config.seeds`, then `summary.json` and a mean ± std table.

    The runs share the decoded-media cache and the corpus (decoded and generated once); each has its own folder
    `output_dir/seed-N/` with everything a single run writes.
    """
    root = Path(config.output_dir)
    shared = {"seeds": None, "cache_dir": str(config.cache_path), "data_root": config.corpus_root}
    runs = {}
    for seed, folder in zip(config.seeds, config.run_dirs()):
        logger.warning("seed %d of %s: %s", seed, config.seeds, folder)
        runs[seed] = _run_once(replace(config, seed=seed, output_dir=str(folder), **shared), False)
    if not PartialState().is_main_process:
        return {}
    labels = list(get_corpus(config.dataset).labels) if config.dataset in ("meld", "iemocap") else None
    summary = summarize_seed_runs(runs, labels)
    write_metrics_json(summary, root / "summary.json")
    print(f"\nMean ± standard deviation over seeds {config.seeds} (%):\n{format_seed_summary(summary)}\n"
          f"Wrote {root / 'summary.json'}")
    return summary


def _run_once(config: DistillConfig, announce_next_step: bool = True) -> dict[str, Any]:
    set_seed(config.seed)
    hf_logging.set_verbosity_warning()
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    state = PartialState()  # the process's device; with several processes, rank 0 prepares and writes
    needs_media = any(stage != "teacher" for stage in config.stages)
    modalities = ("text", "audio", "video") if needs_media else ("text",)
    with state.main_process_first():
        data = load_data(config, modalities, model_config_for(config))
    label_names = data["train"].features["label"].names
    model, processor = build_model_and_processor(config, list(data["train"]["text"]), label_names)
    if config.max_media_seconds is not None:
        # Saved with the model, so that evaluation and prediction treat long media as training did.
        model.config.max_media_seconds = config.max_media_seconds
    # Frozen outputs are cached before the Trainer places the model: put it on the device first.
    model.to(state.device)

    media_cache = None
    splits = {name: data[name] for name in ("train", "dev", "test")}
    if needs_media:
        media_cache = MediaCache(config.cache_path / "media")
        audio_options, video_options = decode_options_from_config(model.config)
        for name in splits:
            loader = MediaLoader(audio_options, video_options, media_cache, config.on_bad_media,
                                 model.config.max_media_seconds, pixel_mean=processor.image_processor.image_mean)
            with state.main_process_first():
                splits[name] = prepare_media(splits[name], loader, desc=f"decoding {name} media")

    results: dict[str, Any] = {}
    scaler_state = None
    for stage in [s for s in STAGES if s in config.stages]:
        logger.warning("stage %s", stage)
        # The original trains the video student in the audio student's loop, with its grad scaler.
        carried = scaler_state if config.recipe == "reference" and stage == "video" else None
        results[stage] = train_stage(stage, model, processor, splits, config, media_cache, carried)
        scaler_state = results[stage]["_scaler_state"]
    if not state.is_main_process:
        return {stage: {k: v for k, v in r.items() if not k.startswith("_")} for stage, r in results.items()}

    last = [s for s in STAGES if s in results][-1]
    labels = label_names
    final_dir = output_dir / "final"
    model.save_pretrained(final_dir)
    processor.save_pretrained(final_dir)
    public = {stage: {k: v for k, v in r.items() if not k.startswith("_")} for stage, r in results.items()}
    public = _with_earlier_stages(output_dir / "results.json", public)
    write_metrics_json({"config": asdict(config), "stages": public}, output_dir / "results.json")
    plot_confusion_matrix(results[last]["test"]["confusion_matrix"], labels, output_dir / "confusion_matrix.png",
                          title=f"{last} — test")
    write_predictions_csv(output_dir / "predictions.csv", results[last]["_test_keys"], results[last]["_test_logits"],
                          labels)
    from .model_card import write_model_card

    write_model_card(final_dir, model.config, config, public, repo=config.hub_model_id or str(final_dir))
    if config.push_to_hub:
        push_folder_to_hub(final_dir, config.hub_model_id or output_dir.name, private=config.hub_private)
    reference = PAPER_RESULTS.get(config.dataset) if config.dataset != "synthetic" else None
    table = format_per_class_table({stage: r["test"] for stage, r in public.items()}, labels, reference=reference)
    example = write_example_dialogue(data["test"], output_dir / "example_dialogue.csv")
    next_step = f"\nTry it on a test dialogue:\n  {predict_command(final_dir, example)}" if example else ""
    print(f"\nTest split, per-class F1 (%):\n{table}\n{next_step if announce_next_step else ''}")
    return public


def _with_earlier_stages(results_file: Path, current: dict[str, Any]) -> dict[str, Any]:
    """A single-stage run keeps the results of the stages an earlier run in the same folder recorded."""
    if not results_file.exists():
        return current
    earlier = json.loads(results_file.read_text()).get("stages", {})
    merged = {**earlier, **current}
    return {stage: merged[stage] for stage in STAGES if stage in merged}


def push_folder_to_hub(folder: Path, repo_id: str, private: bool = True) -> str:
    """Upload a checkpoint folder to the Hub (model, processor, code, model card) and return the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), commit_message="Upload TelME checkpoint")
    return str(repo)


__all__ = ["DistillConfig", "run_distillation", "train_stage", "load_data", "build_model_and_processor",
           "push_folder_to_hub"]
