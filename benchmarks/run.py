"""Every TelME speed and memory measurement in one run: ratios against the naive path measured in the same run.

    python benchmarks/run.py --quick      # under 10 minutes on 2 CPU cores, full-size rows included
    python benchmarks/run.py              # more clips, samples and repeats
    python benchmarks/run.py --smoke --output /tmp/rows.json   # every section's flow in seconds (the tests)
    python benchmarks/run.py --gpu        # on a CUDA machine: fp32 / bf16 / fp16 step throughput, peak memory,
                                          # and one short recipe run of every stage with full-size models

Rows (`ratio` = baseline_s / ours_s; above 1 means ours is faster):

  decode            a 720p MELD-like clip: naive PyAV (two opens, every frame converted) vs `decode_clip`
  cache             `decode_clip` vs a warm `MediaCache` read of the same clip
  stage2            one audio-student step: the frozen teacher run on every batch vs its cached outputs (both from
                    a warm media cache, so the teacher alone differs)
  stage2-frozen-encoder  one audio-student step from the cached teacher: the student's convolutional feature
                    encoder trained (the original, the default) vs frozen with its outputs computed once
                    (`freeze_feature_encoder=true`); the notes add frozen but run every step
  stage3            one fusion epoch: the three frozen encoders run on every batch vs cached features
  evaluate          evaluating a checkpoint on a split: the encoders run vs the features an earlier evaluation kept
  inference         a 10-turn dialogue through the pipeline vs the same work by hand on the same clips:
                    `decode_clip` per clip, the processor per batch, the bare model forward (ratio 1.0: no overhead)
  startup-help, startup-version   `telme --help` / `telme --version` in a subprocess vs `python -c pass`
  demo              `telme demo --full` (tiny.yaml's epochs, the earlier default) vs `telme demo`, each from
                    nothing, with where the time goes (corpus and model, decode pass, each stage, evaluation,
                    artefacts) and the test weighted F1; in the full run and `--only demo`, not in --quick
  *-full            the same with the paper's backbones (roberta-large, data2vec-audio-base, timesformer-base;
                    random weights, fp32, built offline from their configs)

Each path gets a warm-up call; the paths of a row take turns on every item (clip, batch), so a change in the
machine's load hits all of them alike; per-item times are medians over the repeats, CPU time is shown beside wall
time. Full-size rows run in child processes so that each reports its own peak RSS. Writes `benchmarks/results.json`
(rows and machine) and prints a markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_decode  # noqa: E402  (the decode helpers: clip generation and the naive path)
import bench_training  # noqa: E402  (the training-step helpers: paths taking turns, stage trainers)
import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from telme_hf import TelMEConfig, TelMEForEmotionRecognition, build_processor, train_tokenizer  # noqa: E402
from telme_hf.data.frozen_outputs import (  # noqa: E402
    ENCODER_PARTS, FEATURE_COLUMNS, TEACHER_COLUMNS, add_feature_encoder_outputs, add_frozen_outputs, module_fingerprint)
from telme_hf.data.media_cache import MediaCache, prepare_media  # noqa: E402
from telme_hf.training.trainer import TrainingCollator  # noqa: E402
from telme_hf.modeling.media_telme import (  # noqa: E402
    MODALITIES, AudioDecodeOptions, MediaLoader, VideoDecodeOptions, decode_clip)
from telme_hf.data.meld import load_meld  # noqa: E402
from telme_hf.data.synthetic import make_synthetic_corpus  # noqa: E402
from telme_hf.inference.evaluation import evaluate_split  # noqa: E402
from telme_hf.training.trainer import freeze_all_but  # noqa: E402


# ------------------------------------------------------------------------------------------------------ helpers
def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def result_row(name: str, baseline_s: float, ours_s: float, notes: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "baseline_s": round(baseline_s, 6), "ours_s": round(ours_s, 6),
            "ratio": round(baseline_s / ours_s, 3), "peak_rss_mb": round(peak_rss_mb()), "notes": notes, **extra}


def interleaved(paths: dict[str, Callable[[Any], Any]], items: Sequence[Any], repeats: int) -> dict[str, dict]:
    """Per item, the median wall and CPU seconds of each path over `repeats` (paths take turns on each item)."""
    for function in paths.values():
        function(items[0])  # warm-up
    wall = {name: [[] for _ in items] for name in paths}
    cpu = {name: [[] for _ in items] for name in paths}
    for _ in range(repeats):
        for index, item in enumerate(items):
            for name, function in paths.items():
                bench_training.synchronize()
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                function(item)
                bench_training.synchronize()
                cpu[name][index].append(time.process_time() - cpu_start)
                wall[name][index].append(time.perf_counter() - wall_start)
    return {name: {"wall": [statistics.median(t) for t in wall[name]], "cpu": [statistics.median(t) for t in cpu[name]]}
            for name in paths}


def clip_args(smoke: bool = False) -> argparse.Namespace:
    """MELD-like clips: 1280x720, 3.2 s at 24 fps, H.264 + AAC 48 kHz stereo (`smoke`: 64x48, 1 s)."""
    if smoke:
        return argparse.Namespace(width=64, height=48, seconds=1.0, fps=24, sample_rate=48000, preset="veryfast")
    return argparse.Namespace(width=1280, height=720, seconds=3.2, fps=24, sample_rate=48000, preset="veryfast")


def clip_name(smoke: bool = False) -> str:
    clip = clip_args(smoke)
    return "720p" if clip.height == 720 else f"{clip.width}x{clip.height}"


def make_clips(folder: Path, count: int, smoke: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [bench_decode.make_clip(folder / f"dia0_utt{i}.mp4", i, clip_args(smoke)) for i in range(count)]


# ------------------------------------------------------------------------------------------------- decode, cache
def measure_decode(workdir: Path, clips: int, repeats: int, smoke: bool = False) -> list[dict[str, Any]]:
    paths = make_clips(workdir / "clips", clips, smoke)
    audio, video = AudioDecodeOptions(), VideoDecodeOptions(num_frames=8, size=224)
    cache = MediaCache(workdir / "decode-cache")
    for path in paths:
        cache.get(str(path), audio, video)  # filled once; the timed reads below are warm
    times = interleaved({
        "naive": lambda path: bench_decode.naive_decode(path, 8),
        "ours": lambda path: decode_clip(path, audio, video),
        "cache": lambda path: cache.get(str(path), audio, video),
    }, paths, repeats)
    med = {name: statistics.median(t["wall"]) for name, t in times.items()}
    cpu = {name: statistics.median(t["cpu"]) for name, t in times.items()}
    return [
        result_row("decode", med["naive"], med["ours"],
                   f"per {clip_name(smoke)} clip, {clips} clips x {repeats}; CPU s naive {cpu['naive']:.3f} vs ours "
                   f"{cpu['ours']:.3f}; "
                   "ours: one open for both streams, only the 8 picked frames converted, resized during conversion"),
        result_row("cache", med["ours"], med["cache"],
                   f"per {clip_name(smoke)} clip: decode_clip vs a warm MediaCache read (8 frames at 224, 16 kHz "
                   "audio); "
                   f"CPU s {cpu['ours']:.3f} vs {cpu['cache']:.4f}"),
    ]


# ---------------------------------------------------------------------------------------------------- training
def synthetic_train(workdir: Path, dialogues: int) -> datasets.Dataset:
    corpus = workdir / "corpus"
    if not (corpus / "train_sent_emo.csv").exists():
        make_synthetic_corpus(corpus, num_dialogues={"train": dialogues, "dev": 1, "test": 1}, seed=0, progress=False,
                              overwrite=True)
    return load_meld(corpus, splits=("train",), on_bad_media="skip")["train"]


def build_model(preset: str, texts: list[str]) -> tuple[TelMEForEmotionRecognition, Any]:
    """The preset's architecture with random weights, offline: the paper's backbones for `meld`."""
    tokenizer = train_tokenizer(texts, vocab_size=1000)
    config = TelMEConfig.from_preset(preset)
    if preset == "tiny":
        config.text_config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    return TelMEForEmotionRecognition(config), build_processor(config, tokenizer)


def measure_training(preset: str, workdir: Path, dialogues: int, samples: int | None, batch_size: int,
                     repeats: int, suffix: str) -> list[dict[str, Any]]:
    """stage2 and stage3 rows; the caches are filled first and their one-off cost reported per sample."""
    raw = synthetic_train(workdir, dialogues)
    model, processor = build_model(preset, list(raw["text"]))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    media = MediaCache(workdir / f"media-{preset}")
    train = prepare_media(raw, MediaLoader.for_processor(processor, media, on_bad_media="skip"))
    if samples is not None:
        train = train.select(range(min(samples, len(train))))
    batches = bench_training.batches_of(len(train), batch_size)

    def collator(modalities: Sequence[str]) -> TrainingCollator:
        return TrainingCollator(processor, modalities, cache=media)

    rows = []
    # Stage 2: the audio student; the teacher per batch vs columns computed once.
    trainer, optimizer = bench_training.stage_trainer("audio", model, batch_size, workdir)
    teacher_s, teacher_train = bench_training.timed(lambda: add_frozen_outputs(
        train, model, collator(("text",)), TEACHER_COLUMNS, workdir / f"teacher-{preset}", ["text_teacher"], batch_size))
    times = interleaved({
        "teacher every step": bench_training.training_step(trainer, optimizer, train, collator(("text", "audio"))),
        "cached teacher": bench_training.training_step(trainer, optimizer, teacher_train, collator(("audio",))),
    }, batches, repeats)
    base, ours = (statistics.median(times[name]["wall"]) for name in ("teacher every step", "cached teacher"))
    rows.append(result_row(
        f"stage2{suffix}", base, ours,
        f"one audio-student step, batch {batch_size} (median over {len(batches)} batches x {repeats}); the "
        f"student's forward+backward dominates the cached step; one-off teacher pass {teacher_s / len(train):.3f} "
        f"s/sample", one_off_s_per_sample=round(teacher_s / len(train), 4)))

    # Stage 2 with the student's convolutional feature encoder frozen (`freeze_feature_encoder`): no backward
    # through the convolutions over the raw waveform, and (what a run does then) their outputs computed once and
    # kept, so that the steps start at the feature projection; all paths read the cached teacher.
    # The paths share the model: each step sets the freezing it measures (the trainer sets it once, at start).
    loader = MediaLoader.for_processor(processor, media, on_bad_media="skip")
    encoder_s, encoder_train = bench_training.timed(lambda: add_feature_encoder_outputs(
        teacher_train, model, processor, loader, workdir / f"feature-encoder-{preset}", batch_size))

    def with_feature_encoder(frozen: bool, dataset) -> Callable[[list[int]], None]:
        step = bench_training.training_step(trainer, optimizer, dataset, collator(("audio",)))

        def run(indices: list[int]) -> None:
            freeze_all_but(model, "audio", freeze_feature_encoder=frozen)
            step(indices)
        return run

    times = interleaved({"feature encoder trained": with_feature_encoder(False, teacher_train),
                         "feature encoder frozen": with_feature_encoder(True, teacher_train),
                         "frozen, outputs kept": with_feature_encoder(True, encoder_train)}, batches, repeats)
    freeze_all_but(model, "audio")
    base, frozen_s, ours = (statistics.median(times[name]["wall"]) for name in (
        "feature encoder trained", "feature encoder frozen", "frozen, outputs kept"))
    rows.append(result_row(
        f"stage2-frozen-encoder{suffix}", base, ours,
        f"one audio-student step from the cached teacher, batch {batch_size}: the convolutional feature encoder "
        f"trained (the original, the default) vs frozen with its outputs kept (freeze_feature_encoder=true; a run "
        f"computes them once: {encoder_s / len(train):.3f} s/sample); frozen but run every step {frozen_s:.4f} s "
        f"({base / frozen_s:.2f}x)", frozen_every_step_s=round(frozen_s, 6),
        one_off_s_per_sample=round(encoder_s / len(train), 4)))

    # Stage 3: the fusion; the three frozen encoders per batch vs feature columns computed once.
    trainer, optimizer = bench_training.stage_trainer("fusion", model, batch_size, workdir)
    features_s, feature_train = bench_training.timed(lambda: add_frozen_outputs(
        train, model, collator(MODALITIES), FEATURE_COLUMNS, workdir / f"features-{preset}",
        bench_training.FEATURE_PARTS, batch_size))
    times = interleaved({
        "encoders every step": bench_training.training_step(trainer, optimizer, train, collator(MODALITIES)),
        "cached features": bench_training.training_step(trainer, optimizer, feature_train, collator(MODALITIES)),
    }, batches, repeats)
    base, ours = (sum(times[name]["wall"]) for name in ("encoders every step", "cached features"))
    rows.append(result_row(
        f"stage3{suffix}", base, ours,
        f"one fusion epoch of {len(train)} samples, batch {batch_size} (sum over batches of medians over {repeats}); "
        f"the three frozen encoders dominate the baseline; one-off feature pass {features_s / len(train):.3f} "
        f"s/sample", one_off_s_per_sample=round(features_s / len(train), 4)))

    # Evaluation of a checkpoint: every encoder run (media from a warm cache) vs the features an earlier evaluation
    # of the same checkpoint kept (`telme evaluate --cache-dir`, and a run's final dev evaluation).
    def evaluate(features_cache: Path | None) -> None:
        evaluate_split(model, processor, train, batch_size, on_bad_media="skip", cache=media, progress=False,
                       split="bench", features_cache=features_cache)

    features_dir = workdir / f"evaluation-features-{preset}"
    times = interleaved({"encoders": lambda _: evaluate(None), "cached features": lambda _: evaluate(features_dir)},
                        [None], repeats)
    base, ours = (statistics.median(times[name]["wall"]) for name in ("encoders", "cached features"))
    # What the cached path pays once per evaluation whatever the split's size: the weights' fingerprint (cache key).
    fingerprint_s, _ = bench_training.timed(
        lambda: [module_fingerprint(getattr(model, part)) for part in ENCODER_PARTS])
    batch_s = base / len(train) * batch_size  # one batch of the encoders' work, as the direct evaluation did it
    rows.append(result_row(
        f"evaluate{suffix}", base, ours,
        f"evaluate_split on {len(train)} utterances, batch {batch_size}, media from a warm cache: the encoders run "
        f"({base / len(train):.3f} s/utterance) vs the features kept by an earlier evaluation of the same checkpoint "
        f"(heads and fusion only); {fingerprint_s:.2f} s of the cached path is the encoders' weight fingerprint, "
        f"paid once per evaluation, not per utterance ({fingerprint_s / batch_s:.2f}x one batch of encoder work)",
        fingerprint_s=round(fingerprint_s, 3), fingerprint_vs_batch=round(fingerprint_s / batch_s, 3)))
    return rows


# --------------------------------------------------------------------------------------------------- inference
def measure_inference(preset: str, workdir: Path, turns: int, repeats: int, suffix: str,
                      smoke: bool = False) -> list[dict[str, Any]]:
    """A `turns`-turn dialogue with 720p clips: the pipeline end to end vs the same work done by hand (each clip
    decoded with `decode_clip`, each batch through the processor, then the bare model forward), the same clips."""
    from transformers import pipeline

    import telme_hf  # noqa: F401  (registers the pipeline task)
    from telme_hf.modeling.media_telme import media_options

    clips = make_clips(workdir / "dialogue", turns, smoke)
    texts = [f"turn {i}: well, I did not expect that at all, did you?" for i in range(turns)]
    model, processor = build_model(preset, texts * 20)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()  # on the GPU where there is one
    dialogue = [{"speaker": f"Speaker{i % 2}", "text": texts[i], "media": str(path)} for i, path in enumerate(clips)]
    erc = pipeline("emotion-recognition-in-conversation", model=model, processor=processor, device=model.device)
    batch_size = 4
    # By hand: what the pipeline must do at the least, with the same decode options, batches and contexts.
    audio_options, video_options = media_options(processor)
    contexts = [[{"speaker": turn["speaker"], "text": turn["text"]} for turn in dialogue[:i + 1]] for i in range(turns)]
    inputs = ("input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values")
    parts = {"decode": [], "processor": [], "forward": []}

    def by_hand(_: Any) -> None:
        spent = dict.fromkeys(parts, 0.0)
        with torch.inference_mode():
            for start in range(0, turns, batch_size):
                chunk = range(start, min(start + batch_size, turns))
                began = time.perf_counter()
                decoded = [decode_clip(clips[i], audio_options, video_options) for i in chunk]
                spent["decode"] += time.perf_counter() - began
                began = time.perf_counter()
                batch = processor(conversations=[contexts[i] for i in chunk], audio=[c.audio for c in decoded],
                                  videos=[c.video for c in decoded], sampling_rate=audio_options.sampling_rate)
                spent["processor"] += time.perf_counter() - began
                began = time.perf_counter()
                model(**{name: value.to(model.device) for name, value in batch.items() if name in inputs})
                bench_training.synchronize()
                spent["forward"] += time.perf_counter() - began
        for name, seconds in spent.items():
            parts[name].append(seconds)

    def through_pipeline(_: Any) -> None:
        results = erc(dialogue, batch_size=batch_size)
        assert all(r["modalities"] == ["text", "audio", "video"] for r in results)

    times = interleaved({"by hand": by_hand, "pipeline": through_pipeline}, [None], repeats)
    base, ours = (statistics.median(times[name]["wall"]) for name in ("by hand", "pipeline"))
    split = {name: statistics.median(seconds[1:] or seconds) for name, seconds in parts.items()}  # not the warm-up
    return [result_row(
        f"inference{suffix}", base, ours,
        f"{turns}-turn dialogue, {clip_name(smoke)} clips, batch {batch_size}: pipeline {ours / turns:.3f} s/utterance "
        f"({turns / ours:.2f} utt/s) vs the same clips by hand {base / turns:.3f} s/utterance (decode_clip "
        f"{split['decode']:.2f} s + processor {split['processor']:.2f} s + bare forward {split['forward']:.2f} s); "
        "ratio = by hand / pipeline (1.0 = the pipeline adds nothing)",
        seconds_per_utterance=round(ours / turns, 4),
        by_hand_split_s={name: round(seconds, 4) for name, seconds in split.items()})]


# ------------------------------------------------------------------------------------------------------ start-up
def telme_executable() -> str:
    """The `telme` console script of this Python's environment (else the first on PATH)."""
    import shutil

    telme = shutil.which("telme", path=str(Path(sys.executable).parent)) or shutil.which("telme")
    if telme is None:
        raise SystemExit("no `telme` executable beside this Python: pip install -e . first")
    return telme


