# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The `"emotion-recognition-in-conversation"` pipeline: a dialogue in, one emotion per utterance out.

Saved with a checkpoint by the pipeline's `save_pretrained` (config.json names it in `custom_pipelines`), so that
`pipeline(model=FOLDER_OR_REPO, trust_remote_code=True)` runs it without telme_hf. It also holds what every
prediction runs through: the collator, the inference loop ([`run_inference`], also used by evaluation and
frozen-feature caching) and [`predict_batch`].
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, Pipeline
from transformers.utils import logging

from .media_telme import (MEDIA_FORMS, MODALITIES, SKIPPED, BadMediaPolicy, MediaError, MediaLoader, array_frames,
                          array_waveform, python_spelling)


logger = logging.get_logger(__name__)

PIPELINE_TASK = "emotion-recognition-in-conversation"
# The original evaluates in batches of 4; with `fusion_attention_scope="batch"` the fused prediction depends on it.
DEFAULT_BATCH_SIZE = 4
# A turn whose media is missing or unusable is predicted from its text alone.
DEFAULT_PREDICT_POLICY = "skip"
# Media keys of a turn (and columns of a dialogue file): one file with both streams, or one per modality.
MEDIA_FIELDS = ("media", "audio", "video")
# Each part of the model and the output holding its logits.
PART_LOGITS = {"teacher": "text_logits", "audio": "audio_logits", "video": "video_logits", "fusion": "logits"}
SHIFT_OUTPUTS = ("shift_weights", "shift_norms")


class TelMEDataCollator:
    """Build a batch for [`TelMEForEmotionRecognition`] from dataset rows or dialogue turns.

    Media is decoded through the bad-media policy ([`MediaLoader`]); `audio`/`video` arrays are used as they are and
    `*_features` columns stand for that encoder's inputs. A row whose media `"skip"` set aside is dropped or kept
    with its text alone (`skipped`, see `SKIPPED`; `media_rows` then lists the rows with media).

    Args:
        processor: the model's `TelMEProcessor`.
        modalities: what the stage needs; `("text",)` touches no media.
        cache, on_bad_media: for the loader, unless a ready `loader` is given.
        skipped: `"drop"` (training, evaluation) or `"text"` (prediction).
    """

    passthrough_columns: tuple[str, ...] = ("text_features", "audio_features", "video_features")

    def __init__(self, processor, modalities: Sequence[str] = MODALITIES, cache: Any = None,
                 on_bad_media: BadMediaPolicy = "error", skipped: str = "drop",
                 loader: MediaLoader | None = None) -> None:
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"Unknown modalities {sorted(unknown)}; choose from {MODALITIES}.")
        if skipped not in SKIPPED:
            raise ValueError(f"`skipped` must be one of {list(SKIPPED)}, got {skipped!r}.")
        self.processor = processor
        self.modalities = tuple(modalities)
        self.skipped = skipped
        self.loader = loader or MediaLoader.for_processor(processor, cache, on_bad_media=on_bad_media, skipped=skipped)

    @property
    def bad_media_report(self):
        return self.loader.report

    def _needs(self, modality: str, row: Mapping[str, Any]) -> bool:
        return modality in self.modalities and row.get(f"{modality}_features") is None

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        conversations, waves, clips, kept, media_rows = [], [], [], [], []
        for row in rows:
            need_audio, need_video = self._needs("audio", row), self._needs("video", row)
            if self.skipped == "text" and not any(isinstance(row.get(kind), np.ndarray) or row.get(f"{kind}_path")
                                                  for kind in ("audio", "video")):
                need_audio = need_video = False  # a turn without media: its text alone
            outcome = self.loader.load(row, audio=need_audio, video=need_video) if need_audio or need_video else None
            if outcome is not None and outcome.skipped and self.skipped == "drop":
                continue
            kept.append(row)
            if self._needs("text", row):
                conversations.append(row["context"])
            if outcome is not None and not outcome.skipped:
                media_rows.append(len(kept) - 1)
                if need_audio:
                    waves.append(outcome.audio)
                if need_video:
                    clips.append(outcome.video)
            elif outcome is None and any(row.get(f"{kind}_features") is not None for kind in ("audio", "video")):
                media_rows.append(len(kept) - 1)  # its media was encoded before: its features stand for it
        if not kept:
            raise ValueError("Every row of this batch had bad media and on_bad_media='skip' dropped them all.")
        batch = BatchFeature({})
        if conversations or waves or clips:
            batch = self.processor(
                conversations=conversations or None,
                audio=waves or None,
                videos=clips or None,
                sampling_rate=self.loader.audio.sampling_rate if waves else None,
            )
        for column in self.passthrough_columns:
            values = [row.get(column) for row in kept]
            if all(value is not None for value in values):
                batch[column] = torch.as_tensor(np.asarray(values, dtype=np.float32))
        if all(row.get("label") is not None for row in kept):
            batch["labels"] = torch.tensor([int(row["label"]) for row in kept], dtype=torch.long)
        if self.skipped == "text":
            batch["media_rows"] = torch.tensor(media_rows, dtype=torch.long)
        return batch


