# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The bad-media report: every affected utterance of a run or an evaluation, per split, and its log summary.

What the policy does to one utterance is the model's (`telme_hf.modeling.media_telme.resolve_bad_media`); this
module keeps the entries a `MediaLoader` (`report=`) or a corpus loader produces, writes them per split into
`results.json`/`metrics.json` and summarises them in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..logging import get_logger
from ..modeling.media_telme import BadMediaEntry


logger = get_logger("telme_hf.data")


def cli_spelling(policy: str) -> str:
    """How the `telme` command writes a policy in hints: `--on-bad-media zeros`."""
    return f"--on-bad-media {policy}"


@dataclass
class BadMediaReport:
    """Every utterance with bad media and what was done about it, each `(split, utterance, modality)` once.

    Args:
        policy: the policy in force, for the summary.
        entries: the `BadMediaEntry`s recorded so far.
    """

    policy: str | None = None
    entries: list[BadMediaEntry] = field(default_factory=list)
    # How many entries `log_report` has summarised already: each is summarised once, however often the report is
    # logged (the load, every split's decode pass and the final evaluation of a run share one).
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


def log_report(report: BadMediaReport, what: str, listed_in: str = "") -> None:
    """One warning per kind of problem among the entries not summarised yet, naming a few utterances.

    Args:
        report: the report.
        what: what found them (`"decoding train media"`), the warning's prefix.
        listed_in: the file that lists them all, named in the warning.
    """
    new = report.entries[report.summarised:]
    report.summarised = len(report.entries)
    for kind, entries in report.kinds(new).items():
        keys = [f"{entry.split}/{entry.utterance}" if entry.split else entry.utterance for entry in entries]
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        where = f"; all listed in {listed_in}" if listed_in else ""
        logger.warning("%s: %d utterance(s) with %s (%s%s).", what, len(entries), kind, shown, where)


__all__ = ["BadMediaReport", "cli_spelling", "log_report"]