def measure_startup(repeats: int) -> list[dict[str, Any]]:
    """Wall time of `telme --help` and `telme --version` against `python -c pass` (best of `repeats`, in turns)."""
    telme = telme_executable()
    commands = {"python": [sys.executable, "-c", "pass"], "import": [sys.executable, "-c", "import telme_hf"],
                "help": [telme, "--help"], "version": [telme, "--version"]}
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(repeats):
        for name, command in commands.items():
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            best[name] = min(best[name], time.perf_counter() - began)
    return [result_row(
        f"startup-{name}", best["python"], best[name],
        f"`telme --{name}` (console script, subprocess) vs `python -c pass`, best of {repeats}: "
        f"{best[name]:.2f} s vs {best['python']:.3f} s; `python -c 'import telme_hf'` {best['import']:.2f} s",
        import_s=round(best["import"], 4)) for name in ("help", "version")]


# ---------------------------------------------------------------------------------------------------------- demo
def run_measured(command: list[str], log: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of a command run to its end, its output into `log`."""
    with log.open("w") as output:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, process.returncode


DEMO_PHASES = ("load", "decode", "teacher", "audio", "video", "fusion", "evaluation", "artefacts")


def measure_demo(workdir: Path) -> list[dict[str, Any]]:
    """`telme demo` (ours: the default epochs) against `telme demo --full` (tiny.yaml's epochs as written, the
    earlier default), each from nothing in a fresh folder (corpus generated, clips decoded): wall time, peak RSS,
    where the run's time went (its `results.json` `timings_s`) and the test weighted F1 of the teacher and the
    fused model."""
    import shutil

    telme = telme_executable()
    runs = {}
    for name, flags in (("full", ["--full"]), ("default", [])):
        folder = workdir / f"demo-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        wall, rss, status = run_measured([telme, "demo", "--output-dir", str(folder), *flags],
                                         workdir / f"demo-{name}.log")
        if status != 0:
            raise SystemExit(f"telme demo {' '.join(flags)} failed (exit {status}): see {workdir}/demo-{name}.log")
        results = json.loads((folder / "results.json").read_text())
        runs[name] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss), "timings_s": results["timings_s"],
                      "test_weighted_f1": {stage: round(100 * results["stages"][stage]["test"]["weighted_f1"], 2)
                                           for stage in ("teacher", "fusion")}}

    def described(run: dict[str, Any]) -> str:
        phases = ", ".join(f"{phase} {run['timings_s'][phase]:.1f}" for phase in DEMO_PHASES)
        return (f"{run['wall_s']:.0f} s wall ({phases} s), test wF1 teacher {run['test_weighted_f1']['teacher']} / "
                f"fused {run['test_weighted_f1']['fusion']}")

    return [result_row(
        "demo", runs["full"]["wall_s"], runs["default"]["wall_s"],
        f"`telme demo`: {described(runs['default'])}; vs `telme demo --full`: {described(runs['full'])}; "
        "each from nothing (corpus generated, clips decoded), peak RSS of the demo's process",
        peak_rss_mb=runs["default"]["peak_rss_mb"], baseline_peak_rss_mb=runs["full"]["peak_rss_mb"],
        runs=runs, section="demo")]


# ------------------------------------------------------------------------------------------------------ the run
def run_child(sections: Sequence[str], args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """Sections in their own process: their rows, each with that process's peak RSS."""
    out = workdir / f"{sections[0]}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--section", *sections, "--workdir", str(workdir),
               "--rows-out", str(out)] + (["--quick"] if args.quick else []) + (["--smoke"] if args.smoke else [])
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"benchmark section {' '.join(sections)} failed:\n{completed.stderr[-4000:]}")
    return json.loads(out.read_text())


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else "cpu", "threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2)}


