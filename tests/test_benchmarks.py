"""The benchmark entry points run and report what they promise (figures are not checked: they are the machine's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROW_KEYS = {"name", "baseline_s", "ours_s", "ratio", "peak_rss_mb", "notes"}


@pytest.fixture(scope="module")
def run_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run

        yield run
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_decode_rows_have_every_field_and_ratio_is_baseline_over_ours(run_module, tmp_path):
    rows = run_module.measure_decode(tmp_path, clips=1, repeats=1)
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
