"""Where a CPU prediction's time goes, and what thread settings, int8 dynamic quantisation and `torch.compile` do.

A `--turns`-turn dialogue of MELD-like clips (1280x720, 3.2 s at 24 fps, H.264 + AAC 48 kHz stereo) through the
`emotion-recognition-in-conversation` pipeline with the full-size model (the paper's backbones, random weights,
fp32, built offline from their configs as `run.py`'s `-full` rows do). Seconds per utterance are split into:

  decode      `decode_clip` (and the duration probe before it) inside the pipeline's `MediaLoader`
  processor   `TelMEProcessor.__call__` (tokenising, feature extraction, frame normalisation)
  text        the text encoder (roberta-large), once per batch
  audio       the audio encoder (data2vec-audio-base)
  video       the video encoder (timesformer-base)
  rest        everything else: heads, fusion, collation, the pipeline's own bookkeeping

each measured inside the same pipeline calls (hooks around the encoders, wrappers around the decoder and the
processor). Options, each in its own child process (its own peak RSS), on the same weights (seed 0, checked by
their fingerprint):

  fp32        as shipped: fp32, torch's default threads (one per core)
  threads-N   the same with `torch.set_num_threads(N)` (`--threads`, default 1)
  int8        `torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)`
  compile     `torch.compile` of each encoder's forward (inductor); its first call, which compiles, is reported
              apart; a child that has not finished within `--compile-timeout` seconds is stopped and said so

Each visit of an option: one warm-up dialogue, then `--repeats` timed ones (median). The options take turns, twice
in opposite orders (fp32 threads int8 compile compile int8 threads fp32), so that the load of a shared machine
hits all of them alike; an option's figure is the mean of its visits (each is shown, with the 1-minute load average
at each visit's start and end). Against fp32 on the same weights: the agreement of the fused labels and the largest
difference of a fused probability. The fp32 visit also counts the encoders' FLOPs per utterance
(`torch.utils.flop_counter`) and times one 2048x2048 fp32 matrix product, what the CPU sustains at best.

    python benchmarks/bench_inference.py                # full size, 10 turns; ~20 minutes on 2 loaded cores
    python benchmarks/bench_inference.py --turns 4 --options fp32 int8
    python benchmarks/bench_inference.py --quick        # tiny preset, 2 turns of 64x48 clips: the flow (tests)

Writes its rows into `benchmarks/results.json` (rows of other scripts kept; not with --quick unless --output).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
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


HERE = Path(__file__).resolve().parent
OPTIONS = ("fp32", "threads", "int8", "compile")
PARTS = ("decode", "processor", "text", "audio", "video")
TARGET_S = 1.2


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------------- child
class Clock:
    """Seconds spent in each part during the current dialogue."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PARTS, 0.0)
        self.open: dict[str, float] = {}

    def reset(self) -> None:
        self.spent = dict.fromkeys(PARTS, 0.0)

    def wrap(self, part: str, function):
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[part] += time.perf_counter() - began
        return timed

    def hook(self, part: str, module) -> None:
        def before(*_: Any) -> None:
            self.open[part] = time.perf_counter()

        def after(*_: Any) -> None:
            self.spent[part] += time.perf_counter() - self.open.pop(part)

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


