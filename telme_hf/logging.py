# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""telme_hf's loggers and progress bars, governed by transformers' own controls.

- Messages of every `telme_hf.*` logger are printed to stderr when they reach transformers' verbosity
  (`TRANSFORMERS_VERBOSITY`, `transformers.logging.set_verbosity_info()`, ...: warnings by default), read when each
  message is logged, so a change of verbosity applies at once. A level the user sets on the `telme_hf` logger wins
  over it; `propagate` is off, as for transformers' own logger, so a root handler does not print them twice.
- They are written with `tqdm.write`, so a warning never breaks a progress bar.
- Progress bars (:func:`progress_bar`) are off when `TQDM_DISABLE` or `HF_DATASETS_DISABLE_PROGRESS_BARS` is set,
  after `transformers.utils.logging.disable_progress_bar()`, when the verbosity is above warnings (as
  `TrainingArguments.disable_tqdm` defaults) or when the caller passes `disable=True` (a run's `disable_tqdm`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any


LIBRARY_LOGGER = "telme_hf"
# The level the package logger is given so that every record reaches the handler, which applies transformers'
# verbosity; any other level on that logger was set by the user and is left to decide.
_FOLLOW_TRANSFORMERS = 1
_TRUE = {"1", "true", "yes", "on"}


def _verbosity() -> int:
    from transformers.utils import logging as hf_logging

    return hf_logging.get_verbosity()


class _TqdmSafeHandler(logging.Handler):
    """Prints through `tqdm.write` (a bar in progress is redrawn below the message) at transformers' verbosity."""

    def emit(self, record: logging.LogRecord) -> None:
        library = logging.getLogger(LIBRARY_LOGGER)
        if library.level == _FOLLOW_TRANSFORMERS and record.levelno < _verbosity():
            return
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def _configure_library_logger() -> logging.Logger:
    library = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(handler, _TqdmSafeHandler) for handler in library.handlers):
        handler = _TqdmSafeHandler()
        handler.setFormatter(_Formatter("%(message)s"))
        library.addHandler(handler)
        if library.level == logging.NOTSET:
            library.setLevel(_FOLLOW_TRANSFORMERS)
        library.propagate = False
    return library


def get_logger(name: str = LIBRARY_LOGGER) -> logging.Logger:
    """A logger under `telme_hf` (names outside it, such as a remote-code module's, are placed under it)."""
    _configure_library_logger()
    if name != LIBRARY_LOGGER and not name.startswith(LIBRARY_LOGGER + "."):
        name = f"{LIBRARY_LOGGER}.{name.rsplit('.', 1)[-1]}"
    return logging.getLogger(name)


def progress_disabled(disable: bool | None = None) -> bool:
    """Whether progress bars are off: `disable` when the caller knows (a run's `disable_tqdm`), else the usual
    switches (see the module docstring)."""
    if disable is not None:
        return bool(disable)
    for variable in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return True
    from transformers.utils import logging as hf_logging

    return not hf_logging.is_progress_bar_enabled() or _verbosity() > logging.WARNING


def progress_bar(iterable: Iterable | None = None, disable: bool | None = None, **kwargs: Any):
    """A `tqdm` bar that honours :func:`progress_disabled` (keyword arguments go to tqdm)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=progress_disabled(disable), dynamic_ncols=True, **kwargs)


__all__ = ["LIBRARY_LOGGER", "get_logger", "progress_bar", "progress_disabled"]
