"""`telme predict`, `telme evaluate` and the notebook API (`telme_hf.inference.prediction`, `telme_hf.inference.evaluation`), against
direct model forwards."""

from __future__ import annotations

import csv
import io
import json
import shlex

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from telme_hf.cli import main
from telme_hf.modeling.media_telme import decode_clip, media_options
from telme_hf.data.meld import load_meld
from telme_hf.data.synthetic import write_media
from telme_hf.inference.dialogue_files import predict_command, read_dialogue, write_example_dialogue
from telme_hf.inference.evaluation import evaluate_split, load_evaluation_split
from telme_hf.modeling.pipeline_telme import predict_dialogue


TURNS = [
    {"speaker": "Ross", "text": "hello there how are you"},
    {"speaker": "Rachel", "text": "I am so angry leave me alone"},
    {"speaker": "Ross", "text": "oh my god that is amazing"},
]
CLIPS = ["clips/turn0.mp4", "clips/turn1.mp4", "clips/turn2.mp4"]


@pytest.fixture
def dialogue_dir(tmp_path):
    """Three short clips (distinct colours and pitches) and the dialogue as CSV and JSON, with relative paths."""
    folder = tmp_path / "dialogue"
    (folder / "clips").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index, clip in enumerate(CLIPS):
        frames = np.full((8, 32, 32, 3), 60 * index + 30, np.uint8) + rng.integers(0, 20, (8, 32, 32, 3), np.uint8)
        time = np.arange(8192) / 16000
        audio = (0.3 * np.sin(2 * np.pi * (200 + 150 * index) * time)).astype(np.float32)[None]
        write_media(folder / clip, frames, audio, fps=8, sample_rate=16000)
    rows = [{**turn, "media": clip} for turn, clip in zip(TURNS, CLIPS)]
    write_csv(folder / "dialogue.csv", rows)
    (folder / "dialogue.json").write_text(json.dumps(rows))
    return folder


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def direct_probabilities(model, processor, turns, clips=None):
    """Softmax of one plain forward of the model on the whole dialogue (fused with clips, text teacher without)."""
    contexts = [turns[: k + 1] for k in range(len(turns))]
    if clips is None:
        batch = processor(conversations=contexts)
    else:
        audio_options, video_options = media_options(processor)
        decoded = [decode_clip(clip, audio_options, video_options) for clip in clips]
        batch = processor(conversations=contexts, audio=[d.audio for d in decoded], videos=[d.video for d in decoded],
                          sampling_rate=audio_options.sampling_rate)
    with torch.no_grad():
        output = model(**batch)
    return output.logits.softmax(-1), output


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_results(results, labels):
    assert len(results) == 3
    for index, result in enumerate(results):
        assert result["turn"] == index and result["text"] == TURNS[index]["text"]
        assert result["label"] in labels and set(result["scores"]) == set(labels)
        assert abs(sum(result["scores"].values()) - 1.0) < 1e-5
        assert result["score"] == max(result["scores"].values()) == result["scores"][result["label"]]


# --------------------------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("file_format", ["csv", "json"])
def test_predict_json_output_matches_a_direct_forward(file_format, tiny_checkpoint, dialogue_dir, tiny_model,
                                                      tiny_processor, capsys):
    code, out, err = run_cli(capsys, "predict", "--model", str(tiny_checkpoint), "--dialogue",
                             str(dialogue_dir / f"dialogue.{file_format}"), "--format", "json", "--device", "cpu")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3 + 2  # "[", one line per utterance, "]"
    results = json.loads(out)
    labels = list(tiny_model.config.id2label.values())
    check_results(results, labels)
    expected, _ = direct_probabilities(tiny_model, tiny_processor, TURNS, [dialogue_dir / c for c in CLIPS])
    got = torch.tensor([[r["scores"][label] for label in labels] for r in results])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert [r["label"] for r in results] == [tiny_model.config.id2label[int(i)] for i in expected.argmax(-1)]
    assert all(r["modalities"] == ["text", "audio", "video"] and r["note"] == "" for r in results)


