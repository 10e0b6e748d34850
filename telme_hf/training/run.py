# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelME's training run as a recipe: set up (data, model, processor, decoded media), train one stage after
another, evaluate every part on dev and test, save the checkpoint and the results, push.

Everything derived from the options comes from the run's plan (`telme_hf.training.plan`); `recipes/distill.py`
(under `accelerate launch`, or `telme train`) and `telme demo` parse the options and call :func:`run_distillation`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import set_seed

from .arguments import DataArguments, ModelArguments, TelMETrainingArguments
from .plan import RunPlan, plan_run, plan_seed_runs, recomputes_frozen_outputs
from ..data.frozen_outputs import (
    TEACHER_COLUMNS,
    add_encoder_features,
    add_feature_encoder_outputs,
    add_frozen_outputs,
)
from ..preprocessing import build_processor, processor_options, train_tokenizer
from ..atomic import atomic_path, atomic_write_text
from ..data.media_cache import MediaCache, prepare_media
from ..modeling.media_telme import MediaLoader
from ..data.registry import get_corpus, load_corpus
from ..inference.dialogue_files import predict_command, write_example_dialogue
from ..inference.recordings import write_example_recording
from ..inference.evaluation import evaluate_split, write_evaluation
from ..inference.metrics import make_compute_metrics
from ..inference.reports import format_per_class_table, format_seed_summary, summarize_seed_runs, write_metrics_json
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
from .trainer import PRECISION_DTYPES, STAGE_MODALITIES, STAGE_PARTS, STAGES, TrainingCollator, trainer_for_stage
from ..logging import get_logger, progress_disabled


logger = get_logger("telme_hf")
# The parts whose weights the cached outputs depend on: the teacher's for stage 2, every encoder's for stage 3.
# The teacher, frozen in stages 2 (its outputs cached); stage 3's frozen encoders are caching.ENCODER_PARTS.
TEACHER_PARTS = [STAGE_PARTS["teacher"]]


# -------------------------------------------------------------------------------------------------------- setup
def model_config_for(plan: RunPlan) -> TelMEConfig:
    """The configuration the run's model will have (read before any weights, so the data follows it)."""
    if plan.init_from:
        return TelMEConfig.from_pretrained(plan.init_from)
    return TelMEConfig.from_preset(plan.model_args.preset, reference_behaviour=plan.model_args.reference_behaviour)


def load_data(plan: RunPlan):
    """The run's splits and the report of their missing media, the synthetic corpus generated when needed.

    The model's preprocessing decides every data-side behaviour (speaker indexing, CSV text), as for evaluation:
    see `telme_hf.data.registry.load_corpus`.
    """
    data_args = plan.data_args
    if data_args.dataset == "synthetic" and not (Path(plan.data_root) / "train_sent_emo.csv").exists():
        from ..data.synthetic import make_synthetic_corpus

        make_synthetic_corpus(plan.data_root, num_dialogues=data_args.synthetic_dialogues,
                              seed=data_args.synthetic_seed,
                              progress=not progress_disabled(plan.training_args.disable_tqdm))
    config = model_config_for(plan)
    if plan.init_from:
        from transformers import AutoProcessor

        preprocessing = AutoProcessor.from_pretrained(plan.init_from)
    else:
        preprocessing = processor_options(config, **plan.processor_overrides)
    return load_corpus(data_args.dataset, plan.data_root, preprocessing, config.label_names,
                       modalities=plan.modalities, on_bad_media=data_args.on_bad_media)


