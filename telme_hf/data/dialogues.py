# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""What the MELD and IEMOCAP loaders share: CSV reading, text clean-up, speaker indices, the row schema and the
scan for missing media files.

Every loader returns a `datasets.DatasetDict` with one row per utterance and the columns of :func:`row_features`.
The `context` column holds the turns 0..k of the utterance's dialogue, *including* the utterance itself, each as
`{"speaker", "speaker_index", "text"}`: exactly what `TelMEProcessor(conversations=[row["context"]])` reads. The
speaker indices are computed here, once, so the processor never has to guess (and so the original's carry-over
quirk can be reproduced, see :func:`assign_speaker_indices`).

Example:

```python
>>> from telme_hf.data.dialogues import normalize_text, assign_speaker_indices
>>> normalize_text("I\\x92m fine\\x85 really\\xa0 \\x96 thanks")
'I’m fine… really  – thanks'
>>> assign_speaker_indices([["Ross", "Rachel", "Ross"], ["Joey", "Ross"]])
[[0, 1, 0], [0, 1]]
>>> assign_speaker_indices([["Ross", "Rachel", "Ross"], ["Joey", "Ross"]], carryover=True)
[[0, 1, 0], [2, 0]]
```
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from ..modeling.processing_telme import TEXT_NORMALIZATIONS, first_appearance_indices
from ..logging import get_logger
from ..modeling.media_telme import (
    MODALITIES,
    BadMediaEntry,
    BadMediaPolicy,
    MissingMediaError,
    check_policy,
    resolve_bad_media,
)
from .bad_media import BadMediaReport, log_report


__all__ = [
    "LOGGER_NAME",
    "CsvRow",
    "add_dialogue_structure",
    "assign_speaker_indices",
    "build_context",
    "decode_csv_bytes",
    "normalize_text",
    "read_csv_rows",
    "row_features",
    "missing_media_problems",
    "scan_missing_media",
]

PathLike = Union[str, os.PathLike]
LOGGER_NAME = "telme_hf.data"
logger = get_logger(LOGGER_NAME)


# ----------------------------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------------------------

# The MELD CSVs inside MELD.Raw.tar.gz are cp1252 files; the ones on GitHub are UTF-8. Decoding the former as
# latin-1 (or as UTF-8 after a latin-1 round trip, which is what many copies in circulation contain) leaves the
# cp1252 punctuation as C1 control characters U+0080..U+009F. One table maps those code points to what cp1252
# means by them, so a raw cp1252 byte and a stray C1 code point in a UTF-8 file end up as the same character
# (0x92 -> ’, 0x85 -> …, 0x96 -> –, 0x97 -> —, 0x91/0x93/0x94 -> ‘ “ ”, ...). The five bytes cp1252
# leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) stay as they are.
_C1_TO_CP1252: dict[int, str] = {}
for _byte in range(0x80, 0xA0):
    try:
        _C1_TO_CP1252[_byte] = bytes([_byte]).decode("cp1252")
    except UnicodeDecodeError:
        pass
# A no-break space is typographic noise in a transcript (and the tokenizer treats it differently from a space).
_C1_TO_CP1252[0xA0] = " "
del _byte

_UTF8_BOM = b"\xef\xbb\xbf"


