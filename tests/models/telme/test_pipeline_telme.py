"""The `"emotion-recognition-in-conversation"` pipeline: registered by `import telme_hf`, saved with a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import telme_hf
from telme_hf import EmotionRecognitionInConversationPipeline
from telme_hf.modeling.media_telme import decode_clip, media_options
from telme_hf.data.synthetic import write_media
from without_telme_hf import BLOCK_TELME_HF


TURNS = [
    {"speaker": "Monica", "text": "I am fine thanks for asking"},
    {"speaker": "Joey", "text": "this is disgusting and gross"},
    {"speaker": "Monica", "text": "we lost everything and I feel so sad"},
]


@pytest.fixture
def erc(tiny_checkpoint):
    return pipeline(telme_hf.PIPELINE_TASK, model=str(tiny_checkpoint), trust_remote_code=True, device="cpu")


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


def test_task_is_registered_on_import(tiny_model, tiny_processor):
    assert telme_hf.PIPELINE_TASK == "emotion-recognition-in-conversation"
    assert telme_hf.PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks()
    # A model whose config names no pipeline of its own is served by the registered class.
    erc = pipeline(telme_hf.PIPELINE_TASK, model=tiny_model, processor=tiny_processor, device="cpu")
    assert isinstance(erc, EmotionRecognitionInConversationPipeline)


def test_pipeline_fuses_media_and_matches_a_direct_forward(erc, clips, tiny_model, tiny_processor):
    assert type(erc).__name__ == "EmotionRecognitionInConversationPipeline"
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
    # By default a turn with unusable media is predicted from its text alone, and its note says so.
    results = erc(dialogue, media_root=tmp_path)
    assert results[0]["note"] == "" and results[0]["modalities"] == ["text", "audio", "video"]
    assert results[1]["modalities"] == ["text"] and "missing" in results[1]["note"]
    assert "text only" in results[1]["note"] and "gone.mp4" in results[1]["note"]
    results = erc(dialogue, media_root=tmp_path, on_bad_media="zeros")
    # Fused with zeros for both streams: no stream of its own was used.
    assert results[1]["modalities"] == ["text"] and "zeros" in results[1]["note"] and results[1]["shift"]
    with pytest.raises(Exception, match="gone.mp4"):
        erc(dialogue, media_root=tmp_path, on_bad_media="error")
    # A turn's own policy wins over the call's, for that turn only.
    missing_twice = [*dialogue, {**TURNS[0], "media": "gone.mp4", "on_bad_media": "zeros"}]
    by_turn = erc(missing_twice, media_root=tmp_path)
    assert by_turn[1]["modalities"] == ["text"] and "text only" in by_turn[1]["note"]
    assert by_turn[2]["modalities"] == ["text"] and "zeros" in by_turn[2]["note"] and by_turn[2]["shift"]
    all_zeros = erc(missing_twice, media_root=tmp_path, on_bad_media="zeros")
    assert by_turn[2]["scores"] == pytest.approx(all_zeros[2]["scores"], abs=1e-6)


def test_bad_inputs_say_what_to_pass(erc):
    with pytest.raises(TypeError, match="list of turns"):
        erc("We were on a break!")
    with pytest.raises(TypeError, match="on_bad_media"):
        erc(TURNS, unknown_option=1)


PORTABLE_PIPELINE_SCRIPT = BLOCK_TELME_HF + """
import json, sys
import numpy as np
from transformers import pipeline
folder, clip, out = sys.argv[1:4]
erc = pipeline("emotion-recognition-in-conversation", model=folder, trust_remote_code=True, device="cpu")
rng = np.random.default_rng(0)
arrays = {"audio": rng.standard_normal(8000).astype(np.float32), "video": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)}
dialogue = [{"speaker": "Monica", "text": "I am fine thanks for asking", **arrays},
            {"speaker": "Joey", "text": "this is disgusting and gross", "media": clip},
            {"speaker": "Monica", "text": "we lost everything", "media": "gone.mp4"}]
json.dump({"results": erc(dialogue, top_k=2), "module": type(erc).__module__}, open(out, "w"))
"""


def test_the_checkpoint_runs_its_own_pipeline_where_telme_hf_is_not_installed(tiny_checkpoint, clips, tmp_path):
    import json
    import os
    import subprocess
    import sys

    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["custom_pipelines"][telme_hf.PIPELINE_TASK]["impl"] == \
        "pipeline_telme.EmotionRecognitionInConversationPipeline"
    for name in ("configuration_telme.py", "modeling_telme.py", "processing_telme.py", "pipeline_telme.py",
                 "media_telme.py"):
        assert (tiny_checkpoint / name).exists(), name
    script = tmp_path / "portable.py"
    script.write_text(PORTABLE_PIPELINE_SCRIPT)
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(script), str(tiny_checkpoint), str(clips[0]), str(out)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(out.read_text())
    assert "telme_hf" not in remote["module"]
    # The same dialogue through telme_hf's registered pipeline gives the same results.
    rng = np.random.default_rng(0)
    arrays = {"audio": rng.standard_normal(8000).astype(np.float32),
              "video": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)}
    dialogue = [{"speaker": "Monica", "text": "I am fine thanks for asking", **arrays},
                {"speaker": "Joey", "text": "this is disgusting and gross", "media": str(clips[0])},
                {"speaker": "Monica", "text": "we lost everything", "media": str(tmp_path / "gone.mp4")}]
    local = pipeline(telme_hf.PIPELINE_TASK, model=str(tiny_checkpoint), trust_remote_code=True,
                     device="cpu")(dialogue, top_k=2)
    for theirs, ours in zip(remote["results"], local):
        assert theirs["label"] == ours["label"] and theirs["scores"] == pytest.approx(ours["scores"], abs=1e-6)
        assert len(theirs["scores"]) == 2 and theirs["modalities"] == ours["modalities"]
    assert remote["results"][0]["modalities"] == remote["results"][1]["modalities"] == ["text", "audio", "video"]
    assert remote["results"][2]["modalities"] == ["text"] and "gone.mp4" in remote["results"][2]["note"]


RESAVE_SCRIPT = """
import sys
if sys.argv[3] == "blocked":
    exec(BLOCK)
