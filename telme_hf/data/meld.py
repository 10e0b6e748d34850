# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""MELD (Multimodal EmotionLines Dataset) as a `datasets.DatasetDict`, one row per utterance.

Expected layout (an unpacked `MELD.Raw`; the CSVs may come from the archive or from the MELD GitHub repository,
both give identical rows):

```
root/
  train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
  train_splits/dia{Dialogue_ID}_utt{Utterance_ID}.mp4          (extracted from train.tar.gz)
  dev_splits_complete/dia{Dialogue_ID}_utt{Utterance_ID}.mp4   (dev.tar.gz)
  output_repeated_splits_test/dia{Dialogue_ID}_utt{Utterance_ID}.mp4   (test.tar.gz)
```

Traps of the real data handled here: cp1252 punctuation in the archive's CSVs, gaps in `Utterance_ID` (clip
names are built from the ID columns, never from row positions), and clips missing from the release (dev
`dia110_utt7`), see `on_bad_media`. Corrupt clips (train `dia125_utt3`) are only found when decoded.

Example:

```python
>>> from telme_hf.data.meld import load_meld
>>> meld = load_meld("MELD.Raw", modalities=("text",))  # doctest: +SKIP
>>> row = meld["train"][1]  # doctest: +SKIP
>>> row["utterance_key"], row["speaker"], row["text"]  # doctest: +SKIP
('dia0_utt1', 'The Interviewer', 'You must’ve had your hands full.')
>>> processor(conversations=[row["context"]])  # the teacher's input for this utterance  # doctest: +SKIP
```
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from datasets import DatasetDict

from ..modeling.configuration_telme import MELD_LABELS
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
    parse_int,
    parse_label,
    read_csv_rows,
    row_error,
)


__all__ = ["MELD_SPLIT_FILES", "MELD_REQUIRED_COLUMNS", "load_meld", "read_meld_split", "meld_clip_name"]

# split -> (annotation CSV, media folder, archive the folder is extracted from), as in MELD.Raw.
MELD_SPLIT_FILES = {
    "train": ("train_sent_emo.csv", "train_splits", "train.tar.gz"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete", "dev.tar.gz"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test", "test.tar.gz"),
}
# Read by header name; the other columns (Sr No., Sentiment, Season, Episode, StartTime, EndTime) are not needed.
MELD_REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")


def meld_clip_name(dialogue_id: int, utterance_id: int) -> str:
    """The clip (and utterance key) of an utterance, built from the ID columns.

    Example:

    ```python
    >>> meld_clip_name(6, 1)
    'dia6_utt1'
    ```
    """
    return f"dia{dialogue_id}_utt{utterance_id}"


def _media_folder(root: Path, split: str) -> Path:
    _, folder, archive = MELD_SPLIT_FILES[split]
    media_dir = root / folder
    if not media_dir.is_dir():
        hint = (
            f"Extract {root / archive} into {root}"
            if (root / archive).is_file()
            else f"Extract {archive} from MELD.Raw.tar.gz into {root}"
        )
        raise FileNotFoundError(
            f"MELD media folder {media_dir} not found (needed for the {split} audio/video). {hint}, or load text "
            "only (`modalities=('text',)`; for training, `--stages teacher`)."
        )
    return media_dir


def read_meld_split(
    csv_path: str | os.PathLike,
    media_dir: str | os.PathLike | None = None,
    modalities: Sequence[str] = ("text", "audio", "video"),
    speaker_index_carryover: bool = False,
    label_names: Sequence[str] = MELD_LABELS,
    text_normalization: str = "cp1252",
    num_speaker_tokens: int | None = None,
) -> tuple[list[dict], list[CsvRow]]:
    """Rows (the schema of `dialogues.row_features`, `label` as an int) of one MELD CSV, and its CSV rows.

    Args:
        csv_path: a `*_sent_emo.csv` file.
        media_dir: folder of the split's clips; `None` leaves `audio_path`/`video_path` empty (text only).
        modalities: `audio_path` is filled only with `"audio"`, `video_path` only with `"video"`.
        speaker_index_carryover: reproduce the original's speaker-index quirk (see `load_meld`).
        label_names: the label order; `Emotion` must be one of them.
        text_normalization: `"cp1252"` (clean) or `"none"` (the cells as the original read them), see `load_meld`.
        num_speaker_tokens: see `load_meld`.
    """
    csv_path = Path(csv_path)
    rows = read_csv_rows(csv_path, MELD_REQUIRED_COLUMNS, text_normalization)
    records = []
    for row in rows:
        dialogue_id = parse_int(row, "Dialogue_ID", csv_path)
        utterance_id = parse_int(row, "Utterance_ID", csv_path)
        if dialogue_id < 0 or utterance_id < 0:
            raise row_error(
                csv_path, row.line, f"negative id (Dialogue_ID={dialogue_id}, Utterance_ID={utterance_id})",
                "Fix the row.",
            )
        key = meld_clip_name(dialogue_id, utterance_id)
        clip = "" if media_dir is None else os.fspath(Path(media_dir) / f"{key}.mp4")
        records.append(
            {
                "dialogue_id": str(dialogue_id),
                "utterance_id": str(utterance_id),
                "utterance_key": key,
                "speaker": row.values["Speaker"],
                "text": row.values["Utterance"],
                "label": parse_label(row, "Emotion", label_names, csv_path),
                # Each MELD mp4 carries both streams; the original read the audio from the video clip too.
                "audio_path": clip if "audio" in modalities else "",
                "video_path": clip if "video" in modalities else "",
                # MELD clips are whole files: no window.
                "start": math.nan,
                "end": math.nan,
                "row_index": row.row_index,
            }
        )
    check_contiguous([r["dialogue_id"] for r in records], rows, csv_path)
    check_unique_keys([r["utterance_key"] for r in records], rows, csv_path)
    add_dialogue_structure(records, carryover=speaker_index_carryover, num_speaker_tokens=num_speaker_tokens)
    return records, rows