def test_predict_quantized_to_int8_stays_close_to_fp32(tiny_checkpoint, dialogue_dir, tiny_model, tiny_processor,
                                                      capsys):
    from telme_hf.inference.prediction import load_model_and_processor

    model, _ = load_model_and_processor(tiny_checkpoint, "cpu", quantize="int8")
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert not linears and any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__
                               for m in model.modules())
    threads = torch.get_num_threads()
    try:
        code, out, err = run_cli(capsys, "predict", "--model", str(tiny_checkpoint), "--dialogue",
                                 str(dialogue_dir / "dialogue.csv"), "--format", "json", "--quantize", "int8",
                                 "--threads", "1")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)  # the rest of the suite keeps its threads
    assert code == 0, err
    labels = list(tiny_model.config.id2label.values())
    got = torch.tensor([[r["scores"][label] for label in labels] for r in json.loads(out)])
    expected, _ = direct_probabilities(tiny_model, tiny_processor, TURNS, [dialogue_dir / c for c in CLIPS])
    assert (got - expected).abs().max() < 0.05  # int8 weights and activations: close to fp32, not equal
    code, _, err = run_cli(capsys, "predict", "--model", str(tiny_checkpoint), "--dialogue",
                           str(dialogue_dir / "dialogue.csv"), "--quantize", "int8", "--device", "cuda")
    assert code == 2 and err.strip().endswith("--quantize int8 runs on the CPU: drop --device cuda.")


def test_predict_table_and_csv_outputs(tiny_checkpoint, dialogue_dir, tiny_model, capsys):
    labels = list(tiny_model.config.id2label.values())
    args = ["predict", "--model", str(tiny_checkpoint), "--dialogue", str(dialogue_dir / "dialogue.csv"), "--device", "cpu"]
    code, out, err = run_cli(capsys, *args, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3
    for row, turn in zip(rows, TURNS):
        probabilities = [float(row[f"p_{label}"]) for label in labels]
        assert abs(sum(probabilities) - 1.0) < 1e-5
        assert row["label"] == labels[int(np.argmax(probabilities))] and row["text"] == turn["text"]
        assert row["modalities"] == "text+audio+video"
    code, out, err = run_cli(capsys, *args)  # table is the default
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 3 and lines[0].split()[:5] == ["turn", "speaker", "text", "emotion", "score"]
    assert [line.split()[1] for line in lines[1:]] == [turn["speaker"] for turn in TURNS]
    assert [row["label"] for row in rows] == [next(w for w in line.split() if w in labels) for line in lines[1:]]


def test_missing_media_policies(tiny_checkpoint, dialogue_dir, tiny_model, tiny_processor, capsys):
    rows = [{**turn, "media": clip} for turn, clip in zip(TURNS, CLIPS)]
    rows[1]["media"] = "clips/not_there.mp4"
    dialogue = write_csv(dialogue_dir / "missing.csv", rows)
    args = ["predict", "--model", str(tiny_checkpoint), "--dialogue", str(dialogue), "--format", "json", "--device", "cpu"]

    code, out, err = run_cli(capsys, *args, "--on-bad-media", "zeros")
    assert code == 0, err
    results = json.loads(out)
    check_results(results, list(tiny_model.config.id2label.values()))
    assert "missing" in results[1]["note"] and "zeros" in results[1]["note"] and "not_there.mp4" in results[1]["note"]
    assert results[1]["modalities"] == ["text"] and results[1]["shift"] is not None  # fused, zeros for both streams
    assert results[0]["note"] == results[2]["note"] == ""

    code, out, err = run_cli(capsys, *args)  # default policy: that turn from its text alone
    assert code == 0, err
    results = json.loads(out)
    assert results[1]["modalities"] == ["text"] and "text only" in results[1]["note"]
    text_only, _ = direct_probabilities(tiny_model, tiny_processor, TURNS)  # the teacher's prediction
    labels = list(tiny_model.config.id2label.values())
    got = torch.tensor([results[1]["scores"][label] for label in labels])
    torch.testing.assert_close(got, text_only[1], atol=1e-5, rtol=0)
    assert results[0]["modalities"] == ["text", "audio", "video"]

    code, out, err = run_cli(capsys, *args, "--on-bad-media", "error")
    assert code != 0 and out == ""
    assert "not_there.mp4" in err and "turn 1 (Rachel)" in err and "--on-bad-media skip" in err


def test_predict_top_k_and_media_root(tiny_checkpoint, dialogue_dir, tiny_model, tmp_path, capsys):
    labels = list(tiny_model.config.id2label.values())
    # The same dialogue file elsewhere: its relative media paths now start from --media-root.
    moved = tmp_path / "elsewhere" / "dialogue.csv"
    moved.parent.mkdir()
    moved.write_text((dialogue_dir / "dialogue.csv").read_text())
    args = ["predict", "--model", str(tiny_checkpoint), "--dialogue", str(moved), "--device", "cpu"]
    code, out, err = run_cli(capsys, *args, "--format", "json", "--media-root", str(dialogue_dir))
    assert code == 0, err
    full = json.loads(out)
    assert all(r["modalities"] == ["text", "audio", "video"] and r["note"] == "" for r in full)
    code, out, err = run_cli(capsys, *args, "--format", "json")  # without it the clips are not found
    assert code == 0 and all(r["modalities"] == ["text"] for r in json.loads(out))
    code, out, err = run_cli(capsys, *args, "--media-root", str(dialogue_dir), "--format", "json", "--top-k", "2")
    top = json.loads(out)
    for short, whole in zip(top, full):
        best = sorted(whole["scores"].items(), key=lambda item: -item[1])[:2]
        assert list(short["scores"].items()) == best and short["label"] == whole["label"]
    code, out, err = run_cli(capsys, *args, "--media-root", str(dialogue_dir), "--format", "csv", "--top-k", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["label_1"], row["label_2"]) for row in rows] == [tuple(t["scores"]) for t in top]
    code, out, err = run_cli(capsys, *args, "--media-root", str(dialogue_dir), "--top-k", "2")
    header = out.splitlines()[0].split()
    assert "top" in header and not set(labels) & set(header)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(capsys, *args, "--top-k", "0")
    assert exit_info.value.code == 2 and "--top-k" in capsys.readouterr().err


