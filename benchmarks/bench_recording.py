"""Predict whole recordings of growing length: time should grow linearly with the length, memory stay flat.

Generates recordings of 1, 10 and 60 minutes (`--quick`: 0.5 and 2) with PyAV, 64x48 H.264 at 10 fps (a keyframe
every 2 s) and AAC 16 kHz mono, two speakers taking turns, each a tone at their own pitch; and an SRT with a cue
every 4 s (3.5 s long). Builds the tiny preset with random weights, offline, and saves it as a checkpoint. Then,
per length, each path in a child process of its own (so that its peak RSS is its own):

  ours    `predict_recording`: the cues' windows decoded a block of utterances at a time, each utterance
          predicted from the dialogue up to it
  whole   what a first port does before anything else: the recording's audio decoded whole at 16 kHz
          (`decode_clip` without a window), no model

The table shows, per length, the cues, seconds, seconds per recorded minute, the child's peak RSS and its growth
over the RSS the child had before the path ran (the model loaded, for ours). The summary compares the longest
recording with the shortest, in the same run: seconds per recorded minute (1.00 = linear) and RSS growth.

    python benchmarks/bench_recording.py --quick      # ~1 minute on 2 cores
    python benchmarks/bench_recording.py              # 1, 10 and 60 minutes: ~5 minutes on 2 cores
    python benchmarks/bench_recording.py --minutes 0.2 0.4   # the flow in seconds (the tests)
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np


RATE, FPS, WIDTH, HEIGHT = 16000, 10, 64, 48
CUE_EVERY, CUE_SECONDS = 4.0, 3.5
SPEAKERS = {"Ann": 180.0, "Ben": 330.0}
SENTENCES = ["well I did not expect that at all", "are you serious right now", "that is the best news all week",
             "please leave me alone", "I am so sorry to hear that", "what a mess this is"]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cue_times(seconds: float) -> list[tuple[float, float, str, str]]:
    """(start, end, speaker, text) of every cue: one every 4 s, the speakers taking turns."""
    names = list(SPEAKERS)
    return [(k * CUE_EVERY + 0.25, k * CUE_EVERY + 0.25 + CUE_SECONDS, names[k % 2], SENTENCES[k % len(SENTENCES)])
            for k in range(int(seconds // CUE_EVERY))]


def write_recording(path: Path, seconds: float) -> Path:
    """Encode the recording a second at a time (never whole in memory): a square moving over a gradient, and each
    cue's speaker's tone."""
    cues = cue_times(seconds)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.gop_size = 2 * FPS
        video.options = {"preset": "ultrafast", "crf": "30"} if video.name == "libx264" else {}
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        audio.bit_rate = 32000
        background = np.broadcast_to((np.arange(WIDTH, dtype=np.uint8) * 3)[None, :, None], (HEIGHT, WIDTH, 3))
        samples = 0
        for second in range(int(math.ceil(seconds))):
            for index in range(second * FPS, (second + 1) * FPS):
                image = background.copy()
                top, left = (index * 3) % (HEIGHT - 16), (index * 5) % (WIDTH - 16)
                image[top:top + 16, left:left + 16] = (230, 200, 30)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(video.encode(frame))
            t = (samples + np.arange(RATE)) / RATE
            wave = np.zeros(RATE, dtype=np.float32)
            for start, end, speaker, _ in cues[int(second // CUE_EVERY):int(second // CUE_EVERY) + 2]:
                inside = (t >= start) & (t < end)
                wave[inside] = 0.3 * np.sin(2 * np.pi * SPEAKERS[speaker] * t[inside])
            for offset in range(0, RATE, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, offset:offset + 1024].copy(), format="fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = RATE, samples + offset
                container.mux(audio.encode(chunk))
            samples += RATE
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def write_srt(path: Path, seconds: float) -> Path:
    def clock(value: float) -> str:
        ms = int(round(value * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    path.write_text("".join(f"{i}\n{clock(s)} --> {clock(e)}\n{who}: {text}\n\n"
                            for i, (s, e, who, text) in enumerate(cue_times(seconds), 1)), encoding="utf-8")
    return path


def build_checkpoint(folder: Path) -> Path:
    """The tiny preset with random weights and a tokenizer trained on the sentences, saved with its pipeline."""
    import torch

    from telme_hf import TelMEConfig, TelMEForEmotionRecognition, build_processor, train_tokenizer
    from telme_hf.inference.prediction import save_checkpoint

    tokenizer = train_tokenizer(SENTENCES * 50, vocab_size=300)
    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    return save_checkpoint(TelMEForEmotionRecognition(config).eval(), build_processor(config, tokenizer), folder)


def child(path_name: str, checkpoint: Path, recording: Path, transcript: Path) -> dict:
    """One path on one recording, in this (fresh) process: seconds, cues, peak RSS and its growth."""
    if path_name == "ours":
        import torch

        from telme_hf.inference.prediction import load_model_and_processor
        from telme_hf.inference.recordings import predict_recording

        torch.set_num_threads(1)
        loaded = load_model_and_processor(checkpoint, "cpu")
        before = peak_rss_mb()
        started = time.perf_counter()
        rows = predict_recording(loaded, recording, transcript)
        seconds = time.perf_counter() - started
        assert all(row["modalities"] == ["text", "audio", "video"] for row in rows), rows[0]["note"]
        cues = len(rows)
    else:
        from telme_hf.modeling.media_telme import AudioDecodeOptions, decode_clip

        before = peak_rss_mb()
        started = time.perf_counter()
        samples = len(decode_clip(recording, AudioDecodeOptions(), None).audio)
        seconds = time.perf_counter() - started
        cues = len(cue_times(samples / RATE))
    return {"seconds": seconds, "cues": cues, "peak_rss_mb": peak_rss_mb(), "growth_mb": peak_rss_mb() - before}


def run_child(path_name: str, checkpoint: Path, recording: Path, transcript: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", path_name, "--checkpoint", str(checkpoint),
               "--recording", str(recording), "--transcript", str(transcript)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{path_name} on {recording.name} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 and 2 minute recordings")
    parser.add_argument("--minutes", type=float, nargs="+", help="recording lengths (default 1 10 60)")
    parser.add_argument("--workdir", type=Path, help="keep the recordings and the checkpoint here")
    parser.add_argument("--child", choices=("ours", "whole"), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--recording", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--transcript", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.checkpoint, args.recording, args.transcript)))
        return 0

    minutes = args.minutes or ([0.5, 2.0] if args.quick else [1.0, 10.0, 60.0])
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = build_checkpoint(workdir / "checkpoint")
        for length in minutes:
            started = time.perf_counter()
            recording = write_recording(workdir / f"recording-{length:g}min.mp4", 60 * length)
            transcript = write_srt(workdir / f"recording-{length:g}min.srt", 60 * length)
            generated = time.perf_counter() - started
            ours = run_child("ours", checkpoint, recording, transcript)
            whole = run_child("whole", checkpoint, recording, transcript)
            results.append((length, ours, whole))
            print(f"{length:g} min: generated in {generated:.0f} s ({recording.stat().st_size / 1e6:.1f} MB)",
                  file=sys.stderr)

    print(f"{os.cpu_count()} cores, 1-min load {os.getloadavg()[0]:.2f}; tiny preset, 1 torch thread; "
          f"{WIDTH}x{HEIGHT} H.264 at {FPS} fps + AAC {RATE} Hz, a {CUE_SECONDS:g} s cue every {CUE_EVERY:g} s\n")
    print("| recording | cues | ours s | ours s per recorded min | ours peak RSS MB | ours RSS growth MB "
          "| whole-audio s | whole-audio RSS growth MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for length, ours, whole in results:
        print(f"| {length:g} min | {ours['cues']} | {ours['seconds']:.2f} | {ours['seconds'] / length:.2f} "
              f"| {ours['peak_rss_mb']:.0f} | {ours['growth_mb']:.0f} | {whole['seconds']:.2f} "
              f"| {whole['growth_mb']:.0f} |")
    (short, first, first_whole), (long, last, last_whole) = results[0], results[-1]
    print(f"\nseconds per recorded minute, {long:g} min / {short:g} min: "
          f"{(last['seconds'] / long) / (first['seconds'] / short):.2f}x (1.00 = linear)")
    print(f"RSS growth, {long:g} min vs {short:g} min: ours {first['growth_mb']:.0f} -> {last['growth_mb']:.0f} MB; "
          f"the audio decoded whole {first_whole['growth_mb']:.0f} -> {last_whole['growth_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
