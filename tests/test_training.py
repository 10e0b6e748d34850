"""Stage trainers, frozen-output caching, the distillation run and its artefacts (tiny models, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from telme_hf import TelMEForEmotionRecognition
from telme_hf.data.frozen_outputs import FEATURE_COLUMNS, TEACHER_COLUMNS, add_frozen_outputs
from telme_hf.training.arguments import STAGES, parse_recipe_args
from telme_hf.training.plan import plan_run, stage_arguments, stage_precision
from telme_hf.data.media_cache import MediaCache, prepare_media
from telme_hf.modeling.media_telme import MediaLoader
from telme_hf.training.trainer import TrainingCollator
from telme_hf.data.meld import load_meld
from telme_hf.training.run import _selected_epoch, run_distillation
from telme_hf.training.trainer import STAGE_MODALITIES, STAGE_PARTS, TelMETrainingArguments, freeze_all_but, trainer_for_stage


@pytest.fixture
def splits(tiny_corpus, tiny_processor, tmp_path):
    data = load_meld(tiny_corpus, on_bad_media="skip")
    cache = MediaCache(tmp_path / "media")
    out = {}
    for name in ("train", "dev"):
        out[name] = prepare_media(data[name], MediaLoader.for_processor(tiny_processor, cache, on_bad_media="skip"))
    return out, cache


def make_trainer(stage, model, processor, train, dev, cache, tmp_path, **kwargs):
    collator = TrainingCollator(processor, STAGE_MODALITIES[stage], cache=cache)
    defaults = dict(
        output_dir=str(tmp_path / stage), stage=stage, per_device_train_batch_size=4, per_device_eval_batch_size=8,
        learning_rate=1e-2, report_to="none", max_steps=2, save_strategy="no", eval_strategy="no",
        load_best_model_at_end=False, dataloader_pin_memory=False, disable_tqdm=True,
    )
    defaults.update(kwargs)
    args = TelMETrainingArguments(**defaults)
    return trainer_for_stage(stage)(model=model, args=args, train_dataset=train, eval_dataset=dev, data_collator=collator)


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("stage", ["teacher", "audio", "video", "fusion"])
def test_two_steps_change_only_the_stage_part(stage, splits, tiny_model, tiny_processor, tmp_path):
    (data, cache) = splits
    train, dev = data["train"], data["dev"]
    if stage == "fusion":
        collator = TrainingCollator(tiny_processor, ("text", "audio", "video"), cache=cache)
        train = add_frozen_outputs(train, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen",
                                   ["text_teacher", "audio_student", "video_student"])
    if stage in ("audio", "video"):
        train = add_frozen_outputs(train, tiny_model, TrainingCollator(tiny_processor, ("text",)), TEACHER_COLUMNS,
                                   tmp_path / "frozen", ["text_teacher"])
    before = snapshot(tiny_model)
    trainer = make_trainer(stage, tiny_model, tiny_processor, train, dev, cache, tmp_path)
    trainer.train()
    part = STAGE_PARTS[stage]
    changed = {name for name, p in tiny_model.named_parameters() if not torch.equal(p, before[name])}
    assert changed, "nothing was trained"
    assert all(name.startswith(part + ".") for name in changed), sorted(changed)[:5]
    assert any(name.startswith(part + ".") for name in changed)
    # the frozen parts stayed in eval mode during training
    for name, module in tiny_model.named_children():
        if name != part:
            assert not module.training, name


def test_student_distillation_uses_cached_teacher_outputs(splits, tiny_model, tiny_processor, tmp_path):
    (data, cache) = splits
    text_collator = TrainingCollator(tiny_processor, ("text",))
    train = add_frozen_outputs(data["train"], tiny_model, text_collator, TEACHER_COLUMNS, tmp_path / "frozen", ["text_teacher"])
    row = train[0]
    batch = text_collator([row])
    with torch.no_grad():
        out = tiny_model(**{k: v for k, v in batch.items() if k != "labels"})
    assert np.allclose(row["teacher_logits"], out.text_logits[0].numpy(), atol=1e-5)
    assert np.allclose(row["teacher_features"], out.text_features[0].numpy(), atol=1e-5)
    # unchanged weights → the cache file is reused; changed teacher weights → a new cache file
    files = set((tmp_path / "frozen").glob("*.arrow"))
    add_frozen_outputs(data["train"], tiny_model, text_collator, TEACHER_COLUMNS, tmp_path / "frozen", ["text_teacher"])
    assert set((tmp_path / "frozen").glob("*.arrow")) == files
    with torch.no_grad():
        tiny_model.text_teacher.classifier.bias.add_(1.0)
    add_frozen_outputs(data["train"], tiny_model, text_collator, TEACHER_COLUMNS, tmp_path / "frozen", ["text_teacher"])
    assert len(set((tmp_path / "frozen").glob("*.arrow")) - files) == 1


def test_second_epoch_decodes_nothing(tiny_corpus, tiny_model, tiny_processor, tmp_path):
    data = load_meld(tiny_corpus, splits=("test",), on_bad_media="skip")["test"]
    cache = MediaCache(tmp_path / "media")
    collator = TrainingCollator(tiny_processor, ("text", "audio", "video"), cache=cache)
    rows = [data[i] for i in range(len(data))]
    first = collator(rows)
    calls = cache.decode_calls
    assert calls == len(rows)
    second = collator(rows)
    assert cache.decode_calls == calls
    for key in first:
        assert torch.equal(first[key], second[key]), key
    # a touched file is decoded again
    Path(rows[0]["video_path"]).touch()
    import os
    stat = os.stat(rows[0]["video_path"])
    os.utime(rows[0]["video_path"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    collator(rows[:1])
    assert cache.decode_calls == calls + 1


def test_best_dev_epoch_is_selected_from_a_scripted_metric_sequence(splits, tiny_model, tiny_processor, tmp_path):
    (data, cache) = splits
    scripted = iter([0.2, 0.7, 0.4])
    trainer = make_trainer(
        "teacher", tiny_model, tiny_processor, data["train"], data["dev"], cache, tmp_path,
        max_steps=-1, num_train_epochs=3, eval_strategy="epoch", save_strategy="epoch",
        load_best_model_at_end=True, metric_for_best_model="weighted_f1", save_total_limit=1,
    )
    trainer.compute_metrics = lambda prediction: {"weighted_f1": next(scripted)}
    weights_after = {}
    from transformers import TrainerCallback

    class RememberCallback(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            weights_after[round(state.epoch)] = tiny_model.text_teacher.classifier.weight.detach().clone()

    trainer.add_callback(RememberCallback())
    trainer.train()
    assert _selected_epoch(trainer) == 2
    assert torch.equal(tiny_model.text_teacher.classifier.weight, weights_after[2])
    assert not torch.equal(weights_after[2], weights_after[3])


def test_resume_from_a_saved_checkpoint(splits, tiny_model, tiny_processor, tmp_path):
    (data, cache) = splits
    trainer = make_trainer("teacher", tiny_model, tiny_processor, data["train"], data["dev"], cache, tmp_path,
                           max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=None)
    trainer.train()
    checkpoint = tmp_path / "teacher" / "checkpoint-2"
    assert (checkpoint / "model.safetensors").exists()
    resumed_model = TelMEForEmotionRecognition(tiny_model.config).eval()
    resumed = make_trainer("teacher", resumed_model, tiny_processor, data["train"], data["dev"], cache, tmp_path,
                           max_steps=4, output_dir=str(tmp_path / "resumed"))
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 4


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


def test_telme_push_uploads_the_final_folder_with_its_card_pointed_at_the_repo(tmp_path, monkeypatch, capsys,
                                                                               tiny_model, tiny_processor):
    from huggingface_hub import HfApi, ModelCard

    from telme_hf.cli import main
    from telme_hf.hub.model_card import write_model_card

    folder = tmp_path / "final"
    tiny_model.save_pretrained(folder)
    tiny_processor.save_pretrained(folder)
    metrics = {"weighted_f1": 0.5, "accuracy": 0.6, "f1": {}}
    write_model_card(folder, tiny_model.config, tiny_processor, {}, {"fusion": {"test": metrics}}, repo=str(folder))
    sent = {}

    class Repo(str):
        repo_id = "someone/telme-tiny"  # a bare name is created under the user's account

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: sent.update(private=kw["private"]) or
                        Repo(f"https://hub/someone/{repo_id}"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: sent.update(
        kw, files=sorted(p.name for p in Path(kw["folder_path"]).iterdir()),
        card=(Path(kw["folder_path"]) / "README.md").read_text()))
    assert main(["push", str(folder), "--repo-id", "telme-tiny"]) == 0
    assert "Uploaded" in capsys.readouterr().out
    assert sent["repo_id"] == "someone/telme-tiny" and sent["private"] is True
    assert {"config.json", "model.safetensors", "modeling_telme.py", "processor_config.json", "README.md"} <= set(sent["files"])
    card = ModelCard.load(folder / "README.md")
    assert 'model="someone/telme-tiny"' in sent["card"] and str(folder) not in sent["card"]
    assert card.data.model_name == "telme-tiny" and card.data.eval_results[0].metric_value == 50.0
    # Not a checkpoint folder: one line, nothing uploaded.
    sent.clear()
    assert main(["push", str(tmp_path), "--repo-id", "telme-tiny"]) == 1
    assert "is not a checkpoint folder" in capsys.readouterr().err and not sent


@pytest.mark.slow
def test_distillation_run_writes_every_artefact(tmp_path, tiny_corpus):
    results = run_distillation(*parse_recipe_args([
        "--config", "tiny", f"output_dir={tmp_path / 'run'}", f"data_root={tiny_corpus}", "num_train_epochs=1",
        "teacher_epochs=1", "fusion_epochs=1",
    ]))
    out = tmp_path / "run"
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["stages"]) == {"teacher", "audio", "video", "fusion"}
    for stage in saved["stages"].values():
        assert {"selected_epoch", "dev", "test"} <= set(stage)
        assert 0 <= stage["test"]["weighted_f1"] <= 1 and "f1" in stage["test"]
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The last stage's test predictions, with the gold label as `telme evaluate` writes them.
    import csv

    with open(out / "predictions.csv", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == saved["stages"]["fusion"]["test"]["num_samples"] and {"label", "prediction"} <= set(rows[0])
    assert not list(out.glob("*/checkpoint-*"))  # each stage's epoch checkpoints go once its best epoch is loaded
    card = (out / "final" / "README.md").read_text()
    assert "model-index" in card and "Weighted F1" in card
    # What the card reports travels with the weights, without the run's local paths.
    travelling = json.loads((out / "final" / "results.json").read_text())
    assert travelling["stages"] == saved["stages"] and travelling["training"]["stages"]["fusion"]["epochs"] == 1
    states = sorted(path.name for path in (out / "final" / "trainer_state").iterdir())
    assert states == ["audio.json", "fusion.json", "teacher.json", "video.json"]
    assert json.loads((out / "final" / "trainer_state" / "fusion.json").read_text())["log_history"]
    for name in ("README.md", "results.json", "trainer_state/fusion.json"):
        assert str(tmp_path) not in (out / "final" / name).read_text(), name
    from transformers import AutoModel

    assert isinstance(AutoModel.from_pretrained(out / "final"), TelMEForEmotionRecognition)
    assert results["fusion"]["test"]["num_samples"] > 0


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


def test_feature_cache_is_invalidated_by_a_replaced_clip_or_a_changed_config(splits, tiny_model, tiny_processor, tmp_path):
    import os

    (data, cache) = splits
    dev = data["dev"]
    collator = TrainingCollator(tiny_processor, ("text", "audio", "video"), cache=cache)
    parts = ["text_teacher", "audio_student", "video_student"]
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    files = set((tmp_path / "frozen").glob("*.arrow"))
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    assert set((tmp_path / "frozen").glob("*.arrow")) == files  # unchanged: reused
    clip = dev[0]["video_path"]
    stat = os.stat(clip)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the clip was replaced
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    after_clip = set((tmp_path / "frozen").glob("*.arrow"))
    assert len(after_clip - files) == 1
    tiny_model.config.audio_pooling = "first"  # same weights, another behaviour: a new key
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    assert len(set((tmp_path / "frozen").glob("*.arrow")) - after_clip) == 1


def test_single_stage_run_keeps_earlier_stage_results(tmp_path):
    from telme_hf.training.run import _earlier_results, _merge_stages

    (tmp_path / "results.json").write_text(json.dumps({"stages": {"teacher": {"test": 1}, "fusion": {"test": 2}}}))
    earlier = _earlier_results(tmp_path / "results.json")["stages"]
    merged = _merge_stages(earlier, {"fusion": {"test": 3}, "audio": {"test": 4}})
    assert list(merged) == ["teacher", "audio", "fusion"]
    assert merged["fusion"] == {"test": 3} and merged["teacher"] == {"test": 1}


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_feature_encoder_leaves_the_audio_students_convolutions_out_of_the_step(freeze, tiny_config, tmp_path):
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(tiny_config)
    args = TelMETrainingArguments(output_dir=str(tmp_path), stage="audio", freeze_feature_encoder=freeze,
                                  report_to="none", disable_tqdm=True, eval_strategy="no", save_strategy="no",
                                  load_best_model_at_end=False)
    trainer_for_stage("audio")(model=model, args=args)
    convolutions = list(model.audio_student.encoder.feature_extractor.parameters())
    assert all(p.requires_grad != freeze for p in convolutions)
    model.audio_student.train()
    outputs = model(input_values=torch.randn(2, 4000))
    outputs.audio_logits.sum().backward()
    assert all((p.grad is None) == freeze for p in convolutions)
    assert model.audio_student.classifier.weight.grad is not None  # the rest of the student still learns
    # The next audio stage without the option trains them again.
    freeze_all_but(model, "audio")
    assert all(p.requires_grad for p in convolutions) and model.audio_student.encoder.feature_extractor._requires_grad


def test_gradient_checkpointing_from_the_training_arguments_trains_the_video_student(splits, tiny_model,
                                                                                      tiny_processor, tmp_path):
    """`gradient_checkpointing=true` in a recipe config (the usual answer to "out of memory on the video student")
    reaches the model through the Trainer and gives the steps' gradients as without it."""
    (data, cache) = splits
    train = add_frozen_outputs(data["train"], tiny_model, TrainingCollator(tiny_processor, ("text",)),
                               TEACHER_COLUMNS, tmp_path / "frozen", ["text_teacher"])
    weights = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = TelMEForEmotionRecognition(tiny_model.config)
        model.load_state_dict(tiny_model.state_dict())
        trainer = make_trainer("video", model, tiny_processor, train, data["dev"], cache, tmp_path / str(checkpointing),
                               gradient_checkpointing=checkpointing, seed=0)
        trainer.train()
        assert model.is_gradient_checkpointing == checkpointing
        weights[checkpointing] = model.video_student.classifier.weight.detach().clone()
    torch.testing.assert_close(weights[True], weights[False], atol=1e-5, rtol=1e-4)
