# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""A checkpoint's README.md: the Hub metadata through `huggingface_hub` (`ModelCardData`, `EvalResult`) and the
body from `model_card.md`.

The `model-index` holds the headline model only (the fused one when the run trained it), on test and on dev, one
`EvalResult` per metric: `huggingface_hub` identifies a result by task, dataset, config, split and revision, so the
parts' scores (text teacher, audio and video students), which share all of those, would fold into one block. They
are in the card's table instead. Trained checkpoints (`telme_hf.training.run`) and converted original ones
(`telme_hf.hub.convert`) share this renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.registry import get_corpus, paper_column_order
from ..modeling import TelMEConfig


TEMPLATE = Path(__file__).with_name("model_card.md")
STAGE_NAMES = {"teacher": "text teacher", "audio": "audio student", "video": "video student", "fusion": "TelME (fused)"}
STAGE_ORDER = ("teacher", "audio", "video", "fusion")
PAPER_ARXIV = "2401.12987"
CITATION = """@inproceedings{yun-etal-2024-telme,
    title = "{T}el{ME}: Teacher-leading Multimodal Fusion Network for Emotion Recognition in Conversation",
    author = "Yun, Taeyang and Lim, Hyunkuk and Lee, Jeonghwan and Song, Min",
    booktitle = "Proceedings of the 2024 Conference of the North American Chapter of the Association for Computational Linguistics: Human Language Technologies (Volume 1: Long Papers)",
    year = "2024",
    address = "Mexico City, Mexico",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.naacl-long.5",
    doi = "10.18653/v1/2024.naacl-long.5",
    pages = "82--95",
}"""
# The Hub has no task for a conversation's text, audio and video together; the model classifies each utterance of
# a dialogue, led by its text.
PIPELINE_TAG = "text-classification"
TASK_NAME = "Emotion recognition in conversation"
# Names the backbones' configs may carry, spelled as their Hub repositories are now.
CANONICAL_BACKBONES = {"roberta-large": "FacebookAI/roberta-large"}
# Where a card's usage section starts and ends, so that `set_card_repo` can point it at the Hub repository.
USAGE_START, USAGE_END = "<!-- telme:usage -->", "<!-- /telme:usage -->"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_id(name: str | None) -> bool:
    """`facebook/data2vec-audio-base-960h` yes; `/data/models/roberta`, `./ckpt`, `` no."""
    return bool(name) and not Path(name).expanduser().exists() and bool(_HUB_ID.match(name)) \
        and not name.startswith((".", "~"))


def base_models(config: TelMEConfig) -> list[str]:
    """The Hub backbones the model was built from (none for the tiny random preset or local folders)."""
    names = [getattr(sub, "name_or_path", "") for sub in (config.text_config, config.audio_config, config.video_config)]
    return [CANONICAL_BACKBONES.get(name, name) for name in names if is_hub_id(name)]


def headline_stage(results: Mapping[str, Any]) -> str | None:
    """The last stage with test metrics: the fused model after a full run."""
    stages = [stage for stage in STAGE_ORDER if (results.get(stage) or {}).get("test")]
    return stages[-1] if stages else None


def eval_results(results: Mapping[str, Any], dataset: str) -> list[EvalResult]:
    """The headline model's weighted F1 and accuracy on test and dev (percent), as the Hub reads them."""
    stage = headline_stage(results)
    if stage is None:
        return []
    corpus = get_corpus(dataset)
    task_name = TASK_NAME if stage == "fusion" else f"{TASK_NAME} ({STAGE_NAMES[stage]} alone)"
    entries = []
    for split in ("test", "dev"):
        metrics = results[stage].get(split) or {}
        for metric_type, metric_name, key, args in (("f1", "Weighted F1", "weighted_f1", {"average": "weighted"}),
                                                    ("accuracy", "Accuracy", "accuracy", None)):
            if key in metrics:
                entries.append(EvalResult(
                    task_type=PIPELINE_TAG, task_name=task_name, dataset_type=corpus.hub_id or dataset,
                    dataset_name=corpus.title or dataset, dataset_split=split, metric_type=metric_type,
                    metric_name=metric_name, metric_value=round(100 * float(metrics[key]), 2), metric_args=args,
                ))
    return entries


def card_data(config: TelMEConfig, dataset: str, results: Mapping[str, Any], model_name: str,
              license: str = "apache-2.0", **license_fields: str) -> ModelCardData:
    """The card's metadata: only Hub ids that exist (the backbones, MELD's dataset repository)."""
    corpus = get_corpus(dataset)
    return ModelCardData(
        library_name="transformers", pipeline_tag=PIPELINE_TAG, language="en", license=license,
        base_model=base_models(config) or None, datasets=[corpus.hub_id] if corpus.hub_id else None,
        tags=["telme", "emotion-recognition", "emotion-recognition-in-conversation", "multimodal",
              "knowledge-distillation", "custom_code"],
        model_name=model_name, eval_results=eval_results(results, dataset) or None, **license_fields,
    )


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