def build_model_and_processor(plan: RunPlan, train_texts: list[str], label_names: list[str]):
    """The starting model: a checkpoint (`init_from`, e.g. an earlier run's `final/`), tiny random backbones with a
    tokenizer trained on the corpus, or the paper's pretrained backbones."""
    model_args = plan.model_args
    if plan.init_from:
        from transformers import AutoProcessor

        from ..preprocessing import apply_legacy_preprocessing

        model = TelMEForEmotionRecognition.from_pretrained(plan.init_from)
        if model.config.label_names != list(label_names):
            raise ValueError(f"{plan.init_from} predicts {model.config.label_names} but the data's labels are "
                             f"{list(label_names)}.")
        processor = AutoProcessor.from_pretrained(plan.init_from)
        apply_legacy_preprocessing(processor, model.config, plan.init_from)
        for name, value in plan.processor_overrides.items():
            setattr(processor, name, value)
        return model, processor
    config = TelMEConfig.from_preset(model_args.preset, reference_behaviour=model_args.reference_behaviour,
                                     id2label=dict(enumerate(label_names)))
    if model_args.preset == "tiny" or model_args.random_weights:
        tokenizer = train_tokenizer(train_texts, vocab_size=model_args.tokenizer_vocab_size)
        config.text_config.vocab_size = len(tokenizer)
        model = TelMEForEmotionRecognition(config)
    else:
        model = TelMEForEmotionRecognition.from_backbones(
            config, text_model=model_args.text_model, audio_model=model_args.audio_model,
            video_model=model_args.video_model, mean_resizing=not plan.reference,
        )
        # After the model: the processor follows the backbones' own configs (image size, vocabulary).
        tokenizer = model_args.tokenizer or model_args.text_model
    processor = build_processor(model.config, tokenizer, **plan.processor_overrides)
    if plan.reference:
        reset_heads_to_pytorch_defaults(model)
        logger.info("recipe=reference: heads and fusion re-initialised with PyTorch's defaults%s.",
                    "" if model_args.preset == "tiny" else ", speaker-token rows drawn from N(0, 0.02)")
    return model, processor


def decode_media(plan: RunPlan, splits: dict[str, Any], processor: TelMEProcessor, report: Any):
    """The decode pass: every clip of every split decoded once into the media cache, each bad clip handled by the
    policy and logged once. Returns the splits (bad rows dropped under `skip`), the run's loader and its cache."""
    media_cache = MediaCache(plan.cache_dir / "media")
    # One loader for the run. It records into the corpus loader's report, so a clip found missing there is not
    # reported again.
    loader = MediaLoader.for_processor(processor, media_cache, on_bad_media=plan.data_args.on_bad_media,
                                       report=report)
    state = PartialState()
    for name in splits:
        loader.split = name
        with state.main_process_first():
            splits[name] = prepare_media(splits[name], loader, desc=f"decoding {name} media",
                                         disable_progress=plan.training_args.disable_tqdm,
                                         listed_in=str(plan.output_dir / "results.json"),
                                         num_workers=plan.training_args.dataloader_num_workers)
    loader.split = ""
    return splits, loader, media_cache


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
    plan: RunPlan,
    stage: str,
    model: TelMEForEmotionRecognition,
    processor: TelMEProcessor,
    splits: dict[str, Any],
    loader: MediaLoader | None,
    scaler_state: dict[str, Any] | None = None,
    resume_checkpoint: str | None = None,
    earlier_checkpoints: Path | None = None,
) -> dict[str, Any]:
    """Train one stage and keep its best dev epoch.

    Args:
        scaler_state: the grad scaler's state to start from (the reference recipe's video student continues the
            audio student's).
        resume_checkpoint: one of the stage's epoch checkpoints to continue from (the model must already hold its
            weights, so that the frozen outputs are those of the interrupted run).
        earlier_checkpoints: the previous stage's folder, whose checkpoints go once this stage has saved one.

    Returns:
        `{"selected_epoch", "best_checkpoint", "autocast_dtype", "grad_scaler", "_scaler_state"}`: what the steps
        ran in is measured inside the forward (`PrecisionMonitor`); `_scaler_state` is the scaler's final state.
    """
    args = plan.stage_args[stage]
    recompute = recomputes_frozen_outputs(plan.training_args) and stage != "teacher"
    # Recomputing the teacher's outputs in a student stage needs its text in every batch.
    modalities = ("text", *STAGE_MODALITIES[stage]) if recompute and stage in ("audio", "video") \
        else STAGE_MODALITIES[stage]
    collator = TrainingCollator(processor, modalities, loader=loader)
    train, dev = splits["train"], splits["dev"]
    state = PartialState()
    frozen_dir = plan.cache_dir / "frozen"
    if stage in ("audio", "video") and not recompute:
        with state.main_process_first():
            train = add_frozen_outputs(train, model, TrainingCollator(processor, ("text",)), TEACHER_COLUMNS,
                                       frozen_dir, TEACHER_PARTS, args.per_device_eval_batch_size,
                                       desc=f"teacher outputs {stage}")
    if keeps_feature_encoder_outputs(args, model, processor, loader):
        with state.main_process_first():
            train = add_feature_encoder_outputs(train, model, processor, loader, frozen_dir,
                                                args.per_device_eval_batch_size, PRECISION_DTYPES[args.precision])
    if stage == "fusion":
        # Dev's features are the same either way (eval mode, CSV order); train's, when recomputed, come from every
        # shuffled batch under the stage's autocast, as in the original.
        with state.main_process_first():
            dev = add_encoder_features(dev, model, processor, loader, frozen_dir, args.per_device_eval_batch_size,
                                       desc="features dev")
            if not recompute:
                train = add_encoder_features(train, model, processor, loader, frozen_dir,
                                             args.per_device_eval_batch_size, desc="features train")
    callbacks = [] if args.keep_checkpoints else [RemoveEarlierCheckpoints(earlier_checkpoints)]
    trainer = trainer_for_stage(stage)(
        model=model, args=args, train_dataset=train, eval_dataset=dev, data_collator=collator,
        compute_metrics=make_compute_metrics(model.config.label_names), callbacks=callbacks,
    )
    if continue_grad_scaler(trainer, scaler_state):
        logger.info("stage %s starts from the previous stage's grad scaler (scale %.0f), as the original's one "
                    "scaler for both students.", stage, scaler_state["scale"])
    if resume_checkpoint:
        logger.info("stage %s resumes from %s.", stage, resume_checkpoint)
    trainer.train(resume_from_checkpoint=resume_checkpoint)
    # The log history (learning rate and loss of every logged step, dev metrics of every epoch) stays with the
    # stage, also when its checkpoints are removed.
    trainer.save_state()
    precision = trainer.precision_monitor.report()
    logger.info("stage %s trained under %s autocast%s.", stage, precision["autocast_dtype"],
                "" if not precision["grad_scaler"] else
                ", grad scaler at {final_scale:g} with {skipped_steps} skipped steps".format(**precision["grad_scaler"]))
    return {"selected_epoch": _selected_epoch(trainer), "best_checkpoint": trainer.state.best_model_checkpoint,
            **precision, "_scaler_state": grad_scaler_state(trainer)}