def load_meld(
    root: str | os.PathLike,
    splits: Sequence[str] | str = ("train", "dev", "test"),
    modalities: Sequence[str] = ("text", "audio", "video"),
    on_bad_media: BadMediaPolicy = "error",
    speaker_index_carryover: bool = False,
    label_names: Sequence[str] = MELD_LABELS,
    text_normalization: str = "cp1252",
    return_report: bool = False,
    num_speaker_tokens: int | None = None,
) -> DatasetDict | tuple[DatasetDict, BadMediaReport]:
    """Load MELD's official splits, one row per utterance, with each utterance's dialogue context.

    Args:
        root: the folder with `{train,dev,test}_sent_emo.csv` and, for audio/video, the clip folders.
        splits: which splits to load (`"train"`, `"dev"`, `"test"`).
        modalities: `"text"` needs only the CSVs. With `"audio"` and/or `"video"`, `audio_path` and `video_path`
            both point to the utterance's `.mp4` (it carries both streams) and the clips are checked to exist.
        on_bad_media: what to do with rows whose clip is missing: `"error"` raises `MissingMediaError` naming the
            file, the CSV line and the fix; `"skip"` drops the rows; `"zeros"` keeps them (decoding substitutes
            zeros later). Every affected utterance is logged on the `telme_hf.data` logger. A skipped utterance
            stays in the `context` of the later turns of its dialogue: only its own sample goes, its text does not.
        speaker_index_carryover: `False` (clean) indexes speakers by first appearance in each dialogue. `True`
            reproduces the original implementation, where the first turn of every dialogue but the split's first
            is indexed against the previous dialogue's speakers (see `dialogues.assign_speaker_indices`); needed to
            feed converted original checkpoints the exact inputs they were trained on.
        label_names: the label order of the `label` ClassLabel (the original's alphabetical order by default).
        text_normalization: `"cp1252"` (clean) maps the Windows-1252 leftovers of the release's CSVs (`\x92`,
            `\x85`, ... read as C1 control characters) to `’`, `…`, ... and strips every cell, so the archive's and
            GitHub's copies give the same text. `"none"` keeps each cell exactly as the original implementation's
            `csv.reader` read it: the teacher of a converted checkpoint was trained on those characters. The model's
            processor says which (`telme_hf.data.registry.load_corpus` passes it).
        return_report: also return the `BadMediaReport` of every utterance whose clip is missing and what was
            done with it (under `"skip"` those rows are gone from the data, so only the report names them).
        num_speaker_tokens: the model's speaker tokens, to name the dialogues with more speakers in a warning.

    Returns:
        A `DatasetDict` keyed by split, or `(DatasetDict, BadMediaReport)` with `return_report=True`.

    Raises:
        FileNotFoundError: a CSV, or (with audio/video) a media folder, is missing.
        ValueError: a malformed row (missing cell, non-integer id, unknown emotion, duplicate utterance, a
            dialogue split in two places); the message names the file and the 1-based line.
        MissingMediaError: a clip is missing and `on_bad_media="error"`.

    Example:

    ```python
    >>> meld, report = load_meld("MELD.Raw", splits=("dev",), on_bad_media="skip", return_report=True)  # doctest: +SKIP
    >>> report.keys("dev")  # doctest: +SKIP
    ['dia110_utt7']
    >>> meld["dev"].features["label"].int2str(meld["dev"][0]["label"])  # doctest: +SKIP
    'neutral'
    ```
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    check_options(modalities, on_bad_media, splits, tuple(MELD_SPLIT_FILES))
    root = Path(root).expanduser().absolute()
    needs_media = any(m in modalities for m in ("audio", "video"))
    datasets, report = {}, BadMediaReport(on_bad_media)
    for split in splits:
        csv_path = root / MELD_SPLIT_FILES[split][0]
        media_dir = _media_folder(root, split) if needs_media else None
        records, rows = read_meld_split(csv_path, media_dir, modalities, speaker_index_carryover, label_names,
                                        text_normalization, num_speaker_tokens)
        lines = [row.line for row in rows]
        datasets[split] = build_split(records, label_names, split, on_bad_media, lines, str(csv_path), report)
    return finish(datasets, report, "MELD", return_report)
