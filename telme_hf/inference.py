# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Use a trained TelME: predict the emotion of every utterance of a dialogue, or evaluate a corpus split.

One code path serves the notebook functions below, the `telme predict` / `telme evaluate` commands and the
`"emotion-recognition-in-conversation"` pipeline:

1. :func:`prepare_dialogue` (or the evaluation loop) turns each utterance into a :class:`PreparedUtterance`: its
   dialogue context and its decoded audio and video, after the bad-media policy;
2. :func:`predict_logits` runs the model on them in batches, under `torch.inference_mode`: an utterance with media
   gets the fused prediction, one without gets the text teacher's;
3. :func:`format_predictions` turns logits into one `{"label", "score", "scores", ...}` dict per utterance.

Example:

```python
>>> import telme_hf
>>> from transformers import AutoModel, AutoProcessor
>>> from telme_hf.inference import predict_dialogue
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

import csv
import json
import logging
import math
import os
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.cache import MediaCache, MediaLoader, placeholder_media
from .modeling.processing_telme import PIXEL_STATISTICS
from .data.collator import decode_options_from_config
from .data.dialogues import read_csv_rows
from .data.media import (
    _BAD_MEDIA_HINT,
    BAD_MEDIA_POLICIES,
    MODALITIES,
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    MissingMediaError,
    NoStreamError,
)


logger = logging.getLogger("telme_hf.inference")

__all__ = [
    "DATASETS",
    "DEFAULT_BATCH_SIZE",
    "PreparedUtterance",
    "evaluate_split",
    "format_predictions",
    "load_evaluation_split",
    "load_model_and_processor",
    "predict_command",
    "predict_dialogue",
    "predict_logits",
    "prepare_dialogue",
    "read_dialogue",
    "render_predictions",
    "write_evaluation",
    "write_example_dialogue",
]

# The original evaluates with batches of 4 in CSV order; with `fusion_attention_scope="batch"` (converted original
# checkpoints) the fused prediction depends on the batch, so 4 is also the default here.
DEFAULT_BATCH_SIZE = 4
DATASETS = ("meld", "iemocap", "synthetic")
# Media keys of a turn (and columns of a dialogue file, case-insensitive); `utterance` is accepted for `text`, as
# in MELD's CSVs.
MEDIA_FIELDS = ("media", "audio", "video")
_COLUMN_ALIASES = {"utterance": "text"}
_PART_NAMES = {"teacher": "text_logits", "audio": "audio_logits", "video": "video_logits", "fusion": "logits"}


# ----------------------------------------------------------------------------------------------------- inputs
@dataclass
class PreparedUtterance:
    """One utterance ready for the model.

    Attributes:
        context: the dialogue's turns up to and including this one, as `{"speaker", "text"}` dicts (plus
            `"speaker_index"` where the data loader computed it).
        audio: mono float32 waveform at the model's rate, or `None` (predict from text).
        video: `uint8 (num_frames, height, width, 3)` frames, or `None` (predict from text).
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


@dataclass
class _MediaOutcome:
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    skipped: bool = False


def _problem(error: MediaError) -> str:
    if isinstance(error, MissingMediaError):
        return "missing"
    if isinstance(error, CorruptMediaError):
        return "unreadable"
    if isinstance(error, NoStreamError):
        return "absent from the file"
    if isinstance(error, EmptyMediaError):
        return "empty"
    return error.reason


def _what_went_wrong(error: MediaError) -> str:
    # The decoder's reasons end with advice for dataset loading; here the advice is the policy hint.
    if isinstance(error, MissingMediaError):
        return "file not found"
    if isinstance(error, NoStreamError):
        return error.reason.split(". ")[0]
    return error.reason.replace(_BAD_MEDIA_HINT, "").strip().rstrip(".")


def _policy_hint(cli_hint: bool) -> str:
    if cli_hint:
        return "--on-bad-media zeros (zeros in its place) or --on-bad-media skip (that utterance from its text alone)"
    return "on_bad_media='zeros' (zeros in its place) or on_bad_media='skip' (that utterance from its text alone)"


def _load_media(
    loader: MediaLoader,
    row: Mapping[str, Any],
    on_bad_media: str,
    where: str,
    cli_hint: bool = False,
    skip_action: str = "predicted from text only",
) -> _MediaOutcome:
    """Decode a row's `audio_path`/`video_path` (or take `audio`/`video` arrays) and apply the bad-media policy.

    `loader` must use `on_bad_media="error"`: the policy is applied here, per modality, so that a missing video
    next to a good audio file keeps the audio, and the note says which modality was replaced.
    """
    outcome = _MediaOutcome()
    arrays = {kind: row.get(kind) for kind in ("audio", "video") if isinstance(row.get(kind), np.ndarray)}
    paths = {kind: str(row.get(f"{kind}_path") or "") for kind in ("audio", "video") if kind not in arrays}
    # One decode for both streams when they come from the same file (a MELD clip); else one per file.
    groups: list[tuple[str, ...]] = []
    if paths.get("audio") and paths.get("audio") == paths.get("video"):
        groups.append(("audio", "video"))
    else:
        groups += [(kind,) for kind in paths]
    decoded: dict[str, np.ndarray] = dict(arrays)
    failures: list[tuple[tuple[str, ...], str, str]] = []  # (modalities, problem, file)
    for kinds in groups:
        path = paths[kinds[0]]
        if not path:
            failures.append((kinds, "not given", ""))
            continue
        try:
            audio, video = loader.load(row, audio="audio" in kinds, video="video" in kinds)
        except MediaError as error:
            original = error.__cause__ if isinstance(error.__cause__, MediaError) else error
            if on_bad_media == "error":
                raise type(original)(
                    original.path,
                    f"{_what_went_wrong(original)} ({'+'.join(kinds)} of {where}). Fix the file or its path, or "
                    f"choose a bad-media policy: {_policy_hint(cli_hint)}.",
                ) from error
            failures.append((kinds, _problem(original), os.path.basename(original.path)))
            continue
        decoded.update({kind: array for kind, array in (("audio", audio), ("video", video)) if kind in kinds})
    if not failures:
        outcome.audio, outcome.video = decoded.get("audio"), decoded.get("video")
        return outcome
    if on_bad_media == "error":  # only "not given" failures reach here
        kinds = "+".join(kind for failed, _, _ in failures for kind in failed)
        raise ValueError(f"No {kinds} given for {where}. Add its file, or choose a bad-media policy: "
                         f"{_policy_hint(cli_hint)}.")
    action = "used zeros" if on_bad_media == "zeros" else skip_action
    for kinds, problem, name in failures:
        outcome.notes.append(f"{'+'.join(kinds)} {problem}{f' ({name})' if name else ''}: {action}")
        logger.warning("%s: %s", where, outcome.notes[-1])
    if on_bad_media == "skip":
        outcome.skipped = True
        return outcome
    zero_audio, zero_video = placeholder_media(loader.audio, loader.video, loader.pixel_mean)
    outcome.audio = decoded.get("audio", zero_audio)
    outcome.video = decoded.get("video", zero_video)
    return outcome


def _media_loader(config, cache: MediaCache | str | os.PathLike | None = None) -> MediaLoader:
    audio_options, video_options = decode_options_from_config(config)
    if cache is not None and not isinstance(cache, MediaCache):
        cache = MediaCache(cache)
    return MediaLoader(audio_options, video_options, cache=cache, on_bad_media="error",
                       max_media_seconds=getattr(config, "max_media_seconds", None),
                       pixel_mean=PIXEL_STATISTICS[config.video_pixel_statistics][0])


def _check_policy(on_bad_media: str) -> None:
    if on_bad_media not in BAD_MEDIA_POLICIES:
        raise ValueError(f"on_bad_media must be one of {BAD_MEDIA_POLICIES}, got {on_bad_media!r}.")


def _given(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (value is not None and str(value).strip() != "")


def _turn_media(turn: Mapping[str, Any], media_root: Path | None) -> dict[str, Any]:
    """A turn's media as the `audio_path`/`video_path`/`audio`/`video`/`start`/`end` fields `_load_media` reads."""
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


def _has_media(turn: Mapping[str, Any]) -> bool:
    return any(_given(turn.get(name)) for name in MEDIA_FIELDS)


def _check_arrays(row: Mapping[str, Any], config, where: str) -> None:
    audio, video = row.get("audio"), row.get("video")
    if isinstance(audio, np.ndarray) and audio.ndim != 1:
        raise ValueError(f"The audio of {where} must be a 1-D waveform at {config.audio_sampling_rate} Hz, "
                         f"got shape {audio.shape}.")
    if isinstance(video, np.ndarray) and (video.ndim != 4 or video.shape[0] != config.video_num_frames
                                          or video.shape[-1] != 3):
        raise ValueError(f"The video of {where} must be (num_frames={config.video_num_frames}, height, width, 3) "
                         f"uint8 RGB frames, got shape {video.shape}.")


def prepare_dialogue(
    turns: Sequence[Mapping[str, Any]],
    config,
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
        config: the model's `TelMEConfig` (decode options: sampling rate, frames, reference behaviour).
        on_bad_media: for a turn whose media is missing or unusable when the dialogue has media: `"zeros"` (zeros
            in its place, fused prediction), `"skip"` (that turn is predicted from its text alone) or `"error"`.
            Either way the turn's `note` says what was done. A dialogue with no media at all is predicted from
            text by the teacher.
        media_root: folder that relative media paths are resolved against (default: the working directory).
        cache: a `MediaCache` or a folder for one, to decode each file once across calls.
        source: where the turns come from (a file name), for error messages.

    Returns:
        One `PreparedUtterance` per turn.
    """
    _check_policy(on_bad_media)
    if not turns:
        raise ValueError(f"The dialogue{f' in {source}' if source else ''} has no turns.")
    root = Path(media_root).expanduser() if media_root is not None else None
    with_media = any(_has_media(turn) for turn in turns)
    loader = _media_loader(config, cache) if with_media else None
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
        where = f"turn {index}{speaker}{f' of {source}' if source else ''}"
        utterance = PreparedUtterance(context=list(context), key=f"turn {index}")
        if not with_media:
            utterance.note = "no media given: text teacher's prediction"
        else:
            row = _turn_media(turn, root)
            _check_arrays(row, config, where)
            row.update(utterance_key=where, row_index=index)
            outcome = _load_media(loader, row, on_bad_media, where, cli_hint=cli_hint)
            utterance.audio, utterance.video = outcome.audio, outcome.video
            utterance.note = "; ".join(outcome.notes)
        prepared.append(utterance)
    return prepared


# ------------------------------------------------------------------------------------------------------ model
def _to_model(batch: Mapping[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    moved = {}
    for name, tensor in batch.items():
        tensor = tensor.to(model.device)
        moved[name] = tensor.to(model.dtype) if tensor.is_floating_point() else tensor
    return moved


def predict_logits(
    model,
    processor,
    utterances: Sequence[PreparedUtterance],
    batch_size: int = DEFAULT_BATCH_SIZE,
    sampling_rate: int | None = None,
) -> dict[str, torch.Tensor]:
    """Run the model on prepared utterances, `batch_size` at a time in order, under `torch.inference_mode`.

    An utterance with audio and video gets the fused prediction (`logits`) and each part's logits; one without
    gets the text teacher's logits as `logits` and NaN for the audio and video parts.

    Returns:
        `{"logits", "text_logits", "audio_logits", "video_logits"}`, each a float32 CPU tensor
        `(len(utterances), num_labels)`.

    Example:

    ```python
    >>> utterances = prepare_dialogue(turns, model.config)  # doctest: +SKIP
    >>> predict_logits(model, processor, utterances)["logits"].shape  # doctest: +SKIP
    torch.Size([2, 7])
    ```
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    sampling_rate = sampling_rate or model.config.audio_sampling_rate
    num_labels = model.config.num_labels
    outputs = {name: torch.full((len(utterances), num_labels), math.nan) for name in _PART_NAMES.values()}
    outputs["text_logits"] = torch.empty((len(utterances), num_labels))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(utterances), batch_size):
            chunk = list(utterances[start : start + batch_size])
            text = _to_model(processor(conversations=[u.context for u in chunk]), model)
            text_features = model.get_text_features(text["input_ids"], text["attention_mask"])
            rows = torch.arange(start, start + len(chunk))
            text_logits = model(text_features=text_features).logits.float().cpu()
            outputs["text_logits"][rows] = text_logits
            outputs["logits"][rows] = text_logits
            fused = [i for i, u in enumerate(chunk) if u.audio is not None and u.video is not None]
            if fused:
                media = processor(audio=[chunk[i].audio for i in fused], videos=[chunk[i].video for i in fused],
                                  sampling_rate=sampling_rate)
                output = model(text_features=text_features[fused], **_to_model(media, model))
                for name in ("logits", "audio_logits", "video_logits"):
                    outputs[name][rows[fused]] = getattr(output, name).float().cpu()
    model.train(was_training)
    return outputs


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
    utterances = prepare_dialogue(turns, model.config, on_bad_media, media_root, cache)
    logits = predict_logits(model, processor, utterances, batch_size)["logits"]
    return format_predictions(logits, utterances, model.config.id2label)


def load_model_and_processor(name_or_path: str | os.PathLike, device: str | torch.device | None = None):
    """`AutoModel` and `AutoProcessor` of a checkpoint folder or Hub id, in eval mode on `device` (default: CUDA when
    available, else CPU).

    Example:

    ```python
    >>> model, processor = load_model_and_processor("telme-demo/final")  # doctest: +SKIP
    ```
    """
    from transformers import AutoModel, AutoProcessor

    name = os.fspath(name_or_path)
    try:
        model = AutoModel.from_pretrained(name)
        processor = AutoProcessor.from_pretrained(name)
    except OSError as error:
        where = "a folder without a TelME checkpoint" if os.path.isdir(name) else "neither a folder here nor a Hub id"
        raise OSError(f"Could not load a TelME model from {name!r} ({where}): {error}. Pass the folder a training run "
                      "wrote (its `final/`, with config.json and model.safetensors) or a Hub id.") from error
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), processor


# ----------------------------------------------------------------------------------------------- dialogue files
def read_dialogue(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a dialogue file (CSV or JSON) into turns for :func:`predict_dialogue`.

    CSV: a header with `speaker` and `text` (or `utterance`), optionally `media` (one file with both streams),
    `audio`, `video`, `start`, `end` (seconds); one row per turn, in order; column names are case-insensitive.
    JSON: a list of turn objects with the same keys, or `{"turns": [...]}`. Empty media cells mean "no media for
    this turn". Relative media paths are resolved against the file's folder.

    Example:

    ```python
    >>> read_dialogue("telme-demo/example_dialogue.csv")[0]  # doctest: +SKIP
    {'speaker': 'Tag', 'text': 'So, that is ridiculous, Chandler.', 'media': '/.../dia0_utt0.mp4'}
    ```
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Dialogue file {path} not found.")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}). Write a list of turns, e.g. "
                             '[{"speaker": "Ross", "text": "Hi.", "media": "dia0_utt0.mp4"}].') from None
        if isinstance(data, Mapping):
            data = data.get("turns")
        if not isinstance(data, list) or not all(isinstance(turn, Mapping) for turn in data):
            raise ValueError(f"{path}: expected a JSON list of turn objects (or {{\"turns\": [...]}}), each with "
                             "'speaker' and 'text'.")
        rows = [({str(k).strip().lower(): v for k, v in turn.items()}, f"turn {i}") for i, turn in enumerate(data)]
    elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
        rows = [({name.lower(): value for name, value in row.values.items()}, f"line {row.line}")
                for row in read_csv_rows(path, ())]
    else:
        raise ValueError(f"{path}: unknown dialogue format {path.suffix!r}; use a .csv or .json file.")
    turns = []
    for values, where in rows:
        values = {_COLUMN_ALIASES.get(name, name): value for name, value in values.items()}
        missing = [name for name in ("speaker", "text") if name not in values]
        if missing:
            raise ValueError(f"{path}, {where}: no {' or '.join(missing)} column. Each turn needs 'speaker' and "
                             "'text', and optionally 'media' (or 'audio'/'video'), 'start', 'end'.")
        turn = {"speaker": str(values["speaker"] or ""), "text": str(values["text"] or "")}
        for name in (*MEDIA_FIELDS, "start", "end"):
            value = values.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if name in MEDIA_FIELDS:
                media = Path(str(value).strip()).expanduser()
                turn[name] = os.path.normpath(media if media.is_absolute() else path.absolute().parent / media)
            else:
                try:
                    turn[name] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{path}, {where}: {name} must be a number of seconds, got {value!r}.") from None
        turns.append(turn)
    if not turns:
        raise ValueError(f"{path} has no turns.")
    return turns


def write_example_dialogue(dataset, path: str | os.PathLike) -> Path | None:
    """Write the first dialogue of a split (rows of `load_meld`/`load_iemocap`) as a `telme predict` dialogue CSV.

    Media paths are written relative to the file's folder. Returns `None` when the split is empty.

    Example:

    ```python
    >>> write_example_dialogue(load_meld("MELD.Raw", splits="test")["test"], "example_dialogue.csv")  # doctest: +SKIP
    ```
    """
    if len(dataset) == 0:
        return None
    path = Path(path)
    first = dataset[0]["dialogue_id"]
    rows = []
    for row in dataset:
        if row["dialogue_id"] != first:
            break
        rows.append(row)

    def relative(value: str) -> str:
        return os.path.relpath(value, path.parent.absolute()) if value else ""

    shared = all(row.get("audio_path") == row.get("video_path") for row in rows)
    media = ["media"] if shared else ["audio", "video"]
    if not any(row.get("audio_path") or row.get("video_path") for row in rows):
        media = []
    window = any(row.get("start") is not None and not math.isnan(row["start"]) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["speaker", "text", *media, *(["start", "end"] if window else [])])
        for row in rows:
            cells = [row["speaker"], row["text"]]
            if media == ["media"]:
                cells.append(relative(row.get("video_path") or row.get("audio_path") or ""))
            elif media:
                cells += [relative(row.get("audio_path") or ""), relative(row.get("video_path") or "")]
            if window:
                cells += [row["start"], row["end"]]
            writer.writerow(cells)
    return path


# ------------------------------------------------------------------------------------------------- evaluation
def load_evaluation_split(
    data: str,
    data_root: str | os.PathLike,
    split: str,
    config,
    on_bad_media: str = "zeros",
):
    """One split of MELD, IEMOCAP or a synthetic (MELD-layout) corpus, labelled in the model's label order and
    with its data-side behaviours (speaker indexing, CSV text), see `telme_hf.data.registry.load_corpus`.

    Example:

    ```python
    >>> test = load_evaluation_split("meld", "/data/MELD.Raw", "test", model.config)  # doctest: +SKIP
    ```
    """
    from .data.registry import load_corpus

    loaded = load_corpus(data, data_root, config, splits=(split,), on_bad_media=on_bad_media)
    dataset = loaded[split]
    # Rows the loader dropped (missing files under "skip") are listed by `evaluate_split` from this report.
    dataset.bad_media_report = loaded.bad_media_report
    return dataset


class _DecodedRows(torch.utils.data.Dataset):
    """Rows of a split, each decoded on access (so DataLoader workers decode in parallel)."""

    def __init__(self, dataset, loader: MediaLoader, on_bad_media: str) -> None:
        self.dataset, self.loader, self.on_bad_media = dataset, loader, on_bad_media

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[PreparedUtterance, bool]:
        row = self.dataset[index]
        where = f"{row.get('utterance_key') or f'row {index}'} (row {row.get('row_index', index)})"
        outcome = _load_media(self.loader, row, self.on_bad_media, where, cli_hint=True,
                              skip_action="left out of the evaluation")
        utterance = PreparedUtterance(context=row["context"], audio=outcome.audio, video=outcome.video,
                                      note="; ".join(outcome.notes), label=row.get("label"),
                                      key=row.get("utterance_key") or f"row {index}")
        return utterance, outcome.skipped


def _batches(items: Iterable[tuple[PreparedUtterance, bool]], batch_size: int, dropped: dict[str, str]
             ) -> Iterator[list[PreparedUtterance]]:
    """Regroup the kept utterances into batches of `batch_size` in order (dropped ones do not leave gaps)."""
    buffer: list[PreparedUtterance] = []
    for utterance, skipped in items:
        if skipped:
            dropped[utterance.key] = utterance.note
            continue
        buffer.append(utterance)
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
) -> dict[str, Any]:
    """Evaluate the fused model and each of its parts on a split, in one forward pass per batch.

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

    Returns:
        `{"teacher", "audio", "video", "fusion"}` → metrics of `compute_erc_metrics`, plus `"num_samples"`,
        `"bad_media"` (utterance → what was done), `"keys"`, `"labels"` (gold ids) and `"logits"` (the fused
        logits, a NumPy array).

    Example:

    ```python
    >>> test = load_evaluation_split("meld", "/data/MELD.Raw", "test", model.config)  # doctest: +SKIP
    >>> results = evaluate_split(model, processor, test)  # doctest: +SKIP
    >>> results["fusion"]["weighted_f1"]  # doctest: +SKIP
    0.6737
    ```
    """
    from tqdm.auto import tqdm

    from .metrics import compute_erc_metrics

    _check_policy(on_bad_media)
    if len(dataset) == 0:
        raise ValueError("The split has no rows to evaluate.")
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    decoded = _DecodedRows(dataset, _media_loader(model.config, cache), on_bad_media)
    loader = torch.utils.data.DataLoader(decoded, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=list)
    dropped: dict[str, str] = {}
    report = getattr(dataset, "bad_media_report", None)  # set by load_evaluation_split
    if report is not None and report.policy == "skip":
        dropped.update({key: "media file missing: left out of the evaluation" for key in report.keys()})
    bad_media: dict[str, str] = {}
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in _PART_NAMES}
    keys: list[str] = []
    gold: list[int] = []
    flat = (item for chunk in loader for item in chunk)
    total = math.ceil(len(dataset) / batch_size)
    for batch in tqdm(_batches(flat, batch_size, dropped), total=total, desc="evaluating", unit="batch",
                      disable=not progress):
        outputs = predict_logits(model, processor, batch, batch_size=len(batch))
        for name, output_name in _PART_NAMES.items():
            parts[name].append(outputs[output_name])
        for utterance in batch:
            keys.append(utterance.key)
            gold.append(int(utterance.label))
            if utterance.note:
                bad_media[utterance.key] = utterance.note
    bad_media.update(dropped)
    if not keys:
        raise ValueError("Every utterance was dropped by on_bad_media='skip': nothing to evaluate.")
    results: dict[str, Any] = {}
    for name, chunks in parts.items():
        logits = torch.cat(chunks)
        results[name] = compute_erc_metrics(gold, logits.argmax(-1).numpy(), label_names)
        if name == "fusion":
            results["logits"] = logits.numpy()
    if bad_media:
        action = "dropped" if on_bad_media == "skip" else "given zeros"
        logger.warning("%d utterance(s) with bad media %s (on_bad_media=%r)", len(bad_media), action, on_bad_media)
    results.update(num_samples=len(keys), bad_media=bad_media, keys=keys, labels=gold)
    return results


def write_evaluation(
    results: Mapping[str, Any],
    output_dir: str | os.PathLike,
    label_names: Sequence[str],
    setup: Mapping[str, Any] | None = None,
    reference: Mapping[str, float] | None = None,
) -> dict[str, Path]:
    """Write `metrics.json` (the fused metrics at the top level, each part under `parts`), `confusion_matrix.png`
    (fused, row-normalised) and `predictions.csv` (per utterance: gold, fused prediction and probabilities).

    Returns:
        `{"metrics", "confusion_matrix", "predictions"}` → written paths.
    """
    from .metrics import plot_confusion_matrix, write_metrics_json, write_predictions_csv

    output_dir = Path(output_dir)
    fused = dict(results["fusion"])
    payload = {
        **fused,
        "parts": {name: results[name] for name in ("teacher", "audio", "video")},
        "setup": dict(setup or {}),
        "bad_media": dict(results["bad_media"]),
    }
    if reference is not None:
        payload["paper"] = dict(reference)
    paths = {"metrics": write_metrics_json(payload, output_dir / "metrics.json")}
    title = " ".join(str(value) for value in ((setup or {}).get("data"), (setup or {}).get("split")) if value)
    paths["confusion_matrix"] = plot_confusion_matrix(fused["confusion_matrix"], label_names,
                                                      output_dir / "confusion_matrix.png",
                                                      title=f"TelME (fused){f' — {title}' if title else ''}")
    paths["predictions"] = write_predictions_csv(output_dir / "predictions.csv", results["keys"], results["logits"],
                                                 label_names, gold=results["labels"])
    return paths


# ------------------------------------------------------------------------------------------------ commands
def _table(results: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    def clip(text: str, width: int = 40) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    header = ["turn", "speaker", "text", "emotion", "score", *labels, "from", "note"]
    table = [header]
    for result in results:
        table.append([
            str(result["turn"]), result["speaker"], clip(result["text"]), result["label"], f"{result['score']:.3f}",
            *[f"{result['scores'][label]:.3f}" for label in labels], "+".join(result["modalities"]), result["note"],
        ])
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)


def render_predictions(results: Sequence[Mapping[str, Any]], labels: Sequence[str], output_format: str) -> str:
    """Text of `telme predict`'s output: `"table"`, `"json"` (a list, one utterance per line) or `"csv"`."""
    if output_format == "table":
        return _table(results, labels)
    if output_format == "json":
        return "[\n" + ",\n".join(json.dumps(result, ensure_ascii=False) for result in results) + "\n]"
    if output_format == "csv":
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["turn", "speaker", "text", "label", "score", *[f"p_{label}" for label in labels],
                         "modalities", "note"])
        for result in results:
            writer.writerow([result["turn"], result["speaker"], result["text"], result["label"],
                             f"{result['score']:.6f}", *[f"{result['scores'][label]:.6f}" for label in labels],
                             "+".join(result["modalities"]), result["note"]])
        return buffer.getvalue().rstrip("\n")
    raise ValueError(f"Unknown output format {output_format!r}; use table, json or csv.")


def run_predict(args) -> int:
    """`telme predict`: see `telme predict --help`."""
    turns = read_dialogue(args.dialogue)
    model, processor = load_model_and_processor(args.model, args.device)
    utterances = prepare_dialogue(turns, model.config, args.on_bad_media, source=str(args.dialogue), cli_hint=True)
    logits = predict_logits(model, processor, utterances, args.batch_size)["logits"]
    results = format_predictions(logits, utterances, model.config.id2label)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    print(render_predictions(results, labels, args.format))
    return 0


def run_evaluate(args) -> int:
    """`telme evaluate`: see `telme evaluate --help`."""
    from .metrics import PAPER_RESULTS, format_per_class_table

    model, processor = load_model_and_processor(args.model, args.device)
    dataset = load_evaluation_split(args.data, args.data_root, args.split, model.config, args.on_bad_media)
    results = evaluate_split(model, processor, dataset, batch_size=args.batch_size, on_bad_media=args.on_bad_media,
                             cache=args.cache_dir, num_workers=args.num_workers)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    reference = PAPER_RESULTS.get(args.data)
    output_dir = Path(args.output_dir or f"telme-eval-{args.data}-{args.split}")
    setup = {"model": str(args.model), "data": args.data, "data_root": str(args.data_root), "split": args.split,
             "batch_size": args.batch_size, "on_bad_media": args.on_bad_media, "num_samples": results["num_samples"]}
    paths = write_evaluation(results, output_dir, labels, setup, reference)
    table = format_per_class_table({name: results[name] for name in ("teacher", "audio", "video", "fusion")}, labels,
                                   reference=reference)
    bad = results["bad_media"]
    action = "dropped" if args.on_bad_media == "skip" else "given zeros"
    print(f"{args.split} split of {args.data} ({results['num_samples']} utterances, batch size {args.batch_size}), "
          f"per-class F1 (%):\n{table}")
    if bad:
        print(f"{len(bad)} utterance(s) with bad media {action}: {', '.join(list(bad)[:5])}"
              f"{' …' if len(bad) > 5 else ''} (all listed in metrics.json)")
    print(f"Wrote {paths['metrics']}, {paths['confusion_matrix']} and {paths['predictions']}")
    return 0


def predict_command(model: str | os.PathLike, dialogue: str | os.PathLike) -> str:
    """The `telme predict` command line for a checkpoint and a dialogue file (quoted for a POSIX shell)."""
    return f"telme predict --model {shlex.quote(os.fspath(model))} --dialogue {shlex.quote(os.fspath(dialogue))}"
