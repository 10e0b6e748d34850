"""A whole recording in, one emotion per utterance out: transcripts (SRT, WebVTT, CSV) or speech recognition, each
cue's window cut from the one file, emotion subtitles and the timeline."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pysubs2
import pytest
import torch

from telme_hf.data.synthetic import write_media
from telme_hf.inference import recordings
from telme_hf.inference.prediction import prepare_dialogue
from telme_hf.inference.recordings import (Cue, TranscriptError, plot_timeline, predict_recording, read_transcript,
                                           recording_dialogue, transcribe, write_emotion_subtitles)


RATE, FPS, SECONDS = 16000, 10, 20.0
# (start, end, speaker, text): two speakers, each with their own pitch.
CUES = [
    (0.5, 2.5, "Ross", "hello there how are you"),
    (3.0, 5.0, "Rachel", "I am fine thanks for asking"),
    (5.5, 8.0, "Ross", "oh my god that is amazing"),
    (8.5, 11.0, "Rachel", "leave me alone now please"),
    (11.5, 14.0, "Ross", "we lost everything and I feel so sad"),
    (14.5, 17.0, "Rachel", "this is disgusting and gross"),
    (17.5, 19.5, "Ross", "I am scared of the dark"),
]
PITCH = {"Ross": 180.0, "Rachel": 330.0}


def srt_time(seconds: float) -> str:
    return recordings._clock(seconds).replace(".", ",")


def write_srt(path: Path, cues=CUES) -> Path:
    blocks = [f"{i}\n{srt_time(s)} --> {srt_time(e)}\n{who}: {text}\n" for i, (s, e, who, text) in enumerate(cues, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """A 20 s recording (a moving square; a tone at each speaker's pitch during their cues) and its transcripts."""
    root = tmp_path_factory.mktemp("recording")
    t = np.arange(int(SECONDS * RATE)) / RATE
    audio = np.zeros_like(t, dtype=np.float32)
    for start, end, speaker, _ in CUES:
        inside = (t >= start) & (t < end)
        audio[inside] = 0.4 * np.sin(2 * np.pi * PITCH[speaker] * t[inside])
    frames = np.zeros((int(SECONDS * FPS), 48, 64, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        frame[..., 2] = 40
        top, left = (index * 3) % 32, (index * 5) % 48
        frame[top:top + 16, left:left + 16] = (230, 200, 30)
    paths = {"video": write_media(root / "talk.mp4", frames, audio[None], fps=FPS, sample_rate=RATE, gop_size=20),
             "audio": write_media(root / "talk.m4a", None, audio[None], sample_rate=RATE),
             "silent": write_media(root / "talk-silent.mp4", frames, None, fps=FPS, gop_size=20),
             "srt": write_srt(root / "talk.srt")}
    vtt = ["WEBVTT", ""] + [f"{recordings._clock(s)} --> {recordings._clock(e)}\n<v {who}>{text}</v>\n"
                            for s, e, who, text in CUES]
    paths["vtt"] = root / "talk.vtt"
    paths["vtt"].write_text("\n".join(vtt), encoding="utf-8")
    paths["csv"] = root / "talk.csv"
    paths["csv"].write_text("start,end,speaker,text\n" + "".join(f"{s},{e},{who},{text}\n" for s, e, who, text in CUES),
                            encoding="utf-8")
    return paths


def whole_audio(path: Path) -> tuple[np.ndarray, float]:
    """The whole file's audio decoded with PyAV alone (16 kHz mono float), and the time of its first sample."""
    resampler = av.AudioResampler(format="fltp", rate=RATE)
    chunks, origin = [], None
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            origin = frame.time if origin is None else origin
            chunks += [out.to_ndarray().mean(axis=0) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().mean(axis=0) for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32), origin


def test_srt_vtt_and_csv_give_the_same_utterances(media):
    expected = [(i, s, e, who, text) for i, (s, e, who, text) in enumerate(CUES, 1)]
    for form in ("srt", "vtt", "csv"):
        cues = read_transcript(media[form])
        assert [(c.index, c.start, c.end, c.speaker, c.text) for c in cues] == expected, form
        assert {c.source for c in cues} == {"transcript"}


def test_markup_identifiers_notes_and_the_default_speaker(tmp_path):
    vtt = tmp_path / "marked.vtt"
    vtt.write_text("WEBVTT\n\nintro\n00:00:01.000 --> 00:00:02.000 align:start\n<v.loud Dr. Green><i>Hi</i> &amp; "
                   "welcome\n{back}</v>\n\nNOTE not a cue\n\n00:00:03.000 --> 00:00:04.000\nno one named\n",
                   encoding="utf-8")
    cues = read_transcript(vtt)
    assert [(c.speaker, c.text) for c in cues] == [("Dr. Green", "Hi & welcome {back}"), ("Speaker", "no one named")]
    assert read_transcript(vtt, speaker="Narrator")[1].speaker == "Narrator"


def erc_pipeline(model, processor):
    from transformers import pipeline

    import telme_hf  # noqa: F401  (registers the pipeline task)

    return pipeline("emotion-recognition-in-conversation", model=model, processor=processor)


def test_each_form_predicts_the_labels_the_pipeline_gives_the_whole_dialogue(media, tiny_model, tiny_processor):
    erc = erc_pipeline(tiny_model, tiny_processor)
    turns = recording_dialogue(media["video"], read_transcript(media["srt"]))
    assert turns[0] == {"speaker": "Ross", "text": "hello there how are you", "media": str(media["video"]),
                        "start": 0.5, "end": 2.5}
    whole = erc(turns, batch_size=2)
    for form in ("srt", "vtt", "csv"):
        rows = predict_recording(erc, media["video"], media[form], batch_size=2)
        assert [row["label"] for row in rows] == [row["label"] for row in whole], form
        np.testing.assert_allclose([row["score"] for row in rows], [row["score"] for row in whole], rtol=1e-5)
        assert [(r["turn"], r["cue"], r["start"], r["end"], r["speaker"], r["source"]) for r in rows] == [
            (i, i + 1, s, e, who, "transcript") for i, (s, e, who, _) in enumerate(CUES)]
        assert all(r["modalities"] == ["text", "audio", "video"] and r["note"] == "" for r in rows)
        assert all(r["text_label"] in r["text_scores"] and "shift" in r for r in rows)
    json.dumps(rows)  # plain values, ready for a file


def test_a_long_recording_is_predicted_in_blocks_each_utterance_from_the_whole_context(media, tiny_model,
                                                                                        tiny_processor, monkeypatch):
    # 24 cues in blocks of 4; the text model's 32 tokens reach back ~3 turns, the last block is given 18 before it.
    texts = [text for _, _, _, text in CUES]
    cues = [Cue(i + 1, 0.8 * i, 0.8 * i + 0.7, ["Ross", "Rachel", "Monica"][i % 3 if i < 12 else i % 2],
                texts[i % len(texts)]) for i in range(24)]
    assert tiny_processor.max_text_length == 32
    monkeypatch.setattr(recordings, "_BLOCK_UTTERANCES", 4)
    erc = erc_pipeline(tiny_model, tiny_processor)
    whole = erc(recording_dialogue(media["video"], cues), batch_size=2)
    rows = predict_recording(erc, media["video"], cues, batch_size=2)
    assert [row["turn"] for row in rows] == list(range(24)) and {row["source"] for row in rows} == {"transcript"}
    assert [row["label"] for row in rows] == [row["label"] for row in whole]
    np.testing.assert_allclose([row["score"] for row in rows], [row["score"] for row in whole], rtol=1e-5)


def test_a_cue_gets_exactly_the_audio_of_its_window(media, tiny_processor):
    whole, origin = whole_audio(media["video"])
    utterances = prepare_dialogue(recording_dialogue(media["video"], read_transcript(media["srt"])), tiny_processor,
                                  "error")
    for (start, end, _, _), utterance in zip(CUES, utterances):
        first, last = round((start - origin) * RATE), round((end - origin) * RATE)
        assert len(utterance.audio) == last - first
        np.testing.assert_allclose(utterance.audio, whole[first:last], atol=1e-6)
        assert utterance.video.shape == (tiny_processor.num_frames, 32, 32, 3)
    # Each cue is its speaker's tone: the pitch is the spectrum's peak.
    for (_, _, speaker, _), utterance in zip(CUES, utterances):
        spectrum = np.abs(np.fft.rfft(utterance.audio))
        assert abs(np.argmax(spectrum) * RATE / len(utterance.audio) - PITCH[speaker]) < 2


def test_a_recording_without_video_or_audio_gets_zeros_for_it(media, tiny_model, tiny_processor):
    cues = read_transcript(media["srt"])
    for name, given, missing in (("audio", "audio", "video"), ("silent", "video", "audio")):
        turns = recording_dialogue(media[name], cues)
        assert all(given in turn and "media" not in turn for turn in turns)
        rows = predict_recording((tiny_model, tiny_processor), media[name], cues)
        assert all(row["note"] == f"{missing} not given: used zeros" for row in rows), rows[0]["note"]
        assert all(row["modalities"] == ["text", given] for row in rows)
    # The window cuts an audio file given alone as it cuts the video's.
    whole, origin = whole_audio(media["audio"])
    utterance = prepare_dialogue(recording_dialogue(media["audio"], cues), tiny_processor, "error")[1]
    first, last = round((3.0 - origin) * RATE), round((5.0 - origin) * RATE)
    np.testing.assert_allclose(utterance.audio, whole[first:last], atol=1e-6)


def test_a_cue_longer_than_max_media_seconds_goes_by_the_bad_media_policy(media, tiny_model, tiny_processor):
    tiny_processor.max_media_seconds = 2.2
    rows = predict_recording((tiny_model, tiny_processor), media["video"], media["srt"])
    long = [row for row in rows if row["end"] - row["start"] > 2.2]
    assert long and all(row["note"] == "audio+video too long (talk.mp4): predicted from text only"
                        and row["modalities"] == ["text"] for row in long)
    assert all(row["note"] == "" for row in rows if row not in long)
    with pytest.raises(Exception, match=r"longer than max_media_seconds=2.2.*turn 2 \(Ross\)"):
        predict_recording((tiny_model, tiny_processor), media["video"], media["srt"], on_bad_media="error")


def shifted(index: int, start: float | None = None, end: float | None = None, text: str | None = None):
    cues = [list(cue) for cue in CUES]
    for position, value in ((0, start), (1, end), (3, text)):
        if value is not None:
            cues[index][position] = value
    return [tuple(cue) for cue in cues]


BAD = {
    "overlapping": (shifted(2, start=4.5), r"cue 3 \(00:00:04.500 --> 00:00:08.000\): overlaps cue 2 .*Start it at "
                                           r"00:00:05.000 or later"),
    "empty text": (shifted(1, text=" "), r"cue 2 \(00:00:03.000 --> 00:00:05.000\): no words"),
    "unsorted": (shifted(3, start=1.0, end=1.5), r"cue 4 \(00:00:01.000 --> 00:00:01.500\): starts before cue 3 .*"
                                                 r"Sort the cues"),
    "backwards": (shifted(0, end=0.2), r"cue 1 \(00:00:00.500 --> 00:00:00.200\): does not end after it starts"),
    "past the end": (shifted(6, end=25.0), r"cue 7 \(00:00:17.500 --> 00:00:25.000\): ends after the recording "
                                           r".*talk.mp4 \(00:00:20.\d+\)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("form", ["srt", "csv"])
def test_a_bad_transcript_is_one_error_naming_the_file_the_cue_and_the_fix(case, form, media, tmp_path):
    cues, message = BAD[case]
    path = tmp_path / f"bad.{form}"
    if form == "srt":
        write_srt(path, cues)
    else:
        path.write_text("Start,End,Speaker,Text\n" + "".join(f"{s},{e},{who},{t}\n" for s, e, who, t in cues))
    with pytest.raises(TranscriptError, match=rf"^{path}, {message}") as caught:
        recording_dialogue(media["video"], read_transcript(path), source=path)
    assert "\n" not in str(caught.value)


def test_unreadable_times_no_cue_and_several_voices_are_errors_too(tmp_path):
    srt = write_srt(tmp_path / "bad.srt")
    srt.write_text(srt.read_text().replace("00:00:05,500 -->", "00:00:0x,500 -->"))
    with pytest.raises(TranscriptError, match=r"bad.srt, line 10: the times of cue 3, '00:00:0x,500 --> "
                                              r"00:00:08,000', cannot be read. Write them as 00:01:02,500"):
        read_transcript(srt)
    table = tmp_path / "bad.csv"
    table.write_text("start,end,text\n1,2,hi\n3,four,there\n")
    with pytest.raises(TranscriptError, match=r"bad.csv, line 3: the end of cue 2, 'four', is not a time"):
        read_transcript(table)
    for empty in (tmp_path / "empty.srt", tmp_path / "empty.vtt", tmp_path / "empty.csv", tmp_path / "header.csv"):
        empty.write_text({".vtt": "WEBVTT\n\n", ".srt": ""}.get(empty.suffix,
                                                              "start,end,text\n" if empty.stem == "header" else ""))
        with pytest.raises(TranscriptError, match=rf"{empty.name} has no cue"):
            read_transcript(empty)
    two = tmp_path / "two.vtt"
    two.write_text("WEBVTT\n\n00:01.000 --> 00:02.000\n<v Ross>Hi\n<v Rachel>Hello\n")
    with pytest.raises(TranscriptError, match=r"two.vtt, cue 1 \(00:00:01.000 --> 00:00:02.000\): several voices "
                                              r"\(Ross, Rachel\) in one cue. Split it"):
        read_transcript(two)
    with pytest.raises(TranscriptError, match="unknown transcript format '.txt'"):
        (tmp_path / "notes.txt").write_text("hi")
        read_transcript(tmp_path / "notes.txt")


def prediction_rows() -> list[dict]:
    labels = ["neutral", "joy", "anger"]
    rows = []
    for i, (start, end, speaker, text) in enumerate(CUES):
        label = labels[i % 3]
        rows.append({"turn": i, "cue": i + 1, "start": start, "end": end, "speaker": speaker,
                     "text": text + (" & {more}" if i == 0 else ""), "label": label, "score": 0.5 + 0.05 * i,
                     "scores": {name: 1 / 3 for name in labels}, "shift": {"changed_label": i == 2}})
    return rows


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_emotion_subtitles_read_back_with_the_emotion_in_each_cue(fmt, tmp_path):
    rows = prediction_rows()
    path = write_emotion_subtitles(rows, tmp_path / f"out.{fmt}")
    events = pysubs2.load(str(path), keep_html_tags=True)
    assert [(e.start, e.end) for e in events] == [(round(r["start"] * 1000), round(r["end"] * 1000)) for r in rows]
    for event, row in zip(events, rows):
        assert f"[{row['label']}]" in event.text and row["speaker"] in event.text
    back = read_transcript(path)
    assert [(c.speaker, c.text, c.start, c.end) for c in back] == [
        (r["speaker"], f"[{r['label']}] {r['text']}", r["start"], r["end"]) for r in rows]
    with pytest.raises(ValueError, match="use srt or vtt"):
        write_emotion_subtitles(rows, tmp_path / "out.txt")


def test_the_timeline_is_written_as_a_png_with_something_drawn(tmp_path):
    from PIL import Image

    path = plot_timeline(prediction_rows(), tmp_path / "plots" / "timeline.png", title="talk.mp4")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 100 and image.shape[1] > 400
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # bars, labels and legend, not a blank canvas


class StandIn:
    """A speech recogniser's output for each window: two segments, the second one cut by the window's end."""

    def __init__(self):
        self.windows = []

    def __call__(self, inputs, return_timestamps):
        assert return_timestamps and inputs["sampling_rate"] == RATE
        length = len(inputs["raw"]) / RATE
        self.windows.append(length)
        return {"chunks": [{"timestamp": (0.5, 2.0), "text": f" words {len(self.windows)}"},
                           {"timestamp": (3.0, None), "text": "   "},
                           {"timestamp": (length - 2.5, length), "text": " cut off"}]}


def test_transcribe_offsets_each_window_and_recognises_a_cut_segment_again(media):
    stand_in = StandIn()
    cues = transcribe(media["video"], stand_in, window_seconds=8.0)
    # Windows start at 0, 5.5 (where the cut segment began), 11 and 16.5; the last runs to the end.
    assert stand_in.windows[:3] == [8.0, 8.0, 8.0] and 3.4 < stand_in.windows[3] < 3.6
    assert [(c.index, c.start, c.end, c.text, c.source, c.speaker) for c in cues] == [
        (1, 0.5, 2.0, "words 1", "asr", "Speaker"), (2, 6.0, 7.5, "words 2", "asr", "Speaker"),
        (3, 11.5, 13.0, "words 3", "asr", "Speaker"), (4, 17.0, 18.5, "words 4", "asr", "Speaker"),
        (5, 18.5, pytest.approx(16.5 + stand_in.windows[3]), "cut off", "asr", "Speaker")]


def tiny_whisper(folder: Path) -> Path:
    """A random Whisper with a byte-level tokenizer that has Whisper's special and timestamp tokens, saved offline."""
    from tokenizers import pre_tokenizers
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(sorted(
        pre_tokenizers.ByteLevel.alphabet()))}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    specials = ["<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                "<|nocaptions|>", "<|notimestamps|>"]
    tokenizer = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                 additional_special_tokens=specials)
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    ids = dict(zip(specials, tokenizer.convert_tokens_to_ids(specials)))
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_ffn_dim=32, max_target_positions=64, decoder_start_token_id=ids[specials[0]],
                           eos_token_id=end, pad_token_id=end, bos_token_id=end, begin_suppress_tokens=None,
                           suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    generation = model.generation_config
    for name, value in {"no_timestamps_token_id": ids["<|notimestamps|>"], "is_multilingual": False,
                        "max_initial_timestamp_index": 50, "max_length": 24, "_from_model_config": False}.items():
        setattr(generation, name, value)
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)
    return folder


def test_predict_a_recording_without_transcript_through_a_tiny_whisper(media, tiny_model, tiny_processor, tmp_path):
    folder = tiny_whisper(tmp_path / "whisper")
    cues = transcribe(media["video"], folder, window_seconds=12.0)
    assert cues and all(c.source == "asr" and c.speaker == "Speaker" and c.text for c in cues)
    assert all(0 <= c.start < c.end <= SECONDS + 0.1 for c in cues)
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))
    rows = predict_recording((tiny_model, tiny_processor), media["video"], asr_model=folder)
    assert rows and all(r["source"] == "asr" and r["speaker"] == "Speaker" and r["text"] for r in rows)
    assert all(0 <= a["start"] < a["end"] <= b["start"] for a, b in zip(rows, rows[1:]))
    assert all(r["modalities"] == ["text", "audio", "video"] for r in rows)
    with pytest.raises(ValueError, match="not both"):
        predict_recording((tiny_model, tiny_processor), media["video"], media["srt"], asr_model=folder)


# ------------------------------------------------------------------------------------------- telme predict --recording
def test_telme_predict_reads_a_recording_by_each_transcript_form_alike(media, tiny_checkpoint, tmp_path, capsys):
    from telme_hf.cli import main

    outputs = {}
    for form in ("srt", "vtt", "csv"):
        assert main(["predict", "--model", str(tiny_checkpoint), "--recording", str(media["video"]), "--transcript",
                     str(media[form]), "--format", "json", "--device", "cpu"]) == 0
        outputs[form] = json.loads(capsys.readouterr().out)
    assert [(r["start"], r["end"], r["speaker"], r["text"]) for r in outputs["srt"]] == [tuple(cue) for cue in CUES]
    assert [r["label"] for r in outputs["srt"]] == [r["label"] for r in outputs["vtt"]] == [
        r["label"] for r in outputs["csv"]]

    plot = tmp_path / "timeline.png"
    assert main(["predict", "--model", str(tiny_checkpoint), "--recording", str(media["video"]), "--transcript",
                 str(media["srt"]), "--plot", str(plot), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    header, first = captured.out.splitlines()[:2]
    assert header.split()[:5] == ["turn", "start", "end", "speaker", "text"] and "text alone" in header
    assert first.split()[:4] == ["0", "00:00.500", "00:02.500", "Ross"]
    assert plot.stat().st_size > 5_000 and str(plot) in captured.err

    assert main(["predict", "--model", str(tiny_checkpoint), "--recording", str(media["video"]), "--transcript",
                 str(media["srt"]), "--format", "srt", "--device", "cpu"]) == 0
    emotion_srt = tmp_path / "emotions.srt"
    emotion_srt.write_text(capsys.readouterr().out + "\n", encoding="utf-8")
    again = read_transcript(emotion_srt)
    assert [cue.text for cue in again] == [f"[{r['label']}] {r['text']}" for r in outputs["srt"]]
    assert [(cue.start, cue.end, cue.speaker) for cue in again] == [(s, e, who) for s, e, who, _ in CUES]


@pytest.mark.parametrize("options, message", [
    (["--recording", "talk.mp4"], "--recording needs its transcript: --transcript FILE"),
    (["--recording", "talk.mp4", "--transcript", "t.srt", "--asr"], "Give --transcript or --asr, not both."),
    (["--dialogue", "d.csv", "--transcript", "t.srt"], "--transcript goes with --recording FILE"),
    (["--dialogue", "d.csv", "--format", "vtt"], "--format vtt writes a recording's cues"),
])
def test_telme_predict_checks_the_recording_options_before_reading_anything(options, message, capsys):
    from telme_hf.cli import main

    assert main(["predict", "--model", "nowhere", *options]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error


def test_a_bad_transcript_is_reported_by_telme_predict_before_the_model_loads(tmp_path, capsys):
    from telme_hf.cli import main

    bad = write_srt(tmp_path / "bad.srt", cues=[CUES[1], CUES[0]])  # unsorted
    assert main(["predict", "--model", str(tmp_path / "no-model"), "--recording", "talk.mp4", "--transcript",
                 str(bad)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "bad.srt, cue 2" in error


def test_the_pipeline_takes_a_recording_and_its_transcript_as_one_input(media, tiny_model, tiny_processor):
    erc = erc_pipeline(tiny_model, tiny_processor)
    rows = erc({"recording": str(media["video"]), "transcript": str(media["vtt"])}, batch_size=2, top_k=2)
    expected = predict_recording(erc, media["video"], media["vtt"], batch_size=2, top_k=2)
    assert rows == expected and len(rows) == len(CUES) and all(len(row["scores"]) == 2 for row in rows)
    with pytest.raises(TypeError, match=r"Unknown key\(s\) \['subtitles'\]"):
        erc({"recording": str(media["video"]), "subtitles": str(media["srt"])})


def test_the_app_predicts_a_recording_with_its_transcript_and_draws_the_timeline(media, tiny_model, tiny_processor,
                                                                                    tmp_path):
    import re

    from telme_hf.app import TelMEApp

    erc = erc_pipeline(tiny_model, tiny_processor)
    page = TelMEApp(erc, None)
    table, image, status = page.predict_recording(str(media["video"]), str(media["srt"]), tmp_path / "t.png")
    expected = predict_recording(erc, media["video"], media["srt"])
    shown = re.findall(r"<td class='telme-emotion'>([^<]*)</td>", table)
    assert shown == [row["label"] for row in expected] and status == f"Predicted {len(CUES)} cues of talk.mp4."
    assert "<th>start (s)</th>" in table and "<td>0.50</td><td>2.50</td>" in table
    assert image == str(tmp_path / "t.png") and (tmp_path / "t.png").stat().st_size > 5_000
    table, image, status = page.predict_recording(str(media["video"]), None, tmp_path / "u.png")
    assert (table, image) == ("", None) and "Give a recording and its transcript" in status


def test_an_example_recording_of_a_corpus_split_reads_alike_by_each_transcript_form(tiny_corpus, tiny_model,
                                                                                     tiny_processor, tmp_path):
    from telme_hf.data.meld import load_meld

    test = load_meld(tiny_corpus, splits=("test",), on_bad_media="skip")["test"]
    path = recordings.write_example_recording(test, tmp_path / "example.mp4", max_seconds=20)
    forms = {form: read_transcript(path.with_suffix(f".{form}")) for form in ("srt", "vtt", "csv")}
    used = [row for row in test if row["video_path"]][: len(forms["srt"])]
    assert [(c.speaker, c.text) for c in forms["srt"]] == [(row["speaker"], row["text"]) for row in used]
    assert [(c.start, c.end, c.speaker, c.text) for c in forms["srt"]] == [
        (c.start, c.end, c.speaker, c.text) for c in forms["vtt"]] == [
        (c.start, c.end, c.speaker, c.text) for c in forms["csv"]]
    with av.open(str(path)) as container:
        assert container.duration / 1e6 == pytest.approx(forms["srt"][-1].end, abs=0.1)
    # Each cue holds its clip's audio: the first cue's samples are the clip's own, decoded alone.
    clip_audio = recordings._decoded(used[0]["video_path"], None, 16000)[2]
    cut = prepare_dialogue(recording_dialogue(path, forms["srt"][:1]), tiny_processor)[0].audio
    n = min(len(cut), len(clip_audio)) - 2000
    assert np.corrcoef(cut[1000:n], clip_audio[1000:n])[0, 1] > 0.9
    erc = erc_pipeline(tiny_model, tiny_processor)
    labels = {form: [row["label"] for row in predict_recording(erc, path, path.with_suffix(f".{form}"))]
              for form in forms}
    assert labels["srt"] == labels["vtt"] == labels["csv"]