def decode_csv_bytes(data: bytes, map_c1: bool = True) -> str:
    """Decode a CSV file's bytes: UTF-8 where valid, cp1252 elsewhere; a leading BOM is dropped.

    The choice is made line by line (UTF-8 never encodes a newline byte inside a character, so splitting the bytes
    on newlines is safe), which also handles files where someone appended UTF-8 lines to a cp1252 file. Line
    endings are kept as they are; the `csv` module handles CRLF. C1 characters already in UTF-8 text are *not*
    mapped here, see :func:`normalize_text`. `map_c1=False` reads the non-UTF-8 lines as latin-1 (every byte its
    own code point), so MELD.Raw's cp1252 bytes become the C1 characters the original implementation's CSVs hold.

    Example:

    ```python
    >>> decode_csv_bytes(b"\\xef\\xbb\\xbfa,b\\r\\nI\\x92m\\r\\nyou\\xe2\\x80\\x99re\\r\\n")
    'a,b\\r\\nI’m\\r\\nyou’re\\r\\n'
    ```
    """
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = []
    for line in data.splitlines(keepends=True):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            # latin-1 maps every byte to the code point of the same value; the C1 table below then turns the
            # 0x80..0x9F ones into cp1252's characters, without failing on the five bytes cp1252 leaves undefined.
            text = line.decode("latin-1")
            lines.append(text.translate(_C1_TO_CP1252) if map_c1 else text)
    return "".join(lines)


def normalize_text(text: str) -> str:
    """Map cp1252 leftovers (C1 control characters, no-break spaces) to their Unicode forms and strip the ends.

    The GitHub (UTF-8) and MELD.Raw (cp1252) copies of the MELD CSVs give identical strings after this; the
    Unicode punctuation (’ … – — ‘ “ ”) is kept, as the UTF-8 copy has it.

    Example:

    ```python
    >>> normalize_text("  Oh\\x85 you\\x92re \\x93back\\x94\\x97finally ")
    'Oh… you’re “back”—finally'
    ```
    """
    return text.translate(_C1_TO_CP1252).strip()


# ----------------------------------------------------------------------------------------------------------------
# CSV reading
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    """One data row of an annotation CSV.

    Attributes:
        values: cell values by (stripped) header name, text already normalised with :func:`normalize_text`.
        line: 1-based line of the file where the row starts (the header is line 1).
        row_index: 0-based number of the data row (blank lines not counted).
    """

    values: dict[str, str]
    line: int
    row_index: int


def row_error(path: PathLike, line: int, problem: str, fix: str) -> ValueError:
    """A `ValueError` that says which file and line are wrong, what is wrong and what to do."""
    return ValueError(f"{path}, line {line}: {problem}. {fix}")


def read_csv_rows(path: PathLike, required: Sequence[str], text_normalization: str = "cp1252") -> list[CsvRow]:
    """Read an annotation CSV by header name, accepting UTF-8 or cp1252, with or without BOM, LF or CRLF.

    Header names are compared after stripping spaces (some copies write `Utterance, Speaker, ...`). Blank lines
    are skipped. A row with fewer cells than the header, or with extra non-empty cells (usually an unquoted comma
    in the text), raises a `ValueError` naming the file and line.

    Args:
        path: the CSV file.
        required: columns that must be in the header.
        text_normalization: `"cp1252"` (clean) passes every cell through :func:`normalize_text`. `"none"` keeps
            each cell exactly as the original implementation's `csv.reader` read it from the file opened as UTF-8
            text: C1 control characters and edge spaces stay, and line breaks inside quoted cells are the
            universal-newline `\n` of Python's text mode.

    Example:

    ```python
    >>> rows = read_csv_rows("MELD.Raw/dev_sent_emo.csv", ["Utterance", "Speaker"])  # doctest: +SKIP
    >>> rows[0].values["Speaker"], rows[0].line, rows[0].row_index  # doctest: +SKIP
    ('Phoebe', 2, 0)
    ```
    """
    if text_normalization not in TEXT_NORMALIZATIONS:
        raise ValueError(f"text_normalization must be one of {TEXT_NORMALIZATIONS}, got {text_normalization!r}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Annotation file {path} not found. Check `root` (it must contain {path.name}).")
    clean = text_normalization == "cp1252"
    text = decode_csv_bytes(path.read_bytes(), map_c1=clean)
    # newline="" keeps csv's own line handling (quoted fields may span lines) and never splits on U+0085 or
    # U+2028, which str.splitlines() would treat as line breaks. newline=None is Python's text mode, as the
    # original opened the files: "\r\n" and "\r" become "\n" (still never U+0085).
    reader = csv.reader(io.StringIO(text, newline="" if clean else None))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise ValueError(f"{path} is empty: expected a header line with the columns {list(required)}.") from None
    missing = [name for name in required if name not in header]
    if missing:
        raise row_error(
            path,
            1,
            f"missing column(s) {missing}; the header has {header}",
            "Use the dataset's original CSV (columns are read by header name, so their order does not matter).",
        )
    rows: list[CsvRow] = []
    line = reader.line_num + 1
    for cells in reader:
        start_line, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) < len(header) or any(cell.strip() for cell in cells[len(header) :]):
            raise row_error(
                path,
                start_line,
                f"expected {len(header)} cells ({', '.join(header)}), found {len(cells)}",
                "Quote fields that contain commas, or restore the row from the original CSV.",
            )
        values = {name: normalize_text(cell) if clean else cell for name, cell in zip(header, cells)}
        rows.append(CsvRow(values=values, line=start_line, row_index=len(rows)))
    return rows


