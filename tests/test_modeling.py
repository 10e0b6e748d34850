"""TelMEConfig and TelMEForEmotionRecognition: shapes, modality independence, fusion maths, save/load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel

from telme_hf import REFERENCE_BEHAVIOUR, TelMEConfig, TelMEForEmotionRecognition
from telme_hf.modeling.configuration_telme import MODEL_REFERENCE_BEHAVIOUR
from telme_hf.modeling.processing_telme import PROCESSOR_REFERENCE_BEHAVIOUR
from telme_hf.modeling.modeling_telme import TelMEFusion, last_token_positions
from without_telme_hf import BLOCK_TELME_HF


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
    logits, _ = fusion(text, audio, video)
    other_audio = audio.clone()
    other_audio[1:] = torch.randn(3, 8)
    changed, _ = fusion(text, other_audio, video)
    assert torch.allclose(logits[0], changed[0], atol=1e-6)
    single, _ = fusion(text[:1], audio[:1], video[:1])
    assert torch.allclose(logits[0], single[0], atol=1e-6)


def test_batch_scope_reproduces_the_original_cross_batch_attention():
    fusion = fusion_for("batch")
    text, audio, video = (torch.randn(4, 8) for _ in range(3))
    logits, _ = fusion(text, audio, video)
    other_audio = audio.clone()
    other_audio[1:] = torch.randn(3, 8)
    changed, _ = fusion(text, other_audio, video)
    assert not torch.allclose(logits[0], changed[0], atol=1e-4)
    # Independent re-statement: one unbatched sequence of length B over concatenated [audio; video] vectors.
    x = torch.cat([audio, video], dim=-1)
    attended = fusion.attention(x, x, x)[0] + x
    assert torch.allclose(fusion.attend(audio, video), attended, atol=1e-6)


def test_shift_weight_is_clamped_at_one():
    fusion = fusion_for("modalities", shift_weight=1e6)
    text, audio, video = (torch.randn(3, 8) for _ in range(3))
    logits, shift_weights = fusion(text, audio, video)
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
    logits, shift_weights = fusion(text, audio, video)
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