def keep_other_scripts(report: dict[str, Any], earlier: dict[str, Any],
                       sections_not_run: Sequence[str] = ()) -> dict[str, Any]:
    """`report` with the rows other scripts wrote into the same file (`"source"`: bench_meld_scale.py,
    bench_inference.py) and their `"runs"` kept: this run replaces only its own rows. Rows of this script's sections
    that this run left out (`"section"`: the demo, which --quick skips) stay too, stamped with their own run."""
    names = {row["name"] for row in report["rows"]}
    others = [row for row in earlier.get("rows", []) if row["name"] not in names
              and (row.get("source", "run.py") != "run.py" or row.get("section") in sections_not_run)]
    stamp = {"command": earlier.get("command"), **{key: earlier.get("machine", {}).get(key)
                                                   for key in ("cpu", "cores", "load_average_1min")}}
    others = [row if "measured" in row or row.get("source", "run.py") != "run.py" else {**row, "measured": stamp}
              for row in others]  # a kept row of an earlier full run: stamped with that run, not this one
    merged = {**report, "rows": report["rows"] + others}
    runs = {name: run for name, run in earlier.get("runs", {}).items()
            if not name.startswith("python benchmarks/run.py")}
    if runs:  # the other scripts' runs; a partial run of this script is superseded by this one
        merged["runs"] = runs
    return merged


