# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelME's whole training run — teacher, audio student, video student, fusion — as one function.

`recipes/distill.py` (under `accelerate launch`, or `telme train`) and `telme demo` parse the run's options
(`telme_hf.training.arguments`) and call :func:`run_distillation`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import set_seed

from .arguments import (
    DataArguments,
    ModelArguments,
    TelMETrainingArguments,
    cache_root,
    check_run,
    corpus_root,
    recomputes_frozen_outputs,
    stage_precision,
    stage_arguments,
    stage_value,
    starting_checkpoint,
)
from .frozen_features import TEACHER_COLUMNS, add_encoder_features, add_frozen_outputs
from ..preprocessing import build_processor, processor_options, train_tokenizer
from ..modeling.loading_telme import MediaCache, MediaLoader, prepare_media
from ..modeling.collating_telme import TelMEDataCollator
from ..data.registry import get_corpus, load_corpus
from ..inference.dialogue_files import predict_command, write_example_dialogue
from ..inference.evaluation import evaluate_split, write_evaluation
from ..inference.metrics import (
    format_per_class_table,
    format_seed_summary,
    make_compute_metrics,
    summarize_seed_runs,
    write_metrics_json,
)
from ..modeling import TelMEConfig, TelMEForEmotionRecognition, TelMEProcessor
from .recipe import continue_grad_scaler, grad_scaler_state, reset_heads_to_pytorch_defaults
from .resume import (
    RemoveEarlierCheckpoints,
    record_stage,
    release_cache_lock,
    remove_checkpoints,
    resume_point,
    take_cache_lock,
)
from .trainer import STAGE_MODALITIES, STAGE_PARTS, STAGES, trainer_for_stage
from ..modeling.logging_telme import get_logger, progress_disabled


logger = get_logger("telme_hf")
# The parts whose weights the cached outputs depend on: the teacher's for stage 2, every encoder's for stage 3.
# The teacher, frozen in stages 2 (its outputs cached); stage 3's frozen encoders are caching.ENCODER_PARTS.
TEACHER_PARTS = [STAGE_PARTS["teacher"]]


# --------------------------------------------------------------------------------------------------------- data
def model_config_for(model_args: ModelArguments, training_args: TelMETrainingArguments) -> TelMEConfig:
    """The configuration the run's model will have (read before any weights, so the data follows it)."""
    source = starting_checkpoint(model_args, training_args)
    if source:
        return TelMEConfig.from_pretrained(source)
    return TelMEConfig.from_preset(model_args.preset, reference_behaviour=model_args.reference_behaviour)


def preprocessing_for(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments):
    """The run's preprocessing before its processor exists: the checkpoint's processor, or the preset's options."""
    source = starting_checkpoint(model_args, training_args)
    if source:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(source)
    return processor_options(model_config_for(model_args, training_args), **_processor_overrides(data_args))


def _processor_overrides(data_args: DataArguments) -> dict[str, Any]:
    return {} if data_args.max_media_seconds is None else {"max_media_seconds": data_args.max_media_seconds}


def load_data(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments,
              modalities: tuple[str, ...]):
    """The run's splits and the report of their missing media, the synthetic corpus generated when needed.

    The model's preprocessing decides every data-side behaviour (speaker indexing, CSV text), as for evaluation:
    see `telme_hf.data.registry.load_corpus`.
    """
    root = corpus_root(data_args, training_args)
    if data_args.dataset == "synthetic" and not (Path(root) / "train_sent_emo.csv").exists():
        from ..data.synthetic import make_synthetic_corpus

        make_synthetic_corpus(root, num_dialogues=data_args.synthetic_dialogues, seed=data_args.synthetic_seed,
                              progress=not progress_disabled(training_args.disable_tqdm))
    labels = model_config_for(model_args, training_args).label_names
    return load_corpus(data_args.dataset, root, preprocessing_for(model_args, data_args, training_args), labels,
                       modalities=modalities, on_bad_media=data_args.on_bad_media)