def results_table(results: Mapping[str, Any], labels: Sequence[str]) -> str:
    """Markdown: one row per part (selected epoch, dev and test weighted F1, test accuracy, test per-class F1)."""
    classes = paper_column_order(labels)
    header = ["part", "epoch", "dev wF1", "test wF1", "test acc.", *classes]
    rows = []
    for stage in STAGE_ORDER:
        result = results.get(stage) or {}
        test, dev = result.get("test") or {}, result.get("dev") or {}
        if not test:
            continue

        def pct(value: Any) -> str:
            return "-" if value is None else f"{100 * float(value):.2f}"

        epoch = result.get("selected_epoch")
        rows.append([STAGE_NAMES[stage], "-" if epoch is None else f"{float(epoch):g}", pct(dev.get("weighted_f1")),
                     pct(test.get("weighted_f1")), pct(test.get("accuracy")),
                     *(pct((test.get("f1") or {}).get(label)) for label in classes)])
    if not rows:
        return "No evaluation results recorded."
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def training_table(training: Mapping[str, Any] | str | None) -> str:
    """Markdown: the options that matter (see `telme_hf.training.run.training_summary`), one row each."""
    if isinstance(training, str):
        return training
    if not training:
        return "Not recorded."
    lines = []
    stages = training.get("stages") or {}
    if stages:
        lines += ["| stage | epochs | learning rate |", "| --- | --- | --- |"]
        lines += [f"| {STAGE_NAMES.get(stage, stage)} | {values['epochs']:g} | {values['learning_rate']:g} |"
                  for stage, values in stages.items()]
        lines.append("")
    lines += ["| option | value |", "| --- | --- |"]
    lines += [f"| `{key}` | `{value}` |" for key, value in (training.get("options") or {}).items()]
    return "\n".join(lines)


def usage_section(repo: str) -> str:
    """How to load and run the checkpoint, from `repo` (a Hub id, or a folder before it is pushed)."""
    return f"""{USAGE_START}
## Use

```python
from transformers import pipeline

erc = pipeline("emotion-recognition-in-conversation", model="{repo}", trust_remote_code=True)
dialogue = [
    {{"speaker": "Ross", "text": "We were on a break!", "media": "dia0_utt0.mp4"}},  # mp4 with audio and video
    {{"speaker": "Rachel", "text": "Unbelievable."}},                                  # text alone works too
]
for turn in erc(dialogue):
    print(turn["speaker"], turn["label"], round(turn["score"], 2), turn["note"])
```

The model, processor and pipeline code travel with the checkpoint: `trust_remote_code=True` needs `torch`,
`transformers` and `pillow`, plus `av` (PyAV) to decode media files. With `pip install telme_hf`, `import telme_hf`
registers everything without remote code, and from the command line:
`telme predict --model {repo} --dialogue dialogue.csv`. A turn whose media is missing or unusable is predicted from
its text alone, and its `note` says so.
{USAGE_END}"""


def render_model_card(
    config: TelMEConfig,
    processor: Any | None = None,
    results: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | str | None = None,
    dataset: str = "synthetic",
    repo: str = "path/to/checkpoint",
    origin: str = "Trained with `telme_hf`.",
    title: str | None = None,
    results_text: str | None = None,
    extra: str = "",
    license: str = "apache-2.0",
    **license_fields: str,
) -> str:
    """The README.md text of a checkpoint.

    Args:
        config: the model's configuration (labels, backbones, behaviours).
        processor: its processor (the preprocessing behaviours).
        results: per stage, `{"selected_epoch", "dev", "test"}` metrics dicts (as in `results.json`).
        training: `{"stages": {stage: {"epochs", "learning_rate"}}, "options": {...}}` (see
            `telme_hf.training.run.training_summary`), or a sentence.
        dataset: `meld`, `iemocap` or `synthetic`.
        repo: Hub id or folder shown in the usage section (`set_card_repo` changes it on upload).
        origin: markdown on where the weights come from.
        title: the card's title (default `TelME — DATASET`).
        results_text: replaces the results table (e.g. for converted weights: nothing was measured here).
        extra: markdown sections appended before the citation.
        license, license_fields: the weights' licence metadata (`license_name`, `license_link` for `other`).
    """
    results = results or {}
    corpus = get_corpus(dataset)
    name = repo.rstrip("/").split("/")[-1] if is_hub_id(repo) else f"telme-{dataset}"
    data = card_data(config, dataset, results, name, license, **license_fields)
    body = TEMPLATE.read_text(encoding="utf-8").format(
        title=title or f"TelME — {corpus.title or dataset}",
        arxiv=PAPER_ARXIV,
        origin=origin,
        labels=", ".join(f"`{i}: {label}`" for i, label in enumerate(config.label_names)),
        dataset=corpus.title or dataset,
        results_table=results_text if results_text is not None else results_table(results, config.label_names),
        training=training_table(training),
        behaviours=behaviour_lines(config, processor),
        usage=usage_section(repo),
        extra=f"{extra.strip()}\n\n" if extra else "",
        citation=CITATION,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}").content


def write_model_card(folder: str | Path, config: TelMEConfig, processor: Any, training: Any,
                     results: Mapping[str, Any], **kwargs: Any) -> Path:
    """Write README.md into a checkpoint folder (see `render_model_card` for the keyword arguments)."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(config, processor, results, training, **kwargs), encoding="utf-8")
    return path


def set_card_repo(folder: str | Path, repo_id: str) -> bool:
    """Point the card of a checkpoint folder at its Hub repository (usage section and `model_name`), before an
    upload. Returns False when the folder has no card written by telme_hf."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return False
    card = ModelCard.load(path)
    start, end = card.text.find(USAGE_START), card.text.find(USAGE_END)
    if start < 0 or end < 0:
        return False
    card.text = card.text[:start] + usage_section(repo_id) + card.text[end + len(USAGE_END):]
    card.data.model_name = repo_id.split("/")[-1]  # the model-index's name; its results stay as they are
    card.save(path)
    return True


__all__ = ["CITATION", "base_models", "card_data", "eval_results", "render_model_card", "set_card_repo",
           "write_model_card"]
