# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluate a TelME on a corpus split: the fused model and each of its parts, from one forward pass per batch.

`telme evaluate` and the training run's final dev and test evaluation both call :func:`evaluate_split`, and both
write their artefacts with :func:`write_evaluation`.

Example:

```python
>>> from telme_hf.inference.evaluation import evaluate_split, load_evaluation_split
>>> test, report = load_evaluation_split("meld", "/data/MELD.Raw", "test", processor, model.config)  # doctest: +SKIP
>>> evaluate_split(model, processor, test, report=report)["fusion"]["weighted_f1"]  # doctest: +SKIP
0.6737
```
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.bad_media import BadMediaReport, cli_spelling, log_report
from ..data.media_cache import MediaCache, as_media_cache, prepare_media
from ..logging import progress_bar
from ..modeling.media_telme import MODALITIES, MediaError, MediaLoader
from ..modeling.pipeline_telme import DEFAULT_BATCH_SIZE, PART_LOGITS, TelMEDataCollator, run_inference
from .metrics import compute_erc_metrics
from .reports import plot_confusion_matrix, write_metrics_json, write_predictions_csv


__all__ = ["evaluate_split", "load_evaluation_split", "write_evaluation"]

PART_NAMES = {"teacher": "text teacher", "audio": "audio student", "video": "video student", "fusion": "TelME (fused)"}


def load_evaluation_split(data: str, data_root: str | os.PathLike, split: str, processor, config,
                          on_bad_media: str = "zeros"):
    """One split of MELD, IEMOCAP or a synthetic (MELD-layout) corpus, labelled in the model's label order and read
    as the model's processor says (speaker indexing, CSV text), with the report of its missing media files.

    Returns:
        `(Dataset, BadMediaReport)`.
    """
    from ..data.registry import load_corpus

    data_dict, report = load_corpus(data, data_root, processor, config.label_names, splits=(split,),
                                    on_bad_media=on_bad_media)
    return data_dict[split], report


class _DecodedRows(torch.utils.data.Dataset):
    """Rows of a split, each decoded on access through the bad-media policy (DataLoader workers decode in
    parallel; the outcome, notes included, travels back with the row)."""

    def __init__(self, dataset, loader: MediaLoader) -> None:
        self.dataset, self.loader = dataset, loader

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = dict(self.dataset[index])
        if not (row.get("audio_path") or row.get("video_path")):  # a text-only load: the teacher alone
            row.update(bad_media=[], skipped=False)
            return row
        if row.get("audio_features") is not None and row.get("video_features") is not None:
            row.update(bad_media=[], skipped=False)  # encoded before (its policy applied then): nothing to decode
            return row
        try:
            outcome = self.loader.load(row)
        except (MediaError, ValueError, OSError) as error:
            # Carried back as it is, so the main process raises the error itself, not a worker's traceback.
            return {"error": error}
        row.update(audio=outcome.audio, video=outcome.video, bad_media=outcome.entries, skipped=outcome.skipped)
        return row


def _as_is(row: dict[str, Any]) -> dict[str, Any]:
    # Rows keep their NumPy arrays (the DataLoader's default would turn them into tensors).
    return row


