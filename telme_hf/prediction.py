# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Predict with a trained TelME: a dialogue in, one emotion per utterance out.

One code path serves `predict_dialogue`, `telme predict` and the `"emotion-recognition-in-conversation"`
pipeline, and its batch step (:func:`predict_batch`) serves evaluation too:

1. :func:`prepare_dialogue` turns each turn into a :class:`PreparedUtterance`: its dialogue context and its
   decoded audio and video, after the bad-media policy (`telme_hf.data.bad_media`);
2. :func:`predict_logits` batches them through the `TelMEDataCollator` and runs :func:`predict_batch` under
   `torch.inference_mode`: an utterance with media gets the fused prediction, one without the text teacher's;
3. :func:`format_predictions` turns logits into one `{"label", "score", "scores", ...}` dict per utterance.

Example:

```python
>>> import telme_hf
>>> from transformers import AutoModel, AutoProcessor
>>> from telme_hf.prediction import predict_dialogue
>>> model = AutoModel.from_pretrained("telme-demo/final")  # doctest: +SKIP
>>> processor = AutoProcessor.from_pretrained("telme-demo/final")  # doctest: +SKIP
>>> turns = [
...     {"speaker": "Ross", "text": "We were on a break!", "media": "clips/dia0_utt0.mp4"},
...     {"speaker": "Rachel", "text": "Unbelievable.", "media": "clips/dia0_utt1.mp4"},
... ]
>>> predict_dialogue(model, processor, turns)[1]  # doctest: +SKIP
{'turn': 1, 'speaker': 'Rachel', 'text': 'Unbelievable.', 'label': 'anger', 'score': 0.71,
 'scores': {'anger': 0.71, 'disgust': 0.04, ...}, 'modalities': ['text', 'audio', 'video'], 'note': ''}
```
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.bad_media import check_policy
from .data.cache import MediaCache, MediaLoader
from .data.collator import TelMEDataCollator, to_model
from .data.media import MODALITIES


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MEDIA_FIELDS",
    "PART_LOGITS",
    "PreparedUtterance",
    "format_predictions",
    "load_model_and_processor",
    "predict_batch",
    "predict_dialogue",
    "predict_logits",
    "prepare_dialogue",
]

# The original evaluates with batches of 4 in CSV order; with `fusion_attention_scope="batch"` (converted original
# checkpoints) the fused prediction depends on the batch, so 4 is also the default here.
DEFAULT_BATCH_SIZE = 4
# Media keys of a turn (and columns of a dialogue file): one file with both streams, or one per modality.
MEDIA_FIELDS = ("media", "audio", "video")
# Each part of the model and the output holding its logits.
PART_LOGITS = {"teacher": "text_logits", "audio": "audio_logits", "video": "video_logits", "fusion": "logits"}


@dataclass
class PreparedUtterance:
    """One utterance ready for the model.

    Attributes:
        context: the dialogue's turns up to and including this one, as `{"speaker", "text"}` dicts (plus
            `"speaker_index"` where the data loader computed it).
        audio: mono float32 waveform at the model's rate, or `None` (predict from text).
        video: `uint8 (num_frames, height, width, 3)` RGB frames, or `None` (predict from text).
        note: what was done about missing or unusable media (empty when nothing was).
        label: gold class id, when known (evaluation).
        key: a name for messages and outputs (`"turn 2"`, `"dia0_utt2"`).
    """

    context: list[dict[str, Any]]
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    note: str = ""
    label: int | None = None
    key: str = ""

    @property
    def modalities(self) -> list[str]:
        """`["text", "audio", "video"]` when the fused prediction is used, else `["text"]`."""
        return list(MODALITIES) if self.audio is not None and self.video is not None else ["text"]

    def as_row(self) -> dict[str, Any]:
        """The collator's row: its context, its decoded arrays (no paths: nothing is decoded again)."""
        return {"context": self.context, "audio": self.audio, "video": self.video, "label": self.label,
                "utterance_key": self.key}


