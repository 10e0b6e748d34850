"""The `"emotion-recognition-in-conversation"` pipeline, registered by `import telme_hf`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import telme_hf
from telme_hf import EmotionRecognitionInConversationPipeline
from telme_hf.data.cache import media_options
from telme_hf.data.media import decode_clip
from telme_hf.data.synthetic import write_media


TURNS = [
    {"speaker": "Monica", "text": "I am fine thanks for asking"},
    {"speaker": "Joey", "text": "this is disgusting and gross"},
    {"speaker": "Monica", "text": "we lost everything and I feel so sad"},
]


@pytest.fixture
def erc(tiny_checkpoint):
    return pipeline(telme_hf.PIPELINE_TASK, model=str(tiny_checkpoint), device="cpu")


@pytest.fixture
def clips(tmp_path):
    paths = []
    for index in range(len(TURNS)):
        frames = np.full((6, 32, 32, 3), 70 * index + 20, np.uint8)
        time = np.arange(6144) / 16000
        audio = (0.3 * np.sin(2 * np.pi * (180 + 200 * index) * time)).astype(np.float32)[None]
        paths.append(write_media(tmp_path / f"clip{index}.mp4", frames, audio, fps=8, sample_rate=16000))
    return paths


def direct_probabilities(model, processor, turns, clips=None):
    contexts = [turns[: k + 1] for k in range(len(turns))]
    media = {}
    if clips is not None:
        audio_options, video_options = media_options(processor)
        decoded = [decode_clip(clip, audio_options, video_options) for clip in clips]
        media = dict(audio=[d.audio for d in decoded], videos=[d.video for d in decoded],
                     sampling_rate=audio_options.sampling_rate)
    with torch.no_grad():
        return model(**processor(conversations=contexts, **media)).logits.softmax(-1)


def as_matrix(results, labels):
    return torch.tensor([[result["scores"][label] for label in labels] for result in results])


def test_task_is_registered_on_import():
    assert telme_hf.PIPELINE_TASK == "emotion-recognition-in-conversation"
    assert telme_hf.PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks()


def test_pipeline_fuses_media_and_matches_a_direct_forward(erc, clips, tiny_model, tiny_processor):
    assert isinstance(erc, EmotionRecognitionInConversationPipeline)
    labels = list(tiny_model.config.id2label.values())
    dialogue = [{**turn, "media": str(clip)} for turn, clip in zip(TURNS, clips)]
    results = erc(dialogue)
    assert len(results) == len(TURNS)
    for result in results:
        assert result["label"] in labels and abs(sum(result["scores"].values()) - 1.0) < 1e-5
        assert result["score"] == result["scores"][result["label"]] == max(result["scores"].values())
        assert result["modalities"] == ["text", "audio", "video"]
    expected = direct_probabilities(tiny_model, tiny_processor, TURNS, clips)
    torch.testing.assert_close(as_matrix(results, labels), expected, atol=1e-5, rtol=0)
    assert [r["label"] for r in results] == [labels[int(i)] for i in expected.argmax(-1)]
    # Batching utterances differently does not change a clean (per-utterance) fusion.
    torch.testing.assert_close(as_matrix(erc(dialogue, batch_size=1), labels), expected, atol=1e-5, rtol=0)


def test_text_only_dialogues_and_lists_of_dialogues(erc, tiny_model, tiny_processor):
    labels = list(tiny_model.config.id2label.values())
    results = erc([TURNS[:2], TURNS])
    assert [len(r) for r in results] == [2, 3]
    expected = direct_probabilities(tiny_model, tiny_processor, TURNS)
    torch.testing.assert_close(as_matrix(results[1], labels), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(as_matrix(results[0], labels), expected[:2], atol=1e-5, rtol=0)
    assert all(r["modalities"] == ["text"] and "text teacher" in r["note"] for r in results[1])


def test_bad_media_policy_and_relative_paths(erc, clips, tmp_path):
    dialogue = [{**TURNS[0], "media": clips[0].name}, {**TURNS[1], "media": "gone.mp4"}]
    results = erc(dialogue, media_root=tmp_path)
    assert results[0]["note"] == "" and "missing" in results[1]["note"] and "zeros" in results[1]["note"]
    results = erc(dialogue, media_root=tmp_path, on_bad_media="skip")
    assert results[1]["modalities"] == ["text"] and "text only" in results[1]["note"]
    with pytest.raises(Exception, match="gone.mp4"):
        erc(dialogue, media_root=tmp_path, on_bad_media="error")


def test_bad_inputs_say_what_to_pass(erc):
    with pytest.raises(TypeError, match="list of turns"):
        erc("We were on a break!")
    with pytest.raises(TypeError, match="on_bad_media"):
        erc(TURNS, unknown_option=1)
