# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The `telme` command: `telme demo`, `telme train`, `telme predict`, `telme evaluate`, `telme app`,
`telme make-corpus`, `telme convert-original`, `telme upgrade-checkpoint`, `telme push`. Each subcommand's parser
and handler live here."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from pathlib import Path

from .errors import UsageError, report_error


# ------------------------------------------------------------------------------------------------------ handlers
# `telme demo`'s overrides of recipes/configs/tiny.yaml (--full: the config as written). The default's fewer epochs
# keep the fusion well above the text teacher. Measured on a 2-core machine at a load of 1.5 (`python
# benchmarks/run.py --only demo`): default 64 s wall, test weighted F1 teacher 69.8, fused 86.5; --full 109 s, teacher
# 69.9, fused 84.2. --quick also shrinks the corpus: every stage runs, the model learns little (`/usr/bin/time telme
# demo --quick`: 19 s wall, fused 59.4).
DEMO_LENGTHS = {
    "quick": ["synthetic_dialogues=60", "teacher_epochs=15", "audio_epochs=3", "video_epochs=5", "fusion_epochs=10"],
    "default": ["teacher_epochs=30", "audio_epochs=4", "video_epochs=8", "fusion_epochs=15"],
    "full": [],
}


def _demo(args: argparse.Namespace) -> int:
    from .inference.dialogue_files import predict_command
    from .training.arguments import packaged_config, parse_recipe_args
    from .training.plan import plan_run
    from .training.run import run_distillation

    length = "quick" if args.quick else "full" if args.full else "default"
    overrides = [f"output_dir={args.output_dir}", *DEMO_LENGTHS[length]]
    try:
        plan = plan_run(*parse_recipe_args(["--config", str(packaged_config("tiny")), *overrides, *args.overrides]))
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    started = time.time()
    run_distillation(plan, announce_next_step=False)
    output_dir = plan.output_dir
    print(f"Finished in {time.time() - started:.0f} s. Results: {output_dir / 'results.json'}; confusion matrix: "
          f"{output_dir / 'confusion_matrix.png'}; predictions: {output_dir / 'predictions.csv'}; "
          f"checkpoint: {output_dir / 'final'}")
    example = output_dir / "example_dialogue.csv"
    if example.exists():
        print(f"\nTry it on a test dialogue:\n  {predict_command(output_dir / 'final', example)}")
    recording = output_dir / "example_recording.mp4"
    if recording.exists():
        print(f"Or on a recording of test dialogues with its transcript:\n  telme predict --model "
              f"{output_dir / 'final'} --recording {recording} --transcript {recording.with_suffix('.srt')}")
    return 0


def _find_example(model: str, given: str | None) -> Path | None:
    """The example dialogue the page offers: --example, else one beside or inside a checkpoint folder (a demo's)."""
    if given:
        return Path(given)
    folder = Path(model).expanduser()
    if folder.is_dir():
        for candidate in (folder / "example_dialogue.csv", folder.parent / "example_dialogue.csv"):
            if candidate.is_file():
                return candidate
    return None