def to_model(batch: Mapping[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """A batch on the model's device, float tensors in its dtype, ids and masks as they are."""
    parameter = next(model.parameters())
    moved = {}
    for name, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(parameter.device)
            value = value.to(parameter.dtype) if value.is_floating_point() else value
        moved[name] = value
    return moved


def run_inference(model: torch.nn.Module, batches: Iterable[Mapping[str, Any]],
                  step: Callable[[torch.nn.Module, Mapping[str, Any]], Mapping[str, torch.Tensor]] | None = None,
                  ) -> dict[str, torch.Tensor]:
    """The inference loop: `step(model, batch)` (default [`predict_batch`]) on every batch, e.g. of a `DataLoader`
    with a [`TelMEDataCollator`], in eval mode under `torch.inference_mode`; the model's mode is restored after.

    Returns:
        `{name: tensor}`, each output concatenated over the batches.

    Example:

    ```python
    >>> loader = torch.utils.data.DataLoader(rows, batch_size=4, collate_fn=TelMEDataCollator(processor))
    >>> run_inference(model, loader)["logits"].shape  # doctest: +SKIP
    torch.Size([10, 7])
    ```
    """
    step = step or predict_batch
    chunks: dict[str, list[torch.Tensor]] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                for name, value in step(model, batch).items():
                    chunks.setdefault(name, []).append(value)
    finally:
        model.train(was_training)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def predict_batch(model, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The logits of every part for one collated batch.

    Every row gets the teacher's logits; the rows in `media_rows` (all rows, when the batch has media but no such
    entry) also get the audio, video and fused logits and the fusion's shift, the others NaN there and the teacher's
    as `logits`.

    Returns:
        `{"logits", "text_logits", "audio_logits", "video_logits"}`, float32 CPU tensors `(rows, num_labels)`, and
        `{"shift_weights", "shift_norms"}` (λ and ‖λH‖ / ‖F_T‖, see `TelMEOutput`), `(rows,)`.
    """
    inputs = to_model(batch, model)
    text_features = inputs.get("text_features")
    if text_features is None:
        text_features = model.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
    rows, num_labels = text_features.shape[0], model.config.num_labels
    outputs = {name: torch.full((rows, num_labels), math.nan) for name in PART_LOGITS.values()}
    outputs.update({name: torch.full((rows,), math.nan) for name in SHIFT_OUTPUTS})
    text_logits = model(text_features=text_features).logits.float().cpu()
    outputs["text_logits"] = text_logits
    outputs["logits"] = text_logits.clone()
    media = inputs.get("media_rows")
    media = torch.arange(rows) if media is None else media.cpu()
    media_inputs = ("input_values", "pixel_values", "audio_features", "video_features")
    if len(media) and any(name in inputs for name in media_inputs):
        on_device = media.to(text_features.device)
        # Decoded media comes for the media rows only; precomputed features come for every row.
        features = {name: inputs[name][on_device] for name in ("audio_features", "video_features") if name in inputs}
        fused = model(text_features=text_features[on_device],
                      input_values=inputs.get("input_values"), audio_attention_mask=inputs.get("audio_attention_mask"),
                      pixel_values=inputs.get("pixel_values"), **features)
        for name in ("logits", "audio_logits", "video_logits", *SHIFT_OUTPUTS):
            outputs[name][media] = getattr(fused, name).float().cpu()
    return outputs


@dataclass
class PreparedUtterance:
    """One utterance ready for the model: the dialogue's turns up to it (`context`), its decoded `audio` and `video`
    (`None`: predicted from text), the streams really used (`modalities`), what was done about its media (`note`) and
    a `key` for messages."""

    context: list[dict[str, Any]]
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    note: str = ""
    key: str = ""
    modalities: list[str] = field(default_factory=lambda: ["text"])

    def as_row(self) -> dict[str, Any]:
        """The collator's row: the context and the decoded arrays (nothing is decoded again)."""
        return {"context": self.context, "audio": self.audio, "video": self.video, "utterance_key": self.key}


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def turn_media(turn: Mapping[str, Any], media_root: Path | None, loader: MediaLoader, where: str) -> dict[str, Any]:
    """A turn's media as the fields `MediaLoader` reads: `audio_path`/`video_path` (a path, a file's bytes or `""`:
    not given), `audio`/`video` arrays (or the `MediaError` of an array its policy decides on) and `start`/`end`."""
    def resolve(kind: str, value: Any) -> Any:
        if isinstance(value, Mapping):  # `{"array"|"raw", "sampling_rate"}`, or `{"path", "bytes"}` as `datasets` has
            array = value.get("raw", value.get("array"))
            if kind == "audio" and array is not None:
                if value.get("sampling_rate") is None:
                    raise ValueError(f"The audio dict of {where} has no 'sampling_rate': add it (the array is "
                                     f"resampled to {loader.audio.sampling_rate} Hz).")
                return array_waveform(array, value["sampling_rate"], loader.audio.sampling_rate,
                                      loader.max_media_seconds, where)
            value = value.get("bytes") if value.get("bytes") is not None else value.get("path")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, (str, os.PathLike)) and _given(value):
            text = os.fspath(value)
            if "://" in text:
                raise ValueError(f"The {kind} of {where} is a URL ({text}); URLs are not downloaded: download the "
                                 "file and pass its path (or its bytes, or the decoded arrays).")
            path = Path(text).expanduser()
            return os.fspath(path if path.is_absolute() or media_root is None else media_root / path)
        if kind == "audio" and (isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "detach")):
            rate = loader.audio.sampling_rate
            return array_waveform(value, rate, rate, loader.max_media_seconds, where)
        if kind == "video" and (isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "detach")):
            return array_frames(value, loader.video.num_frames, loader.video.sampling, where)
        raise TypeError(f"The {kind} of {where} is of type {type(value).__name__}; give {MEDIA_FORMS[kind]}.")

    row: dict[str, Any] = {}
    for kind in ("audio", "video"):
        field_name = kind if _given(turn.get(kind)) else "media"
        value = turn.get(field_name)
        try:
            value = resolve(field_name, value) if _given(value) else ""
        except MediaError as error:  # an array its policy decides on (too long, not finite)
            value = error
        row[kind if isinstance(value, (np.ndarray, MediaError)) else f"{kind}_path"] = value
    for bound in ("start", "end"):
        if _given(turn.get(bound)):
            try:
                row[bound] = float(turn[bound])
            except (TypeError, ValueError):
                raise ValueError(f"`{bound}` of {where} must be a number of seconds, got {turn[bound]!r}.") from None
        else:
            row[bound] = math.nan
    return row


