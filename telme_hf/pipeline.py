# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The `"emotion-recognition-in-conversation"` pipeline: a dialogue in, one emotion per utterance out.

`import telme_hf` registers the task, so `transformers.pipeline` builds it from any TelME checkpoint:

```python
>>> import telme_hf
>>> from transformers import pipeline
>>> erc = pipeline("emotion-recognition-in-conversation", model="telme-demo/final")  # doctest: +SKIP
>>> dialogue = [{"speaker": "Ross", "text": "We were on a break!"}, {"speaker": "Rachel", "text": "Unbelievable."}]
>>> erc(dialogue)  # doctest: +SKIP
[{'turn': 0, 'speaker': 'Ross', 'text': 'We were on a break!', 'label': 'anger', 'score': 0.48, 'scores': {...},
  'modalities': ['text'], 'note': "no media given: text teacher's prediction"},
 {'turn': 1, 'speaker': 'Rachel', ...}]
```

Preprocessing, the batched forward pass and the output format are those of `telme_hf.prediction`, which
`telme predict` uses too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Pipeline

from .prediction import DEFAULT_BATCH_SIZE, format_predictions, predict_logits, prepare_dialogue


PIPELINE_TASK = "emotion-recognition-in-conversation"

__all__ = ["PIPELINE_TASK", "EmotionRecognitionInConversationPipeline"]


@dataclass
class _Dialogue:
    # Wraps a dialogue so that `Pipeline.__call__` treats it as one input, not as a list of inputs.
    turns: Sequence[Mapping[str, Any]]


def _is_dialogue(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(t, Mapping) for t in value)


class EmotionRecognitionInConversationPipeline(Pipeline):
    r"""
    Emotion recognition in conversation with TelME: for a dialogue (a list of turns), the emotion of every
    utterance, each predicted from the dialogue up to that turn.

    A turn is `{"speaker": str, "text": str}`, optionally with media: `"media"` (one file holding both streams,
    like a MELD clip), or `"audio"` and/or `"video"` (file paths, or arrays: a 1-D float waveform at the model's
    sampling rate, `(num_frames, height, width, 3)` uint8 RGB frames), and `"start"`/`"end"` in seconds to cut a
    window out of a longer file. A turn with media gets the fused prediction of text, audio and video; a dialogue
    without any media gets the text teacher's. Each result says which (`modalities`) and why (`note`).

    Call arguments (also accepted by `pipeline(...)`):
        on_bad_media (`str`, *optional*, defaults to `"zeros"`): for a turn whose media is missing or unusable:
            `"zeros"` (zeros in its place), `"skip"` (that turn from its text alone) or `"error"`.
        media_root (`str`, *optional*): folder that relative media paths are resolved against.
        batch_size (`int`, *optional*, defaults to 4): utterances per forward pass. Checkpoints whose fusion
            attends across the batch (`fusion_attention_scope="batch"`, converted original ones) give
            batch-dependent fused predictions; the original evaluated with 4.

    Returns:
        For one dialogue, a list with one dict per utterance: `label`, `score` (its probability), `scores` (every
        label's probability), plus `turn`, `speaker`, `text`, `modalities` and `note`. For a list of dialogues, a
        list of such lists.

    Example:

    ```python
    >>> erc = pipeline("emotion-recognition-in-conversation", model="telme-demo/final")  # doctest: +SKIP
    >>> erc([{"speaker": "Joey", "text": "How you doin'?", "media": "dia3_utt0.mp4"}])[0]["label"]  # doctest: +SKIP
    'joy'
    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # `batch_size` counts utterances inside a dialogue here; `Pipeline` would batch whole inputs with a
        # tokenizer-padding collator that does not fit dialogues.
        self.utterance_batch_size = kwargs.pop("batch_size", None) or DEFAULT_BATCH_SIZE
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "The emotion-recognition-in-conversation pipeline needs the model's TelMEProcessor: pass "
                "`processor=` or a checkpoint folder/Hub id that holds processor_config.json."
            )
        from .components import apply_legacy_preprocessing

        apply_legacy_preprocessing(self.processor, self.model.config, str(self.model.name_or_path))

    def _sanitize_parameters(
        self,
        on_bad_media: str | None = None,
        media_root: str | os.PathLike | None = None,
        utterance_batch_size: int | None = None,
        **kwargs: Any,
    ) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"Unknown argument(s) {sorted(kwargs)}; the pipeline takes on_bad_media, media_root "
                            "and batch_size.")
        preprocess: dict[str, Any] = {}
        if on_bad_media is not None:
            preprocess["on_bad_media"] = on_bad_media
        if media_root is not None:
            preprocess["media_root"] = media_root
        forward = {} if utterance_batch_size is None else {"batch_size": utterance_batch_size}
        return preprocess, forward, {}

    def __call__(self, dialogues: Any, **kwargs: Any) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Predict one dialogue (a list of turn dicts) or several (a list of such lists)."""
        if "batch_size" in kwargs:
            kwargs["utterance_batch_size"] = kwargs.pop("batch_size")
        if _is_dialogue(dialogues):
            return super().__call__(_Dialogue(dialogues), **kwargs)
        if isinstance(dialogues, (list, tuple)) and dialogues and all(_is_dialogue(d) for d in dialogues):
            return super().__call__([_Dialogue(d) for d in dialogues], **kwargs)
        raise TypeError(
            "Pass a dialogue as a non-empty list of turns like {'speaker': 'Ross', 'text': 'Hi.'} (optionally with "
            f"'media' or 'audio'/'video' paths), or a list of such dialogues; got {type(dialogues).__name__}."
        )

    def get_inference_context(self):
        return torch.inference_mode

    def preprocess(self, dialogue: _Dialogue, on_bad_media: str = "zeros", media_root=None) -> dict[str, Any]:
        return {"utterances": prepare_dialogue(dialogue.turns, self.processor, on_bad_media, media_root)}

    def _forward(self, model_inputs: dict[str, Any], batch_size: int | None = None) -> dict[str, Any]:
        utterances = model_inputs["utterances"]
        logits = predict_logits(self.model, self.processor, utterances, batch_size or self.utterance_batch_size)
        return {"utterances": utterances, "logits": logits["logits"]}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        return format_predictions(model_outputs["logits"], model_outputs["utterances"], self.model.config.id2label)