def parse_int(row: CsvRow, column: str, path: PathLike) -> int:
    """An integer cell, or a `ValueError` naming file, line and column."""
    value = row.values[column]
    try:
        return int(value)
    except ValueError:
        raise row_error(
            path, row.line, f"{column} must be an integer, got {value!r}", "Fix or remove the row."
        ) from None


def parse_float(row: CsvRow, column: str, path: PathLike) -> float:
    """A finite float cell, or a `ValueError` naming file, line and column."""
    value = row.values[column]
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise row_error(path, row.line, f"{column} must be a number of seconds, got {value!r}", "Fix the row.")
    return number


def parse_label(
    row: CsvRow,
    column: str,
    label_names: Sequence[str],
    path: PathLike,
    aliases: Mapping[str, str] | None = None,
) -> int:
    """Index of the row's emotion in `label_names` (case-insensitive), or a `ValueError` naming file and line.

    `aliases` maps other spellings to a label name (used only when that name is in `label_names`).
    """
    value = row.values[column].strip()
    lookup = {name.lower(): index for index, name in enumerate(label_names)}
    for alias, name in (aliases or {}).items():
        if name.lower() in lookup:
            lookup.setdefault(alias.lower(), lookup[name.lower()])
    try:
        return lookup[value.lower()]
    except KeyError:
        raise row_error(
            path,
            row.line,
            f"unknown {column} {value!r}; expected one of {list(label_names)}",
            "Fix the row, or pass `label_names` that include this label.",
        ) from None


def check_contiguous(dialogue_ids: Sequence[Hashable], rows: Sequence[CsvRow], path: PathLike) -> None:
    """Raise if a dialogue's rows are not consecutive (the context of an utterance is the rows before it)."""
    first_line: dict[Hashable, int] = {}
    previous = object()
    for dialogue_id, row in zip(dialogue_ids, rows):
        if dialogue_id != previous and dialogue_id in first_line:
            raise row_error(
                path,
                row.line,
                f"Dialogue_ID {dialogue_id} reappears after another dialogue (it started at line "
                f"{first_line[dialogue_id]}); a dialogue's rows must be consecutive",
                "Sort the CSV so that each dialogue's rows are together, in turn order.",
            )
        first_line.setdefault(dialogue_id, row.line)
        previous = dialogue_id


def check_unique_keys(keys: Sequence[str], rows: Sequence[CsvRow], path: PathLike) -> None:
    """Raise if two rows of one split name the same utterance."""
    seen: dict[str, int] = {}
    for key, row in zip(keys, rows):
        if key in seen:
            raise row_error(
                path,
                row.line,
                f"utterance {key} appears twice (first at line {seen[key]})",
                "Remove the duplicate row.",
            )
        seen[key] = row.line


# ----------------------------------------------------------------------------------------------------------------
# Speakers and context
# ----------------------------------------------------------------------------------------------------------------


