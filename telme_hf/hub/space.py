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
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(os.fspath(model)).expanduser()
    if source.is_dir():
        shutil.copytree(source, folder / "checkpoint", ignore=shutil.ignore_patterns("checkpoint-*", "__pycache__"))
        served = "checkpoint"
    else:
        served = os.fspath(model)

    code = Path(app.__file__).read_text(encoding="utf-8")
    if code.count(_MODEL_LINE) != 1:
        raise RuntimeError("telme_hf/app.py no longer declares DEFAULT_MODEL as export_space expects.")
    (folder / "app.py").write_text(code.replace(_MODEL_LINE, f"DEFAULT_MODEL: str | None = {served!r}\n"),
                                   encoding="utf-8")
    (folder / "requirements.txt").write_text("\n".join(SPACE_REQUIREMENTS) + "\n", encoding="utf-8")
    if example:
        write_space_example(example, folder / "examples")
    (folder / "README.md").write_text(_space_readme(title, served), encoding="utf-8")
    return folder


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
    path = folder / app.EXAMPLE_FILE
    path.write_text(json.dumps(written, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _space_readme(title: str, served: str) -> str:
    import gradio

    where = "the checkpoint in `checkpoint/`" if served == "checkpoint" else f"[{served}](https://huggingface.co/{served})"
    return (f"---\ntitle: {title}\nemoji: 💬\nsdk: gradio\nsdk_version: {gradio.__version__}\napp_file: app.py\n"
            f"pinned: false\n---\n\n# {title}: emotion recognition in conversation\n\nServes {where} with TelME's "
            "`emotion-recognition-in-conversation` pipeline: build a conversation turn by turn (speaker, text, an "
            "optional clip) and get one emotion per utterance.\n\nRun it locally: `pip install -r requirements.txt "
            "&& python app.py` (then open http://127.0.0.1:7860; `TELME_MODEL` serves another checkpoint).\n")
