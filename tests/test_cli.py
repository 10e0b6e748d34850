"""The `telme` command and the recipe: every --help works, and every command the README shows exists."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from telme_hf.cli import build_parser, main


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["train"], ["predict"], ["evaluate"], ["make-corpus"], ["convert-original"],
                ["upgrade-checkpoint"], ["push"]]
)
def test_every_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_recipe_help():
    result = subprocess.run([sys.executable, str(ROOT / "recipes" / "distill.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout and "--stage" in result.stdout


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"&&", line):
                words = shlex.split(part.split(" > ", 1)[0])  # a redirection is the shell's, not an argument
                if words:
                    commands.append(words)
    return commands


def test_readme_telme_commands_and_flags_exist():
    commands = readme_commands()
    telme = [words for words in commands if words[0] == "telme"]
    assert telme, "the README shows no telme command"
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    for words in telme:
        assert words[1] in subcommands, words
        if words[1] == "demo":
            parser.parse_args(words[1:])
        if words[1] == "train":
            check_recipe_overrides(words[2:])
        if words[1] in ("predict", "evaluate", "convert-original", "upgrade-checkpoint"):
            # Every flag and value must parse as written: the README's commands run without extra arguments.
            args = parser.parse_args(words[1:])
            assert args.handler.__name__ == {"convert-original": "_convert", "upgrade-checkpoint": "_upgrade"}.get(
                words[1], f"_{words[1]}")


def check_recipe_overrides(words):
    """Every option a README recipe command sets exists (`--config` aside, which is checked for its file)."""
    from telme_hf.training.arguments import override_tokens, resolve_config

    if "--config" in words:
        position = words.index("--config")
        name = words[position + 1]
        resolve_config(ROOT / name if (ROOT / name).exists() else name)  # a file, or a packaged config's name
        words = words[:position] + words[position + 2:]
    override_tokens(words)  # raises on an unknown option


def test_readme_shows_predict_and_evaluate():
    shown = {tuple(words[:2]) for words in readme_commands() if words[0] == "telme"}
    assert {("telme", "predict"), ("telme", "evaluate")} <= shown
    original = [words for words in readme_commands() if words[:2] == ["telme", "evaluate"] and "meld" in words]
    assert original and original[0][original[0].index("--batch-size") + 1] == "4"


def test_readme_dialogue_csv_is_what_predict_reads(tmp_path):
    from telme_hf.inference.dialogue_files import read_dialogue

    blocks = re.findall(r"```csv\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks, "the README shows no dialogue CSV"
    (tmp_path / "dialogue.csv").write_text(blocks[0])
    turns = read_dialogue(tmp_path / "dialogue.csv")
    assert turns and all(turn["speaker"] and turn["text"] and "media" in turn for turn in turns)
    assert all(Path(turn["media"]).parent.parent == tmp_path for turn in turns)


def test_readme_recipe_commands_name_existing_configs():
    for words in readme_commands():
        if "recipes/distill.py" in words:
            config = words[words.index("--config") + 1]
            assert (ROOT / config).exists(), config
            check_recipe_overrides(words[words.index("recipes/distill.py") + 1:])
            for flag in ("--stage", "--stages"):
                if flag in words:
                    assert words[words.index(flag) + 1] in ("teacher", "audio", "video", "fusion")
        if words[0] == "python" and words[1].startswith("benchmarks/"):
            assert (ROOT / words[1]).exists(), words[1]


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "HF_HUB_OFFLINE=1 python -m pytest -q" in ci
    assert "HF_HUB_OFFLINE=1 python -m pytest -q" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_demo_quick_end_to_end_and_its_predict_command_works(tmp_path, capsys):
    # At error verbosity the demo prints its table and paths and nothing else: no bars, no logs, no metric dicts.
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    demo = subprocess.run([sys.executable, "-m", "telme_hf.cli", "demo", "--quick", "--output-dir",
                           str(tmp_path / "demo")], capture_output=True, text=True, env=env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert demo.stderr == ""
    out = demo.stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == "Test split, per-class F1 (%):"
    assert lines[1].split() == ["model", "neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger",
                                "weighted", "F1"]
    assert set(lines[2]) == {"-"}
    assert [line.split()[0] for line in lines[3:7]] == ["teacher", "audio", "video", "fusion"]
    assert lines[7].startswith("Finished in ") and "results.json" in lines[7]
    assert lines[8] == "Try it on a test dialogue:" and len(lines) == 12
    assert lines[10] == "Or on a recording of test dialogues with its transcript:"
    assert (tmp_path / "demo" / "confusion_matrix.png").exists() and (tmp_path / "demo" / "predictions.csv").exists()
    # Where the run's time went, phase by phase; the phases add up to the run (less the gaps between them; each
    # figure is rounded to 0.01 s, so their sum may pass the rounded total by up to 0.045 s).
    timings = json.loads((tmp_path / "demo" / "results.json").read_text())["timings_s"]
    phases = ["load", "decode", "teacher", "audio", "video", "fusion", "evaluation", "artefacts"]
    assert list(timings) == [*phases, "total"]
    assert all(timings[phase] > 0 for phase in phases)
    assert 0.95 * timings["total"] - 0.5 <= sum(timings[phase] for phase in phases) <= timings["total"] + 0.045
    assert "timings_s" not in json.loads((tmp_path / "demo" / "final" / "results.json").read_text())
    for command in (lines[9].strip(), lines[11].strip()):
        assert command.startswith("telme predict --model ")
        assert main(shlex.split(command)[1:] + ["--format", "json"]) == 0
        predictions = json.loads(capsys.readouterr().out)
        assert predictions and all(abs(sum(p["scores"].values()) - 1) < 1e-4 for p in predictions)
    assert "start" in predictions[0] and predictions[-1]["end"] > predictions[0]["start"]  # the recording's cues


def test_version_and_usage_errors_end_with_status_2_and_one_line(tmp_path, capsys):
    from telme_hf import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"telme_hf {__version__}"
    # An option the demo does not know is the recipe's to judge: one line, not the root parser's usage.
    assert main(["demo", "--bogus", "--output-dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "telme demo: error: option '--bogus': unknown option 'bogus'. `--help` lists every option."
    assert not (tmp_path / "demo").exists()  # refused before anything is written
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--model", "m", "--dialogue", "d.csv", "--zzz"])
    assert exit_info.value.code == 2 and "usage: telme predict" in capsys.readouterr().err
    assert main(["train", "--config", "missing.yaml"]) == 2
    assert "missing.yaml not found" in capsys.readouterr().err
    assert main(["train", "--config", "tiny", "--lerning_rate", "1"]) == 2
    assert "Did you mean learning_rate" in capsys.readouterr().err


def test_train_with_missing_media_folders_is_one_line_with_status_1(tmp_path, tiny_corpus, capsys):
    import shutil

    root = tmp_path / "MELD.Raw"  # the CSVs without the clip folders
    root.mkdir()
    for name in ("train", "dev", "test"):
        shutil.copy(tiny_corpus / f"{name}_sent_emo.csv", root)
    code = main(["train", "--config", "tiny", "dataset=meld", f"data_root={root}", f"output_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "train_splits not found" in err and "--stages teacher" in err
