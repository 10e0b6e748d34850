"""`telme predict` says why each label came out: the text teacher's own label ("text alone") and the shift audio/video
made, in the table, JSON and CSV; and it follows the pipeline's rule for a stream that is not given."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from telme_hf.cli import main
from telme_hf.data.synthetic import write_media
from telme_hf.inference.dialogue_files import render_predictions


TURNS = [
    {"speaker": "Ross", "text": "hello there how are you"},
    {"speaker": "Rachel", "text": "I am so angry leave me alone"},
    {"speaker": "Ross", "text": "oh my god that is amazing"},
    {"speaker": "Rachel", "text": "we lost everything"},
]


@pytest.fixture
def dialogue(tmp_path):
    """A turn with a clip, one without media, one with only a voice, one with only a picture."""
    frames = np.full((8, 32, 32, 3), 90, np.uint8)
    wave = (0.3 * np.sin(np.arange(8192) / 7)).astype(np.float32)[None]
    write_media(tmp_path / "clip.mp4", frames, wave, fps=8, sample_rate=16000)
    write_media(tmp_path / "voice.wav", None, wave, sample_rate=16000)
    write_media(tmp_path / "silent.mp4", frames, None, fps=8)
    rows = [{**TURNS[0], "media": "clip.mp4", "audio": "", "video": ""}, {**TURNS[1], "media": "", "audio": "", "video": ""},
            {**TURNS[2], "media": "", "audio": "voice.wav", "video": ""},
            {**TURNS[3], "media": "", "audio": "", "video": "silent.mp4"}]
    path = tmp_path / "dialogue.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text_only = tmp_path / "text.json"
    text_only.write_text(json.dumps(TURNS))
    return path, text_only


def predict(capsys, checkpoint, path, *options):
    code = main(["predict", "--model", str(checkpoint), "--dialogue", str(path), "--device", "cpu", *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_telme_predict_shows_the_text_alone_and_the_shift(tiny_checkpoint, dialogue, capsys):
    path, text_only = dialogue
    results = json.loads(predict(capsys, tiny_checkpoint, path, "--format", "json"))
    alone = json.loads(predict(capsys, tiny_checkpoint, text_only, "--format", "json"))
    # One rule for a stream not given: zeros for it, the fused prediction, the note says so.
    assert [r["modalities"] for r in results] == [["text", "audio", "video"], ["text"], ["text", "audio"],
                                                  ["text", "video"]]
    assert [r["note"] for r in results] == ["", "no media given: text teacher's prediction",
                                            "video not given: used zeros", "audio not given: used zeros"]
    for result, text in zip(results, alone):
        assert result["text_label"] == text["label"] and result["text_score"] == pytest.approx(text["score"], abs=1e-6)
        assert result["text_scores"] == pytest.approx(text["scores"], abs=1e-6)
    assert results[1]["shift"] is None and results[1]["label"] == results[1]["text_label"]
    for result in (results[0], results[2], results[3]):
        shift = result["shift"]
        assert set(shift) == {"lambda", "relative_norm", "changed_label"} and 0 < shift["lambda"] <= 1
        assert 0 < shift["relative_norm"] <= 0.5 + 1e-6  # at most θ of the text feature
        assert shift["changed_label"] == (result["label"] != result["text_label"])

    table = predict(capsys, tiny_checkpoint, path).splitlines()
    header = table[0]
    assert "text alone" in header and "shift" in header and header.index("text alone") < header.index("shift")
    for line, result in zip(table[1:], results):
        assert f"{result['text_label']} {result['text_score']:.3f}" in line
        shift = result["shift"]
        assert (f"{shift['relative_norm']:.3f} (λ {shift['lambda']:.2f})" in line) if shift else " - " in line

    rows = list(csv.DictReader(io.StringIO(predict(capsys, tiny_checkpoint, path, "--format", "csv"))))
    for row, result in zip(rows, results):
        assert row["text_label"] == result["text_label"]
        assert float(row["text_score"]) == pytest.approx(result["text_score"], abs=1e-6)
        shift = result["shift"]
        if shift is None:
            assert row["shift_lambda"] == row["shift_relative_norm"] == row["shift_changed_label"] == ""
        else:
            assert float(row["shift_relative_norm"]) == pytest.approx(shift["relative_norm"], abs=1e-6)
            assert float(row["shift_lambda"]) == pytest.approx(shift["lambda"], abs=1e-6)
            assert row["shift_changed_label"] == str(shift["changed_label"]).lower()


def test_a_shift_that_moved_the_label_says_so():
    result = {"turn": 0, "speaker": "Ross", "text": "fine", "label": "anger", "score": 0.6,
              "scores": {"anger": 0.6, "joy": 0.4}, "modalities": ["text", "audio"], "note": "video not given: used zeros",
              "text_label": "joy", "text_score": 0.55, "text_scores": {"anger": 0.45, "joy": 0.55},
              "shift": {"lambda": 0.8, "relative_norm": 0.4, "changed_label": True}}
    table = render_predictions([result], ["anger", "joy"], "table")
    assert "joy 0.550" in table and "0.400 (λ 0.80), moved the label" in table
    row = next(csv.DictReader(io.StringIO(render_predictions([result], ["anger", "joy"], "csv"))))
    assert (row["text_label"], row["shift_lambda"], row["shift_changed_label"]) == ("joy", "0.800000", "true")
    assert json.loads(render_predictions([result], ["anger", "joy"], "json"))[0]["shift"]["changed_label"] is True