# ----------------------------------------------------------------------------------------------------- inputs
def _given(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (value is not None and str(value).strip() != "")


def has_media(turn: Mapping[str, Any]) -> bool:
    """Whether a turn names any media (a file or an array)."""
    return any(_given(turn.get(name)) for name in MEDIA_FIELDS)


def turn_media(turn: Mapping[str, Any], media_root: Path | None) -> dict[str, Any]:
    """A turn's media as the `audio_path`/`video_path`/`audio`/`video`/`start`/`end` fields `MediaLoader` reads."""
    def resolve(value: Any) -> Any:
        if isinstance(value, np.ndarray) or not _given(value):
            return value
        path = Path(os.fspath(value)).expanduser()
        return os.fspath(path if path.is_absolute() or media_root is None else media_root / path)

    row: dict[str, Any] = {}
    for kind in ("audio", "video"):
        value = resolve(turn.get(kind) if _given(turn.get(kind)) else turn.get("media"))
        if isinstance(value, np.ndarray):
            row[kind] = value
        else:
            row[f"{kind}_path"] = value if _given(value) else ""
    for bound in ("start", "end"):
        row[bound] = float(turn[bound]) if _given(turn.get(bound)) else math.nan
    return row


def _check_arrays(row: Mapping[str, Any], sampling_rate: int, where: str) -> None:
    audio, video = row.get("audio"), row.get("video")
    if isinstance(audio, np.ndarray) and audio.ndim != 1:
        raise ValueError(f"The audio of {where} must be a 1-D waveform at {sampling_rate} Hz, got shape {audio.shape}.")
    if isinstance(video, np.ndarray) and (video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0):
        raise ValueError(f"The video of {where} must be (num_frames, height, width, 3) uint8 RGB frames, got shape "
                         f"{video.shape}.")


def prepare_dialogue(
    turns: Sequence[Mapping[str, Any]],
    processor,
    on_bad_media: str = "zeros",
    media_root: str | os.PathLike | None = None,
    cache: MediaCache | str | os.PathLike | None = None,
    source: str | None = None,
    cli_hint: bool = False,
) -> list[PreparedUtterance]:
    """Decode a dialogue's media and build each utterance's context, ready for :func:`predict_logits`.

    Args:
        turns: the dialogue in order; each turn is `{"speaker", "text"}` with optional media: `"media"` (one file
            holding both streams, e.g. a MELD clip), `"audio"` and/or `"video"` (paths, or arrays: a 1-D float
            waveform at the model's rate, `(num_frames, height, width, 3)` uint8 RGB frames), and `"start"`/`"end"`
            (seconds) to cut a window out of a longer file.
        processor: the model's `TelMEProcessor` (it says how media is decoded).
        on_bad_media: for a turn whose media is missing or unusable when the dialogue has media: `"zeros"` (zeros
            in its place, fused prediction), `"skip"` (that turn is predicted from its text alone) or `"error"`.
            Either way the turn's `note` says what was done. A dialogue with no media at all is predicted from
            text by the teacher.
        media_root: folder that relative media paths are resolved against (default: the working directory).
        cache: a `MediaCache` or a folder for one, to decode each file once across calls.
        source: where the turns come from (a file name), for error messages.
        cli_hint: spell bad-media hints with the CLI's flags.

    Returns:
        One `PreparedUtterance` per turn.
    """
    check_policy(on_bad_media)
    if not turns:
        raise ValueError(f"The dialogue{f' in {source}' if source else ''} has no turns.")
    root = Path(media_root).expanduser() if media_root is not None else None
    with_media = any(has_media(turn) for turn in turns)
    loader = MediaLoader.for_processor(processor, cache, on_bad_media=on_bad_media, skip="predict", cli=cli_hint) \
        if with_media else None
    prepared: list[PreparedUtterance] = []
    context: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        if "text" not in turn:
            raise ValueError(f"Turn {index}{f' of {source}' if source else ''} has no 'text': each turn needs "
                             f"'speaker' and 'text', got keys {sorted(turn)}.")
        entry = {"speaker": str(turn.get("speaker", "") or ""), "text": str(turn["text"])}
        if turn.get("speaker_index") is not None:
            entry["speaker_index"] = int(turn["speaker_index"])
        context.append(entry)
        speaker = f" ({entry['speaker']})" if entry["speaker"] else ""
        key = f"turn {index}{speaker}"
        utterance = PreparedUtterance(context=list(context), key=f"turn {index}")
        if loader is None:
            utterance.note = "no media given: text teacher's prediction"
        else:
            row = turn_media(turn, root)
            _check_arrays(row, loader.audio.sampling_rate, key)
            row["utterance_key"] = key
            outcome = loader.load(row, where=f"of {source}" if source else "")
            utterance.audio, utterance.video, utterance.note = outcome.audio, outcome.video, outcome.note
        prepared.append(utterance)
    return prepared


# ------------------------------------------------------------------------------------------------------ model
def predict_batch(model, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The logits of every part for one collated batch (`TelMEDataCollator(..., skipped="text")`).

    Every row gets the text teacher's logits; the rows listed in `media_rows` (all, when the batch has no such
    entry but has media) also get the audio, video and fused logits, the others NaN there and the teacher's as
    `logits`. Run it under `torch.inference_mode()` with the model in eval mode.

    Returns:
        `{"logits", "text_logits", "audio_logits", "video_logits"}`, float32 CPU tensors `(rows, num_labels)`.
    """
    inputs = to_model(batch, model)
    text_features = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    rows, num_labels = text_features.shape[0], model.config.num_labels
    outputs = {name: torch.full((rows, num_labels), math.nan) for name in PART_LOGITS.values()}
    text_logits = model(text_features=text_features).logits.float().cpu()
    outputs["text_logits"] = text_logits
    outputs["logits"] = text_logits.clone()
    media = inputs.get("media_rows")
    media = torch.arange(rows) if media is None else media.cpu()
    if len(media) and ("input_values" in inputs or "pixel_values" in inputs):
        fused = model(text_features=text_features[media.to(text_features.device)],
                      input_values=inputs.get("input_values"), audio_attention_mask=inputs.get("audio_attention_mask"),
                      pixel_values=inputs.get("pixel_values"))
        for name in ("logits", "audio_logits", "video_logits"):
            outputs[name][media] = getattr(fused, name).float().cpu()
    return outputs


def predict_logits(
    model,
    processor,
    utterances: Sequence[PreparedUtterance],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, torch.Tensor]:
    """Run the model on prepared utterances, `batch_size` at a time in order, under `torch.inference_mode`.

    An utterance with audio and video gets the fused prediction (`logits`) and each part's logits; one without
    gets the text teacher's logits as `logits` and NaN for the audio and video parts.

    Returns:
        `{"logits", "text_logits", "audio_logits", "video_logits"}`, each a float32 CPU tensor
        `(len(utterances), num_labels)`.

    Example:

    ```python
    >>> utterances = prepare_dialogue(turns, processor)  # doctest: +SKIP
    >>> predict_logits(model, processor, utterances)["logits"].shape  # doctest: +SKIP
    torch.Size([2, 7])
    ```
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    collator = TelMEDataCollator(processor, MODALITIES, skipped="text")
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in PART_LOGITS.values()}
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(utterances), batch_size):
            rows = [utterance.as_row() for utterance in utterances[start : start + batch_size]]
            for name, logits in predict_batch(model, collator(rows)).items():
                chunks[name].append(logits)
    model.train(was_training)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def format_predictions(
    logits: torch.Tensor, utterances: Sequence[PreparedUtterance], id2label: Mapping[int, str]
) -> list[dict[str, Any]]:
    """One dict per utterance: `turn`, `speaker`, `text`, `label`, `score`, `scores` (label → probability, in
    label-id order), `modalities` (what the prediction used) and `note` (what was done about bad media).

    Example:

    ```python
    >>> format_predictions(torch.tensor([[2.0, 0.0]]), [PreparedUtterance([{"speaker": "A", "text": "hi"}])],
    ...                    {0: "joy", 1: "sadness"})[0]["label"]
    'joy'
    ```
    """
    probabilities = logits.float().softmax(-1)
    results = []
    for index, (utterance, row) in enumerate(zip(utterances, probabilities)):
        best = int(row.argmax())
        last = utterance.context[-1]
        results.append({
            "turn": index,
            "speaker": last.get("speaker", ""),
            "text": last["text"],
            "label": id2label[best],
            "score": float(row[best]),
            "scores": {id2label[i]: float(p) for i, p in enumerate(row.tolist())},
            "modalities": utterance.modalities,
            "note": utterance.note,
        })
    return results


