"""A killed run resumes where it stopped and ends exactly as an uninterrupted one; a kill's leftovers are cleaned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from telme_hf.training.resume import last_checkpoint, read_state, resume_point, take_cache_lock


# Runs the recipe, SIGKILLing itself (as a crash or an out-of-memory kill would) after N training steps of one stage
# (KILL_STAGE=audio), after N clips of the decode pass (KILL_STAGE=decode), after N batches of a frozen-output pass
# (KILL_STAGE=frozen), or right after a stage is recorded as finished (KILL_STAGE=after:teacher).
KILLING_RECIPE = textwrap.dedent(
    """
    import os, signal, sys
    from telme_hf.data import frozen_outputs, media_cache
    from telme_hf.training import run, trainer
    stage, after = os.environ.get("KILL_STAGE"), int(os.environ.get("KILL_AFTER", "0"))
    seen = {"count": 0}
    def count(hit):
        if hit:
            seen["count"] += 1
            if seen["count"] == after:
                os.kill(os.getpid(), signal.SIGKILL)
    step = trainer.TelMEStageTrainer.training_step
    def training_step(self, *args, **kwargs):
        loss = step(self, *args, **kwargs)
        count(self.args.stage == stage)
        return loss
    trainer.TelMEStageTrainer.training_step = training_step
    get = media_cache.MediaCache.get
    def cached_get(self, *args, **kwargs):
        clip = get(self, *args, **kwargs)
        count(stage == "decode")
        return clip
    media_cache.MediaCache.get = cached_get
    infer = frozen_outputs.run_inference
    def run_inference(model, batches, step):
        def counted(model, batch):
            outputs = step(model, batch)
            count(stage == "frozen")
            return outputs
        return infer(model, batches, counted)
    frozen_outputs.run_inference = run_inference
    record = run.record_stage
    def record_stage(output_dir, finished, *args, **kwargs):
        record(output_dir, finished, *args, **kwargs)
        count(stage == f"after:{finished}")
    run.record_stage = record_stage
    from telme_hf.recipes.distill import main
    sys.exit(main(sys.argv[1:]))
    """
)


def run_recipe(tmp_path: Path, output_dir: Path, corpus: Path, *extra: str, kill: tuple[str, int] | None = None):
    script = tmp_path / "recipe.py"
    script.write_text(KILLING_RECIPE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    if kill:
        env.update(KILL_STAGE=kill[0], KILL_AFTER=str(kill[1]))
    argv = ["--config", "tiny", f"output_dir={output_dir}", f"data_root={corpus}", "num_train_epochs=2",
            "teacher_epochs=2", "fusion_epochs=3", "per_device_train_batch_size=4", "logging_steps=1", *extra]
    return subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, env=env)


def final_state(output_dir: Path):
    results = json.loads((output_dir / "results.json").read_text())["stages"]
    return results, load_file(str(output_dir / "final" / "model.safetensors"))


def resume_and_compare(tmp_path: Path, output_dir: Path, corpus: Path, uninterrupted) -> None:
    """Run the killed run again with `--resume`; its results and final weights must be the uninterrupted run's."""
    resumed = run_recipe(tmp_path, output_dir, corpus, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results, weights = final_state(output_dir)
    expected_results, expected_weights = uninterrupted
    assert results == expected_results
    assert weights.keys() == expected_weights.keys()
    for name, tensor in expected_weights.items():
        assert torch.equal(weights[name], tensor), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_corpus):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    proc = run_recipe(tmp_path, tmp_path / "run", tiny_corpus)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return final_state(tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize("stage, after", [("audio", 3), ("audio", 11), ("fusion", 11)])
def test_a_run_killed_mid_epoch_resumes_to_the_same_results_and_weights(stage, after, uninterrupted, tiny_corpus,
                                                                       tmp_path):
    output_dir = tmp_path / "run"
    # 29 train utterances in batches of 4: 8 steps an epoch; step 3 is in epoch 1, step 11 in epoch 2.
    killed = run_recipe(tmp_path, output_dir, tiny_corpus, kill=(stage, after))
    assert killed.returncode == -9, killed.stderr[-3000:]
    finished = list(read_state(output_dir)["stages"])
    assert finished == {"audio": ["teacher"], "fusion": ["teacher", "audio", "video"]}[stage]
    previous = list((output_dir / finished[-1]).glob("checkpoint-*"))
    if after < 8:
        # No checkpoint of the killed stage yet: the finished stage keeps its checkpoints, to start it again from.
        assert last_checkpoint(output_dir / stage) is None and previous
    else:
        # The killed stage's epoch-1 checkpoint holds every weight: the stage before it has let its own go.
        assert last_checkpoint(output_dir / stage).endswith("checkpoint-8") and not previous
    assert not (output_dir / "final").exists()

    resume_and_compare(tmp_path, output_dir, tiny_corpus, uninterrupted)
    assert not list(output_dir.glob("*/checkpoint-*"))  # removed once final/ holds the weights


@pytest.mark.slow
@pytest.mark.parametrize("point, after", [("decode", 20), ("frozen", 2), ("after:teacher", 1)])
def test_a_run_killed_outside_a_training_step_ends_as_an_uninterrupted_one(point, after, uninterrupted, tiny_corpus,
                                                                          tmp_path):
    """Killed in the decode pass, inside a frozen-output pass or at a stage boundary, then run again with
    `--resume`: the caches it left are taken only where whole, and the results and weights are the uninterrupted
    run's."""
    output_dir = tmp_path / "run"
    killed = run_recipe(tmp_path, output_dir, tiny_corpus, kill=(point, after))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (output_dir / "final").exists()
    resume_and_compare(tmp_path, output_dir, tiny_corpus, uninterrupted)


def test_resume_points(tmp_path):
    assert resume_point(None, tmp_path, ["teacher", "audio"]) is None
    (tmp_path / "teacher" / "checkpoint-4").mkdir(parents=True)
    (tmp_path / "teacher" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (tmp_path / "teacher" / "checkpoint-8").mkdir()  # killed while saving: no trainer_state.json yet
    point = resume_point("latest", tmp_path, ["teacher", "audio"])
    assert point["stage"] == "teacher" and point["checkpoint"].endswith("checkpoint-4") and not point["finished"]
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        resume_point(str(tmp_path / "teacher" / "checkpoint-8"), tmp_path, ["teacher", "audio"])


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run(tmp_path):
    cache = tmp_path / "cache"
    (cache / "frozen").mkdir(parents=True)
    (cache / "media" / "ab").mkdir(parents=True)
    orphans = [cache / "frozen" / "tmpk3j2l1", cache / "media" / "ab" / "123-xyz.tmp"]
    kept = [cache / "frozen" / "features-train-1234.arrow", cache / "media" / "ab" / "abcd.npy"]
    for path in orphans + kept:
        path.write_bytes(b"x")
    # A feature-encoder output folder half written (`add_feature_encoder_outputs`), beside a whole one.
    orphans.append(cache / "frozen" / "feature-encoder-0123.tmp-4242")
    kept.append(cache / "frozen" / "feature-encoder-4567")
    for folder in orphans[-1:] + kept[-1:]:
        folder.mkdir()
        (folder / "0.npy").write_bytes(b"x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (cache / ".run.lock").write_text(dead.stdout.strip())  # the killed run's process is gone
    removed = take_cache_lock(cache)
    assert sorted(removed) == sorted(str(path) for path in orphans)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in orphans)
    assert (cache / ".run.lock").read_text() == str(os.getpid())
    # A live run's files are left alone.
    (cache / "frozen" / "tmpLIVE").write_bytes(b"x")
    (cache / ".run.lock").write_text(str(os.getppid()))
    assert take_cache_lock(cache) == [] and (cache / "frozen" / "tmpLIVE").exists()
