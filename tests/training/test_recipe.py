"""`recipe: reference` equals the original training loop; the clean recipe does not; seeds; reference inputs.

The original loop is restated here in plain torch from its facts (`torch.optim.AdamW(part.parameters(), lr)`,
`get_linear_schedule_with_warmup(len(train), len(train) * epochs)` stepped per batch, `clip_grad_norm_(…, 10)`,
CE for the teacher; CE + α·DIST + β·feature-KL for a student, teacher recomputed each step), independently of
`telme_hf.training.trainer` and `telme_hf.training.losses`.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from telme_hf import TelMEConfig, TelMEForEmotionRecognition
from telme_hf.data.frozen_outputs import TEACHER_COLUMNS, add_frozen_outputs
from telme_hf.data.media_cache import MediaCache, prepare_media
from telme_hf.modeling.media_telme import MediaLoader
from telme_hf.training.trainer import TrainingCollator
from telme_hf.data.meld import load_meld
from telme_hf.training.arguments import parse_recipe_args
from telme_hf.training.plan import plan_run
from telme_hf.training.run import run_distillation
from telme_hf.training.recipe import reset_heads_to_pytorch_defaults
from telme_hf.training.trainer import STAGE_MODALITIES, STAGE_PARTS, TelMETrainingArguments, trainer_for_stage


# The paper's rate: large enough to move every weight far beyond the 1e-6 tolerance in 15 steps, small enough that
# Adam's normalised steps do not amplify round-off (at 3e-3 weights whose gradient is nearly 0 drift apart by 1e-5).
LEARNING_RATE = 1e-5
# Far above the original's 0.01 so that decaying, or not, the biases and norms shows in the weights.
WEIGHT_DECAY = 0.3
EPOCHS = 5
BATCH = 4
NUM_ROWS = 10  # 3 batches per epoch: the warm-up (10 steps) ends in epoch 4 of 5 (15 steps)


def without_dropout(config: TelMEConfig) -> TelMEConfig:
    """Dropout, SpecAugment and LayerDrop off, so two runs see the same forward passes."""
    config = copy.deepcopy(config)
    text, audio = config.text_config, config.audio_config
    text.hidden_dropout_prob = text.attention_probs_dropout_prob = 0.0
    for name in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout",
                 "layerdrop", "mask_time_prob", "mask_feature_prob"):
        setattr(audio, name, 0.0)
    return config


@pytest.fixture
def reference_rows(tiny_corpus, tiny_processor, tmp_path):
    data = load_meld(tiny_corpus, splits=("train",), on_bad_media="skip")
    cache = MediaCache(tmp_path / "media")
    train = prepare_media(data["train"], MediaLoader.for_processor(tiny_processor, cache, on_bad_media="skip"))
    return train.select(range(NUM_ROWS)), cache


class RecordingCollator:
    """The stage's collator, remembering which rows each training batch held (the Trainer's shuffled order)."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, rows):
        self.batches.append([row["utterance_key"] for row in rows])
        return self.collator(rows)


def original_lr_factor(step: int, num_samples: int, epochs: int) -> float:
    warmup, total = num_samples, num_samples * epochs
    return step / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))


def pearson(a, b):
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)


def original_student_loss(logits, teacher_logits, features, teacher_features, labels, alpha, tau):
    student_probs, teacher_probs = (logits / tau).softmax(dim=1), (teacher_logits / tau).softmax(dim=1)
    inter = 1 - pearson(student_probs, teacher_probs).mean()
    intra = 1 - pearson(student_probs.T, teacher_probs.T).mean()
    teacher, student = F.normalize(teacher_features, dim=1), F.normalize(features, dim=1)
    target = (teacher @ teacher.T).softmax(dim=1)
    feature = F.kl_div((teacher @ student.T).log_softmax(dim=1), target, reduction="batchmean")
    return F.cross_entropy(logits, labels) + alpha * (tau**2 * inter + tau**2 * intra) + feature


