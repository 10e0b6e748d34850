"""Time what caching saves TelME's training: decoded media, the frozen teacher's outputs, every frozen feature.

Generates a synthetic MELD-layout corpus (`telme_hf.data.synthetic`) in a temporary folder, builds the `tiny`
preset with a tokenizer trained on the train texts, and times in one process and one run each cached path against
the naive one, the original implementation's approach (re-decode every clip every epoch, recompute every frozen
encoder every step):

  1. data        collating a batch of train rows (text + audio + video), over every batch of an epoch:
                   naive   `TrainingCollator(cache=None)`: every clip decoded again
                   cached  a warm `MediaCache` (filled by `prepare_media`, the one pass before training)
  2. stage 2     one optimisation step of the audio student (`StudentDistillationTrainer.compute_loss`, backward,
                 AdamW step):
                   naive   no media cache, the frozen teacher run on every batch (the collator also tokenises)
                   mid     a warm media cache, the teacher still run on every batch
                   cached  a warm media cache and `teacher_logits/teacher_features` columns (`TEACHER_COLUMNS`)
  3. stage 3     one epoch of fusion training (`FusionTrainer.compute_loss`, backward, AdamW step):
                   naive   no media cache, all three frozen encoders run on every batch (the original's path)
                   mid     a warm media cache, the three encoders still run on every batch
                   cached  precomputed `text/audio/video_features` columns (`FEATURE_COLUMNS`)

A step includes everything the training loop does for it: fetching the rows from the dataset, collating (decoding
or reading the cache), moving the batch to the device, the forward/backward pass and the optimizer step. Each path
gets one warm-up step, then `--repeats` epochs over the train split in order; the paths of a section take turns on
every batch, so a change in the machine's load during the run hits all of them alike. Each batch's time is the
median over the epochs; a batch or step is the median over batches, an epoch the sum over batches (what an epoch costs
without the stray slow step of a shared machine). Wall and CPU time (all threads of this process) are both shown:
CPU time is steadier when other work shares the cores. Ratios are against the naive row of the same section,
measured in this run. The one-off work a cached path needs first (the decode pass into the media cache, the frozen
outputs; median over `--repeats` fresh runs) is charged in the ratio over `--amortise` epochs.

The ratios show the mechanism on tiny random backbones (~124k parameters) and 64x48 clips (~15 ms to decode here).
They understate what caching saves at full scale, where a 720p MELD clip takes ~150 ms to decode
(`bench_decode.py`) and the frozen parts are the paper's backbones; in stage 2 in particular the tiny teacher costs
little next to the student's backward pass, unlike roberta-large next to data2vec-audio-base.

    python benchmarks/bench_training.py                 # ~1-2 minutes on 2 cores
    python benchmarks/bench_training.py --dialogues 30 --repeats 7
"""

from __future__ import annotations

import os

# Offline, quiet: no Hub access is needed, and progress bars would interleave with the table.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


PROCESS_START = time.perf_counter()  # before the heavy imports below, so the reported run time includes them

import datasets
import torch
import transformers

import telme_hf.data.media_cache as media_cache_module
import telme_hf.modeling.media_telme as media_module
from telme_hf import TelMEConfig, TelMEForEmotionRecognition, build_processor, train_tokenizer
from telme_hf.data.frozen_outputs import ENCODER_PARTS, FEATURE_COLUMNS, TEACHER_COLUMNS, add_frozen_outputs
from telme_hf.data.meld import load_meld
from telme_hf.data.synthetic import make_synthetic_corpus
from telme_hf.modeling import TelMEProcessor
from telme_hf.data.media_cache import MediaCache, prepare_media
from telme_hf.modeling.media_telme import MODALITIES, MediaLoader
from telme_hf.training.trainer import TrainingCollator
from telme_hf.training.trainer import STAGE_PARTS, TelMEStageTrainer, TelMETrainingArguments, trainer_for_stage


FEATURE_PARTS = list(ENCODER_PARTS)


# ----------------------------------------------------------------------------------------------------- counting
class DecodeCounter:
    """Counts every call of the decoder behind `MediaLoader`, with or without a cache.

    `MediaCache.decode_calls` only sees the cached path; the naive path (`MediaLoader` without a cache) calls
    `decode_clip` itself. Both look the name up in `loading_telme`'s globals, so the counter wraps it there.
    """

    def __init__(self) -> None:
        self.calls = 0

    @contextmanager
    def installed(self) -> Iterator["DecodeCounter"]:
        # `MediaCache` (a cached path) and `MediaLoader` (no cache) each call the decoder of their own module.
        original = media_module.decode_clip

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        media_module.decode_clip = media_cache_module.decode_clip = counted
        try:
            yield self
        finally:
            media_module.decode_clip = media_cache_module.decode_clip = original