def build_model_and_processor(model_args: ModelArguments, data_args: DataArguments,
                              training_args: TelMETrainingArguments, train_texts: list[str], label_names: list[str]):
    """The starting model: a checkpoint (`init_from`, e.g. an earlier run's `final/`), tiny random backbones with a
    tokenizer trained on the corpus, or the paper's pretrained backbones."""
    source = starting_checkpoint(model_args, training_args)
    if source:
        from transformers import AutoProcessor

        from ..preprocessing import apply_legacy_preprocessing

        model = TelMEForEmotionRecognition.from_pretrained(source)
        if model.config.label_names != list(label_names):
            raise ValueError(f"{source} predicts {model.config.label_names} but the data's labels are "
                             f"{list(label_names)}.")
        processor = AutoProcessor.from_pretrained(source)
        apply_legacy_preprocessing(processor, model.config, source)
        for name, value in _processor_overrides(data_args).items():
            setattr(processor, name, value)
        return model, processor
    overrides = {"id2label": dict(enumerate(label_names))}
    reference = training_args.recipe == "reference"
    config = TelMEConfig.from_preset(model_args.preset, reference_behaviour=model_args.reference_behaviour,
                                     **overrides)
    if model_args.preset == "tiny" or model_args.random_weights:
        tokenizer = train_tokenizer(train_texts, vocab_size=model_args.tokenizer_vocab_size)
        config.text_config.vocab_size = len(tokenizer)
        model = TelMEForEmotionRecognition(config)
    else:
        model = TelMEForEmotionRecognition.from_backbones(
            config, text_model=model_args.text_model, audio_model=model_args.audio_model,
            video_model=model_args.video_model, mean_resizing=not reference,
        )
        # After the model: the processor follows the backbones' own configs (image size, vocabulary).
        tokenizer = model_args.tokenizer or model_args.text_model
    processor = build_processor(model.config, tokenizer, **_processor_overrides(data_args))
    if reference:
        reset_heads_to_pytorch_defaults(model)
        logger.info("recipe=reference: heads and fusion re-initialised with PyTorch's defaults%s.",
                    "" if model_args.preset == "tiny" else ", speaker-token rows drawn from N(0, 0.02)")
    return model, processor


# -------------------------------------------------------------------------------------------------------- stages
def _selected_epoch(trainer) -> float | None:
    best = trainer.state.best_model_checkpoint
    if not best:
        return None
    step = int(best.rstrip("/").rsplit("-", 1)[-1])
    for entry in trainer.state.log_history:
        if entry.get("step") == step and "eval_weighted_f1" in entry:
            return entry.get("epoch")
    return None


def train_stage(
    stage: str,
    model: TelMEForEmotionRecognition,
    processor: TelMEProcessor,
    splits: dict[str, Any],
    training_args: TelMETrainingArguments,
    dataset: str,
    loader: MediaLoader | None,
    cache_dir: Path,
    scaler_state: dict[str, Any] | None = None,
    resume_checkpoint: str | None = None,
    earlier_checkpoints: Path | None = None,
) -> dict[str, Any]:
    """Train one stage and keep its best dev epoch; return `{"selected_epoch", "best_checkpoint", "_scaler_state",
    "_precision"}` (`_precision`: what the steps ran in, :meth:`PrecisionMonitor.report`).

    `scaler_state` starts the stage's grad scaler where the previous stage's ended (the reference recipe's video
    student continues the audio student's); the returned `_scaler_state` is this stage's final one.
    `resume_checkpoint` continues the stage from one of its epoch checkpoints (the model must already hold that
    checkpoint's weights, so that the frozen outputs are those of the interrupted run). `earlier_checkpoints`, the
    previous stage's folder, loses its checkpoints once this stage has saved its first one.
    """
    args = stage_arguments(training_args, dataset, stage)
    recompute = recomputes_frozen_outputs(training_args) and stage != "teacher"
    # Recomputing the teacher's outputs in a student stage needs its text in every batch.
    modalities = ("text", *STAGE_MODALITIES[stage]) if recompute and stage in ("audio", "video") \
        else STAGE_MODALITIES[stage]
    collator = TelMEDataCollator(processor, modalities, loader=loader)
    train, dev = splits["train"], splits["dev"]
    state = PartialState()
    frozen_dir = cache_dir / "frozen"
    if stage in ("audio", "video") and not recompute:
        with state.main_process_first():
            train = add_frozen_outputs(train, model, TelMEDataCollator(processor, ("text",)), TEACHER_COLUMNS,
                                       frozen_dir, TEACHER_PARTS, args.per_device_eval_batch_size,
                                       desc=f"teacher outputs {stage}")
    if stage == "fusion":
        # Dev's features are the same either way (eval mode, CSV order); train's, when recomputed, come from every
        # shuffled batch under the stage's autocast, as in the original.
        with state.main_process_first():
            dev = add_encoder_features(dev, model, processor, loader, frozen_dir, args.per_device_eval_batch_size,
                                       desc="features dev")
            if not recompute:
                train = add_encoder_features(train, model, processor, loader, frozen_dir,
                                             args.per_device_eval_batch_size, desc="features train")
    callbacks = [] if training_args.keep_checkpoints else [RemoveEarlierCheckpoints(earlier_checkpoints)]
    trainer = trainer_for_stage(stage)(
        model=model, args=args, train_dataset=train, eval_dataset=dev, data_collator=collator,
        compute_metrics=make_compute_metrics(model.config.label_names), callbacks=callbacks,
    )
    if continue_grad_scaler(trainer, scaler_state):
        logger.info("stage %s continues the previous stage's grad scaler (scale %.0f), as the original's one loop.",
                    stage, scaler_state["scale"])
    if resume_checkpoint:
        logger.info("stage %s resumes from %s.", stage, resume_checkpoint)
    trainer.train(resume_from_checkpoint=resume_checkpoint)
    # The log history (learning rate and loss of every logged step, dev metrics of every epoch) stays with the
    # stage, also when its checkpoints are removed.
    trainer.save_state()
    return {"selected_epoch": _selected_epoch(trainer), "best_checkpoint": trainer.state.best_model_checkpoint,
            "_scaler_state": grad_scaler_state(trainer), "_precision": trainer.precision_monitor.report()}


