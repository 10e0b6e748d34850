"""The GPU check: full-size TelME training steps in fp32, TF32, bf16 and fp16 through accelerate, and a short recipe run.

    python benchmarks/gpu_check.py            # on one CUDA GPU, about 5 minutes
    python benchmarks/run.py --gpu            # the same
    python benchmarks/gpu_check.py --cpu-flow # the same flow on a CPU with the tiny preset (shapes and flow only)

1. For each stage (text teacher, audio student, video student, fusion on cached features) and each precision
   (`no` = fp32, `tf32` = fp32 with TF32 matmuls and convolutions, `bf16`, `fp16` with accelerate's grad scaler):
   training steps per second after warm-up steps, with the clean recipe's optimizer (`torch.optim.AdamW`, fused on
   a GPU, as the Trainer's default `adamw_torch_fused`), and the peak GPU memory of that stage and precision. The
   models are the paper's backbones with random weights, built offline from their configs; inputs are MELD-shaped
   (a 128-token prompt, 3.2 s of 16 kHz audio, 8 frames at 224x224), batch 4 as in the recipe (`--batch-size`).
   Each row also gives:
   - the step's floating-point operations (torch's `FlopCounterMode` over one forward and backward) and the
     TFLOP/s they were done at;
   - a projected epoch on MELD's 9,989 training utterances at that rate, if every batch had this batch's shape;
   - where a step's time goes, from a few more steps with a synchronisation after each phase: forward, backward,
     optimizer (clipping, step, zeroing), and the host's share of the forward (the seconds the host took to issue
     its kernels over the forward's seconds: near 1, the GPU waits for the host, and a faster kernel such as bf16's
     cannot shorten the step).
2. One short `telme train` run of every stage on a generated synthetic corpus with the full-size models
   (`random_weights=true`), in the recipe's default precision (`auto`: bf16 where supported), and one of the tiny
   preset under `recipe=reference` (fp32 teacher, fp16 students and fusion): wall time, and per stage the autocast
   dtype its forward saw, the grad scaler's final scale and skipped steps, as the run recorded them.
   `--recipe-only` runs just these (a minute on a GPU).

Writes `benchmarks/gpu_results.json` and prints a markdown table with throughput ratios against fp32.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F


HERE = Path(__file__).resolve().parent
PRECISIONS = ("no", "tf32", "bf16", "fp16")
STAGES = ("teacher", "audio", "video", "fusion")
MELD_TRAIN_UTTERANCES = 9989  # train_sent_emo.csv's rows


def fake_batch(model, batch_size: int, text_tokens: int, audio_seconds: float, device) -> dict[str, torch.Tensor]:
    """MELD-shaped random inputs for every part (token ids within the vocabulary, normalised audio, frames)."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    video = config.video_config
    batch = {
        "input_ids": torch.randint(5, config.text_config.vocab_size, (batch_size, text_tokens), generator=generator),
        "attention_mask": torch.ones(batch_size, text_tokens, dtype=torch.long),
        "input_values": torch.randn(batch_size, int(audio_seconds * 16000), generator=generator),
        "audio_attention_mask": torch.ones(batch_size, int(audio_seconds * 16000), dtype=torch.long),
        "pixel_values": torch.randn(batch_size, video.num_frames, 3, video.image_size, video.image_size,
                                    generator=generator),
        "labels": torch.randint(0, config.num_labels, (batch_size,), generator=generator),
    }
    return {name: value.to(device) for name, value in batch.items()}


