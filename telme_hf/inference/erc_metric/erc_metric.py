# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""ERC metric for `evaluate`: weighted F1, accuracy, macro F1, per-class P/R/F1 and confusion matrix.

Load it offline from its folder:

    evaluate.load("<path to telme_hf/inference/erc_metric>", "meld")

or with `telme_hf.inference.metrics.load_erc_metric("meld")`. The computation is `telme_hf.inference.metrics.compute_erc_metrics`,
the same function `Trainer.compute_metrics` and the CLI use, so `telme_hf` must be importable.
"""

import datasets
import evaluate

# `evaluate` reads the text after "From:" on an import line as the install hint it prints when the import fails
# (and any other trailing comment on an import line as a URL): keep these comments exactly in this form.
from telme_hf.data.registry import PAPER_CORPUS_LABELS  # From: -e <root of the telme_hf repository>
from telme_hf.inference.metrics import compute_erc_metrics  # From: -e <root of the telme_hf repository>


_CITATION = """\
@inproceedings{yun-etal-2024-telme,
    title = "{T}el{ME}: Teacher-leading Multimodal Fusion Network for Emotion Recognition in Conversation",
    author = "Yun, Taeyang and Lim, Hyunkuk and Lee, Jeonghwan and Song, Min",
    booktitle = "Proceedings of the 2024 Conference of the North American Chapter of the Association for
                 Computational Linguistics",
    year = "2024",
    pages = "82--95",
    url = "https://aclanthology.org/2024.naacl-long.5/",
}
"""

_DESCRIPTION = """\
Metrics for emotion recognition in conversation (ERC). The headline number is the weighted F1,
`sklearn.metrics.f1_score(references, predictions, average="weighted")`: the per-class F1 averaged with the
number of true samples of each class as weights. Also reported: accuracy, macro F1 over all classes,
per-class precision / recall / F1 / support keyed by label name, and the confusion matrix (rows = true class,
columns = predicted class). All classes are always reported, also when absent from the evaluated samples.
Values are fractions in [0, 1].

Configurations: "meld" (labels anger, disgust, fear, joy, neutral, sadness, surprise), "iemocap"
(labels ang, exc, fru, hap, neu, sad), or "default" (pass `labels` to `compute`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class indices.
    references (`list` of `int`): gold class indices.
    labels (`list` of `str`, *optional*): class names, index i naming class i. Required with the "default"
        configuration; overrides the configuration's label names otherwise.
Returns:
    weighted_f1 (`float`), accuracy (`float`), macro_f1 (`float`), precision / recall / f1 (`dict` label -> `float`),
    support (`dict` label -> `int`), confusion_matrix (`list` of `list` of `int`), labels (`list` of `str`),
    num_samples (`int`).
Examples:
    >>> metric = evaluate.load("telme_hf/inference/erc_metric", "meld")
    >>> results = metric.compute(predictions=[4, 4, 0], references=[4, 3, 0])
    >>> round(results["weighted_f1"], 4)
    0.5556
    >>> metric = evaluate.load("telme_hf/inference/erc_metric")
    >>> results = metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], labels=["neg", "pos"])
    >>> results["confusion_matrix"]
    [[1, 1], [0, 1]]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ErcMetric(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in ("default", *PAPER_CORPUS_LABELS):
            raise ValueError(
                f"Unknown configuration {self.config_name!r}; use one of "
                f"{['default', *PAPER_CORPUS_LABELS]} (with 'default', pass `labels=[...]` to `compute`)."
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int32"),
                    "references": datasets.Value("int32"),
                }
            ),
            reference_urls=[
                "https://aclanthology.org/2024.naacl-long.5/",
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html",
            ],
        )

    def _compute(self, predictions, references, labels=None):
        if labels is None:
            if self.config_name not in PAPER_CORPUS_LABELS:
                raise ValueError(
                    "The 'default' configuration needs the class names: call `compute(..., labels=[...])` or load "
                    f"a configuration among {list(PAPER_CORPUS_LABELS)}."
                )
            labels = PAPER_CORPUS_LABELS[self.config_name]
        return compute_erc_metrics(y_true=references, y_pred=predictions, labels=labels)
