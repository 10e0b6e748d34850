"""Faults a laptop meets: a kill, a full disk, two processes sharing a cache. Nothing half-written is taken as whole.

Kills are real SIGKILLs of a child process; a full disk is a write that raises `OSError(ENOSPC)` part-way through.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from telme_hf.atomic import atomic_open, atomic_write_text, stale_temporaries
from telme_hf.data.synthetic import INCOMPLETE_NAME, MELD_SPLITS, make_synthetic_corpus, synthetic_corpus_is_complete


TINY = {"train": 6, "dev": 3, "test": 3}  # the tiny_corpus fixture's corpus (seed 1)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


# ------------------------------------------------------------------------------------------------- disk full
class _FullDisk:
    """Files opened for writing under `folder`: the first `after` are written whole, the next takes `room` bytes
    and then raises ENOSPC (as a full disk does), and so does every later one."""

    def __init__(self, folder: Path, after: int = 0, room: int = 10):
        self.folder, self.after, self.room = str(Path(folder).resolve()), after, room
        self.hits: list[str] = []

    def wrap(self, original):
        def opener(file, mode="r", *args, **kwargs):
            stream = original(file, mode, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)) and any(flag in mode for flag in "wax+") and \
                    os.path.abspath(os.fspath(file)).startswith(self.folder):
                self.hits.append(os.fspath(file))
                if len(self.hits) > self.after:
                    return _FillingStream(stream, self.room)
            return stream

        return opener


class _FillingStream:
    def __init__(self, stream, room: int):
        self._stream, self._room = stream, room

    def write(self, data):
        if len(data) > self._room:
            self._stream.write(data[: self._room])
            self._room = 0
            self._stream.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._stream.write(data)

    def fileno(self):  # no sendfile or other write behind Python's back: every byte goes through write()
        raise io.UnsupportedOperation("fileno")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stream.close()

    def __iter__(self):
        return iter(self._stream)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@pytest.fixture
def full_disk(monkeypatch):
    """`full_disk(folder)`: from now on, writes under `folder` run out of space after a few bytes."""

    def install(folder: Path, after: int = 0, room: int = 10) -> _FullDisk:
        disk = _FullDisk(folder, after, room)
        monkeypatch.setattr(builtins, "open", disk.wrap(builtins.open))
        monkeypatch.setattr(io, "open", disk.wrap(io.open))
        return disk

    return install


def test_atomic_writes_leave_nothing_behind_when_the_disk_is_full(tmp_path, full_disk):
    target = tmp_path / "out" / "metrics.json"
    atomic_write_text(target, "old\n")
    full_disk(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new " * 100)
    with pytest.raises(OSError, match="No space left"):
        with atomic_open(tmp_path / "out" / "predictions.csv", "w") as stream:
            stream.write("a,b\n" * 100)
    assert target.read_text() == "old\n"  # the earlier file, whole
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.json"]
    assert stale_temporaries(tmp_path / "out") == []


# ----------------------------------------------------------------------------------------- corpus generation
# Generates the tiny corpus, SIGKILLing itself just before the Nth rename into place (or the one onto NAME): the
# file being written then exists only under its temporary name, as after a kill in the middle of writing it.
KILLED_GENERATION = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from telme_hf import atomic
    from telme_hf.data.synthetic import make_synthetic_corpus
    replace, seen = os.replace, {"n": 0}
    def killing_replace(source, target):
        seen["n"] += 1
        if seen["n"] == int(sys.argv[2]) or Path(target).name == sys.argv[3]:
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(source, target)
    atomic.os.replace = killing_replace
    make_synthetic_corpus(sys.argv[1], num_dialogues={"train": 6, "dev": 3, "test": 3}, seed=1, progress=False)
    """
)


@pytest.fixture(scope="module")
def uninterrupted_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    make_synthetic_corpus(root, num_dialogues=TINY, seed=1, progress=False)
    return files_of(root)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, name", [(1, ""), (2, ""), (25, ""), (0, "dev_sent_emo.csv"),
                                           (0, "corpus.json"), (0, "train_sent_emo.csv")],
                         ids=["marker", "first-clip", "mid-clips", "first-csv", "manifest", "train-csv"])
