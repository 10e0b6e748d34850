"""The distillation run end to end: every artefact, a later stage alone (tiny models, CPU)."""

from __future__ import annotations

import json

import pytest

from telme_hf import TelMEForEmotionRecognition
from telme_hf.training.arguments import parse_recipe_args
from telme_hf.training.run import run_distillation


@pytest.mark.slow
def test_distillation_run_writes_every_artefact(tmp_path, tiny_corpus):
    results = run_distillation(*parse_recipe_args([
        "--config", "tiny", f"output_dir={tmp_path / 'run'}", f"data_root={tiny_corpus}", "num_train_epochs=1",
        "teacher_epochs=1", "fusion_epochs=1",
    ]))
    out = tmp_path / "run"
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["stages"]) == {"teacher", "audio", "video", "fusion"}
    for stage in saved["stages"].values():
        assert {"selected_epoch", "dev", "test"} <= set(stage)
        assert 0 <= stage["test"]["weighted_f1"] <= 1 and "f1" in stage["test"]
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The last stage's test predictions, with the gold label as `telme evaluate` writes them.
    import csv

    with open(out / "predictions.csv", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == saved["stages"]["fusion"]["test"]["num_samples"] and {"label", "prediction"} <= set(rows[0])
    assert not list(out.glob("*/checkpoint-*"))  # each stage's epoch checkpoints go once its best epoch is loaded
    card = (out / "final" / "README.md").read_text()
    assert "model-index" in card and "Weighted F1" in card
    # What the card reports travels with the weights, without the run's local paths.
    travelling = json.loads((out / "final" / "results.json").read_text())
    assert travelling["stages"] == saved["stages"] and travelling["training"]["stages"]["fusion"]["epochs"] == 1
    states = sorted(path.name for path in (out / "final" / "trainer_state").iterdir())
    assert states == ["audio.json", "fusion.json", "teacher.json", "video.json"]
    assert json.loads((out / "final" / "trainer_state" / "fusion.json").read_text())["log_history"]
    for name in ("README.md", "results.json", "trainer_state/fusion.json"):
        assert str(tmp_path) not in (out / "final" / name).read_text(), name
    from transformers import AutoModel

    assert isinstance(AutoModel.from_pretrained(out / "final"), TelMEForEmotionRecognition)
    assert results["fusion"]["test"]["num_samples"] > 0


def test_single_stage_run_keeps_earlier_stage_results(tmp_path):
    from telme_hf.training.run import _earlier_results, _merge_stages

    (tmp_path / "results.json").write_text(json.dumps({"stages": {"teacher": {"test": 1}, "fusion": {"test": 2}}}))
    earlier = _earlier_results(tmp_path / "results.json")["stages"]
    merged = _merge_stages(earlier, {"fusion": {"test": 3}, "audio": {"test": 4}})
    assert list(merged) == ["teacher", "audio", "fusion"]
    assert merged["fusion"] == {"test": 3} and merged["teacher"] == {"test": 1}


@pytest.mark.slow  # ~15 s: the teacher and audio stages of a tiny run
def test_a_run_with_a_frozen_feature_encoder_keeps_its_outputs_and_never_runs_it_in_a_step(tmp_path, tiny_corpus,
                                                                                         monkeypatch):
    from telme_hf.training import run as run_module

    kept = []
    original = run_module.add_feature_encoder_outputs
    monkeypatch.setattr(run_module, "add_feature_encoder_outputs",
                        lambda *args, **kwargs: kept.append(args[0].num_rows) or original(*args, **kwargs))
    out = tmp_path / "run"
    run_distillation(*parse_recipe_args([
        "--config", "tiny", f"output_dir={out}", f"data_root={tiny_corpus}", "num_train_epochs=1",
        "teacher_epochs=1", "--stages", "teacher", "audio", "freeze_feature_encoder=true"]), announce_next_step=False)
    folders = list((out / "cache" / "frozen").glob("feature-encoder-*"))
    assert len(kept) == 1 and len(folders) == 1
    assert len(list(folders[0].glob("*.npy"))) == kept[0] + 1  # one file a training row, and their lengths
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["stages"]) == {"teacher", "audio"} and saved["stages"]["audio"]["test"]["num_samples"] > 0
