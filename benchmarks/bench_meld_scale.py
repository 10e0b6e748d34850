"""TelME at MELD's scale: a MELD-shaped corpus of 13,708 utterances through the real loader, decode pass, media cache
and one epoch of every stage (tiny preset), at several sizes, to show how each cost grows.

The corpus: the MELD annotation CSVs as the TelME authors ship them (`/work/shared/data/meld_authors_csv/`: every row
of train, dev and test, 13,708 in all) laid out as an unpacked `MELD.Raw` (`train_sent_emo.csv` +
`train_splits/diaX_uttY.mp4`, ...), each clip generated with its row's real `EndTime - StartTime` as its length:
64x48 pixels at 4 fps (H.264) and a 16 kHz mono tone (AAC), small enough to make all 13,708 in minutes (in parallel
worker processes; kept in `--workdir` and reused). A size N takes the first rows of each split CSV in MELD's split
proportions (train 73 %, dev 8 %, test 19 %); the clips are shared, the caches are not.

Per size, in child processes (so that each reports its own peak RSS, `resource.getrusage`):

  decode     the run's own functions (`telme_hf.training.run`): `load_data` (the MELD loader), then
             `decode_media` (`prepare_media` into a cold `MediaCache`) in one process (the tiny recipe's
             `dataloader_num_workers=0`) against the same pass with `dataloader_num_workers=N` (N = cores: DataLoader
             worker processes) into another cold cache, in the order A B B A after every clip has been read once
             (so no pass pays the first read from disk); cache bytes per utterance.
  stages     `decode_media` again (the warm cache), then `train_stage` of teacher, audio, video and fusion with the
             tiny recipe (`recipes/configs/tiny.yaml`) and one epoch each; per stage the whole call, the Trainer's
             `train_runtime`, its dev evaluation, and the one-off frozen-output pass (the call less train_runtime).
             A size whose epochs are predicted (linearly from the largest size run) to take longer than
             `--stage-budget-s`, or to peak above `--stage-memory-mb` (2 x that run's peak x the square of the
             longest clips' ratio), is skipped and said so.

And once, the cache at the paper's frame size: `--sample-720p` clips at 1280x720, 24 fps, H.264 + AAC 48 kHz stereo,
their lengths the 20-quantiles of the real durations, decoded through a `MediaLoader` with the full-size processor's
settings (`build_processor(TelMEConfig.from_preset("meld"))`: 8 frames, 224x224 crop, whole 16 kHz waveform) and the
reference processor's (`reference_behaviour=True`), bytes per utterance measured and extrapolated to the 13,708 rows
by their real durations (video bytes per clip x rows + audio bytes per second x seconds).

    python benchmarks/bench_meld_scale.py                  # sizes 1000 4000 13708; ~30 min on 2 shared cores
    python benchmarks/bench_meld_scale.py --stage-memory-mb 24000   # also 4000's stage epochs (they peak at 18 GB)
    python benchmarks/bench_meld_scale.py --quick          # sizes 200 400, 2 720p clips: 3-7 min, the flow
    python benchmarks/bench_meld_scale.py --sizes 1000 --workdir /tmp/meld-scale

Writes its rows into `benchmarks/results.json` (rows of other scripts kept; not with --quick unless --output).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import csv
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CSV_DIR = Path("/work/shared/data/meld_authors_csv")
TINY_CONFIG = ROOT / "recipes" / "configs" / "tiny.yaml"
# split -> (annotation CSV, media folder), as in MELD.Raw (`telme_hf.data.meld.MELD_SPLIT_FILES`).
SPLITS = {"train": ("train_sent_emo.csv", "train_splits"), "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
          "test": ("test_sent_emo.csv", "output_repeated_splits_test")}
STAGES = ("teacher", "audio", "video", "fusion")
# The generated clips: tiny, few frames, a tone. A clip shorter than one frame cannot be written: clamped.
TINY_CLIP = {"width": 64, "height": 48, "fps": 4, "sample_rate": 16000, "min_seconds": 0.25, "version": 1}
MELD_ROWS = 13708


# ------------------------------------------------------------------------------------------------------ helpers
def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or the largest of its waited-for children), in MB."""
    return resource.getrusage(who).ru_maxrss / 1024


def seconds_of(stamp: str) -> float:
    """`HH:MM:SS,mmm` (MELD's StartTime/EndTime) in seconds."""
    hours, minutes, rest = stamp.strip().split(":")
    whole, millis = rest.split(",")
    return int(hours) * 3600 + int(minutes) * 60 + int(whole) + int(millis) / 1000