def _app(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UsageError('telme app needs Gradio: pip install "telme_hf[app]"') from None
    from .app import build_app, launch, read_card
    from .inference.dialogue_files import read_dialogue
    from .inference.prediction import load_model_and_processor

    example_file = _find_example(args.model, args.example)
    example = read_dialogue(example_file) if example_file else None
    if args.export:
        from .hub.space import export_space

        folder = export_space(args.model, args.export, example)
        print(f"Wrote a Space to {folder} (app.py, requirements.txt, README.md{', examples/' if example else ''}). "
              f"Try it: cd {folder} && python app.py; publish it: hf upload YOUR-NAME/SPACE {folder} . "
              "--repo-type space")
        return 0
    from .modeling.pipeline_telme import EmotionRecognitionInConversationPipeline

    model, processor = load_model_and_processor(args.model, args.device)
    # The installed pipeline class, built directly: `pipeline(task, ...)` would ask for trust_remote_code, since the
    # checkpoint names its own copy of the pipeline.
    erc = EmotionRecognitionInConversationPipeline(model=model, processor=processor, device=model.device)
    card, confusion = read_card(args.model)
    page = build_app(erc, card, confusion, example)
    launch(page, args.host, args.port, args.share)
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub.push import push_folder_to_hub

    url = push_folder_to_hub(args.folder, args.repo_id, private=not args.public)
    print(f"Uploaded {args.folder} to {url}")
    return 0


def _train(argv: list[str]) -> int:
    from .recipes.distill import main as recipe_main

    return recipe_main(argv, prog="telme train")


def _predict(args: argparse.Namespace) -> int:
    from .inference.dialogue_files import read_dialogue, render_predictions
    from .inference.prediction import load_model_and_processor, prepare_dialogue
    from .modeling.pipeline_telme import format_predictions, predict_logits

    if args.recording is None:
        for option, value in (("--transcript", args.transcript), ("--asr", args.asr), ("--plot", args.plot)):
            if value is not None:
                raise UsageError(f"{option} goes with --recording FILE (a dialogue file's turns have no times).")
        if args.format in ("srt", "vtt"):
            raise UsageError(f"--format {args.format} writes a recording's cues: give --recording FILE and "
                             "--transcript FILE (or --asr).")
    elif args.transcript is None and args.asr is None:
        raise UsageError("--recording needs its transcript: --transcript FILE (.srt, .vtt or .csv), or --asr to "
                         "recognise the speech (default model: openai/whisper-small).")
    elif args.transcript is not None and args.asr is not None:
        raise UsageError("Give --transcript or --asr, not both.")
    if args.transcript is not None:
        from .inference.recordings import read_transcript

        read_transcript(args.transcript)  # a bad transcript is reported before the model loads
    if args.quantize and args.device not in (None, "cpu"):
        raise UsageError(f"--quantize {args.quantize} runs on the CPU: drop --device {args.device}.")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model, processor = load_model_and_processor(args.model, args.device, quantize=args.quantize)
    if args.recording is not None:
        from .inference.recordings import plot_timeline, predict_recording

        results = predict_recording((model, processor), args.recording, args.transcript, asr_model=args.asr,
                                    on_bad_media=args.on_bad_media, batch_size=args.batch_size, top_k=args.top_k,
                                    device=args.device, cli_hint=True)
        if args.plot:
            plot_timeline(results, args.plot, title=Path(args.recording).name)
    else:
        turns = read_dialogue(args.dialogue, media_root=args.media_root)
        utterances = prepare_dialogue(turns, processor, args.on_bad_media, source=str(args.dialogue), cli_hint=True)
        outputs = predict_logits(model, processor, utterances, args.batch_size)
        results = format_predictions(outputs, utterances, model.config.id2label, top_k=args.top_k)
    print(render_predictions(results, model.config.label_names, args.format))
    if args.recording is not None and args.plot:
        print(f"Emotion timeline: {args.plot}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data.registry import get_corpus
    from .inference.evaluation import evaluate_split, load_evaluation_split, write_evaluation
    from .inference.reports import format_per_class_table
    from .inference.prediction import load_model_and_processor

    model, processor = load_model_and_processor(args.model, args.device)
    dataset, report = load_evaluation_split(args.data, args.data_root, args.split, processor, model.config,
                                            args.on_bad_media)
    results = evaluate_split(model, processor, dataset, batch_size=args.batch_size, on_bad_media=args.on_bad_media,
                             cache=args.cache_dir, num_workers=args.num_workers, report=report, split=args.split,
                             features_cache=Path(args.cache_dir) / "features" if args.cache_dir else None)
    labels = model.config.label_names
    reference = get_corpus(args.data).paper
    output_dir = Path(args.output_dir or f"telme-eval-{args.data}-{args.split}")
    setup = {"model": str(args.model), "data": args.data, "data_root": str(args.data_root), "split": args.split,
             "batch_size": args.batch_size, "on_bad_media": args.on_bad_media, "num_samples": results["num_samples"]}
    paths = write_evaluation(results, output_dir, labels, setup, reference)
    table = format_per_class_table({name: results[name] for name in ("teacher", "audio", "video", "fusion")
                                    if name in results}, labels, reference=reference)
    bad = results["bad_media"]
    action = "dropped" if args.on_bad_media == "skip" else "given zeros"
    print(f"{args.split} split of {args.data} ({results['num_samples']} utterances, batch size {args.batch_size}), "
          f"per-class F1 (%):\n{table}")
    if bad:
        print(f"{len(bad)} utterance(s) with bad media {action}: {', '.join(list(bad)[:5])}"
              f"{' …' if len(bad) > 5 else ''} (all listed in metrics.json)")
    print(f"Wrote {paths['metrics']}, {paths['confusion_matrix']} and {paths['predictions']}")
    return 0


def _make_corpus(args: argparse.Namespace) -> int:
    import json

    from .data.synthetic import MANIFEST_NAME, make_synthetic_corpus

    root = make_synthetic_corpus(
        args.root, num_dialogues=args.dialogues, seed=args.seed, text_noise=args.text_noise,
        audio_noise=args.audio_noise, video_noise=args.video_noise, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    manifest = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    counts = ", ".join(f"{split} {info['utterances']}" for split, info in manifest["splits"].items())
    print(f"Wrote a synthetic MELD corpus to {root} ({counts} utterances; seed {args.seed}).")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .hub.convert import convert_original_checkpoint
    from .data.registry import get_corpus

    folder = convert_original_checkpoint(
        teacher=args.teacher, audio_student=args.audio_student, video_student=args.video_student,
        fusion=args.fusion, dataset=args.dataset, output_dir=args.output, config=args.config,
        tokenizer=args.tokenizer, iemocap_av_order=args.iemocap_av_order,
    )
    print(f"Converted checkpoint written to {folder}. Check it with:\n  telme evaluate --model {folder} --data "
          f"{args.dataset} --data-root {get_corpus(args.dataset).default_root} --split test --batch-size 4")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from .hub.upgrade import upgrade_checkpoint

    changes = upgrade_checkpoint(args.folder)
    if changes["moved"]:
        print(f"Moved {', '.join(changes['moved'])} from {Path(args.folder) / 'config.json'} into "
              "processor_config.json.")
    print(f"Wrote this version's code into {args.folder} ({', '.join(changes['code'])})"
          + (f"; removed {', '.join(changes['removed'])}." if changes["removed"] else "."))
    return 0


# -------------------------------------------------------------------------------------------------------- parser

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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `telme` parser. With `command`, only that subcommand gets its options: their choices come from modules
    that import torch, transformers or datasets, which `telme --help` and `--version` should not wait for."""
    from . import __version__

    def full(name: str) -> bool:
        return command is None or command == name

    parser = argparse.ArgumentParser(
        prog="telme", description="TelME: emotion recognition in conversation from text, audio and video.",
        epilog="example:\n  telme demo --quick\n  telme predict --model telme-demo/final --dialogue "
        "telme-demo/example_dialogue.csv\n\n`telme COMMAND --help` explains each command.",
        formatter_class=_ParagraphFormatter,
    )
    parser.add_argument("--version", action="version", version=f"telme_hf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="Train a tiny TelME on the embedded synthetic corpus, all three stages, and report.",
        description="Generate the synthetic MELD-layout corpus (or reuse it), train the tiny model through the "
        "teacher, student and fusion stages with recipes/distill.py's code and recipes/configs/tiny.yaml, and print "
        "the per-class test table. Runs offline on a CPU.",
        epilog="example:\n  telme demo --quick --output-dir telme-demo", formatter_class=_ParagraphFormatter,
    )
    demo.add_argument("--output-dir", default="telme-demo", help="Where to write the corpus, checkpoints and reports.")
    length = demo.add_mutually_exclusive_group()
    length.add_argument("--quick", action="store_true",
                        help="A smaller corpus and fewer epochs: about 20 s on a 2-core machine at a load of 1.5, "
                        "but the model learns little (fused test weighted F1 59.4).")
    length.add_argument("--full", action="store_true",
                        help="recipes/configs/tiny.yaml's epochs as written: about 110 s instead of 65 on a 2-core "
                        "machine at a load of 1.5; on the small synthetic test split it scores no higher (fused "
                        "test weighted F1 84.2 against 86.5).")
    demo.add_argument("overrides", nargs="*", help="key=value overrides of the recipe's options (e.g. fusion_epochs=5).")
    demo.set_defaults(handler=_demo)

    # `telme train` is `recipes/distill.py`: its own parser (every TrainingArguments option) answers --help.
    commands.add_parser("train", help="Train TelME with recipes/distill.py (a YAML config plus overrides).",
                        add_help=False)

    predict = commands.add_parser(
        "predict", help="Predict the emotion of every utterance of a dialogue file (CSV or JSON) or of a recording.",
        description="Predict the emotion of every utterance of a dialogue, each from the dialogue up to that turn. "
        "The dialogue file has one turn per row (CSV, with a header) or per object (JSON list): `speaker`, `text`, "
        "and optionally `media` (one file with both streams, like a MELD clip) or `audio`/`video` paths, and "
        "`start`/`end` seconds to cut a window; relative paths are resolved against the file's folder. Turns with "
        "media get the fused prediction (a turn with only audio or only video: zeros for the other stream, as the "
        "fusion was trained); turns without media get the text teacher's. Prints one line per utterance with its "
        "label, class probabilities, the streams used, the text teacher's own label (\"text alone\") and the "
        "shift audio/video made (its norm relative to the text feature, λ, and whether it moved the label). "
        "Or give one recording (--recording, any audio or video file) and its transcript (--transcript: SRT, WebVTT "
        "with <v Speaker> tags, or a CSV with start, end, speaker, text) or --asr: each cue is one utterance, its "
        "audio and frames cut from the recording by its times, decoded cue by cue.",
        epilog="examples:\n  telme predict --model telme-demo/final --dialogue telme-demo/example_dialogue.csv\n"
        "  telme predict --model telme-demo/final --recording talk.mp4 --transcript talk.srt --plot talk.png\n"
        "  telme predict --model telme-demo/final --recording talk.mp4 --asr --format vtt > talk.emotions.vtt",
        formatter_class=_ParagraphFormatter,
    )
    if full('predict'):
        from .modeling.media_telme import BAD_MEDIA_POLICIES

        from .inference.recordings import DEFAULT_ASR_MODEL

        predict.add_argument("--model", required=True, help="A checkpoint folder (e.g. telme-demo/final) or a Hub id.")
        given = predict.add_mutually_exclusive_group(required=True)
        given.add_argument("--dialogue", help="The dialogue file, .csv or .json.")
        given.add_argument("--recording", help="One audio or video file holding the whole conversation.")
        predict.add_argument("--transcript", help="The recording's transcript: .srt, .vtt (speakers from <v Name> "
                             "tags or a 'NAME:' prefix) or .csv (start, end, speaker, text; times in seconds).")
        predict.add_argument("--asr", nargs="?", const=DEFAULT_ASR_MODEL, default=None, metavar="MODEL",
                             help=f"No transcript: recognise the recording's speech with this model (default "
                             f"{DEFAULT_ASR_MODEL}); every cue's speaker is then 'Speaker'.")
        predict.add_argument("--plot", metavar="FILE.png", help="With --recording: also save an emotion timeline "
                             "per speaker.")
        predict.add_argument("--format", choices=["table", "json", "csv", "srt", "vtt"], default="table",
                             help="Output: an aligned table (default), JSON (a list, one utterance per line), CSV, or "
                             "with --recording the transcript with the emotion in each cue (srt or vtt).")
        predict.add_argument("--on-bad-media", choices=list(BAD_MEDIA_POLICIES), default="skip",
                             help="For a turn whose media is missing or unusable: skip = predict that turn from its text "
                             "alone (default), zeros in its place, or error. The output's note says what was done.")
        predict.add_argument("--top-k", type=_positive_int, default=None,
                             help="Show the k most probable emotions of each utterance instead of every emotion's score.")
        predict.add_argument("--media-root", default=None,
                             help="The folder that relative media paths in the dialogue file start from (default: the "
                             "dialogue file's folder).")
        predict.add_argument("--batch-size", type=_positive_int, default=4, help="Utterances per forward pass (default 4).")
        predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
        predict.add_argument("--quantize", choices=["int8"], default=None,
                             help="On a CPU: int8 dynamic quantisation of the linear layers. At full size on 2 cores "
                             "it measured 1.16 s per utterance against 2.89 s in fp32, with the same labels "
                             "(benchmarks/bench_inference.py; random weights); on the trained tiny demo the labels "
                             "stayed, probabilities moved by up to 0.24. Check your checkpoint's labels against fp32.")
        predict.add_argument("--threads", type=_positive_int, default=None,
                             help="CPU threads for the model (default: torch's, one per core; on a busy machine "
                             "fewer can be faster).")
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
    if full('evaluate'):
        from .data.registry import CORPUS_NAMES
        from .modeling.media_telme import BAD_MEDIA_POLICIES

        evaluate.add_argument("--model", required=True, help="A checkpoint folder or a Hub id.")
        evaluate.add_argument("--data", required=True, choices=list(CORPUS_NAMES),
                              help="The corpus; synthetic is the MELD-layout corpus of `telme make-corpus`/`telme demo`.")
        evaluate.add_argument("--data-root", required=True, help="The corpus folder (as for training's data_root).")
        evaluate.add_argument("--split", choices=["train", "dev", "test"], default="test", help="Default: test.")
        evaluate.add_argument("--batch-size", type=_positive_int, default=4,
                              help="Utterances per forward pass, in CSV order (default 4, as the original).")
        evaluate.add_argument("--output-dir", default=None,
                              help="Where to write metrics.json, confusion_matrix.png and predictions.csv "
                              "(default: telme-eval-DATA-SPLIT).")
        evaluate.add_argument("--on-bad-media", choices=list(BAD_MEDIA_POLICIES), default="zeros",
                              help="For an utterance whose media is missing, unusable or too long: zeros in its place "
                              "(default, as the original), skip = leave it out of the metrics, or error.")
        evaluate.add_argument("--cache-dir", default=None,
                              help="A cache folder to reuse or fill: decoded media (e.g. a training run's cache/media) "
                              "and, under features/, every encoder's features, so that evaluating the same checkpoint "
                              "again runs only the heads and the fusion.")
        evaluate.add_argument("--num-workers", type=int, default=0, help="Processes decoding media in parallel.")
        evaluate.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    evaluate.set_defaults(handler=_evaluate)

    corpus = commands.add_parser(
        "make-corpus", help="Write the synthetic MELD-layout corpus to a folder.",
        description="Write a small synthetic corpus laid out exactly like an unpacked MELD.Raw (3 CSVs + mp4 clips "
        "with H.264 video and AAC stereo audio), where text, audio and video each signal the emotion with noise. "
        "It includes one missing dev clip and one corrupt train clip, listed in DIR/corpus.json.",
        epilog="example:\n  telme make-corpus synthetic-meld --dialogues 240", formatter_class=_ParagraphFormatter,
    )
    if full('make-corpus'):
        from .data.synthetic import DEFAULT_NUM_DIALOGUES

        corpus.add_argument("root", metavar="DIR", help="Output folder (must be empty or absent, see --overwrite).")
        corpus.add_argument("--dialogues", type=_positive_int, default=DEFAULT_NUM_DIALOGUES,
                            help=f"Total dialogues, split 2/3 train, 2/15 dev, 1/5 test (~5 utterances each; default "
                            f"{DEFAULT_NUM_DIALOGUES}).")
        corpus.add_argument("--seed", type=int, default=0, help="Random seed; same seed, same files (default 0).")
        corpus.add_argument("--text-noise", type=float, default=0.1, help="Probability the text cue is wrong (0.1).")
        corpus.add_argument("--audio-noise", type=float, default=0.25, help="Probability the audio cue is wrong (0.25).")
        corpus.add_argument("--video-noise", type=float, default=0.25, help="Probability the video cue is wrong (0.25).")
        corpus.add_argument("--overwrite", action="store_true", help="Replace an earlier synthetic corpus in DIR.")
        corpus.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    corpus.set_defaults(handler=_make_corpus)

    convert = commands.add_parser(
        "convert-original", help="Convert the original TelME release checkpoints.",
        description="Convert the authors' released TelME checkpoints (teacher.bin, the two total_student.bin, "
        "total_fusion.bin) into a telme_hf checkpoint folder that reproduces the original behaviour.",
        epilog="example:\n  telme convert-original --teacher teacher.bin --audio-student student_audio/total_student.bin "
        "\\\n    --video-student student_video/total_student.bin --fusion total_fusion.bin --dataset meld "
        "--output telme-meld-original", formatter_class=_ParagraphFormatter,
    )
    if full('convert-original'):
        from .hub.convert import AV_ORDER_CHOICES
        from .hub.convert import DATASETS as CONVERTIBLE
        from .modeling.configuration_telme import TEXT_BACKBONE

        convert.add_argument("--teacher", required=True, help="The original teacher.bin.")
        convert.add_argument("--audio-student", required=True, help="The original student_audio/total_student.bin.")
        convert.add_argument("--video-student", required=True, help="The original student_video/total_student.bin.")
        convert.add_argument("--fusion", required=True, help="The original total_fusion.bin.")
        convert.add_argument("--dataset", required=True, choices=list(CONVERTIBLE), help="Which release the files come from.")
        convert.add_argument("--output", required=True, help="The checkpoint folder to write.")
        convert.add_argument("--config", help="A TelMEConfig JSON file or folder whose backbone sub-configs replace the "
                             "preset's (labels, fusion and behaviours still come from --dataset).")
        convert.add_argument("--tokenizer", help=f"Tokenizer Hub id or local folder (default: {TEXT_BACKBONE} from the "
                             "Hub; pass a local copy offline).")
        convert.add_argument("--iemocap-av-order", choices=AV_ORDER_CHOICES, default=None, metavar="ORDER",
                             help="IEMOCAP only: the fusion's modality order, 'audio,video' (default: how the released "
                             "weights were trained) or 'video,audio' (what the original IEMOCAP/inference.py feeds).")
    convert.set_defaults(handler=_convert)

    upgrade = commands.add_parser(
        "upgrade-checkpoint", help="Bring a checkpoint written by an earlier telme_hf up to date.",
        description="Replace the model, processor and pipeline code a checkpoint carries by this version's (so that "
        "pipeline(model=FOLDER, trust_remote_code=True) runs the same code with or without telme_hf), and move a "
        "telme_hf 0.1 checkpoint's preprocessing options (prompt, audio and frame decoding, speaker indexing, "
        "duration limit) from config.json into processor_config.json; predictions do not change.",
        epilog="example:\n  telme upgrade-checkpoint telme-demo/final", formatter_class=_ParagraphFormatter,
    )
    upgrade.add_argument("folder", help="The checkpoint folder.")
    upgrade.set_defaults(handler=_upgrade)

    app = commands.add_parser(
        "app", help="Try a checkpoint in a browser: a page that predicts a conversation built turn by turn.",
        description="Serve a Gradio page for a checkpoint: build a conversation turn by turn (speaker, text and an "
        "optional clip, uploaded or recorded), or load the example dialogue (a demo run's example_dialogue.csv, or "
        "--example), and get one emotion per utterance with every class's probability, the modalities used and a "
        "note; a second tab shows the checkpoint's card and confusion matrix. Predictions go through the same "
        "pipeline as `telme predict`. Needs the optional extra: pip install \"telme_hf[app]\". With --export, "
        "write a folder that runs as a Hugging Face Space instead.",
        epilog="example:\n  telme app --model telme-demo/final\n  telme app --model you/telme-meld --export "
        "telme-space", formatter_class=_ParagraphFormatter,
    )
    app.add_argument("--model", required=True, help="A checkpoint folder (e.g. telme-demo/final) or a Hub id.")
    app.add_argument("--port", type=_positive_int, default=7860, help="Port to serve on (default 7860).")
    app.add_argument("--host", default="127.0.0.1",
                     help="Address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface).")
    app.add_argument("--share", action="store_true", help="Also open a temporary public gradio.live link.")
    app.add_argument("--example", default=None,
                     help="A dialogue file (CSV or JSON, as for `telme predict`) that 'Load the example' fills in.")
    app.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    app.add_argument("--export", default=None, metavar="DIR",
                     help="Write a Hugging Face Space (app.py, requirements.txt, README.md, the example) to DIR "
                     "and exit; a checkpoint folder is copied into it, a Hub id is loaded from the Hub.")
    app.set_defaults(handler=_app)

    push = commands.add_parser(
        "push", help="Upload a checkpoint folder (a run's final/) to the Hugging Face Hub.",
        description="Upload a checkpoint folder (model, processor, the model code, model card, results.json and "
        "each stage's trainer state) to a model repository on the Hub, created if needed (private unless --public). "
        "The card's usage section is pointed at the repository first. Needs a token (`hf auth login` or HF_TOKEN).",
        epilog="example:\n  telme push telme-meld/final --repo-id you/telme-meld", formatter_class=_ParagraphFormatter,
    )
    push.add_argument("folder", help="The checkpoint folder (e.g. telme-meld/final).")
    push.add_argument("--repo-id", required=True, help="The model repository: NAME (under your account) or USER/NAME.")
    push.add_argument("--public", action="store_true", help="Create the repository public (default: private).")
    push.set_defaults(handler=_push)
    parser.subcommands = commands.choices  # name -> subparser, for errors in the subcommand's own usage
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if argv and argv[0] == "train":
        return _train(argv[1:])
    parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else "")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command != "demo":  # the subcommand's own usage, not the root's
            parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        args.overrides = [*args.overrides, *unknown]  # demo passes options on to the recipe, which checks them
    from .modeling.media_telme import MediaError

    # A mistake in the options ends with status 2; bad input (a missing file, a malformed dialogue, unusable media
    # under --on-bad-media error) with status 1; both with one line, never a traceback.
    try:
        return args.handler(args)
    except UsageError as error:
        return report_error(f"telme {args.command}", error, status=2)
    except (MediaError, OSError, ValueError) as error:
        return report_error(f"telme {args.command}", error, status=1)


if __name__ == "__main__":
    sys.exit(main())
