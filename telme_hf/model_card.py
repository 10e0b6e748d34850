# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Render `model_card.md` into a checkpoint's README.md, with the Hub's `model-index` metadata.

Trained checkpoints (`telme_hf.distill`) and converted original ones (`telme_hf.convert`) share this renderer; they
differ in where the weights come from (`origin`), what was measured and how to check it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .modeling import TelMEConfig


TEMPLATE = Path(__file__).with_name("model_card.md")
STAGE_NAMES = {"teacher": "text teacher", "audio": "audio student", "video": "video student", "fusion": "TelME (fused)"}


def _model_index(name: str, dataset: str, results: Mapping[str, Any]) -> str:
    entries = []
    for stage, result in results.items():
        test = result.get("test") or {}
        if "weighted_f1" not in test:
            continue
        entries.append({
            "task": {"type": "emotion-recognition-in-conversation",
                     "name": f"Emotion recognition in conversation: {STAGE_NAMES.get(stage, stage)}"},
            "dataset": {"type": dataset, "name": dataset, "split": "test"},
            "metrics": [
                {"type": "f1", "name": "weighted F1", "value": round(100 * test["weighted_f1"], 2)},
                {"type": "accuracy", "name": "accuracy", "value": round(100 * test["accuracy"], 2)},
            ],
        })
    if not entries:
        return ""
    return yaml.safe_dump({"model-index": [{"name": name, "results": entries}]}, sort_keys=False).rstrip()


def behaviour_lines(config: TelMEConfig, processor: Any | None = None) -> str:
    """One line per behaviour of the original implementation: its value here and whether it is the original's."""
    flags = dict(config.uses_reference_behaviour)
    if processor is not None:
        flags.update(processor.uses_reference_behaviour)
    return "\n".join(
        f"- `{name}` = `{getattr(processor if processor is not None and hasattr(processor, name) else config, name)}`"
        f" ({'original implementation' if is_ref else 'clean default'})"
        for name, is_ref in flags.items()
    )


def _training_lines(training: Any) -> str:
    if isinstance(training, str):
        return training
    if not training:
        return "Not recorded."
    lines = []
    for section, values in training.items():
        if isinstance(values, Mapping):
            lines += [f"- `{key}`: `{value}`" for key, value in values.items()]
        else:
            lines.append(f"- `{section}`: `{values}`")
    return "\n".join(lines)


def render_model_card(
    config: TelMEConfig,
    processor: Any | None = None,
    results: Mapping[str, Any] | None = None,
    training: Any = None,
    dataset: str = "unknown",
    repo: str = "path/to/checkpoint",
    origin: str = "Trained with `telme_hf`.",
    title: str | None = None,
    results_text: str | None = None,
    extra: str = "",
) -> str:
    """The README.md text of a checkpoint.

    Args:
        config: the model's configuration (labels, behaviours).
        processor: its processor (the preprocessing behaviours).
        results: per stage, `{"selected_epoch", "dev", "test"}` metrics dicts (as in `results.json`).
        training: the run's options (a mapping, listed under "Training") or a sentence.
        dataset: dataset name for the metadata.
        repo: Hub id or folder shown in the usage snippet.
        origin: markdown on where the weights come from.
        title: the card's title (default `TelME — DATASET`).
        results_text: replaces the results table (e.g. for converted weights, nothing was measured here).
        extra: markdown sections appended at the end.
    """
    from .metrics import format_per_class_table

    results = results or {}
    table = results_text or "No evaluation results recorded."
    if results and results_text is None:
        rows = {STAGE_NAMES.get(stage, stage): r["test"] for stage, r in results.items() if r.get("test")}
        table = "```\n" + format_per_class_table(rows, config.label_names) + "\n```"
    name = repo.split("/")[-1] if "/" in repo and not Path(repo).exists() else f"telme-{dataset}"
    card = TEMPLATE.read_text(encoding="utf-8").format(
        model_index=_model_index(name, dataset, results),
        title=title or f"TelME — {dataset}",
        origin=origin,
        labels=", ".join(f"`{i}: {label}`" for i, label in enumerate(config.label_names)),
        dataset=dataset,
        results_table=table,
        training=_training_lines(training),
        behaviours=behaviour_lines(config, processor),
        repo=repo,
    )
    return card + (f"\n{extra.strip()}\n" if extra else "")


def write_model_card(folder: str | Path, config: TelMEConfig, processor: Any, training: Any,
                     results: Mapping[str, Any], **kwargs: Any) -> Path:
    """Write README.md into a checkpoint folder (see `render_model_card` for the keyword arguments)."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(config, processor, results, training, **kwargs), encoding="utf-8")
    return path
