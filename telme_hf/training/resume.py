# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""What a training run needs to survive a kill: which stages are done, where their weights are, and a lock that
lets the next run clean what a killed one left half-written.

- `output_dir/run_state.json` records each finished stage (its selected epoch and best checkpoint). A stage keeps
  its checkpoints until the next stage has saved its first one, so a run killed anywhere can resume: the unfinished
  stage from its last epoch checkpoint, or the next stage from the finished one's best weights.
- `cache_dir/.run.lock` holds the running process's id. A run that finds a lock of a process that is gone removes
  the temporary files that process left (a half-written cache entry or frozen-output table).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..atomic import atomic_write_text
from ..logging import get_logger


logger = get_logger("telme_hf")

STATE_FILE = "run_state.json"
LOCK_FILE = ".run.lock"


# ---------------------------------------------------------------------------------------------------- the state
def read_state(output_dir: str | os.PathLike) -> dict[str, Any]:
    """The finished stages of the run in `output_dir` (`{}` for a new run)."""
    path = Path(output_dir) / STATE_FILE
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is damaged ({error}); delete it to start the run again from scratch.") from None


def record_stage(output_dir: str | os.PathLike, stage: str, selected_epoch: float | None,
                 best_checkpoint: str | None, precision: dict[str, Any] | None = None) -> None:
    """Write that `stage` finished, with its selected epoch, best checkpoint and the precision its steps ran in
    (written atomically)."""
    path = Path(output_dir) / STATE_FILE
    state = read_state(output_dir)
    state["stages"][stage] = {"selected_epoch": selected_epoch, "best_checkpoint": best_checkpoint,
                              **(precision or {})}
    atomic_write_text(path, json.dumps(state, indent=2))


def last_checkpoint(stage_dir: str | os.PathLike) -> str | None:
    """The latest complete epoch checkpoint of a stage (one a kill interrupted while saving is passed over)."""
    folder = Path(stage_dir)
    if not folder.is_dir():
        return None
    complete = [path for path in folder.glob("checkpoint-*")
                if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").is_file()]
    if not complete:
        return None
    return str(max(complete, key=lambda path: int(path.name.split("-")[-1])))


def resume_point(requested: str | None, output_dir: str | os.PathLike, stages: list[str]) -> dict[str, Any] | None:
    """Where a resumed run picks up: the finished stages, and the checkpoint the next stage starts from.

    Args:
        requested: `resume_from_checkpoint`: `None` (no resume), `"latest"`/`"true"` (find it), or a stage's
            checkpoint folder.
        output_dir: the run's folder.
        stages: the run's stages, in order.

    Returns:
        `None` without a resume, else `{"finished": {stage: {...}}, "stage": the stage to train next (or None),
        "checkpoint": the checkpoint it resumes (or None), "weights": the checkpoint whose weights the model
        takes before that stage}`.
    """
    if requested is None or str(requested).lower() in ("", "false", "no", "none"):
        return None
    output_dir = Path(output_dir)
    finished = {stage: info for stage, info in read_state(output_dir)["stages"].items() if stage in stages}
    pending = [stage for stage in stages if stage not in finished]
    point = {"finished": finished, "stage": pending[0] if pending else None, "checkpoint": None, "weights": None}
    if str(requested).lower() not in ("latest", "true", "last", "yes"):
        checkpoint = Path(requested)
        if not (checkpoint / "trainer_state.json").is_file():
            raise ValueError(f"resume_from_checkpoint={requested} is not a checkpoint folder (it has no "
                             "trainer_state.json); pass a stage's checkpoint-N folder or 'latest'.")
        stage = checkpoint.parent.name
        if stage not in stages:
            raise ValueError(f"resume_from_checkpoint={requested} is a checkpoint of {stage!r}, which this run does "
                             f"not train (stages {stages}).")
        point.update(stage=stage, checkpoint=str(checkpoint), weights=str(checkpoint))
        point["finished"] = {s: info for s, info in finished.items() if stages.index(s) < stages.index(stage)}
        return point
    if point["stage"] is not None:
        point["checkpoint"] = last_checkpoint(output_dir / point["stage"])
    if point["checkpoint"]:
        point["weights"] = point["checkpoint"]
    elif finished:
        best = list(finished.values())[-1]["best_checkpoint"]
        if not best or not Path(best).is_dir():
            last = list(finished)[-1]
            raise ValueError(f"Cannot resume: the weights that stage {last!r} ended with ({best}) are gone. Run the "
                             f"later stages from a checkpoint with init_from=..., or the whole run again.")
        point["weights"] = best
    return point


class RemoveEarlierCheckpoints(TrainerCallback):
    """Removes the previous stage's checkpoints once this stage has saved its first one: until then they are what a
    resumed run starts this stage from."""

    def __init__(self, folder: str | os.PathLike | None) -> None:
        self.folder = Path(folder) if folder else None

    def on_save(self, args, state, control, **kwargs):
        if self.folder is not None and state.is_world_process_zero:
            remove_checkpoints(self.folder)
            self.folder = None
        return control


def remove_checkpoints(stage_dir: str | os.PathLike) -> None:
    for checkpoint in Path(stage_dir).glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------- the lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def take_cache_lock(cache_dir: str | os.PathLike) -> list[str]:
    """Mark `cache_dir` as used by this process; if the previous user is gone, remove the temporary files it left.

    Returns the files removed. Another live run keeps its files (and the lock stays theirs).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    lock = cache_dir / LOCK_FILE
    removed: list[str] = []
    holder = None
    if lock.is_file():
        try:
            holder = int(lock.read_text().strip() or 0)
        except ValueError:
            holder = None
    if holder and holder != os.getpid() and _alive(holder):
        logger.info("Another run (process %d) uses %s: its temporary files are left alone.", holder, cache_dir)
        return removed
    for path in list(cache_dir.rglob("*.tmp")) + list((cache_dir / "frozen").glob("tmp*")):
        # Half-written cache entries (*.tmp) and frozen-output tables (datasets' tmpXXXX files) of a killed run.
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(str(path))
    for path in (cache_dir / "frozen").glob("*.tmp-*"):
        # A feature-encoder output folder a killed run was writing (`add_feature_encoder_outputs`).
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    lock.write_text(str(os.getpid()))
    if removed:
        logger.info("Removed %d temporary file(s) a killed run left in %s.", len(removed), cache_dir)
    return removed


def release_cache_lock(cache_dir: str | os.PathLike) -> None:
    lock = Path(cache_dir) / LOCK_FILE
    try:
        if lock.is_file() and lock.read_text().strip() == str(os.getpid()):
            lock.unlink()
    except OSError:
        pass


__all__ = [
    "RemoveEarlierCheckpoints",
    "last_checkpoint",
    "read_state",
    "record_stage",
    "release_cache_lock",
    "remove_checkpoints",
    "resume_point",
    "take_cache_lock",
]
