"""Each stage trains in its own precision, observed inside the model's forward; fp16 stages own a grad scaler.

All on a CPU: torch has CPU autocast for fp16 and bf16 and `torch.amp.GradScaler("cpu")`, while accelerate makes no
scaler (and no autocast) for fp16 on a CPU, and wraps a model's forward only at its first `prepare`.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from telme_hf import TelMEForEmotionRecognition
from telme_hf.training.arguments import parse_recipe_args
from telme_hf.data.meld import load_meld
from telme_hf.training.run import run_distillation
from telme_hf.training.trainer import TrainingCollator
from telme_hf.training.trainer import TelMETrainingArguments, trainer_for_stage


def run_all_stages(tiny_corpus, output_dir, *overrides):
    arguments = parse_recipe_args([
        "--config", "recipes/configs/tiny.yaml", f"output_dir={output_dir}", f"data_root={tiny_corpus}",
        "num_train_epochs=1", "teacher_epochs=1", "fusion_epochs=1", "disable_tqdm=true", *overrides,
    ])
    run_distillation(*arguments, announce_next_step=False)
    return json.loads((output_dir / "results.json").read_text())


@pytest.mark.parametrize("mixed", ["fp16", "bf16"])
def test_reference_recipe_runs_each_stage_in_its_precision_in_one_process(mixed, tiny_corpus, tmp_path):
    results = run_all_stages(tiny_corpus, tmp_path / mixed, "recipe=reference", f"audio_precision={mixed}",
                             f"video_precision={mixed}", f"fusion_precision={mixed}")
    stages = results["stages"]
    dtype = {"fp16": "float16", "bf16": "bfloat16"}[mixed]
    assert [stages[s]["autocast_dtype"] for s in ("teacher", "audio", "video", "fusion")] == [
        "float32", dtype, dtype, dtype]
    assert [results["training"]["stages"][s]["precision"] for s in ("teacher", "audio", "video", "fusion")] == [
        "no", mixed, mixed, mixed]
    assert stages["teacher"]["grad_scaler"] is None
    for stage in ("audio", "video", "fusion"):
        scaler = stages[stage]["grad_scaler"]
        if mixed == "bf16":
            assert scaler is None
        else:
            # torch's GradScaler starts at 2**16 and only halves (an overflow) or doubles (2,000 clean steps).
            assert math.log2(scaler["final_scale"]).is_integer() and scaler["skipped_steps"] >= 0
    if mixed == "fp16":
        # The students share one scaler, as the original's one GradScaler: the video stage starts where audio ended.
        audio, video = stages["audio"]["grad_scaler"], stages["video"]["grad_scaler"]
        assert video["final_scale"] == audio["final_scale"] / 2 ** video["skipped_steps"]


def test_a_mixed_first_stage_does_not_leak_into_later_fp32_stages(tiny_corpus, tmp_path):
    results = run_all_stages(tiny_corpus, tmp_path / "clean", "teacher_precision=bf16", "precision=no")
    assert [results["stages"][s]["autocast_dtype"] for s in ("teacher", "audio", "video", "fusion")] == [
        "bfloat16", "float32", "float32", "float32"]


@pytest.fixture
def text_rows(tiny_corpus):
    return load_meld(tiny_corpus, splits=("train",), modalities=("text",))["train"].select(range(8))


def teacher_trainer(model, processor, rows, output_dir, **options):
    args = TelMETrainingArguments(output_dir=str(output_dir), stage="teacher", report_to="none", disable_tqdm=True,
                                  eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                  per_device_train_batch_size=4, warmup_steps=0, **options)
    return trainer_for_stage("teacher")(model=model, args=args, train_dataset=rows,
                                        data_collator=TrainingCollator(processor, ("text",)))


def test_an_earlier_accelerate_autocast_wrapper_is_released(tiny_config, tiny_processor, text_rows, tmp_path):
    """The bug seen on a GPU, on a CPU: a model prepared once under bf16 kept that autocast in every later stage."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # an earlier test's state holds its own precision
    model = TelMEForEmotionRecognition(tiny_config)
    Accelerator(mixed_precision="bf16", cpu=True).prepare_model(model)
    assert "_original_forward" in model.__dict__  # its forward now runs under bf16 autocast
    trainer = teacher_trainer(model, tiny_processor, text_rows, tmp_path, precision="no", max_steps=1)
    trainer.train()
    assert trainer.precision_monitor.report() == {"autocast_dtype": "float32", "grad_scaler": None}


