"""TelMEProcessor: the prompt, truncation, padding, media batching and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from telme_hf import TelMEProcessor
from telme_hf.modeling.processing_telme import speaker_indices


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

    tiny_config.video_pixel_statistics = statistics
    processor = build_processor(tiny_config, tiny_tokenizer)
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
    with pytest.raises(ValueError, match="same number of frames"):
        tiny_processor(videos=[np.zeros((4, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8)])
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
