"""Time decoding one MELD-like clip: the naive PyAV path vs `decode_clip` (`telme_hf.modeling.media_telme`) vs a
`.npy` cache.

Generates `--clips` clips shaped like MELD's (default 1280x720, 3 s, 24 fps, H.264 + AAC 48 kHz stereo) in a
temporary folder, then times, in one process and one run, the per-clip median of:

  a. naive      two `av.open` calls; every frame decoded *and* converted to an RGB array, then 8 indexed;
                audio resampled to 16 kHz mono in the second open
  b. ours       `decode_clip`: one open for both streams, only the 8 picked frames converted, resized to
                shortest edge 224 by swscale during the conversion
  b'. ours      the same at native size (no resize), to separate the resize from the rest
  c. cache      `np.load` of b's arrays saved as `.npy` (what a decode cache costs per clip once filled)

The methods take turns on each clip (after one warm-up call each); per-clip times are the median over `--passes`,
and the table shows the median over clips, as wall time and as CPU time of this process (steadier on a shared
machine). Ratios are against the naive path measured in the same run.

    python benchmarks/bench_decode.py                 # ~1 minute on 2 cores
    python benchmarks/bench_decode.py --clips 20 --width 640 --height 360
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from telme_hf.data.synthetic import write_media
from telme_hf.modeling.media_telme import AudioDecodeOptions, VideoDecodeOptions, decode_clip, sample_frame_indices


def make_clip(path: Path, index: int, args: argparse.Namespace) -> Path:
    """A clip with moving gradients, a moving box and static texture (something an encoder has to work for)."""
    rng = np.random.default_rng(index)
    num_frames = int(round(args.seconds * args.fps))
    y = np.arange(args.height, dtype=np.int32)[:, None]
    x = np.arange(args.width, dtype=np.int32)[None, :]
    # Faint static texture: ~0.8 MB per 720p clip, close to MELD's ~0.74 MB.
    texture = rng.integers(0, 4, size=(args.height, args.width), dtype=np.int32)
    frames = np.empty((num_frames, args.height, args.width, 3), dtype=np.uint8)
    box = max(args.height // 6, 2)
    for t in range(num_frames):
        frames[t, ..., 0] = (x // 3 + 4 * t + texture) % 256
        frames[t, ..., 1] = (y // 2 + 2 * t + index * 20) % 256
        frames[t, ..., 2] = ((x + y) // 5 + texture) % 256
        top = (t * 7) % (args.height - box)
        left = (t * 13 + index * 50) % (args.width - box)
        frames[t, top : top + box, left : left + box] = 240
    time_axis = np.arange(int(round(args.seconds * args.sample_rate))) / args.sample_rate
    voice = 0.3 * np.sin(2 * np.pi * (150 + 20 * index) * time_axis) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * time_axis))
    audio = np.stack([voice, 0.8 * voice]).astype(np.float32)  # R = 0.8 L, like the measured clips
    return write_media(path, frames, audio, fps=args.fps, sample_rate=args.sample_rate,
                       video_options={"crf": "23", "preset": args.preset}, audio_bitrate=128000)


def naive_decode(path: Path, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """What a first PyAV port does: convert every frame, pick afterwards; open the file again for audio."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    video = np.stack([frames[i] for i in sample_frame_indices(len(frames), num_frames)])
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray()[0] for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray()[0] for out in resampler.resample(None))
    return np.concatenate(chunks), video


