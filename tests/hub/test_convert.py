"""Converting the original TelME release: key mapping, reference config and tokenisation, parity of the forward pass.

The original model is re-stated below in plain torch from the facts of the original code (widths it hard-codes
kept: 768-d students and fusion, teacher projected to 768), with tiny backbones, and saved in the original
state-dict layout. The converted checkpoint must give the same logits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import (
    AutoProcessor,
    Data2VecAudioConfig,
    Data2VecAudioModel,
    RobertaConfig,
    RobertaModel,
    TimesformerConfig,
    TimesformerModel,
)

from telme_hf import REFERENCE_BEHAVIOUR, TelMEConfig, TelMEForEmotionRecognition
from telme_hf.modeling.configuration_telme import MODEL_REFERENCE_BEHAVIOUR
from telme_hf.hub.convert import (
    ConversionError,
    _check_speaker_token_ids,
    _load_tokenizer,
    build_reference_config,
    convert_original_checkpoint,
)


WIDTH = 768  # hard-coded in the original: student width, teacher projection, fusion
HYPER = {"meld": {"heads": 3, "theta": 0.1, "labels": 7}, "iemocap": {"heads": 4, "theta": 0.2, "labels": 6}}
FILES = {"teacher": "teacher.bin", "audio_student": "audio_total_student.bin",
         "video_student": "video_total_student.bin", "fusion": "total_fusion.bin"}


# ------------------------------------------------------------------------------ the original, re-stated in torch
class OriginalTeacher(nn.Module):
    """RoBERTa (with its pooler) → hidden state at the last position (the `<mask>`) → W → classifier."""

    def __init__(self, config: RobertaConfig, num_labels: int) -> None:
        super().__init__()
        self.text_model = RobertaModel(config, add_pooling_layer=True)
        self.W = nn.Linear(config.hidden_size, WIDTH)
        self.classifier = nn.Linear(WIDTH, num_labels)

    def forward(self, input_ids, attention_mask):
        hidden = self.W(self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, -1])
        return hidden, self.classifier(hidden)


class OriginalStudent(nn.Module):
    """Backbone without any mask → state at position 0 (first audio frame / video CLS) → W."""

    def __init__(self, backbone: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.model = backbone
        self.W = nn.Linear(WIDTH, num_labels)

    def forward(self, inputs):
        hidden = self.model(inputs).last_hidden_state[:, 0]
        return hidden, self.W(hidden)


class OriginalASF(nn.Module):
    """The fusion: MHA(1536) on a 2-D [B, 1536] input (one unbatched sequence of length B), gates and shift."""

    def __init__(self, num_labels: int, theta: float, num_heads: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(2 * WIDTH, num_heads)
        self.W_hav = nn.Linear(3 * WIDTH, WIDTH)
        self.W_av = nn.Linear(2 * WIDTH, WIDTH)
        self.AV_LayerNorm = nn.LayerNorm(2 * WIDTH)
        self.LayerNorm = nn.LayerNorm(WIDTH)
        self.dropout = nn.Dropout(dropout)
        self.W = nn.Linear(WIDTH, num_labels)
        self.theta = theta

    def forward(self, text, first, second):
        x = torch.cat([first, second], dim=-1)
        f_att = self.dropout(self.AV_LayerNorm(self.multihead_attn(x, x, x)[0] + x))
        gate = F.relu(self.W_hav(torch.cat([f_att, text], dim=-1)))
        h = gate * self.W_av(f_att)
        norm_t, norm_h = text.norm(p=2, dim=-1), h.norm(p=2, dim=-1)
        norm_h = torch.where(norm_h == 0, torch.ones_like(norm_h), norm_h)
        lam = torch.minimum(self.theta * norm_t / (norm_h + 1e-6), torch.ones_like(norm_t))
        return self.W(self.dropout(self.LayerNorm(text + lam.unsqueeze(-1) * h)))


def tiny_backbones(vocab_size: int, positions: int = 514) -> tuple[RobertaConfig, Data2VecAudioConfig, TimesformerConfig]:
    text = RobertaConfig(
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
        max_position_embeddings=positions, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    audio = Data2VecAudioConfig(
        hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=2, num_conv_pos_embedding_groups=16,
        conv_pos_kernel_size=3, conv_bias=True, mask_time_length=3, layerdrop=0.0,
    )
    video = TimesformerConfig(
        image_size=32, patch_size=16, num_frames=2, hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=64,
    )
    return text, audio, video


@dataclass
class Release:
    dataset: str
    files: dict[str, Path]
    config_dir: Path
    original: dict[str, nn.Module]
    converted: Path

    def paths(self, **replace: Path) -> dict[str, Path]:
        return {**self.files, **replace}


def make_release(folder: Path, dataset: str, vocab_size: int, seed: int = 0,
                 positions: int = 514) -> tuple[dict, dict, Path]:
    """Random original modules, saved as the original scripts would (plus the position_ids buffer old versions kept)."""
    torch.manual_seed(seed)
    text, audio, video = tiny_backbones(vocab_size, positions)
    labels, hyper = HYPER[dataset]["labels"], HYPER[dataset]
    original = {
        "teacher": OriginalTeacher(text, labels),
        "audio_student": OriginalStudent(Data2VecAudioModel(audio), labels),
        "video_student": OriginalStudent(TimesformerModel(video), labels),
        "fusion": OriginalASF(labels, hyper["theta"], hyper["heads"]),
    }
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    with torch.no_grad():
        for part, module in original.items():
            for parameter in module.parameters():  # move every tensor off its default init, LayerNorms included
                parameter.add_(torch.randn_like(parameter) * 0.05)
            module.eval()
            state_dict = module.state_dict()
            if part == "teacher":
                state_dict["text_model.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
            files[part] = folder / FILES[part]
            torch.save(state_dict, files[part])
    config_dir = folder / "backbones"
    # copies: building a TelMEConfig resets the sub-configs' attention implementation, which the modules above use
    backbones = {"text_config": text.to_dict(), "audio_config": audio.to_dict(), "video_config": video.to_dict()}
    TelMEConfig(**backbones).save_pretrained(config_dir)
    return original, files, config_dir


def original_logits(original: dict[str, nn.Module], batch, order=("audio", "video")) -> dict[str, torch.Tensor]:
    text, text_logits = original["teacher"](batch["input_ids"], batch["attention_mask"])
    audio, audio_logits = original["audio_student"](batch["input_values"])
    video, video_logits = original["video_student"](batch["pixel_values"])
    features = {"audio": audio, "video": video}
    logits = original["fusion"](text, *(features[name] for name in order))
    return {"logits": logits, "text_logits": text_logits, "audio_logits": audio_logits, "video_logits": video_logits}


DIALOGUE = [
    {"speaker": "Ross", "text": "hello there how are you"},
    {"speaker": "Rachel", "text": "I am fine thanks"},
    {"speaker": "Monica", "text": "oh my god"},
    {"speaker": "Ross", "text": "leave me alone"},
]


def make_batch(processor, batch_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return processor(
        conversations=[DIALOGUE[: i + 1] for i in range(batch_size)],
        audio=[rng.standard_normal(3000 + 700 * i).astype(np.float32) for i in range(batch_size)],
        videos=[rng.integers(0, 255, (2, 40, 48, 3), dtype=np.uint8) for _ in range(batch_size)],
    )


@pytest.fixture(scope="module")
def releases(tmp_path_factory, tiny_tokenizer):
    """`releases(dataset)`: a random original release of that dataset and its conversion, made once per module."""
    made: dict[str, Release] = {}

    def get(dataset: str) -> Release:
        if dataset not in made:
            folder = tmp_path_factory.mktemp(f"original_{dataset}")
            original, files, config_dir = make_release(folder, dataset, len(tiny_tokenizer))
            converted = convert_original_checkpoint(
                **files, dataset=dataset, output_dir=folder / "converted", config=config_dir, tokenizer=tiny_tokenizer
            )
            made[dataset] = Release(dataset, files, config_dir, original, converted)
        return made[dataset]

    return get


@pytest.fixture(scope="module", params=["meld", "iemocap"])
def release(request, releases) -> Release:
    return releases(request.param)


@pytest.fixture(scope="module")
def meld_release(releases) -> Release:
    return releases("meld")


# ----------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("batch_size", [1, 4])
@torch.no_grad()
def test_converted_logits_equal_the_original_forward_pass(release, batch_size):
    model = TelMEForEmotionRecognition.from_pretrained(release.converted).eval()
    processor = AutoProcessor.from_pretrained(release.converted)
    batch = make_batch(processor, batch_size)
    ours = model(**batch)
    theirs = original_logits(release.original, batch)
    for name, expected in theirs.items():
        assert (getattr(ours, name) - expected).abs().max() < 1e-5, name
    assert ours.logits.shape == (batch_size, HYPER[release.dataset]["labels"])
    if batch_size == 4:
        assert (ours.shift_weights < 1).any(), "θ never acts: λ is clamped for every row"
        # the original fusion attends across the batch: another item's audio changes this item's prediction
        changed = dict(batch)
        changed["input_values"] = batch["input_values"].clone()
        changed["input_values"][1:] = torch.flip(batch["input_values"][1:], dims=[-1])
        assert not torch.allclose(model(**changed).logits[0], ours.logits[0], atol=1e-5)


def test_converted_config_uses_the_dataset_preset_and_the_original_behaviours(release):
    config = TelMEConfig.from_pretrained(release.converted)
    processor = AutoProcessor.from_pretrained(release.converted)
    for name, (clean, original) in REFERENCE_BEHAVIOUR.items():
        # The original zeroes clips over 30 s in its MELD code only.
        expected = clean if (release.dataset, name) == ("iemocap", "max_media_seconds") else original
        # What the network computes is in config.json, what it is fed in processor_config.json.
        holder = config if name in MODEL_REFERENCE_BEHAVIOUR else processor
        assert getattr(holder, name) == expected, name
    saved = json.loads((release.converted / "processor_config.json").read_text())
    assert saved["speaker_index_carryover"] is True and saved["video_channel_order"] == "bgr"
    assert "speaker_index_carryover" not in json.loads((release.converted / "config.json").read_text())
    assert config.fusion_num_heads == HYPER[release.dataset]["heads"]
    assert config.fusion_shift_weight == HYPER[release.dataset]["theta"]
    assert config.num_labels == HYPER[release.dataset]["labels"]
    assert config.fusion_attention_width == 2 * WIDTH and config.fusion_modality_order == ["audio", "video"]
    assert config.text_config.hidden_size == 64 and config.audio_config.conv_bias is True
    assert processor.reference_tokenization is True and processor.audio_padding_side == "left"
    card = (release.converted / "README.md").read_text()
    assert "converted from the original release" in card and "fusion_attention_scope" in card
    data_root = {"meld": "MELD.Raw", "iemocap": "IEMOCAP_full_release"}[release.dataset]
    assert (f"telme evaluate --model {release.converted} --data {release.dataset} --data-root {data_root} "
            f"--split test --batch-size 4") in card
    assert {"meld": "67.37", "iemocap": "70.48"}[release.dataset] in card
    assert (release.converted / "model.safetensors").exists() and not list(release.converted.glob("*.bin"))


# ------------------------------------------------------------------------------------------ modality order
@torch.no_grad()
def test_iemocap_audio_video_order_option(releases, tmp_path, tiny_tokenizer):
    release = releases("iemocap")
    assert "trained by the original `IEMOCAP/fusion.py`" in (release.converted / "README.md").read_text()
    swapped = convert_original_checkpoint(**release.files, dataset="iemocap", output_dir=tmp_path / "swapped",
                                          config=release.config_dir, tokenizer=tiny_tokenizer,
                                          iemocap_av_order="video,audio")
    model = TelMEForEmotionRecognition.from_pretrained(swapped).eval()
    assert model.config.fusion_modality_order == ["video", "audio"]
    batch = make_batch(AutoProcessor.from_pretrained(swapped), 4)
    logits = model(**batch).logits
    assert (logits - original_logits(release.original, batch, order=("video", "audio"))["logits"]).abs().max() < 1e-5
    assert not torch.allclose(logits, original_logits(release.original, batch)["logits"], atol=1e-4)


def test_av_order_option_is_checked_and_refused_for_meld(meld_release, tmp_path, tiny_tokenizer):
    with pytest.raises(ValueError, match="IEMOCAP only"):
        convert_original_checkpoint(**meld_release.files, dataset="meld", output_dir=tmp_path,
                                    config=meld_release.config_dir, tokenizer=tiny_tokenizer,
                                    iemocap_av_order=("video", "audio"))
    with pytest.raises(ValueError, match="must be"):
        convert_original_checkpoint(**meld_release.files, dataset="iemocap", output_dir=tmp_path,
                                    config=meld_release.config_dir, tokenizer=tiny_tokenizer, iemocap_av_order="audio")


# ------------------------------------------------------------------------------------------------- errors
def _rewrite(release: Release, part: str, tmp_path: Path, edit) -> Path:
    state_dict = torch.load(release.files[part], weights_only=True)
    edit(state_dict)
    path = tmp_path / f"edited_{FILES[part]}"
    torch.save(state_dict, path)
    return path


def _convert(release: Release, paths: dict[str, Path], tmp_path: Path, tokenizer, **kwargs):
    return convert_original_checkpoint(**paths, dataset=kwargs.pop("dataset", release.dataset),
                                       output_dir=tmp_path / "out", config=release.config_dir, tokenizer=tokenizer,
                                       **kwargs)


def test_wrong_shape_missing_and_unexpected_keys_are_listed(meld_release, tmp_path, tiny_tokenizer):
    def edit_fusion(state_dict):
        state_dict["W_hav.weight"] = torch.zeros(WIDTH, 2300)
        state_dict["extra_head.weight"] = torch.zeros(3)

    paths = meld_release.paths(
        fusion=_rewrite(meld_release, "fusion", tmp_path, edit_fusion),
        audio_student=_rewrite(meld_release, "audio_student", tmp_path,
                               lambda sd: sd.pop("model.encoder.layers.0.attention.k_proj.bias")),
    )
    with pytest.raises(ConversionError) as error:
        _convert(meld_release, paths, tmp_path, tiny_tokenizer)
    message = str(error.value)
    assert "--fusion W_hav.weight (→ fusion.gate.weight): expected (768, 2304), got (768, 2300)" in message
    assert "1 missing key(s):" in message
    assert "--audio-student model.encoder.layers.0.attention.k_proj.bias" in message
    assert "1 unexpected key(s)" in message and "--fusion extra_head.weight" in message
    assert not (tmp_path / "out").exists()


def test_unexpected_key_inside_a_backbone_is_an_error(meld_release, tmp_path, tiny_tokenizer):
    def add_adapter(state_dict):
        state_dict["text_model.encoder.layer.0.adapter.weight"] = torch.zeros(4)

    paths = meld_release.paths(teacher=_rewrite(meld_release, "teacher", tmp_path, add_adapter))
    with pytest.raises(ConversionError, match=r"unexpected key.*\n.*--teacher text_model\.encoder\.layer\.0\.adapter"):
        _convert(meld_release, paths, tmp_path, tiny_tokenizer)


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda: nn.Linear(2, 2), "cannot be read as a plain PyTorch state dict"),
        (lambda: {"model": {"W.weight": torch.zeros(2, 2)}, "optimizer": {"state": {}}, "epoch": 3},
         "training checkpoint: the weights are probably under the key 'model'"),
        (lambda: {"W.weight": [1.0, 2.0]}, "these entries are not tensors: 'W.weight' \\(list\\)"),
        (lambda: [torch.zeros(2)], "holds a list, not a state dict"),
    ],
    ids=["pickled-module", "training-checkpoint", "non-tensor-values", "a-list"],
)
def test_files_that_are_not_plain_state_dicts_are_refused(meld_release, tmp_path, tiny_tokenizer, content, message):
    path = tmp_path / "bad.bin"
    torch.save(content(), path)
    with pytest.raises(ConversionError, match=message) as error:
        _convert(meld_release, meld_release.paths(fusion=path), tmp_path, tiny_tokenizer)
    assert f"--fusion {path}" in str(error.value)


def test_swapped_files_and_wrong_dataset_are_named(meld_release, tmp_path, tiny_tokenizer):
    swapped = meld_release.paths(audio_student=meld_release.files["video_student"])
    with pytest.raises(ConversionError, match="--audio-student .* looks like the original "
                                              "student_video/total_student.bin.*pass it as --video-student"):
        _convert(meld_release, swapped, tmp_path, tiny_tokenizer)
    with pytest.raises(ConversionError, match="classifiers have 7 rows .* Did you mean --dataset meld"):
        _convert(meld_release, meld_release.files, tmp_path, tiny_tokenizer, dataset="iemocap")


# ------------------------------------------------------------------------------------- CLI, drops, tokenizer
def test_cli_converts_and_logs_the_dropped_pooler(meld_release, tmp_path, tiny_tokenizer, caplog, capsys):
    tokenizer_dir = tmp_path / "tokenizer"
    tiny_tokenizer.save_pretrained(tokenizer_dir)
    files = {option: str(meld_release.files[part]) for option, part in (
        ("--teacher", "teacher"), ("--audio-student", "audio_student"), ("--video-student", "video_student"),
        ("--fusion", "fusion"),
    )}
    argv = [*(item for pair in files.items() for item in pair), "--dataset", "meld", "--output", str(tmp_path / "cli"),
            "--config", str(meld_release.config_dir / "config.json"), "--tokenizer", str(tokenizer_dir)]
    from telme_hf.cli import main

    argv = ["convert-original", *argv]
    with caplog.at_level(logging.INFO, logger="telme_hf.hub.convert"):
        assert main(argv) == 0
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("text_model.pooler.dense.weight" in m and "pooler" in m for m in dropped)
    assert any("text_model.pooler.dense.bias" in m for m in dropped)
    assert any("text_model.embeddings.position_ids" in m for m in dropped)
    assert any("vocab_size=401 (embedding rows)" in r.getMessage() and "conv_bias=True" in r.getMessage()
               for r in caplog.records)
    assert "telme evaluate --model" in capsys.readouterr().out
    ours = TelMEForEmotionRecognition.from_pretrained(tmp_path / "cli").state_dict()
    theirs = TelMEForEmotionRecognition.from_pretrained(meld_release.converted).state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # an error ends the command with a message, not a traceback
    assert main([*argv[:-2], "--tokenizer", str(tmp_path / "nowhere")]) == 1
    assert "--tokenizer" in capsys.readouterr().err


def test_default_tokenizer_offline_says_to_pass_tokenizer():
    try:
        _load_tokenizer(None)
    except OSError as error:
        assert "'roberta-large'" in str(error) and "--tokenizer" in str(error)
    else:
        pytest.skip("roberta-large's tokenizer is in the local cache")


def test_speaker_tokens_must_sit_on_the_embedding_rows(tiny_tokenizer):
    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tiny_tokenizer)
    _check_speaker_token_ids(tiny_tokenizer, config)
    config.text_config.vocab_size = len(tiny_tokenizer) + 2
    with pytest.raises(ConversionError, match="last 9 rows"):
        _check_speaker_token_ids(tiny_tokenizer, config)


def test_config_option_accepts_a_file_or_folder_and_refuses_other_configs(meld_release, tmp_path):
    for source in (meld_release.config_dir, meld_release.config_dir / "config.json"):
        config = build_reference_config("iemocap", source)
        assert config.text_config.hidden_size == 64 and config.num_labels == 6 and config.fusion_num_heads == 4
        assert config.fusion_attention_scope == "batch"
    RobertaConfig().save_pretrained(tmp_path)
    with pytest.raises(ConversionError, match="is a 'roberta' config"):
        build_reference_config("meld", tmp_path)


# ------------------------------------------------------------------------------------- faithful tokenisation
def test_reference_tokenization_matches_the_original_slow_tokenizer(tiny_processor):
    # Expected lists: what transformers 4.27's slow RobertaTokenizer gives for this vocabulary with the speaker
    # tokens added as plain strings, for the original's string and its appended <mask> id.
    tokenizer = tiny_processor.tokenizer
    turns = [{"speaker": "A", "text": "hello there"}, {"speaker": "B", "text": "I am fine"}]
    prompt = tiny_processor.build_prompt(turns)

    def tokens(processor, prompt):
        return tokenizer.convert_ids_to_tokens(processor.encode_prompt(prompt))

    assert tokens(tiny_processor, prompt) == [
        "<s1>", "Ġhello", "Ġthere", "<s2>", "ĠI", "Ġam", "Ġfine", "Ġ", "</s>", "ĠNow", "<s2>", "Ġfeels", "Ġ", "<mask>"
    ]
    tiny_processor.reference_tokenization = True
    assert tokens(tiny_processor, tiny_processor.build_prompt(turns)) == [
        "<s1>", "h", "ello", "Ġthere", "<s2>", "I", "Ġam", "Ġfine", "Ġ", "</s>", "ĠNow", "<s2>", "f", "eel", "s",
        "<mask>",
    ]
    # IEMOCAP-style indices past <s9> are not special tokens: no stripping there, and utterance edge spaces count.
    iemocap = [{"speaker_index": 0, "text": "hello "}, {"speaker_index": 11, "text": " I am"}]
    assert tokens(tiny_processor, tiny_processor.build_prompt(iemocap)) == [
        "<s1>", "h", "ello", "Ġ", "Ġ", "<", "s", "1", "2", ">", "Ġ", "ĠI", "Ġam", "Ġ", "</s>", "ĠNow", "Ġ", "<", "s",
        "1", "2", ">", "Ġfeels", "<mask>",
    ]
    # truncation keeps the last max_text_length - 1 text tokens, then the <mask>
    tiny_processor.max_text_length = 6
    assert tokens(tiny_processor, tiny_processor.build_prompt(turns)) == ["ĠNow", "<s2>", "f", "eel", "s", "<mask>"]
    batch = tiny_processor(conversations=[turns[:1], turns])
    assert (batch["input_ids"][:, -1] == tokenizer.mask_token_id).all() and batch["input_ids"].shape[1] == 6


def test_a_teacher_with_fewer_positions_gets_a_text_budget_that_fits(tmp_path, tiny_tokenizer):
    # The original keeps 512 tokens; a teacher with 130 positions (128 after RoBERTa's padding offset) keeps 128.
    _, files, config_dir = make_release(tmp_path / "release", "meld", len(tiny_tokenizer), positions=130)
    folder = convert_original_checkpoint(**files, dataset="meld", output_dir=tmp_path / "converted",
                                         config=config_dir, tokenizer=tiny_tokenizer)
    processor = AutoProcessor.from_pretrained(folder)
    assert processor.max_text_length == 128
    long_dialogue = [{"speaker": "Ross", "text": "hello there " * 200}, {"speaker": "Rachel", "text": "oh my god"}]
    assert processor(conversations=[long_dialogue])["input_ids"].shape[-1] == 128


def test_a_conversion_that_runs_out_of_disk_leaves_no_folder_and_a_clean_rerun(meld_release, tmp_path,
                                                                                 tiny_tokenizer, monkeypatch):
    import errno

    import telme_hf.hub.convert as convert

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert, "render_conversion_card", full)  # after the weights and processor are written
    with pytest.raises(OSError, match="No space left"):
        _convert(meld_release, meld_release.files, tmp_path, tiny_tokenizer)
    assert sorted(tmp_path.iterdir()) == []  # neither the folder nor a half-built one beside it
    monkeypatch.undo()
    folder = _convert(meld_release, meld_release.files, tmp_path, tiny_tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in meld_release.converted.iterdir())
    with pytest.raises(FileExistsError, match="not empty"):
        _convert(meld_release, meld_release.files, tmp_path, tiny_tokenizer)
