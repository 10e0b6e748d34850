"""The package logger follows transformers' verbosity (the user's own level wins); bars honour the usual switches."""

from __future__ import annotations

import logging

import pytest
from transformers.utils import logging as hf_logging

from telme_hf.logging import get_logger, progress_disabled


@pytest.fixture
def verbosity():
    before = hf_logging.get_verbosity()
    library = logging.getLogger("telme_hf")
    level, propagate = library.level, library.propagate
    library.propagate = False  # only the package's own handler prints here
    yield hf_logging
    hf_logging.set_verbosity(before)
    library.setLevel(level)
    library.propagate = propagate


def test_messages_follow_transformers_verbosity_at_once(verbosity, capsys):
    logger = get_logger("telme_hf.data")
    verbosity.set_verbosity_warning()
    logger.info("an info line")
    logger.warning("a warning line")
    assert capsys.readouterr().err == "warning: a warning line\n"
    verbosity.set_verbosity_info()
    logger.info("an info line")
    assert capsys.readouterr().err == "an info line\n"
    verbosity.set_verbosity_error()
    logger.warning("a warning line")
    assert capsys.readouterr().err == ""


def test_a_level_the_user_sets_wins(verbosity, capsys):
    verbosity.set_verbosity_info()
    logging.getLogger("telme_hf").setLevel(logging.ERROR)
    get_logger("telme_hf.data").warning("hidden")
    get_logger("telme_hf.data").error("shown")
    assert capsys.readouterr().err == "error: shown\n"


def test_remote_code_module_names_are_placed_under_the_package_logger():
    assert get_logger("transformers_modules.someone.telme.media_telme").name == "telme_hf.media_telme"
    assert get_logger("telme_hf.data").name == "telme_hf.data"


@pytest.mark.parametrize("variable", ["TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS"])
def test_progress_bars_honour_the_usual_switches(variable, monkeypatch, verbosity):
    verbosity.set_verbosity_warning()
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    assert not progress_disabled()
    monkeypatch.setenv(variable, "1")
    assert progress_disabled()
    assert not progress_disabled(False)  # a run's explicit disable_tqdm=False decides
    monkeypatch.delenv(variable)
    verbosity.disable_progress_bar()
    try:
        assert progress_disabled()
    finally:
        verbosity.enable_progress_bar()
    verbosity.set_verbosity_error()  # as TrainingArguments.disable_tqdm defaults
    assert progress_disabled()