def keeps_feature_encoder_outputs(args: TelMETrainingArguments, model: TelMEForEmotionRecognition,
                                  processor: TelMEProcessor, loader: MediaLoader | None) -> bool:
    """Whether an audio stage computes its frozen feature encoder's outputs once (`add_feature_encoder_outputs`)
    instead of every step: with `freeze_feature_encoder`, the teacher's outputs kept (not recomputed), and the
    student's mean pooling over its frame mask of right-padded audio (the original's `"first"` pooling of
    left-padded audio reads the frames of the padding too, which kept outputs do not have)."""
    return (args.stage == "audio" and args.freeze_feature_encoder and loader is not None
            and not recomputes_frozen_outputs(args) and model.config.audio_pooling == "mean"
            and processor.audio_padding_side == "right")


def train_stages(plan: RunPlan, model: TelMEForEmotionRecognition, processor: TelMEProcessor,
                 splits: dict[str, Any], loader: MediaLoader | None,
                 timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Every planned stage in order, each resumed where a killed run stopped (`resume_from_checkpoint`); returns
    per stage its selected epoch and the precision it ran in. The model ends with the last stage's best weights
    (the last stage's epoch checkpoints stay until `save_run` has written `final/`). `timings` gets each trained
    stage's wall seconds, its one-off frozen-output pass and dev evaluations included."""
    state = PartialState()
    results: dict[str, Any] = {}
    scaler_state = None
    resume = resume_point(plan.training_args.resume_from_checkpoint, plan.output_dir, list(plan.stages))
    previous_dir: Path | None = None
    for stage in plan.stages:
        if resume and stage in resume["finished"]:
            finished = resume["finished"][stage]
            results[stage] = {"selected_epoch": finished["selected_epoch"],
                              **{key: finished[key] for key in ("autocast_dtype", "grad_scaler") if key in finished}}
            previous_dir = plan.output_dir / stage
            logger.info("stage %s finished before the interruption: skipped.", stage)
            continue
        checkpoint = None
        if resume and stage == resume["stage"] and resume["weights"]:
            # The weights the interrupted run had at this point, before any frozen output is computed from them.
            load_weights(model, resume["weights"])
            checkpoint = resume["checkpoint"]
        logger.info("Stage %s: training %s.", stage, STAGE_PARTS[stage].replace("_", " "))
        # The original trains the video student after the audio student with the same grad scaler.
        carried = scaler_state if plan.reference and stage == "video" else None
        began = time.perf_counter()
        result = train_stage(plan, stage, model, processor, splits, loader, carried, checkpoint, previous_dir)
        if timings is not None:
            timings[stage] = time.perf_counter() - began
        scaler_state = result.pop("_scaler_state")
        best_checkpoint = result.pop("best_checkpoint")
        if state.is_main_process:
            record_stage(plan.output_dir, stage, result["selected_epoch"], best_checkpoint,
                         {key: result[key] for key in ("autocast_dtype", "grad_scaler")})
        results[stage] = result
        previous_dir = plan.output_dir / stage
    if resume and resume["stage"] is None:  # every stage had finished: the run's own final weights
        final = plan.output_dir / "final"
        load_weights(model, final if (final / "model.safetensors").is_file() else resume["weights"])
    return results


def evaluate_run(plan: RunPlan, model: TelMEForEmotionRecognition, processor: TelMEProcessor,
                 splits: dict[str, Any], loader: MediaLoader | None, media_cache: MediaCache | None,
                 report: Any) -> dict[str, Any]:
    """Every part, once, on dev and test: the same evaluation as `telme evaluate`, from the encoders' features
    (the fusion stage computed dev's already; test's are computed here, once, and kept for a resumed run)."""
    state = PartialState()
    batch_size = plan.training_args.per_device_eval_batch_size
    evaluation = {}
    for name in ("dev", "test"):
        split = splits[name]
        if loader is not None:
            with state.main_process_first():
                split = add_encoder_features(split, model, processor, loader, plan.cache_dir / "frozen", batch_size,
                                             desc=f"features {name}")
        evaluation[name] = evaluate_split(model, processor, split, batch_size,
                                          on_bad_media=plan.data_args.on_bad_media, cache=media_cache,
                                          progress=False, split=name, loader=loader, report=report)
    return evaluation


# ----------------------------------------------------------------------------------------------------------- run
def run_distillation(
    plan: RunPlan | ModelArguments,
    data_args: DataArguments | None = None,
    training_args: TelMETrainingArguments | None = None,
    announce_next_step: bool = True,
) -> dict[str, Any]:
    """Run every planned stage in order and write the run's artefacts to its `output_dir`.

    Args:
        plan: the run's plan (`telme_hf.training.plan.plan_run`), or its model arguments followed by
            `data_args` and `training_args`, planned here.
        announce_next_step: end by printing the `telme predict` command that tries the model.

    Returns:
        Per stage: selected epoch, dev and test metrics, the precision its steps ran in. The run writes
        `results.json` (the same, every utterance with bad media, the options), `final/` (model, processor, model
        card), `confusion_matrix.png` and `predictions.csv` of the last stage on test, and per stage its
        `trainer_state.json`. With `seeds`, the whole run is repeated per seed into `output_dir/seed-N/` and
        `output_dir/summary.json` holds the mean and standard deviation over the seeds (:func:`run_seeds`).
    """
    from tqdm.contrib.logging import logging_redirect_tqdm
    from transformers.utils import logging as hf_logging

    if not isinstance(plan, RunPlan):
        plan = plan_run(plan, data_args, training_args)
    # transformers' own warnings (the Trainer's, the models') are written above the progress bars, not into them;
    # telme_hf's logger does so itself.
    with logging_redirect_tqdm(loggers=[hf_logging.get_logger("transformers")]), \
            _library_progress_bars(plan.training_args.disable_tqdm):
        if plan.training_args.seeds:
            return run_seeds(plan)
        return run_once(plan, announce_next_step)


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


def run_seeds(plan: RunPlan) -> dict[str, Any]:
    """The whole recipe once per seed of `seeds`, then `summary.json` and a mean ± std table.

    The runs share the decoded-media cache and the corpus (decoded and generated once); each has its own folder
    `output_dir/seed-N/` with everything a single run writes.
    """
    runs = {}
    for seed_plan in plan_seed_runs(plan):
        logger.info("Seed %d of %s: %s", seed_plan.training_args.seed, plan.training_args.seeds, seed_plan.output_dir)
        runs[seed_plan.training_args.seed] = run_once(seed_plan, False)
    if not PartialState().is_main_process:
        return {}
    summary = summarize_seed_runs(runs, list(get_corpus(plan.dataset).labels))
    write_metrics_json(summary, plan.output_dir / "summary.json")
    print(f"\nMean ± standard deviation over seeds {plan.training_args.seeds} (%):\n{format_seed_summary(summary)}\n"
          f"Wrote {plan.output_dir / 'summary.json'}")
    return summary


def run_once(plan: RunPlan, announce_next_step: bool = True) -> dict[str, Any]:
    """One run: set up, train the stages, evaluate, save, push (see :func:`run_distillation`)."""
    set_seed(plan.training_args.seed)
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    state = PartialState()  # the process's device; with several processes, rank 0 prepares and writes
    timings: dict[str, float] = {}
    began = time.perf_counter()
    with state.main_process_first():
        data, report = load_data(plan)
    label_names = data["train"].features["label"].names
    model, processor = build_model_and_processor(plan, list(data["train"]["text"]), label_names)
    # Frozen outputs are cached before the Trainer places the model: put it on the device first.
    model.to(state.device)
    if state.is_main_process:
        # Temporary files a killed run left in the cache go before this run writes its own.
        take_cache_lock(plan.cache_dir)
    state.wait_for_everyone()
    try:
        splits = {name: data[name] for name in ("train", "dev", "test")}
        loader = media_cache = None
        mark = time.perf_counter()
        timings["load"] = mark - began  # the corpus (the demo generates it first), the model and the processor
        if plan.needs_media:
            splits, loader, media_cache = decode_media(plan, splits, processor, report)
        timings["decode"] = time.perf_counter() - mark
        results = train_stages(plan, model, processor, splits, loader, timings)
        mark = time.perf_counter()
        evaluation = evaluate_run(plan, model, processor, splits, loader, media_cache, report)
        timings["evaluation"] = time.perf_counter() - mark
        mark = time.perf_counter()
    finally:
        if state.is_main_process:
            release_cache_lock(plan.cache_dir)
    if not state.is_main_process:
        return results
    for stage, result in results.items():
        result.update(dev=evaluation["dev"][stage], test=evaluation["test"][stage])
    public = save_run(plan, model, processor, results, evaluation, report)
    example = write_example_dialogue(data["test"], plan.output_dir / "example_dialogue.csv")
    write_example_recording(data["test"], plan.output_dir / "example_recording.mp4")
    timings["artefacts"] = time.perf_counter() - mark
    record_timings(plan.output_dir / "results.json", timings, time.perf_counter() - began)
    if example and announce_next_step:
        print(f"Try it on a test dialogue:\n  {predict_command(plan.output_dir / 'final', example)}")
    return public


def record_timings(results_file: Path, timings: dict[str, float], total: float) -> None:
    """Add where the run's time went to its `results.json` (not to `final/`'s: the seconds are this machine's)."""
    results = json.loads(results_file.read_text())
    results["timings_s"] = {**{name: round(seconds, 2) for name, seconds in timings.items()}, "total": round(total, 2)}
    write_metrics_json(results, results_file)


def save_run(plan: RunPlan, model: TelMEForEmotionRecognition, processor: TelMEProcessor, results: dict[str, Any],
             evaluation: dict[str, Any], report: Any) -> dict[str, Any]:
    """Write the run's artefacts: `final/` (weights, processor, model card, results without local paths, stages'
    trainer states, the confusion matrix), `results.json`, `predictions.csv`, `confusion_matrix.png`; then push
    `final/` when asked. Returns every stage's results (those of earlier runs in the folder kept)."""
    from ..hub.model_card import write_model_card
    from ..hub.push import create_hub_repo, push_folder_to_hub
    from ..inference.prediction import save_checkpoint

    output_dir, training_args = plan.output_dir, plan.training_args
    label_names = model.config.label_names
    final_dir = save_checkpoint(model, processor, output_dir / "final")  # with the pipeline it runs
    if not training_args.keep_checkpoints:
        remove_checkpoints(output_dir / plan.stages[-1])  # final/ holds the last stage's best weights now
    earlier = _earlier_results(output_dir / "results.json")
    public = _merge_stages(earlier.get("stages", {}), results)
    training = training_summary(plan, processor)
    training["stages"] = _merge_stages((earlier.get("training") or {}).get("stages", {}), training["stages"])
    write_metrics_json({"config": run_config(plan), "training": training, "stages": public,
                        "bad_media": report.by_split()}, output_dir / "results.json")
    last = [s for s in STAGES if s in results][-1]
    paths = write_evaluation(evaluation["test"], output_dir, label_names, {"split": "test"}, part=last,
                             metrics_file=None)
    if paths.get("confusion_matrix") and Path(paths["confusion_matrix"]).is_file():
        # The checkpoint carries its test confusion matrix (`telme app` shows it beside the card).
        with atomic_path(final_dir / "confusion_matrix.png") as copy:
            shutil.copy2(paths["confusion_matrix"], copy)
    # What the card reports travels with the weights, without the run's local paths.
    write_metrics_json({"dataset": plan.dataset, "training": training, "stages": public,
                        "bad_media": report.by_split()}, final_dir / "results.json")
    copy_trainer_states(output_dir, final_dir, list(public))
    repo_id = None
    if training_args.push_to_hub:
        repo_id = create_hub_repo(training_args.hub_model_id or output_dir.name,
                                  private=bool(training_args.hub_private_repo))
    write_model_card(final_dir, model.config, processor, training, public, dataset=plan.dataset,
                     license=training_args.license,
                     # Until it is pushed (`telme push` points the card at the real repository), no local path.
                     repo=repo_id or training_args.hub_model_id or f"your-name/{output_dir.resolve().name}")
    if repo_id:
        url = push_folder_to_hub(final_dir, repo_id, private=bool(training_args.hub_private_repo))
        logger.warning("Uploaded %s to %s.", final_dir, url)
    table = format_per_class_table({stage: r["test"] for stage, r in public.items()}, label_names,
                                   reference=get_corpus(plan.dataset).paper)
    print(f"\nTest split, per-class F1 (%):\n{table}\n")
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


def run_config(plan: RunPlan) -> dict[str, Any]:
    """The run's options as recorded in `results.json`: model and data options, and TelME's training options
    with the `TrainingArguments` that differ from transformers' defaults."""
    from transformers import TrainingArguments

    # transformers' own defaults, read from the dataclass (an instance would set up devices again).
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)
                if f.default is not dataclasses.MISSING}
    training = {key: value for key, value in plan.training_args.to_dict().items()
                if key not in defaults or defaults[key] != value or key in ("learning_rate", "num_train_epochs",
                                                                              "per_device_train_batch_size", "seed")}
    return {"model": dataclasses.asdict(plan.model_args), "data": dataclasses.asdict(plan.data_args),
            "training": training}