def child(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    sys.path.insert(0, str(HERE))
    import run as bench_run  # the -full rows' model builder and clip generator

    import telme_hf  # noqa: F401  (registers the pipeline task)
    import telme_hf.modeling.media_telme as media_module
    from telme_hf.data.frozen_outputs import module_fingerprint

    bench_run.datasets.disable_progress_bars()
    bench_run.transformers.logging.set_verbosity_error()
    option = args.child
    load_at_start = os.getloadavg()[0]
    if option == "threads":
        torch.set_num_threads(args.threads)
    clips = sorted((args.workdir / "dialogue").glob("dia0_utt*.mp4"), key=lambda p: int(p.stem.split("utt")[1]))
    texts = [f"turn {i}: well, I did not expect that at all, did you? I mean it, {i} times." for i in range(len(clips))]
    started = time.perf_counter()
    model, processor = bench_run.build_model(args.preset, texts * 20)
    model.eval()
    build_s = time.perf_counter() - started
    fingerprint = module_fingerprint(model)
    if option == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if option == "compile":
        for part in ("text_teacher", "audio_student", "video_student"):
            encoder = getattr(model, part).encoder
            encoder.forward = torch.compile(encoder.forward)

    clock = Clock()
    for part, name in (("text", "text_teacher"), ("audio", "audio_student"), ("video", "video_student")):
        clock.hook(part, getattr(model, name).encoder)
    # The loader looks both names up in its module's globals: wrapped there, they time every decode of the pipeline.
    media_module.decode_clip = clock.wrap("decode", media_module.decode_clip)
    media_module.media_duration = clock.wrap("decode", media_module.media_duration)
    processor_class = type(processor)
    processor_class.__call__ = clock.wrap("processor", processor_class.__call__)

    dialogue = [{"speaker": f"Speaker{i % 2}", "text": texts[i], "media": str(path)} for i, path in enumerate(clips)]
    erc = pipeline("emotion-recognition-in-conversation", model=model, processor=processor, device="cpu")
    started = time.perf_counter()
    results = erc(dialogue, batch_size=4)  # warm-up (and, for compile, the compilation)
    first_call_s = time.perf_counter() - started
    walls, splits = [], []
    for _ in range(args.repeats):
        clock.reset()
        started = time.perf_counter()
        results = erc(dialogue, batch_size=4)
        walls.append(time.perf_counter() - started)
        splits.append(dict(clock.spent))
    assert all(r["modalities"] == ["text", "audio", "video"] for r in results)
    turns = len(clips)
    flops = {}
    if args.count_flops:
        # What the encoders have to compute, counted once more (untimed) by torch's FLOP counter, per utterance.
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            erc(dialogue, batch_size=4)
        counts = counter.get_flop_counts()
        for part, name in (("text", "text_teacher"), ("audio", "audio_student"), ("video", "video_student")):
            flops[part] = sum(sum(ops.values()) for module, ops in counts.items()
                              if module.endswith(f"{name}.encoder")) / turns
        flops["total"] = sum(counts.get("Global", {}).values()) / turns
        # What this CPU sustains on the best case of that work: one large fp32 matrix product (best of 5).
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - began)
        flops["matmul_flop_per_s"] = 2 * 2048**3 / best
    wall = statistics.median(walls)
    parts = {part: statistics.median(s[part] for s in splits) / turns for part in PARTS}
    parts["rest"] = wall / turns - sum(parts.values())
    return {"option": option, "threads": torch.get_num_threads(), "turns": turns, "build_s": build_s,
            "first_call_s": first_call_s, "walls_s": walls, "seconds_per_utterance": wall / turns, "parts": parts,
            "labels": [r["label"] for r in results], "scores": [r["scores"] for r in results],
            "fingerprint": fingerprint, "flops_per_utterance": flops, "peak_rss_mb": peak_rss_mb(),
            "load_1min": [load_at_start, os.getloadavg()[0]]}


# ------------------------------------------------------------------------------------------------------ parent
def run_child(option: str, args: argparse.Namespace, timeout: float | None, first: bool) -> dict[str, Any]:
    out = args.workdir / f"inference-{option}-{'first' if first else 'again'}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", option, "--workdir", str(args.workdir),
               "--rows-out", str(out), "--preset", args.preset, "--repeats", str(args.repeats),
               "--threads", str(args.threads)] + (["--count-flops"] if first and option == "fp32" else [])
    env = dict(os.environ)
    if option == "compile" and first:
        # A cache of its own, emptied first: the first call's figure is a cold compile, not a cache read.
        shutil.rmtree(args.workdir / "inductor-cache", ignore_errors=True)
    if option == "compile":
        # A cache of its own, emptied before the first visit: that visit's first call is a cold compile; a second
        # visit reads the cache (its first call is not reported).
        env["TORCHINDUCTOR_CACHE_DIR"] = str(args.workdir / "inductor-cache")
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"option": option, "error": f"not finished after {timeout:.0f} s (stopped)"}
    if completed.returncode != 0:
        last = [line for line in completed.stderr.strip().splitlines() if line.strip()][-1:] or ["?"]
        return {"option": option, "error": f"exit {completed.returncode} after {time.perf_counter() - started:.0f} s: "
                                           f"{last[0][:300]}", "stderr_tail": completed.stderr[-3000:]}
    return json.loads(out.read_text())


def combine(visits: list[dict[str, Any]]) -> dict[str, Any]:
    """One option's visits as one result: per-utterance seconds and parts averaged over the visits, the first
    visit's first call (a cold compile), the highest peak RSS, every visit's figure and load kept."""
    first = dict(visits[0])
    if "error" in first or len(visits) == 1:
        first["visits_s"] = [first.get("seconds_per_utterance")]
        return first
    done = [v for v in visits if "error" not in v]
    first["seconds_per_utterance"] = statistics.mean(v["seconds_per_utterance"] for v in done)
    first["parts"] = {p: statistics.mean(v["parts"][p] for v in done) for p in first["parts"]}
    first["walls_s"] = [w for v in done for w in v["walls_s"]]
    first["peak_rss_mb"] = max(v["peak_rss_mb"] for v in done)
    first["visits_s"] = [v.get("seconds_per_utterance") for v in visits]
    first["load_1min"] = [x for v in done for x in v["load_1min"]]
    first["flops_per_utterance"] = next((v["flops_per_utterance"] for v in done if v.get("flops_per_utterance")), {})
    return first


