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
    for row in report["steps"]:
        assert row["flop_per_step"] > 0 and row["tflops"] == pytest.approx(
            row["flop_per_step"] * row["steps_per_s"] / 1e12, abs=0.0006)
        assert row["meld_epoch_min"] == pytest.approx(2498 / row["steps_per_s"] / 60, abs=0.06)  # 9,989 / 4 steps
        phases = row["phases_ms"]
        assert set(phases) == {"forward_issue", "forward", "backward", "optimizer"}
        assert all(value > 0 for value in phases.values()) and phases["forward_issue"] <= phases["forward"]
    # Counted FLOPs grow with the work: the teacher's step (a transformer over 16 tokens) outweighs the fusion's.
    flops = {row["stage"]: row["flop_per_step"] for row in report["steps"]}
    assert flops["teacher"] > flops["fusion"]
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
        "stage2-frozen-encoder-full", "stage3-full", "evaluate-full", "inference-full", "startup-help",
        "startup-version"]
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


@pytest.mark.slow  # ~35 s on 2 loaded cores: a child process per path and length, each importing torch
def test_bench_recording_reports_every_length_and_the_summary():
    proc = run_script("bench_recording.py", "--minutes", "0.2", "0.4")
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| 0.")]
    assert [(row[1].strip(), int(row[2])) for row in rows] == [("0.2 min", 3), ("0.4 min", 6)]
    assert all(float(row[3]) > 0 and float(row[5]) > 0 for row in rows)
    assert "(1.00 = linear)" in proc.stdout and "the audio decoded whole" in proc.stdout


# --------------------------------------------------------------------- run.py: like-with-like rows, start-up, merging
def test_the_inference_row_compares_the_pipeline_with_the_same_work_by_hand(run_module, tmp_path):
    (row,) = run_module.measure_inference("tiny", tmp_path, turns=2, repeats=1, suffix="", smoke=True)
    assert ROW_KEYS <= set(row) and row["name"] == "inference"
    # The baseline decodes the same clips and runs the processor too: its parts are all measured, none is zero.
    assert set(row["by_hand_split_s"]) == {"decode", "processor", "forward"}
    assert row["by_hand_split_s"]["decode"] > 0 and row["by_hand_split_s"]["forward"] > 0
    assert sum(row["by_hand_split_s"].values()) <= row["baseline_s"] * 1.05
    assert "by hand" in row["notes"]


def test_startup_rows_time_the_cli_against_a_bare_python(run_module):
    rows = run_module.measure_startup(repeats=1)
    assert [row["name"] for row in rows] == ["startup-help", "startup-version"]
    for row in rows:
        assert ROW_KEYS <= set(row) and row["baseline_s"] > 0 and row["ours_s"] > 0 and row["import_s"] > 0
    assert rows[0]["baseline_s"] == rows[1]["baseline_s"]  # one `python -c pass` figure for both


def test_run_keeps_the_rows_other_scripts_wrote(run_module):
    earlier = {"rows": [{"name": "decode", "ours_s": 9}, {"name": "meld-scale-1000", "source": "bench_meld_scale.py"},
                        {"name": "inference-cpu-int8-full", "source": "bench_inference.py"}],
               "runs": {"bench_meld_scale.py": {"total_s": 1}, "python benchmarks/run.py --only startup": {}}}
    merged = run_module.keep_other_scripts({"rows": [{"name": "decode", "ours_s": 1}]}, earlier)
    assert [row["name"] for row in merged["rows"]] == ["decode", "meld-scale-1000", "inference-cpu-int8-full"]
    assert merged["rows"][0]["ours_s"] == 1 and merged["runs"] == {"bench_meld_scale.py": {"total_s": 1}}
    # The demo row stays through a run that left its section out (--quick), not through one that ran it.
    earlier["rows"].append({"name": "demo", "section": "demo", "measured": {"command": "run.py --only demo"}})
    quick = run_module.keep_other_scripts({"rows": [{"name": "decode", "ours_s": 1}]}, earlier, ["demo"])
    assert [row["name"] for row in quick["rows"]] == ["decode", "meld-scale-1000", "inference-cpu-int8-full", "demo"]
    full = run_module.keep_other_scripts({"rows": [{"name": "decode", "ours_s": 1}]}, earlier, [])
    assert "demo" not in [row["name"] for row in full["rows"]]


def test_a_partial_run_replaces_only_its_own_rows_and_stamps_them(run_module):
    earlier = {"machine": {"cpu": "Xeon"}, "command": "python benchmarks/run.py --quick",
               "rows": [{"name": "decode", "ours_s": 1}, {"name": "inference", "ours_s": 2},
                        {"name": "meld-scale-1000", "source": "bench_meld_scale.py"}]}
    partial = {"machine": {"cpu": "EPYC", "cores": 2, "load_average_1min": 3.0}, "total_s": 5,
               "command": "python benchmarks/run.py --quick --only inference startup",
               "rows": [{"name": "inference", "ours_s": 3}, {"name": "startup-help", "ours_s": 4}]}
    merged = run_module.update_rows(earlier, partial)
    assert [row["name"] for row in merged["rows"]] == ["decode", "inference", "meld-scale-1000", "startup-help"]
    assert merged["rows"][0] == {"name": "decode", "ours_s": 1} and merged["machine"] == {"cpu": "Xeon"}
    assert merged["rows"][1]["ours_s"] == 3 and merged["rows"][1]["measured"]["cpu"] == "EPYC"
    assert list(merged["runs"]) == ["python benchmarks/run.py --quick --only inference startup"]