def training_summary(plan: RunPlan, processor: Any) -> dict[str, Any]:
    """The training setup a model card shows: each stage's epochs, learning rate and precision as it ran them, and
    the options that change the result (no local paths)."""
    from ..hub.model_card import is_hub_id

    model_args, training_args = plan.model_args, plan.training_args
    stages = {stage: {"epochs": float(args.num_train_epochs), "learning_rate": float(args.learning_rate),
                      "precision": args.precision} for stage, args in plan.stage_args.items()}
    options: dict[str, Any] = {"dataset": plan.dataset, "preset": model_args.preset,
                               "reference_behaviour": model_args.reference_behaviour, "recipe": training_args.recipe}
    for name in ("text_model", "audio_model", "video_model"):
        if is_hub_id(getattr(model_args, name)):
            options[name] = getattr(model_args, name)
    # Settings every stage shares (the recipe may set them): read from the first stage's arguments.
    first = plan.stage_args[plan.stages[0]]
    for name in ("per_device_train_batch_size", "weight_decay", "max_grad_norm", "response_weight",
                 "response_temperature", "feature_weight", "feature_temperature"):
        options[name] = getattr(first, name)
    options.update(gradient_accumulation_steps=training_args.gradient_accumulation_steps,
                   processes=training_args.world_size, warmup_steps=training_args.warmup_steps,
                   precision=training_args.precision, on_bad_media=plan.data_args.on_bad_media,
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
        atomic_write_text(target, json.dumps(state, indent=2) + "\n")


def _earlier_results(results_file: Path) -> dict[str, Any]:
    return json.loads(results_file.read_text()) if results_file.exists() else {}


def _merge_stages(earlier: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A later stage alone keeps what an earlier run in the same folder recorded for the stages before it."""
    merged = {**earlier, **current}
    return {stage: merged[stage] for stage in STAGES if stage in merged}


__all__ = ["RunPlan", "build_model_and_processor", "copy_trainer_states", "decode_media", "evaluate_run",
           "load_data", "run_distillation", "run_once", "run_seeds", "save_run", "train_stage", "train_stages",
           "training_summary"]
