# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""What a stage shows while it trains: one progress bar with the current dev weighted F1, and the Trainer's logs at
info level rather than a printed dict per log step.

The Trainer's own `ProgressCallback` writes every log dict under its bar, and its `PrinterCallback` (used when
bars are off, e.g. at `TRANSFORMERS_VERBOSITY=error`) prints them to stdout; :class:`StageProgressCallback` replaces
both, so that the verbosity alone decides what is printed.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..logging import get_logger, progress_bar


logger = get_logger("telme_hf")


def _compact(logs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in logs.items() if key != "total_flos")


class StageProgressCallback(TrainerCallback):
    """One bar per stage (`teacher: 40%|███▌ | 16/40 [dev wF1=52.31]`), honouring `disable_tqdm` and the usual
    switches; each log and evaluation goes to the `telme_hf` logger at info level."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.bar = None
        self.step = 0

    @classmethod
    def install(cls, trainer, stage: str) -> None:
        """Put this callback in place of the Trainer's printing callbacks."""
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(cls(stage))

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.step = state.global_step
            self.bar = progress_bar(total=state.max_steps, initial=self.step, disable=args.disable_tqdm,
                                    desc=self.stage, unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.step)
            self.step = state.global_step

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        score = metrics.get("eval_weighted_f1")
        if self.bar is not None and score is not None:
            self.bar.set_postfix_str(f"dev wF1={100 * score:.2f}")
        epoch = f"epoch {state.epoch:.0f}" if state.epoch is not None else f"step {state.global_step}"
        logger.info("%s %s, dev: %s", self.stage, epoch, _compact(metrics))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and not any(key.startswith("eval_") for key in logs):
            logger.info("%s step %d: %s", self.stage, state.global_step, _compact(logs))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


__all__ = ["StageProgressCallback"]
