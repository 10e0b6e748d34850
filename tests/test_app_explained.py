"""The page follows the pipeline's rule for a stream that is not given, and shows why each label came out."""

from __future__ import annotations

import csv
import html
import json
import numpy as np
import pytest

from telme_hf.app import TelMEApp, render_results, shift_text
from telme_hf.cli import main
from telme_hf.data.synthetic import write_media


@pytest.fixture
def erc(tiny_checkpoint):
    from telme_hf.inference.prediction import load_model_and_processor
    from telme_hf.modeling.pipeline_telme import EmotionRecognitionInConversationPipeline

    model, processor = load_model_and_processor(tiny_checkpoint, "cpu")
    return EmotionRecognitionInConversationPipeline(model=model, processor=processor, device=model.device)


def test_the_page_and_telme_predict_share_one_rule_and_show_why(erc, tiny_checkpoint, tmp_path, capsys):
    wave = (0.3 * np.sin(np.arange(8192) / 7)).astype(np.float32)[None]
    clip = write_media(tmp_path / "clip.mp4", np.full((8, 32, 32, 3), 90, np.uint8), wave, fps=8, sample_rate=16000)
    recording = write_media(tmp_path / "recording.wav", None, wave, sample_rate=16000)
    app = TelMEApp(erc)
    turns, _ = app.add_turn([], "Ross", "hello there how are you", str(clip))
    turns, _ = app.add_turn(turns, "Rachel", "I am so angry leave me alone", None, str(recording))
    turns, _ = app.add_turn(turns, "Ross", "oh my god", None)
    table, _ = app.predict(turns)
    # `telme predict` with its default policy, on the same turns.
    path = tmp_path / "dialogue.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=["speaker", "text", "media", "audio", "video"])
        writer.writeheader()
        writer.writerows({k: t.get(k) or "" for k in ("speaker", "text", "media", "audio", "video")} for t in turns)
    assert main(["predict", "--model", str(tiny_checkpoint), "--dialogue", str(path), "--format", "json",
                 "--device", "cpu"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert [r["modalities"] for r in expected] == [["text", "audio", "video"], ["text", "audio"], ["text"]]
    rows = table.split("class='telme-result'")[1:]
    for row, result in zip(rows, expected):
        assert f"class='telme-emotion'>{result['label']}</td><td>{result['score']:.3f}</td>" in row
        assert f"class='telme-modalities'>{'+'.join(result['modalities'])}</td>" in row
        assert f"class='telme-note'>{html.escape(result['note'])}</td>" in row
        assert f"class='telme-why'>{html.escape(shift_text(result))}</td>" in row
    assert shift_text(expected[2]) == f"text alone: {expected[2]['text_label']} {expected[2]['text_score']:.2f}"
    assert "audio/video shifted it by" in shift_text(expected[1])


def test_why_reads_as_a_sentence_and_older_results_still_render():
    moved = {"label": "anger", "text_label": "joy", "text_score": 0.551,
             "shift": {"lambda": 0.8, "relative_norm": 0.4, "changed_label": True}}
    assert shift_text(moved) == "text alone: joy 0.55; audio/video shifted it by 0.40 of its norm (λ 0.80), to anger"
    kept = {**moved, "label": "joy", "shift": {**moved["shift"], "changed_label": False}}
    assert shift_text(kept).endswith(", same label")
    # A checkpoint whose pipeline code gives no explanation still renders.
    old = {"turn": 0, "speaker": "Ross", "text": "hi", "label": "joy", "score": 0.7, "scores": {"joy": 0.7},
           "modalities": ["text"], "note": ""}
    assert "class='telme-why'></td>" in render_results([old], ["joy"])