def assign_speaker_indices(dialogues: Sequence[Sequence[Hashable]], carryover: bool = False) -> list[list[int]]:
    """0-based speaker index of every turn, dialogue by dialogue, in CSV order.

    Clean (`carryover=False`): the order of first appearance of the speaker within its dialogue.

    `carryover=True` reproduces the original implementation exactly. It keeps one running list of speakers for
    the whole split; each row's index is its speaker's position in that list (appended when absent), and the list
    is emptied only *after* the first row of a new dialogue has been indexed. So:

    - the first dialogue of the split is indexed cleanly;
    - the first turn of every later dialogue is indexed against the *previous* dialogue's list (the previous
      dialogue's speaker position if that speaker was there, else the previous list's length);
    - the rest of the dialogue is indexed from an empty list, which does not contain the first speaker: its later
      turns get a fresh index, different from its first one.

    Args:
        dialogues: the speaker key of every turn, one sequence per dialogue, dialogues in CSV order.
        carryover: reproduce the original's first-turn bug.

    Example:

    ```python
    >>> split = [["Ross", "Rachel", "Ross", "Monica"], ["Monica", "Joey", "Monica"], ["Phoebe", "Joey"]]
    >>> assign_speaker_indices(split)
    [[0, 1, 0, 2], [0, 1, 0], [0, 1]]
    >>> assign_speaker_indices(split, carryover=True)  # Monica is 2nd in dialogue 0's list; Phoebe is appended
    [[0, 1, 0, 2], [2, 0, 1], [2, 0]]
    ```
    """
    if not carryover:
        return [first_appearance_indices(speakers) for speakers in dialogues]
    running: list[Hashable] = []
    result = []
    for number, speakers in enumerate(dialogues):
        indices = []
        for turn, speaker in enumerate(speakers):
            if speaker not in running:
                running.append(speaker)
            indices.append(running.index(speaker))
            if turn == 0 and number > 0:
                # The original resets its list when it notices the new dialogue, which is after this row.
                running = []
        result.append(indices)
    return result


def build_context(speakers: Sequence[str], indices: Sequence[int], texts: Sequence[str]) -> list[list[dict]]:
    """For each turn k of one dialogue, the turns 0..k (inclusive) as `{"speaker", "speaker_index", "text"}`.

    Example:

    ```python
    >>> build_context(["Ross", "Rachel"], [0, 1], ["Hi.", "Hey."])[1]
    [{'speaker': 'Ross', 'speaker_index': 0, 'text': 'Hi.'}, {'speaker': 'Rachel', 'speaker_index': 1, 'text': 'Hey.'}]
    ```
    """
    turns = [
        {"speaker": speaker, "speaker_index": int(index), "text": text}
        for speaker, index, text in zip(speakers, indices, texts)
    ]
    return [turns[: k + 1] for k in range(len(turns))]