def compare(result: dict[str, Any], reference: dict[str, Any]) -> None:
    """Fused-label agreement and the largest fused-probability difference against fp32, on the same weights."""
    if "error" in result or "error" in reference:
        return
    result["same_weights"] = result["fingerprint"] == reference["fingerprint"]
    result["label_agreement"] = sum(a == b for a, b in zip(result["labels"], reference["labels"])) / len(
        reference["labels"])
    result["max_probability_difference"] = max(abs(row[label] - ref[label]) for row, ref in zip(
        result["scores"], reference["scores"]) for label in ref)


def describe(result: dict[str, Any], args: argparse.Namespace) -> str:
    option = result["option"]
    return {"fp32": "fp32, default threads", "threads": f"fp32, torch.set_num_threads({args.threads})",
            "int8": "int8 dynamic (nn.Linear)", "compile": "fp32, torch.compile (inductor)"}[option]


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("| option | threads | s/utterance | visits | " + " | ".join(PARTS) + " | rest | first call s | peak RSS MB "
          "| labels = fp32 | max Δp | 1-min load |")
    print("|---|---:|---:|---|" + "---:|" * (len(PARTS) + 1) + "---:|---:|---:|---:|---|")
    for r in results:
        if "error" in r:
            print(f"| {describe(r, args)} | | {r['error']} |" + " |" * (len(PARTS) + 8))
            continue
        agreement = f"{r['label_agreement']:.0%}" if "label_agreement" in r else "(reference)"
        delta = f"{r['max_probability_difference']:.2e}" if "max_probability_difference" in r else ""
        visits = " / ".join(f"{v:.2f}" for v in r["visits_s"] if v is not None)
        load = f"{min(r['load_1min']):.1f}-{max(r['load_1min']):.1f}"
        print(f"| {describe(r, args)} | {r['threads']} | {r['seconds_per_utterance']:.3f} | {visits} | "
              + " | ".join(f"{r['parts'][p]:.3f}" for p in (*PARTS, "rest"))
              + f" | {r['first_call_s']:.1f} | {r['peak_rss_mb']:.0f} | {agreement} | {delta} | {load} |")


