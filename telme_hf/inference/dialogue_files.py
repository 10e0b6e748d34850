# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Dialogue files: reading the CSV/JSON dialogues `telme predict` takes, writing an example one, and rendering
predictions as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_open
from ..data.dialogues import read_csv_rows
from .reports import align_table
from ..modeling.pipeline_telme import MEDIA_FIELDS


__all__ = ["predict_command", "read_dialogue", "render_predictions", "write_example_dialogue"]

# `utterance` is accepted for `text`, as in MELD's CSVs; column names are case-insensitive.
_COLUMN_ALIASES = {"utterance": "text"}


def read_dialogue(path: str | os.PathLike, media_root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read a dialogue file (CSV or JSON) into turns for :func:`predict_dialogue`.

    CSV: a header with `speaker` and `text` (or `utterance`), optionally `media` (one file with both streams),
    `audio`, `video`, `start`, `end` (seconds); one row per turn, in order; column names are case-insensitive.
    JSON: a list of turn objects with the same keys, or `{"turns": [...]}`. Empty media cells mean "no media for
    this turn". Relative media paths are resolved against `media_root`, by default the file's folder.

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
        for name in ("speaker", "text"):
            if values[name] is None:
                # JSON null: neither taken as "" nor as a speaker.
                empty = "an unknown speaker" if name == "speaker" else "no words"
                raise ValueError(f'{path}, {where}: {name} is null; give the turn\'s {name} as text ("" for '
                                 f'{empty}).')
            if not isinstance(values[name], str):
                raise ValueError(f"{path}, {where}: {name} must be text, got {type(values[name]).__name__} "
                                 f"{values[name]!r}. Quote it in the file.")
        turn = {"speaker": values["speaker"], "text": values["text"]}
        for name in (*MEDIA_FIELDS, "start", "end"):
            value = values.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if name in MEDIA_FIELDS:
                if not isinstance(value, str):
                    raise ValueError(f"{path}, {where}: {name} must be a file path, got {type(value).__name__} "
                                     f"{value!r}.")
                media = Path(value.strip()).expanduser()
                root = Path(media_root).absolute() if media_root is not None else path.absolute().parent
                turn[name] = os.path.normpath(media if media.is_absolute() else root / media)
            else:
                try:
                    if isinstance(value, bool):
                        raise TypeError
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
    with atomic_open(path, "w", newline="", encoding="utf-8") as stream:
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


def _score_columns(results: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> tuple[list[str], Any]:
    """The score columns: one per label, or with `top_k` scores (fewer than every label) the k best in order."""
    every = all(set(result["scores"]) >= set(labels) for result in results)
    if every:
        return list(labels), lambda result: [result["scores"][label] for label in labels]
    k = max(len(result["scores"]) for result in results)
    return [f"top {rank}" for rank in range(1, k + 1)], lambda result: list(result["scores"].items())


def _table(results: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    def clip(text: str, width: int = 40) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else f"{value[0]} {value[1]:.3f}"

    columns, scores = _score_columns(results, labels)
    timed = _timed(results)
    table = [["turn", *(["start", "end"] if timed else []), "speaker", "text", "emotion", "score", *columns, "from",
              "text alone", "shift", "note"]]
    for result in results:
        times = [_clock(result["start"]), _clock(result["end"])] if timed else []
        table.append([
            str(result["turn"]), *times, result["speaker"], clip(result["text"]), result["label"],
            f"{result['score']:.3f}",
            *[cell(value) for value in scores(result)], "+".join(result["modalities"]),
            f"{result['text_label']} {result['text_score']:.3f}", _shift_cell(result["shift"]), result["note"],
        ])
    return align_table(table)


def _timed(results: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the turns come from a recording's cues (each has a start and an end time)."""
    return bool(results) and all(result.get("start") is not None for result in results)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(float(seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{seconds:06.3f}" if hours else f"{minutes:02d}:{seconds:06.3f}"


def _shift_cell(shift: Mapping[str, Any] | None) -> str:
    """`0.082 (λ 1.00), moved the label`: the shift's norm relative to the text feature; `-` for a text prediction."""
    if shift is None:
        return "-"
    moved = ", moved the label" if shift["changed_label"] else ""
    return f"{shift['relative_norm']:.3f} (λ {shift['lambda']:.2f}){moved}"


def _shift_fields(result: Mapping[str, Any]) -> list[str]:
    """The CSV's text-alone and shift cells: text_label, text_score, shift_lambda, shift_relative_norm,
    shift_changed_label (empty for a text prediction)."""
    shift = result["shift"]
    values = ["", "", ""] if shift is None else [f"{shift['lambda']:.6f}", f"{shift['relative_norm']:.6f}",
                                                 str(shift["changed_label"]).lower()]
    return [result["text_label"], f"{result['text_score']:.6f}", *values]


def render_predictions(results: Sequence[Mapping[str, Any]], labels: Sequence[str], output_format: str) -> str:
    """Text of `telme predict`'s output: `"table"`, `"json"` (a list, one utterance per line), `"csv"`, or for a
    recording's cues `"srt"`/`"vtt"` (the transcript with the emotion in each cue).

    The table and CSV say why the label came out: the text teacher's own label and probability ("text alone") and
    the shift audio/video made (its norm relative to the text feature, λ, and whether it changed the label); a
    recording's rows also give each cue's start and end."""
    if output_format in ("srt", "vtt"):
        from .recordings import emotion_subtitles

        return emotion_subtitles(results, output_format).rstrip("\n")
    if output_format == "table":
        return _table(results, labels)
    if output_format == "json":
        return "[\n" + ",\n".join(json.dumps(result, ensure_ascii=False) for result in results) + "\n]"
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns, scores = _score_columns(results, labels)
        top = columns[0] == "top 1"
        header = [name for column in columns for name in ((f"label_{column[4:]}", f"p_{column[4:]}") if top
                                                            else (f"p_{column}",))]
        timed = _timed(results)
        writer.writerow(["turn", *(["start", "end"] if timed else []), "speaker", "text", "label", "score", *header,
                         "modalities", "text_label", "text_score", "shift_lambda", "shift_relative_norm",
                         "shift_changed_label", "note"])
        for result in results:
            values = [item for value in scores(result) for item in
                      ((value[0], f"{value[1]:.6f}") if top else (f"{value:.6f}",))]
            times = [f"{result['start']:.3f}", f"{result['end']:.3f}"] if timed else []
            writer.writerow([result["turn"], *times, result["speaker"], result["text"], result["label"],
                             f"{result['score']:.6f}", *values, "+".join(result["modalities"]), *_shift_fields(result),
                             result["note"]])
        return buffer.getvalue().rstrip("\n")
    raise ValueError(f"Unknown output format {output_format!r}; use table, json, csv, srt or vtt.")


def predict_command(model: str | os.PathLike, dialogue: str | os.PathLike) -> str:
    """The `telme predict` command line for a checkpoint and a dialogue file (quoted for a POSIX shell)."""
    return f"telme predict --model {shlex.quote(os.fspath(model))} --dialogue {shlex.quote(os.fspath(dialogue))}"
