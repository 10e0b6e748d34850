# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics for emotion recognition in conversation (ERC).

One implementation, :func:`compute_erc_metrics`, serves every consumer:

* ``transformers.Trainer`` through :func:`make_compute_metrics` (a flat dict of floats, which is what the Trainer
  logs and what ``metric_for_best_model="weighted_f1"`` selects on);
* the ``evaluate`` module in ``telme_hf/inference/erc_metric`` (loadable offline with :func:`load_erc_metric` or
  ``evaluate.load(<path to telme_hf/inference/erc_metric>)``);
* the CLI and users, with the tables, plots and writers of `telme_hf.inference.reports`.

The headline number of TelME is the **weighted F1** of the test split (each class's F1 weighted by its number of
true samples), computed as ``sklearn.metrics.f1_score(y_true, y_pred, average="weighted")``. The argument order
matters: swapping ``y_true`` and ``y_pred`` weights the classes by the *predicted* counts and gives another number.
Metric values are fractions in [0, 1]; tables print them as percentages with two decimals, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score, precision_recall_fscore_support


if TYPE_CHECKING:
    from transformers import EvalPrediction


__all__ = ["compute_erc_metrics", "load_erc_metric", "make_compute_metrics"]

_ERC_METRIC_DIR = Path(__file__).resolve().parent / "erc_metric"


def _as_label_array(values: Any, name: str) -> np.ndarray:
    """Turn a list / NumPy array / torch tensor of class indices into a 1-D int64 array."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D sequence of class indices, got shape {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise ValueError(f"`{name}` must hold integer class indices, got dtype {array.dtype}.")
    return array.astype(np.int64)


def compute_erc_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Compute the ERC metrics of a set of predictions.

    Class ``i`` is ``labels[i]``. All ``len(labels)`` classes are always reported, even those absent from both
    ``y_true`` and ``y_pred`` (their precision / recall / F1 are 0 and their support is 0).

    Returned keys (all values plain Python ``float`` / ``int`` / ``list`` / ``dict``, so JSON-serialisable):

    - ``"weighted_f1"``: ``f1_score(y_true, y_pred, average="weighted")``, i.e. ``sum_c n_c * F1_c / N`` with
      ``n_c`` the number of *true* samples of class ``c``; the paper's headline metric;
    - ``"accuracy"``: fraction of correct predictions;
    - ``"macro_f1"``: unweighted mean of the per-class F1 over **all** ``len(labels)`` classes;
    - ``"precision"``, ``"recall"``, ``"f1"``: dicts label name -> value;
    - ``"support"``: dict label name -> number of true samples;
    - ``"confusion_matrix"``: ``C x C`` list of lists of counts, **rows = true class, columns = predicted class**,
      in label index order;
    - ``"labels"``: the label names, in index order;
    - ``"num_samples"``: number of evaluated samples.

    Args:
        y_true (`Sequence[int]`): gold class indices (list, NumPy array or torch tensor).
        y_pred (`Sequence[int]`): predicted class indices, same length.
        labels (`Sequence[str]`): class names, index ``i`` naming class ``i``.

    Returns:
        `dict[str, Any]`: the metrics, as fractions in [0, 1].

    Example:

    ```python
    >>> from telme_hf.inference.metrics import compute_erc_metrics
    >>> m = compute_erc_metrics([0, 0, 1, 2], [0, 1, 1, 2], labels=["anger", "joy", "neutral"])
    >>> round(m["weighted_f1"], 4), m["accuracy"], m["confusion_matrix"]
    (0.75, 0.75, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])

    ```
    """
    labels = [str(label) for label in labels]
    num_classes = len(labels)
    if num_classes == 0:
        raise ValueError("`labels` must name at least one class.")
    y_true_arr = _as_label_array(y_true, "y_true")
    y_pred_arr = _as_label_array(y_pred, "y_pred")
    if y_true_arr.shape != y_pred_arr.shape:
        raise ValueError(f"`y_true` and `y_pred` differ in length: {len(y_true_arr)} vs {len(y_pred_arr)}.")
    if y_true_arr.size == 0:
        raise ValueError("Cannot compute metrics on zero samples.")
    for name, array in (("y_true", y_true_arr), ("y_pred", y_pred_arr)):
        if array.min() < 0 or array.max() >= num_classes:
            bad = array[(array < 0) | (array >= num_classes)][0]
            raise ValueError(
                f"`{name}` contains class index {bad}, outside [0, {num_classes - 1}] for labels {labels}. "
                "Filter out ignored positions (e.g. label -100) before computing metrics."
            )

    class_ids = list(range(num_classes))
    # Passing `labels=class_ids` keeps every class in the per-class arrays and the confusion matrix, even when a
    # tiny evaluation set misses some classes; `zero_division=0` turns the resulting 0/0 into 0 without warnings.
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true_arr, y_pred_arr, labels=class_ids, average=None, zero_division=0
    )
    weighted_f1 = f1_score(y_true_arr, y_pred_arr, labels=class_ids, average="weighted", zero_division=0)
    confusion = sk_confusion_matrix(y_true_arr, y_pred_arr, labels=class_ids)

    return {
        "weighted_f1": float(weighted_f1),
        "accuracy": float(np.mean(y_true_arr == y_pred_arr)),
        "macro_f1": float(np.mean(f1)),
        "precision": {label: float(value) for label, value in zip(labels, precision)},
        "recall": {label: float(value) for label, value in zip(labels, recall)},
        "f1": {label: float(value) for label, value in zip(labels, f1)},
        "support": {label: int(value) for label, value in zip(labels, support)},
        "confusion_matrix": confusion.astype(int).tolist(),
        "labels": labels,
        "num_samples": int(y_true_arr.size),
    }