def synchronize() -> None:
    """Wait for queued accelerator work, so a timer around a step measures the step (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------------ paths
@dataclass
class TimedPath:
    """One way of running an epoch: `step(indices)` does all the work for one batch of row indices.

    `cached` marks a path that reads the media cache (it must decode nothing once the cache is filled);
    `one_off_s` is the work it needs done before training (filling caches), charged in the amortised ratio.
    """

    name: str
    step: Callable[[list[int]], None]
    cached: bool = False
    one_off_s: float = 0.0
    wall_ms: list[list[float]] = field(default_factory=list)  # per batch, one time per epoch
    cpu_ms: list[list[float]] = field(default_factory=list)
    decodes_last_epoch: int = 0

    def step_medians(self, clock: str) -> list[float]:
        """Each batch's median over the epochs, on the `"wall"` or `"cpu"` clock."""
        return [statistics.median(times) for times in getattr(self, f"{clock}_ms")]

    def epoch(self, clock: str) -> float:
        """A typical epoch: the sum over batches of each batch's median."""
        return sum(self.step_medians(clock))

    def epoch_totals(self, clock: str) -> list[float]:
        """What each timed epoch took, as measured (spikes included)."""
        return [sum(epoch) for epoch in zip(*getattr(self, f"{clock}_ms"))]


def batches_of(num_rows: int, batch_size: int) -> list[list[int]]:
    """Sequential batches over all rows, the last one partial (as the Trainer's DataLoader makes them)."""
    return [list(range(start, min(start + batch_size, num_rows))) for start in range(0, num_rows, batch_size)]


def time_paths(paths: Sequence[TimedPath], batches: list[list[int]], repeats: int, counter: DecodeCounter) -> None:
    """Fill each path's per-batch wall and CPU times (ms): one warm-up step each, then `repeats` epochs.

    The paths take turns on every batch. The decode calls each path made in the last epoch are kept for the table.
    """
    for path in paths:
        path.step(batches[0])
        path.wall_ms = [[] for _ in batches]
        path.cpu_ms = [[] for _ in batches]
    for _ in range(repeats):
        decodes = [0] * len(paths)
        for batch, indices in enumerate(batches):
            for number, path in enumerate(paths):
                calls_before = counter.calls
                synchronize()
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                path.step(indices)
                synchronize()
                path.cpu_ms[batch].append((time.process_time() - cpu_start) * 1000)
                path.wall_ms[batch].append((time.perf_counter() - wall_start) * 1000)
                decodes[number] += counter.calls - calls_before
        for path, count in zip(paths, decodes):
            path.decodes_last_epoch = count


def collate_step(dataset: datasets.Dataset, collator: TrainingCollator) -> Callable[[list[int]], None]:
    """Fetch the rows and build the batch: the data side of a training step."""

    def step(indices: list[int]) -> None:
        collator(dataset.__getitems__(indices))

    return step


def training_step(
    trainer: TelMEStageTrainer,
    optimizer: torch.optim.Optimizer,
    dataset: datasets.Dataset,
    collator: TrainingCollator,
) -> Callable[[list[int]], None]:
    """Fetch, collate, `compute_loss` (the stage's loss, frozen parts in eval mode), backward, optimizer step.

    `Trainer.training_step` is not used: in transformers 5 it depends on state that `train()` sets up, and the
    parts that matter here (the stage's `compute_loss`, backward, the update) are the same.
    """
    model, device = trainer.model, trainer.args.device

    def step(indices: list[int]) -> None:
        batch = collator(dataset.__getitems__(indices))
        batch = {name: value.to(device) for name, value in batch.items()}
        model.train()  # as the Trainer does before every step; compute_loss puts the frozen parts back in eval
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def stage_trainer(
    stage: str, model: TelMEForEmotionRecognition, batch_size: int, output_dir: Path, **options: Any
) -> tuple[TelMEStageTrainer, torch.optim.Optimizer]:
    """The stage's Trainer subclass (it freezes all but the stage's part) and its AdamW over that part; `options`
    are more `TelMETrainingArguments` (e.g. `freeze_feature_encoder=True`)."""
    args = TelMETrainingArguments(
        output_dir=str(output_dir / stage), stage=stage, per_device_train_batch_size=batch_size, learning_rate=1e-4,
        report_to="none", save_strategy="no", eval_strategy="no", load_best_model_at_end=False,
        dataloader_pin_memory=False, disable_tqdm=True, **options,
    )
    trainer = trainer_for_stage(stage)(model=model, args=args)
    return trainer, trainer.create_optimizer()


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call takes, and what it returned."""
    synchronize()
    start = time.perf_counter()
    result = function()
    synchronize()
    return time.perf_counter() - start, result


def median_one_off(function: Callable[[int], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of a one-off computation over `repeats` fresh runs (`function(i)` must not reuse run i-1's
    results), and the last run's result."""
    seconds, result = [], None
    for i in range(repeats):
        elapsed, result = timed(lambda: function(i))
        seconds.append(elapsed)
    return statistics.median(seconds), result