def read_csvs(csv_dir: Path) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each split's header and records, cells as written (UTF-8, the authors' C1 characters kept)."""
    tables = {}
    for split, (name, _) in SPLITS.items():
        with open(csv_dir / name, encoding="utf-8", newline="") as stream:
            records = list(csv.reader(stream))
        tables[split] = (records[0], records[1:])
    return tables


def durations(header: list[str], records: list[list[str]]) -> list[float]:
    start, end = header.index("StartTime"), header.index("EndTime")
    return [seconds_of(r[end]) - seconds_of(r[start]) for r in records]


def split_counts(tables: dict, size: int) -> dict[str, int]:
    """Rows of each split for a corpus of `size` utterances, in the CSVs' proportions (all rows at full size)."""
    total = sum(len(records) for _, records in tables.values())
    if size >= total:
        return {split: len(records) for split, (_, records) in tables.items()}
    counts = {split: max(1, round(size * len(records) / total)) for split, (_, records) in tables.items()}
    counts["train"] += size - sum(counts.values())
    return counts


def longest_clip(tables: dict, size: int, limit: float = 60.0) -> float:
    """The longest train or dev clip of a size that the loader accepts (at most `limit` s): it sets the widest padded
    batch of the audio student, whose attention grows with the square of its frames."""
    counts = split_counts(tables, size)
    return max(s for split in ("train", "dev") for s in durations(tables[split][0], tables[split][1][:counts[split]])
               if s <= limit)


def available_memory_mb() -> float:
    try:
        line = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemAvailable"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return float("inf")


def clip_path(folder: Path, header: list[str], record: list[str]) -> Path:
    dialogue, utterance = record[header.index("Dialogue_ID")], record[header.index("Utterance_ID")]
    return folder / f"dia{int(dialogue)}_utt{int(utterance)}.mp4"


# ------------------------------------------------------------------------------------------------------ corpus
def _tiny_clip(job: tuple[str, float, int]) -> float:
    """Write one tiny clip (a moving gradient and a tone); returns the seconds it took."""
    from telme_hf.data.synthetic import write_media

    path, seconds, index = job
    started = time.perf_counter()
    spec = TINY_CLIP
    frames_n = max(1, int(round(seconds * spec["fps"])))
    y = np.arange(spec["height"], dtype=np.int32)[:, None]
    x = np.arange(spec["width"], dtype=np.int32)[None, :]
    frames = np.empty((frames_n, spec["height"], spec["width"], 3), dtype=np.uint8)
    for t in range(frames_n):
        frames[t, ..., 0] = (x * 4 + 9 * t + index) % 256
        frames[t, ..., 1] = (y * 5 + 5 * t) % 256
        frames[t, ..., 2] = (index * 37) % 256
    rate = spec["sample_rate"]
    time_axis = np.arange(int(round(seconds * rate))) / rate
    tone = 0.3 * np.sin(2 * np.pi * (120 + (index % 64) * 5) * time_axis)
    write_media(path, frames, tone.astype(np.float32)[None], fps=spec["fps"], sample_rate=rate,
                video_options={"crf": "30", "preset": "ultrafast"}, audio_bitrate=48000)
    return time.perf_counter() - started


def generate_clips(workdir: Path, tables: dict, size: int, workers: int) -> dict[str, Any]:
    """Every clip of the first `size`-proportional rows, in `workers` processes; existing clips are kept."""
    import multiprocessing

    clips = workdir / "clips"
    stamp = clips / "generator.json"
    if stamp.exists() and json.loads(stamp.read_text()) != TINY_CLIP:
        shutil.rmtree(clips)  # made by another generator version: all again
    jobs, clamped, seconds_total = [], 0, 0.0
    counts = split_counts(tables, size)
    for split, (header, records) in tables.items():
        folder = clips / SPLITS[split][1]
        folder.mkdir(parents=True, exist_ok=True)
        for index, (record, seconds) in enumerate(zip(records[:counts[split]],
                                                      durations(header, records[:counts[split]]))):
            clamped += seconds < TINY_CLIP["min_seconds"]
            seconds = max(seconds, TINY_CLIP["min_seconds"])
            seconds_total += seconds
            path = clip_path(folder, header, record)
            if not path.exists():
                jobs.append((str(path), seconds, index))
    stamp.write_text(json.dumps(TINY_CLIP))
    started = time.perf_counter()
    if jobs:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_tiny_clip, jobs, chunksize=32):
                pass
    return {"generated": len(jobs), "generation_s": round(time.perf_counter() - started, 1), "clamped": clamped,
            "media_hours": round(seconds_total / 3600, 2)}