def test_text_only_dialogue_gets_the_text_teachers_prediction(tiny_checkpoint, tmp_path, tiny_model, tiny_processor,
                                                               capsys):
    dialogue = write_csv(tmp_path / "text.csv", [{"Speaker": t["speaker"], "Utterance": t["text"]} for t in TURNS])
    code, out, err = run_cli(capsys, "predict", "--model", str(tiny_checkpoint), "--dialogue", str(dialogue),
                             "--format", "json", "--device", "cpu")
    assert code == 0, err
    results = json.loads(out)
    expected, _ = direct_probabilities(tiny_model, tiny_processor, TURNS)
    labels = list(tiny_model.config.id2label.values())
    got = torch.tensor([[r["scores"][label] for label in labels] for r in results])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert all(r["modalities"] == ["text"] and "text teacher" in r["note"] for r in results)


def test_predict_reports_bad_dialogue_files(tiny_checkpoint, tmp_path, capsys):
    args = ["predict", "--model", str(tiny_checkpoint), "--device", "cpu", "--dialogue"]
    code, _, err = run_cli(capsys, *args, str(tmp_path / "absent.csv"))
    assert code == 1 and "absent.csv" in err and "not found" in err
    no_text = write_csv(tmp_path / "no_text.csv", [{"speaker": "Ross", "line": "hi"}])
    code, _, err = run_cli(capsys, *args, str(no_text))
    assert code == 1 and "no_text.csv" in err and "'text'" in err


def test_predict_dialogue_api_and_arrays(tiny_model, tiny_processor, dialogue_dir):
    labels = list(tiny_model.config.id2label.values())
    turns = [{**turn, "media": clip} for turn, clip in zip(TURNS, CLIPS)]
    results = predict_dialogue(tiny_model, tiny_processor, turns, media_root=dialogue_dir, batch_size=2)
    check_results(results, labels)
    expected, _ = direct_probabilities(tiny_model, tiny_processor, TURNS, [dialogue_dir / c for c in CLIPS])
    got = torch.tensor([[r["scores"][label] for label in labels] for r in results])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # Decoded arrays in place of paths give the same prediction.
    audio_options, video_options = media_options(tiny_processor)
    clip = decode_clip(dialogue_dir / CLIPS[0], audio_options, video_options)
    from_arrays = predict_dialogue(tiny_model, tiny_processor, [{**TURNS[0], "audio": clip.audio, "video": clip.video}])
    assert abs(from_arrays[0]["score"] - results[0]["score"]) < 1e-5
    # Frames of any length are picked like a decoded clip's: one frame is repeated to the model's frames.
    one_frame = predict_dialogue(tiny_model, tiny_processor, [{**TURNS[0], "audio": clip.audio, "video": clip.video[:1]}])
    repeated = np.repeat(clip.video[:1], tiny_processor.num_frames, axis=0)
    same = predict_dialogue(tiny_model, tiny_processor, [{**TURNS[0], "audio": clip.audio, "video": repeated}])
    assert one_frame[0]["scores"] == pytest.approx(same[0]["scores"], abs=1e-6)
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        predict_dialogue(tiny_model, tiny_processor, [{**TURNS[0], "audio": clip.audio, "video": clip.video[..., 0]}])


