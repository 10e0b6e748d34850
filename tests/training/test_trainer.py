"""Stage trainers: each trains only its part, from cached teacher outputs, keeps its best dev epoch, resumes, freezes the audio feature encoder, checkpoints gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from telme_hf import TelMEForEmotionRecognition
from telme_hf.data.frozen_outputs import FEATURE_COLUMNS, TEACHER_COLUMNS, add_frozen_outputs
from telme_hf.data.media_cache import MediaCache
from telme_hf.data.meld import load_meld
from telme_hf.training.run import _selected_epoch
from telme_hf.training.trainer import STAGE_MODALITIES, STAGE_PARTS, TelMETrainingArguments, freeze_all_but, trainer_for_stage
from telme_hf.training.trainer import TrainingCollator


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


def test_a_frozen_feature_encoders_kept_outputs_train_the_audio_student_as_its_forward_did(splits, tiny_model,
                                                                                           tiny_processor, tmp_path):
    """`freeze_feature_encoder` with the encoder's outputs computed once (`add_feature_encoder_outputs`): the same
    weights after the same steps as running the frozen encoder in every step, and no convolution run by the steps."""
    from telme_hf.data.frozen_outputs import FEATURE_ENCODER_COLUMNS, add_feature_encoder_outputs
    from telme_hf.modeling.media_telme import MediaLoader

    (data, cache) = splits
    train = add_frozen_outputs(data["train"], tiny_model, TrainingCollator(tiny_processor, ("text",)),
                               TEACHER_COLUMNS, tmp_path / "frozen", ["text_teacher"])
    loader = MediaLoader.for_processor(tiny_processor, cache, on_bad_media="skip")
    kept = add_feature_encoder_outputs(train, tiny_model, tiny_processor, loader, tmp_path / "frozen", batch_size=3)
    first = np.load(kept[0][FEATURE_ENCODER_COLUMNS[0]])
    frames = tiny_model.audio_student.encoder._get_feat_extract_output_lengths(kept[0][FEATURE_ENCODER_COLUMNS[1]])
    assert first.shape == (tiny_model.config.audio_config.conv_dim[-1], int(frames))  # the row's own frames
    weights, convolutions_run = {}, {}
    for name, dataset in (("every step", train), ("kept", kept)):
        model = TelMEForEmotionRecognition(tiny_model.config)
        model.load_state_dict(tiny_model.state_dict())
        calls = []
        model.audio_student.encoder.feature_extractor.conv_layers[0].register_forward_hook(lambda *_: calls.append(1))
        trainer = make_trainer("audio", model, tiny_processor, dataset, data["dev"], cache, tmp_path / name,
                               freeze_feature_encoder=True, max_steps=3, seed=0)
        trainer.train()
        weights[name] = {key: value.detach().clone() for key, value in model.audio_student.state_dict().items()}
        convolutions_run[name] = len(calls)
        assert "forward" not in vars(model.audio_student.encoder.feature_extractor)  # the pass-through is gone
    assert convolutions_run == {"every step": 3, "kept": 0}
    for key, value in weights["every step"].items():
        if key.endswith("k_proj.bias"):
            # Attention is invariant to the key bias: its gradient is rounding noise, which Adam scales to a full step.
            continue
        torch.testing.assert_close(weights["kept"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(weights["kept"]["classifier.weight"], tiny_model.audio_student.classifier.weight)


def test_feature_encoder_outputs_are_kept_once_per_weights(splits, tiny_model, tiny_processor, tmp_path):
    from telme_hf.data.frozen_outputs import add_feature_encoder_outputs
    from telme_hf.modeling.media_telme import MediaLoader

    (data, cache) = splits
    loader = MediaLoader.for_processor(tiny_processor, cache, on_bad_media="skip")
    calls = []
    tiny_model.audio_student.encoder.feature_extractor.register_forward_hook(lambda *_: calls.append(1))
    first = add_feature_encoder_outputs(data["dev"], tiny_model, tiny_processor, loader, tmp_path, batch_size=4)
    computed = len(calls)
    again = add_feature_encoder_outputs(data["dev"], tiny_model, tiny_processor, loader, tmp_path, batch_size=4)
    assert computed == -(-len(data["dev"]) // 4) and len(calls) == computed  # read back, not computed again
    assert list(again["audio_encoder_outputs"]) == list(first["audio_encoder_outputs"])
    with torch.no_grad():
        tiny_model.audio_student.encoder.feature_extractor.conv_layers[0].conv.weight.mul_(1.01)
    changed = add_feature_encoder_outputs(data["dev"], tiny_model, tiny_processor, loader, tmp_path, batch_size=4)
    assert changed["audio_encoder_outputs"][0] != first["audio_encoder_outputs"][0]
    assert sorted(path.name for path in tmp_path.glob("feature-encoder-*")) == sorted(
        {Path(p).parent.name for p in [*first["audio_encoder_outputs"], *changed["audio_encoder_outputs"]]})