def time_methods(methods: dict, paths: list[Path], passes: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per-clip wall and CPU milliseconds of each method (median over `passes`), after one warm-up call each.

    Methods take turns on each clip, so a change in the machine's load during the run hits all of them alike. CPU
    time (all threads of this process) is reported next to wall time because other load disturbs it less.
    """
    for function in methods.values():
        function(paths[0])
    wall = {name: [[] for _ in paths] for name in methods}
    cpu = {name: [[] for _ in paths] for name in methods}
    for _ in range(passes):
        for i, path in enumerate(paths):
            for name, function in methods.items():
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                function(path)
                cpu[name][i].append((time.process_time() - cpu_start) * 1000)
                wall[name][i].append((time.perf_counter() - wall_start) * 1000)
    return {
        name: ([statistics.median(t) for t in wall[name]], [statistics.median(t) for t in cpu[name]])
        for name in methods
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time decoding MELD-like clips: naive PyAV vs decode_clip vs a .npy cache (ratios vs naive).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=8, help="clips to generate and time")
    parser.add_argument("--width", type=int, default=1280, help="frame width (even)")
    parser.add_argument("--height", type=int, default=720, help="frame height (even)")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length")
    parser.add_argument("--fps", type=int, default=24, help="frame rate")
    parser.add_argument("--sample-rate", type=int, default=48000, help="audio rate (AAC stereo)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the generated clips")
    parser.add_argument("--num-frames", type=int, default=8, help="frames picked per clip")
    parser.add_argument("--size", type=int, default=224, help="shortest edge after resizing (ours)")
    parser.add_argument("--passes", type=int, default=3, help="timing passes over all clips")
    parser.add_argument("--workdir", type=Path, help="keep the clips and cache here instead of a temp dir")
    args = parser.parse_args(argv)

    audio_options = AudioDecodeOptions()
    resized = VideoDecodeOptions(num_frames=args.num_frames, size=args.size)
    native = VideoDecodeOptions(num_frames=args.num_frames, size=None)

    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        paths = [make_clip(workdir / f"dia{i}_utt0.mp4", i, args) for i in range(args.clips)]
        generation_s = time.perf_counter() - started

        # Same pixels at the same frame index: ours at native size must equal the naive picks exactly.
        naive_audio, naive_video = naive_decode(paths[0], args.num_frames)
        ours = decode_clip(paths[0], audio_options, native)
        same_pixels = np.array_equal(ours.video, naive_video)
        gain = float(np.sqrt(np.mean(naive_audio**2)) / np.sqrt(np.mean(ours.audio**2)))

        # Fill the cache with b's arrays.
        for path in paths:
            clip = decode_clip(path, audio_options, resized)
            np.save(path.with_suffix(".audio.npy"), clip.audio)
            np.save(path.with_suffix(".video.npy"), clip.video)
        cache_mb = sum(os.path.getsize(p.with_suffix(s)) for p in paths for s in (".audio.npy", ".video.npy"))
        cache_mb /= 2**20 * len(paths)

        methods = {
            "a. naive: 2 opens, rgb24 every frame, index": lambda p: naive_decode(p, args.num_frames),
            f"b. decode_clip: 1 open, picked frames, size {args.size}": lambda p: decode_clip(p, audio_options, resized),
            "b'. decode_clip, native size": lambda p: decode_clip(p, audio_options, native),
            "c. np.load cached audio + frames (.npy)": lambda p: (
                np.load(p.with_suffix(".audio.npy")), np.load(p.with_suffix(".video.npy"))
            ),
        }
        results = time_methods(methods, paths, args.passes)
        clip_kb = statistics.mean(p.stat().st_size for p in paths) / 1024
        with av.open(str(paths[0])) as container:
            stream = container.streams.video[0]
            keyframes = sum(packet.is_keyframe for packet in container.demux(stream))
            num_frames = stream.frames

    print(f"python {platform.python_version()}, av {av.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs ({platform.machine()})")
    print(f"{args.clips} clips {args.width}x{args.height}, {args.seconds:g} s, {args.fps} fps ({num_frames} frames, "
          f"{keyframes} keyframe(s) in clip 0), H.264 {args.preset} + AAC {args.sample_rate} Hz stereo, "
          f"{clip_kb:.0f} KB/clip; generated in {generation_s:.1f} s")
    print(f"check: native-size frames of b' equal the naive picks: {same_pixels}; naive mono RMS / ours = {gain:.4f} "
          "(libswresample's (L+R)/sqrt(2) vs the channel mean)")
    print(f"cache: {cache_mb:.2f} MB per clip (.npy, frames at shortest edge {args.size})\n")
    base_wall, base_cpu = (statistics.median(t) for t in results[next(iter(results))])
    width = max(map(len, results))
    print(f"| {'method':<{width}} | wall ms/clip | min-max wall | CPU ms/clip | ratio wall | ratio CPU |")
    print(f"|{'-' * (width + 2)}|-------------:|-------------:|------------:|-----------:|----------:|")
    for name, (wall, cpu) in results.items():
        wall_median, cpu_median = statistics.median(wall), statistics.median(cpu)
        spread = f"{min(wall):.1f}-{max(wall):.1f}"
        print(f"| {name:<{width}} | {wall_median:12.2f} | {spread:>12} | {cpu_median:11.2f} "
              f"| {wall_median / base_wall:10.3f} | {cpu_median / base_cpu:9.3f} |")
    print("\n(medians over clips of per-clip medians over passes; ratios against row a, measured in this run)")
    return 0 if same_pixels else 1


if __name__ == "__main__":
    raise SystemExit(main())
