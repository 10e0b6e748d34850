"""Tests of the ERC metrics, the Trainer adapter, the table / plot / JSON helpers and the `evaluate` module."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from telme_hf.data.registry import CORPORA, PAPER_CORPUS_LABELS
from telme_hf.inference.metrics import compute_erc_metrics, load_erc_metric, make_compute_metrics
from telme_hf.inference.reports import (
    format_per_class_table,
    normalize_confusion_matrix,
    plot_confusion_matrix,
    write_metrics_json,
)


MELD = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
ERC_METRIC_DIR = Path(__file__).resolve().parents[2] / "telme_hf" / "inference" / "erc_metric"

# A small example where every number below was computed by hand.
#   class 0: 4 true, 2 predicted, 2 correct -> P = 1,    R = 1/2 -> F1 = 2/3
#   class 1: 1 true, 4 predicted, 1 correct -> P = 1/4,  R = 1   -> F1 = 2 * (1/4) / (5/4) = 2/5
#   class 2: 1 true, 0 predicted, 0 correct -> P = 0,    R = 0   -> F1 = 0
# Weighted by TRUE counts (4, 1, 1):      (4 * 2/3 + 1 * 2/5 + 1 * 0) / 6 = 23/45 = 0.5111...
# Weighted by PREDICTED counts (2, 4, 0): (2 * 2/3 + 4 * 2/5 + 0 * 0) / 6 = 22/45 = 0.4888...  (arguments swapped)
Y_TRUE = [0, 0, 0, 0, 1, 2]
Y_PRED = [0, 0, 1, 1, 1, 1]
LABELS3 = ["ang", "hap", "sad"]


def test_weighted_f1_uses_true_labels_as_first_argument():
    # The example is asymmetric: swapping the arguments of sklearn's f1_score gives another value.
    assert f1_score(Y_PRED, Y_TRUE, average="weighted") == pytest.approx(22 / 45)
    metrics = compute_erc_metrics(Y_TRUE, Y_PRED, LABELS3)
    assert metrics["weighted_f1"] == pytest.approx(23 / 45)
    # Keyword arguments are bound by name, so this call must agree.
    assert compute_erc_metrics(y_pred=Y_PRED, y_true=Y_TRUE, labels=LABELS3)["weighted_f1"] == pytest.approx(23 / 45)


def test_per_class_metrics_by_hand():
    metrics = compute_erc_metrics(np.array(Y_TRUE), np.array(Y_PRED), LABELS3)
    assert metrics["precision"] == pytest.approx({"ang": 1.0, "hap": 0.25, "sad": 0.0})
    assert metrics["recall"] == pytest.approx({"ang": 0.5, "hap": 1.0, "sad": 0.0})
    assert metrics["f1"] == pytest.approx({"ang": 2 / 3, "hap": 0.4, "sad": 0.0})
    assert metrics["support"] == {"ang": 4, "hap": 1, "sad": 1}
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
    assert metrics["num_samples"] == 6
    assert metrics["labels"] == LABELS3


def test_confusion_matrix_rows_are_true_labels():
    metrics = compute_erc_metrics(Y_TRUE, Y_PRED, LABELS3)
    # Row i = true class i; the matrix is not symmetric, so a transposed matrix fails.
    assert metrics["confusion_matrix"] == [[2, 2, 0], [0, 1, 0], [0, 1, 0]]


def test_absent_classes_are_reported():
    metrics = compute_erc_metrics([0, 1, 1], [1, 1, 1], MELD)
    assert list(metrics["f1"]) == MELD
    assert metrics["support"] == {label: {"anger": 1, "disgust": 2}.get(label, 0) for label in MELD}
    assert metrics["f1"]["neutral"] == 0.0
    assert np.array(metrics["confusion_matrix"]).shape == (7, 7)
    # Absent classes have zero support, hence zero weight in the weighted F1: (1 * 0 + 2 * 0.8) / 3.
    assert metrics["weighted_f1"] == pytest.approx(1.6 / 3)


def test_metrics_are_plain_python_and_json_serialisable(tmp_path):
    import torch

    metrics = compute_erc_metrics(torch.tensor(Y_TRUE), np.array(Y_PRED, dtype=np.int32), LABELS3)
    assert type(metrics["weighted_f1"]) is float and type(metrics["num_samples"]) is int
    assert all(type(v) is int for row in metrics["confusion_matrix"] for v in row)
    assert json.loads(json.dumps(metrics)) == metrics

    path = write_metrics_json({**metrics, "extra": np.float32(0.5), "array": np.arange(2)}, tmp_path / "a" / "m.json")
    loaded = json.loads(path.read_text())
    assert loaded["weighted_f1"] == metrics["weighted_f1"] and loaded["extra"] == 0.5 and loaded["array"] == [0, 1]


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [([0, 1], [0], "differ in length"), ([0, 3], [0, 1], "outside"), ([0, -100], [0, 1], "outside"), ([], [], "zero")],
)
def test_invalid_inputs_raise(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        compute_erc_metrics(y_true, y_pred, LABELS3)


def test_make_compute_metrics_with_tuple_predictions():
    from transformers import EvalPrediction

    # One-hot-ish logits that argmax to Y_PRED, followed by a second model output (features) to be ignored.
    logits = np.eye(3)[Y_PRED] * 5.0 - 1.0
    features = np.zeros((6, 4))
    compute_metrics = make_compute_metrics(LABELS3)
    result = compute_metrics(EvalPrediction(predictions=(logits, features), label_ids=np.array(Y_TRUE)))
    assert set(result) == {"weighted_f1", "accuracy", "macro_f1", "f1_ang", "f1_hap", "f1_sad"}
    assert all(type(value) is float for value in result.values())
    assert result["weighted_f1"] == pytest.approx(23 / 45)
    assert result["f1_hap"] == pytest.approx(0.4)

    # Plain logits array, and already-argmaxed predictions, give the same numbers.
    assert compute_metrics(EvalPrediction(predictions=logits, label_ids=np.array(Y_TRUE))) == result
    assert compute_metrics(EvalPrediction(predictions=np.array(Y_PRED), label_ids=np.array(Y_TRUE))) == result


def test_make_compute_metrics_ignores_minus_100():
    from transformers import EvalPrediction

    logits = np.eye(3)[Y_PRED + [2]]
    result = make_compute_metrics(LABELS3)(EvalPrediction(predictions=logits, label_ids=np.array(Y_TRUE + [-100])))
    assert result["weighted_f1"] == pytest.approx(23 / 45)


def _meld_metrics(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 7, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 7, size=200))
    return compute_erc_metrics(y_true, y_pred, MELD)


PAPER_ORDER = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]


def test_table_uses_paper_column_order_and_two_decimals():
    teacher, fusion = _meld_metrics(0), _meld_metrics(1)
    table = format_per_class_table({"teacher": teacher, "fusion": fusion}, MELD, reference=CORPORA["meld"].paper)
    lines = table.splitlines()
    assert lines[0].split() == ["model", *PAPER_ORDER, "weighted", "F1"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split()[0] == "teacher" and lines[3].split()[0] == "fusion"
    teacher_cells = lines[2].split()[1:]
    expected = [f"{100 * teacher['f1'][label]:.2f}" for label in PAPER_ORDER]
    assert teacher_cells == expected + [f"{100 * teacher['weighted_f1']:.2f}"]
    assert lines[4].startswith("TelME (paper)")
    assert lines[4].split()[2:] == ["80.22", "60.33", "26.97", "43.45", "65.67", "26.42", "56.70", "67.37"]


def test_table_accepts_single_and_trainer_flat_dicts():
    from transformers import EvalPrediction

    single = format_per_class_table(compute_erc_metrics(Y_TRUE, Y_PRED, LABELS3), LABELS3)
    assert single.splitlines()[0].split() == ["model", "ang", "hap", "sad", "weighted", "F1"]
    assert single.splitlines()[2].split() == ["model", "66.67", "40.00", "0.00", "51.11"]

    flat = make_compute_metrics(LABELS3)(EvalPrediction(predictions=np.array(Y_PRED), label_ids=np.array(Y_TRUE)))
    logged = {f"eval_{key}": value for key, value in flat.items()}  # as returned by Trainer.evaluate()
    table = format_per_class_table(
        {"audio": logged}, LABELS3, order=["sad", "ang"], reference=CORPORA["iemocap"].paper
    )
    lines = table.splitlines()
    assert lines[0].split() == ["model", "sad", "ang", "weighted", "F1"]
    assert lines[2].split() == ["audio", "0.00", "66.67", "51.11"]
    assert lines[3].split()[-3:] == ["-", "-", "70.48"]


def test_paper_results_constant():
    meld = CORPORA["meld"].paper
    assert meld["weighted_f1"] == 67.37 and CORPORA["iemocap"].paper["weighted_f1"] == 70.48
    assert set(meld) == set(MELD) | {"weighted_f1"}
    assert PAPER_CORPUS_LABELS["meld"] == MELD


def test_normalize_confusion_matrix():
    counts = compute_erc_metrics(Y_TRUE, Y_PRED, LABELS3)["confusion_matrix"]  # [[2, 2, 0], [0, 1, 0], [0, 1, 0]]
    # "true": rows sum to 1, the diagonal is the recall of each class.
    np.testing.assert_allclose(normalize_confusion_matrix(counts, "true"), [[0.5, 0.5, 0], [0, 1, 0], [0, 1, 0]])
    # "pred": columns sum to 1 (the empty third column stays 0), the diagonal is the precision.
    np.testing.assert_allclose(normalize_confusion_matrix(counts, "pred"), [[1, 0.5, 0], [0, 0.25, 0], [0, 0.25, 0]])
    np.testing.assert_allclose(normalize_confusion_matrix(counts, "all"), np.array(counts) / 6)
    np.testing.assert_allclose(normalize_confusion_matrix(counts, None), counts)
    with pytest.raises(ValueError, match="normalize"):
        normalize_confusion_matrix(counts, "rows")


@pytest.mark.parametrize("normalize", ["true", None])
def test_plot_confusion_matrix_writes_png(tmp_path, normalize):
    metrics = compute_erc_metrics(Y_TRUE, Y_PRED, LABELS3)
    path = plot_confusion_matrix(
        metrics["confusion_matrix"], LABELS3, tmp_path / "plots" / "cm.png", normalize=normalize, title="test"
    )
    data = Path(path).read_bytes()
    assert len(data) > 1000
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluate_offline(monkeypatch):
    """`evaluate` with every download refused (OfflineModeIsEnabled), whatever the environment says."""
    import evaluate

    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    return evaluate


def test_evaluate_module_loads_offline_and_matches(evaluate_offline):
    evaluate = evaluate_offline
    reference = compute_erc_metrics(Y_TRUE, Y_PRED, LABELS3)

    metric = evaluate.load(str(ERC_METRIC_DIR))
    result = metric.compute(predictions=Y_PRED, references=Y_TRUE, labels=LABELS3)
    assert result["weighted_f1"] == pytest.approx(23 / 45)
    assert result == reference

    # Named configuration: the label names come with it; batches can be added incrementally.
    meld_metric = load_erc_metric("meld")
    for true, pred in zip(Y_TRUE, Y_PRED):
        meld_metric.add(prediction=pred, reference=true)
    meld_result = meld_metric.compute()
    assert meld_result["weighted_f1"] == pytest.approx(23 / 45)
    assert list(meld_result["f1"]) == MELD


def test_evaluate_module_default_config_needs_labels(evaluate_offline):
    metric = load_erc_metric()
    with pytest.raises(ValueError, match="labels"):
        metric.compute(predictions=[0, 1], references=[0, 1])


def test_write_predictions_csv_rows_and_probabilities(tmp_path):
    import csv

    from telme_hf.inference.reports import write_predictions_csv

    logits = [[2.0, 0.0], [0.0, 0.0]]
    path = write_predictions_csv(tmp_path / "p.csv", ["a", "b"], logits, ["neg", "pos"], gold=[1, 0])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["utterance_key", "label", "prediction", "p_neg", "p_pos"]
    # softmax([2, 0]) = [e² / (e² + 1), 1 / (e² + 1)] = [0.8808, 0.1192]
    assert rows[1] == ["a", "pos", "neg", "0.8808", "0.1192"]
    assert rows[2] == ["b", "neg", "neg", "0.5000", "0.5000"]
    without_gold = list(csv.reader(open(write_predictions_csv(tmp_path / "q.csv", ["a"], logits[:1], ["neg", "pos"]))))
    assert without_gold[0] == ["utterance_key", "prediction", "p_neg", "p_pos"]
