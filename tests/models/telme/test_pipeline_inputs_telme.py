"""What people hold, given to the pipeline: every input form of a turn's media, the array contract, the rule for a
stream that is not given, generators and datasets, and why each label came out."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import telme_hf
from telme_hf.data.synthetic import write_media
from telme_hf.modeling.media_telme import MediaLoader, decode_clip, media_options
from telme_hf.modeling.pipeline_telme import predict_dialogue, prepare_dialogue


TURN = {"speaker": "Ross", "text": "hello there how are you"}
RATE = 16000


@pytest.fixture
def erc(tiny_checkpoint):
    # The checkpoint's own copy of the pipeline code, as `trust_remote_code` users get it.
    return pipeline(telme_hf.PIPELINE_TASK, model=str(tiny_checkpoint), trust_remote_code=True, device="cpu")


@pytest.fixture
def media(tmp_path):
    """A clip with both streams, its audio alone as a wav, and the arrays they decode to."""
    frames = np.stack([np.full((32, 32, 3), 30 * i + 10, np.uint8) for i in range(6)])
    wave = (0.3 * np.sin(np.arange(8000) / 9)).astype(np.float32)
    clip = write_media(tmp_path / "clip.mp4", frames, wave[None], fps=8, sample_rate=RATE)
    wav = write_media(tmp_path / "voice.wav", None, wave[None], sample_rate=RATE)
    return {"clip": clip, "wav": wav, "wave": wave, "frames": frames}


def scores(result):
    return torch.tensor(list(result["scores"].values()))


def one(model, processor, **media):
    return predict_dialogue(model, processor, [{**TURN, **media}])[0]


# ----------------------------------------------------------------------------- a stream that is not given
def test_a_turn_with_one_stream_is_fused_with_zeros_for_the_other(tiny_model, tiny_processor, media):
    loader = MediaLoader.for_processor(tiny_processor)
    for given, other in (("audio", "video"), ("video", "audio")):
        value = media["wav"] if given == "audio" else media["frames"]
        result = one(tiny_model, tiny_processor, **{given: str(value) if given == "audio" else value})
        assert result["modalities"] == ["text", given]
        assert result["note"] == f"{other} not given: used zeros"
        assert result["shift"] is not None  # the fusion ran
        # The same as giving the zeros explicitly: the stand-in the fusion was trained with.
        explicit = one(tiny_model, tiny_processor, **{given: str(value) if given == "audio" else value,
                                                      other: loader.placeholder(other)})
        torch.testing.assert_close(scores(result), scores(explicit), atol=1e-6, rtol=0)
        assert explicit["modalities"] == ["text", "audio", "video"] and explicit["note"] == ""
    # A turn without media is the text teacher's, whatever the other turns have.
    mixed = predict_dialogue(tiny_model, tiny_processor, [{**TURN, "media": str(media["clip"])}, TURN])
    assert mixed[1]["modalities"] == ["text"] and mixed[1]["shift"] is None
    assert mixed[1]["note"] == "no media given: text teacher's prediction"


def test_modalities_list_only_the_streams_really_used_under_every_policy(tiny_model, tiny_processor, media, tmp_path):
    gone = str(tmp_path / "gone.mp4")
    both_missing = predict_dialogue(tiny_model, tiny_processor, [{**TURN, "media": gone}], on_bad_media="zeros")[0]
    assert both_missing["modalities"] == ["text"] and "missing (gone.mp4): used zeros" in both_missing["note"]
    assert both_missing["shift"] is not None  # fused, with zeros for both
    one_missing = predict_dialogue(tiny_model, tiny_processor, [{**TURN, "audio": str(media["wav"]), "video": gone}],
                                   on_bad_media="zeros")[0]
    assert one_missing["modalities"] == ["text", "audio"] and one_missing["note"] == "video missing (gone.mp4): used zeros"
    skipped = predict_dialogue(tiny_model, tiny_processor, [{**TURN, "audio": gone}])[0]  # the default: skip
    assert skipped["modalities"] == ["text"] and skipped["shift"] is None and "predicted from text only" in skipped["note"]
    with pytest.raises(Exception, match="gone.mp4"):
        predict_dialogue(tiny_model, tiny_processor, [{**TURN, "audio": gone}], on_bad_media="error")


# ----------------------------------------------------------------------------- every input form
def reference(tiny_model, tiny_processor, media):
    audio, video = media_options(tiny_processor)
    decoded = decode_clip(media["clip"], audio, video)
    return decoded, one(tiny_model, tiny_processor, audio=decoded.audio, video=decoded.video)


def test_every_audio_form_gives_the_same_prediction(tiny_model, tiny_processor, media):
    decoded, expected = reference(tiny_model, tiny_processor, media)
    wave, frames = decoded.audio, decoded.video
    clip_bytes = media["clip"].read_bytes()
    forms = {
        "tensor": torch.from_numpy(wave),
        "list of floats": wave.tolist(),
        "{'raw', 'sampling_rate'}": {"raw": wave, "sampling_rate": RATE},
        "{'array', 'sampling_rate'} as a tensor": {"array": torch.from_numpy(wave), "sampling_rate": float(RATE)},
        "stereo (2, N)": np.stack([wave + 0.1, wave - 0.1]),
        "stereo (N, 2)": np.stack([wave + 0.1, wave - 0.1], axis=1),
        "column (N, 1)": wave[:, None],
        "bytes": clip_bytes,
        "{'bytes'}": {"bytes": clip_bytes},
        "datasets decode=False": {"path": None, "bytes": clip_bytes},
        "{'path'}": {"path": str(media["clip"])},
        "bytearray": bytearray(clip_bytes),
    }
    for name, value in forms.items():
        result = one(tiny_model, tiny_processor, audio=value, video=frames)
        assert result["modalities"] == ["text", "audio", "video"] and result["note"] == "", name
        torch.testing.assert_close(scores(result), scores(expected), atol=1e-5, rtol=0, msg=name)


def test_every_video_form_gives_the_same_prediction(tiny_model, tiny_processor, media):
    decoded, expected = reference(tiny_model, tiny_processor, media)
    wave, frames = decoded.audio, decoded.video
    forms = {
        "tensor": torch.from_numpy(frames),
        "list of arrays": list(frames),
        "tuple of tensors": tuple(torch.from_numpy(frame) for frame in frames),
        "list of PIL images": [Image.fromarray(frame) for frame in frames],
        "floats in [0, 1]": frames / 255.0,
        "bytes": media["clip"].read_bytes(),
        "{'path'}": {"path": str(media["clip"])},
    }
    for name, value in forms.items():
        result = one(tiny_model, tiny_processor, audio=wave, video=value)
        assert result["modalities"] == ["text", "audio", "video"] and result["note"] == "", name
        torch.testing.assert_close(scores(result), scores(expected), atol=1e-5, rtol=0, msg=name)


def test_a_media_files_bytes_are_decoded_in_memory_not_taken_for_a_url(erc, media):
    data = media["clip"].read_bytes()
    assert b"http://" in data  # x264's header: the old check called this "a URL"
    from_bytes = erc([{**TURN, "media": data}])[0]
    from_path = erc([{**TURN, "media": str(media["clip"])}])[0]
    assert from_bytes["modalities"] == ["text", "audio", "video"] and from_bytes["note"] == ""
    assert from_bytes["scores"] == pytest.approx(from_path["scores"], abs=1e-6)
    broken = erc([{**TURN, "media": data[: len(data) // 3]}])[0]  # unreadable bytes: the policy, a short note
    assert broken["modalities"] == ["text"] and len(broken["note"]) < 120
    assert "bytes" in broken["note"] and "\\x" not in broken["note"]


@pytest.mark.parametrize("field,value,kind", [
    ("audio", 5, "int"), ("audio", object(), "object"), ("video", 3.5, "float"), ("media", np.zeros(10), "ndarray"),
    ("audio", {"sampling_rate": RATE}, "NoneType"),
])
def test_anything_else_is_a_type_error_naming_the_turn_and_the_forms(erc, field, value, kind):
    with pytest.raises(TypeError) as error:
        erc([TURN, {**TURN, "speaker": "Rachel", field: value}])
    message = str(error.value)
    assert f"The {field} of turn 1 (Rachel) is of type {kind}" in message and "a file path" in message
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize("value,field,expected", [
    (np.zeros((3, 4, 5), np.float32), "audio", "shape (3, 4, 5)"),
    (np.zeros(100, np.complex64), "audio", "complex64"),
    (np.zeros((6, 3, 32, 32), np.uint8), "video", "shape (6, 3, 32, 32), not (T, H, W, 3)"),
    (np.full((4, 8, 8, 3), 90.0, np.float32), "video", "float frames in [90, 90], not [0, 1]"),
    (np.zeros((4, 8, 8, 3), np.int64), "video", "int64 frames"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)], "video", "not alike"),
    ([], "video", "a list of 0 frames"),
])
def test_arrays_outside_the_contract_are_one_line_errors(tiny_model, tiny_processor, value, field, expected):
    other = {"video": np.zeros((4, 8, 8, 3), np.uint8)} if field == "audio" else {"audio": np.zeros(1600, np.float32)}
    with pytest.raises(ValueError) as error:
        one(tiny_model, tiny_processor, **{field: value, **other})
    message = str(error.value)
    assert message.startswith(f"The {field} of turn 0 (Ross) ") and expected in message, message
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize("rate", [0, -5, "16k", math.nan, math.inf, True, None])
def test_a_sampling_rate_that_is_not_a_positive_number_is_one_line(tiny_model, tiny_processor, rate):
    with pytest.raises(ValueError) as error:
        one(tiny_model, tiny_processor, audio={"array": np.zeros(1600), "sampling_rate": rate},
            video=np.zeros((4, 8, 8, 3), np.uint8))
    message = str(error.value)
    assert "sampling_rate" in message and "turn 0 (Ross)" in message and "\n" not in message


def test_no_note_ever_holds_an_array(tiny_model, tiny_processor):
    loud = np.full(RATE, np.nan, np.float32)
    for media in ({"audio": torch.from_numpy(loud)}, {"audio": loud.tolist()},
                  {"video": np.full((4, 8, 8, 3), np.nan)}, {"audio": np.zeros(61 * RATE, np.float32)}):
        result = one(tiny_model, tiny_processor, **media)
        assert result["modalities"] == ["text"] and len(result["note"]) < 100, result["note"]
        assert "nan" not in result["note"] and "[" not in result["note"]


# ----------------------------------------------------------------------------- the array contract
def test_stereo_in_either_layout_is_the_mean_of_its_channels(tiny_processor):
    left, right = np.linspace(-1, 1, 4000, dtype=np.float32), np.linspace(1, 0, 4000, dtype=np.float32)
    rows = [prepare_dialogue([{**TURN, "audio": audio, "video": np.zeros((4, 8, 8, 3), np.uint8)}], tiny_processor)[0]
            for audio in (np.stack([left, right]), np.stack([left, right], axis=1), (left + right) / 2)]
    for utterance in rows:
        np.testing.assert_allclose(utterance.audio, (left + right) / 2, atol=1e-7)


def test_non_finite_samples_or_pixels_go_by_the_bad_media_policy(tiny_model, tiny_processor):
    frames = np.full((4, 8, 8, 3), 0.5, np.float32)
    frames[1, 2, 3, 0] = np.nan
    audio = np.zeros(RATE, np.float32)
    audio[5] = np.inf
    for media, kind in (({"audio": np.zeros(RATE, np.float32), "video": frames}, "video"),
                        ({"audio": audio, "video": np.zeros((4, 8, 8, 3), np.uint8)}, "audio")):
        skipped = predict_dialogue(tiny_model, tiny_processor, [{**TURN, **media}])[0]
        assert skipped["modalities"] == ["text"] and skipped["note"].startswith(f"{kind} unusable")
        zeros = predict_dialogue(tiny_model, tiny_processor, [{**TURN, **media}], on_bad_media="zeros")[0]
        assert zeros["modalities"] == ["text", "audio" if kind == "video" else "video"]
        assert zeros["note"].startswith(f"{kind} unusable") and zeros["note"].endswith("used zeros")
        with pytest.raises(Exception, match="not finite"):
            predict_dialogue(tiny_model, tiny_processor, [{**TURN, **media}], on_bad_media="error")


def test_frames_of_any_size_are_read_channels_last(tiny_model, tiny_processor):
    # 1x1 frames used to end in "mean must have 1 elements"; 3-pixel-high frames were read as channels first.
    for height, width in ((1, 1), (3, 5), (1, 40), (2, 2)):
        red = np.zeros((4, height, width, 3), np.uint8)
        red[..., 0] = 255
        pixels = tiny_processor(videos=red)["pixel_values"]
        assert pixels.shape == (1, tiny_processor.num_frames, 3, 32, 32)
        assert (pixels[:, :, 0] > pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all()
        result = one(tiny_model, tiny_processor, audio=np.zeros(RATE, np.float32), video=red)
        assert result["modalities"] == ["text", "audio", "video"] and result["note"] == ""
    # The processor holds the same contract: float frames in [0, 1] are the uint8 ones.
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    torch.testing.assert_close(tiny_processor(videos=frames / 255.0)["pixel_values"],
                               tiny_processor(videos=frames)["pixel_values"])


def test_an_hour_long_array_costs_what_the_cap_costs(tiny_processor):
    # An hour at 16 kHz as float64: a copy would take 230 MB (float32), and the model then minutes.
    hour = np.broadcast_to(np.float64(0.1), (3600 * RATE,))
    tracemalloc.start()
    try:
        utterance = prepare_dialogue([{**TURN, "audio": {"array": hour, "sampling_rate": RATE},
                                       "video": np.zeros((4, 8, 8, 3), np.uint8)}], tiny_processor)[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak
    assert utterance.modalities == ["text"] and utterance.note == "audio too long ((array)): predicted from text only"
    with pytest.raises(Exception, match=r"3600.0 s, longer than max_media_seconds=60"):
        prepare_dialogue([{**TURN, "audio": hour}], tiny_processor, on_bad_media="error")
    # Under the cap an array is used whole.
    kept = prepare_dialogue([{**TURN, "audio": np.zeros(59 * RATE, np.float32)}], tiny_processor)[0]
    assert kept.modalities == ["text", "audio"] and len(kept.audio) == 59 * RATE


def test_a_list_of_frames_is_sampled_before_any_conversion(tiny_processor):
    class Frame:  # a PIL-like frame that counts its conversions
        converted = 0

        def convert(self, mode):
            Frame.converted += 1
            return Image.new(mode, (8, 8), (200, 10, 10))

    utterance = prepare_dialogue([{**TURN, "video": [Frame() for _ in range(10_000)]}], tiny_processor)[0]
    assert Frame.converted == tiny_processor.num_frames
    assert utterance.video.shape == (tiny_processor.num_frames, 8, 8, 3) and utterance.modalities == ["text", "video"]


# ----------------------------------------------------------------------------- generators and datasets
def test_generators_key_datasets_and_dataset_rows(erc, media):
    import datasets
    from transformers.pipelines.pt_utils import KeyDataset

    dialogues = [[TURN], [TURN, {"speaker": "Rachel", "text": "I am fine thanks", "audio": media["wave"]}]]
    expected = erc(dialogues)
    streamed = erc(dialogue for dialogue in dialogues)
    assert not isinstance(streamed, list)  # an iterator, as transformers' pipelines give for generators
    assert [[r["scores"] for r in d] for d in streamed] == [[r["scores"] for r in d] for d in expected]
    table = datasets.Dataset.from_list([{"turns": dialogue} for dialogue in ([TURN], [TURN, TURN])])
    assert [len(d) for d in erc(KeyDataset(table, "turns"))] == [1, 2]
    assert [len(d) for d in erc(table)] == [1, 2]  # rows {"turns": [...]}
    assert len(erc(table[1])) == 2 and [len(d) for d in erc([table[0], table[1]])] == [1, 2]
    with pytest.raises(TypeError, match="got int"):
        list(erc(iter([[TURN], 5])))


def test_a_datasets_audio_column_works_without_torchcodec(erc, media):
    import datasets

    column = datasets.Dataset.from_dict({"speaker": ["Ross", "Rachel"], "text": ["hello there", "I am fine"],
                                         "audio": [str(media["wav"]), str(media["clip"])]})
    rows = list(column.cast_column("audio", datasets.Audio(decode=False)))
    assert set(rows[0]["audio"]) == {"path", "bytes"}
    results = erc(rows)
    assert [r["modalities"] for r in results] == [["text", "audio"]] * 2
    assert [r["note"] for r in results] == ["video not given: used zeros"] * 2


# ----------------------------------------------------------------------------- why the label came out
def test_every_result_says_what_the_text_alone_said_and_how_far_the_shift_went(erc, tiny_model, tiny_processor,
                                                                                media):
    dialogue = [{**TURN, "media": str(media["clip"])}, {"speaker": "Rachel", "text": "I am fine thanks"},
                {"speaker": "Ross", "text": "oh my god", "audio": media["wave"]}]
    results = erc(dialogue)
    text_only = erc([{"speaker": t["speaker"], "text": t["text"]} for t in dialogue])
    for result, alone in zip(results, text_only):
        assert result["text_label"] == alone["label"] and result["text_score"] == pytest.approx(alone["score"])
        assert result["text_scores"] == pytest.approx(alone["scores"], abs=1e-6)
        assert alone["shift"] is None and alone["text_label"] == alone["label"]
    assert results[1]["shift"] is None and results[1]["label"] == results[1]["text_label"]
    # The shift is the model's own forward's: λ and ‖λH‖ / ‖F_T‖.
    audio, video = media_options(tiny_processor)
    decoded = decode_clip(media["clip"], audio, video)
    loader = MediaLoader.for_processor(tiny_processor)
    contexts = [dialogue[:1], dialogue]
    batch = tiny_processor(conversations=contexts, audio=[decoded.audio, media["wave"]],
                           videos=[decoded.video, loader.placeholder("video")], sampling_rate=RATE)
    with torch.no_grad():
        out = tiny_model(**batch)
    for row, result in zip(range(2), (results[0], results[2])):
        shift = result["shift"]
        assert shift["lambda"] == pytest.approx(float(out.shift_weights[row]), abs=1e-6)
        assert shift["relative_norm"] == pytest.approx(float(out.shift_norms[row]), abs=1e-6)
        label = tiny_model.config.id2label[int(out.logits[row].argmax())]
        text_label = tiny_model.config.id2label[int(out.text_logits[row].argmax())]
        assert (result["label"], result["text_label"]) == (label, text_label)
        assert shift["changed_label"] == (label != text_label)
    # With top_k the text's scores are cut alike.
    top = erc(dialogue, top_k=2)[0]
    assert len(top["scores"]) == len(top["text_scores"]) == 2


def test_the_fusion_reports_the_norm_of_the_shift_it_applied(tiny_model):
    torch.manual_seed(1)
    width = tiny_model.config.projection_dim
    text, audio, video = (torch.randn(5, width) for _ in range(3))
    text[0] *= 1e-3  # a tiny text feature: λ = θ‖F_T‖/‖H‖ < 1, the shift is θ of it; the others λ = 1
    fusion = tiny_model.fusion.eval()
    with torch.no_grad():
        logits, weights, norms = fusion(text, audio, video)
        out = tiny_model(text_features=text, audio_features=audio, video_features=video)
        # H, restated from the formula: g ⊙ (W₂ F_att + b₂) with F_att = LN(MHA(X) + X).
        nonverbal = fusion.attention_norm(fusion.attend(audio, video))
        shift = torch.relu(fusion.gate(torch.cat([nonverbal, text], -1))) * fusion.shift(nonverbal)
    torch.testing.assert_close(norms, weights * shift.norm(dim=-1) / text.norm(dim=-1))
    torch.testing.assert_close(out.shift_norms, norms) and torch.testing.assert_close(out.logits, logits)
    theta = tiny_model.config.fusion_shift_weight
    assert weights[0] < 1 and norms[0] == pytest.approx(theta, rel=1e-4)
    assert (weights[1:] == 1).all() and (norms[1:] < theta).all()
    assert out.to_tuple()[-1] is out.shift_norms


def test_the_processor_holds_the_contract_and_names_its_own_form(tiny_processor):
    with pytest.raises(ValueError) as error:
        tiny_processor(videos=np.full((4, 8, 8, 3), 90.0, np.float32))
    message = str(error.value)
    assert "float frames in [90, 90], not [0, 1]" in message and "a clip is (num_frames, height, width, 3)" in message
    assert "file path" not in message and "\n" not in message