def original_loop(model, stage, batches, rows_by_key, collator, teacher_collator, num_samples, max_grad_norm,
                  alpha=1.0, tau=4.0):
    """The original's loop for one stage, on the given batches."""
    part = getattr(model, STAGE_PARTS[stage])
    model.eval()
    part.train()
    # The original's `torch.optim.AdamW(model.parameters(), lr)`: one group, weight decay on every parameter.
    optimizer = torch.optim.AdamW(part.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: original_lr_factor(s, num_samples, EPOCHS))
    rates = []
    for keys in batches:
        rows = [rows_by_key[key] for key in keys]
        batch = collator(rows)
        if stage == "teacher":
            logits = part.classifier(part(batch["input_ids"], batch["attention_mask"]))
            loss = F.cross_entropy(logits, batch["labels"])
        else:
            features = part(batch["input_values"], batch["audio_attention_mask"])
            logits = part.classifier(features)
            # The frozen teacher, recomputed every step; one row at a time, like the trainer's cached outputs, so
            # both runs see bit-identical teacher outputs and differ only in their optimisation loops.
            with torch.no_grad():
                texts = [teacher_collator([row]) for row in rows]
                teacher_features = torch.cat([model.text_teacher(t["input_ids"], t["attention_mask"]) for t in texts])
                teacher_logits = model.text_teacher.classifier(teacher_features)
            loss = original_student_loss(logits, teacher_logits, features, teacher_features, batch["labels"], alpha,
                                         tau)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(part.parameters(), max_grad_norm)
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("stage,max_grad_norm", [("teacher", 10.0), ("teacher", 0.05), ("audio", 10.0)])
def test_reference_recipe_equals_the_original_training_loop(stage, max_grad_norm, reference_rows, tiny_config,
                                                           tiny_processor, tmp_path):
    train, cache = reference_rows
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(without_dropout(tiny_config)).eval()
    reset_heads_to_pytorch_defaults(model)
    plain, initial = copy.deepcopy(model), copy.deepcopy(model)
    collator = TrainingCollator(tiny_processor, STAGE_MODALITIES[stage], cache=cache)
    teacher_collator = TrainingCollator(tiny_processor, ("text",))
    if stage == "audio":
        train = add_frozen_outputs(train, model, teacher_collator, TEACHER_COLUMNS, tmp_path / "frozen",
                                   ["text_teacher"], batch_size=1)
    recording = RecordingCollator(collator)
    args = TelMETrainingArguments(
        # The step-for-step check is in fp32; the fp16 steps are tests/training/test_trainer_precision.py's.
        output_dir=str(tmp_path / stage), stage=stage, recipe="reference", precision="no", optim="adamw_torch",
        num_train_epochs=EPOCHS, learning_rate=LEARNING_RATE, per_device_train_batch_size=BATCH,
        weight_decay=WEIGHT_DECAY, max_grad_norm=max_grad_norm, response_weight=1.0, response_temperature=4.0,
        feature_weight=1.0, eval_strategy="no", save_strategy="no", load_best_model_at_end=False, logging_steps=1,
        report_to="none",
        disable_tqdm=True, dataloader_pin_memory=False, seed=0,
    )
    trainer = trainer_for_stage(stage)(model=model, args=args, train_dataset=train, data_collator=recording)
    trainer.train()
    batches = recording.batches
    steps = math.ceil(NUM_ROWS / BATCH) * EPOCHS
    assert len(batches) == steps and steps > NUM_ROWS  # several steps after the end of the warm-up

    rates = original_loop(plain, stage, batches, {row["utterance_key"]: row for row in train}, collator,
                          teacher_collator, NUM_ROWS, max_grad_norm)
    logged = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert logged == pytest.approx(rates, abs=1e-12)
    assert rates[NUM_ROWS] == pytest.approx(LEARNING_RATE) and rates[-1] < LEARNING_RATE
    part = STAGE_PARTS[stage]
    trained, before = dict(model.named_parameters()), dict(initial.named_parameters())
    moved = []
    for name, parameter in plain.named_parameters():
        if name.startswith(part + "."):
            assert torch.allclose(trained[name], parameter, atol=1e-6, rtol=0), name
            moved.append((parameter - before[name]).abs().max().item())
        else:  # the frozen parts did not move in either run
            assert torch.equal(trained[name], before[name]) and torch.equal(parameter, before[name]), name
    # The comparison has teeth: nearly every trained tensor moved far beyond the tolerance (the exceptions are
    # attention key biases, whose gradient is 0 because softmax ignores them).
    assert sum(change > 1e-5 for change in moved) >= 0.8 * len(moved) and max(moved) > 1e-4