# ------------------------------------------------------------------------------------------- bench_meld_scale.py
def test_bench_meld_scale_decode_and_cache_flow(tmp_path):
    """One small size of the MELD-shaped corpus (decode passes and cache only) and one 720p clip at full size."""
    out = tmp_path / "rows.json"
    proc = run_script("bench_meld_scale.py", "--quick", "--sizes", "100", "--no-stages", "--sample-720p", "1",
                      "--workdir", str(tmp_path / "work"), "--output", str(out))
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {"meld-scale-100", "meld-scale-cache-720p"}
    scale = rows["meld-scale-100"]
    assert ROW_KEYS <= set(scale) and scale["utterances"] == 100 and scale["kept"] == 100
    assert scale["ratio"] == pytest.approx(scale["baseline_s"] / scale["ours_s"], rel=1e-2)
    assert scale["cache_bytes_per_utterance"] > 0 and scale["stages"] is None
    # The generated corpus follows MELD.Raw's layout and the CSVs' split proportions (73 / 8 / 19 of 100).
    corpus = tmp_path / "work" / "corpus-100"
    assert (corpus / "train_splits" / "dia0_utt0.mp4").is_file() and (corpus / "dev_sent_emo.csv").is_file()
    # A cached 720p utterance: 8 frames of 224x224 RGB (+ the .npy header) and its whole 16 kHz waveform.
    cache = rows["meld-scale-cache-720p"]
    assert cache["bytes_per_utterance"]["clean"] > 8 * 224 * 224 * 3
    assert cache["extrapolated_bytes"]["reference"] > cache["extrapolated_bytes"]["clean"]  # 22050 Hz audio
    assert "| 100 | 100 |" in proc.stdout and "reference processor" in proc.stdout
    assert report["runs"]["bench_meld_scale.py"]["sizes"] == [100]


@pytest.mark.benchmark  # 1-7 minutes on 2 shared cores: the audio student's epoch over MELD-length clips dominates
def test_bench_meld_scale_quick_trains_one_epoch_of_every_stage(tmp_path):
    out = tmp_path / "rows.json"
    run_script("bench_meld_scale.py", "--quick", "--workdir", str(tmp_path / "work"), "--output", str(out))
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"meld-scale-200", "meld-scale-400", "meld-scale-cache-720p"}
    stages = rows["meld-scale-200"]["stages"]
    assert stages is not None and list(stages) == ["teacher", "audio", "video", "fusion"]
    assert all(stage["epoch_s"] > 0 and stage["wall_s"] >= stage["train_runtime_s"] for stage in stages.values())
    # The larger size trains too, unless its predicted time or memory is over the limits: then the row says why.
    larger = rows["meld-scale-400"]
    assert (larger["stages"] is not None) != bool(larger["stages_skipped"] and "predicted" in larger["stages_skipped"])


def test_bench_meld_scale_writes_its_rows_beside_the_others(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_meld_scale
    finally:
        sys.path.remove(str(BENCHMARKS))
    output = tmp_path / "results.json"
    output.write_text(json.dumps({"machine": {"cores": 2}, "rows": [{"name": "decode"}, {"name": "meld-scale-1000",
                                                                                         "old": True}]}))
    bench_meld_scale.write_results([{"name": "meld-scale-1000"}], output, {"total_s": 3})
    report = json.loads(output.read_text())
    assert report["machine"] == {"cores": 2} and report["runs"]["bench_meld_scale.py"] == {"total_s": 3}
    assert report["rows"] == [{"name": "decode"}, {"name": "meld-scale-1000"}]
    # Subsets take each split's first rows in the CSVs' proportions; the whole corpus is every row.
    tables = bench_meld_scale.read_csvs(bench_meld_scale.CSV_DIR)
    assert sum(bench_meld_scale.split_counts(tables, 1000).values()) == 1000
    assert bench_meld_scale.split_counts(tables, 10**6) == {"train": 9989, "dev": 1109, "test": 2610}


# --------------------------------------------------------------------------------------------- bench_inference.py
def test_bench_inference_quick_breaks_a_prediction_down(tmp_path):
    out = tmp_path / "rows.json"
    proc = run_script("bench_inference.py", "--quick", "--options", "threads", "int8", "--output", str(out))
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"inference-cpu-fp32", "inference-cpu-threads-1", "inference-cpu-int8"}
    for row in rows.values():
        assert ROW_KEYS <= set(row) and row["ours_s"] > 0
        assert set(row["parts_s_per_utterance"]) == {"decode", "processor", "text", "audio", "video", "rest"}
    assert rows["inference-cpu-threads-1"]["threads"] == 1
    assert rows["inference-cpu-threads-1"]["same_weights"] and rows["inference-cpu-int8"]["same_weights"]
    assert rows["inference-cpu-threads-1"]["max_probability_difference"] < 1e-4  # fp32 either way
    assert "1.2 s target" in proc.stdout


@pytest.mark.benchmark  # 45 s to 3 minutes on 2 shared cores, most of it torch.compile's first call
def test_bench_inference_quick_with_every_option(tmp_path):
    out = tmp_path / "rows.json"
    run_script("bench_inference.py", "--quick", "--output", str(out))
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"inference-cpu-fp32", "inference-cpu-threads-1", "inference-cpu-int8", "inference-cpu-compile"}
    compiled = rows["inference-cpu-compile"]
    # Either it ran (and agrees with fp32 on the same weights) or the row says why not.
    assert compiled["ours_s"] is None or compiled["label_agreement"] == 1.0
