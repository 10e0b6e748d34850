"""The run's options: a YAML config under the command line, one validation per option."""

from __future__ import annotations

import pytest

from telme_hf.training.arguments import parse_recipe_args
from telme_hf.training.plan import plan_run
from telme_hf.training.trainer import TelMETrainingArguments


def test_config_overrides_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: synthetic\nper_device_train_batch_size: 4\nteacher_epochs: 3\n")
    model_args, data_args, args = parse_recipe_args(
        ["--config", str(path), "fusion_epochs=2", "per_device_train_batch_size=8", "stages=[teacher]"])
    assert args.per_device_train_batch_size == 8 and (args.teacher_epochs, args.fusion_epochs) == (3, 2)
    assert args.stages == ["teacher"] and data_args.dataset == "synthetic"
    # `--flag value` works as well, and every TrainingArguments option is reachable.
    _, _, args = parse_recipe_args(["--config", str(path), "--logging_first_step", "true", "--dataloader_num_workers", "2"])
    assert args.logging_first_step and args.dataloader_num_workers == 2
    with pytest.raises(ValueError, match=r"unknown option 'datset'.*dataset"):
        path.write_text("datset: synthetic\n")
        parse_recipe_args(["--config", str(path)])
    with pytest.raises(ValueError, match="data_root"):
        plan_run(*parse_recipe_args(["dataset=meld"]))
    with pytest.raises(FileNotFoundError, match="packaged configs"):
        parse_recipe_args(["--config", "nowhere"])
    with pytest.raises(ValueError, match="per_device_train_batch_size.*'many'"):  # one line, not the usage
        parse_recipe_args(["per_device_train_batch_size=many"])
    with pytest.raises(ValueError, match="`precision` must be one of"):  # YAML or command line: one check
        path.write_text("precision: fast\n")
        parse_recipe_args(["--config", str(path)])
    path.write_text("precision: no\n")  # YAML reads `no` as false: still the precision "no"
    assert parse_recipe_args(["--config", str(path)])[2].precision == "no"
    _, _, args = parse_recipe_args(["--config", "meld", f"data_root={tmp_path}"])  # a packaged config by name
    assert args.per_device_train_batch_size == 4 and args.output_dir == "outputs/telme-meld"
    # A mistyped synthetic corpus folder is an error, never a new corpus there.
    with pytest.raises(ValueError, match="telme make-corpus"):
        plan_run(*parse_recipe_args([f"data_root={tmp_path / 'no-such-corpus'}"]))
    assert not (tmp_path / "no-such-corpus").exists()
    with pytest.raises(ValueError, match="write fusion_epochs="):  # telme_hf 0.1's per-stage spelling
        parse_recipe_args(["epochs.fusion=3"])
    # Arguments built in Python are checked for their types before anything is read, also when set afterwards.
    with pytest.raises(ValueError, match="`learning_rate` must be float"):
        TelMETrainingArguments(output_dir="x", learning_rate="fast")
    model_args, data_args, args = parse_recipe_args([])
    args.learning_rate = "fast"
    with pytest.raises(ValueError, match="`learning_rate` must be float"):
        plan_run(model_args, data_args, args)


def test_report_to_is_checked_before_any_data_is_read(monkeypatch):
    from transformers.integrations import integration_utils

    with pytest.raises(ValueError, match=r"'tensorbord', which is not an integration.*Did you mean tensorboard\?$"):
        parse_recipe_args(["report_to=tensorbord"])
    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: False)
    with pytest.raises(ValueError, match=r'needs the tensorboard package: pip install "telme_hf\[tensorboard\]"'):
        parse_recipe_args(["--report_to", "tensorboard"])
    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: True)
    assert parse_recipe_args(["--report_to", "tensorboard"])[2].report_to == ["tensorboard"]
    assert parse_recipe_args(["report_to=none"])[2].report_to == []