def add_dialogue_structure(
    records: list[dict], speaker_keys: Sequence[Hashable] | None = None, carryover: bool = False,
    num_speaker_tokens: int | None = None,
) -> list[dict]:
    """Fill `turn_index`, `speaker_index` and `context` of one split's rows (CSV order, dialogues contiguous).

    Args:
        records: rows with at least `dialogue_id`, `speaker` and `text`; updated in place and returned.
        speaker_keys: what identifies a speaker for indexing, one per row (default: the `speaker` column). IEMOCAP's
            reference mode indexes by utterance id, as the original did.
        carryover: reproduce the original's first-turn quirk, see :func:`assign_speaker_indices`.
        num_speaker_tokens: the model's speaker tokens; a dialogue with more speakers is named in a warning (its
            extra speakers share the last token; with the original's turn-index "speakers" they are plain text).
    """
    keys = [record["speaker"] for record in records] if speaker_keys is None else list(speaker_keys)
    groups: list[list[int]] = []
    for position, record in enumerate(records):
        if not groups or records[groups[-1][0]]["dialogue_id"] != record["dialogue_id"]:
            groups.append([])
        groups[-1].append(position)
    indices = assign_speaker_indices([[keys[p] for p in group] for group in groups], carryover=carryover)
    crowded = [records[group[0]]["dialogue_id"] for group, group_indices in zip(groups, indices)
               if num_speaker_tokens is not None and max(group_indices) >= num_speaker_tokens]
    if crowded and carryover:
        # The original's indexing runs past the tokens by design (IEMOCAP indexes turns): one line, not one a dialogue.
        logger.info("%d dialogue(s) index speakers past <s%d>, as the original did (written as plain text).",
                    len(crowded), num_speaker_tokens)
    elif crowded:
        for dialogue_id in crowded:
            logger.warning("Dialogue %s has more speakers than the model's %d speaker tokens: the extra speakers "
                           "share <s%d>.", dialogue_id, num_speaker_tokens, num_speaker_tokens)
    for group, group_indices in zip(groups, indices):
        members = [records[p] for p in group]
        contexts = build_context([m["speaker"] for m in members], group_indices, [m["text"] for m in members])
        for turn, (member, index, context) in enumerate(zip(members, group_indices, contexts)):
            member.update(turn_index=turn, speaker_index=index, context=context)
    return records


# ----------------------------------------------------------------------------------------------------------------
# Row schema
# ----------------------------------------------------------------------------------------------------------------


def row_features(label_names: Sequence[str]) -> Features:
    """The `datasets.Features` of every loader's rows.

    Media are plain path strings (no `Audio()`/`Video()` feature: those decode through torchcodec, which this
    package does not use); `telme_hf.modeling.media_telme` decodes them. `start`/`end` are the IEMOCAP window in seconds
    and NaN when the clip is the whole file (MELD).
    """
    return Features(
        {
            "dialogue_id": Value("string"),
            "utterance_id": Value("string"),
            "utterance_key": Value("string"),
            "turn_index": Value("int32"),
            "speaker": Value("string"),
            "speaker_index": Value("int32"),
            "text": Value("string"),
            "label": ClassLabel(names=list(label_names)),
            # A plain list means "list of" in every `datasets` version (`List` only exists from 4.0 on).
            "context": [{"speaker": Value("string"), "speaker_index": Value("int32"), "text": Value("string")}],
            "audio_path": Value("string"),
            "video_path": Value("string"),
            "start": Value("float32"),
            "end": Value("float32"),
            "row_index": Value("int32"),
        }
    )