def predict_dialogue(
    model,
    processor,
    turns: Sequence[Mapping[str, Any]],
    on_bad_media: str = "zeros",
    batch_size: int = DEFAULT_BATCH_SIZE,
    media_root: str | os.PathLike | None = None,
    cache: MediaCache | str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Predict the emotion of every utterance of a dialogue (each from its context up to that turn).

    Args:
        model: a `TelMEForEmotionRecognition`.
        processor: its `TelMEProcessor`.
        turns: `{"speaker", "text"}` dicts with optional `"media"`, `"audio"`, `"video"`, `"start"`, `"end"`
            (see :func:`prepare_dialogue`).
        on_bad_media: `"zeros"` (default), `"skip"` or `"error"`, for turns whose media is missing or unusable.
        batch_size: utterances per forward pass.
        media_root: folder that relative media paths are resolved against.
        cache: a `MediaCache` (or its folder) to decode each file once across calls.

    Returns:
        One dict per utterance, see :func:`format_predictions`.

    Example:

    ```python
    >>> predict_dialogue(model, processor, [{"speaker": "Ross", "text": "We were on a break!"}])  # doctest: +SKIP
    [{'turn': 0, 'speaker': 'Ross', 'text': 'We were on a break!', 'label': 'anger', 'score': 0.52, 'scores': {...},
      'modalities': ['text'], 'note': "no media given: text teacher's prediction"}]
    ```
    """
    utterances = prepare_dialogue(turns, processor, on_bad_media, media_root, cache)
    logits = predict_logits(model, processor, utterances, batch_size)["logits"]
    return format_predictions(logits, utterances, model.config.id2label)


def load_model_and_processor(name_or_path: str | os.PathLike, device: str | torch.device | None = None):
    """`AutoModel` and `AutoProcessor` of a checkpoint folder or Hub id, in eval mode on `device` (default: CUDA when
    available, else CPU). A telme_hf 0.1 checkpoint's preprocessing options (kept in its config.json) are applied to
    its processor.

    Example:

    ```python
    >>> model, processor = load_model_and_processor("telme-demo/final")  # doctest: +SKIP
    ```
    """
    from transformers import AutoModel, AutoProcessor

    from .components import apply_legacy_preprocessing

    name = os.fspath(name_or_path)
    try:
        model = AutoModel.from_pretrained(name)
        processor = AutoProcessor.from_pretrained(name)
    except OSError as error:
        where = "a folder without a TelME checkpoint" if os.path.isdir(name) else "neither a folder here nor a Hub id"
        raise OSError(f"Could not load a TelME model from {name!r} ({where}): {error}. Pass the folder a training run "
                      "wrote (its `final/`, with config.json and model.safetensors) or a Hub id.") from error
    apply_legacy_preprocessing(processor, model.config, name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), processor
