# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The `telme` command: `telme demo`, `telme train`, `telme make-corpus`, `telme convert-original`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from .distill import DistillConfig, run_distillation

    overrides = [f"output_dir={args.output_dir}"]
    if args.quick:
        # Smaller corpus and fewer epochs: a smoke run of every stage in about a minute.
        overrides += ["synthetic_dialogues=45", "epochs.teacher=5", "epochs.audio=2", "epochs.video=2", "epochs.fusion=5"]
    config = DistillConfig.from_yaml(Path(__file__).with_name("demo.yaml"), overrides + list(args.overrides))
    started = time.time()
    run_distillation(config)
    final = Path(config.output_dir) / "final"
    print(f"Finished in {time.time() - started:.0f} s. Results: {Path(config.output_dir) / 'results.json'}; "
          f"confusion matrix: {Path(config.output_dir) / 'confusion_matrix.png'}; checkpoint: {final}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .distill import DistillConfig, run_distillation

    config = DistillConfig.from_yaml(args.config, list(args.overrides))
    if args.stage != "all":
        config.stages = [args.stage]
    run_distillation(config)
    return 0


def _make_corpus(argv: list[str]) -> int:
    from .data.synthetic import main

    return main(argv) or 0


def _convert(argv: list[str]) -> int:
    from .convert import main

    return main(argv) or 0


def build_parser() -> argparse.ArgumentParser:
    from .trainer import STAGES

    parser = argparse.ArgumentParser(
        prog="telme", description="TelME: emotion recognition in conversation from text, audio and video.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="Train a tiny TelME on the embedded synthetic corpus, all three stages, and report.",
        description="Generate the synthetic MELD-layout corpus (or reuse it), train the tiny model through the "
        "teacher, student and fusion stages with the same code as recipes/distill.py, and print the per-class "
        "test table. Runs offline on a CPU.",
    )
    demo.add_argument("--output-dir", default="telme-demo", help="Where to write the corpus, checkpoints and reports.")
    demo.add_argument("--quick", action="store_true", help="A smaller corpus and fewer epochs (about a minute).")
    demo.add_argument("overrides", nargs="*", help="key=value overrides of the demo config (e.g. epochs.fusion=5).")
    demo.set_defaults(handler=_demo)

    train = commands.add_parser("train", help="Run recipes/distill.py's training from a YAML config.")
    train.add_argument("--config", required=True, help="A YAML file of DistillConfig fields.")
    train.add_argument("--stage", choices=[*STAGES, "all"], default="all", help="One stage or all (default).")
    train.add_argument("overrides", nargs="*", help="key=value overrides.")
    train.set_defaults(handler=_train)

    # These two parse their own arguments; `telme make-corpus --help` shows them.
    commands.add_parser("make-corpus", help="Write the synthetic MELD-layout corpus to a folder.", add_help=False)
    commands.add_parser("convert-original", help="Convert the original TelME release checkpoints.", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if argv and argv[0] == "make-corpus":
        return _make_corpus(argv[1:])
    if argv and argv[0] == "convert-original":
        return _convert(argv[1:])
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