def max_difference(
    model: TelMEForEmotionRecognition,
    attribute: str,
    raw: datasets.Dataset,
    raw_collator: TrainingCollator,
    cached: datasets.Dataset,
    cached_column: str | None,
    indices: list[int],
) -> float:
    """Largest |difference| between an output recomputed from raw inputs and its cached counterpart: the column
    `cached_column` itself, or (when `None`) the same output computed from the cached rows' feature columns."""
    model.eval()
    device = next(model.parameters()).device
    raw_batch = raw_collator(raw.__getitems__(indices))
    raw_batch.pop("labels", None)
    with torch.no_grad():
        recomputed = getattr(model(**{k: v.to(device) for k, v in raw_batch.items()}), attribute)
        if cached_column is not None:
            reference = torch.tensor(cached[indices][cached_column], device=device)
        else:
            cached_batch = raw_collator(cached.__getitems__(indices))
            cached_batch.pop("labels", None)
            reference = getattr(model(**{k: v.to(device) for k, v in cached_batch.items()}), attribute)
    return float((recomputed - reference).abs().max())


# ------------------------------------------------------------------------------------------------------ table
@dataclass
class Row:
    """One line of the table: a timed path within a section, reported per `unit` ("batch", "step" or "epoch")."""

    section: str
    path: TimedPath
    unit: str

    def figure(self, clock: str) -> float:
        return self.path.epoch(clock) if self.unit == "epoch" else statistics.median(self.path.step_medians(clock))

    def spread(self) -> str:
        """Wall min-max: over batches for a batch or step (batches differ in audio length), over the measured
        epochs for an epoch."""
        values = self.path.epoch_totals("wall") if self.unit == "epoch" else self.path.step_medians("wall")
        return f"{min(values):.1f}-{max(values):.1f}"


def print_table(rows: list[Row], steps_per_epoch: int, amortise: int) -> None:
    """path | wall ms | spread | CPU ms | wall and CPU ratio vs the section's naive row | wall speed-up |
    decodes per epoch | one-off seconds | wall ratio over `amortise` epochs including the one-off work."""
    names = [f"{row.section}: {row.path.name} (ms/{row.unit})" for row in rows]
    width = max(map(len, names))
    amortised_title = f"ratio {amortise} ep. + one-off"
    print(f"| {'path':<{width}} | wall ms | min-max wall    | CPU ms | ratio wall | ratio CPU | speed-up "
          f"| decodes/epoch | one-off s | {amortised_title} |")
    print(f"|{'-' * (width + 2)}|--------:|:----------------|-------:|-----------:|----------:|---------:"
          f"|--------------:|----------:|{'-' * (len(amortised_title) + 1)}:|")
    naive: dict[str, Row] = {}
    for name, row in zip(names, rows):
        base = naive.setdefault(row.section, row)  # the first row of a section is its naive path
        wall, cpu = row.figure("wall"), row.figure("cpu")
        base_wall, base_cpu = base.figure("wall"), base.figure("cpu")
        amortised = (row.path.one_off_s * 1000 + amortise * row.path.epoch("wall")) / (
            base.path.one_off_s * 1000 + amortise * base.path.epoch("wall"))
        print(f"| {name:<{width}} | {wall:7.1f} | {row.spread():<15} | {cpu:6.1f} | {wall / base_wall:10.3f} "
              f"| {cpu / base_cpu:9.3f} | {base_wall / wall:7.1f}x | {row.path.decodes_last_epoch:13d} "
              f"| {row.path.one_off_s:9.2f} | {amortised:{len(amortised_title)}.3f} |")
    print(f"\n(one epoch = {steps_per_epoch} batches; ms/batch and ms/step: median over batches, ms/epoch: sum over "
          "batches, of each batch's median over the timed epochs;\n decodes/epoch: in the last timed epoch, after the "
          "warm-up and the earlier epochs.\n ratio = time / the section's naive time in this run, speed-up = "
          f"naive wall / wall. The {amortise}-epoch ratio is (one-off + {amortise} x epoch) / ({amortise} x naive "
          "epoch),\n wall clock; the decode pass serves every stage but is charged in full to each cached row.)")


