"""The benchmark entry points run and report what they promise (figures are not checked: they are the machine's).

Every script's `main` runs here on its smallest settings, so a benchmark broken by a change elsewhere fails the
suite (`run.py --smoke` and `gpu_check.py`'s recipe run are among the slow tests, which CI runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROW_KEYS = {"name", "baseline_s", "ours_s", "ratio", "peak_rss_mb", "notes"}


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """`python benchmarks/<name> args…` in its own process, as a user runs it; fails the test on a non-zero exit."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def run_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run

        yield run
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_decode_rows_have_every_field_and_ratio_is_baseline_over_ours(run_module, tmp_path):
    rows = run_module.measure_decode(tmp_path, clips=1, repeats=1, smoke=True)
    assert [row["name"] for row in rows] == ["decode", "cache"]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row["ratio"] == pytest.approx(row["baseline_s"] / row["ours_s"], rel=1e-2)
    assert rows[0]["ours_s"] == rows[1]["baseline_s"]  # the cache row is measured against our decode


def test_interleaved_gives_one_median_per_item_and_path(run_module):
    calls = []
    times = run_module.interleaved({"a": calls.append, "b": calls.append}, [1, 2, 3], repeats=2)
    assert calls == [1, 1] + [1, 1, 2, 2, 3, 3] * 2  # a warm-up each, then the paths take turns on every item
    assert set(times) == {"a", "b"} and all(len(t["wall"]) == 3 == len(t["cpu"]) for t in times.values())


def test_the_gpu_check_flow_runs_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--cpu-flow", "--skip-recipe",
                           "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(row["stage"], row["precision"]) for row in report["steps"]] == [
        ("teacher", "no"), ("audio", "no"), ("video", "no"), ("fusion", "no")]
    assert all(row["loss_finite"] and row["steps_per_s"] > 0 for row in report["steps"])
    # Without a GPU and without --cpu-flow it refuses in one line.
    if not __import__("torch").cuda.is_available():
        refused = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py")], capture_output=True, text=True)
        assert refused.returncode == 2 and "no CUDA device" in refused.stderr


@pytest.mark.slow  # ~25 s on 2 cores: every section, training and evaluation included, in a child process
def test_run_smoke_runs_every_section_and_writes_only_where_told(tmp_path):
    out = tmp_path / "rows.json"
    results = BENCHMARKS / "results.json"
    before = results.read_bytes() if results.exists() else None
    proc = run_script("run.py", "--smoke", "--output", str(out), "--workdir", str(tmp_path / "work"))
    report = json.loads(out.read_text())
    assert [row["name"] for row in report["rows"]] == [
        "decode", "cache", "stage2", "stage2-frozen-encoder", "stage3", "evaluate", "inference", "stage2-full",
        "stage2-frozen-encoder-full", "stage3-full", "evaluate-full", "inference-full"]
    for row in report["rows"]:
        assert ROW_KEYS <= set(row) and row["baseline_s"] > 0 and row["ours_s"] > 0
    assert "| decode |" in proc.stdout
    assert (results.read_bytes() if results.exists() else None) == before  # the committed figures stay


def test_bench_training_counts_the_decodes_of_every_path():
    proc = run_script("bench_training.py", "--dialogues", "2", "--repeats", "1")
    # The naive rows decode each utterance's clip every epoch and the cached rows none; main checks both.
    assert "decode calls in an epoch of a cached path: 0 (must be 0)" in proc.stdout
    naive_rows = [line for line in proc.stdout.splitlines() if line.startswith("|") and ": naive," in line]
    assert len(naive_rows) == 3
    assert all(int(line.split("|")[8]) > 0 for line in naive_rows)


def test_bench_decode_runs_on_small_clips():
    proc = run_script("bench_decode.py", "--clips", "1", "--width", "64", "--height", "48", "--seconds", "0.5",
                      "--passes", "1")
    assert "native-size frames of b' equal the naive picks: True" in proc.stdout
    assert proc.stdout.count("| a. naive") == 1 and "c. np.load" in proc.stdout


@pytest.mark.slow  # ~30 s on 2 cores: one `telme train` of every stage
def test_the_gpu_check_recipe_run_trains_every_stage_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    run_script("gpu_check.py", "--cpu-flow", "--recipe-only", "--output", str(out))
    report = json.loads(out.read_text())
    recipe = report["recipe"]
    assert recipe["returncode"] == 0 and recipe["written"], recipe["stderr_tail"]
    assert recipe["stages"] == ["audio", "fusion", "teacher", "video"]
    # The tiny reference recipe reports the precision each stage's forward really saw (fp16 works on a CPU too).
    seen = report["reference_recipe"]["precision"]
    assert {stage: (s["configured"], s["autocast_dtype"]) for stage, s in seen.items()} == {
        "teacher": ("no", "float32"), "audio": ("fp16", "float16"), "video": ("fp16", "float16"),
        "fusion": ("fp16", "float16")}
    assert seen["teacher"]["grad_scaler"] is None and seen["fusion"]["grad_scaler"]["final_scale"] > 0
