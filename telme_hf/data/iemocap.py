# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""IEMOCAP, 6-class ERC setup (TelME's splits), as a `datasets.DatasetDict`, one row per utterance.

IEMOCAP is licensed by USC SAIL on request and never redistributed; bring your own `IEMOCAP_full_release` and
the split CSVs of the TelME authors (`IEMOCAP_{train,dev,test}.csv`: Sessions 1-4 train/dev, Session 5 test), with
the header `Utterance, Speaker, Dialogue_ID, Start_Time, End_Time, Wav_Path, Video_Path, Emotion`. In those CSVs
`Speaker` holds the utterance id (`Ses01F_impro01_M000`), `Wav_Path` the utterance's wav and `Video_Path` the
dialogue's AVI, written as `./dataset/IEMOCAP_full_release/Session1/...`. Those paths are re-rooted here:

```
root/                                   (or root/IEMOCAP_full_release/)
  IEMOCAP_train.csv  IEMOCAP_dev.csv  IEMOCAP_test.csv      (or in `csv_dir`)
  Session1/sentences/wav/<dialog>/<utterance>.wav
  Session1/dialog/avi/DivX/<dialog>.avi                      (Session 5 spells it `Divx`)
  ...
```

Example:

```python
>>> from telme_hf.data.iemocap import load_iemocap
>>> iemocap = load_iemocap("IEMOCAP_full_release", splits=("test",))  # doctest: +SKIP
>>> row = iemocap["test"][0]  # doctest: +SKIP
>>> row["speaker"], row["video_path"], (row["start"], row["end"])  # doctest: +SKIP
('F', '.../Session5/dialog/avi/Divx/Ses05F_impro01.avi', (6.21, 8.09))
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from datasets import DatasetDict

from ..modeling.configuration_telme import IEMOCAP_LABELS
from .bad_media import BadMediaReport
from .dialogues import (
    BadMediaPolicy,
    CsvRow,
    add_dialogue_structure,
    build_split,
    check_contiguous,
    check_options,
    check_unique_keys,
    finish,
    parse_float,
    parse_label,
    read_csv_rows,
    row_error,
)


__all__ = [
    "IEMOCAP_SPLIT_FILES",
    "IEMOCAP_REQUIRED_COLUMNS",
    "IEMOCAP_RELEASE_FOLDER",
    "IemocapPathResolver",
    "find_release_root",
    "iemocap_actor",
    "load_iemocap",
    "read_iemocap_split",
]

IEMOCAP_SPLIT_FILES = {"train": "IEMOCAP_train.csv", "dev": "IEMOCAP_dev.csv", "test": "IEMOCAP_test.csv"}
IEMOCAP_REQUIRED_COLUMNS = ("Utterance", "Speaker", "Dialogue_ID", "Start_Time", "End_Time", "Emotion")
IEMOCAP_RELEASE_FOLDER = "IEMOCAP_full_release"
# Other spellings of the six ERC labels found in IEMOCAP derivatives.
IEMOCAP_LABEL_ALIASES = {
    "angry": "ang",
    "anger": "ang",
    "excited": "exc",
    "excitement": "exc",
    "frustrated": "fru",
    "frustration": "fru",
    "happy": "hap",
    "happiness": "hap",
    "neutral": "neu",
    "sadness": "sad",
}

_SESSION = re.compile(r"^session\d+$", re.IGNORECASE)
# The last `_`-separated part of an utterance id: the speaking actor's letter and the turn number (`F000`).
_ACTOR = re.compile(r"_([A-Za-z])\d+$")


def iemocap_actor(utterance_id: str) -> str | None:
    """The speaking actor (`"F"` or `"M"`) of an utterance id, or `None` when the id does not end in one.

    The letter after the *last* `_` is the speaker; the one after `Ses01` only says who wore the markers.

    Example:

    ```python
    >>> iemocap_actor("Ses01F_impro01_M012"), iemocap_actor("Ses05M_script02_2_F000")
    ('M', 'F')
    ```
    """
    match = _ACTOR.search(utterance_id)
    return match.group(1).upper() if match else None


def _is_session_dir(path: Path) -> bool:
    return _SESSION.match(path.name) is not None and path.is_dir()


def find_release_root(root: str | os.PathLike) -> Path | None:
    """The folder holding `Session1`..`Session5`: `root` itself or its `IEMOCAP_full_release` child, else `None`."""
    root = Path(root)
    candidates = [root]
    if root.is_dir():
        release = IEMOCAP_RELEASE_FOLDER.lower()
        candidates += [child for child in sorted(root.iterdir()) if child.name.lower() == release]
    for candidate in candidates:
        if candidate.is_dir() and any(_is_session_dir(child) for child in candidate.iterdir()):
            return candidate
    return None


class IemocapPathResolver:
    """Re-root the CSVs' `./dataset/IEMOCAP_full_release/SessionN/...` paths onto the user's release folder.

    Everything up to and including `IEMOCAP_full_release/` is dropped (or, without that component, everything
    before the first `SessionN/`), and the rest is joined to `release_root`. When that exact path does not exist,
    each component is matched case-insensitively, which finds Session 5's `dialog/avi/Divx/` for a CSV that says
    `DivX` (and any other capitalisation difference from a case-insensitive file system).

    Example:

    ```python
    >>> resolver = IemocapPathResolver("/data/IEMOCAP_full_release")
    >>> resolver.relative_parts("./dataset/IEMOCAP_full_release/Session5/dialog/avi/DivX/Ses05F_impro01.avi")
    ('Session5', 'dialog', 'avi', 'DivX', 'Ses05F_impro01.avi')
    ```
    """

    def __init__(self, release_root: str | os.PathLike):
        self.release_root = Path(release_root)
        self._listings: dict[Path, dict[str, list[str]]] = {}
        self._resolved: dict[str, tuple[str, bool]] = {}

    @staticmethod
    def relative_parts(value: str) -> tuple[str, ...]:
        """The path components below the release folder (the value's own components if no anchor is found)."""
        return IemocapPathResolver._split(value)[0]

    @staticmethod
    def _split(value: str) -> tuple[tuple[str, ...], bool]:
        # (components below the release folder, whether an anchor was found)
        parts = [part for part in value.replace("\\", "/").split("/") if part not in ("", ".")]
        lowered = [part.lower() for part in parts]
        if IEMOCAP_RELEASE_FOLDER.lower() in lowered:
            return tuple(parts[lowered.index(IEMOCAP_RELEASE_FOLDER.lower()) + 1 :]), True
        for position, part in enumerate(parts):
            if _SESSION.match(part):
                return tuple(parts[position:]), True
        return tuple(parts), False

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._listings:
            names: dict[str, list[str]] = {}
            if folder.is_dir():
                for name in os.listdir(folder):
                    names.setdefault(name.lower(), []).append(name)
            self._listings[folder] = names
        return self._listings[folder]

    def resolve(self, value: str) -> tuple[str, bool]:
        """`(path, exists)`. A missing file gives the exact (case-preserving) path that was expected."""
        if value in self._resolved:
            return self._resolved[value]
        parts, anchored = self._split(value)
        if not anchored and os.path.isabs(value):
            # A path the user already rewrote to an absolute location: take it as it is.
            result = (value, os.path.isfile(value))
        else:
            exact = self.release_root.joinpath(*parts)
            result = (os.fspath(exact), True) if exact.is_file() else self._case_insensitive(parts, exact)
        self._resolved[value] = result
        return result

    def _case_insensitive(self, parts: Sequence[str], exact: Path) -> tuple[str, bool]:
        current = self.release_root
        for part in parts:
            if (current / part).exists():
                current = current / part
                continue
            matches = self._listing(current).get(part.lower(), [])
            if len(matches) != 1:
                return os.fspath(exact), False
            current = current / matches[0]
        return os.fspath(current), current.is_file()


def read_iemocap_split(
    csv_path: str | os.PathLike,
    resolver: IemocapPathResolver | None = None,
    modalities: Sequence[str] = ("text", "audio", "video"),
    speaker_index_carryover: bool = False,
    speaker_source: Literal["actor", "utterance_id"] | None = None,
    label_names: Sequence[str] = IEMOCAP_LABELS,
    text_normalization: str = "cp1252",
    num_speaker_tokens: int | None = None,
) -> tuple[list[dict], list[CsvRow]]:
    """Rows (the schema of `dialogues.row_features`, `label` as an int) of one IEMOCAP split CSV, and its CSV rows.

    Args:
        csv_path: an `IEMOCAP_{split}.csv`.
        resolver: re-roots the media paths; `None` leaves `audio_path`/`video_path` empty (text only).
        modalities, speaker_index_carryover, speaker_source, label_names, text_normalization, num_speaker_tokens:
            see `load_iemocap`.
    """
    csv_path = Path(csv_path)
    media_columns = []
    if resolver is not None:
        media_columns = [column for modality, column in (("audio", "Wav_Path"), ("video", "Video_Path"))
                         if modality in modalities]
    rows = read_csv_rows(csv_path, IEMOCAP_REQUIRED_COLUMNS + tuple(media_columns), text_normalization)
    if speaker_source is None:
        speaker_source = "utterance_id" if speaker_index_carryover else "actor"
    if speaker_source not in ("actor", "utterance_id"):
        raise ValueError(f"speaker_source must be 'actor' or 'utterance_id', got {speaker_source!r}.")
    records = []
    for row in rows:
        utterance_id = row.values["Speaker"]
        actor = iemocap_actor(utterance_id)
        if actor is None:
            raise row_error(
                csv_path,
                row.line,
                f"Speaker {utterance_id!r} is not an IEMOCAP utterance id ending in _F<number> or _M<number>",
                "The Speaker column of the TelME CSVs holds utterance ids such as 'Ses01F_impro01_F000'; fix the row.",
            )
        dialogue_id = row.values["Dialogue_ID"].strip()
        if not dialogue_id:
            raise row_error(csv_path, row.line, "empty Dialogue_ID", "Fix the row.")
        start, end = parse_float(row, "Start_Time", csv_path), parse_float(row, "End_Time", csv_path)
        if end < start:
            raise row_error(csv_path, row.line, f"End_Time {end} is before Start_Time {start}", "Fix the row.")
        paths = {"Wav_Path": "", "Video_Path": ""}
        for column in media_columns:
            value = row.values[column].strip()
            if not value:
                raise row_error(csv_path, row.line, f"empty {column}", "Fix the row, or leave out that modality.")
            paths[column] = resolver.resolve(value)[0]
        records.append(
            {
                "dialogue_id": dialogue_id,
                "utterance_id": utterance_id,
                "utterance_key": utterance_id,
                "speaker": actor,
                "text": row.values["Utterance"],
                "label": parse_label(row, "Emotion", label_names, csv_path, aliases=IEMOCAP_LABEL_ALIASES),
                "audio_path": paths["Wav_Path"],
                # The AVI is the whole dialogue (a split screen of both actors); start/end cut the utterance.
                "video_path": paths["Video_Path"],
                "start": start,
                "end": end,
                "row_index": row.row_index,
            }
        )
    check_contiguous([r["dialogue_id"] for r in records], rows, csv_path)
    check_unique_keys([r["utterance_key"] for r in records], rows, csv_path)
    # The original indexes the CSV's Speaker column, i.e. the utterance id: unique per row, so its "speaker"
    # index is the turn index (plus the carry-over quirk).
    key_column = "speaker" if speaker_source == "actor" else "utterance_id"
    add_dialogue_structure(records, [r[key_column] for r in records], carryover=speaker_index_carryover,
                           num_speaker_tokens=num_speaker_tokens)
    return records, rows


def load_iemocap(
    root: str | os.PathLike,
    splits: Sequence[str] | str = ("train", "dev", "test"),
    modalities: Sequence[str] = ("text", "audio", "video"),
    on_bad_media: BadMediaPolicy = "error",
    speaker_index_carryover: bool = False,
    label_names: Sequence[str] = IEMOCAP_LABELS,
    speaker_source: Literal["actor", "utterance_id"] | None = None,
    csv_dir: str | os.PathLike | None = None,
    text_normalization: str = "cp1252",
    return_report: bool = False,
    num_speaker_tokens: int | None = None,
) -> DatasetDict | tuple[DatasetDict, BadMediaReport]:
    """Load TelME's IEMOCAP splits (6 classes, Session 5 = test), one row per utterance, with dialogue context.

    Args:
        root: `IEMOCAP_full_release` or the folder that contains it; the split CSVs are read from here unless
            `csv_dir` is given.
        splits: which splits to load (`"train"`, `"dev"`, `"test"`).
        modalities: `"text"` needs only the CSVs. `"audio"` fills `audio_path` with the utterance's wav, `"video"`
            fills `video_path` with the dialogue's AVI; `start`/`end` (seconds, from the CSV) cut the utterance.
            Requested files are checked to exist.
        on_bad_media: `"error"`, `"skip"` or `"zeros"` for rows whose wav/AVI is missing, as in `load_meld`.
        speaker_index_carryover: `False` (clean): the speaker is the actor (`"F"`/`"M"`, the letter after the last
            `_` of the utterance id) and indices follow first appearance in the dialogue, so each dialogue has the
            2 speakers the paper describes. `True` reproduces the original: it indexes the CSV's `Speaker`
            column, which holds the unique utterance id, so the index is the turn index, plus the carry-over quirk
            of `dialogues.assign_speaker_indices`. Indices then go past 8 (the processor writes `<s10>` ... as
            plain text, as the original did). The `speaker` column holds the actor in both modes.
        label_names: the label order of the `label` ClassLabel (the original's order by default). Full words
            (`"angry"`, `"happy"`, ...) in the CSV are accepted for the default labels.
        speaker_source: `"actor"` or `"utterance_id"` to choose what is indexed independently of the carry-over;
            `None` (default) follows `speaker_index_carryover`.
        csv_dir: folder of the split CSVs, when they are not in `root`.
        text_normalization: `"cp1252"` (clean) or `"none"` (each cell as the original's `csv.reader` read it),
            as in `load_meld`.
        return_report: also return the `BadMediaReport` of the missing wavs/AVIs (see `load_meld`).
        num_speaker_tokens: the model's speaker tokens (see `load_meld`).

    Returns:
        A `DatasetDict` keyed by split, or `(DatasetDict, BadMediaReport)` with `return_report=True`.

    Raises:
        FileNotFoundError: a CSV is missing, or audio/video is requested and no `SessionN` folder is found.
        ValueError: a malformed row; the message names the file and the 1-based line.
        MissingMediaError: a wav/AVI is missing and `on_bad_media="error"`.

    Example:

    ```python
    >>> iemocap = load_iemocap("/data", modalities=("text",), speaker_index_carryover=True)  # doctest: +SKIP
    >>> iemocap["train"][3]["speaker"], iemocap["train"][3]["speaker_index"]  # doctest: +SKIP
    ('M', 3)
    ```
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    check_options(modalities, on_bad_media, splits, tuple(IEMOCAP_SPLIT_FILES))
    root = Path(root).expanduser().absolute()
    csv_root = root if csv_dir is None else Path(csv_dir).expanduser().absolute()
    resolver = None
    if any(m in modalities for m in ("audio", "video")):
        release_root = find_release_root(root)
        if release_root is None:
            raise FileNotFoundError(
                f"No Session1..Session5 folder found in {root} or {root / IEMOCAP_RELEASE_FOLDER} (needed for "
                "IEMOCAP audio/video). Pass the IEMOCAP_full_release folder (or its parent) as `root`, or load "
                "text only (`modalities=('text',)`; for training, `--stages teacher`)."
            )
        resolver = IemocapPathResolver(release_root)
    datasets, report = {}, BadMediaReport(on_bad_media)
    for split in splits:
        csv_path = csv_root / IEMOCAP_SPLIT_FILES[split]
        records, rows = read_iemocap_split(
            csv_path, resolver, modalities, speaker_index_carryover, speaker_source, label_names, text_normalization,
            num_speaker_tokens,
        )
        lines = [row.line for row in rows]
        datasets[split] = build_split(records, label_names, split, on_bad_media, lines, str(csv_path), report)
    return finish(datasets, report, "IEMOCAP", return_report)