# ----------------------------------------------------------------------------------------------------------- run
def run_distillation(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TelMETrainingArguments,
    announce_next_step: bool = True,
) -> dict[str, Any]:
    """Run every requested stage in order and write the run's artefacts to `training_args.output_dir`:

    `results.json` (per stage: selected epoch, dev and test weighted F1, accuracy, per-class F1; every utterance
    with bad media), `final/` (the whole model, processor and model card), `confusion_matrix.png` and
    `predictions.csv` of the last stage on test, and per stage its `trainer_state.json`. With `seeds`, the whole run
    is repeated per seed into `output_dir/seed-N/` and `output_dir/summary.json` holds the mean and standard
    deviation over the seeds (see :func:`run_seeds`).
    """
    from tqdm.contrib.logging import logging_redirect_tqdm
    from transformers.utils import logging as hf_logging

    check_run(model_args, data_args, training_args)
    # transformers' own warnings (the Trainer's, the models') are written above the progress bars, not into them;
    # telme_hf's logger does so itself.
    with logging_redirect_tqdm(loggers=[hf_logging.get_logger("transformers")]), \
            _library_progress_bars(training_args.disable_tqdm):
        if training_args.seeds:
            return run_seeds(model_args, data_args, training_args)
        return _run_once(model_args, data_args, training_args, announce_next_step)


@contextlib.contextmanager
def _library_progress_bars(disable_tqdm: bool | None):
    """During a run, transformers' own bars (one per checkpoint written) are off: the stage's bar says more; the
    `datasets` bars of the frozen-output passes follow the run's `disable_tqdm`. Both are restored afterwards."""
    import datasets
    from transformers.utils import logging as hf_logging

    transformers_bars = hf_logging.is_progress_bar_enabled()
    datasets_bars = datasets.is_progress_bar_enabled()
    quiet = progress_disabled(disable_tqdm)
    hf_logging.disable_progress_bar()
    if quiet:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if transformers_bars:
            hf_logging.enable_progress_bar()
        if datasets_bars:
            datasets.enable_progress_bars()


def run_seeds(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments):
    """The whole recipe once per seed of `training_args.seeds`, then `summary.json` and a mean ± std table.

    The runs share the decoded-media cache and the corpus (decoded and generated once); each has its own folder
    `output_dir/seed-N/` with everything a single run writes.
    """
    root = Path(training_args.output_dir)
    data_args = dataclasses.replace(data_args, cache_dir=str(cache_root(data_args, training_args)),
                                    data_root=corpus_root(data_args, training_args))
    runs = {}
    for seed, folder in zip(training_args.seeds, training_args.run_dirs()):
        logger.info("Seed %d of %s: %s", seed, training_args.seeds, folder)
        seed_args = dataclasses.replace(training_args, seed=seed, output_dir=str(folder), seeds=None)
        runs[seed] = _run_once(model_args, data_args, seed_args, False)
    if not PartialState().is_main_process:
        return {}
    corpus = get_corpus(data_args.dataset)
    summary = summarize_seed_runs(runs, list(corpus.labels))
    write_metrics_json(summary, root / "summary.json")
    print(f"\nMean ± standard deviation over seeds {training_args.seeds} (%):\n{format_seed_summary(summary)}\n"
          f"Wrote {root / 'summary.json'}")
    return summary


