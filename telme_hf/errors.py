# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""How the `telme` command and the recipe end on a mistake: one line on stderr and an exit status, never a
traceback (`TRANSFORMERS_VERBOSITY=debug` logs it)."""

from __future__ import annotations

import sys


class UsageError(ValueError):
    """A mistake in the command line: exit status 2."""


def report_error(prog: str, error: BaseException, status: int) -> int:
    """Print `PROG: error: MESSAGE` to stderr and return `status`; at debug verbosity the traceback is logged too."""
    from .logging import get_logger

    get_logger("telme_hf").debug("%s failed:", prog, exc_info=error)
    print(f"{prog}: error: {error}", file=sys.stderr)
    return status


__all__ = ["UsageError", "report_error"]