def corpus_for(workdir: Path, tables: dict, size: int) -> Path:
    """A MELD.Raw-layout folder of `size` utterances: subset CSVs and links to the shared clip folders."""
    root = workdir / f"corpus-{size}"
    root.mkdir(parents=True, exist_ok=True)
    for split, count in split_counts(tables, size).items():
        name, folder = SPLITS[split]
        header, records = tables[split]
        with open(root / name, "w", encoding="utf-8", newline="") as stream:
            csv.writer(stream, lineterminator="\r\n").writerows([header, *records[:count]])
        link = root / folder
        if not link.exists():
            link.symlink_to(workdir / "clips" / folder, target_is_directory=True)
    return root


# --------------------------------------------------------------------------------------------- child: the run
def make_plan(corpus: Path, run_dir: Path, workers: int = 0):
    """The tiny recipe's plan on the corpus, one epoch per stage, quiet (`telme train --config tiny ...`); `workers`:
    its `dataloader_num_workers`, the processes of the decode pass (0, the recipe's: this process)."""
    from telme_hf.training.arguments import TelMEParser
    from telme_hf.training.plan import plan_run

    argv = ["--config", str(TINY_CONFIG), "dataset=meld", f"data_root={corpus}", f"output_dir={run_dir / 'run'}",
            f"cache_dir={run_dir / 'cache'}", "num_train_epochs=1", "teacher_epochs=1", "fusion_epochs=1",
            "disable_tqdm=true", "on_bad_media=skip", "logging_steps=100000", f"dataloader_num_workers={workers}"]
    return plan_run(*TelMEParser().parse(argv))


def quiet() -> None:
    import logging

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("telme_hf").setLevel(logging.ERROR)


def cache_bytes(folder: Path) -> dict[str, int]:
    """Bytes of a media cache's `.npy` files by kind: frames are uint8, waveforms float."""
    sizes = {"audio": 0, "video": 0, "files": 0}
    for path in folder.rglob("*.npy"):
        dtype = np.load(path, mmap_mode="r").dtype
        sizes["video" if dtype == np.uint8 else "audio"] += path.stat().st_size
        sizes["files"] += 1
    return sizes