def test_example_dialogue_and_the_printed_command(tiny_corpus, tiny_checkpoint, tmp_path, capsys):
    test = load_meld(tiny_corpus, splits="test")["test"]
    example = write_example_dialogue(test, tmp_path / "run" / "example_dialogue.csv")
    turns = read_dialogue(example)
    first = [row for row in test if row["dialogue_id"] == test[0]["dialogue_id"]]
    assert [t["text"] for t in turns] == [row["text"] for row in first]
    assert [t["media"] for t in turns] == [row["video_path"] for row in first]
    command = shlex.split(predict_command(tiny_checkpoint, example))
    assert command[0] == "telme"
    code, out, err = run_cli(capsys, *command[1:], "--format", "json", "--device", "cpu")
    assert code == 0, err
    assert len(json.loads(out)) == len(first)


# -------------------------------------------------------------------------------------------------- evaluate
def test_evaluate_matches_sklearn_on_a_direct_forward(tiny_corpus, tiny_checkpoint, tmp_path, tiny_model, tiny_processor,
                                                      capsys):
    output_dir = tmp_path / "eval"
    code, out, err = run_cli(capsys, "evaluate", "--model", str(tiny_checkpoint), "--data", "meld", "--data-root",
                             str(tiny_corpus), "--split", "test", "--batch-size", "4", "--output-dir", str(output_dir),
                             "--device", "cpu")
    assert code == 0, err
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert (output_dir / "confusion_matrix.png").stat().st_size > 0
    assert (output_dir / "predictions.csv").exists()

    test = load_meld(tiny_corpus, splits="test")["test"]
    audio_options, video_options = media_options(tiny_processor)
    fused, text, gold = [], [], []
    for start in range(0, len(test), 4):
        rows = [test[i] for i in range(start, min(start + 4, len(test)))]
        clips = [decode_clip(row["video_path"], audio_options, video_options) for row in rows]
        batch = tiny_processor(conversations=[row["context"] for row in rows], audio=[c.audio for c in clips],
                               videos=[c.video for c in clips], sampling_rate=audio_options.sampling_rate)
        with torch.no_grad():
            output = tiny_model(**batch)
        fused += output.logits.argmax(-1).tolist()
        text += output.text_logits.argmax(-1).tolist()
        gold += [row["label"] for row in rows]
    assert metrics["num_samples"] == len(test) == len(gold)
    assert metrics["weighted_f1"] == pytest.approx(f1_score(gold, fused, average="weighted"), abs=1e-12)
    assert metrics["parts"]["teacher"]["weighted_f1"] == pytest.approx(f1_score(gold, text, average="weighted"))
    assert metrics["setup"]["batch_size"] == 4 and metrics["paper"]["weighted_f1"] == 67.37
    # The printed table: the paper's MELD column order, every part, and the paper's row.
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert header.split()[1:8] == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    for row in ("teacher", "audio", "video", "fusion", "TelME (paper)"):
        assert any(line.startswith(row) for line in out.splitlines()), row
    assert f"{100 * metrics['weighted_f1']:.2f}" in next(line for line in out.splitlines() if line.startswith("fusion"))


@pytest.mark.parametrize("policy", ["zeros", "skip"])
def test_evaluation_on_cached_features_equals_the_direct_one_and_runs_no_encoder_again(
        tiny_corpus, tiny_model, tiny_processor, tmp_path, monkeypatch, policy):
    dev = load_meld(tiny_corpus, splits="dev", on_bad_media=policy)["dev"]
    direct = evaluate_split(tiny_model, tiny_processor, dev, batch_size=4, on_bad_media=policy, progress=False,
                            split="dev")
    cached = evaluate_split(tiny_model, tiny_processor, dev, batch_size=4, on_bad_media=policy, progress=False,
                            split="dev", cache=tmp_path / "media", features_cache=tmp_path / "features")
    assert len(list((tmp_path / "features").glob("features-dev-*.arrow"))) == 1

    def no_encoder(*args, **kwargs):
        raise AssertionError("an encoder ran although its features were cached")

    for name in ("get_text_features", "get_audio_features", "get_video_features"):
        monkeypatch.setattr(tiny_model, name, no_encoder)
    again = evaluate_split(tiny_model, tiny_processor, dev, batch_size=4, on_bad_media=policy, progress=False,
                           split="dev", cache=tmp_path / "media", features_cache=tmp_path / "features")
    for result in (cached, again):
        assert result["keys"] == direct["keys"] and result["labels"] == direct["labels"]
        assert result["bad_media"] == direct["bad_media"] and len(direct["bad_media"]) >= (policy == "zeros")
        for part in ("teacher", "audio", "video", "fusion"):
            np.testing.assert_allclose(result["logits"][part], direct["logits"][part], atol=1e-5)
            assert result[part]["weighted_f1"] == direct[part]["weighted_f1"]