@pytest.mark.parametrize("recipe", ["clean", "reference"])
def test_an_overflow_skips_the_step_and_halves_the_scale(recipe, tiny_config, tiny_processor, text_rows, tmp_path):
    model = TelMEForEmotionRecognition(tiny_config)
    # The reference recipe's optimizer, as the run sets it (`torch.optim.AdamW`, not the fused one).
    optim = {"optim": "adamw_torch"} if recipe == "reference" else {}
    trainer = teacher_trainer(model, tiny_processor, text_rows, tmp_path, precision="fp16", max_steps=2,
                              learning_rate=1e-3, recipe=recipe, **optim)
    backwards = []
    parameter = model.text_teacher.classifier.weight
    # The second step's gradient is infinite, as an fp16 overflow makes it.
    parameter.register_hook(lambda grad: grad * math.inf if len(backwards) == 1 else backwards.append(1) or grad)
    snapshots = []

    class Snapshot(__import__("transformers").TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            snapshots.append(parameter.detach().clone())

    trainer.add_callback(Snapshot())
    before = parameter.detach().clone()
    trainer.train()
    report = trainer.precision_monitor.report()
    assert report["autocast_dtype"] == "float16"
    assert report["grad_scaler"] == {"final_scale": 2.0 ** 15, "skipped_steps": 1}
    # The first step updated the weights (the reference warm-up starts at a rate of 0), the overflowing one did not.
    assert torch.equal(snapshots[0], before) == (recipe == "reference")
    assert torch.equal(snapshots[1], snapshots[0])
    if recipe == "reference":  # the original's schedule steps after every batch, skipped or not
        assert trainer.lr_scheduler.last_epoch == 2


@pytest.mark.parametrize("recipe", ["reference", "clean"])
def test_the_clip_acts_on_scaled_gradients_only_in_the_reference_recipe(recipe, tiny_config, tiny_processor,
                                                                        text_rows, tmp_path):
    """One real training step under fp16: AdamW's first moment after it is (1 - β1) times the gradient the optimizer
    received. The original clips the loss-scaled gradients to `max_grad_norm`, so after the scaler's unscaling the
    optimizer gets at most max_grad_norm / scale; the clean recipe unscales first and clips the true gradients."""
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(tiny_config)
    trainer = teacher_trainer(model, tiny_processor, text_rows, tmp_path, precision="fp16", max_steps=1,
                              recipe=recipe, max_grad_norm=1.0, weight_decay=0.0)
    scale = 1024.0
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=scale)  # before `train` prepares the optimizer
    norms = []

    class TrueNorm(__import__("transformers").TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            grads = [p.grad for p in model.text_teacher.parameters() if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    trainer.add_callback(TrueNorm())
    trainer.train()
    assert trainer.precision_monitor.report()["grad_scaler"]["skipped_steps"] == 0
    state = trainer.optimizer.optimizer.state
    first_moment = torch.linalg.vector_norm(torch.stack(
        [state[p]["exp_avg"].norm() for p in model.text_teacher.parameters() if p in state])).item()
    if recipe == "reference":
        assert norms[0] == pytest.approx(1.0, rel=1e-4)  # the clip left the scaled gradients at norm 1
        assert first_moment == pytest.approx(0.1 * 1.0 / scale, rel=1e-3)
    else:
        assert norms[0] <= 1.0 + 1e-4  # clipped after unscaling
        assert first_moment == pytest.approx(0.1 * norms[0], rel=1e-3)
        assert first_moment > 100 * 0.1 / scale