def _run_once(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments,
              announce_next_step: bool = True) -> dict[str, Any]:
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    state = PartialState()  # the process's device; with several processes, rank 0 prepares and writes
    needs_media = any(stage != "teacher" for stage in training_args.stages)
    modalities = ("text", "audio", "video") if needs_media else ("text",)
    with state.main_process_first():
        data, report = load_data(model_args, data_args, training_args, modalities)
    model, processor = build_model_and_processor(model_args, data_args, training_args, list(data["train"]["text"]),
                                                 data["train"].features["label"].names)
    # Frozen outputs are cached before the Trainer places the model: put it on the device first.
    model.to(state.device)

    cache_dir = cache_root(data_args, training_args)
    if state.is_main_process:
        # Temporary files a killed run left in the cache go before this run writes its own.
        take_cache_lock(cache_dir)
    state.wait_for_everyone()
    try:
        return _train_evaluate_and_write(model_args, data_args, training_args, data, report, model, processor,
                                         cache_dir, announce_next_step)
    finally:
        if state.is_main_process:
            release_cache_lock(cache_dir)


def _train_evaluate_and_write(model_args, data_args, training_args, data, report, model, processor, cache_dir,
                              announce_next_step):
    """The body of a run, between loading the model and releasing the cache: decode pass, stages (resumed where
    a killed run stopped), the final evaluation and the artefacts."""
    state = PartialState()
    output_dir = Path(training_args.output_dir)
    label_names = data["train"].features["label"].names
    needs_media = any(stage != "teacher" for stage in training_args.stages)
    media_cache = MediaCache(cache_dir / "media") if needs_media else None
    loader = None
    splits = {name: data[name] for name in ("train", "dev", "test")}
    if needs_media:
        # One loader for the run: each bad clip is decoded and logged once, in the pass below.
        # It records into the corpus loader's report, so a clip found missing there is not reported again.
        loader = MediaLoader.for_processor(processor, media_cache, on_bad_media=data_args.on_bad_media,
                                           report=report)
        for name in splits:
            loader.split = name
            with state.main_process_first():
                splits[name] = prepare_media(splits[name], loader, desc=f"decoding {name} media",
                                             disable_progress=training_args.disable_tqdm,
                                             listed_in=str(output_dir / "results.json"))
        loader.split = ""

    results: dict[str, Any] = {}
    scaler_state = None
    stages = [s for s in STAGES if s in training_args.stages]
    resume = resume_point(training_args.resume_from_checkpoint, output_dir, stages)
    previous_dir: Path | None = None
    for stage in stages:
        if resume and stage in resume["finished"]:
            finished = resume["finished"][stage]
            results[stage] = {"selected_epoch": finished["selected_epoch"],
                              **{key: finished[key] for key in ("autocast_dtype", "grad_scaler") if key in finished}}
            previous_dir = output_dir / stage
            logger.info("stage %s finished before the interruption: skipped.", stage)
            continue
        checkpoint = None
        if resume and stage == resume["stage"] and resume["weights"]:
            # The weights the interrupted run had at this point, before any frozen output is computed from them.
            load_weights(model, resume["weights"])
            checkpoint = resume["checkpoint"]
        logger.info("Stage %s: training %s.", stage, STAGE_PARTS[stage].replace("_", " "))
        # The original trains the video student in the audio student's loop, with its grad scaler.
        carried = scaler_state if training_args.recipe == "reference" and stage == "video" else None
        result = train_stage(stage, model, processor, splits, training_args, data_args.dataset, loader, cache_dir,
                             carried, checkpoint, previous_dir)
        scaler_state = result.pop("_scaler_state")
        # What the stage's steps really ran in, measured inside the forward (`PrecisionMonitor`).
        result.update(result.pop("_precision"))
        logger.info("stage %s trained under %s autocast%s.", stage, result["autocast_dtype"],
                    "" if not result["grad_scaler"] else
                    ", grad scaler at {final_scale:g} with {skipped_steps} skipped steps".format(**result["grad_scaler"]))
        if state.is_main_process:
            record_stage(output_dir, stage, result["selected_epoch"], result.pop("best_checkpoint"),
                         {key: result[key] for key in ("autocast_dtype", "grad_scaler")})
        else:
            result.pop("best_checkpoint")
        results[stage] = result
        previous_dir = output_dir / stage
    if resume and resume["stage"] is None:  # every stage had finished: the run's own final weights
        load_weights(model, output_dir / "final" if (output_dir / "final" / "model.safetensors").is_file()
                     else resume["weights"])

    # Every part, once, on dev and test: the same evaluation as `telme evaluate`, from the encoders' features (the
    # fusion stage computed dev's already; test's are computed here, once, and kept for a resumed run).
    evaluation = {}
    for name in ("dev", "test"):
        split = splits[name]
        if loader is not None:
            with state.main_process_first():
                split = add_encoder_features(split, model, processor, loader, cache_dir / "frozen",
                                             training_args.per_device_eval_batch_size, desc=f"features {name}")
        evaluation[name] = evaluate_split(model, processor, split, training_args.per_device_eval_batch_size,
                                          on_bad_media=data_args.on_bad_media, cache=media_cache, progress=False,
                                          split=name, loader=loader, report=report)
    if not state.is_main_process:
        return results
    for stage, result in results.items():
        result.update(dev=evaluation["dev"][stage], test=evaluation["test"][stage])

    final_dir = output_dir / "final"
    model.save_pretrained(final_dir)
    processor.save_pretrained(final_dir)
    if previous_dir is not None and not training_args.keep_checkpoints:
        remove_checkpoints(previous_dir)  # final/ holds the last stage's best weights now
    earlier = _earlier_results(output_dir / "results.json")
    public = _merge_stages(earlier.get("stages", {}), results)
    training = training_summary(model_args, data_args, training_args, processor)
    training["stages"] = _merge_stages((earlier.get("training") or {}).get("stages", {}), training["stages"])
    write_metrics_json({"config": run_config(model_args, data_args, training_args), "training": training,
                        "stages": public, "bad_media": report.by_split()}, output_dir / "results.json")
    last = [s for s in STAGES if s in results][-1]
    paths = write_evaluation(evaluation["test"], output_dir, label_names, {"split": "test"}, part=last,
                             metrics_file=None)
    if paths.get("confusion_matrix") and Path(paths["confusion_matrix"]).is_file():
        # The checkpoint carries its test confusion matrix (`telme app` shows it beside the card).
        shutil.copy2(paths["confusion_matrix"], final_dir / "confusion_matrix.png")
    # What the card reports travels with the weights, without the run's local paths.
    write_metrics_json({"dataset": data_args.dataset, "training": training, "stages": public,
                        "bad_media": report.by_split()}, final_dir / "results.json")
    copy_trainer_states(output_dir, final_dir, list(public))
    from ..hub.model_card import write_model_card

    repo_id = None
    if training_args.push_to_hub:
        repo_id = create_hub_repo(training_args.hub_model_id or output_dir.name,
                                  private=bool(training_args.hub_private_repo))
    write_model_card(final_dir, model.config, processor, training, public, dataset=data_args.dataset,
                     # Until it is pushed (`telme push` points the card at the real repository), no local path.
                     repo=repo_id or training_args.hub_model_id or f"your-name/{output_dir.resolve().name}")
    if repo_id:
        url = push_folder_to_hub(final_dir, repo_id, private=bool(training_args.hub_private_repo))
        logger.warning("Uploaded %s to %s.", final_dir, url)
    corpus = get_corpus(data_args.dataset)
    table = format_per_class_table({stage: r["test"] for stage, r in public.items()}, label_names,
                                   reference=corpus.paper)
    example = write_example_dialogue(data["test"], output_dir / "example_dialogue.csv")
    next_step = f"\nTry it on a test dialogue:\n  {predict_command(final_dir, example)}" if example else ""
    print(f"\nTest split, per-class F1 (%):\n{table}\n{next_step if announce_next_step else ''}")
    return public