def rows_of(results: list[dict[str, Any]], args: argparse.Namespace, suffix: str) -> list[dict[str, Any]]:
    reference = results[0]
    rows = []
    for r in results:
        name = f"inference-cpu-{r['option']}{'-' + str(args.threads) if r['option'] == 'threads' else ''}{suffix}"
        if "error" in r:
            rows.append({"name": name, "baseline_s": round(reference.get("seconds_per_utterance", 0), 4),
                         "ours_s": None, "ratio": None, "peak_rss_mb": None, "source": "bench_inference.py",
                         "notes": f"{describe(r, args)}: {r['error']}"})
            continue
        parts = ", ".join(f"{p} {r['parts'][p]:.3f}" for p in (*PARTS, "rest"))
        agreement = ("" if r is reference else f"; fused labels = fp32 on {r['label_agreement']:.0%}, max Δp "
                     f"{r['max_probability_difference']:.1e}")
        rows.append({
            "name": name, "baseline_s": round(reference["seconds_per_utterance"], 4),
            "ours_s": round(r["seconds_per_utterance"], 4),
            "ratio": round(reference["seconds_per_utterance"] / r["seconds_per_utterance"], 3),
            "peak_rss_mb": round(r["peak_rss_mb"]), "source": "bench_inference.py",
            "notes": (f"{describe(r, args)}, {r['turns']}-turn dialogue of {args.clip} clips, batch 4: "
                      f"{r['seconds_per_utterance']:.3f} s/utterance ({parts}); first call {r['first_call_s']:.1f} s"
                      f"{agreement}; baseline = fp32 with default threads, per utterance"),
            "seconds_per_utterance": round(r["seconds_per_utterance"], 4),
            "parts_s_per_utterance": {p: round(v, 4) for p, v in r["parts"].items()},
            "first_call_s": round(r["first_call_s"], 2), "threads": r["threads"],
            "visits_s_per_utterance": [round(v, 4) for v in r["visits_s"] if v is not None],
            "load_1min": [round(x, 2) for x in r["load_1min"]],
            **({"flops_per_utterance": {p: round(v) for p, v in r["flops_per_utterance"].items()}}
               if r.get("flops_per_utterance") else {}),
            **({k: r[k] for k in ("label_agreement", "max_probability_difference", "same_weights") if k in r})})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny preset, 2 turns of 64x48 clips, 1 repeat: the flow, figures meaningless")
    parser.add_argument("--turns", type=int, help="utterances in the dialogue (default 10)")
    parser.add_argument("--repeats", type=int, help="timed dialogues per visit of an option (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="the threads of the `threads` option")
    parser.add_argument("--rounds", type=int, choices=(1, 2), help="visits per option (default 2; --quick: 1)")
    parser.add_argument("--options", nargs="+", choices=OPTIONS, default=list(OPTIONS),
                        help="options to run (fp32, the reference, always runs first)")
    parser.add_argument("--compile-timeout", type=float, default=900.0, help="seconds before a compile child stops")
    parser.add_argument("--workdir", type=Path, help="keep the clips here")
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results.json; --quick: none)")
    parser.add_argument("--child", choices=OPTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="meld", help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.rows_out.write_text(json.dumps(child(args)))
        return 0

    args.preset = "tiny" if args.quick else "meld"
    turns = args.turns or (2 if args.quick else 10)
    args.repeats = args.repeats or 1
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.clip = "64x48" if args.quick else "720p"
    options = ["fp32", *[o for o in args.options if o != "fp32"]]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        args.workdir = (args.workdir or Path(scratch)).absolute()
        sys.path.insert(0, str(HERE))
        import run as bench_run

        folder = args.workdir / "dialogue"
        if folder.exists():
            for old in folder.glob("*.mp4"):
                old.unlink()
        bench_run.make_clips(folder, turns, smoke=args.quick)
        # The options take turns, twice in opposite orders (A B C D D C B A), so that a change in the machine's
        # load hits all of them alike; each visit is its own child process.
        order = options + options[::-1] if args.rounds == 2 else options
        visits: dict[str, list[dict[str, Any]]] = {option: [] for option in options}
        for option in order:
            if any("error" in v for v in visits[option]):
                continue  # a failed option is not tried again
            first = not visits[option]
            result = run_child(option, args, args.compile_timeout if option == "compile" else None, first)
            print(f"{option}: {result.get('seconds_per_utterance', result.get('error'))}", file=sys.stderr)
            visits[option].append(result)
        results = [combine(visits[option]) for option in options]
    if "error" in results[0]:
        raise SystemExit(f"the fp32 reference failed: {results[0]['error']}\n{results[0].get('stderr_tail', '')}")
    for result in results[1:]:
        compare(result, results[0])
    machine = bench_run.machine()
    total_s = round(time.perf_counter() - started)
    print(f"{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}; 1-min load "
          f"{machine['load_average_1min']} at the end; total {total_s} s; preset {args.preset}, {turns} turns of "
          f"{args.clip} clips, batch 4; {args.repeats} timed dialogue(s) after a warm-up per visit, "
          f"{args.rounds} visit(s) per option" + (" (A B C D D C B A)" if args.rounds == 2 else "") + "\n")
    print_table(results, args)
    working = [r for r in results if "error" not in r]
    best = min(working, key=lambda r: r["seconds_per_utterance"])
    print(f"\nbest: {describe(best, args)} at {best['seconds_per_utterance']:.3f} s/utterance; the {TARGET_S} s target "
          f"is {'reached' if best['seconds_per_utterance'] <= TARGET_S else 'not reached'} on this machine")
    reference = results[0]
    flops = reference.get("flops_per_utterance") or {}
    if flops.get("total"):
        spent = {p: reference["parts"][p] for p in ("text", "audio", "video")}
        budget = TARGET_S - reference["parts"]["decode"] - reference["parts"]["processor"]
        print("fp32 work per utterance (torch.utils.flop_counter): " + ", ".join(
            f"{p} {flops[p] / 1e9:.1f} GFLOP in {spent[p]:.2f} s ({flops[p] / spent[p] / 1e9:.0f} GFLOP/s)"
            for p in spent) + f"; all {flops['total'] / 1e9:.1f} GFLOP: {TARGET_S} s/utterance, less decoding and the "
            f"processor, needs {flops['total'] / budget / 1e9:.0f} GFLOP/s sustained"
            + (f"; a 2048x2048 fp32 matmul runs at {flops['matmul_flop_per_s'] / 1e9:.0f} GFLOP/s here"
               if flops.get("matmul_flop_per_s") else ""))
    suffix = "" if args.quick else "-full"
    rows = rows_of(results, args, suffix)
    output = args.output or (None if args.quick else HERE / "results.json")
    if output is not None:
        report = json.loads(output.read_text()) if output.exists() else {"rows": []}
        names = {row["name"] for row in rows}
        report["rows"] = [row for row in report.get("rows", []) if row["name"] not in names] + rows
        report.setdefault("runs", {})["bench_inference.py"] = {
            "command": "python benchmarks/bench_inference.py" + (" --quick" if args.quick else ""),
            "machine": machine, "total_s": total_s, "turns": turns, "repeats": args.repeats,
            "errors": {r["option"]: r.get("stderr_tail", r["error"]) for r in results if "error" in r}}
        output.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + (f"Wrote {output}" if output else "(--quick: nothing written)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
