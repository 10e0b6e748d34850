"""TelMEProcessor: prompts built from dialogue turns, waveforms and frames batched, save/load, and the keywords it
takes (a one-line error for the ones transformers users try)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from telme_hf import TelMEProcessor
from telme_hf.modeling.processing_telme import speaker_indices


@pytest.mark.parametrize("keyword", ["text", "images", "audios", "video"])
def test_a_keyword_the_processor_does_not_take_is_an_error_naming_the_accepted_ones(tiny_processor, keyword):
    with pytest.raises(TypeError, match=rf"does not take `{keyword}=`.*`conversations=`.*`audio=`.*`videos=`") as error:
        tiny_processor(**{keyword: "hello there"})
    assert "\n" not in str(error.value)


def test_the_accepted_keywords_still_work_and_name_their_masks_apart(tiny_processor, dialogue):
    rng = np.random.default_rng(0)
    batch = tiny_processor(conversations=[dialogue], audio=[rng.standard_normal(4000).astype(np.float32)],
                           videos=[rng.integers(0, 255, (4, 40, 48, 3), dtype=np.uint8)], sampling_rate=16000)
    assert set(batch) == {"input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values"}
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["audio_attention_mask"].shape == batch["input_values"].shape
    doc = TelMEProcessor.__call__.__doc__
    assert "`attention_mask` (the text's mask)" in doc and "`audio_attention_mask`" in doc


def test_prompt_for_a_three_speaker_dialogue(tiny_processor, dialogue):
    expected = (
        "<s1> hello there how are you <s2> I am fine thanks <s3> oh my god <s1> leave me alone "
        "</s> Now <s1> feels <mask>"
    )
    assert tiny_processor.build_prompt(dialogue) == expected
    assert tiny_processor.build_prompt(dialogue, index=1) == (
        "<s1> hello there how are you <s2> I am fine thanks </s> Now <s2> feels <mask>"
    )


def test_speaker_tokens_are_single_tokens(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    for n in range(1, 10):
        ids = tokenizer(f"hello <s{n}> there", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_tokens_to_ids(f"<s{n}>") in ids


def test_speaker_index_override_and_first_appearance_order():
    turns = [{"speaker": "B"}, {"speaker": "A"}, {"speaker": "B"}, {"speaker": "C", "speaker_index": 7}]
    assert speaker_indices(turns) == [0, 1, 0, 7]


def test_mask_is_the_last_non_pad_position_with_left_padding(tiny_processor, dialogue):
    batch = tiny_processor(conversations=[dialogue[:1], dialogue])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    mask_id = tiny_processor.tokenizer.mask_token_id
    pad_id = tiny_processor.tokenizer.pad_token_id
    assert (ids[:, -1] == mask_id).all()
    assert mask[0, 0] == 0 and ids[0, 0] == pad_id  # the short conversation is padded on the left
    assert mask[1].all()
    # padding is a prefix: once a row starts, it never pads again
    for row in mask:
        first = int(row.argmax())
        assert row[first:].all() and not row[:first].any()


def test_truncation_keeps_the_prompt_of_a_200_turn_dialogue(tiny_processor):
    tiny_processor.max_text_length = 128
    turns = [{"speaker": f"p{i % 3}", "text": f"turn number {i} is here and it is long"} for i in range(200)]
    turns.append({"speaker": "p1", "text": "the last words"})
    batch = tiny_processor(conversations=[turns])
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == tiny_processor.max_text_length
    tail = tiny_processor.tokenizer(" the last words </s> Now <s2> feels <mask>", add_special_tokens=False)["input_ids"]
    assert ids[-len(tail):] == tail
    # the oldest turns were dropped, the newest kept
    text = tiny_processor.tokenizer.decode(ids)
    assert "turn number 199" in text and "turn number 0 " not in text


def test_media_batching_shapes_and_masks(tiny_processor):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (3000, 5000)]
    clips = [rng.integers(0, 255, (4, 30, 60, 3), dtype=np.uint8) for _ in range(2)]
    batch = tiny_processor(audio=waves, videos=clips)
    assert batch["input_values"].shape == (2, 5000)
    assert batch["audio_attention_mask"].sum(-1).tolist() == [3000, 5000]
    assert torch.all(batch["input_values"][0, 3000:] == 0)
    # per-utterance normalisation over the real samples only
    assert abs(float(batch["input_values"][0, :3000].mean())) < 1e-3
    assert abs(float(batch["input_values"][0, :3000].std()) - 1) < 1e-2
    assert batch["pixel_values"].shape == (2, 4, 3, 32, 32)


@pytest.mark.parametrize("side", ["left", "right"])
def test_each_waveform_is_normalised_on_its_own_whatever_the_padding_side(tiny_processor, side):
    tiny_processor.audio_padding_side = side
    rng = np.random.default_rng(2)
    short, long = rng.standard_normal(6000).astype(np.float32) * 3 + 1, rng.standard_normal(16000).astype(np.float32)
    batch = tiny_processor(audio=[short, long])
    alone = tiny_processor(audio=[short])["input_values"][0]
    expected = (short - short.mean()) / np.sqrt(short.var() + 1e-7)  # zero mean, unit variance, per utterance
    assert torch.allclose(alone, torch.from_numpy(expected), atol=1e-4)
    real = slice(10000, None) if side == "left" else slice(0, 6000)
    padding = slice(0, 10000) if side == "left" else slice(6000, None)
    assert torch.allclose(batch["input_values"][0, real], alone, atol=1e-6)
    assert torch.all(batch["input_values"][0, padding] == 0)
    assert batch["audio_attention_mask"][0, real].all() and not batch["audio_attention_mask"][0, padding].any()


@pytest.mark.parametrize("statistics, mean, std", [("kinetics", (0.45,) * 3, (0.225,) * 3),
                                                    ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_frame_colours_survive_normalisation(statistics, mean, std, tiny_config, tiny_tokenizer):
    from telme_hf import build_processor

    processor = build_processor(tiny_config, tiny_tokenizer, video_pixel_statistics=statistics)
    red = np.zeros((4, 32, 32, 3), np.uint8)
    red[..., 0] = 255
    pixels = processor(videos=[red])["pixel_values"][0]
    # channel c of a pure red frame: (1 - mean_R) / std_R for red, (0 - mean_G) / std_G for green
    assert torch.allclose(pixels[:, 0], torch.full_like(pixels[:, 0], (1 - mean[0]) / std[0]), atol=1e-3)
    assert torch.allclose(pixels[:, 1], torch.full_like(pixels[:, 1], -mean[1] / std[1]), atol=1e-3)


def test_errors_are_clear(tiny_processor):
    with pytest.raises(ValueError, match="at least one"):
        tiny_processor()
    with pytest.raises(ValueError, match="empty"):
        tiny_processor(audio=[np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match=r"\(num_frames, height, width, 3\)"):
        tiny_processor(videos=[np.zeros((4, 8, 8), np.uint8)])
    for template in ("{mask} said {speaker}", "Now {speaker} feels {mask} "):
        with pytest.raises(ValueError, match="end exactly with"):
            TelMEProcessor(tiny_processor.tokenizer, tiny_processor.feature_extractor, tiny_processor.image_processor,
                           prompt_template=template)


def test_save_load_round_trip_gives_identical_tensors(tmp_path, tiny_processor, dialogue):
    tiny_processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, TelMEProcessor)
    assert loaded.prompt_template == tiny_processor.prompt_template
    assert loaded.max_text_length == tiny_processor.max_text_length
    rng = np.random.default_rng(3)
    kwargs = dict(
        conversations=[dialogue[:2], dialogue],
        audio=[rng.standard_normal(4000).astype(np.float32), rng.standard_normal(2500).astype(np.float32)],
        videos=[rng.integers(0, 255, (4, 36, 40, 3), dtype=np.uint8) for _ in range(2)],
    )
    original, reloaded = tiny_processor(**kwargs), loaded(**kwargs)
    assert set(original) == set(reloaded)
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key


def test_clips_of_any_length_are_picked_to_the_models_frames(tiny_processor):
    frames = np.stack([np.full((32, 32, 3), 10 * i, np.uint8) for i in range(9)])  # frame i is grey 10*i
    pixels = tiny_processor(videos=[frames, frames[:2]])["pixel_values"]
    assert pixels.shape[:2] == (2, tiny_processor.num_frames)
    mean, std = tiny_processor.image_processor.image_mean[0], tiny_processor.image_processor.image_std[0]
    grey = (pixels[:, :, 0, 16, 16] * std + mean) * 255
    # uniform picks of 4 out of 9: 0, 3, 5, 8 (round half up); 2 frames are stretched to 0, 0, 1, 1
    assert torch.allclose(grey[0], torch.tensor([0.0, 30.0, 50.0, 80.0]), atol=0.5)
    assert torch.allclose(grey[1], torch.tensor([0.0, 0.0, 10.0, 10.0]), atol=0.5)


def test_reference_processor_sets_every_original_behaviour_and_explicit_args_win(tiny_processor):
    from telme_hf.modeling.processing_telme import PROCESSOR_REFERENCE_BEHAVIOUR

    parts = (tiny_processor.tokenizer, tiny_processor.feature_extractor, tiny_processor.image_processor)
    reference = TelMEProcessor(*parts, reference_behaviour=True)
    for name, (_, original) in PROCESSOR_REFERENCE_BEHAVIOUR.items():
        assert getattr(reference, name) == original, name
    mixed = TelMEProcessor(*parts, reference_behaviour=True, video_channel_order="rgb", max_media_seconds=None)
    assert mixed.video_channel_order == "rgb" and mixed.max_media_seconds is None and mixed.audio_keep == "last"
    assert not any(TelMEProcessor(*parts).uses_reference_behaviour.values())
    with pytest.raises(ValueError, match="video_frame_sampling"):
        TelMEProcessor(*parts, video_frame_sampling="random")
    with pytest.raises(ValueError, match="max_media_seconds"):
        TelMEProcessor(*parts, max_media_seconds=-3)


def test_bgr_processor_reverses_the_channels_of_rgb_frames(tiny_config, tiny_tokenizer):
    from telme_hf import build_processor

    red = np.zeros((4, 32, 32, 3), np.uint8)
    red[..., 0] = 255
    rgb = build_processor(tiny_config, tiny_tokenizer, video_pixel_statistics="kinetics")(videos=[red])
    bgr = build_processor(tiny_config, tiny_tokenizer, video_pixel_statistics="kinetics",
                          video_channel_order="bgr")(videos=[red])
    # kinetics statistics are the same for every channel, so BGR is the RGB tensor with its channels reversed
    assert torch.allclose(bgr["pixel_values"], rgb["pixel_values"].flip(2))


def test_a_telme_hf_01_checkpoint_keeps_its_preprocessing(tmp_path, tiny_model, tiny_processor, dialogue):
    """Checkpoints of telme_hf 0.1 kept the preprocessing options in config.json: they still load and predict the
    same, and `telme upgrade-checkpoint` moves them into processor_config.json."""
    import json

    from telme_hf.cli import main
    from telme_hf.inference.prediction import load_model_and_processor

    folder = tmp_path / "old"
    tiny_model.save_pretrained(folder)
    tiny_processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(max_text_length=8, speaker_index_carryover=True, video_channel_order="bgr", audio_sampling_rate=16000)
    (folder / "config.json").write_text(json.dumps(config))
    model, processor = load_model_and_processor(folder, "cpu")
    assert processor.max_text_length == 8 and processor.video_channel_order == "bgr"
    assert processor.speaker_index_carryover is True
    before = processor(conversations=[dialogue])["input_ids"]
    assert before.shape[1] == 8
    assert main(["upgrade-checkpoint", str(folder)]) == 0
    assert "max_text_length" not in json.loads((folder / "config.json").read_text())
    saved = json.loads((folder / "processor_config.json").read_text())
    assert saved["max_text_length"] == 8 and saved["video_channel_order"] == "bgr"
    _, upgraded = load_model_and_processor(folder, "cpu")
    assert torch.equal(upgraded(conversations=[dialogue])["input_ids"], before)
    assert main(["upgrade-checkpoint", str(folder)]) == 0  # nothing left to move