def update_rows(earlier: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """A partial run (`--only`) into the file of a full one: its rows replace those of the same name in place (new
    ones are added), each stamped with the run that measured it; every other row, and the full run's machine and
    command at the top, stay as they were. The run itself is recorded under `"runs"`."""
    command = report["command"]
    stamp = {"command": command, "cpu": report["machine"]["cpu"], "cores": report["machine"]["cores"],
             "load_average_1min": report["machine"]["load_average_1min"]}
    fresh = {row["name"]: {**row, "measured": stamp} for row in report["rows"]}
    rows = [fresh.pop(row["name"], row) for row in earlier.get("rows", [])]
    runs = {**earlier.get("runs", {}), command: {"machine": report["machine"], "total_s": report["total_s"]}}
    return {**earlier, "rows": rows + list(fresh.values()), "runs": runs}


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| name | baseline s | ours s | ratio | peak RSS MB | notes |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['name']} | {row['baseline_s']:.4f} | {row['ours_s']:.4f} | {row['ratio']:.2f}x "
              f"| {row['peak_rss_mb']} | {row['notes']} |")


def sizes(quick: bool, smoke: bool = False) -> dict[str, int]:
    if smoke:  # the flow of every section, not a measurement
        return {"clips": 1, "decode_repeats": 1, "dialogues": 2, "repeats": 1, "full_samples": 2, "full_repeats": 1,
                "turns": 2, "inference_repeats": 1}
    return {"clips": 4 if quick else 10, "decode_repeats": 3 if quick else 5, "dialogues": 10 if quick else 20,
            "repeats": 3 if quick else 5, "full_samples": 4 if quick else 8, "full_repeats": 2 if quick else 3,
            "turns": 10, "inference_repeats": 2 if quick else 3}