def test_a_corpus_killed_while_generated_is_finished_by_the_next_generation(kill_at, name, uninterrupted_corpus,
                                                                          tmp_path):
    root = tmp_path / "corpus"
    script = tmp_path / "generate.py"
    script.write_text(KILLED_GENERATION)
    killed = subprocess.run([sys.executable, str(script), str(root), str(kill_at), name], capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not synthetic_corpus_is_complete(root)
    # The recipe generates the corpus when the train CSV is missing: it goes in last.
    assert not (root / MELD_SPLITS["train"][0]).exists()

    make_synthetic_corpus(root, num_dialogues=TINY, seed=1, progress=False)  # no overwrite needed
    assert synthetic_corpus_is_complete(root)
    assert files_of(root) == uninterrupted_corpus  # same clips, same CSVs, same manifest, no leftovers


def test_an_interrupted_corpus_with_other_arguments_is_generated_again(uninterrupted_corpus, tmp_path):
    root = tmp_path / "corpus"
    make_synthetic_corpus(root, num_dialogues=TINY, seed=2, progress=False)
    (root / INCOMPLETE_NAME).write_text('{"seed": 2}\n')  # interrupted, with other arguments
    make_synthetic_corpus(root, num_dialogues=TINY, seed=1, progress=False)
    assert files_of(root) == uninterrupted_corpus


def _encoder_runs_out_of_space(at: int):
    """A stand-in for `av.open` whose `at`-th output file gets a few bytes, then the disk is full."""
    import av

    calls = {"n": 0}

    def opener(file, mode="r", **kwargs):
        if mode == "w":
            calls["n"] += 1
            if calls["n"] >= at:
                Path(file).write_bytes(b"\0\0\0\x20ftypisom")
                raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return av.open(file, mode, **kwargs)

    return opener


@pytest.fixture(scope="module")
def uninterrupted_cli_corpus(tmp_path_factory):
    from telme_hf.cli import main

    root = tmp_path_factory.mktemp("cli") / "corpus"
    assert main(["make-corpus", str(root), "--dialogues", "5", "--seed", "3", "--no-progress"]) == 0
    return files_of(root)


# The Python-level writes of a generation, in order: the marker, the corrupt clip (cut short), the dev and test
# CSVs, the manifest, the train CSV; the clips are written by the encoder.
@pytest.mark.parametrize("after, clip", [(0, 0), (1, 0), (2, 0), (4, 0), (5, 0), (99, 3)],
                         ids=["marker", "corrupt-clip", "dev-csv", "manifest", "train-csv", "encoded-clip"])
def test_a_full_disk_while_generating_ends_with_one_error_and_a_clean_rerun(after, clip, uninterrupted_cli_corpus,
                                                                            tmp_path, full_disk, monkeypatch, capsys):
    from telme_hf.cli import main
    from telme_hf.data import synthetic

    root = tmp_path / "corpus"
    argv = ["make-corpus", str(root), "--dialogues", "5", "--seed", "3", "--no-progress"]
    disk = full_disk(root, after=after)
    if clip:
        monkeypatch.setattr(synthetic.av, "open", _encoder_runs_out_of_space(clip))
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("telme make-corpus: error: [Errno 28] ") and "\n" not in error
    assert "No space left on device" in error
    assert clip or len(disk.hits) == after + 1
    assert not synthetic_corpus_is_complete(root) and not (root / MELD_SPLITS["train"][0]).exists()
    monkeypatch.undo()  # space again
    assert main(argv) == 0
    assert files_of(root) == uninterrupted_cli_corpus


# ---------------------------------------------------------------------------------------- user artefacts
def _no_temporaries(folder: Path) -> bool:
    return not [path for path in folder.rglob(".*") if ".tmp" in path.name or path.name.endswith(".partial")]


def _evaluate_argv(checkpoint, corpus, output_dir):
    return ["evaluate", "--model", str(checkpoint), "--data", "meld", "--data-root", str(corpus), "--split", "test",
            "--batch-size", "4", "--output-dir", str(output_dir), "--device", "cpu"]


@pytest.fixture(scope="module")
def evaluation_files(tiny_corpus, tmp_path_factory, tiny_tokenizer):
    """An uninterrupted `telme evaluate` run's files (with a checkpoint of its own, for the module's scope)."""
    import torch

    from telme_hf import TelMEConfig, TelMEForEmotionRecognition, build_processor
    from telme_hf.cli import main
    from telme_hf.inference.prediction import save_checkpoint

    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tiny_tokenizer)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("evaluation")
    checkpoint = save_checkpoint(TelMEForEmotionRecognition(config).eval(), build_processor(config, tiny_tokenizer),
                                 folder / "checkpoint")
    assert main(_evaluate_argv(checkpoint, tiny_corpus, folder / "eval")) == 0
    return checkpoint, files_of(folder / "eval")


# Written in this order: metrics.json, confusion_matrix.png, predictions.csv.
@pytest.mark.parametrize("after", [0, 1, 2], ids=["metrics.json", "confusion_matrix.png", "predictions.csv"])
def test_a_full_disk_while_evaluate_writes_ends_with_one_error_and_no_half_file(after, evaluation_files, tiny_corpus,
                                                                                tmp_path, full_disk, monkeypatch,
                                                                                capsys):
    from telme_hf.cli import main

    checkpoint, expected = evaluation_files
    output_dir = tmp_path / "eval"
    output_dir.mkdir()
    (output_dir / "predictions.csv").write_text("an earlier run's file\n")
    disk = full_disk(output_dir, after=after)
    assert main(_evaluate_argv(checkpoint, tiny_corpus, output_dir)) == 1
    assert len(disk.hits) == after + 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("telme evaluate: error: [Errno 28] ")
    assert "No space left on device" in stderr and "run the command again" in stderr
    assert _no_temporaries(output_dir)
    written = files_of(output_dir)
    assert written.pop("predictions.csv") == b"an earlier run's file\n"  # the earlier file, untouched
    assert all(written[name] == expected[name] for name in written)  # whatever is there is whole
    monkeypatch.undo()
    assert main(_evaluate_argv(checkpoint, tiny_corpus, output_dir)) == 0
    assert files_of(output_dir) == expected


