"""Tests for telme_hf.data.synthetic: the synthetic MELD-layout corpus."""

import colorsys
import csv
import json
import time

import numpy as np
import pytest

from telme_hf.modeling.media_telme import (
    AudioDecodeOptions,
    CorruptMediaError,
    MissingMediaError,
    VideoDecodeOptions,
    decode_clip,
)
from telme_hf.data.synthetic import (
    AUDIO_CUES,
    EMOTIONS,
    MELD_COLUMNS,
    MELD_SPLITS,
    TEXT_GROUPS,
    VIDEO_CUES,
    make_synthetic_corpus,
)


MELD_HEADER = b"Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\r\n"
AUDIO = AudioDecodeOptions()
VIDEO = VideoDecodeOptions(size=None)


def read_rows(root, split):
    with open(root / MELD_SPLITS[split][0], encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def manifest(root):
    return json.loads((root / "corpus.json").read_text(encoding="utf-8"))


def clip_path(root, split, row):
    return root / MELD_SPLITS[split][1] / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"


def bad_paths(root):
    info = manifest(root)
    return {root / info["missing"][0]["path"]}, {root / info["corrupt"][0]["path"]}


def decode_all(root):
    """{relative path: (audio, video)} for every clip that decodes."""
    missing, corrupt = bad_paths(root)
    decoded = {}
    for split in MELD_SPLITS:
        for row in read_rows(root, split):
            path = clip_path(root, split, row)
            if path not in missing | corrupt:
                clip = decode_clip(path, AUDIO, VIDEO)
                decoded[str(path.relative_to(root))] = (clip.audio, clip.video)
    return decoded


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Two corpora with seed 0 and one with seed 1, each 12 dialogues (~60 clips)."""
    roots = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        roots[name] = make_synthetic_corpus(tmp_path_factory.mktemp(name), num_dialogues=12, seed=seed,
                                            progress=False)
    return roots


def test_layout_and_header(corpora):
    root = corpora["a"]
    for split, (csv_name, media_dir) in MELD_SPLITS.items():
        assert (root / csv_name).read_bytes().startswith(MELD_HEADER)  # exact header, CRLF like MELD's CSVs
        assert (root / media_dir).is_dir()
        rows = read_rows(root, split)
        assert rows and tuple(rows[0]) == MELD_COLUMNS
        assert [int(r["Sr No."]) for r in rows] == list(range(1, len(rows) + 1))
        for row in rows:
            for column in ("StartTime", "EndTime"):
                hh, mm, rest = row[column].split(":")
                ss, ms = rest.split(",")
                assert (len(hh), len(mm), len(ss), len(ms)) == (2, 2, 2, 3)


def test_every_listed_clip_exists_except_the_declared_missing_one(corpora):
    root = corpora["a"]
    missing, corrupt = bad_paths(root)
    assert len(missing) == len(corrupt) == 1
    assert next(iter(missing)).parent.name == "dev_splits_complete"
    assert next(iter(corrupt)).parent.name == "train_splits"
    listed = {clip_path(root, split, row) for split in MELD_SPLITS for row in read_rows(root, split)}
    on_disk = {p for _, media_dir in MELD_SPLITS.values() for p in (root / media_dir).glob("*.mp4")}
    assert listed - on_disk == missing
    assert on_disk == listed - missing  # no unlisted clips either

    with pytest.raises(MissingMediaError):
        decode_clip(next(iter(missing)))
    with pytest.raises(CorruptMediaError, match=next(iter(corrupt)).name):
        decode_clip(next(iter(corrupt)))


def test_labels_every_class_in_every_split_and_sentiment_consistent(corpora):
    sentiment = {"joy": {"positive"}, "neutral": {"neutral"}, "surprise": {"positive", "negative"}}
    for split in MELD_SPLITS:
        rows = read_rows(corpora["a"], split)
        assert {r["Emotion"] for r in rows} == set(EMOTIONS), split
        for row in rows:
            assert row["Sentiment"] in sentiment.get(row["Emotion"], {"negative"}), row
        dialogues = {}
        for row in rows:
            dialogues.setdefault(row["Dialogue_ID"], []).append(row)
        for turns in dialogues.values():
            assert 2 <= len(turns) <= 8 and len({t["Speaker"] for t in turns}) <= 4
            ids = [int(t["Utterance_ID"]) for t in turns]
            assert ids == sorted(set(ids))


def test_same_seed_same_corpus(corpora):
    a, b = corpora["a"], corpora["b"]
    for csv_name, media_dir in MELD_SPLITS.values():
        assert (a / csv_name).read_bytes() == (b / csv_name).read_bytes()
        for clip in sorted((a / media_dir).glob("*.mp4")):
            assert clip.read_bytes() == (b / media_dir / clip.name).read_bytes(), clip.name
    assert (a / "corpus.json").read_bytes() == (b / "corpus.json").read_bytes()
    decoded_a, decoded_b = decode_all(a), decode_all(b)
    assert decoded_a.keys() == decoded_b.keys()
    for key, (audio, video) in decoded_a.items():
        np.testing.assert_array_equal(audio, decoded_b[key][0])
        np.testing.assert_array_equal(video, decoded_b[key][1])


def test_other_seed_other_corpus(corpora):
    assert (corpora["a"] / "train_sent_emo.csv").read_bytes() != (corpora["c"] / "train_sent_emo.csv").read_bytes()
    assert manifest(corpora["c"])["seed"] == 1


def estimated_cues(audio, video):
    """(audio class, video class) read back from decoded media by nearest fundamental and background hue."""
    head = audio[: int(0.15 * AUDIO.sampling_rate)]  # every contour starts at the class's fundamental
    head = head - head.mean()
    correlation = np.correlate(head, head, mode="full")[len(head) - 1 :]
    low, high = AUDIO.sampling_rate // 450, AUDIO.sampling_rate // 80
    f0 = AUDIO.sampling_rate / (low + int(np.argmax(correlation[low:high])))
    audio_class = min(AUDIO_CUES, key=lambda e: abs(np.log(f0 / AUDIO_CUES[e].f0)))

    corner = video[:, :6, -6:].reshape(-1, 3).mean(axis=0) / 255  # background only: the square stays central
    hue = colorsys.rgb_to_hsv(*corner)[0] * 360
    video_class = min(VIDEO_CUES, key=lambda e: min(abs(hue - VIDEO_CUES[e].hue), 360 - abs(hue - VIDEO_CUES[e].hue)))
    return audio_class, video_class


def test_media_carry_the_recorded_cues(corpora):
    root = corpora["a"]
    info = manifest(root)
    decoded = decode_all(root)
    hits = {"audio": 0, "video": 0}
    for record in info["utterances"]:
        if record["path"] in decoded:
            audio_class, video_class = estimated_cues(*decoded[record["path"]])
            hits["audio"] += audio_class == record["audio_cue"]
            hits["video"] += video_class == record["video_cue"]
    assert hits["audio"] >= 0.9 * len(decoded) and hits["video"] >= 0.95 * len(decoded), (hits, len(decoded))

    # Each clip lasts 12-19 frames at 12 fps (1.0-1.6 s; AAC pads the audio by up to 23 ms).
    for audio, video in decoded.values():
        assert video.shape == (8, 48, 64, 3)
        assert 1.0 <= len(audio) / AUDIO.sampling_rate <= 1.61


def test_text_names_a_group_and_noise_flips_it(corpora):
    info = manifest(corpora["a"])
    groups = {e: g for g, members in TEXT_GROUPS.items() for e in members}
    records = info["utterances"]
    assert all(r["text_cue"] in TEXT_GROUPS for r in records)
    agree = sum(groups[r["emotion"]] == r["text_cue"] for r in records) / len(records)
    assert agree > 0.7


def test_refuses_to_overwrite(tmp_path, corpora):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic_corpus(tmp_path, num_dialogues=3, progress=False)
    with pytest.raises(FileExistsError, match="not a synthetic corpus"):
        make_synthetic_corpus(tmp_path, num_dialogues=3, progress=False, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_make_corpus_command_writes_a_corpus_and_has_help(tmp_path, capsys):
    from telme_hf.cli import main

    with pytest.raises(SystemExit) as info:
        main(["make-corpus", "--help"])
    assert info.value.code == 0 and "telme make-corpus" in capsys.readouterr().out
    root = tmp_path / "corpus"
    assert main(["make-corpus", str(root), "--dialogues", "3", "--seed", "7", "--no-progress"]) == 0
    assert manifest(root)["seed"] == 7
    assert main(["make-corpus", str(root), "--dialogues", "4", "--overwrite", "--no-progress"]) == 0
    assert sum(s["dialogues"] for s in manifest(root)["splits"].values()) == 4


@pytest.mark.slow
def test_default_corpus_size_time_and_noise(tmp_path):
    started = time.perf_counter()
    root = make_synthetic_corpus(tmp_path / "meld", progress=False)
    seconds = time.perf_counter() - started
    megabytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
    info = manifest(root)
    counts = {split: info["splits"][split]["utterances"] for split in MELD_SPLITS}
    print(f"default corpus: {counts}, {megabytes:.1f} MB, {seconds:.1f} s")
    assert megabytes < 50 and seconds < 120
    assert 300 <= counts["train"] <= 500 and 60 <= counts["dev"] <= 110 and 90 <= counts["test"] <= 150
    for split in MELD_SPLITS:
        emotions = info["splits"][split]["emotions"]
        assert min(emotions.values()) > 0 and max(emotions, key=emotions.get) == "neutral"
    records = info["utterances"]
    for modality, rate in [("audio", 0.25), ("video", 0.25)]:
        wrong = sum(r[f"{modality}_cue"] != r["emotion"] for r in records) / len(records)
        assert abs(wrong - rate) < 0.06, (modality, wrong)
    # Like MELD: some dialogues skip Utterance_IDs, and one train Dialogue_ID is absent.
    gaps = 0
    for split in MELD_SPLITS:
        by_dialogue = {}
        for row in read_rows(root, split):
            by_dialogue.setdefault(int(row["Dialogue_ID"]), []).append(int(row["Utterance_ID"]))
        gaps += sum(ids != list(range(len(ids))) for ids in by_dialogue.values())
        if split == "train":
            assert sorted(by_dialogue) != list(range(len(by_dialogue)))
    assert gaps > 0