def _batches(rows: Iterable[dict[str, Any]], batch_size: int, report: BadMediaReport) -> Iterator[list[dict]]:
    """Regroup the kept rows into batches of `batch_size` in order (dropped ones leave no gaps), recording every
    row's bad media in `report`."""
    buffer: list[dict[str, Any]] = []
    for row in rows:
        if "error" in row:
            raise row["error"]
        for entry in row.pop("bad_media"):
            report.add(entry)
        if row.pop("skipped"):
            continue
        buffer.append(row)
        if len(buffer) == batch_size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def evaluate_split(
    model,
    processor,
    dataset,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_bad_media: str = "zeros",
    cache: MediaCache | str | os.PathLike | None = None,
    num_workers: int = 0,
    progress: bool = True,
    report: BadMediaReport | None = None,
    split: str = "",
    loader: MediaLoader | None = None,
    features_cache: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate the fused model and each of its parts on a split, in one forward pass per batch (the text teacher
    alone on a split loaded without media).

    Batches are `batch_size` consecutive utterances in the split's (CSV) order, never shuffled: that is how the
    original evaluated, and converted original checkpoints (whose fusion attends across the batch) need it.

    Args:
        model, processor: a `TelMEForEmotionRecognition` and its processor.
        dataset: rows of `load_meld`/`load_iemocap` (see :func:`load_evaluation_split`), labels in the model's order.
        batch_size: utterances per forward pass.
        on_bad_media: `"zeros"` (zeros for unusable media; the original's choice for clips over 30 s), `"skip"`
            (the utterance is left out of every metric, as in training) or `"error"`.
        cache: a `MediaCache` (or its folder) to reuse decoded clips, e.g. the training run's `cache/media`.
        num_workers: DataLoader workers decoding media in parallel.
        progress: show a progress bar over batches.
        report: the load's `BadMediaReport` (missing files the loader already dropped or kept); the media found
            bad while decoding is added to it.
        split: the split's name, for the report.
        loader: a ready `MediaLoader` (a training run's: it knows the bad clips already, so none is decoded or
            logged twice); by default one is built for the processor, `on_bad_media` and `cache`.
        features_cache: a folder to keep every encoder's features in (one Arrow file per checkpoint, split and
            decode options): the first evaluation runs the encoders once per utterance as usual, an evaluation of
            the same checkpoint again runs only the heads and the fusion. Give `cache` too, or media is decoded
            twice. Rows that already carry the features (`caching.add_encoder_features`) are never decoded.

    Returns:
        `{"teacher", "audio", "video", "fusion"}` → metrics of `compute_erc_metrics`, plus `"num_samples"`,
        `"bad_media"` (utterance → what was done), `"report"` (the `BadMediaReport`), `"keys"`, `"labels"` (gold
        ids) and `"logits"` (part → NumPy array).
    """
    if len(dataset) == 0:
        raise ValueError("The split has no rows to evaluate.")
    split = split or str(getattr(dataset, "split", "") or "")
    report = report if report is not None else BadMediaReport(on_bad_media)
    report.policy = report.policy or on_bad_media
    loader = loader or MediaLoader.for_processor(processor, as_media_cache(cache), on_bad_media=on_bad_media,
                                                 skipped="drop", spelling=cli_spelling, split=split, report=report)
    media_columns = [c for c in ("audio_path", "video_path") if c in dataset.column_names]
    if features_cache is not None and any(any(dataset[c]) for c in media_columns):
        from ..data.frozen_outputs import add_encoder_features

        dataset = prepare_media(dataset, loader, desc=f"decoding {split or 'split'} media",
                                disable_progress=None if progress else True)
        dataset = add_encoder_features(dataset, model, processor, loader, features_cache, batch_size,
                                       desc=f"features {split or 'split'}")
    decoded = torch.utils.data.DataLoader(_DecodedRows(dataset, loader), batch_size=None, shuffle=False,
                                          num_workers=num_workers, collate_fn=_as_is)
    collator = TelMEDataCollator(processor, MODALITIES, skipped="text", loader=loader)
    keys: list[str] = []
    gold: list[int] = []

    def batches():
        for rows in progress_bar(_batches(decoded, batch_size, report), disable=None if progress else True,
                                 total=math.ceil(len(dataset) / batch_size), desc="evaluating", unit="batch"):
            keys.extend(row["utterance_key"] for row in rows)
            gold.extend(int(row["label"]) for row in rows)
            yield collator(rows)

    outputs = run_inference(model, batches())
    if not keys:
        raise ValueError("Every utterance was dropped by on_bad_media='skip': nothing to evaluate.")
    labels = model.config.label_names
    results: dict[str, Any] = {"logits": {}}
    for name, output_name in PART_LOGITS.items():
        logits = outputs[output_name]
        if torch.isnan(logits).any():  # no media for this part (a text-only split): only the teacher is evaluated
            continue
        results[name] = compute_erc_metrics(gold, logits.argmax(-1).numpy(), labels)
        results["logits"][name] = logits.numpy()
    log_report(report, f"evaluating {split or 'the split'}")
    bad = report.by_split()
    results.update(num_samples=len(keys), bad_media=bad.get(split, {}) if split else {k: v for s in bad.values()
                                                                                       for k, v in s.items()},
                   report=report, keys=keys, labels=gold)
    return results


def write_evaluation(
    results: Mapping[str, Any],
    output_dir: str | os.PathLike,
    label_names: Sequence[str],
    setup: Mapping[str, Any] | None = None,
    reference: Mapping[str, float] | None = None,
    part: str = "fusion",
    metrics_file: str | None = "metrics.json",
) -> dict[str, Path]:
    """Write `metrics.json` (the chosen part's metrics at the top level, each other part under `parts`),
    `confusion_matrix.png` (row-normalised) and `predictions.csv` (per utterance: gold, prediction, probabilities).

    Args:
        results: what :func:`evaluate_split` returned.
        part: which part's predictions and confusion matrix to write (the fused model by default; a training run
            that stopped earlier writes its last stage's).
        metrics_file: `None` writes no metrics file (a training run writes `results.json` instead).

    Returns:
        `{"metrics", "confusion_matrix", "predictions"}` → written paths.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if metrics_file:
        payload = {
            **dict(results[part]),
            "parts": {name: results[name] for name in PART_LOGITS if name != part and name in results},
            "setup": dict(setup or {}),
            "bad_media": dict(results["bad_media"]),
        }
        if reference is not None:
            payload["paper"] = dict(reference)
        paths["metrics"] = write_metrics_json(payload, output_dir / metrics_file)
    title = " ".join(str(value) for value in ((setup or {}).get("data"), (setup or {}).get("split")) if value)
    paths["confusion_matrix"] = plot_confusion_matrix(
        results[part]["confusion_matrix"], label_names, output_dir / "confusion_matrix.png",
        title=f"{PART_NAMES[part]}{f' — {title}' if title else ''}",
    )
    paths["predictions"] = write_predictions_csv(output_dir / "predictions.csv", results["keys"],
                                                 results["logits"][part], label_names, gold=results["labels"])
    return paths