def test_clean_recipe_differs_from_the_original_loop(reference_rows, tiny_config, tiny_processor, tmp_path):
    train, cache = reference_rows
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(without_dropout(tiny_config)).eval()
    plain = copy.deepcopy(model)
    collator = TrainingCollator(tiny_processor, ("text",))
    recording = RecordingCollator(collator)
    args = TelMETrainingArguments(
        output_dir=str(tmp_path / "clean"), stage="teacher", num_train_epochs=EPOCHS, learning_rate=LEARNING_RATE,
        per_device_train_batch_size=BATCH, weight_decay=WEIGHT_DECAY, max_grad_norm=10.0, eval_strategy="no",
        save_strategy="no", load_best_model_at_end=False, warmup_steps=0, logging_steps=1, report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
    )
    trainer = trainer_for_stage("teacher")(model=model, args=args, train_dataset=train, data_collator=recording)
    trainer.train()
    rates = original_loop(plain, "teacher", recording.batches, {row["utterance_key"]: row for row in train},
                          collator, None, NUM_ROWS, 10.0)
    logged = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert logged != pytest.approx(rates, abs=1e-9)
    assert not torch.allclose(model.text_teacher.classifier.weight, plain.text_teacher.classifier.weight, atol=1e-6)


def run_teacher_only(tiny_corpus, tmp_path, name, *overrides):
    arguments = parse_recipe_args([
        f"output_dir={tmp_path / name}", f"data_root={tiny_corpus}", "stages=[teacher]", "teacher_epochs=3",
        "per_device_train_batch_size=4", "per_device_eval_batch_size=16", "logging_steps=1",
        "teacher_learning_rate=0.003", "on_bad_media=skip", *overrides,
    ])
    return arguments, run_distillation(*arguments, announce_next_step=False)