@pytest.mark.parametrize("writer", ["metrics", "predictions", "example", "card"])
def test_each_artefact_writer_keeps_the_earlier_file_whole_when_the_disk_is_full(writer, tiny_corpus, tmp_path,
                                                                                 full_disk, monkeypatch):
    from telme_hf.data.meld import load_meld
    from telme_hf.hub.model_card import USAGE_END, USAGE_START, set_card_repo
    from telme_hf.inference.dialogue_files import write_example_dialogue
    from telme_hf.inference.reports import write_metrics_json, write_predictions_csv

    write = {
        "metrics": lambda: write_metrics_json({"weighted_f1": 0.5, "f1": {"a": 0.5}}, tmp_path / "metrics.json"),
        "predictions": lambda: write_predictions_csv(tmp_path / "predictions.csv", ["dia0_utt0"] * 50,
                                                     [[2.0, 0.1]] * 50, ["neg", "pos"]),
        "example": lambda: write_example_dialogue(load_meld(tiny_corpus, splits="test")["test"],
                                                  tmp_path / "example_dialogue.csv"),
        "card": lambda: set_card_repo(tmp_path, "you/telme") or pytest.fail("no card written"),
    }[writer]
    if writer == "card":
        (tmp_path / "README.md").write_text(f"---\nlicense: mit\n---\n\n{USAGE_START}x{USAGE_END}\n")
    else:
        write()
    before = files_of(tmp_path)
    full_disk(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        write()
    assert files_of(tmp_path) == before and _no_temporaries(tmp_path)
    monkeypatch.undo()
    write()


def test_a_space_export_that_runs_out_of_disk_leaves_no_folder_and_a_clean_rerun(tiny_checkpoint, tmp_path,
                                                                                   full_disk, monkeypatch):
    from telme_hf.hub.space import export_space

    expected = files_of(export_space(tiny_checkpoint, tmp_path / "whole"))
    for after in (0, len(expected) // 2, len(expected) - 1):
        disk = full_disk(tmp_path / "exports", after=after)
        with pytest.raises(OSError, match="No space left"):
            export_space(tiny_checkpoint, tmp_path / "exports" / "space")
        assert len(disk.hits) == after + 1
        assert not list((tmp_path / "exports").iterdir()), after  # no folder, and no half-built one beside it
        monkeypatch.undo()
    assert files_of(export_space(tiny_checkpoint, tmp_path / "exports" / "space")) == expected


# ----------------------------------------------------------------------------------------------- null turns
@pytest.mark.parametrize("field", ["text", "speaker"])
def test_a_null_text_or_speaker_is_refused_naming_the_turn(field, tiny_checkpoint, tmp_path, capsys,
                                                          tiny_model, tiny_processor):
    from telme_hf.cli import main
    from telme_hf.inference.dialogue_files import read_dialogue
    from telme_hf.modeling.pipeline_telme import prepare_dialogue

    turns = [{"speaker": "Ross", "text": "hello there"}, {"speaker": "Rachel", "text": "oh my god"}]
    turns[1][field] = None
    dialogue = tmp_path / "dialogue.json"
    dialogue.write_text(json.dumps(turns))
    with pytest.raises(ValueError, match=rf"dialogue.json, turn 1: {field} is null"):
        read_dialogue(dialogue)
    assert main(["predict", "--model", str(tiny_checkpoint), "--dialogue", str(dialogue)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"turn 1: {field} is null" in error and error.startswith("telme predict: error: ")
    # Given to the pipeline directly, the same turn is refused too.
    with pytest.raises(ValueError, match=rf"Turn 1: '{field}' must be a string, got NoneType None"):
        prepare_dialogue(turns, tiny_processor)


# ------------------------------------------------------------------------------------------ shared caches
def _cli(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "telme_hf.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_two_processes_sharing_one_cache_folder_both_succeed_with_the_same_output(evaluation_files, tiny_corpus,
                                                                                  tmp_path):
    checkpoint, expected = evaluation_files
    cache = tmp_path / "cache"
    runs = [_cli(*_evaluate_argv(checkpoint, tiny_corpus, tmp_path / f"eval{i}"), "--cache-dir", str(cache))
            for i in range(2)]
    example = tmp_path / "example_dialogue.csv"
    from telme_hf.data.meld import load_meld
    from telme_hf.inference.dialogue_files import write_example_dialogue

    write_example_dialogue(load_meld(tiny_corpus, splits="test")["test"], example)
    runs += [_cli("predict", "--model", str(checkpoint), "--dialogue", str(example), "--format", "json",
                  "--device", "cpu") for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, [err[-2000:] for _, err in outputs]
    for i in range(2):
        assert files_of(tmp_path / f"eval{i}") == expected
    assert outputs[2][0] == outputs[3][0] and json.loads(outputs[2][0])
    assert _no_temporaries(cache)
