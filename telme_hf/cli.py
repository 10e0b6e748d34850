# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The `telme` command: `telme demo`, `telme train`, `telme predict`, `telme evaluate`, `telme make-corpus`,
`telme convert-original`."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from .distill import DistillConfig, run_distillation

    overrides = [f"output_dir={args.output_dir}"]
    if args.quick:
        # A smaller corpus and fewer epochs: every stage runs, in about a minute, but learns little.
        overrides += ["synthetic_dialogues=60", "epochs.teacher=15", "epochs.audio=3", "epochs.video=5", "epochs.fusion=10"]
    config = DistillConfig.from_yaml(Path(__file__).with_name("demo.yaml"), overrides + list(args.overrides))
    started = time.time()
    run_distillation(config, announce_next_step=False)
    output_dir = Path(config.output_dir)
    print(f"Finished in {time.time() - started:.0f} s. Results: {output_dir / 'results.json'}; confusion matrix: "
          f"{output_dir / 'confusion_matrix.png'}; predictions: {output_dir / 'predictions.csv'}; "
          f"checkpoint: {output_dir / 'final'}")
    example = output_dir / "example_dialogue.csv"
    if example.exists():
        from .inference import predict_command

        print(f"\nTry it on a test dialogue:\n  {predict_command(output_dir / 'final', example)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .distill import DistillConfig, run_distillation

    config = DistillConfig.from_yaml(args.config, list(args.overrides))
    if args.stage != "all":
        config.stages = [args.stage]
    run_distillation(config)
    return 0


def _report_errors(command: str, run, args: argparse.Namespace) -> int:
    # Bad input (a missing file, a malformed dialogue, unusable media under --on-bad-media error) ends the command
    # with its message and exit status 1 rather than a traceback.
    from .data.media import MediaError

    try:
        return run(args)
    except (MediaError, OSError, ValueError) as error:
        print(f"telme {command}: error: {error}", file=sys.stderr)
        return 1


def _predict(args: argparse.Namespace) -> int:
    from .inference import run_predict

    return _report_errors("predict", run_predict, args)


def _evaluate(args: argparse.Namespace) -> int:
    from .inference import run_evaluate

    return _report_errors("evaluate", run_evaluate, args)


class _ParagraphFormatter(argparse.HelpFormatter):
    # Wraps the description like the default formatter but prints the epilog (example commands) as written, so a
    # command is never broken across lines.
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False, break_long_words=False)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


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

    predict = commands.add_parser(
        "predict", help="Predict the emotion of every utterance of a dialogue file (CSV or JSON).",
        description="Predict the emotion of every utterance of a dialogue, each from the dialogue up to that turn. "
        "The dialogue file has one turn per row (CSV, with a header) or per object (JSON list): `speaker`, `text`, "
        "and optionally `media` (one file with both streams, like a MELD clip) or `audio`/`video` paths, and "
        "`start`/`end` seconds to cut a window; relative paths are resolved against the file's folder. Turns with "
        "media get the fused text+audio+video prediction; a dialogue without media columns gets the text "
        "teacher's. Prints one line per utterance with its label and class probabilities.",
        epilog="example:\n  telme predict --model telme-demo/final --dialogue telme-demo/example_dialogue.csv",
        formatter_class=_ParagraphFormatter,
    )
    predict.add_argument("--model", required=True, help="A checkpoint folder (e.g. telme-demo/final) or a Hub id.")
    predict.add_argument("--dialogue", required=True, help="The dialogue file, .csv or .json.")
    predict.add_argument("--format", choices=["table", "json", "csv"], default="table",
                         help="Output: an aligned table (default), JSON (a list, one utterance per line) or CSV.")
    predict.add_argument("--on-bad-media", choices=["error", "skip", "zeros"], default="zeros",
                         help="For a turn whose media is missing or unusable: zeros in its place (default), skip = "
                         "predict that turn from its text alone, or error. The output's note says what was done.")
    predict.add_argument("--batch-size", type=_positive_int, default=4, help="Utterances per forward pass (default 4).")
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    predict.set_defaults(handler=_predict)

    evaluate = commands.add_parser(
        "evaluate", help="Evaluate a checkpoint on a MELD, IEMOCAP or synthetic split; per-class F1 of every part.",
        description="Evaluate the fused model and each of its parts (text teacher, audio and video students, all "
        "from one forward pass) on a split, in batches of consecutive utterances in CSV order. Prints the "
        "per-class F1 table (MELD in the paper's column order, with the paper's row for meld/iemocap) and writes "
        "metrics.json, confusion_matrix.png and predictions.csv to --output-dir. A converted original checkpoint "
        "attends across the batch in its fusion: evaluate it with --batch-size 4, as the authors did.",
        epilog="example (a converted original MELD checkpoint):\n  telme evaluate --model telme-meld-original "
        "--data meld --data-root /data/MELD.Raw --split test --batch-size 4",
        formatter_class=_ParagraphFormatter,
    )
    evaluate.add_argument("--model", required=True, help="A checkpoint folder or a Hub id.")
    evaluate.add_argument("--data", required=True, choices=["meld", "iemocap", "synthetic"],
                          help="The corpus; synthetic is the MELD-layout corpus of `telme make-corpus`/`telme demo`.")
    evaluate.add_argument("--data-root", required=True, help="The corpus folder (as for training's data_root).")
    evaluate.add_argument("--split", choices=["train", "dev", "test"], default="test", help="Default: test.")
    evaluate.add_argument("--batch-size", type=_positive_int, default=4,
                          help="Utterances per forward pass, in CSV order (default 4, as the original).")
    evaluate.add_argument("--output-dir", default=None,
                          help="Where to write metrics.json, confusion_matrix.png and predictions.csv "
                          "(default: telme-eval-DATA-SPLIT).")
    evaluate.add_argument("--on-bad-media", choices=["error", "skip", "zeros"], default="zeros",
                          help="For an utterance whose media is missing, unusable or too long: zeros in its place "
                          "(default, as the original), skip = leave it out of the metrics, or error.")
    evaluate.add_argument("--cache-dir", default=None,
                          help="A decoded-media cache folder to reuse or fill (e.g. a training run's cache/media).")
    evaluate.add_argument("--num-workers", type=int, default=0, help="Processes decoding media in parallel.")
    evaluate.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    evaluate.set_defaults(handler=_evaluate)

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