def test_learning_rates_in_trainer_state_follow_the_recipe(tiny_corpus, tmp_path):
    rates = {}
    for recipe in ("reference", "clean"):
        run_teacher_only(tiny_corpus, tmp_path, recipe, f"recipe={recipe}")
        # Kept although the epoch checkpoints are removed (keep_checkpoints is false).
        state = json.loads((tmp_path / recipe / "teacher" / "trainer_state.json").read_text())
        assert not list((tmp_path / recipe / "teacher").glob("checkpoint-*"))
        rates[recipe] = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    num_train = len(load_meld(tiny_corpus, splits=("train",), modalities=("text",))["train"])
    expected = [0.003 * original_lr_factor(step, num_train, 3) for step in range(len(rates["reference"]))]
    assert len(rates["reference"]) == math.ceil(num_train / 4) * 3
    assert rates["reference"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert rates["clean"] != pytest.approx(expected, rel=1e-3)


def test_multi_seed_run_writes_every_seed_and_the_mean_and_spread(tiny_corpus, tmp_path, capsys):
    _, summary = run_teacher_only(tiny_corpus, tmp_path, "seeds", "seeds=[1,2]")
    results = {seed: json.loads((tmp_path / "seeds" / f"seed-{seed}" / "results.json").read_text())
               for seed in (1, 2)}
    assert all((tmp_path / "seeds" / f"seed-{seed}" / "final" / "config.json").exists() for seed in (1, 2))
    assert results[1]["config"]["training"]["seed"] == 1 and results[2]["config"]["training"]["seed"] == 2
    written = json.loads((tmp_path / "seeds" / "summary.json").read_text())
    assert written["seeds"] == [1, 2]
    for split in ("dev", "test"):
        values = [results[seed]["stages"]["teacher"][split]["weighted_f1"] for seed in (1, 2)]
        spread = written["stages"]["teacher"][f"{split}_weighted_f1"]
        assert spread["mean"] == pytest.approx(np.mean(values))
        assert spread["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))  # ddof=1 for two values
        for label, per_class in written["stages"]["teacher"][f"{split}_f1"].items():
            assert per_class["values"] == [results[seed]["stages"]["teacher"][split]["f1"][label] for seed in (1, 2)]
    mean = 100 * written["stages"]["teacher"]["test_weighted_f1"]["mean"]
    assert f"{mean:.2f} ± " in capsys.readouterr().out
    # One corpus and one media cache for all the seeds.
    assert not (tmp_path / "seeds" / "seed-1" / "synthetic-corpus").exists()


def test_reference_reads_the_original_settings_beneath_the_config_for_the_paper_corpora(tmp_path):
    def plan(*argv):
        return plan_run(*parse_recipe_args([f"data_root={tmp_path}", f"output_dir={tmp_path / 'run'}", *argv]))

    meld = plan("--config", "meld", "recipe=reference")
    assert meld.stage_args["teacher"].learning_rate == 1e-6  # recipes/configs/reference/meld.yaml
    assert meld.stage_args["fusion"].num_train_epochs == 10 and meld.stage_args["audio"].per_device_train_batch_size == 4
    iemocap = plan("--config", "iemocap", "recipe=reference")
    assert iemocap.stage_args["fusion"].num_train_epochs == 8 and iemocap.training_args.response_weight == 0.1
    # An option given on the command line (or in the config) wins over the original's.
    assert plan("--config", "meld", "recipe=reference", "teacher_learning_rate=2e-5").stage_args[
        "teacher"].learning_rate == 2e-5
    # The clean recipe, and a corpus the original never saw, keep the config's own values.
    assert plan("--config", "meld").stage_args["teacher"].learning_rate == 1e-5
    tiny = plan("--config", "tiny", "recipe=reference")
    assert tiny.stage_args["teacher"].learning_rate == 3e-3 and tiny.training_args.per_device_train_batch_size == 16
    with pytest.raises(ValueError, match="`recipe` must be one of"):
        parse_recipe_args(["recipe=original"])
    with pytest.raises(ValueError, match="seeds"):
        parse_recipe_args(["seeds=[1,1]"])


def test_heads_get_pytorch_default_initialisation(tiny_config):
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(tiny_config)
    # post_init: N(0, 0.02) weights, zero biases.
    assert torch.count_nonzero(model.fusion.gate.bias) == 0
    reset = reset_heads_to_pytorch_defaults(model)
    assert "fusion.attention" in reset and "text_teacher.classifier" in reset
    for linear in (model.fusion.gate, model.fusion.shift, model.fusion.classifier, model.text_teacher.projection,
                   model.text_teacher.classifier, model.audio_student.classifier, model.video_student.classifier):
        bound = 1 / math.sqrt(linear.in_features)  # nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert linear.weight.abs().max() <= bound and linear.weight.abs().max() > 0.8 * bound
        assert torch.count_nonzero(linear.bias) == linear.out_features and linear.bias.abs().max() <= bound
    attention = model.fusion.attention
    # nn.MultiheadAttention: Xavier-uniform in-projection, zero in-projection and output biases.
    fan = attention.in_proj_weight.shape
    xavier = math.sqrt(6 / (fan[0] + fan[1]))
    assert attention.in_proj_weight.abs().max() <= xavier and attention.in_proj_weight.abs().max() > 0.8 * xavier
    assert torch.count_nonzero(attention.in_proj_bias) == 0 and torch.count_nonzero(attention.out_proj.bias) == 0
    assert torch.equal(model.fusion.norm.weight, torch.ones_like(model.fusion.norm.weight))


def test_reference_speaker_token_rows_are_drawn_from_a_normal_distribution(tmp_path, tiny_config):
    from transformers import Data2VecAudioModel, RobertaModel, TimesformerModel

    text = RobertaModel(tiny_config.text_config, add_pooling_layer=False)
    with torch.no_grad():  # pretrained rows centred far from 0, so mean resizing is recognisable
        text.embeddings.word_embeddings.weight.add_(1.0)
    text.save_pretrained(tmp_path / "text")
    Data2VecAudioModel(tiny_config.audio_config).save_pretrained(tmp_path / "audio")
    TimesformerModel(tiny_config.video_config).save_pretrained(tmp_path / "video")
    config = copy.deepcopy(tiny_config)
    old_rows = tiny_config.text_config.vocab_size
    config.text_config.vocab_size = old_rows + 64
    rows = {}
    for mean_resizing in (True, False):
        torch.manual_seed(0)
        model = TelMEForEmotionRecognition.from_backbones(
            config, str(tmp_path / "text"), str(tmp_path / "audio"), str(tmp_path / "video"),
            mean_resizing=mean_resizing, local_files_only=True,
        )
        rows[mean_resizing] = model.text_teacher.encoder.embeddings.word_embeddings.weight[old_rows:].detach()
    assert rows[True].mean().item() == pytest.approx(1.0, abs=0.05)
    assert rows[False].mean().item() == pytest.approx(0.0, abs=0.01)
    assert rows[False].std().item() == pytest.approx(0.02, rel=0.1)