def run_section(section: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    size = sizes(args.quick, args.smoke)
    full_preset = "tiny" if args.smoke else "meld"
    if section == "decode":
        return measure_decode(workdir, size["clips"], size["decode_repeats"], args.smoke)
    if section == "training":
        return measure_training("tiny", workdir, size["dialogues"], None, 4, size["repeats"], "")
    if section == "inference":
        return measure_inference("tiny", workdir, size["turns"], size["repeats"], "", args.smoke)
    if section == "training-full":
        return measure_training(full_preset, workdir, size["dialogues"], size["full_samples"], 2,
                                size["full_repeats"], "-full")
    if section == "startup":
        return measure_startup(1 if args.smoke else 3)
    if section == "inference-full":
        return measure_inference(full_preset, workdir, size["turns"], size["inference_repeats"], "-full", args.smoke)
    if section == "demo":
        return measure_demo(workdir)
    raise ValueError(f"unknown section {section!r}")


SECTIONS = ("decode", "training", "inference", "training-full", "inference-full", "startup", "demo")
# The demo section runs `telme demo` twice from nothing (about 4 minutes on 2 idle cores): in the full run and
# `--only demo`, not in --quick or --smoke.
QUICK_SECTIONS = SECTIONS[:-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer clips, samples and repeats (under 10 minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="every section's flow in seconds: one small clip, two dialogues, one repeat, the tiny "
                             "preset for the -full rows too; the figures mean nothing and nothing is written "
                             "unless --output is given")
    parser.add_argument("--gpu", action="store_true", help="the GPU check instead (benchmarks/gpu_check.py)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--output", type=Path, help="where to write the rows (default: benchmarks/results.json)")
    parser.add_argument("--workdir", type=Path, help="keep clips, corpora and caches here")
    parser.add_argument("--section", nargs="+", choices=SECTIONS, help=argparse.SUPPRESS)  # a child's sections
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    import logging

    logging.getLogger("telme_hf").setLevel(logging.ERROR)  # the corpus's one corrupt clip, dropped knowingly

    if args.gpu:
        import gpu_check

        return gpu_check.main(["--quick"] if args.quick else [])
    if args.section:
        args.rows_out.write_text(json.dumps([row for section in args.section
                                             for row in run_section(section, args, args.workdir)]))
        return 0

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        sections = list(args.only or (QUICK_SECTIONS if args.quick or args.smoke else SECTIONS))
        # Each section in its own process: its peak RSS is its own, and nothing one leaves behind slows the next.
        # A smoke run checks the flow only, so it pays for one process start instead of five.
        for group in [sections] if args.smoke else [[section] for section in sections]:
            group_started = time.perf_counter()
            rows += run_child(group, args, workdir)
            print(f"{' '.join(group)}: {time.perf_counter() - group_started:.0f} s", file=sys.stderr)
    report = {"machine": machine(), "quick": args.quick, "total_s": round(time.perf_counter() - started),
              "command": "python benchmarks/run.py" + (" --quick" if args.quick else "")
              + (f" --only {' '.join(args.only)}" if args.only else ""), "rows": rows}
    output = args.output or (None if args.smoke else HERE / "results.json")
    if output is not None:
        earlier = json.loads(output.read_text()) if output.exists() else {}
        not_run = [section for section in SECTIONS if section not in sections]
        merged = update_rows(earlier, report) if args.only and earlier else keep_other_scripts(report, earlier, not_run)
        output.write_text(json.dumps(merged, indent=2) + "\n")
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, transformers {m['transformers']}, device "
          f"{m['device']}; 1-min load {m['load_average_1min']}; total {report['total_s']} s\n")
    print_table(rows)
    print(f"\nratio = baseline_s / ours_s, measured in this run; peak RSS of the section's own process. "
          + (f"Wrote {output}" if output is not None else "(smoke run: nothing written)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
