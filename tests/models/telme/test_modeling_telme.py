"""The checks a transformers model passes, run on TelME (in the manner of `tests/models/*/test_modeling_*.py`).

`TelMEModelTester` builds a tiny configuration and random inputs for the three modalities; `TestTelMEModel` runs
the common checks on them. Checks of the common suite that do not apply to a composite multimodal model are listed
at the end of the file, each with its reason.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from telme_hf import IEMOCAP_LABELS, REFERENCE_BEHAVIOUR, TelMEConfig, TelMEForEmotionRecognition
from telme_hf.modeling.configuration_telme import MODEL_REFERENCE_BEHAVIOUR
from telme_hf.modeling.processing_telme import PROCESSOR_REFERENCE_BEHAVIOUR
from telme_hf.modeling.modeling_telme import TelMEFusion, last_token_positions
from without_telme_hf import BLOCK_TELME_HF


STAGES = {"text": "text_teacher", "audio": "audio_student", "video": "video_student", "fusion": "fusion"}


class TelMEModelTester:
    """Tiny configurations and inputs: a 2-layer RoBERTa, data2vec-audio and TimeSformer of width 32."""

    def __init__(self, batch_size: int = 3, seq_length: int = 9, num_samples: int = 3200, vocab_size: int = 99,
                 num_frames: int = 4, image_size: int = 32, seed: int = 0) -> None:
        self.batch_size, self.seq_length, self.num_samples = batch_size, seq_length, num_samples
        self.vocab_size, self.num_frames, self.image_size = vocab_size, num_frames, image_size
        self.generator = torch.Generator().manual_seed(seed)

    def get_config(self, **overrides) -> TelMEConfig:
        config = TelMEConfig.from_preset("tiny", **overrides)
        config.text_config.vocab_size = self.vocab_size
        return config

    def prepare_inputs(self, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """Unpadded inputs of one length per modality."""
        batch = batch_size or self.batch_size
        generator = self.generator
        return {
            "input_ids": torch.randint(3, self.vocab_size, (batch, self.seq_length), generator=generator),
            "attention_mask": torch.ones(batch, self.seq_length, dtype=torch.long),
            "input_values": torch.randn(batch, self.num_samples, generator=generator),
            "audio_attention_mask": torch.ones(batch, self.num_samples, dtype=torch.long),
            "pixel_values": torch.randn(batch, self.num_frames, 3, self.image_size, self.image_size,
                                        generator=generator),
        }

    def prepare_config_and_inputs(self) -> tuple[TelMEConfig, dict[str, torch.Tensor]]:
        return self.get_config(), self.prepare_inputs()

    def create_model(self, config: TelMEConfig | None = None) -> TelMEForEmotionRecognition:
        torch.manual_seed(0)
        return TelMEForEmotionRecognition(config or self.get_config()).eval()


@pytest.fixture
def tester() -> TelMEModelTester:
    return TelMEModelTester()


def stage_inputs(inputs: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
    names = {"text": ("input_ids", "attention_mask"), "audio": ("input_values", "audio_attention_mask"),
             "video": ("pixel_values",)}.get(stage, tuple(inputs))
    return {name: inputs[name] for name in names}


def assert_outputs_close(first, second, atol: float = 1e-5) -> None:
    for name in ("logits", "text_features", "audio_features", "video_features"):
        a, b = getattr(first, name), getattr(second, name)
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, atol=atol, rtol=1e-4, msg=name)


class TestTelMEModel:
    # -------------------------------------------------------------------------------------------------- config
    def test_config_round_trip(self, tester, tmp_path):
        config = tester.get_config(reference_behaviour=True)
        again = TelMEConfig.from_dict(config.to_dict())
        assert again.to_dict() == config.to_dict()
        assert type(again.text_config).__name__ == "RobertaConfig" and again.text_config.vocab_size == tester.vocab_size
        assert TelMEConfig.from_dict(json.loads(config.to_json_string())).to_dict() == config.to_dict()
        config.save_pretrained(tmp_path)
        assert TelMEConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
        assert TelMEConfig.from_preset("tiny", id2label=dict(enumerate(IEMOCAP_LABELS))).num_labels == 6

    # --------------------------------------------------------------------------------------------- forward
    def test_model_outputs(self, tester):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        with torch.no_grad():
            out = model(**inputs, labels=torch.tensor([0, 1, 2]))
            as_tuple = model(**inputs, labels=torch.tensor([0, 1, 2]), return_dict=False)
        batch, labels, width = tester.batch_size, config.num_labels, config.projection_dim
        assert out.logits.shape == out.text_logits.shape == out.fusion_logits.shape == (batch, labels)
        assert out.video_features.shape == (batch, width) and out.shift_weights.shape == (batch,)
        assert len(as_tuple) == len(out.to_tuple())
        for mine, theirs in zip(as_tuple, out.to_tuple()):
            torch.testing.assert_close(mine, theirs)

    @pytest.mark.parametrize("modality", ["text", "audio", "video"])
    def test_feature_methods_return_output_objects(self, tester, modality):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        method = getattr(model, f"get_{modality}_features")
        args = list(stage_inputs(inputs, modality).values())
        with torch.no_grad():
            out = method(*args, output_hidden_states=True)
            pooled_as_tuple = method(*args, return_dict=False)
            forward = model(**stage_inputs(inputs, modality))
        assert isinstance(out, BaseModelOutputWithPooling)
        torch.testing.assert_close(out.pooler_output, getattr(forward, f"{modality}_features"))
        sub_config = getattr(config, f"{modality}_config")
        assert len(out.hidden_states) == sub_config.num_hidden_layers + 1
        assert out.last_hidden_state.shape[-1] == sub_config.hidden_size
        assert isinstance(pooled_as_tuple, tuple) and out.pooler_output.equal(pooled_as_tuple[1])

    def test_determinism(self, tester):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        with torch.no_grad():
            first, second = model(**inputs), model(**inputs)
        for name in ("logits", "text_features", "audio_features", "video_features", "shift_weights"):
            assert torch.equal(getattr(first, name), getattr(second, name)), name

    @pytest.mark.parametrize("audio_lengths", [
        (3200, 3200, 3200),
        pytest.param((3200, 2400, 2900), marks=pytest.mark.xfail(strict=True, reason=(
            "data2vec-audio zeroes the padded frames once, before its stack of positional convolutions; the second "
            "convolution then reads the first one's output on the padding, so the last real frames (and through "
            "attention all of them) change with the padding: F_a moves by ~0.05 for 800 padded samples here. "
            "A backbone property, left as transformers has it."))),
    ], ids=["audio-same-length", "audio-right-padded"])
    def test_batching_equivalence(self, tester, audio_lengths):
        """Each sample alone equals its row of a batch (text left-padded to the longest prompt)."""
        model = tester.create_model()
        singles = [tester.prepare_inputs(batch_size=1) for _ in range(3)]
        for sample, length, samples in zip(singles, (9, 6, 4), audio_lengths):
            for name in ("input_ids", "attention_mask"):
                sample[name] = sample[name][:, :length]
            for name in ("input_values", "audio_attention_mask"):
                sample[name] = sample[name][:, :samples]
        pad = torch.nn.functional.pad
        batch = {name: [] for name in singles[0]}
        for sample in singles:
            text_pad, audio_pad = 9 - sample["input_ids"].shape[1], 3200 - sample["input_values"].shape[1]
            batch["input_ids"].append(pad(sample["input_ids"], (text_pad, 0), value=1))
            batch["attention_mask"].append(pad(sample["attention_mask"], (text_pad, 0)))
            batch["input_values"].append(pad(sample["input_values"], (0, audio_pad)))
            batch["audio_attention_mask"].append(pad(sample["audio_attention_mask"], (0, audio_pad)))
            batch["pixel_values"].append(sample["pixel_values"])
        batch = {name: torch.cat(values) for name, values in batch.items()}
        with torch.no_grad():
            batched = model(**batch)
            for row, sample in enumerate(singles):
                alone = model(**sample)
                for name in ("text_features", "audio_features", "video_features", "logits"):
                    torch.testing.assert_close(getattr(batched, name)[row], getattr(alone, name)[0], atol=1e-5,
                                               rtol=1e-4, msg=f"{name} of row {row}")

    # ------------------------------------------------------------------------------------------- save / load
    def test_save_load_round_trip(self, tester, tmp_path):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        model.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
        reloaded = TelMEForEmotionRecognition.from_pretrained(tmp_path).eval()
        assert reloaded.state_dict().keys() == model.state_dict().keys()
        with torch.no_grad():
            assert_outputs_close(model(**inputs), reloaded(**inputs), atol=0)

    def test_load_with_other_labels_reinitialises_only_the_heads(self, tester, tmp_path):
        model = tester.create_model()
        model.save_pretrained(tmp_path)
        iemocap = TelMEForEmotionRecognition.from_pretrained(
            tmp_path, id2label=dict(enumerate(IEMOCAP_LABELS)), ignore_mismatched_sizes=True)
        assert iemocap.fusion.classifier.out_features == 6 == iemocap.text_teacher.classifier.out_features
        cls_tokens = (m.video_student.encoder.embeddings.cls_token for m in (iemocap, model))
        assert torch.equal(*cls_tokens)

    # ------------------------------------------------------------------------------------------- attention
    @pytest.mark.parametrize("implementation", [
        "eager", "sdpa", "flex_attention",
        pytest.param("flash_attention_2", marks=pytest.mark.skipif(
            not torch.cuda.is_available() or importlib.util.find_spec("flash_attn") is None,
            reason="flash attention needs a CUDA GPU and the flash-attn package")),
    ])
    def test_from_pretrained_with_attention_implementation(self, tester, tmp_path, implementation, caplog):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        model.save_pretrained(tmp_path)
        device = "cuda" if implementation.startswith("flash") else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        loaded = TelMEForEmotionRecognition.from_pretrained(
            tmp_path, attn_implementation=implementation, dtype=dtype).to(device).eval()
        used = {part: getattr(loaded, part).encoder.config._attn_implementation
                for part in ("text_teacher", "audio_student", "video_student")}
        # TimeSformer has only its own (eager) attention; the other two backbones take what was asked.
        assert used == {"text_teacher": implementation, "audio_student": implementation, "video_student": "eager"}
        assert implementation == "eager" or "video backbone (TimesformerModel)" in caplog.text
        if implementation == "flex_attention":
            # Flex attention compiles a kernel per shape on the CPU (~5 s for the text encoder alone); the audio
            # encoder's forward is enough to show it runs and agrees.
            inputs = stage_inputs(inputs, "audio")
        with torch.no_grad():
            reference = model(**inputs)
            out = loaded(**{name: (value.to(device, dtype) if value.is_floating_point() else value.to(device))
                            for name, value in inputs.items()})
        atol = 5e-2 if dtype == torch.bfloat16 else 1e-4
        torch.testing.assert_close(out.logits.float().cpu(), reference.logits, atol=atol, rtol=1e-3)

    def test_attention_implementation_a_sub_model_lacks_is_an_error_naming_it(self, tester, tmp_path):
        tester.create_model().save_pretrained(tmp_path)
        named = r"video sub-model \(TimesformerModel, `video_config`\).*supports \['eager'\]"
        with pytest.raises(ValueError, match=named):
            TelMEForEmotionRecognition.from_pretrained(tmp_path, attn_implementation={"video_config": "sdpa"})
        mixed = TelMEForEmotionRecognition.from_pretrained(
            tmp_path, attn_implementation={"text_config": "eager", "audio_config": "sdpa"})
        assert mixed.text_teacher.encoder.config._attn_implementation == "eager"
        assert mixed.audio_student.encoder.config._attn_implementation == "sdpa"

    # ------------------------------------------------------------------------------------------ embeddings
    def test_input_embeddings_get_set(self, tester):
        model = tester.create_model()
        embeddings = model.get_input_embeddings()
        assert embeddings is model.text_teacher.encoder.embeddings.word_embeddings
        assert embeddings.num_embeddings == tester.vocab_size
        replacement = torch.nn.Embedding(tester.vocab_size, embeddings.embedding_dim, padding_idx=1)
        model.set_input_embeddings(replacement)
        assert model.get_input_embeddings() is replacement

    def test_resize_token_embeddings_and_reload(self, tester, tmp_path):
        model = tester.create_model()
        before = model.get_input_embeddings().weight.detach().clone()
        model.resize_token_embeddings(tester.vocab_size + 5)
        assert model.config.text_config.vocab_size == tester.vocab_size + 5
        assert torch.equal(model.get_input_embeddings().weight[: tester.vocab_size], before)
        ids = torch.tensor([[0, 5, tester.vocab_size + 4, 2, 4]])  # a new token reaches the teacher
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        model.save_pretrained(tmp_path)
        reloaded = TelMEForEmotionRecognition.from_pretrained(tmp_path).eval()
        assert reloaded.get_input_embeddings().num_embeddings == tester.vocab_size + 5
        with torch.no_grad():
            torch.testing.assert_close(reloaded(input_ids=ids).logits, logits)
        model.resize_token_embeddings(tester.vocab_size - 10)  # shrinking works as well
        assert model.config.text_config.vocab_size == tester.vocab_size - 10

    # ------------------------------------------------------------------------------------------ gradients
    @pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated")
    @pytest.mark.parametrize("use_reentrant", [True, False])
    @pytest.mark.parametrize("stage", list(STAGES))
    def test_gradient_checkpointing_gives_the_same_gradients(self, tester, stage, use_reentrant):
        """Each stage's forward (its part trainable, the rest frozen as the staged run does) gives the same
        gradients with gradient checkpointing as without; dropout and SpecAugment draw the same masks."""
        config, inputs = tester.prepare_config_and_inputs()
        inputs, labels = stage_inputs(inputs, stage), torch.tensor([0, 3, 6])

        def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
            model = tester.create_model(config).train()
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name.startswith(STAGES[stage]))
            if checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
                layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
                assert layers and all(layer.gradient_checkpointing for layer in layers)
            torch.manual_seed(1)
            np.random.seed(1)  # data2vec's SpecAugment masks come from numpy
            out = model(**inputs, labels=labels)
            logits = out.fusion_logits if stage == "fusion" else out.logits
            torch.nn.functional.cross_entropy(logits, labels).backward()
            return {name: p.grad for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}

        plain, checkpointed = gradients(False), gradients(True)
        assert plain.keys() == checkpointed.keys() and len(plain) > 2
        for name in plain:
            torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-4, msg=name)

    def test_fused_loss_leaves_the_per_modality_heads_without_gradient(self, tester):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config).train()
        model(**inputs, labels=torch.tensor([0, 1, 2])).loss.backward()
        heads = ("text_teacher.classifier", "audio_student.classifier", "video_student.classifier")
        for name, parameter in model.named_parameters():
            assert (parameter.grad is None) == name.startswith(heads), name
        assert all(head in TelMEForEmotionRecognition.__doc__ for head in heads)  # documented where users read

    # ---------------------------------------------------------------------------------------------- export
    def test_torch_export_of_the_inference_forward(self, tester):
        config, inputs = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        batch = torch.export.Dim("batch", min=2, max=64)
        program = torch.export.export(model, args=(), kwargs=inputs, strict=False,
                                      dynamic_shapes={name: {0: batch} for name in inputs})
        other = tester.prepare_inputs(batch_size=5)
        other["attention_mask"][0, :3] = 0
        other["audio_attention_mask"][1, 2000:] = 0
        with torch.no_grad():
            assert_outputs_close(program.module()(**other), model(**other))


# Checks of transformers' common suite this file does not run, and why:
# - inputs_embeds, generation, caching, left-padding-for-generation and tied-weights checks: TelME classifies and
#   generates nothing, has no LM head to tie, and takes precomputed `*_features` where a decoder takes
#   `inputs_embeds` (tests/models/telme/test_modeling_telme.py checks that they skip the encoders).
# - output_attentions / output_hidden_states on `forward`: the fused forward returns features and logits per part,
#   not one encoder's states; the states are returned by `get_{text,audio,video}_features`, checked above.
# - head masking, pruning, TorchScript, feed-forward chunking: gone from transformers 5 or owned by the backbones,
#   whose own test suites run them.
# - model parallelism, CPU/disk offload, multi-GPU data parallel: need several devices; `_no_split_modules` names
#   the backbones' layers. With `fusion_attention_scope="batch"` (the original's) a prediction depends on the batch
#   by design, so batching equivalence and data-parallel splits hold for the default scope only.
# - problem types (regression, multi-label): the model has one single-label cross-entropy loss.
# - weight initialisation: `post_init` initialises the backbones as their own classes do; the heads are plain
#   `nn.Linear`s.


def make_inputs(processor, dialogue, batch_size=3, seed=0):
    rng = np.random.default_rng(seed)
    conversations = [dialogue[: i + 1] for i in range(batch_size)]
    audio = [rng.standard_normal(4000 + 1500 * i).astype(np.float32) for i in range(batch_size)]
    videos = [rng.integers(0, 255, (4, 40, 48, 3), dtype=np.uint8) for _ in range(batch_size)]
    return processor(conversations=conversations, audio=audio, videos=videos)


# --------------------------------------------------------------------------------------------------- config
def test_auto_config_for_model_builds_sub_configs_from_dicts():
    config = AutoConfig.for_model(
        "telme",
        text_config={"hidden_size": 48, "num_attention_heads": 4, "vocab_size": 321},
        audio_config={"hidden_size": 40, "num_attention_heads": 4},
        video_config={"hidden_size": 24, "num_attention_heads": 4, "num_frames": 2},
        num_labels=6,
    )
    assert isinstance(config, TelMEConfig)
    assert config.text_config.hidden_size == 48 and config.text_config.vocab_size == 321
    assert config.audio_config.hidden_size == 40
    assert config.video_config.num_frames == 2
    assert config.num_labels == 6


def test_presets_follow_the_original_code():
    meld = TelMEConfig.from_preset("meld")
    assert [meld.id2label[i] for i in range(7)] == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    assert (meld.fusion_num_heads, meld.fusion_shift_weight, meld.fusion_dropout) == (3, 0.1, 0.2)
    assert meld.text_config.vocab_size == 50274 and meld.text_config.hidden_size == 1024
    assert meld.text_config.name_or_path == "roberta-large"
    assert meld.audio_config.name_or_path == "facebook/data2vec-audio-base-960h"
    iemocap = TelMEConfig.from_preset("iemocap")
    assert [iemocap.id2label[i] for i in range(6)] == ["ang", "exc", "fru", "hap", "neu", "sad"]
    assert (iemocap.fusion_num_heads, iemocap.fusion_shift_weight) == (4, 0.2)


def test_reference_switch_sets_every_original_behaviour_and_explicit_args_win():
    config = TelMEConfig.from_preset("tiny", reference_behaviour=True)
    for name, (_, original) in MODEL_REFERENCE_BEHAVIOUR.items():
        assert getattr(config, name) == original, name
    # The network's behaviours are the config's; what it is fed is the processor's (test_processing).
    assert set(REFERENCE_BEHAVIOUR) == set(MODEL_REFERENCE_BEHAVIOUR) | set(PROCESSOR_REFERENCE_BEHAVIOUR)
    assert not set(MODEL_REFERENCE_BEHAVIOUR) & set(PROCESSOR_REFERENCE_BEHAVIOUR)
    mixed = TelMEConfig.from_preset("tiny", reference_behaviour=True, fusion_attention_scope="modalities")
    assert mixed.fusion_attention_scope == "modalities" and mixed.audio_pooling == "first"
    clean = TelMEConfig.from_preset("tiny")
    assert not any(clean.uses_reference_behaviour.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fusion_attention_scope": "sideways"}, "fusion_attention_scope"),
        ({"fusion_num_heads": 5}, "not divisible"),
        ({"fusion_modality_order": ["audio", "text"]}, "fusion_modality_order"),
    ],
)
def test_invalid_config_names_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TelMEConfig.from_preset("tiny", **kwargs)


def test_config_json_round_trip(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "telme" and saved["auto_map"]["AutoConfig"] == "configuration_telme.TelMEConfig"
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.to_dict()["text_config"] == tiny_config.to_dict()["text_config"]
    assert loaded.fusion_modality_order == ["audio", "video"]


# ---------------------------------------------------------------------------------------------------- model
def test_output_shapes(tiny_model, tiny_processor, dialogue, tiny_config):
    batch = make_inputs(tiny_processor, dialogue)
    out = tiny_model(**batch, labels=torch.tensor([0, 3, 6]))
    d, c = tiny_config.projection_dim, tiny_config.num_labels
    for name in ("logits", "text_logits", "audio_logits", "video_logits", "fusion_logits"):
        assert getattr(out, name).shape == (3, c), name
    for name in ("text_features", "audio_features", "video_features"):
        assert getattr(out, name).shape == (3, d), name
    assert out.shift_weights.shape == (3,)
    assert torch.equal(out.logits, out.fusion_logits)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, torch.tensor([0, 3, 6])))


def test_each_part_depends_only_on_its_own_modality(tiny_model, tiny_processor, dialogue):
    batch = make_inputs(tiny_processor, dialogue)
    base = tiny_model(**batch)
    changed = dict(batch)
    changed["input_values"] = batch["input_values"] * -1.0 + 0.3
    after = tiny_model(**changed)
    assert torch.equal(base.text_logits, after.text_logits)
    assert torch.equal(base.video_logits, after.video_logits)
    assert not torch.allclose(base.audio_logits, after.audio_logits)
    changed = dict(batch)
    changed["pixel_values"] = torch.flip(batch["pixel_values"], dims=[-1]) + 0.5
    after = tiny_model(**changed)
    assert torch.equal(base.text_logits, after.text_logits)
    assert torch.equal(base.audio_logits, after.audio_logits)
    assert not torch.allclose(base.video_logits, after.video_logits)


def test_single_modality_gives_that_parts_logits_and_two_modalities_is_an_error(tiny_model, tiny_processor, dialogue):
    batch = make_inputs(tiny_processor, dialogue)
    full = tiny_model(**batch)
    text_only = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.allclose(text_only.logits, full.text_logits, atol=1e-6)
    assert text_only.fusion_logits is None and text_only.audio_logits is None
    with pytest.raises(ValueError, match="one modality"):
        tiny_model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"])


def test_precomputed_features_skip_the_encoders(tiny_model, tiny_processor, dialogue):
    batch = make_inputs(tiny_processor, dialogue)
    full = tiny_model(**batch)
    cached = tiny_model(
        text_features=full.text_features, audio_features=full.audio_features, video_features=full.video_features
    )
    assert torch.allclose(cached.logits, full.logits, atol=1e-6)


def test_teacher_reads_the_mask_position_under_left_and_right_padding(tiny_model):
    assert last_token_positions(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]])).tolist() == [3, 2, 3]
    ids = torch.tensor([[0, 11, 12, 13, 4]])
    left = tiny_model.get_text_features(torch.cat([torch.ones(1, 2, dtype=torch.long), ids], 1),
                                        torch.tensor([[0, 0, 1, 1, 1, 1, 1]])).pooler_output
    right = tiny_model.get_text_features(torch.cat([ids, torch.ones(1, 2, dtype=torch.long)], 1),
                                         torch.tensor([[1, 1, 1, 1, 1, 0, 0]])).pooler_output
    assert torch.allclose(left, right, atol=1e-5)


def test_audio_mean_pooling_ignores_padding(tiny_model, tiny_processor):
    rng = np.random.default_rng(1)
    short = rng.standard_normal(5000).astype(np.float32)
    batch = tiny_processor(audio=[short, rng.standard_normal(9000).astype(np.float32)])
    assert batch["audio_attention_mask"][0].sum() == 5000
    pooled = tiny_model.get_audio_features(batch["input_values"], batch["audio_attention_mask"]).pooler_output
    encoder = tiny_model.audio_student.encoder
    hidden = encoder(batch["input_values"], attention_mask=batch["audio_attention_mask"]).last_hidden_state
    # frames of the CNN front end: each conv layer maps L to floor((L - kernel) / stride) + 1
    frames = 5000
    for kernel, stride in zip(encoder.config.conv_kernel, encoder.config.conv_stride):
        frames = (frames - kernel) // stride + 1
    assert frames < hidden.shape[1]
    assert torch.allclose(pooled[0], hidden[0, :frames].mean(0), atol=1e-6)
    assert not torch.allclose(pooled[0], hidden[0].mean(0), atol=1e-3)
    assert torch.allclose(pooled[1], hidden[1].mean(0), atol=1e-6)


def test_save_and_auto_model_reload_give_identical_logits(tmp_path, tiny_model, tiny_processor, dialogue):
    batch = make_inputs(tiny_processor, dialogue)
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, TelMEForEmotionRecognition)
    assert torch.equal(reloaded(**batch).logits, tiny_model(**batch).logits)


REMOTE_CODE_SCRIPT = BLOCK_TELME_HF + textwrap.dedent(
    """
    import sys
    try:
        import telme_hf
        raise SystemExit("telme_hf should not be importable here")
    except ImportError:
        pass
    import torch
    from transformers import AutoModel, AutoProcessor
    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    batch = processor(conversations=[[{"speaker": "A", "text": "hello there"}, {"speaker": "B", "text": "oh my god"}]])
    torch.save({"logits": model(**batch).logits, "module": type(model).__module__}, sys.argv[2])
    """
)


def test_trust_remote_code_load_without_telme_hf(tmp_path, tiny_model, tiny_processor):
    folder = tmp_path / "checkpoint"
    tiny_model.save_pretrained(folder)
    tiny_processor.save_pretrained(folder)
    for name in ("configuration_telme.py", "modeling_telme.py", "processing_telme.py"):
        assert (folder / name).exists(), name
    script = tmp_path / "load.py"
    script.write_text(REMOTE_CODE_SCRIPT)
    result_file = tmp_path / "result.pt"
    proc = subprocess.run(
        [sys.executable, str(script), str(folder), str(result_file)], capture_output=True, text=True, cwd=tmp_path,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = torch.load(result_file, weights_only=True)
    assert "telme_hf" not in result["module"]
    batch = tiny_processor(conversations=[[{"speaker": "A", "text": "hello there"}, {"speaker": "B", "text": "oh my god"}]])
    assert torch.allclose(result["logits"], tiny_model(**batch).logits, atol=1e-6)


# --------------------------------------------------------------------------------------------------- fusion
def fusion_for(scope: str, dim: int = 8, shift_weight: float = 0.5, seed: int = 0) -> TelMEFusion:
    torch.manual_seed(seed)
    config = TelMEConfig.from_preset(
        "tiny", projection_dim=dim, fusion_num_heads=2, fusion_attention_scope=scope, fusion_shift_weight=shift_weight
    )
    return TelMEFusion(config).eval()


def test_default_fusion_is_batch_invariant():
    fusion = fusion_for("modalities")
    text, audio, video = (torch.randn(4, 8) for _ in range(3))
    logits, *_ = fusion(text, audio, video)
    other_audio = audio.clone()
    other_audio[1:] = torch.randn(3, 8)
    changed, *_ = fusion(text, other_audio, video)
    assert torch.allclose(logits[0], changed[0], atol=1e-6)
    single, *_ = fusion(text[:1], audio[:1], video[:1])
    assert torch.allclose(logits[0], single[0], atol=1e-6)


def test_batch_scope_reproduces_the_original_cross_batch_attention():
    fusion = fusion_for("batch")
    text, audio, video = (torch.randn(4, 8) for _ in range(3))
    logits, *_ = fusion(text, audio, video)
    other_audio = audio.clone()
    other_audio[1:] = torch.randn(3, 8)
    changed, *_ = fusion(text, other_audio, video)
    assert not torch.allclose(logits[0], changed[0], atol=1e-4)
    # Independent re-statement: one unbatched sequence of length B over concatenated [audio; video] vectors.
    x = torch.cat([audio, video], dim=-1)
    attended = fusion.attention(x, x, x)[0] + x
    assert torch.allclose(fusion.attend(audio, video), attended, atol=1e-6)


def test_shift_weight_is_clamped_at_one():
    fusion = fusion_for("modalities", shift_weight=1e6)
    text, audio, video = (torch.randn(3, 8) for _ in range(3))
    logits, shift_weights, _ = fusion(text, audio, video)
    assert torch.equal(shift_weights, torch.ones(3))
    nonverbal = fusion.attention_norm(fusion.attend(audio, video))
    h = torch.relu(fusion.gate(torch.cat([nonverbal, text], -1))) * fusion.shift(nonverbal)
    expected = fusion.classifier(fusion.norm(text + h))
    assert torch.allclose(logits, expected, atol=1e-5)


def test_zero_shift_vector_is_handled_like_the_original():
    fusion = fusion_for("modalities", shift_weight=0.3)
    with torch.no_grad():
        fusion.gate.weight.zero_()
        fusion.gate.bias.fill_(-1.0)  # ReLU gate = 0 → H = 0
    text = torch.tensor([[3.0, 4.0, 0, 0, 0, 0, 0, 0], [0.1, 0, 0, 0, 0, 0, 0, 0]])
    audio, video = torch.randn(2, 8), torch.randn(2, 8)
    logits, shift_weights, _ = fusion(text, audio, video)
    # ‖H‖ = 0 is replaced by 1: λ = min(θ·‖F_T‖ / (1 + 1e-6), 1) → [min(0.3·5/(1+1e-6), 1), 0.3·0.1/(1+1e-6)]
    assert torch.allclose(shift_weights, torch.tensor([1.0, 0.03 / (1 + 1e-6)]), atol=1e-7)
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits, fusion.classifier(fusion.norm(text)), atol=1e-6)


def test_modality_order_swaps_inputs():
    config = TelMEConfig.from_preset("tiny", projection_dim=8, fusion_num_heads=2, fusion_modality_order=["video", "audio"])
    torch.manual_seed(0)
    swapped = TelMEFusion(config).eval()
    torch.manual_seed(0)
    straight = fusion_for("modalities", shift_weight=config.fusion_shift_weight)
    straight.load_state_dict(swapped.state_dict())
    text, audio, video = (torch.randn(2, 8) for _ in range(3))
    assert torch.allclose(swapped(text, audio, video)[0], straight(text, video, audio)[0], atol=1e-6)


def test_from_backbones_loads_local_backbones_with_their_own_configs(tmp_path, tiny_config):
    from transformers import Data2VecAudioModel, RobertaModel, TimesformerModel

    text_config = type(tiny_config.text_config)(**{**tiny_config.text_config.to_dict(), "vocab_size": 300, "layer_norm_eps": 1e-7})
    backbones = {
        "text": RobertaModel(text_config, add_pooling_layer=False),
        "audio": Data2VecAudioModel(tiny_config.audio_config),
        "video": TimesformerModel(tiny_config.video_config),
    }
    folders = {}
    for name, backbone in backbones.items():
        folders[name] = tmp_path / name
        backbone.save_pretrained(folders[name])
    tiny_config.audio_config.mask_time_length = 1  # a TelME-side override that must reach the loaded backbone
    model = TelMEForEmotionRecognition.from_backbones(
        tiny_config, text_model=str(folders["text"]), audio_model=str(folders["audio"]),
        video_model=str(folders["video"]), local_files_only=True,
    )
    # the backbone's own settings, not the preset's
    assert model.config.text_config.layer_norm_eps == 1e-7
    assert model.config.audio_config.mask_time_length == 1
    # embeddings grown to the config's vocabulary (speaker tokens); the pretrained rows kept
    embeddings = model.text_teacher.encoder.embeddings.word_embeddings.weight
    assert embeddings.shape[0] == tiny_config.text_config.vocab_size
    assert torch.equal(embeddings[:300], backbones["text"].embeddings.word_embeddings.weight)
    for part, name in ((model.audio_student, "audio"), (model.video_student, "video")):
        for key, value in backbones[name].state_dict().items():
            assert torch.equal(part.encoder.state_dict()[key], value), key
    # the assembled model saves and reloads like any other
    model.save_pretrained(tmp_path / "assembled")
    reloaded = AutoModel.from_pretrained(tmp_path / "assembled")
    assert torch.equal(reloaded.text_teacher.encoder.embeddings.word_embeddings.weight, embeddings)
    with pytest.raises(ValueError, match="No pretrained source"):
        config = TelMEConfig.from_preset("tiny")
        TelMEForEmotionRecognition.from_backbones(config)