def child_decode(workdir: Path, size: int, workers: int) -> dict[str, Any]:
    from telme_hf.training import run as telme_run

    quiet()
    run_dir = workdir / f"size-{size}"
    shutil.rmtree(run_dir, ignore_errors=True)
    plan = make_plan(workdir / f"corpus-{size}", run_dir)
    started = time.perf_counter()
    data, report = telme_run.load_data(plan)
    load_s = time.perf_counter() - started
    labels = data["train"].features["label"].names
    _, processor = telme_run.build_model_and_processor(plan, list(data["train"]["text"]), labels)
    splits = {name: data[name] for name in ("train", "dev", "test")}
    rows = sum(len(split) for split in splits.values())

    # The library's decode pass as a run does it (`decode_media`: `prepare_media`), in this process (the tiny
    # recipe's setting) against `workers` processes (`dataloader_num_workers`); each into a cold cache, in the order
    # A B B A so that a drift in the machine's load hits both alike. The last A's cache stays for the stages.
    # Every clip read once first, so that no pass pays for the first read from disk (the page cache is warm for all).
    started = time.perf_counter()
    for split in splits.values():
        for path in split["video_path"]:
            Path(path).read_bytes()
    read_s = time.perf_counter() - started
    parallel_plan = make_plan(workdir / f"corpus-{size}", run_dir / "workers", workers)
    parallel_cache = parallel_plan.cache_dir / "media"
    serial, parallel = [], []
    for path in ("serial", "parallel", "parallel", "serial"):
        if path == "serial":
            shutil.rmtree(plan.cache_dir / "media", ignore_errors=True)
            started, cpu_started = time.perf_counter(), time.process_time()
            kept_splits, _, _ = telme_run.decode_media(plan, dict(splits), processor, report)
            serial.append((time.perf_counter() - started, time.process_time() - cpu_started))
        else:
            shutil.rmtree(parallel_cache, ignore_errors=True)
            started = time.perf_counter()
            parallel_splits, _, _ = telme_run.decode_media(parallel_plan, dict(splits), processor, report)
            parallel.append(time.perf_counter() - started)
            parallel_kept = sum(len(split) for split in parallel_splits.values())
    kept = sum(len(split) for split in kept_splits.values())
    sizes = cache_bytes(plan.cache_dir / "media")
    parallel_sizes = cache_bytes(parallel_cache)
    shutil.rmtree(run_dir / "workers")
    serial_s, serial_cpu = statistics.mean(t for t, _ in serial), statistics.mean(c for _, c in serial)
    parallel_s = statistics.mean(parallel)
    return {"size": size, "rows": rows, "kept": kept, "bad_media": rows - kept, "load_s": load_s,
            "serial_s": serial_s, "serial_cpu_s": serial_cpu, "parallel_s": parallel_s, "workers": workers,
            "serial_runs_s": [t for t, _ in serial], "parallel_runs_s": parallel, "read_clips_s": read_s,
            "parallel_kept": parallel_kept, "parallel_same_bytes": parallel_sizes == sizes,
            "cache": sizes, "peak_rss_mb": peak_rss_mb(), "workers_peak_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}


def child_stages(workdir: Path, size: int) -> dict[str, Any]:
    from transformers import set_seed

    from telme_hf.training import run as telme_run
    from telme_hf.training.resume import release_cache_lock, take_cache_lock

    quiet()
    run_dir = workdir / f"size-{size}"
    plan = make_plan(workdir / f"corpus-{size}", run_dir)
    shutil.rmtree(plan.output_dir, ignore_errors=True)
    shutil.rmtree(plan.cache_dir / "frozen", ignore_errors=True)  # the one-off passes are measured every time
    plan.output_dir.mkdir(parents=True)
    set_seed(plan.training_args.seed)
    started = time.perf_counter()
    data, report = telme_run.load_data(plan)
    load_s = time.perf_counter() - started
    labels = data["train"].features["label"].names
    started = time.perf_counter()
    model, processor = telme_run.build_model_and_processor(plan, list(data["train"]["text"]), labels)
    build_s = time.perf_counter() - started
    take_cache_lock(plan.cache_dir)
    try:
        started = time.perf_counter()
        splits, loader, _ = telme_run.decode_media(plan, {n: data[n] for n in ("train", "dev", "test")}, processor,
                                                   report)
        warm_s = time.perf_counter() - started
        stages, previous = {}, None
        for stage in plan.stages:
            started = time.perf_counter()
            telme_run.train_stage(plan, stage, model, processor, splits, loader, None, None, previous)
            wall = time.perf_counter() - started
            previous = plan.output_dir / stage
            history = json.loads((previous / "trainer_state.json").read_text())["log_history"]
            train_runtime = next(e["train_runtime"] for e in history if "train_runtime" in e)
            eval_runtime = sum(e["eval_runtime"] for e in history if "eval_runtime" in e)
            stages[stage] = {"wall_s": wall, "train_runtime_s": train_runtime, "eval_s": eval_runtime,
                             "epoch_s": train_runtime - eval_runtime, "one_off_s": wall - train_runtime}
    finally:
        release_cache_lock(plan.cache_dir)
    return {"size": size, "train_rows": len(splits["train"]), "dev_rows": len(splits["dev"]), "load_s": load_s,
            "build_s": build_s, "warm_pass_s": warm_s, "stages": stages, "peak_rss_mb": peak_rss_mb()}


# ----------------------------------------------------------------------------------------- child: 720p sample
def write_720p_clip(path: Path, seconds: float, index: int) -> Path:
    """A 1280x720, 24 fps H.264 (crf 23, veryfast) + AAC 48 kHz stereo clip, encoded frame by frame (a long clip
    never holds all its frames); the picture is `bench_decode.make_clip`'s (gradients, a moving box, texture)."""
    import av

    width, height, fps, rate = 1280, 720, 24, 48000
    rng = np.random.default_rng(index)
    texture = rng.integers(0, 4, size=(height, width), dtype=np.int32)
    y = np.arange(height, dtype=np.int32)[:, None]
    x = np.arange(width, dtype=np.int32)[None, :]
    box = height // 6
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "23", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=rate, layout="stereo")
        audio.bit_rate = 128000
        audio.options = {"aac_coder": "fast", "aac_pns": "0"}
        frame = np.empty((height, width, 3), dtype=np.uint8)
        for t in range(max(1, int(round(seconds * fps)))):
            frame[..., 0] = (x // 3 + 4 * t + texture) % 256
            frame[..., 1] = (y // 2 + 2 * t + index * 20) % 256
            frame[..., 2] = ((x + y) // 5 + texture) % 256
            top, left = (t * 7) % (height - box), (t * 13 + index * 50) % (width - box)
            frame[top:top + box, left:left + box] = 240
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = t
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        samples = int(round(seconds * rate))
        for offset in range(0, samples, 1024):
            n = min(1024, samples - offset)
            time_axis = (offset + np.arange(n)) / rate
            voice = 0.3 * np.sin(2 * np.pi * (150 + 20 * index) * time_axis) * (
                0.6 + 0.4 * np.sin(2 * np.pi * 3 * time_axis))
            chunk = av.AudioFrame.from_ndarray(np.stack([voice, 0.8 * voice]).astype(np.float32), format="fltp",
                                               layout="stereo")
            chunk.sample_rate, chunk.pts = rate, offset
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    return path


def sample_durations(all_seconds: list[float], count: int, limit: float) -> list[float]:
    """`count` quantiles of the real durations (those the loader accepts: at most `limit` seconds)."""
    usable = sorted(s for s in all_seconds if s <= limit)
    return [max(usable[int((i + 0.5) * len(usable) / count)], TINY_CLIP["min_seconds"]) for i in range(count)]


def child_sample720(workdir: Path, count: int, csv_dir: Path) -> dict[str, Any]:
    from telme_hf import TelMEConfig, build_processor, train_tokenizer
    from telme_hf.data.media_cache import MediaCache
    from telme_hf.modeling.media_telme import MediaLoader

    quiet()
    tables = read_csvs(csv_dir)
    all_seconds = [s for header, records in tables.values() for s in durations(header, records)]
    tokenizer = train_tokenizer(["a tokenizer for the processor, which decoding does not use"] * 4, vocab_size=300)
    results: dict[str, Any] = {"clips": count, "rows": len(all_seconds)}
    folder = workdir / "clips-720p"
    folder.mkdir(parents=True, exist_ok=True)
    for name, reference in (("clean", False), ("reference", True)):
        processor = build_processor(TelMEConfig.from_preset("meld", reference_behaviour=reference), tokenizer)
        limit = processor.max_media_seconds or float("inf")
        seconds = sample_durations(all_seconds, count, limit)
        paths = []
        for index, length in enumerate(seconds):
            path = folder / f"dia{index}_utt0_{length:.3f}s.mp4"
            paths.append(path if path.exists() else write_720p_clip(path, length, index))
        cache_dir = workdir / f"cache-720p-{name}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        loader = MediaLoader.for_processor(processor, MediaCache(cache_dir), on_bad_media="error")
        decode, read = [], []
        for path in paths:
            row = {"audio_path": str(path), "video_path": str(path), "utterance_key": path.stem}
            started = time.perf_counter()
            loader.load(row)  # cold: decoded and written to the cache
            decode.append(time.perf_counter() - started)
            warm = MediaLoader.for_processor(processor, MediaCache(cache_dir), on_bad_media="error")
            started = time.perf_counter()
            warm.load(row)  # a fresh loader: read back from the cache
            read.append(time.perf_counter() - started)
        sizes = cache_bytes(cache_dir)
        accepted = [max(s, 0.0) for s in all_seconds if s <= limit]
        audio_per_second = sizes["audio"] / sum(seconds)
        video_per_clip = sizes["video"] / count
        results[name] = {
            "max_media_seconds": processor.max_media_seconds, "sample_seconds": [round(s, 3) for s in seconds],
            "audio_rate": loader.audio.sampling_rate if not loader.audio.reference_rate else 22050,
            "frames": loader.video.num_frames, "frame_size": loader.video.size,
            "decode_s_per_clip": statistics.median(decode), "decode_s_per_media_second": sum(decode) / sum(seconds),
            "read_s_per_clip": statistics.median(read),
            "bytes_per_utterance": (sizes["audio"] + sizes["video"]) / count,
            "audio_bytes_per_utterance": sizes["audio"] / count, "video_bytes_per_utterance": video_per_clip,
            "rows_accepted": len(accepted), "media_hours_accepted": sum(accepted) / 3600,
            "extrapolated_bytes": video_per_clip * len(accepted) + audio_per_second * sum(accepted),
            "extrapolated_video_bytes": video_per_clip * len(accepted),
            "extrapolated_audio_bytes": audio_per_second * sum(accepted),
            "extrapolated_decode_s": sum(decode) / sum(seconds) * sum(accepted),
        }
        shutil.rmtree(cache_dir)
    results["peak_rss_mb"] = peak_rss_mb()
    return results


# ------------------------------------------------------------------------------------------------------ parent
def run_child(kind: str, args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    out = args.workdir / f"child-{kind}-{options.get('size', 0)}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--workdir", str(args.workdir),
               "--rows-out", str(out), "--csv-dir", str(args.csv_dir), "--workers", str(args.workers)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"bench_meld_scale child {kind} {options} failed:\n{completed.stderr[-4000:]}")
    return json.loads(out.read_text())


def machine() -> dict[str, Any]:
    import run as bench_run  # the machine description every row of results.json carries

    return bench_run.machine()


def gb(value: float) -> str:
    return f"{value / 1e9:.1f} GB"


def build_rows(decodes: dict[int, dict], trainings: dict[int, dict], skipped: dict[int, str],
               sample: dict[str, Any] | None, workers: int) -> list[dict[str, Any]]:
    """The results.json rows: baseline = one process (or a decode), ours = N workers (or a cache read)."""
    rows = []
    for size, d in sorted(decodes.items()):
        t = trainings.get(size)
        epochs = {stage: round(s["epoch_s"], 2) for stage, s in t["stages"].items()} if t else None
        notes = (f"{d['rows']} utterances of the authors' MELD CSVs ({d['kept']} with usable media), tiny clips; "
                 f"decode pass (prepare_media, cold cache) 1 process {d['serial_s']:.1f} s "
                 f"({d['kept'] / d['serial_s']:.0f} clips/s) vs {workers} worker processes (dataloader_num_workers) "
                 f"{d['parallel_s']:.1f} s ({d['kept'] / d['parallel_s']:.0f} clips/s); cache "
                 f"{(d['cache']['audio'] + d['cache']['video']) / d['kept'] / 1024:.1f} KiB/utterance; "
                 + (f"one epoch per stage (s) {epochs}" if t else f"stage epochs not run: {skipped.get(size, '')}"))
        peak = max(d["peak_rss_mb"], d["workers_peak_rss_mb"], t["peak_rss_mb"] if t else 0)
        rows.append({"name": f"meld-scale-{size}", "baseline_s": round(d["serial_s"], 3),
                     "ours_s": round(d["parallel_s"], 3), "ratio": round(d["serial_s"] / d["parallel_s"], 3),
                     "peak_rss_mb": round(peak), "notes": notes, "source": "bench_meld_scale.py",
                     "utterances": d["rows"], "kept": d["kept"], "load_s": round(d["load_s"], 2),
                     "passes_s": {"1": [round(t, 2) for t in d["serial_runs_s"]],
                                  str(workers): [round(t, 2) for t in d["parallel_runs_s"]]},
                     "read_clips_s": round(d["read_clips_s"], 2),
                     "clips_per_s": {"1": round(d["kept"] / d["serial_s"], 1),
                                     str(workers): round(d["kept"] / d["parallel_s"], 1)},
                     "cache_bytes_per_utterance": round((d["cache"]["audio"] + d["cache"]["video"]) / d["kept"]),
                     "peak_rss_mb_decode": round(d["peak_rss_mb"]),
                     "peak_rss_mb_decode_workers": round(d["workers_peak_rss_mb"]),
                     "peak_rss_mb_stages": round(t["peak_rss_mb"]) if t else None,
                     "warm_pass_s": round(t["warm_pass_s"], 2) if t else None,
                     "stages": {stage: {k: round(v, 2) for k, v in s.items()} for stage, s in t["stages"].items()}
                     if t else None,
                     "stages_skipped": skipped.get(size)})
    if sample:
        clean = sample["clean"]
        rows.append({
            "name": "meld-scale-cache-720p", "baseline_s": round(clean["decode_s_per_clip"], 4),
            "ours_s": round(clean["read_s_per_clip"], 4),
            "ratio": round(clean["decode_s_per_clip"] / clean["read_s_per_clip"], 3),
            "peak_rss_mb": round(sample["peak_rss_mb"]), "source": "bench_meld_scale.py",
            "notes": (f"{sample['clips']} 720p clips (24 fps, AAC 48 kHz stereo) as long as the 20-quantiles of MELD's "
                      f"real durations, full-size processor (8 frames, 224 crop, 16 kHz): decode + cache write "
                      f"{clean['decode_s_per_clip']:.3f} s/clip vs a cache read {clean['read_s_per_clip']:.4f} s; "
                      f"{clean['bytes_per_utterance'] / 2**20:.2f} MiB/utterance, all {clean['rows_accepted']} "
                      f"usable rows ~{gb(clean['extrapolated_bytes'])} "
                      f"(video {gb(clean['extrapolated_video_bytes'])}, "
                      f"audio {gb(clean['extrapolated_audio_bytes'])}); "
                      f"reference processor ~{gb(sample['reference']['extrapolated_bytes'])}; decode pass at 720p "
                      f"~{clean['extrapolated_decode_s'] / 60:.0f} min in one process"),
            "bytes_per_utterance": {name: round(sample[name]["bytes_per_utterance"])
                                    for name in ("clean", "reference")},
            "extrapolated_bytes": {name: round(sample[name]["extrapolated_bytes"]) for name in ("clean", "reference")},
            "extrapolated_decode_s": round(clean["extrapolated_decode_s"])})
    return rows


def print_tables(generation: dict, decodes: dict, trainings: dict, skipped: dict, sample: dict | None,
                 workers: int) -> None:
    print(f"corpus: {generation['generated']} clips generated now in {generation['generation_s']} s "
          f"({generation['media_hours']} h of media; {generation['clamped']} rows shorter than "
          f"{TINY_CLIP['min_seconds']} s clamped to it); 64x48, 4 fps, 16 kHz mono AAC\n")
    print(f"| utterances | with media | load s | decode pass 1 proc s | clips/s | {workers} workers s | clips/s "
          f"| ratio | passes s (A B B A) | cache B/utt | peak RSS MB (pass / workers) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for size, d in sorted(decodes.items()):
        print(f"| {d['rows']} | {d['kept']} | {d['load_s']:.1f} | {d['serial_s']:.1f} "
              f"| {d['kept'] / d['serial_s']:.0f} "
              f"| {d['parallel_s']:.1f} | {d['kept'] / d['parallel_s']:.0f} | {d['serial_s'] / d['parallel_s']:.2f}x "
              f"| {d['serial_runs_s'][0]:.1f} {d['parallel_runs_s'][0]:.1f} {d['parallel_runs_s'][1]:.1f} "
              f"{d['serial_runs_s'][1]:.1f} "
              f"| {(d['cache']['audio'] + d['cache']['video']) / d['kept']:.0f} "
              f"| {d['peak_rss_mb']:.0f} / {d['workers_peak_rss_mb']:.0f} |")
    print("\n| utterances | train rows | warm pass s | " + " | ".join(
        f"{s} epoch s (+ one-off, dev eval)" for s in STAGES) + " | total s | peak RSS MB |")
    print("|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|")
    for size in sorted(decodes):
        t = trainings.get(size)
        if not t:
            print(f"| {size} | | | " + " | ".join("—" for _ in STAGES) + f" | not run: {skipped.get(size, '')} | |")
            continue
        cells = [f"{s['epoch_s']:.1f} (+{s['one_off_s']:.1f}, {s['eval_s']:.1f})" for s in t["stages"].values()]
        total = sum(s["wall_s"] for s in t["stages"].values())
        print(f"| {size} | {t['train_rows']} | {t['warm_pass_s']:.1f} | " + " | ".join(cells)
              + f" | {total:.0f} | {t['peak_rss_mb']:.0f} |")
    if sample:
        print(f"\n| 720p sample ({sample['clips']} clips) | audio | frames | decode s/clip | cache read s/clip "
              f"| B/utt (audio + video) | all {MELD_ROWS} rows extrapolated |")
        print("|---|---|---|---:|---:|---:|---|")
        for name in ("clean", "reference"):
            s = sample[name]
            print(f"| {name} processor (max {s['max_media_seconds']:g} s) | {s['audio_rate']} Hz | {s['frames']} x "
                  f"{s['frame_size']} | {s['decode_s_per_clip']:.3f} | {s['read_s_per_clip']:.4f} "
                  f"| {s['bytes_per_utterance']:.0f} ({s['audio_bytes_per_utterance']:.0f} + "
                  f"{s['video_bytes_per_utterance']:.0f}) | {gb(s['extrapolated_bytes'])} for {s['rows_accepted']} "
                  f"rows ({gb(s['extrapolated_video_bytes'])} video + {gb(s['extrapolated_audio_bytes'])} audio); "
                  f"decode pass ~{s['extrapolated_decode_s'] / 60:.0f} min in 1 process |")


def write_results(rows: list[dict[str, Any]], output: Path, run: dict[str, Any]) -> None:
    """Add (or replace, by name) these rows in a results file, keeping everything else in it."""
    report = json.loads(output.read_text()) if output.exists() else {"rows": []}
    names = {row["name"] for row in rows}
    report["rows"] = [row for row in report.get("rows", []) if row["name"] not in names] + rows
    report.setdefault("runs", {})["bench_meld_scale.py"] = run
    output.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="sizes 200 and 400, 2 720p clips (the flow, for tests)")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"utterances per size (default 1000 4000 {MELD_ROWS})")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes of the parallel passes")
    parser.add_argument("--sample-720p", type=int, help="720p clips of the full-size cache sample (default 20)")
    parser.add_argument("--stage-budget-s", type=float, default=1500.0,
                        help="skip the stage epochs of a size predicted to take longer than this")
    parser.add_argument("--stage-memory-mb", type=float,
                        help="skip the stage epochs of a size predicted to peak above this (default: half the memory "
                             "available at the start; the machine is shared)")
    parser.add_argument("--no-stages", action="store_true", help="decode and cache figures only")
    parser.add_argument("--csv-dir", type=Path, default=CSV_DIR, help="the MELD annotation CSVs")
    parser.add_argument("--workdir", type=Path, help="keep the clips (reused by later runs), corpora and caches here")
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results.json; --quick: none)")
    parser.add_argument("--child", choices=("decode", "stages", "sample720"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = {"decode": lambda: child_decode(args.workdir, args.size, args.workers),
                  "stages": lambda: child_stages(args.workdir, args.size),
                  "sample720": lambda: child_sample720(args.workdir, args.count, args.csv_dir)}[args.child]()
        args.rows_out.write_text(json.dumps(result))
        return 0

    sizes = sorted(args.sizes or ([200, 400] if args.quick else [1000, 4000, MELD_ROWS]))
    sample_count = args.sample_720p if args.sample_720p is not None else (2 if args.quick else 20)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        args.workdir = (args.workdir or Path(scratch)).absolute()
        args.workdir.mkdir(parents=True, exist_ok=True)
        tables = read_csvs(args.csv_dir)
        total_rows = sum(len(records) for _, records in tables.values())
        sizes = [min(size, total_rows) for size in sizes]
        memory_limit = args.stage_memory_mb or available_memory_mb() / 2
        generation = generate_clips(args.workdir, tables, max(sizes), args.workers)
        print(f"clips: {generation}", file=sys.stderr)
        decodes, trainings, skipped = {}, {}, {}
        for size in sizes:
            corpus_for(args.workdir, tables, size)
            decodes[size] = run_child("decode", args, size=size)
            print(f"decode {size}: {decodes[size]['serial_s']:.0f} s / {decodes[size]['parallel_s']:.0f} s",
                  file=sys.stderr)
            if args.no_stages:
                skipped[size] = "--no-stages"
                continue
            if trainings:
                largest = max(trainings)
                per_row = sum(s["wall_s"] for s in trainings[largest]["stages"].values()) / largest
                predicted = per_row * size
                # The audio student's attention over the longest padded batch: memory ~ frames squared; and twice
                # that, because the peak also grows with the batches run (1000 -> 4000 utterances went from 10 to
                # 18 GB with the longest clip 19.8 -> 20.2 s).
                memory = 2 * trainings[largest]["peak_rss_mb"] * (longest_clip(tables, size)
                                                                  / longest_clip(tables, largest)) ** 2
                reasons = []
                if predicted > args.stage_budget_s:
                    reasons.append(f"predicted {predicted / 60:.0f} min (linear in rows from the {largest}-utterance "
                                   f"run), over the {args.stage_budget_s / 60:.0f}-minute budget")
                if memory > memory_limit:
                    reasons.append(f"predicted peak {memory / 1024:.0f} GB (2 x the {largest}-utterance run's peak x "
                                   f"(longest clip {longest_clip(tables, size):.1f} s / "
                                   f"{longest_clip(tables, largest):.1f} s)^2), over the {memory_limit / 1024:.0f} GB "
                                   "allowed on this shared machine")
                if reasons:
                    skipped[size] = "; ".join(reasons)
                    print(f"stages {size}: skipped, {skipped[size]}", file=sys.stderr)
                    continue
            trainings[size] = run_child("stages", args, size=size)
            print(f"stages {size}: {sum(s['wall_s'] for s in trainings[size]['stages'].values()):.0f} s",
                  file=sys.stderr)
        sample = run_child("sample720", args, count=sample_count) if sample_count else None
    rows = build_rows(decodes, trainings, skipped, sample, args.workers)
    run = {"command": "python benchmarks/bench_meld_scale.py" + (" --quick" if args.quick else "")
           + (f" --sizes {' '.join(map(str, sizes))}" if args.sizes else ""),
           "machine": machine(), "total_s": round(time.perf_counter() - started), "sizes": sizes,
           "corpus": generation}
    m = run["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}; 1-min load {m['load_average_1min']} at the end; "
          f"total {run['total_s']} s\n")
    print_tables(generation, decodes, trainings, skipped, sample, args.workers)
    output = args.output or (None if args.quick else HERE / "results.json")
    if output is not None:
        write_results(rows, output, run)
    print("\n" + (f"Wrote {output}" if output else "(--quick: nothing written)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
