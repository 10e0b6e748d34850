#!/usr/bin/env python
# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Train TelME: text teacher → audio and video students (distilled) → fusion, best dev epoch per stage.

    accelerate launch recipes/distill.py --config recipes/configs/tiny.yaml
    accelerate launch recipes/distill.py --config recipes/configs/meld.yaml data_root=/data/MELD.Raw
    accelerate launch recipes/distill.py --config recipes/configs/meld.yaml --stages fusion fusion_epochs=3
    telme train --config meld data_root=/data/MELD.Raw recipe=reference reference_behaviour=true seeds=[42,43,44]

Options come from the YAML `--config` (recipes/configs/*.yaml; `telme train` also takes a packaged config's name),
then from the command line, as `--option value` or `option=value` (YAML values: `seeds=[42,43]`,
`reference_behaviour=true`). Every `TrainingArguments` option is one (`--report_to tensorboard`,
`--dataloader_num_workers 4`, ...), besides the model, data and TelME options listed below.

Writes to `output_dir`: one folder per stage (its `trainer_state.json` and epoch checkpoints: a stage's are deleted
once the next stage has saved its first, the last stage's once `final/` is written, unless keep_checkpoints=true),
`final/` (model + processor + model card, loadable with `AutoModel.from_pretrained`), `results.json`,
`confusion_matrix.png`, `predictions.csv`. `--resume` continues a stopped run where it stopped: finished stages are
skipped, the current one restarts from its last epoch checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from telme_hf.errors import report_error
from telme_hf.modeling.media_telme import MediaError
from telme_hf.training.arguments import TelMEParser
from telme_hf.training.plan import plan_run
from telme_hf.training.run import run_distillation


def main(argv: Sequence[str] | None = None, prog: str = "recipes/distill.py") -> int:
    """Parse the options, plan the run (every check made before any data is read), run it. A mistake in the options
    ends with one line and status 2, bad data with one line and status 1 (`TRANSFORMERS_VERBOSITY=debug` adds the
    traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = TelMEParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if "-h" in argv or "--help" in argv:
        parser.parse_args(["--help"])  # prints the options and exits 0
    try:
        plan = plan_run(*parser.parse(argv))
    except (ValueError, FileNotFoundError) as error:
        return report_error(prog, error, status=2)
    try:
        run_distillation(plan)
    except (MediaError, OSError, ValueError) as error:
        # Bad data (a missing folder, a malformed row, unusable media under on_bad_media=error), said in one line.
        return report_error(prog, error, status=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