def check_options(modalities: Sequence[str], on_bad_media: str, splits: Sequence[str], known: Sequence[str]) -> None:
    """Validate the arguments every loader shares."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"Unknown modalities {unknown}; choose among {list(MODALITIES)}.")
    check_policy(on_bad_media)
    bad_splits = [s for s in splits if s not in known]
    if bad_splits or not splits:
        raise ValueError(f"Unknown splits {bad_splits or list(splits)}; choose among {list(known)}.")


# ----------------------------------------------------------------------------------------------------------------
# Missing media
# ----------------------------------------------------------------------------------------------------------------


def _row_paths(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    audio, video = row.get("audio_path") or "", row.get("video_path") or ""
    if audio and audio == video:
        return [(audio, "audio+video")]
    return [(path, kind) for path, kind in ((audio, "audio"), (video, "video")) if path]


def missing_media_problems(
    rows: Iterable[Mapping[str, Any]], exists: dict[str, bool] | None = None
) -> list[list[tuple[str, MissingMediaError]]]:
    """For each row, `(modality, MissingMediaError)` of each media file it names that does not exist.

    It only `stat`s files (each distinct path once, remembered in `exists`), so it is cheap to run again.
    """
    exists = {} if exists is None else exists
    result = []
    for row in rows:
        problems = []
        for path, modality in _row_paths(row):
            if path not in exists:
                exists[path] = os.path.isfile(path)
            if not exists[path]:
                problems.append((modality, MissingMediaError(path, "file not found",
                                                             "Restore the file (re-extract or re-download the media)")))
        result.append(problems)
    return result


def scan_missing_media(rows: Dataset | DatasetDict | Iterable[Mapping[str, Any]], split: str = "") -> BadMediaReport:
    """List the rows whose `audio_path`/`video_path` (when non-empty) name files that do not exist.

    Works on anything with the row schema's path columns: a `DatasetDict` (every split), a `Dataset`, or an
    iterable of row dicts; e.g. after moving the media, or on a dataset loaded with `on_bad_media="zeros"`.

    Example:

    ```python
    >>> report = scan_missing_media(load_meld("MELD.Raw", on_bad_media="zeros"))  # doctest: +SKIP
    >>> report.keys("dev")  # doctest: +SKIP
    ['dia110_utt7']
    ```
    """
    if isinstance(rows, DatasetDict):
        report = BadMediaReport()
        for name, dataset in rows.items():
            report.merge(scan_missing_media(dataset, split=name))
        return report
    if isinstance(rows, Dataset):
        split = split or str(rows.split or "")
        # Avoid materialising the (large) context column.
        rows = rows.select_columns(["utterance_key", "audio_path", "video_path", "row_index"])
    rows = list(rows)
    report = BadMediaReport()
    for row, problems in zip(rows, missing_media_problems(rows)):
        for modality, error in problems:
            report.add(BadMediaEntry(str(row.get("utterance_key", "")), modality, error.path, "missing", error.reason,
                                     "found", split))
    return report


def apply_missing_media_policy(
    rows: list[dict], policy: BadMediaPolicy, split: str, lines: Sequence[int], source: str,
    report: BadMediaReport,
) -> list[dict]:
    """Raise, drop or keep the rows whose media files are missing, through the bad-media policy; every affected
    utterance goes to `report` (and the log)."""
    kept = []
    per_row = missing_media_problems(rows)
    others = sum(1 for problems in per_row if problems) - 1
    for row, problems, line in zip(rows, per_row, lines):
        where = f"{source}, line {line}, data row {row.get('row_index')}" if source else f"row {row.get('row_index')}"
        if policy == "error" and others > 0:
            where += f"; {others} more utterance(s) of this split have missing media too"
        # Under "zeros" the row stays and decoding substitutes zeros later; no placeholder is made here.
        outcome = resolve_bad_media(problems, {}, policy, str(row["utterance_key"]), where, split)
        for entry in outcome.entries:
            if report.add(entry):
                logger.info("Bad media for %s: %s (%s).", entry.utterance, entry.note, entry.detail)
        if not outcome.skipped:
            kept.append(row)
    return kept


def build_split(
    rows: list[dict],
    label_names: Sequence[str],
    split: str,
    on_bad_media: BadMediaPolicy,
    lines: Sequence[int],
    source: str,
    report: BadMediaReport,
) -> Dataset:
    """Apply the bad-media policy to one split's missing files (into `report`) and build its `Dataset`."""
    if not rows:
        raise ValueError(f"{source or split} has no utterances (a header and no rows): restore the split's CSV.")
    rows = apply_missing_media_policy(rows, on_bad_media, split, lines, source, report)
    if not rows:
        raise ValueError(f"Every utterance of {source or split} has missing media and on_bad_media='skip' dropped "
                         "them all: check the media folder.")
    features = row_features(label_names)
    columns = {name: [row[name] for row in rows] for name in features}
    return Dataset.from_dict(columns, features=features, split=split)


def finish(
    datasets: dict[str, Dataset], report: BadMediaReport, name: str, return_report: bool
) -> DatasetDict | tuple[DatasetDict, BadMediaReport]:
    """Wrap the splits in a `DatasetDict`, log the report's summary, and return the report too when asked."""
    log_report(report, name)
    result = DatasetDict(datasets)
    return (result, report) if return_report else result
