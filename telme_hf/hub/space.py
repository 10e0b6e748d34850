# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""`telme app --export DIR`: a folder that runs as a Hugging Face Space (Gradio SDK) where telme_hf is not installed.

The folder holds `app.py` (a copy of :mod:`telme_hf.app`, pointed at the checkpoint), `requirements.txt`, the
Space's `README.md` (its front matter configures the Space) and, when the checkpoint has one, the example dialogue
with its clips. A checkpoint given as a Hub id is loaded from the Hub with `trust_remote_code=True`; one given as a
folder is copied into the Space (`checkpoint/`), which suits small checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import app
from ..atomic import atomic_folder, atomic_write_text
from ..modeling.pipeline_telme import MEDIA_FIELDS


# What the checkpoint's own code and the page import (the pipeline's docstring lists the former).
SPACE_REQUIREMENTS = ("torch", "transformers>=4.57", "tokenizers", "pillow", "av", "numpy", "gradio>=5",
                      "huggingface_hub")
_MODEL_LINE = "DEFAULT_MODEL: str | None = None\n"


def export_space(model: str | os.PathLike, folder: str | os.PathLike,
                 example: Sequence[Mapping[str, Any]] | None = None, title: str = "TelME") -> Path:
    """Write a Space for `model` (a checkpoint folder or a Hub id) into `folder`; returns the folder.

    Example:

    ```python
    >>> export_space("your-name/telme-meld", "telme-space")  # doctest: +SKIP
    ```
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty; export into a new folder.")
    code = Path(app.__file__).read_text(encoding="utf-8")
    if code.count(_MODEL_LINE) != 1:
        raise RuntimeError("telme_hf/app.py no longer declares DEFAULT_MODEL as export_space expects.")
    # Built beside `folder` and renamed to it when whole: an export that is killed or runs out of disk leaves none.
    with atomic_folder(folder) as building:
        _write_space(model, building, code, example, title)
    return folder


def _write_space(model: str | os.PathLike, folder: Path, code: str, example: Sequence[Mapping[str, Any]] | None,
                 title: str) -> str:
    source = Path(os.fspath(model)).expanduser()
    if source.is_dir():
        _copy_checkpoint(source, folder / "checkpoint")
        served = "checkpoint"
    else:
        served = os.fspath(model)

    (folder / "app.py").write_text(code.replace(_MODEL_LINE, f"DEFAULT_MODEL: str | None = {served!r}\n"),
                                   encoding="utf-8")
    (folder / "requirements.txt").write_text("\n".join(SPACE_REQUIREMENTS) + "\n", encoding="utf-8")
    if example:
        write_space_example(example, folder / "examples")
    (folder / "README.md").write_text(_space_readme(title, served), encoding="utf-8")
    return served


def _copy_checkpoint(source: Path, target: Path) -> None:
    """Copy a checkpoint folder without its training checkpoints; the first failure (a full disk) ends the copy
    (`shutil.copytree` would go on through every file and report them all at the end)."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith("checkpoint-") or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        else:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def write_space_example(turns: Sequence[Mapping[str, Any]], folder: Path) -> Path:
    """Copy an example dialogue's clips into `folder` and write its turns as `example_dialogue.json` there."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, turn in enumerate(turns):
        entry = {"speaker": turn.get("speaker", ""), "text": turn["text"]}
        for field in MEDIA_FIELDS:  # each file under the field it had: both streams, or one modality
            media = turn.get(field)
            if isinstance(media, (str, os.PathLike)) and Path(media).is_file():
                name = f"turn{index}-{field}{Path(media).suffix}"
                shutil.copy2(media, folder / name)
                entry[field] = name
        entry.update({bound: turn[bound] for bound in ("start", "end") if turn.get(bound) is not None})
        written.append(entry)
    return atomic_write_text(folder / app.EXAMPLE_FILE, json.dumps(written, indent=1, ensure_ascii=False) + "\n")


def _space_readme(title: str, served: str) -> str:
    import gradio

    where = "the checkpoint in `checkpoint/`" if served == "checkpoint" else f"[{served}](https://huggingface.co/{served})"
    return (f"---\ntitle: {title}\nemoji: 💬\nsdk: gradio\nsdk_version: {gradio.__version__}\napp_file: app.py\n"
            f"pinned: false\n---\n\n# {title}: emotion recognition in conversation\n\nServes {where} with TelME's "
            "`emotion-recognition-in-conversation` pipeline: build a conversation turn by turn (speaker, text, an "
            "optional clip) and get one emotion per utterance.\n\nRun it locally: `pip install -r requirements.txt "
            "&& python app.py` (then open http://127.0.0.1:7860; `TELME_MODEL` serves another checkpoint).\n")