# ------------------------------------------------------------------------------------------------------- main
def build(corpus: Path, vocab_size: int) -> tuple[datasets.Dataset, TelMEForEmotionRecognition, TelMEProcessor]:
    """The train split (bad clips left in: `prepare_media` drops them) and the tiny model with its processor."""
    train = load_meld(corpus, splits=("train",), on_bad_media="skip")["train"]
    tokenizer = train_tokenizer(list(train["text"]), vocab_size=vocab_size)
    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    return train, TelMEForEmotionRecognition(config), build_processor(config, tokenizer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time TelME training with and without caching (decoded media, teacher outputs, frozen "
                    "features) on a synthetic corpus and the tiny preset; ratios vs the naive path.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dialogues", type=int, default=10,
                        help="train dialogues of the synthetic corpus (2-8 turns, ~5 on average)")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per path (and runs of each one-off)")
    parser.add_argument("--batch-size", type=int, default=4, help="training batch size (the recipe's default)")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="batch size of the frozen-output pass")
    parser.add_argument("--amortise", type=int, default=10, help="epochs over which the one-off work is amortised")
    parser.add_argument("--vocab-size", type=int, default=1000, help="size of the tokenizer trained on the texts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus")
    parser.add_argument("--workdir", type=Path, help="keep the corpus and caches here instead of a temp dir")
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    # The corpus's one corrupt clip is dropped by prepare_media in every fill; the header reports it once instead.
    logging.getLogger("telme_hf.data").setLevel(logging.ERROR)
    counter = DecodeCounter()

    with tempfile.TemporaryDirectory() as scratch, counter.installed():
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        corpus = workdir / "corpus"
        generation_s, _ = timed(lambda: make_synthetic_corpus(
            corpus, num_dialogues={"train": args.dialogues, "dev": 1, "test": 1}, seed=args.seed, progress=False,
            overwrite=True,
        ))
        raw_train, model, processor = build(corpus, args.vocab_size)

        # The one pass before training: decode every clip into a fresh cache (median over fresh caches), which
        # also drops the corpus's corrupt clip so that every path sees the same rows.
        def fill(i: int) -> tuple[MediaCache, datasets.Dataset]:
            media = MediaCache(workdir / f"media-{i}")
            return media, prepare_media(raw_train, MediaLoader.for_processor(processor, media, on_bad_media="skip"))

        decode_pass_s, (media, train) = median_one_off(fill, args.repeats)
        batches = batches_of(len(train), args.batch_size)

        def collator(modalities: Sequence[str], cached: bool) -> TrainingCollator:
            return TrainingCollator(processor, modalities, cache=media if cached else None)

        rows: list[Row] = []

        # 1. Data: one epoch of collation with every modality.
        data_paths = [
            TimedPath("naive, decode every clip", collate_step(train, collator(MODALITIES, cached=False))),
            TimedPath("warm media cache", collate_step(train, collator(MODALITIES, cached=True)),
                      cached=True, one_off_s=decode_pass_s),
        ]
        time_paths(data_paths, batches, args.repeats, counter)
        rows += [Row("1 data", path, "batch") for path in data_paths]

        # 2. Stage 2: the audio student, the teacher run per batch or read from columns computed once.
        trainer, optimizer = stage_trainer("audio", model, args.batch_size, workdir)
        teacher_s, teacher_train = median_one_off(
            lambda i: add_frozen_outputs(train, model, collator(("text",), cached=False), TEACHER_COLUMNS,
                                         workdir / f"teacher-{i}", ["text_teacher"], args.eval_batch_size),
            args.repeats,
        )
        with_text = ("text", "audio")  # no teacher columns: the collator tokenises, the trainer runs the teacher
        student_paths = [
            TimedPath("naive, decode + teacher every step",
                      training_step(trainer, optimizer, train, collator(with_text, cached=False))),
            TimedPath("warm media cache, teacher every step",
                      training_step(trainer, optimizer, train, collator(with_text, cached=True)),
                      cached=True, one_off_s=decode_pass_s),
            TimedPath("warm media cache + cached teacher outputs",
                      training_step(trainer, optimizer, teacher_train, collator(("audio",), cached=True)),
                      cached=True, one_off_s=decode_pass_s + teacher_s),
        ]
        time_paths(student_paths, batches, args.repeats, counter)
        rows += [Row("2 student", path, "step") for path in student_paths]

        # 3. Stage 3: the fusion, its three encoders run frozen per batch or read from feature columns.
        trainer, optimizer = stage_trainer("fusion", model, args.batch_size, workdir)
        features_s, feature_train = median_one_off(
            lambda i: add_frozen_outputs(train, model, collator(MODALITIES, cached=True), FEATURE_COLUMNS,
                                         workdir / f"features-{i}", FEATURE_PARTS, args.eval_batch_size),
            args.repeats,
        )
        fusion_paths = [
            TimedPath("naive, decode + 3 encoders every step",
                      training_step(trainer, optimizer, train, collator(MODALITIES, cached=False))),
            TimedPath("warm media cache, 3 encoders every step",
                      training_step(trainer, optimizer, train, collator(MODALITIES, cached=True)),
                      cached=True, one_off_s=decode_pass_s),
            TimedPath("cached features",
                      training_step(trainer, optimizer, feature_train, collator(MODALITIES, cached=True)),
                      cached=True, one_off_s=decode_pass_s + features_s),
        ]
        time_paths(fusion_paths, batches, args.repeats, counter)
        rows += [Row("3 fusion", path, "epoch") for path in fusion_paths]

        # The cached paths must compute the same thing: compare on the first batch, the model in eval mode.
        teacher_diff = max_difference(model, "text_logits", train, collator(("text",), cached=False),
                                      teacher_train, "teacher_logits", batches[0])
        fusion_diff = max_difference(model, "fusion_logits", train, collator(MODALITIES, cached=True),
                                     feature_train, None, batches[0])

    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"transformers {transformers.__version__}, datasets {datasets.__version__}; {os.cpu_count()} CPUs "
          f"({platform.machine()}), device {trainer.args.device}")
    print(f"1-min load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (above the CPU "
          "count, other work shared the cores: compare the CPU columns)")
    print(f"corpus: {len(train)} train utterances ({args.dialogues} dialogues, synthetic 64x48 clips, "
          f"{len(raw_train) - len(train)} with bad media dropped), generated in {generation_s:.1f} s")
    print(f"model: tiny preset, {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k parameters; trained: "
          f"{STAGE_PARTS['audio']} (stage 2), {STAGE_PARTS['fusion']} (stage 3); batch size {args.batch_size}, "
          f"{args.repeats} timed epochs per path after one warm-up step")
    print(f"one-off work (median of {args.repeats} fresh runs): decode pass into the media cache "
          f"{decode_pass_s:.2f} s, "
          f"teacher outputs {teacher_s:.2f} s, frozen features {features_s:.2f} s (batch size {args.eval_batch_size})")
    cached_decodes = sum(row.path.decodes_last_epoch for row in rows if row.path.cached)
    # The counter must see the decoder: a naive path decodes every utterance's clip in every epoch.
    naive_decodes = min(row.path.decodes_last_epoch for row in rows if not row.path.cached)
    print(f"check: decode calls in an epoch of a cached path: {cached_decodes} (must be 0), of a naive path: at "
          f"least {naive_decodes} (must be {len(train)}, one per utterance); cached vs recomputed "
          f"max |diff|: teacher logits {teacher_diff:.1e}, fusion logits {fusion_diff:.1e} (features were computed in "
          f"batches of {args.eval_batch_size}: other padding)\n")
    print_table(rows, len(batches), args.amortise)
    print(f"\ntotal run time {time.perf_counter() - PROCESS_START:.0f} s (imports, corpus, one-off work and timing)")
    return 0 if cached_decodes == 0 and naive_decodes >= len(train) else 1


if __name__ == "__main__":
    raise SystemExit(main())