def stage_loss(model, stage: str, batch: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor]) -> torch.Tensor:
    """The stage's training loss, as the stage trainers compute it (students from cached teacher outputs, the
    fusion from cached features)."""
    from telme_hf.training.losses import student_distillation_loss

    labels = batch["labels"]
    if stage == "teacher":
        return F.cross_entropy(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                               labels)
    if stage in ("audio", "video"):
        if stage == "audio":
            out = model(input_values=batch["input_values"], audio_attention_mask=batch["audio_attention_mask"])
            logits, features = out.audio_logits, out.audio_features
        else:
            out = model(pixel_values=batch["pixel_values"])
            logits, features = out.video_logits, out.video_features
        return student_distillation_loss(logits, frozen["teacher_logits"], features, frozen["teacher_features"],
                                         labels, alpha=1.0, beta=1.0, temperature=4.0)["loss"]
    out = model(text_features=frozen["text_features"], audio_features=frozen["audio_features"],
                video_features=frozen["video_features"])
    return F.cross_entropy(out.fusion_logits, labels)


def frozen_outputs(model, batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        model.eval()
        text = model.get_text_features(batch["input_ids"], batch["attention_mask"]).pooler_output
        return {"teacher_features": text, "teacher_logits": model.text_teacher.classifier(text), "text_features": text,
                "audio_features": model.get_audio_features(batch["input_values"],
                                                            batch["audio_attention_mask"]).pooler_output,
                "video_features": model.get_video_features(batch["pixel_values"]).pooler_output}


def step_flops(model, stage: str, batch, frozen) -> int:
    """Floating-point operations of one training step's forward and backward (torch's `FlopCounterMode`: matrix
    products, convolutions and attention; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    from telme_hf.training.trainer import freeze_all_but

    freeze_all_but(model, stage)
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        stage_loss(model, stage, batch, frozen).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


@contextlib.contextmanager
def tf32_matmuls(enabled: bool):
    """TF32 for fp32 matrix products and convolutions inside the block, or neither (torch's default allows it for
    cuDNN's convolutions only): the `tf32` rows against true fp32 ones; the flags as they were afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_stage(model, stage: str, precision: str, batch, frozen, warmup: int, steps: int,
               flops: int) -> dict[str, Any]:
    """Steps per second of one stage in one precision through a fresh `Accelerator`, its peak GPU memory, the
    TFLOP/s achieved, a projected MELD epoch, and where the time of a step goes."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    from telme_hf.training.trainer import freeze_all_but

    AcceleratorState._reset_state(True)  # each precision gets its own accelerator state
    GradientState._reset_state()
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision="no" if precision == "tf32" else precision, cpu=not cuda)
    freeze_all_but(model, stage)
    trained = [p for p in model.parameters() if p.requires_grad]
    # The clean recipe's optimizer: the Trainer's default `adamw_torch_fused` (fused where the device has it).
    optimizer = torch.optim.AdamW(trained, lr=1e-5, weight_decay=0.01, fused=cuda)
    prepared, optimizer = accelerator.prepare(model, optimizer)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    def step(phases: dict[str, list[float]] | None = None) -> torch.Tensor:
        began = time.perf_counter()
        prepared.train()
        with accelerator.autocast():
            loss = stage_loss(prepared, stage, batch, frozen)
        if phases is not None:  # the host's time to issue the forward, then the forward itself
            phases["forward_issue"].append(time.perf_counter() - began)
            synchronize()
            phases["forward"].append(time.perf_counter() - began)
            began = time.perf_counter()
        accelerator.backward(loss)
        if phases is not None:
            synchronize()
            phases["backward"].append(time.perf_counter() - began)
            began = time.perf_counter()
        accelerator.clip_grad_norm_(trained, 10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if phases is not None:
            synchronize()
            phases["optimizer"].append(time.perf_counter() - began)
        return loss

    times = []
    with tf32_matmuls(precision == "tf32"):
        for index in range(warmup + steps):
            synchronize()
            began = time.perf_counter()
            loss = step()
            synchronize()
            if index >= warmup:
                times.append(time.perf_counter() - began)
        phases: dict[str, list[float]] = {"forward_issue": [], "forward": [], "backward": [], "optimizer": []}
        for _ in range(max(2, steps // 2)):
            step(phases)
    finite = bool(torch.isfinite(loss.detach()).item())
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
    del optimizer, prepared
    accelerator.free_memory()
    steps_per_s = len(times) / sum(times)
    split = {name: statistics.median(seconds) for name, seconds in phases.items()}
    batch_size = len(batch["labels"])
    return {"stage": stage, "precision": precision, "steps_per_s": round(steps_per_s, 3),
            "peak_gpu_mb": round(peak), "loss_finite": finite, "flop_per_step": flops,
            "tflops": round(flops * steps_per_s / 1e12, 3),
            "meld_epoch_min": round(math.ceil(MELD_TRAIN_UTTERANCES / batch_size) / steps_per_s / 60, 1),
            "phases_ms": {name: round(1000 * seconds, 2) for name, seconds in split.items()},
            "host_share_of_forward": round(split["forward_issue"] / split["forward"], 2)}


def recipe_run(preset: str, workdir: Path, cpu_flow: bool, *overrides: str) -> dict[str, Any]:
    """One short `telme train` of every stage on a synthetic corpus with random full-size (or tiny) models; the
    precision each stage's steps really ran in, as the run recorded it in `results.json`.

    Run from `workdir`, so that the installed `telme_hf` is imported whatever the working directory (started from the
    repository root, `-m telme_hf.cli` would otherwise import the source folder, which has no `modeling`)."""
    output_dir = workdir / f"recipe-{len(list(workdir.glob('recipe-*')))}"
    command = [sys.executable, "-m", "telme_hf.cli", "train", "--config", "tiny", f"preset={preset}",
               "random_weights=true", f"output_dir={output_dir}", "synthetic_dialogues=12", "num_train_epochs=1",
               "teacher_epochs=1", "fusion_epochs=1", "per_device_train_batch_size=4", "learning_rate=1e-5",
               *overrides]
    if cpu_flow:
        command.append("--use_cpu")
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=workdir,
                               env={**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"})
    seconds = time.perf_counter() - started
    written = (output_dir / "results.json").exists() and (output_dir / "final" / "model.safetensors").exists()
    results = json.loads((output_dir / "results.json").read_text()) if written else {}
    configured = (results.get("training") or {}).get("stages", {})
    precision = {stage: {"configured": configured.get(stage, {}).get("precision"),
                         "autocast_dtype": result.get("autocast_dtype"), "grad_scaler": result.get("grad_scaler")}
                 for stage, result in results.get("stages", {}).items()}
    return {"command": " ".join(command[1:]), "returncode": completed.returncode, "seconds": round(seconds, 1),
            "stages": sorted(precision), "precision": precision, "written": written,
            "stderr_tail": completed.stderr[-2000:]}


def print_recipe(name: str, recipe: dict[str, Any]) -> None:
    print(f"\n{name} ({recipe['seconds']} s, exit {recipe['returncode']}): {recipe['command']}")
    print("| stage | configured | autocast seen in the forward | grad scaler: final scale | skipped steps |")
    print("|---|---|---|---:|---:|")
    for stage, seen in recipe["precision"].items():
        scaler = seen["grad_scaler"] or {}
        print(f"| {stage} | {seen['configured']} | {seen['autocast_dtype']} | {scaler.get('final_scale', '-')} "
              f"| {scaler.get('skipped_steps', '-')} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-flow", action="store_true",
                        help="run the same flow on a CPU with the tiny preset and fp32 only (no figures of interest)")
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--batch-size", type=int, default=4, help="utterances per step (the recipe's: 4)")
    parser.add_argument("--output", type=Path, default=HERE / "gpu_results.json")
    parser.add_argument("--skip-recipe", action="store_true", help="only the step timings")
    parser.add_argument("--recipe-only", action="store_true",
                        help="only the two recipe runs (the full-size clean one, the tiny reference one)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.cpu_flow:
        print("gpu_check: error: no CUDA device; pass --cpu-flow to check the flow on a CPU.", file=sys.stderr)
        return 2

    import transformers

    from telme_hf import TelMEConfig, TelMEForEmotionRecognition

    transformers.logging.set_verbosity_error()
    preset = "tiny" if args.cpu_flow else "meld"
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_flow else "cpu")
    precisions = ("no",) if args.cpu_flow else PRECISIONS
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():  # before Ampere: no bf16, no TF32
        precisions = ("no", "fp16")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__,
        "transformers": transformers.__version__, "preset": preset, "steps": []}
    if args.recipe_only:
        return finish(args, report, device)
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(TelMEConfig.from_preset(preset)).to(device)
    text_tokens, audio_seconds = (16, 0.5) if args.cpu_flow else (128, 3.2)
    batch = fake_batch(model, args.batch_size, text_tokens, audio_seconds, device)
    frozen = frozen_outputs(model, batch)
    warmup, steps = (1, 2) if args.cpu_flow else (2, 5 if args.quick else 10)
    rows = []
    for stage in STAGES:
        flops = step_flops(model, stage, batch, frozen)
        for precision in precisions:
            rows.append(time_stage(model, stage, precision, batch, frozen, warmup, steps, flops))
            print(f"{stage} {precision}: {rows[-1]}", file=sys.stderr)
    fp32 = {row["stage"]: row["steps_per_s"] for row in rows if row["precision"] == "no"}
    for row in rows:
        row["vs_fp32"] = round(row["steps_per_s"] / fp32[row["stage"]], 2)
    report.update(parameters_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                  batch={"size": args.batch_size, "text_tokens": text_tokens, "audio_seconds": audio_seconds},
                  steps=rows)
    del model, frozen, batch
    if device.type == "cuda":
        torch.cuda.empty_cache()
    print(f"{report['device']}, torch {report['torch']}, {report['preset']} preset ({report['parameters_m']}M "
          f"parameters), batch {report['batch']}")
    print("| stage | precision | steps/s | vs fp32 | TFLOP/step | TFLOP/s | MELD epoch min | forward / backward / "
          "optimizer ms | host share of forward | peak GPU MB | loss finite |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for row in rows:
        phases = row["phases_ms"]
        print(f"| {row['stage']} | {row['precision']} | {row['steps_per_s']:.2f} | {row['vs_fp32']:.2f}x "
              f"| {row['flop_per_step'] / 1e12:.3f} | {row['tflops']:.1f} | {row['meld_epoch_min']} "
              f"| {phases['forward']:.1f} / {phases['backward']:.1f} / {phases['optimizer']:.1f} "
              f"| {row['host_share_of_forward']:.2f} | {row['peak_gpu_mb']} | {row['loss_finite']} |")
    print(f"MELD epoch: {MELD_TRAIN_UTTERANCES} training utterances at this batch's shape and each row's rate; "
          "host share near 1: the GPU waits for the host (not in the audio rows: data2vec's SpecAugment reads the "
          "mask on the host inside the forward, which waits for the GPU there)")
    return finish(args, report, device)


def finish(args: argparse.Namespace, report: dict[str, Any], device: torch.device) -> int:
    """The recipe runs (unless --skip-recipe), then the report written and printed."""
    failed = False
    if not args.skip_recipe:
        with tempfile.TemporaryDirectory() as scratch:
            report["recipe"] = recipe_run(report["preset"], Path(scratch), args.cpu_flow)
            # The original's precision (fp32 teacher; fp16 autocast and one grad scaler for the students and the
            # fusion), a few steps per stage, as the run recorded what its forward saw.
            report["reference_recipe"] = recipe_run("tiny", Path(scratch), args.cpu_flow, "recipe=reference")
        for name, title in (("recipe", "recipe run"), ("reference_recipe", "tiny reference recipe")):
            print_recipe(title, report[name])
            if report[name]["returncode"] != 0:
                print(report[name]["stderr_tail"], file=sys.stderr)
                failed = True
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