def load_weights(model: TelMEForEmotionRecognition, folder: str | Path) -> None:
    """Give `model` the weights saved in a checkpoint folder (a stage's checkpoint-N, or final/)."""
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"Cannot resume from {folder}: it has no model.safetensors.")
    missing, unexpected = model.load_state_dict(load_file(str(path), device=str(model.device)), strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}.")


def run_config(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments):
    """The run's options as recorded in `results.json`: model and data options, and TelME's training options
    with the `TrainingArguments` that differ from transformers' defaults."""
    from transformers import TrainingArguments

    # transformers' own defaults, read from the dataclass (an instance would set up devices again).
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)
                if f.default is not dataclasses.MISSING}
    training = {key: value for key, value in training_args.to_dict().items()
                if key not in defaults or defaults[key] != value or key in ("learning_rate", "num_train_epochs",
                                                                              "per_device_train_batch_size", "seed")}
    return {"model": dataclasses.asdict(model_args), "data": dataclasses.asdict(data_args), "training": training}


def training_summary(model_args: ModelArguments, data_args: DataArguments, training_args: TelMETrainingArguments,
                     processor: Any) -> dict[str, Any]:
    """The training setup a model card shows: each stage's epochs and learning rate as it ran them, and the options
    that change the result (no local paths)."""
    from ..hub.model_card import is_hub_id

    dataset = data_args.dataset
    stages = {stage: {"epochs": float(stage_value(training_args, dataset, "epochs", stage)),
                      "learning_rate": float(stage_value(training_args, dataset, "learning_rate", stage)),
                      "precision": stage_precision(training_args, stage)}
              for stage in STAGES if stage in training_args.stages}
    options: dict[str, Any] = {"dataset": dataset, "preset": model_args.preset,
                               "reference_behaviour": model_args.reference_behaviour, "recipe": training_args.recipe}
    for name in ("text_model", "audio_model", "video_model"):
        if is_hub_id(getattr(model_args, name)):
            options[name] = getattr(model_args, name)
    for name in ("per_device_train_batch_size", "weight_decay", "max_grad_norm", "response_weight",
                 "response_temperature", "feature_weight", "feature_temperature"):
        options[name] = stage_value(training_args, dataset, name)
    options.update(gradient_accumulation_steps=training_args.gradient_accumulation_steps,
                   processes=training_args.world_size, warmup_steps=training_args.warmup_steps,
                   precision=training_args.precision, on_bad_media=data_args.on_bad_media,
                   max_media_seconds=processor.max_media_seconds, seed=training_args.seed)
    return {"stages": stages, "options": options}


