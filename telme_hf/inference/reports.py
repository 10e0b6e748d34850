# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""What evaluation shows and writes: per-class F1 tables, the confusion-matrix plot, the mean ± std over seeds, and
the `metrics.json`/`results.json`/`predictions.csv` writers (each file written whole or not at all).

The numbers come from `telme_hf.inference.metrics.compute_erc_metrics`; values are fractions in [0, 1], printed as
percentages with two decimals, as in the paper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_open, atomic_path


__all__ = [
    "align_table",
    "format_per_class_table",
    "format_seed_summary",
    "normalize_confusion_matrix",
    "plot_confusion_matrix",
    "summarize_seed_runs",
    "write_metrics_json",
    "write_predictions_csv",
]


def align_table(rows: Sequence[Sequence[str]], rule: bool = False) -> str:
    """Plain-text columns, left-aligned and two spaces apart; `rule` draws a line under the first row.

    Example:

    ```python
    >>> print(align_table([["model", "F1"], ["fusion", "66.67"]], rule=True))
    model   F1
    -------------
    fusion  66.67

    ```
    """
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if rule:
        lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def _is_metrics_dict(obj: Any) -> bool:
    """Whether ``obj`` is one metrics dict (nested from `compute_erc_metrics` or flat from the Trainer)."""
    return isinstance(obj, Mapping) and any(
        key == "weighted_f1" or key.endswith("_weighted_f1") for key in obj if isinstance(key, str)
    )


def _lookup(metrics: Mapping[str, Any], label: str | None) -> float | None:
    """Fetch a class F1 (``label``) or the weighted F1 (``label=None``) from a nested or flat metrics dict."""
    key = "weighted_f1" if label is None else f"f1_{label}"
    if label is not None and isinstance(metrics.get("f1"), Mapping) and label in metrics["f1"]:
        return metrics["f1"][label]
    if key in metrics:
        return metrics[key]
    for prefix in ("eval_", "test_", "predict_"):  # keys as logged by `Trainer.evaluate` / `Trainer.predict`
        if prefix + key in metrics:
            return metrics[prefix + key]
    return None


def _format_value(value: float | None, scale: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value) * scale:.2f}"


def format_per_class_table(
    results: Mapping[str, Mapping[str, Any]] | Mapping[str, Any],
    labels: Sequence[str],
    order: Sequence[str] | None = None,
    reference: Mapping[str, float] | None = None,
    reference_name: str = "TelME (paper)",
) -> str:
    """Format per-class F1 and weighted F1 as a plain-text table, in percent with two decimals, like the paper.

    Columns are the classes followed by ``weighted F1``. For the MELD label set the columns default to the paper's
    order (``neutral, surprise, fear, sadness, joy, disgust, anger``, from the corpus registry); for any other label
    set, to ``labels``.

    Args:
        results (`Mapping`): either one metrics dict (from :func:`compute_erc_metrics`, or the flat dict of
            :func:`make_compute_metrics`, with or without the Trainer's ``eval_`` / ``test_`` prefix), printed as
            a row named ``model``, or a mapping row name -> metrics dict, e.g.
            ``{"teacher": ..., "audio": ..., "video": ..., "fusion": ...}``.
        labels (`Sequence[str]`): the class names.
        order (`Sequence[str]`, *optional*): column order of the classes (a permutation of a subset of ``labels``).
        reference (`Mapping[str, float]`, *optional*): an extra last row of published numbers, **already in
            percent**, keyed by class name and ``"weighted_f1"``; missing entries print as ``-``. For example
            ``CORPORA["meld"].paper`` (`telme_hf.data.registry`).
        reference_name (`str`, *optional*, defaults to `"TelME (paper)"`): name of the reference row.

    Returns:
        `str`: the table, one line per row, without a trailing newline.

    Example:

    ```python
    >>> from telme_hf.inference.metrics import compute_erc_metrics
    >>> from telme_hf.inference.reports import format_per_class_table
    >>> m = compute_erc_metrics([0, 1, 1], [0, 1, 0], labels=["sad", "happy"])
    >>> print(format_per_class_table({"fusion": m}, labels=["sad", "happy"]))
    model   sad    happy  weighted F1
    ---------------------------------
    fusion  66.67  66.67  66.67

    ```
    """
    from ..data.registry import paper_column_order

    labels = [str(label) for label in labels]
    if order is None:
        order = paper_column_order(labels)
    order = [str(label) for label in order]
    unknown = [label for label in order if label not in labels]
    if unknown:
        raise ValueError(f"`order` names classes {unknown} that are not in `labels` {labels}.")

    rows: dict[str, Mapping[str, Any]] = {"model": results} if _is_metrics_dict(results) else dict(results)
    table: list[list[str]] = [["model", *order, "weighted F1"]]
    for name, metrics in rows.items():
        if not _is_metrics_dict(metrics):
            raise ValueError(f"Row {name!r} is not a metrics dict (it has no `weighted_f1`).")
        cells = [_format_value(_lookup(metrics, label), 100.0) for label in order]
        table.append([str(name), *cells, _format_value(_lookup(metrics, None), 100.0)])
    if reference is not None:
        cells = [_format_value(reference.get(label), 1.0) for label in order]
        table.append([reference_name, *cells, _format_value(reference.get("weighted_f1"), 1.0)])

    return align_table(table, rule=True)