def test_evaluate_split_skip_drops_bad_media_and_zeros_keeps_it(tiny_corpus, tiny_model, tiny_processor):
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    missing = manifest["missing"][0]
    key = f"dia{missing['Dialogue_ID']}_utt{missing['Utterance_ID']}"
    dev = load_meld(tiny_corpus, splits="dev", on_bad_media="zeros")["dev"]
    position = dev["utterance_key"].index(key)
    subset = dev.select(range(max(0, position - 1), min(len(dev), position + 2)))
    zeros = evaluate_split(tiny_model, tiny_processor, subset, on_bad_media="zeros", progress=False)
    assert zeros["num_samples"] == len(subset) and "zeros" in zeros["bad_media"][key]
    skip = evaluate_split(tiny_model, tiny_processor, subset, on_bad_media="skip", progress=False)
    assert skip["num_samples"] == len(subset) - 1 and key not in skip["keys"]
    assert skip["bad_media"][key].endswith(": dropped")  # left out of every metric
    with pytest.raises(Exception, match=key):
        evaluate_split(tiny_model, tiny_processor, subset, on_bad_media="error", progress=False)
    # Under "skip" the loader already drops the row; the evaluation still lists it, from the load's report.
    dev, report = load_evaluation_split("synthetic", tiny_corpus, "dev", tiny_processor, tiny_model.config,
                                        on_bad_media="skip")
    assert key not in dev["utterance_key"]
    results = evaluate_split(tiny_model, tiny_processor, dev, on_bad_media="skip", progress=False, report=report,
                             split="dev")
    assert results["num_samples"] == len(dev) and "missing" in results["bad_media"][key]


def test_batch_attention_checkpoints_are_evaluated_in_csv_order_batches(tiny_corpus, tiny_config, tiny_tokenizer):
    from telme_hf import TelMEForEmotionRecognition, build_processor

    tiny_config.fusion_attention_scope = "batch"  # the original fusion: attention across the batch
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(tiny_config).eval()
    processor = build_processor(tiny_config, tiny_tokenizer)
    test = load_meld(tiny_corpus, splits="test")["test"].select(range(6))
    audio_options, video_options = media_options(processor)
    expected = []
    for start in (0, 4):  # batches of 4 in CSV order: rows 0-3, then 4-5
        rows = [test[i] for i in range(start, min(start + 4, len(test)))]
        clips = [decode_clip(row["video_path"], audio_options, video_options) for row in rows]
        batch = processor(conversations=[row["context"] for row in rows], audio=[c.audio for c in clips],
                          videos=[c.video for c in clips], sampling_rate=audio_options.sampling_rate)
        with torch.no_grad():
            expected.append(model(**batch).logits)
    expected = torch.cat(expected).numpy()
    results = evaluate_split(model, processor, test, batch_size=4, progress=False)
    np.testing.assert_allclose(results["logits"]["fusion"], expected, atol=1e-5)
    other = evaluate_split(model, processor, test, batch_size=3, progress=False)
    assert not np.allclose(other["logits"]["fusion"], expected, atol=1e-5)  # the batch matters for such checkpoints


def test_damaged_checkpoints_and_dialogue_values_of_the_wrong_type_are_named(tiny_checkpoint, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    weights = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    dialogue = tmp_path / "d.json"
    dialogue.write_text(json.dumps([{"speaker": "Ross", "text": "hi"}]))
    code, _, err = run_cli(capsys, "predict", "--model", str(broken), "--dialogue", str(dialogue), "--device", "cpu")
    assert code == 1 and "model.safetensors is damaged" in err and "Traceback" not in err
    dialogue.write_text(json.dumps([{"speaker": "Ross", "text": 42}]))
    code, _, err = run_cli(capsys, "predict", "--model", str(tiny_checkpoint), "--dialogue", str(dialogue))
    assert code == 1 and "turn 0: text must be text, got int 42" in err
    dialogue.write_text(json.dumps([{"speaker": "Ross", "text": "hi", "media": ["a.mp4"]}]))
    code, _, err = run_cli(capsys, "predict", "--model", str(tiny_checkpoint), "--dialogue", str(dialogue))
    assert code == 1 and "media must be a file path" in err


def test_worker_errors_reach_the_caller_as_themselves(tiny_corpus, tiny_model, tiny_processor):
    from telme_hf.modeling.media_telme import MissingMediaError

    dev = load_meld(tiny_corpus, splits="dev", on_bad_media="zeros")["dev"]
    with pytest.raises(MissingMediaError, match="file not found") as caught:
        evaluate_split(tiny_model, tiny_processor, dev, on_bad_media="error", num_workers=1, progress=False)
    assert "DataLoader worker" not in str(caught.value)