def copy_trainer_states(output_dir: Path, final_dir: Path, stages: list[str]) -> None:
    """Each stage's `trainer_state.json` (its log history: losses, learning rates, dev metrics per epoch) into
    `final/trainer_state/STAGE.json`, with the best checkpoint named by its folder alone."""
    for stage in stages:
        source = output_dir / stage / "trainer_state.json"
        if not source.is_file():
            continue
        state = json.loads(source.read_text())
        if state.get("best_model_checkpoint"):
            state["best_model_checkpoint"] = Path(state["best_model_checkpoint"]).name
        target = final_dir / "trainer_state" / f"{stage}.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(state, indent=2) + "\n")


def _earlier_results(results_file: Path) -> dict[str, Any]:
    return json.loads(results_file.read_text()) if results_file.exists() else {}


def _merge_stages(earlier: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A later stage alone keeps what an earlier run in the same folder recorded for the stages before it."""
    merged = {**earlier, **current}
    return {stage: merged[stage] for stage in STAGES if stage in merged}


def create_hub_repo(repo_id: str, private: bool = True) -> str:
    """Create (or find) a model repository and return its full id (`user/name` for a bare `name`)."""
    from huggingface_hub import HfApi

    return HfApi().create_repo(repo_id, private=private, exist_ok=True).repo_id


def push_folder_to_hub(folder: str | Path, repo_id: str, private: bool = True) -> str:
    """Upload a checkpoint folder to the Hub (model, processor, code, model card, results) and return the repo URL;
    the card's usage section is pointed at the repository first."""
    from huggingface_hub import HfApi

    from ..hub.model_card import set_card_repo

    folder = Path(folder)
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a checkpoint folder (no {', '.join(missing)}): pass a run's "
                                "final/ folder.")
    api = HfApi()
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    set_card_repo(folder, repo.repo_id)
    api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), commit_message="Upload TelME checkpoint")
    return str(repo)


__all__ = ["build_model_and_processor", "copy_trainer_states", "create_hub_repo", "load_data", "push_folder_to_hub",
           "run_distillation", "run_seeds", "train_stage", "training_summary"]
