# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The bad-media layer: what happens to an utterance whose media is missing, unreadable, unusable or too long.

Every path through telme_hf meets bad media here and nowhere else: the corpus loaders (missing files, found with a
`stat`), the decode pass of training and the collator (`MediaLoader`), evaluation and prediction. For each
utterance :func:`resolve_bad_media` applies the policy to the problems found and returns a :class:`MediaOutcome`
(what was loaded, what was substituted or skipped, a note); every affected utterance lands in one
:class:`BadMediaReport`; errors carry the reason and the hint as fields.

Policies (`on_bad_media`):

- `"error"`: raise the problem's `MediaError`, naming the file, the utterance and what to do;
- `"skip"`: leave the utterance out (training, evaluation) or predict it from its text alone (prediction);
- `"zeros"`: put placeholders in place of the bad modality (the original's choice for MELD clips over 30 s):
  1412 zero samples (4 data2vec frames) and frames that the processor normalises to zeros.

Hub-portable: imports only numpy, torch and transformers (and PyAV through `media_telme` to decode files);
copied into every saved checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .media_telme import MediaError
from .logging_telme import get_logger


logger = get_logger("telme_hf.data")

BAD_MEDIA_POLICIES = ("error", "skip", "zeros")
BadMediaPolicy = Literal["error", "skip", "zeros"]

# The original's placeholder: 1412 samples are exactly 4 data2vec frames.
PLACEHOLDER_AUDIO_SAMPLES = 1412

# What `skip` means where the utterance cannot simply disappear.
SKIP_ACTIONS = {"drop": "dropped", "evaluate": "left out of the evaluation", "predict": "predicted from text only"}


def check_policy(on_bad_media: str) -> None:
    """A `ValueError` naming the valid policies, for an unknown `on_bad_media`."""
    if on_bad_media not in BAD_MEDIA_POLICIES:
        raise ValueError(f"on_bad_media must be one of {list(BAD_MEDIA_POLICIES)}, got {on_bad_media!r}.")


def policy_hint(cli: bool = False, skip: str = "drop") -> str:
    """The advice that ends a bad-media error: the two other policies, spelled for Python or for the CLI.

    Example:

    ```python
    >>> policy_hint(cli=True, skip="predict")
    'choose a bad-media policy: --on-bad-media zeros (zeros in its place) or --on-bad-media skip (that utterance from its text alone)'
    ```
    """
    skip_text = {"drop": "drop such utterances", "evaluate": "leave such utterances out of the metrics",
                 "predict": "that utterance from its text alone"}[skip]
    if cli:
        return f"choose a bad-media policy: --on-bad-media zeros (zeros in its place) or --on-bad-media skip ({skip_text})"
    return f"choose a bad-media policy: on_bad_media='zeros' (zeros in its place) or on_bad_media='skip' ({skip_text})"


@dataclass(frozen=True)
class BadMediaEntry:
    """One utterance's bad media and what was done about it.

    Attributes:
        utterance: the utterance's key (`dia0_utt2`, `turn 3 (Ross)`).
        modality: `"audio"`, `"video"` or `"audio+video"` (one file serving both, as in MELD).
        path: the file concerned (empty when no file was given).
        problem: `"missing"`, `"unreadable"`, `"absent from the file"`, `"empty"`, `"too long"`, `"unusable"` (too
            short for the audio encoder, or not finite) or `"not given"`.
        detail: the decoder's reason.
        action: `"dropped"`, `"used zeros"`, `"predicted from text only"`, ...
        split: the split of the row, when known.
    """

    utterance: str
    modality: str
    path: str
    problem: str
    detail: str
    action: str
    split: str = ""

    @property
    def note(self) -> str:
        """`"audio+video missing (dia0_utt2.mp4): used zeros"`."""
        name = f" ({os.path.basename(self.path)})" if self.path else ""
        return f"{self.modality} {self.problem}{name}: {self.action}"


@dataclass
class BadMediaReport:
    """Every utterance with bad media and what was done about it, each `(split, utterance, modality)` once.

    Loaders return one (`return_report=True`), the training run writes one per split into `results.json`,
    `telme evaluate` into `metrics.json`.
    """

    policy: str | None = None
    entries: list[BadMediaEntry] = field(default_factory=list)
    # How many entries `log_report` has summarised already: each entry is summarised once, however often the
    # report is logged (the load, every split's decode pass and the final evaluation of a run share one).
    summarised: int = field(default=0, repr=False, compare=False)

    def add(self, entry: BadMediaEntry) -> bool:
        """Record `entry`; returns False when that utterance's modality was already recorded."""
        key = (entry.split, entry.utterance, entry.modality)
        if any((e.split, e.utterance, e.modality) == key for e in self.entries):
            return False
        self.entries.append(entry)
        return True

    def merge(self, other: BadMediaReport) -> BadMediaReport:
        for entry in other.entries:
            self.add(entry)
        return self

    def keys(self, split: str | None = None) -> list[str]:
        """Affected utterance keys (each once per split, in the order found), of one split or of all."""
        pairs = [(entry.split, entry.utterance) for entry in self.entries if split in (None, entry.split)]
        return [key for _, key in dict.fromkeys(pairs)]

    def by_split(self) -> dict[str, dict[str, str]]:
        """`{split: {utterance: note}}`, notes of one utterance joined with "; "."""
        result: dict[str, dict[str, str]] = {}
        for entry in self.entries:
            notes = result.setdefault(entry.split, {})
            notes[entry.utterance] = f"{notes[entry.utterance]}; {entry.note}" if entry.utterance in notes else entry.note
        return result

    def __len__(self) -> int:
        # Utterances, not files: an IEMOCAP row may miss both its wav and its AVI.
        return len({(entry.split, entry.utterance) for entry in self.entries})

    def __bool__(self) -> bool:
        return bool(self.entries)

    def kinds(self, entries: Sequence[BadMediaEntry] | None = None) -> dict[str, list[BadMediaEntry]]:
        """Entries grouped by kind of problem and what was done: `{"audio+video missing, used zeros": [...]}`."""
        groups: dict[str, list[BadMediaEntry]] = {}
        for entry in self.entries if entries is None else entries:
            groups.setdefault(f"{entry.modality} {entry.problem}, {entry.action}", []).append(entry)
        return groups

    def summary(self) -> str:
        """One line: how many utterances per split, and what was done."""
        if not self.entries:
            return "no bad media"
        per_split = ", ".join(f"{split or 'rows'}: {len(keys)}" for split, keys in self.by_split().items())
        actions = ", ".join(sorted({entry.action for entry in self.entries}))
        return f"{len(self)} utterance(s) with bad media ({per_split}): {actions} (on_bad_media={self.policy!r})"


@dataclass
class MediaOutcome:
    """What one utterance's media came to after the bad-media policy.

    Attributes:
        audio, video: the arrays to use (decoded, or placeholders under `"zeros"`), `None` where not requested or
            where the utterance is skipped.
        skipped: `on_bad_media="skip"` left the utterance out (or, in prediction, to its text alone).
        entries: the problems found, with what was done about them (empty when the media was fine).
    """

    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    skipped: bool = False
    entries: list[BadMediaEntry] = field(default_factory=list)

    @property
    def note(self) -> str:
        return "; ".join(entry.note for entry in self.entries)


def problem_of(error: MediaError) -> str:
    """The short name of a decoding error's problem, for notes."""
    from .media_telme import (
        CorruptMediaError,
        EmptyMediaError,
        MissingMediaError,
        NoStreamError,
        TooLongMediaError,
        UnusableMediaError,
    )

    if not error.path:
        return "not given"
    for kind, name in ((MissingMediaError, "missing"), (CorruptMediaError, "unreadable"),
                       (NoStreamError, "absent from the file"), (EmptyMediaError, "empty"),
                       (TooLongMediaError, "too long"), (UnusableMediaError, "unusable")):
        if isinstance(error, kind):
            return name
    return "unusable"


def placeholder_media(
    audio: bool, video: Any | None, pixel_mean: Sequence[float] = (0.5, 0.5, 0.5)
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Stand-ins for unusable media that reach the model as zeros, like the original's placeholders.

    Audio: 1412 zero samples (per-utterance normalisation keeps them zero). Frames: `video.num_frames` square
    frames of side `video.size` (a `VideoDecodeOptions`), filled with `pixel_mean` (the colour, in [0, 1] and in
    the decoded channel order, that the processor's normalisation maps to ~0, |x| < 0.01), because the original put
    `zeros(8, 3, 224, 224)` directly in as pixel values; black frames would arrive as about -2.
    """
    waveform = np.zeros(PLACEHOLDER_AUDIO_SAMPLES, np.float32) if audio else None
    frames = None
    if video is not None:
        side = video.size or 224
        colour = np.round(255 * np.asarray(pixel_mean, dtype=np.float64)).astype(np.uint8)
        frames = np.broadcast_to(colour, (video.num_frames, side, side, 3)).copy()
    return waveform, frames


def resolve_bad_media(
    problems: Sequence[tuple[str, MediaError]],
    decoded: Mapping[str, np.ndarray | None],
    policy: str,
    utterance: str,
    where: str = "",
    split: str = "",
    placeholders: Mapping[str, np.ndarray | None] | None = None,
    skip: str = "drop",
    cli: bool = False,
    report: BadMediaReport | None = None,
) -> MediaOutcome:
    """The bad-media policy for one utterance: the one place where a problem becomes an error, a skip or zeros.

    Args:
        problems: `(modality, error)` for each bad modality group (`"audio"`, `"video"` or `"audio+video"`).
        decoded: the arrays that did load, by modality (`"audio"`, `"video"`); requested modalities are its keys.
        policy: `"error"`, `"skip"` or `"zeros"`.
        utterance: the utterance's key, for the report and messages.
        where: where the utterance comes from (`"row 7 of dev_sent_emo.csv"`), for error messages.
        split: the split, for the report.
        placeholders: the `"zeros"` stand-ins by modality (see :func:`placeholder_media`).
        skip: what `"skip"` means here: `"drop"` (training), `"evaluate"` or `"predict"` (text alone).
        cli: spell the hint with the CLI's flags.
        report: where to record the entries (each utterance's modality once); new entries are logged.

    Raises:
        MediaError: under `"error"`, the first problem, with the utterance and the policy hint.

    Example:

    ```python
    >>> from telme_hf.modeling.media_telme import MissingMediaError
    >>> problem = ("audio+video", MissingMediaError("dia1_utt2.mp4", "file not found"))
    >>> resolve_bad_media([problem], {"audio": None, "video": None}, "skip", "dia1_utt2").note
    'audio+video missing (dia1_utt2.mp4): dropped'
    ```
    """
    check_policy(policy)
    if not problems:
        return MediaOutcome(audio=decoded.get("audio"), video=decoded.get("video"))
    if policy == "error":
        modality, error = problems[0]
        context = f"{modality} of utterance {utterance}" + (f", {where}" if where else "")
        others = len(problems) - 1
        more = f" ({others} more problem(s) with this utterance)" if others else ""
        raise error.with_context(context + more, f"Fix the file or its path, or {policy_hint(cli, skip)}.")
    action = "used zeros" if policy == "zeros" else SKIP_ACTIONS[skip]
    entries = [BadMediaEntry(utterance, modality, error.path, problem_of(error), error.reason, action, split)
               for modality, error in problems]
    if report is not None:
        for entry in entries:
            if report.add(entry):  # each at info; `log_report` warns once per kind of problem
                logger.info("Bad media for %s: %s (%s).", utterance, entry.note, entry.detail)
    if policy == "skip":
        return MediaOutcome(skipped=True, entries=entries)
    failed = {part for modality, _ in problems for part in modality.split("+")}
    arrays = dict(decoded)
    for modality in failed:
        if modality in arrays:
            arrays[modality] = (placeholders or {}).get(modality)
    return MediaOutcome(audio=arrays.get("audio"), video=arrays.get("video"), entries=entries)


def log_report(report: BadMediaReport, what: str, listed_in: str = "") -> None:
    """One warning per kind of problem among the entries not summarised yet, naming a few utterances (each entry
    was logged at info level as it was found; `listed_in` names the file that lists them all)."""
    new = report.entries[report.summarised:]
    report.summarised = len(report.entries)
    for kind, entries in report.kinds(new).items():
        keys = [f"{entry.split}/{entry.utterance}" if entry.split else entry.utterance for entry in entries]
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        where = f"; all listed in {listed_in}" if listed_in else ""
        logger.warning("%s: %d utterance(s) with %s (%s%s).", what, len(entries), kind, shown, where)


__all__ = [
    "BAD_MEDIA_POLICIES",
    "BadMediaEntry",
    "BadMediaPolicy",
    "BadMediaReport",
    "MediaOutcome",
    "PLACEHOLDER_AUDIO_SAMPLES",
    "check_policy",
    "log_report",
    "placeholder_media",
    "policy_hint",
    "problem_of",
    "resolve_bad_media",
]