def normalize_confusion_matrix(
    confusion: Sequence[Sequence[float]] | np.ndarray, normalize: str | None = "true"
) -> np.ndarray:
    """Normalise a confusion matrix (rows = true class, columns = predicted class) like ``sklearn``'s ``normalize``.

    Args:
        confusion (`array-like` of shape `(C, C)`): counts.
        normalize (`str`, *optional*, defaults to `"true"`): ``"true"`` divides each row by its number of true
            samples (the diagonal becomes the per-class recall), ``"pred"`` each column by its number of
            predictions (the diagonal becomes the per-class precision), ``"all"`` the whole matrix by the number of
            samples, ``None`` returns the counts as floats. Empty rows / columns stay 0 instead of NaN.

    Returns:
        `np.ndarray`: a float array of shape `(C, C)`.

    Example:

    ```python
    >>> from telme_hf.inference.reports import normalize_confusion_matrix
    >>> normalize_confusion_matrix([[2, 2, 0], [0, 1, 0], [0, 0, 0]]).tolist()
    [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]

    ```
    """
    matrix = np.asarray(confusion, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A confusion matrix must be square, got shape {matrix.shape}.")
    if normalize not in ("true", "pred", "all", None):
        raise ValueError(f"`normalize` must be 'true', 'pred', 'all' or None, got {normalize!r}.")
    if normalize is None:
        return matrix
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    totals = matrix.sum(axis=axis, keepdims=axis is not None)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals != 0)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    normalize: str | None = "true",
    title: str | None = None,
) -> Path:
    """Save an annotated confusion-matrix heat map as a PNG (rows = true class, columns = predicted class).

    Drawing goes through a bare ``matplotlib.figure.Figure`` with the Agg canvas: it needs no display and does not
    touch pyplot's global backend or figure registry.

    Args:
        confusion (`array-like` of shape `(C, C)`): counts, rows = true, columns = predicted (e.g.
            ``compute_erc_metrics(...)["confusion_matrix"]``).
        labels (`Sequence[str]`): class names in index order.
        path (`str` or `Path`): output file; parent folders are created.
        normalize (`str`, *optional*, defaults to `"true"`): see :func:`normalize_confusion_matrix`; ``"true"``
            (row-normalised, diagonal = per-class recall) is what the original inference script plots.
        title (`str`, *optional*): figure title.

    Returns:
        `Path`: the written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [str(label) for label in labels]
    matrix = normalize_confusion_matrix(confusion, normalize)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"`confusion` has shape {matrix.shape}, expected ({len(labels)}, {len(labels)}).")

    size = max(4.0, 0.8 * len(labels) + 2.0)
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")
    if title:
        axes.set_title(title)

    threshold = (matrix.max() if matrix.size else 0.0) / 2.0
    for i in range(len(labels)):
        for j in range(len(labels)):
            text = f"{matrix[i, j]:.2f}" if normalize else f"{int(round(matrix[i, j]))}"
            color = "white" if matrix[i, j] > threshold else "black"
            axes.text(j, i, text, ha="center", va="center", color=color, fontsize=8)

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=150)
    return path


def _spread(values: Sequence[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float64)
    # The sample standard deviation (ddof=1), as seed spreads are reported; a single run has no spread.
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "values": [float(v) for v in array]}


def summarize_seed_runs(
    runs: Mapping[int, Mapping[str, Mapping[str, Any]]], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Mean and standard deviation over seeds of each stage's dev/test weighted F1 and per-class F1.

    Args:
        runs: seed -> the stage results of one run (`results.json`'s `stages`: stage -> `{"dev", "test", ...}`
            with metrics dicts of :func:`compute_erc_metrics`).
        labels: the classes to summarise (default: those of the first run's metrics).

    Returns:
        `{"seeds": [...], "stages": {stage: {"dev_weighted_f1": {"mean", "std", "values"}, "test_weighted_f1": ...,
        "dev_f1": {label: {...}}, "test_f1": {label: {...}}}}}`, fractions in [0, 1]. `std` is the sample standard
        deviation (ddof=1; 0 for one seed).

    Example:

    ```python
    >>> run = lambda f1: {"fusion": {"dev": {"weighted_f1": f1, "f1": {"a": f1}}, "test": {"weighted_f1": f1, "f1": {"a": f1}}}}
    >>> summary = summarize_seed_runs({1: run(0.5), 2: run(0.7)})
    >>> round(summary["stages"]["fusion"]["test_weighted_f1"]["mean"], 3), round(summary["stages"]["fusion"]["test_weighted_f1"]["std"], 4)
    (0.6, 0.1414)

    ```
    """
    if not runs:
        raise ValueError("No runs to summarise.")
    seeds = list(runs)
    first = runs[seeds[0]]
    stages = [stage for stage in first if all(stage in runs[seed] for seed in seeds)]
    summary: dict[str, Any] = {"seeds": seeds, "stages": {}}
    for stage in stages:
        entry: dict[str, Any] = {}
        for split in ("dev", "test"):
            metrics = [runs[seed][stage][split] for seed in seeds]
            entry[f"{split}_weighted_f1"] = _spread([m["weighted_f1"] for m in metrics])
            names = list(labels) if labels is not None else list(metrics[0]["f1"])
            entry[f"{split}_f1"] = {label: _spread([m["f1"][label] for m in metrics]) for label in names}
        summary["stages"][stage] = entry
    return summary