def prepare_dialogue(turns: Sequence[Mapping[str, Any]], processor, on_bad_media: str = DEFAULT_PREDICT_POLICY,
                     media_root: str | os.PathLike | None = None, cache: Any = None, source: str | None = None,
                     spelling: Callable[[str], str] = python_spelling) -> list[PreparedUtterance]:
    """Decode a dialogue's media and build each utterance's context, ready for [`predict_logits`].

    Args:
        turns: `{"speaker", "text"}` dicts in order, with optional media (see
            [`EmotionRecognitionInConversationPipeline`]).
        processor: the model's `TelMEProcessor`.
        on_bad_media: `"skip"` (its text alone), `"zeros"` or `"error"`, for a turn whose media is missing or
            unusable. A stream not given is zeros when the other is given, and a turn without media is text alone.
        media_root: folder that relative media paths are resolved against.
        cache: a media cache for the loader, to decode each file once across calls.
        source, spelling: the turns' file and how a policy is written, for error messages.
    """
    if isinstance(turns, (str, bytes)) or not isinstance(turns, Sequence):
        raise ValueError(f"A dialogue is a list of turns, got {type(turns).__name__}.")
    if not turns:
        raise ValueError(f"The dialogue{f' in {source}' if source else ''} has no turns.")
    root = Path(media_root).expanduser() if media_root is not None else None
    loaders: dict[str, MediaLoader] = {}  # one per policy in use: the call's, and any turn's own

    def loader_for(policy: str) -> MediaLoader:
        if policy not in loaders:
            loaders[policy] = MediaLoader.for_processor(processor, cache, on_bad_media=policy, skipped="text",
                                                        spelling=spelling)
        return loaders[policy]

    loader_for(on_bad_media)  # checks the policy even for a dialogue without media
    prepared: list[PreparedUtterance] = []
    context: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        where = f"Turn {index}{f' of {source}' if source else ''}"
        if not isinstance(turn, Mapping):
            raise ValueError(f"{where} is a {type(turn).__name__}; each turn is a dict like "
                             "{'speaker': 'Ross', 'text': 'Hi.'}.")
        if "text" not in turn:
            raise ValueError(f"{where} has no 'text': each turn needs 'speaker' and 'text', got keys {sorted(turn)}.")
        text, speaker = turn["text"], turn.get("speaker", "")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'text' must be a string, got {type(text).__name__} {text!r}.")
        if not isinstance(speaker, str):
            raise ValueError(f"{where}: 'speaker' must be a string, got {type(speaker).__name__} {speaker!r}.")
        entry = {"speaker": speaker, "text": text}
        if turn.get("speaker_index") is not None:
            entry["speaker_index"] = int(turn["speaker_index"])
        context.append(entry)
        key = f"turn {index}{f' ({speaker})' if speaker else ''}"
        utterance = PreparedUtterance(context=list(context), key=f"turn {index}")
        row = turn_media(turn, root, loaders[on_bad_media], f"{key}{f' of {source}' if source else ''}")
        given = [kind for kind in ("audio", "video") if kind in row or row.get(f"{kind}_path")]
        utterance.note = "no media given: text teacher's prediction"
        if given:  # a stream not given is zeros (as the fusion was trained), one that fails goes by the policy
            loader = loader_for(turn.get("on_bad_media") or on_bad_media)
            outcome = loader.load({**row, "utterance_key": key}, audio="audio" in given, video="video" in given,
                                  where=f"of {source}" if source else "")
            notes = [outcome.note] if outcome.note else []
            if not outcome.skipped:
                failed = {part for entry in outcome.entries for part in entry.modality.split("+")}
                utterance.modalities = ["text", *(kind for kind in given if kind not in failed)]
                arrays = {"audio": outcome.audio, "video": outcome.video}
                for kind in sorted(set(arrays) - set(given)):
                    arrays[kind] = loader.placeholder(kind)
                    notes.append(f"{kind} not given: used zeros")
                utterance.audio, utterance.video = arrays["audio"], arrays["video"]
            utterance.note = "; ".join(notes)
        prepared.append(utterance)
    speakers = {turn["speaker"] for turn in context if turn.get("speaker_index") is None}
    if len(speakers) > processor.num_speaker_tokens and not processor.reference_tokenization:
        logger.warning("This dialogue%s has %d speakers but the model has %d speaker tokens: the extra speakers share "
                       "<s%d>.", f" ({source})" if source else "", len(speakers), processor.num_speaker_tokens,
                       processor.num_speaker_tokens)
    return prepared


