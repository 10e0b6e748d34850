"""The `telme` command and the recipe: every --help works, and every command the README shows exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from telme_hf.cli import build_parser, main


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["make-corpus"], ["convert-original"]])
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
                words = shlex.split(part)
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
        if words[1] in ("demo", "train"):
            parser.parse_args(words[1:] + ([] if words[1] == "demo" or "--config" in words else ["--config", "x"]))
        if words[1] == "convert-original":
            from telme_hf.convert import build_parser as convert_parser

            known = {option for action in convert_parser()._actions for option in action.option_strings}
            for flag in [w for w in words[2:] if w.startswith("--")]:
                assert flag in known, flag


def test_readme_recipe_commands_name_existing_configs():
    for words in readme_commands():
        if "recipes/distill.py" in words:
            config = words[words.index("--config") + 1]
            assert (ROOT / config).exists(), config
            stage = words[words.index("--stage") + 1] if "--stage" in words else "all"
            assert stage in ("teacher", "audio", "video", "fusion", "all")
        if words[:2] == ["python", "benchmarks/bench_decode.py"]:
            assert (ROOT / words[1]).exists()


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "HF_HUB_OFFLINE=1 python -m pytest -q" in ci
    assert "HF_HUB_OFFLINE=1 python -m pytest -q" in (ROOT / "README.md").read_text()