def format_seed_summary(summary: Mapping[str, Any]) -> str:
    """The table of :func:`summarize_seed_runs`: per stage, dev and test weighted F1 and test per-class F1, each
    as `mean ± std` in percent.

    Example:

    ```python
    >>> run = lambda f1: {"fusion": {"dev": {"weighted_f1": f1, "f1": {"a": f1}}, "test": {"weighted_f1": f1, "f1": {"a": f1}}}}
    >>> print(format_seed_summary(summarize_seed_runs({1: run(0.5), 2: run(0.7)})))
    stage   dev weighted F1  test weighted F1  test a
    --------------------------------------------------------
    fusion  60.00 ± 14.14    60.00 ± 14.14     60.00 ± 14.14

    ```
    """
    def cell(spread: Mapping[str, float]) -> str:
        return f"{100 * spread['mean']:.2f} ± {100 * spread['std']:.2f}"

    stages = summary["stages"]
    from ..data.registry import paper_column_order

    labels = paper_column_order(list(next(iter(stages.values()))["test_f1"]) if stages else [])
    table = [["stage", "dev weighted F1", "test weighted F1", *[f"test {label}" for label in labels]]]
    for stage, entry in stages.items():
        table.append([stage, cell(entry["dev_weighted_f1"]), cell(entry["test_weighted_f1"]),
                      *[cell(entry["test_f1"][label]) for label in labels]])
    return align_table(table, rule=True)


def _to_json_compatible(obj: Any) -> Any:
    """``json.dump`` fallback for NumPy / torch scalars and arrays."""
    if hasattr(obj, "detach"):  # torch.Tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def write_predictions_csv(
    path: str | Path,
    keys: Sequence[str],
    logits: Any,
    labels: Sequence[str],
    gold: Sequence[int] | None = None,
) -> Path:
    """Write one row per utterance: its key, the gold label (when given), the prediction and every probability.

    Example:

    ```python
    >>> write_predictions_csv("predictions.csv", ["dia0_utt0"], [[2.0, 0.1]], ["neg", "pos"], gold=[0])  # doctest: +SKIP
    ```
    """
    import csv

    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["utterance_key", *(["label"] if gold is not None else []), "prediction",
                         *[f"p_{label}" for label in labels]])
        for index, (key, row) in enumerate(zip(keys, probabilities)):
            truth = [labels[int(gold[index])]] if gold is not None else []
            writer.writerow([key, *truth, labels[int(row.argmax())], *[f"{p:.4f}" for p in row]])
    return path


def write_metrics_json(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``metrics`` to ``path`` as indented JSON (parent folders created; NumPy / torch values converted), whole
    or not at all: under a temporary name, renamed to ``path`` once complete.

    Args:
        metrics (`Mapping[str, Any]`): e.g. the output of :func:`compute_erc_metrics`.
        path (`str` or `Path`): output file.

    Returns:
        `Path`: the written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=2, default=_to_json_compatible)
        handle.write("\n")
    return path