def predict_logits(
    model, processor, utterances: Sequence[PreparedUtterance], batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, torch.Tensor]:
    """Run the model on prepared utterances, `batch_size` at a time in order ([`run_inference`]).

    Returns:
        The logits of every part and the fusion's shift, one row per utterance (see [`predict_batch`]).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    collator = TelMEDataCollator(processor, MODALITIES, skipped="text")
    rows = [utterance.as_row() for utterance in utterances]
    return run_inference(model, torch.utils.data.DataLoader(rows, batch_size=batch_size, collate_fn=collator))


def format_predictions(
    outputs: Mapping[str, torch.Tensor], utterances: Sequence[PreparedUtterance], id2label: Mapping[int, str],
    top_k: int | None = None
) -> list[dict[str, Any]]:
    """One dict per utterance from [`predict_logits`]' `outputs`: `turn`, `speaker`, `text`, `label`, `score`,
    `scores` (label → probability in id order, or the `top_k` most probable in decreasing order), `modalities` (the
    streams used) and `note`; and why: the text teacher's own `text_label`, `text_score`, `text_scores`, and the
    `shift` audio/video made, `{"lambda", "relative_norm", "changed_label"}` (`None` for a prediction from text)."""
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")

    def scored(row: torch.Tensor) -> tuple[str, float, dict[str, float]]:
        scores = {id2label[i]: float(p) for i, p in enumerate(row.tolist())}
        if top_k is not None:
            scores = dict(sorted(scores.items(), key=lambda item: -item[1])[:top_k])
        return id2label[int(row.argmax())], float(row.max()), scores

    nan = torch.full((len(utterances),), math.nan)
    lambdas, norms = outputs.get("shift_weights", nan), outputs.get("shift_norms", nan)
    results = []
    for index, (utterance, fused, text, weight, norm) in enumerate(zip(
            utterances, outputs["logits"].float().softmax(-1), outputs["text_logits"].float().softmax(-1), lambdas,
            norms)):
        (label, score, scores), (text_label, text_score, text_scores) = scored(fused), scored(text)
        last = utterance.context[-1]
        shift = None if math.isnan(weight) else {"lambda": float(weight), "relative_norm": float(norm),
                                                  "changed_label": label != text_label}
        results.append({"turn": index, "speaker": last.get("speaker", ""), "text": last["text"], "label": label,
                        "score": score, "scores": scores, "modalities": utterance.modalities, "note": utterance.note,
                        "text_label": text_label, "text_score": text_score, "text_scores": text_scores,
                        "shift": shift})
    return results


def predict_dialogue(model, processor, turns: Sequence[Mapping[str, Any]], on_bad_media: str = DEFAULT_PREDICT_POLICY,
                     batch_size: int = DEFAULT_BATCH_SIZE, media_root: str | os.PathLike | None = None,
                     cache: Any = None, top_k: int | None = None) -> list[dict[str, Any]]:
    """Predict the emotion of every utterance of a dialogue, each from its context up to that turn: one dict per
    utterance (see [`format_predictions`]). The arguments are [`prepare_dialogue`]'s and [`predict_logits`]'s.

    Example:

    ```python
    >>> turns = [{"speaker": "Ross", "text": "We were on a break!"}]
    >>> predict_dialogue(model, processor, turns)[0]["label"]  # doctest: +SKIP
    'anger'
    ```
    """
    utterances = prepare_dialogue(turns, processor, on_bad_media, media_root, cache)
    outputs = predict_logits(model, processor, utterances, batch_size)
    return format_predictions(outputs, utterances, model.config.id2label, top_k)


@dataclass
class _Dialogue:
    # Makes `Pipeline.__call__` take a dialogue as one input, not as a list of inputs.
    turns: Sequence[Mapping[str, Any]]


def _as_dialogue(value: Any) -> _Dialogue:
    turns = value.get("turns") if isinstance(value, Mapping) else value  # a dataset row `{"turns": [...]}`
    if isinstance(turns, (list, tuple)) and turns and all(isinstance(turn, Mapping) for turn in turns):
        return _Dialogue(turns)
    raise TypeError(
        "Pass a dialogue as a non-empty list of turns like {'speaker': 'Ross', 'text': 'Hi.'} (optionally with "
        "'media' or 'audio'/'video'), or a dataset row {'turns': [...]}; several as a list, a generator or a dataset "
        f"of such; got {type(value).__name__}.")


class EmotionRecognitionInConversationPipeline(Pipeline):
    r"""
    Emotion recognition in conversation with TelME: the emotion of every utterance of a dialogue, each predicted from
    the dialogue up to that turn.

    A turn is `{"speaker": str, "text": str}`, optionally with media: `"media"` (one file with both streams, like a
    MELD clip), or `"audio"` and/or `"video"`; `"start"`/`"end"` (seconds) cut a window out of a longer file,
    `"on_bad_media"` sets the turn's own policy. Each stream may be a file path, a file's bytes (decoded in memory),
    `{"path"}` or `{"bytes"}` (a `datasets` Audio/Video column with `decode=False`, no torchcodec needed), or arrays:
    - audio: `{"array"|"raw", "sampling_rate"}` (resampled), or an array, tensor or list of floats at the model's
      rate; real numbers, mono `(N,)` or stereo `(2, N)`/`(N, 2)` (channels averaged, as decoded files). Longer than
      the processor's `max_media_seconds`: bad media ("too long"), refused before any copy or resampling.
    - video: `(T, H, W, 3)` RGB frames as an array or tensor, or a list of `(H, W, 3)` arrays or PIL images, uint8
      or float in [0, 1], of any size (resized as a file's); the model's frames are picked before any conversion.
    Non-finite samples or pixels are bad media ("unusable"); anything else is a one-line `ValueError`/`TypeError`
    naming the turn and these forms. A turn with both streams gets the fused prediction, one with one stream the
    fused prediction with zeros for the other (as the fusion was trained), one without media the text teacher's;
    missing or unusable media goes by `on_bad_media`. Media files need PyAV (`pip install av`).

    Call arguments (also accepted by `pipeline(...)`):
        on_bad_media (`str`, *optional*, defaults to `"skip"`): for a turn whose media is missing or unusable:
            `"skip"` (its text alone), `"zeros"` (zeros in its place) or `"error"`.
        media_root (`str`, *optional*): folder that relative media paths are resolved against.
        batch_size (`int`, *optional*, defaults to 4): utterances per forward pass. With
            `fusion_attention_scope="batch"` (converted original checkpoints) fused predictions depend on it.
        top_k (`int`, *optional*): keep only the `top_k` most probable labels in `scores` (and `text_scores`).

    With telme_hf installed, `{"recording": FILE, "transcript": FILE}` (SRT, WebVTT or CSV) or `{"recording": FILE,
    "asr_model": MODEL}` predicts each cue of one recording (`telme_hf.inference.recordings.predict_recording`).

    Returns:
        For one dialogue (a list of turns, or a row `{"turns": [...]}`), one dict per utterance: `label`, `score`,
        `scores`, `turn`, `speaker`, `text`, `modalities` (the streams used), `note`, and why the label came out:
        the text teacher's own `text_label`, `text_score`, `text_scores`, and `shift` (`None` from text alone):
        `{"lambda": λ, "relative_norm": ‖λH‖ / ‖F_T‖, "changed_label": bool}`. For a list of dialogues, a list of
        such lists; for a generator, `datasets.Dataset` or `KeyDataset` of them, an iterator of such lists.

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
        # `batch_size` counts utterances of a dialogue: `Pipeline`'s own batching pads whole inputs as tokens.
        self.utterance_batch_size = kwargs.pop("batch_size", None) or DEFAULT_BATCH_SIZE
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "The emotion-recognition-in-conversation pipeline needs the model's TelMEProcessor: pass "
                "`processor=` or a checkpoint folder/Hub id that holds processor_config.json."
            )

    def _sanitize_parameters(self, on_bad_media: str | None = None, media_root: str | os.PathLike | None = None,
                             utterance_batch_size: int | None = None, top_k: int | None = None,
                             **kwargs: Any) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"Unknown argument(s) {sorted(kwargs)}; the pipeline takes on_bad_media, media_root, "
                            "batch_size and top_k.")
        preprocess = {"on_bad_media": on_bad_media, "media_root": media_root}
        return ({name: value for name, value in preprocess.items() if value is not None},
                {} if utterance_batch_size is None else {"batch_size": utterance_batch_size},
                {} if top_k is None else {"top_k": top_k})

    def __call__(self, dialogues: Any, **kwargs: Any) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Predict one dialogue (a list of turn dicts, or a row `{"turns": [...]}`), a list of them (a list of
        results), or a generator, `datasets.Dataset` or `KeyDataset` of them (an iterator of results)."""
        if isinstance(dialogues, Mapping) and "recording" in dialogues:
            return self._predict_recording(dialogues, **kwargs)
        if "batch_size" in kwargs:
            kwargs["utterance_batch_size"] = kwargs.pop("batch_size")
        if isinstance(dialogues, Mapping) or (isinstance(dialogues, (list, tuple)) and dialogues and all(
                isinstance(turn, Mapping) and "turns" not in turn for turn in dialogues)):
            return super().__call__(_as_dialogue(dialogues), **kwargs)
        if isinstance(dialogues, (list, tuple)) and dialogues:
            return super().__call__([_as_dialogue(dialogue) for dialogue in dialogues], **kwargs)
        if not isinstance(dialogues, (str, bytes, list, tuple)) and (isinstance(dialogues, Iterable) or hasattr(
                dialogues, "__getitem__")):  # a generator, a `datasets.Dataset`, a `KeyDataset` (a torch Dataset)
            items = dialogues if isinstance(dialogues, Iterable) else map(dialogues.__getitem__, range(len(dialogues)))
            return super().__call__((_as_dialogue(dialogue) for dialogue in items), **kwargs)
        return _as_dialogue(dialogues)  # raises, saying what to pass

    def _predict_recording(self, call: Mapping[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
        # Transcripts and cue-by-cue decoding belong to the telme_hf package, not to the code a checkpoint carries.
        unknown = set(call) - {"recording", "transcript", "asr_model"}
        if unknown:
            raise TypeError(f"Unknown key(s) {sorted(unknown)}: a recording is {{'recording': FILE, 'transcript': "
                            "FILE}} or {'recording': FILE, 'asr_model': MODEL}.")
        try:
            recordings = importlib.import_module("telme_hf.inference.recordings")
        except ImportError:
            raise ImportError("A {'recording', 'transcript'} input needs the telme_hf package, which reads "
                              "transcripts and cuts the recording cue by cue.") from None
        return recordings.predict_recording(self, **call, **kwargs)

    def get_inference_context(self):
        return torch.inference_mode

    def preprocess(self, dialogue: _Dialogue, on_bad_media: str = DEFAULT_PREDICT_POLICY,
                   media_root=None) -> dict[str, Any]:
        return {"utterances": prepare_dialogue(dialogue.turns, self.processor, on_bad_media, media_root)}

    def _forward(self, model_inputs: dict[str, Any], batch_size: int | None = None) -> dict[str, Any]:
        utterances = model_inputs["utterances"]
        outputs = predict_logits(self.model, self.processor, utterances, batch_size or self.utterance_batch_size)
        return {"utterances": utterances, "outputs": outputs}

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save the model (config.json names this pipeline; this file is copied beside it) and the processor."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory, **kwargs)

    def postprocess(self, model_outputs: dict[str, Any], top_k: int | None = None) -> list[dict[str, Any]]:
        return format_predictions(model_outputs["outputs"], model_outputs["utterances"], self.model.config.id2label,
                                  top_k)


__all__ = ["EmotionRecognitionInConversationPipeline", "TelMEDataCollator", "predict_dialogue", "run_inference"]
