# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Write whole or not at all: every file or folder telme_hf writes in pieces goes through here.

A file is written under a temporary name in its own folder (`.NAME.XXXX.tmp`) and renamed over `NAME` with
`os.replace` once complete, so a reader (another process, a later run) sees the old file, the new file or none, never
half of one. A kill leaves at most the hidden temporary behind; a failed write (a full disk) removes it and raises.
A folder is built the same way, as a hidden sibling renamed into place.

Example:

```python
>>> from telme_hf.atomic import atomic_open, atomic_write_text
>>> atomic_write_text("/tmp/metrics.json", "{}\\n")  # doctest: +SKIP
>>> with atomic_open("/tmp/predictions.csv", "w", newline="") as stream:  # doctest: +SKIP
...     stream.write("utterance_key,prediction\\n")
```
"""

from __future__ import annotations

import contextlib
import os
import shutil
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


TEMP_SUFFIX = ".tmp"
FOLDER_SUFFIX = ".partial"


def _discard(path: str | os.PathLike) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


class IncompleteWriteError(OSError):
    """Writing a file or folder failed (a full disk, a read-only folder, ...) and left `path` as it was."""


def _name_the_artefact(error: BaseException, path: Path) -> None:
    # A full disk says only "[Errno 28] No space left on device": say what was not written, and what to do.
    if isinstance(error, OSError) and not isinstance(error, (IncompleteWriteError, FileExistsError)):
        raise IncompleteWriteError(
            error.errno, f"{path} was not written ({error.strerror or error}) and was left as it was; "
            "free some space (or fix the folder) and run the command again") from error


def _reserve(path: Path, suffix: str, folder: bool) -> Path:
    # Not tempfile.mkstemp/mkdtemp: those make the result private (0600/0700); this keeps the usual umask modes.
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            if folder:
                os.mkdir(temporary)
            else:
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not reserve a temporary name beside {path}.")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block ends without an error.

    Args:
        path: the file to write (its folder is created).
        suffix: added after `.tmp`, for writers that choose the format from the name (e.g. `".mp4"`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _reserve(path, TEMP_SUFFIX + suffix, folder=False)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        _discard(temporary)
        _name_the_artefact(error, path)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode, **kwargs)` for writing, with the file appearing under `path` only once closed whole."""
    if not any(flag in mode for flag in "wx"):
        raise ValueError(f"atomic_open writes a new file; mode must be 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as temporary:
        with open(temporary, mode.replace("x", "w"), **kwargs) as stream:
            yield stream


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` whole or not at all; returns `Path(path)`."""
    with atomic_open(path, "w", encoding=encoding) as stream:
        stream.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` whole or not at all; returns `Path(path)`."""
    with atomic_open(path, "wb") as stream:
        stream.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A hidden sibling folder to build `path` in; renamed to `path` when the block ends without an error.

    `path` must not exist or be an empty folder (it is replaced); a folder with files in it raises
    `FileExistsError` before anything is written.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not empty; write into a new or empty folder.")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _reserve(path, FOLDER_SUFFIX, folder=True)
    try:
        yield temporary
        if path.is_dir():
            path.rmdir()  # empty (checked above); fails, and keeps both, if something appeared in it meanwhile
        os.replace(temporary, path)
    except BaseException as error:
        _discard(temporary)
        _name_the_artefact(error, path)
        raise


def stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """The temporaries `atomic_path`/`atomic_folder` left in `folder` when killed (those of `name` only, if given).

    Only remove them when no other process can be writing there.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefix = f".{name}." if name else "."
    return sorted(entry for entry in folder.iterdir() if entry.name.startswith(prefix)
                  and (f"{TEMP_SUFFIX}" in entry.name[1:] and entry.is_file()
                       or entry.name.endswith(FOLDER_SUFFIX) and entry.is_dir()))


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove what `stale_temporaries` finds; returns the removed paths."""
    removed = stale_temporaries(folder, name)
    for entry in removed:
        _discard(entry)
    return removed


__all__ = ["IncompleteWriteError", "atomic_folder", "atomic_open", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "remove_stale_temporaries", "stale_temporaries"]
