# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Render `model_card.md` into a checkpoint's README.md, with the Hub's `model-index` metadata."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from .modeling import TelMEConfig


TEMPLATE = Path(__file__).with_name("model_card.md")
STAGE_NAMES = {"teacher": "text teacher", "audio": "audio student", "video": "video student", "fusion": "TelME (fused)"}


def _model_index(name: str, dataset: str, results: dict[str, Any]) -> str:
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


def render_model_card(
    config: TelMEConfig,
    results: dict[str, Any] | None = None,
    training: Any = None,
    dataset: str = "unknown",
    repo: str = "path/to/checkpoint",
    origin: str = "Trained with `telme_hf`.",
) -> str:
    """The README.md text of a checkpoint.

    Args:
        config: the model's configuration (labels, behaviours).
        results: per stage, `{"selected_epoch", "dev", "test"}` metrics dicts (as in `results.json`).
        training: the run's options (a `DistillConfig` or a dict), listed under "Training".
        dataset: dataset name for the metadata.
        repo: Hub id or folder shown in the usage snippet.
        origin: a sentence on where the weights come from.
    """
    from .metrics import format_per_class_table

    results = results or {}
    labels = [config.id2label[i] for i in range(config.num_labels)]
    table = "No evaluation results recorded."
    if results:
        rows = {STAGE_NAMES.get(stage, stage): r["test"] for stage, r in results.items() if r.get("test")}
        table = "```\n" + format_per_class_table(rows, labels) + "\n```"
    if is_dataclass(training):
        training = asdict(training)
    training_text = "\n".join(f"- `{k}`: `{v}`" for k, v in (training or {}).items()) or "Not recorded."
    behaviours = "\n".join(
        f"- `{name}` = `{getattr(config, name)}` ({'original implementation' if is_ref else 'clean default'})"
        for name, is_ref in config.uses_reference_behaviour.items()
    )
    return TEMPLATE.read_text(encoding="utf-8").format(
        model_index=_model_index(repo.split("/")[-1] if "/" in repo and not Path(repo).exists() else f"telme-{dataset}",
                                 dataset, results),
        title=f"TelME — {dataset}",
        origin=origin,
        labels=", ".join(f"`{i}: {label}`" for i, label in enumerate(labels)),
        dataset=dataset,
        results_table=table,
        training=training_text,
        behaviours=behaviours,
        repo=repo,
    )


def write_model_card(folder: str | Path, config: TelMEConfig, training: Any, results: dict[str, Any], **kwargs) -> Path:
    """Write README.md into a checkpoint folder."""
    dataset = kwargs.pop("dataset", None) or (getattr(training, "dataset", None) if training is not None else None)
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(config, results, training, dataset=dataset or "unknown", **kwargs), encoding="utf-8")
    return path