def make_compute_metrics(labels: Sequence[str]) -> Callable[[EvalPrediction], dict[str, float]]:
    """Build a ``compute_metrics`` function for ``transformers.Trainer``.

    The returned function takes an ``EvalPrediction`` and returns a flat dict of floats (the Trainer only logs
    scalars and prefixes each key with ``eval_`` / ``test_``): ``weighted_f1``, ``accuracy``, ``macro_f1`` and
    ``f1_<label>`` for every class. Use ``metric_for_best_model="weighted_f1"`` to select on the paper's metric.

    ``EvalPrediction.predictions`` may be the logits array, a tuple whose first element is the logits (models that
    return more outputs, e.g. features), or already-argmaxed 1-D class indices (when ``preprocess_logits_for_metrics``
    reduced them to save memory). Positions whose label is ``-100`` are ignored.

    Args:
        labels (`Sequence[str]`): class names, index ``i`` naming class ``i`` (e.g. ``config.id2label`` values).

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`

    Example:

    ```python
    >>> import numpy as np
    >>> from transformers import EvalPrediction
    >>> from telme_hf.inference.metrics import make_compute_metrics
    >>> compute_metrics = make_compute_metrics(["neg", "pos"])
    >>> logits = np.array([[2.0, 0.1], [0.3, 1.5], [0.9, 0.2]])
    >>> compute_metrics(EvalPrediction(predictions=(logits,), label_ids=np.array([0, 1, 1])))["accuracy"]
    0.6666666666666666

    ```
    """
    labels = [str(label) for label in labels]

    def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
        if hasattr(eval_pred, "predictions"):
            predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        else:  # a plain (predictions, label_ids) pair
            predictions, label_ids = eval_pred
        if isinstance(predictions, (tuple, list)):
            predictions = predictions[0]
        if isinstance(label_ids, (tuple, list)):
            label_ids = label_ids[0]
        predictions = np.asarray(predictions)
        label_ids = np.asarray(label_ids).reshape(-1)
        y_pred = predictions.argmax(axis=-1) if predictions.ndim > 1 else predictions
        y_pred = y_pred.reshape(-1)
        keep = label_ids != -100
        metrics = compute_erc_metrics(label_ids[keep], y_pred[keep], labels)
        flat = {key: metrics[key] for key in ("weighted_f1", "accuracy", "macro_f1")}
        flat.update({f"f1_{label}": value for label, value in metrics["f1"].items()})
        return flat

    return compute_metrics


def load_erc_metric(config_name: str | None = None, **kwargs: Any):
    """Load the ERC metric shipped with this package through ``evaluate`` (works offline).

    Equivalent to ``evaluate.load("<site-packages>/telme_hf/inference/erc_metric", config_name)``. With ``config_name``
    ``"meld"`` or ``"iemocap"`` the label names are known; otherwise pass ``labels=[...]`` to ``compute``.

    Args:
        config_name (`str`, *optional*): ``"meld"``, ``"iemocap"`` or ``None`` (``"default"``).
        kwargs: forwarded to ``evaluate.load``.

    Returns:
        `evaluate.EvaluationModule`

    Example:

    ```python
    >>> from telme_hf.inference.metrics import load_erc_metric
    >>> metric = load_erc_metric("meld")
    >>> metric.compute(predictions=[4, 4, 0], references=[4, 3, 0])["weighted_f1"]  # doctest: +ELLIPSIS
    0.5555...

    ```
    """
    import evaluate

    return evaluate.load(str(_ERC_METRIC_DIR), config_name, **kwargs)
