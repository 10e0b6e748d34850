"""The run's plan: every derived value resolved once, before any data is read."""

from __future__ import annotations

import pytest
import torch

from telme_hf.training.arguments import STAGES, parse_recipe_args
from telme_hf.training.plan import plan_run, stage_arguments, stage_precision
from telme_hf.training.trainer import TelMETrainingArguments


def test_stage_precision_comes_from_the_stage_then_the_run_then_the_recipe(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    gpu_bf16 = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    clean = TelMETrainingArguments(output_dir="x")
    assert [stage_precision(clean, stage) for stage in STAGES] == [gpu_bf16] * 4
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # accelerate launch --mixed_precision fp16
    assert stage_precision(clean, "audio") == "fp16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # what accelerate launch sets when not told: auto stays
    assert stage_precision(clean, "audio") == gpu_bf16
    reference = TelMETrainingArguments(output_dir="x", recipe="reference")
    assert [stage_precision(reference, stage) for stage in STAGES] == ["no", "fp16", "fp16", "fp16"]
    own = TelMETrainingArguments(output_dir="x", recipe="reference", precision="bf16", fusion_precision="no")
    assert [stage_precision(own, stage) for stage in STAGES] == ["bf16", "bf16", "bf16", "no"]
    stage_args = stage_arguments(own, "audio")
    # accelerate's own mixed precision stays off: the stage's trainer enters autocast and owns the scaler.
    assert (stage_args.precision, stage_args.fp16, stage_args.bf16, stage_args.mixed_precision) == (
        "bf16", False, False, "no")
    with pytest.raises(ValueError, match="video_precision"):
        TelMETrainingArguments(output_dir="x", video_precision="fp8")
    with pytest.raises(ValueError, match="frozen_outputs"):
        TelMETrainingArguments(output_dir="x", frozen_outputs="sometimes")


def test_a_later_stage_alone_needs_a_trained_checkpoint(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="init_from"):
        plan_run(*parse_recipe_args([f"output_dir={tmp_path}", "stages=[fusion]"]))
    tiny_model.save_pretrained(tmp_path / "final")
    plan = plan_run(*parse_recipe_args([f"output_dir={tmp_path}", "--stage", "fusion"]))
    assert plan.init_from == str(tmp_path / "final") and plan.model_args.init_from is None


def test_the_plan_resolves_every_derived_value_once(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    plan = plan_run(*parse_recipe_args(["--config", "recipes/configs/tiny.yaml", f"output_dir={tmp_path}",
                                        "stages=[teacher,fusion]", "fusion_epochs=2", "recipe=reference"]))
    assert plan.stages == ("teacher", "fusion") and plan.init_from is None
    assert plan.data_root == str(tmp_path / "synthetic-corpus") and plan.cache_dir == tmp_path / "cache"
    assert plan.modalities == ("text", "audio", "video")
    fusion = plan.stage_args["fusion"]
    assert (fusion.stage, fusion.num_train_epochs, fusion.output_dir) == ("fusion", 2.0, str(tmp_path / "fusion"))
    assert (plan.stage_args["teacher"].num_train_epochs, plan.stage_args["teacher"].learning_rate) == (50.0, 0.003)
    assert (plan.stage_args["teacher"].precision, fusion.precision) == ("no", "fp16")
    assert plan.stage_args["teacher"].optim == "adamw_torch"  # the original's torch.optim.AdamW
    teacher_only = plan_run(*parse_recipe_args([f"output_dir={tmp_path}", "stages=[teacher]"]))
    assert teacher_only.modalities == ("text",) and not teacher_only.needs_media