else:
    import telme_hf
from transformers import AutoModel
AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).save_pretrained(sys.argv[2])
"""


def _run(script: str, *args: str, cwd) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_config_json_is_the_same_with_or_without_telme_hf(tiny_checkpoint, tmp_path):
    import json

    script = f"BLOCK = {BLOCK_TELME_HF!r}\n" + RESAVE_SCRIPT
    for mode in ("blocked", "imported"):
        _run(script, str(tiny_checkpoint), str(tmp_path / mode), mode, cwd=tmp_path)
    saved = {mode: json.loads((tmp_path / mode / "config.json").read_text()) for mode in ("blocked", "imported")}
    assert saved["blocked"] == saved["imported"]
    assert saved["imported"]["custom_pipelines"] == json.loads((tiny_checkpoint / "config.json").read_text())[
        "custom_pipelines"]


TASKLESS_SCRIPT = BLOCK_TELME_HF + """
import sys
from transformers import pipeline
erc = pipeline(model=sys.argv[1], trust_remote_code=True, device="cpu")
assert erc([{"speaker": "A", "text": "hello there"}])[0]["modalities"] == ["text"]
"""


def test_a_taskless_pipeline_runs_with_or_without_telme_hf(tiny_checkpoint, tmp_path):
    _run(TASKLESS_SCRIPT, str(tiny_checkpoint), cwd=tmp_path)
    erc = pipeline(model=str(tiny_checkpoint), trust_remote_code=True, device="cpu")
    assert erc([{"speaker": "A", "text": "hello there"}])[0]["modalities"] == ["text"]


def test_the_model_code_does_not_import_the_pipeline(tiny_checkpoint):
    # Loading the model must not pull in decoding or the pipeline: the pipeline is saved by its own save_pretrained.
    assert "import" not in "".join(line for line in (tiny_checkpoint / "modeling_telme.py").read_text().splitlines()
                                   if "pipeline_telme" in line or "media_telme" in line)


def test_transformers_inputs(erc, clips):
    rate = 44100
    time = np.arange(rate) / rate
    dialogue = [{"speaker": "Ross", "text": "hi", "audio": {"array": np.sin(2 * np.pi * 300 * time), "sampling_rate": rate},
                 "video": np.zeros((3, 32, 32, 3), np.uint8)}]
    result = erc(dialogue)[0]
    assert result["modalities"] == ["text", "audio", "video"] and result["note"] == ""
    with pytest.raises(ValueError, match="URLs are not downloaded"):
        erc([{"speaker": "Ross", "text": "hi", "media": "https://example.com/a.mp4"}])
    with pytest.raises(ValueError, match="sampling_rate"):
        erc([{"speaker": "Ross", "text": "hi", "audio": {"array": np.zeros(100)}, "video": np.zeros((3, 8, 8, 3), np.uint8)}])
    with pytest.raises(ValueError, match="'text' must be a string"):
        erc([{"speaker": "Ross", "text": 5}])
    top = erc([{"speaker": "Ross", "text": "hi"}], top_k=3)[0]
    assert len(top["scores"]) == 3 and list(top["scores"].values()) == sorted(top["scores"].values(), reverse=True)


BIG_MEDIA_SCRIPT = """
import json, os, resource, sys
import telme_hf
from transformers import pipeline
erc = pipeline("emotion-recognition-in-conversation", model=sys.argv[1], trust_remote_code=True, device="cpu")
out = erc([{"speaker": "Ross", "text": "hello there", "media": sys.argv[2]},
           {"speaker": "Rachel", "text": "hi", "media": sys.argv[3]}])
json.dump({"results": out, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, open(sys.argv[4], "w"))
"""


@pytest.mark.slow
def test_a_five_minute_clip_and_a_4k_clip_are_predicted_at_bounded_memory(tiny_checkpoint, tmp_path):
    import json
    import os
    import subprocess
    import sys

    frames = np.zeros((300 * 4, 48, 64, 3), np.uint8)  # 5 minutes at 4 fps
    long_clip = write_media(tmp_path / "five_minutes.mp4", frames, (0.1 * np.sin(np.arange(300 * 8000) / 7.0))
                            .astype(np.float32)[None], fps=4, sample_rate=8000)
    uhd = np.random.default_rng(0).integers(0, 255, (4, 2160, 3840, 3), dtype=np.uint8)
    uhd_clip = write_media(tmp_path / "uhd.mp4", uhd, (0.1 * np.sin(np.arange(16000) / 5.0)).astype(np.float32)[None],
                           fps=4, sample_rate=16000)
    script = tmp_path / "big.py"
    script.write_text(BIG_MEDIA_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tiny_checkpoint), str(long_clip), str(uhd_clip),
                           str(tmp_path / "out.json")], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    long_result, uhd_result = out["results"]
    assert long_result["modalities"] == ["text"] and "too long" in long_result["note"]
    assert uhd_result["modalities"] == ["text", "audio", "video"] and uhd_result["note"] == ""
    # torch and transformers alone take ~400 MB; a 4K frame is 12 MB decoded, the whole 4K clip 100 MB.
    assert out["peak_mb"] < 1500, out["peak_mb"]
