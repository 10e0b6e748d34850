"""The model card: metadata the Hub reads back with every result distinct, a readable table, no local paths."""

from __future__ import annotations

import re

import pytest
from huggingface_hub import ModelCard

from telme_hf import TelMEConfig
from telme_hf.hub.model_card import render_model_card, set_card_repo, training_table


def metrics(weighted_f1: float, accuracy: float, labels) -> dict:
    return {"weighted_f1": weighted_f1, "accuracy": accuracy,
            "f1": {label: round(0.1 + 0.1 * i, 4) for i, label in enumerate(labels)}}


@pytest.fixture
def meld_results():
    labels = TelMEConfig.from_preset("meld").label_names
    scores = {"teacher": (0.6612, 0.6701, 0.6001), "audio": (0.3012, 0.4511, 0.2988),
              "video": (0.2811, 0.4402, 0.2760), "fusion": (0.6737, 0.6890, 0.6123)}
    return {stage: {"selected_epoch": 3, "test": metrics(test, acc, labels), "dev": metrics(dev, acc - 0.01, labels)}
            for stage, (test, acc, dev) in scores.items()}


def test_the_card_round_trips_through_huggingface_hub_with_distinct_results(tmp_path, meld_results):
    config = TelMEConfig.from_preset("meld")
    path = tmp_path / "README.md"
    path.write_text(render_model_card(config, None, meld_results, dataset="meld", repo="someone/telme-meld"))
    card = ModelCard.load(path)
    data = card.data
    assert data.license == "gpl-3.0" and data.library_name == "transformers"  # MELD's distribution licence
    assert data.pipeline_tag == "text-classification" and data.datasets == ["declare-lab/MELD"]
    assert data.base_model == ["FacebookAI/roberta-large", "facebook/data2vec-audio-base-960h",
                               "facebook/timesformer-base-finetuned-k400"]
    # The fused model's test and dev scores, one result per (split, metric), none folded into another.
    found = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert found == {("test", "f1"): 67.37, ("test", "accuracy"): 68.9, ("dev", "f1"): 61.23,
                     ("dev", "accuracy"): 67.9}
    assert {r.dataset_type for r in data.eval_results} == {"declare-lab/MELD"}
    assert data.model_name == "telme-meld"
    # Saving what was loaded and loading it again changes nothing.
    card.save(tmp_path / "again.md")
    again = ModelCard.load(tmp_path / "again.md").data
    assert [(r.dataset_split, r.metric_type, r.metric_value, r.task_name) for r in again.eval_results] == \
        [(r.dataset_split, r.metric_type, r.metric_value, r.task_name) for r in data.eval_results]
    # Every part's scores are in the table, by name.
    text = card.text
    for name, stage in (("text teacher", "teacher"), ("audio student", "audio"), ("video student", "video"),
                        ("TelME (fused)", "fusion")):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2] == f"{100 * meld_results[stage]['dev']['weighted_f1']:.2f}"
        assert cells[3] == f"{100 * meld_results[stage]['test']['weighted_f1']:.2f}"
        assert cells[5] == f"{100 * meld_results[stage]['test']['f1']['neutral']:.2f}"  # the paper's first column
    assert "arxiv.org/abs/2401.12987" in text and "@inproceedings{yun-etal-2024-telme" in text
    assert 'model="someone/telme-meld"' in text and "pillow" in text


def test_a_tiny_random_model_names_no_base_model_and_a_teacher_only_run_says_so(tmp_path, meld_results):
    config = TelMEConfig.from_preset("tiny")
    teacher_only = {"teacher": meld_results["teacher"]}
    path = tmp_path / "README.md"
    path.write_text(render_model_card(config, None, teacher_only, dataset="synthetic", repo=str(tmp_path)))
    data = ModelCard.load(path).data
    assert data.base_model is None and data.datasets is None
    assert {r.task_name for r in data.eval_results} == {"Emotion recognition in conversation (text teacher alone)"}
    assert {r.metric_value for r in data.eval_results if r.dataset_split == "test"} == {66.12, 67.01}


def test_training_section_has_no_local_paths(tmp_path, tiny_processor):
    from telme_hf.training.arguments import parse_recipe_args
    from telme_hf.training.plan import plan_run
    from telme_hf.training.run import training_summary

    (tmp_path / "corpus").mkdir()
    plan = plan_run(*parse_recipe_args(
        ["--config", "tiny", f"data_root={tmp_path / 'corpus'}", f"output_dir={tmp_path / 'run'}",
         "fusion_epochs=7", "teacher_learning_rate=2e-5"]))
    summary = training_summary(plan, tiny_processor)
    table = training_table(summary)
    assert str(tmp_path) not in table
    assert re.search(r"^\| TelME \(fused\) \| 7 \| ", table, flags=re.M)
    assert re.search(r"^\| text teacher \| 50 \| 2e-05 \|", table, flags=re.M)


def test_set_card_repo_points_the_usage_at_the_repository(tmp_path, meld_results):
    config = TelMEConfig.from_preset("meld")
    (tmp_path / "README.md").write_text(render_model_card(config, None, meld_results, dataset="meld",
                                                          repo=str(tmp_path)))
    before = ModelCard.load(tmp_path / "README.md")
    assert set_card_repo(tmp_path, "someone/telme-meld")
    after = ModelCard.load(tmp_path / "README.md")
    assert str(tmp_path) not in after.text and after.text.count("someone/telme-meld") == 2
    assert after.data.model_name == "telme-meld"
    assert [r.metric_value for r in after.data.eval_results] == [r.metric_value for r in before.data.eval_results]


@pytest.mark.parametrize("dataset,license,name", [("meld", "gpl-3.0", None), ("iemocap", "other", "iemocap-research-only"),
                                                  ("synthetic", "apache-2.0", None)])
def test_the_licence_and_intended_use_follow_the_corpus(dataset, license, name, tmp_path):
    config = TelMEConfig.from_preset("tiny" if dataset == "synthetic" else dataset)
    card = ModelCard(render_model_card(config, dataset=dataset, repo="someone/telme"))
    assert card.data.license == license and card.data.get("license_name") == name
    assert "## Intended use" in card.text and "## Limitations" in card.text
    assert ("toy model" in card.text) == (dataset == "synthetic")
    assert "pip install telme_hf" not in card.text  # not a published package: no install line that cannot work
    chosen = ModelCard(render_model_card(config, dataset=dataset, repo="someone/telme", license="mit"))
    assert chosen.data.license == "mit" and chosen.data.get("license_name") is None


def test_a_warmup_ratio_reads_as_a_ratio():
    table = training_table({"stages": {}, "options": {"warmup_steps": 0.05, "seed": 42}})
    assert "`0.05 (a ratio of the steps)`" in table and "`42`" in table
