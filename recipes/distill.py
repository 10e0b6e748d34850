#!/usr/bin/env python
# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Train TelME: text teacher → audio and video students (distilled) → fusion, best dev epoch per stage.

    accelerate launch recipes/distill.py --config recipes/configs/tiny.yaml
    accelerate launch recipes/distill.py --config recipes/configs/meld.yaml data_root=/data/MELD.Raw
    accelerate launch recipes/distill.py --config recipes/configs/meld.yaml --stage fusion epochs.fusion=3

Writes to `output_dir`: one folder per stage (its Trainer checkpoints, removed once the stage has loaded its best
epoch unless keep_checkpoints=true), `final/` (model + processor + model card,
loadable with `AutoModel.from_pretrained`), `results.json`, `confusion_matrix.png`, `predictions.csv`.
"""

from __future__ import annotations

import argparse
import sys

from telme_hf.distill import DistillConfig, run_distillation
from telme_hf.trainer import STAGES


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any config field can be overridden as key=value (nested: epochs.teacher=2).",
    )
    parser.add_argument("--config", required=True, help="YAML file of DistillConfig fields (recipes/configs/*.yaml).")
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all",
                        help="Run one stage only (its inputs must already be trained) or all of them (default).")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config.")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    unknown_flags = [item for item in extra if item.startswith("-")]
    if unknown_flags:
        print(f"unknown flag(s): {unknown_flags}; overrides are written key=value", file=sys.stderr)
        return 2
    config = DistillConfig.from_yaml(args.config, [*args.overrides, *extra])
    if args.stage != "all":
        config.stages = [args.stage]
    run_distillation(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
