"""MELD loader: encodings, ID gaps, speaker indices (clean and carry-over), contexts, missing clips, bad rows."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from telme_hf import MELD_LABELS
from telme_hf.data.bad_media import BadMediaReport
from telme_hf.data.dialogues import (
    assign_speaker_indices,
    decode_csv_bytes,
    normalize_text,
    row_features,
    scan_missing_media,
)
from telme_hf.modeling.media_telme import MissingMediaError
from telme_hf.data.meld import load_meld


HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"

# The MELD.Raw flavour: cp1252 bytes (\x92 ’, \x85 …, \x96 –, \x93/\x94 “ ”, \x97 —, \xa0 no-break space,
# \xe9 é), CRLF. Dialogue 0 has 12 speakers; dialogue 3 starts at Utterance_ID 1 and jumps from 2 to 5.
CP1252_CSV = (
    HEADER.encode()
    + b"\r\n"
    + b'1,I\x92m fine\x85 really.,Ross,neutral,neutral,0,0,1,1,"00:00:01,000","00:00:02,000"\r\n'
    + b'2,"Pages 10\x9620, okay?",Rachel,surprise,positive,0,1,1,1,"00:00:02,000","00:00:03,000"\r\n'
    + b'3,"Hi, Monica.",Monica,joy,positive,0,2,1,1,"00:00:03,000","00:00:04,000"\r\n'
    + b'4,Could it BE any later?,Chandler,anger,negative,0,3,1,1,"00:00:04,000","00:00:05,000"\r\n'
    + b'5,How you doin\x92?,Joey,joy,positive,0,4,1,1,"00:00:05,000","00:00:06,000"\r\n'
    + b'6,Smelly cat\x85,Phoebe,sadness,negative,0,5,1,1,"00:00:06,000","00:00:07,000"\r\n'
    + b'7,Coffee.,Gunther,neutral,neutral,0,6,1,1,"00:00:07,000","00:00:08,000"\r\n'
    + b'8,Oh. My. God.,Janice,surprise,negative,0,7,1,1,"00:00:08,000","00:00:09,000"\r\n'
    + b'9,Wait\xa0what?,Mike,fear,negative,0,8,1,1,"00:00:09,000","00:00:10,000"\r\n'
    + b'10,Caf\xe9 au lait.,Emily,disgust,negative,0,9,1,1,"00:00:10,000","00:00:11,000"\r\n'
    + b'11,Ben\x92s asleep.,Carol,neutral,neutral,0,10,1,1,"00:00:11,000","00:00:12,000"\r\n'
    + b'12,Let\x92s go.,Susan,neutral,neutral,0,11,1,1,"00:00:12,000","00:00:13,000"\r\n'
    + b'13,We were on a break!,Ross,anger,negative,0,12,1,1,"00:00:13,000","00:00:14,000"\r\n'
    + b'14,Fine.,Susan,sadness,negative,0,13,1,1,"00:00:14,000","00:00:15,000"\r\n'
    + b'15,Where\x92s the ring?,Rachel,fear,negative,3,1,1,2,"00:01:01,000","00:01:02,000"\r\n'
    + b'16,I don\x92t know\x85,Ross,sadness,negative,3,2,1,2,"00:01:02,000","00:01:03,000"\r\n'
    + b'17,It\x92s \x93here\x94 \x97 look.,Rachel,joy,positive,3,5,1,2,"00:01:05,000","00:01:06,000"\r\n'
)

# The same content as the GitHub copy: UTF-8, CRLF.
UTF8_CSV = (
    HEADER
    + "\r\n"
    + '1,I’m fine… really.,Ross,neutral,neutral,0,0,1,1,"00:00:01,000","00:00:02,000"\r\n'
    + '2,"Pages 10–20, okay?",Rachel,surprise,positive,0,1,1,1,"00:00:02,000","00:00:03,000"\r\n'
    + '3,"Hi, Monica.",Monica,joy,positive,0,2,1,1,"00:00:03,000","00:00:04,000"\r\n'
    + '4,Could it BE any later?,Chandler,anger,negative,0,3,1,1,"00:00:04,000","00:00:05,000"\r\n'
    + '5,How you doin’?,Joey,joy,positive,0,4,1,1,"00:00:05,000","00:00:06,000"\r\n'
    + '6,Smelly cat…,Phoebe,sadness,negative,0,5,1,1,"00:00:06,000","00:00:07,000"\r\n'
    + '7,Coffee.,Gunther,neutral,neutral,0,6,1,1,"00:00:07,000","00:00:08,000"\r\n'
    + '8,Oh. My. God.,Janice,surprise,negative,0,7,1,1,"00:00:08,000","00:00:09,000"\r\n'
    + '9,Wait\u00a0what?,Mike,fear,negative,0,8,1,1,"00:00:09,000","00:00:10,000"\r\n'
    + '10,Café au lait.,Emily,disgust,negative,0,9,1,1,"00:00:10,000","00:00:11,000"\r\n'
    + '11,Ben’s asleep.,Carol,neutral,neutral,0,10,1,1,"00:00:11,000","00:00:12,000"\r\n'
    + '12,Let’s go.,Susan,neutral,neutral,0,11,1,1,"00:00:12,000","00:00:13,000"\r\n'
    + '13,We were on a break!,Ross,anger,negative,0,12,1,1,"00:00:13,000","00:00:14,000"\r\n'
    + '14,Fine.,Susan,sadness,negative,0,13,1,1,"00:00:14,000","00:00:15,000"\r\n'
    + '15,Where’s the ring?,Rachel,fear,negative,3,1,1,2,"00:01:01,000","00:01:02,000"\r\n'
    + '16,I don’t know…,Ross,sadness,negative,3,2,1,2,"00:01:02,000","00:01:03,000"\r\n'
    + '17,It’s “here” — look.,Rachel,joy,positive,3,5,1,2,"00:01:05,000","00:01:06,000"\r\n'
).encode("utf-8")

EXPECTED_TEXTS = [
    "I’m fine… really.",
    "Pages 10–20, okay?",
    "Hi, Monica.",
    "Could it BE any later?",
    "How you doin’?",
    "Smelly cat…",
    "Coffee.",
    "Oh. My. God.",
    "Wait what?",
    "Café au lait.",
    "Ben’s asleep.",
    "Let’s go.",
    "We were on a break!",
    "Fine.",
    "Where’s the ring?",
    "I don’t know…",
    "It’s “here” — look.",
]
EXPECTED_KEYS = [f"dia0_utt{u}" for u in range(14)] + ["dia3_utt1", "dia3_utt2", "dia3_utt5"]
EXPECTED_SPEAKERS = [
    "Ross", "Rachel", "Monica", "Chandler", "Joey", "Phoebe", "Gunther", "Janice", "Mike", "Emily", "Carol",
    "Susan", "Ross", "Susan", "Rachel", "Ross", "Rachel",
]  # fmt: skip
EXPECTED_SPEAKER_INDICES = list(range(12)) + [0, 11] + [0, 1, 0]
# MELD order: anger 0, disgust 1, fear 2, joy 3, neutral 4, sadness 5, surprise 6.
EXPECTED_LABELS = [4, 6, 3, 0, 3, 5, 4, 6, 2, 1, 4, 4, 0, 5, 2, 5, 3]


def write_meld(root: Path, csvs: dict[str, bytes], clips: dict[str, list[str]] | None = None) -> Path:
    """CSVs by split, and (optionally) empty clip files by split: existence is all the loader checks."""
    folders = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
    root.mkdir(parents=True, exist_ok=True)
    for split, data in csvs.items():
        (root / f"{split}_sent_emo.csv").write_bytes(data)
    for split, keys in (clips or {}).items():
        (root / folders[split]).mkdir(exist_ok=True)
        for key in keys:
            (root / folders[split] / f"{key}.mp4").touch()
    return root


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return ("\r\n".join((header, *rows)) + "\r\n").encode("utf-8")


def row(sr: int, text: str, speaker: str, emotion: str, dialogue: int | str, utterance: int | str) -> str:
    return f"{sr},{text},{speaker},{emotion},neutral,{dialogue},{utterance},1,1,00:00:01.000,00:00:02.000"


# ------------------------------------------------------------------------------------------------------ text


def test_normalize_text_maps_cp1252_leftovers():
    # C1 code points (a cp1252 file decoded as latin-1) become the punctuation cp1252 means by them.
    assert normalize_text("I\x92m\x85 \x91a\x92 \x93b\x94 \x96 \x97\xa0x ") == "I’m… ‘a’ “b” – — x"
    # Already-clean Unicode is left alone.
    assert normalize_text("I’m… – —") == "I’m… – —"


def test_decode_csv_bytes_bom_and_mixed_lines():
    assert decode_csv_bytes(b"\xef\xbb\xbfa\r\n") == "a\r\n"
    # A cp1252 line and a UTF-8 line in one file both come out right.
    assert decode_csv_bytes(b"don\x92t\r\ndon\xe2\x80\x99t\r\n") == "don’t\r\ndon’t\r\n"


def test_cp1252_csv_parses_to_hand_written_rows(tmp_path):
    assert all(byte in CP1252_CSV for byte in (b"\x92", b"\x85", b"\x96"))
    meld = load_meld(write_meld(tmp_path, {"train": CP1252_CSV}), splits=("train",), modalities=("text",))
    train = meld["train"]
    assert train.num_rows == 17
    assert train["text"] == EXPECTED_TEXTS
    assert train["utterance_key"] == EXPECTED_KEYS
    assert train["dialogue_id"] == ["0"] * 14 + ["3"] * 3
    assert train["utterance_id"] == [str(u) for u in range(14)] + ["1", "2", "5"]
    assert train["speaker"] == EXPECTED_SPEAKERS
    assert train["speaker_index"] == EXPECTED_SPEAKER_INDICES
    assert train["label"] == EXPECTED_LABELS
    assert train["turn_index"] == list(range(14)) + [0, 1, 2]
    assert train["row_index"] == list(range(17))
    assert all(math.isnan(value) for value in [*train["start"], *train["end"]])
    assert train.features == row_features(MELD_LABELS)
    assert train.features["label"].names == MELD_LABELS

    # Context: turns 0..k of the dialogue, the current turn included, with the speaker indices baked in.
    assert [len(context) for context in train["context"]] == list(range(1, 15)) + [1, 2, 3]
    assert train[16]["context"] == [
        {"speaker": "Rachel", "speaker_index": 0, "text": "Where’s the ring?"},
        {"speaker": "Ross", "speaker_index": 1, "text": "I don’t know…"},
        {"speaker": "Rachel", "speaker_index": 0, "text": "It’s “here” — look."},
    ]
    assert train[13]["context"][-2:] == [
        {"speaker": "Ross", "speaker_index": 0, "text": "We were on a break!"},
        {"speaker": "Susan", "speaker_index": 11, "text": "Fine."},
    ]
    assert train[13]["context"][0] == {"speaker": "Ross", "speaker_index": 0, "text": "I’m fine… really."}


def test_utf8_and_cp1252_copies_give_identical_rows(tmp_path):
    cp1252 = load_meld(write_meld(tmp_path / "raw", {"dev": CP1252_CSV}), splits="dev", modalities=("text",))
    utf8 = load_meld(write_meld(tmp_path / "github", {"dev": UTF8_CSV}), splits="dev", modalities=("text",))
    # A latin-1 round trip (C1 code points stored as UTF-8), with a BOM and LF endings, also agrees.
    roundtrip = b"\xef\xbb\xbf" + CP1252_CSV.decode("latin-1").replace("\r\n", "\n").encode("utf-8")
    latin1 = load_meld(write_meld(tmp_path / "latin1", {"dev": roundtrip}), splits="dev", modalities=("text",))
    def rows(meld):  # start/end are NaN for MELD, and NaN != NaN
        return meld["dev"].remove_columns(["start", "end"]).to_list()

    assert rows(cp1252) == rows(utf8) == rows(latin1)
    assert utf8["dev"]["text"] == EXPECTED_TEXTS


# ---------------------------------------------------------------------------------------------- speakers

# Three dialogues; speaker lists written out by hand.
#   dialogue 0: Ross Rachel Ross Monica      clean 0 1 0 2   carry-over 0 1 0 2 (first dialogue: unaffected)
#   dialogue 1: Monica Joey Monica Chandler  clean 0 1 0 2   carry-over 2 0 1 2
#       (Monica is 3rd in dialogue 0's list -> 2; the list is then emptied, so Joey -> 0, Monica -> 1, Chandler -> 2)
#   dialogue 2: Phoebe Joey Phoebe           clean 0 1 0     carry-over 3 0 1
#       (Phoebe is appended to [Joey, Monica, Chandler] -> 3; then Joey -> 0, Phoebe -> 1)
THREE_DIALOGUES = [
    ("Ross", 0), ("Rachel", 0), ("Ross", 0), ("Monica", 0),
    ("Monica", 1), ("Joey", 1), ("Monica", 1), ("Chandler", 1),
    ("Phoebe", 2), ("Joey", 2), ("Phoebe", 2),
]  # fmt: skip
CLEAN = [0, 1, 0, 2, 0, 1, 0, 2, 0, 1, 0]
CARRYOVER = [0, 1, 0, 2, 2, 0, 1, 2, 3, 0, 1]


@pytest.fixture
def three_dialogue_root(tmp_path):
    counters: dict[int, int] = {}
    rows = []
    for sr, (speaker, dialogue) in enumerate(THREE_DIALOGUES, start=1):
        utterance = counters[dialogue] = counters.get(dialogue, -1) + 1
        rows.append(row(sr, f"line {sr}", speaker, "neutral", dialogue, utterance))
    data = csv_bytes(*rows)
    return write_meld(tmp_path, {"train": data, "dev": data})


def test_speaker_indices_clean_and_carryover(three_dialogue_root):
    clean = load_meld(three_dialogue_root, splits=("train",), modalities=("text",))["train"]
    assert clean["speaker_index"] == CLEAN
    carry = load_meld(three_dialogue_root, splits=("train", "dev"), modalities=("text",), speaker_index_carryover=True)
    assert carry["train"]["speaker_index"] == CARRYOVER
    # Each split starts afresh: the first dialogue of dev is not affected by train's last one.
    assert carry["dev"]["speaker_index"] == CARRYOVER
    # The context carries the same indices, so the processor sees what the original built.
    assert [turn["speaker_index"] for turn in carry["train"][7]["context"]] == [2, 0, 1, 2]
    assert [turn["speaker_index"] for turn in carry["train"][10]["context"]] == [3, 0, 1]
    assert [turn["speaker_index"] for turn in clean[10]["context"]] == [0, 1, 0]


def test_assign_speaker_indices_edge_cases():
    # A one-turn dialogue empties the list right away: the next dialogue's first turn gets index 0.
    assert assign_speaker_indices([["A", "B"], ["C"], ["D", "D"]], carryover=True) == [[0, 1], [2], [0, 0]]
    # A first speaker already in the previous list takes its old position; later turns restart from 0.
    assert assign_speaker_indices([["A", "B", "C"], ["B", "B", "A"]], carryover=True) == [[0, 1, 2], [1, 0, 1]]
    assert assign_speaker_indices([["A", "B", "C"], ["B", "B", "A"]]) == [[0, 1, 2], [0, 0, 1]]


def test_context_feeds_the_processor(three_dialogue_root, tiny_processor):
    carry = load_meld(three_dialogue_root, splits="train", modalities=("text",), speaker_index_carryover=True)
    prompt = tiny_processor.build_prompt(carry["train"][7]["context"])
    mask = tiny_processor.tokenizer.mask_token
    assert prompt == f"<s3> line 5 <s1> line 6 <s2> line 7 <s3> line 8 </s> Now <s3> feels {mask}"
    batch = tiny_processor(conversations=[carry["train"][7]["context"]])
    assert batch["input_ids"].shape[0] == 1


# ------------------------------------------------------------------------------------------------- media


def media_root(tmp_path, missing: str | None = "dia3_utt2") -> Path:
    keys = [key for key in EXPECTED_KEYS if key != missing]
    return write_meld(tmp_path, {"train": UTF8_CSV}, {"train": keys})


def test_text_only_needs_no_media_folder(tmp_path):
    root = write_meld(tmp_path, {"train": UTF8_CSV})
    meld, report = load_meld(root, splits=("train",), modalities=("text",), return_report=True)
    assert set(meld["train"]["audio_path"]) == {""} and set(meld["train"]["video_path"]) == {""}
    assert not report
    with pytest.raises(FileNotFoundError, match=r"train_splits.*modalities=\('text',\)"):
        load_meld(root, splits=("train",))


def test_media_paths_are_built_from_the_id_columns(tmp_path):
    root = media_root(tmp_path, missing=None)
    train = load_meld(root, splits=("train",))["train"]
    # Row 16 is the third row of dialogue 3, but its clip is utt5 (IDs have gaps).
    assert train[16]["video_path"] == str(root / "train_splits" / "dia3_utt5.mp4")
    assert train["audio_path"] == train["video_path"]
    audio_only = load_meld(root, splits=("train",), modalities=("text", "audio"))["train"]
    assert audio_only[16]["audio_path"] == str(root / "train_splits" / "dia3_utt5.mp4")
    assert set(audio_only["video_path"]) == {""}


def test_missing_clip_error_names_file_row_and_fix(tmp_path):
    root = media_root(tmp_path)
    with pytest.raises(MissingMediaError) as caught:
        load_meld(root, splits=("train",))
    message = str(caught.value)
    assert caught.value.path == str(root / "train_splits" / "dia3_utt2.mp4")
    assert "dia3_utt2.mp4" in message and "train_sent_emo.csv" in message
    assert "line 17" in message and "data row 15" in message
    assert "on_bad_media='skip'" in message and "on_bad_media='zeros'" in message


def test_missing_clip_skip_drops_exactly_that_row_and_logs_it(tmp_path, caplog):
    root = media_root(tmp_path)
    with caplog.at_level(logging.WARNING, logger="telme_hf.data"):
        meld, report = load_meld(root, splits=("train",), on_bad_media="skip", return_report=True)
    train = meld["train"]
    assert train["utterance_key"] == [key for key in EXPECTED_KEYS if key != "dia3_utt2"]
    assert report.keys("train") == ["dia3_utt2"]
    assert report.policy == "skip" and report.by_split()["train"]["dia3_utt2"].endswith(": dropped")
    logged = [record.getMessage() for record in caplog.records if record.name == "telme_hf.data"]
    assert any("dia3_utt2" in message for message in logged)
    assert any("1 utterance(s)" in message for message in logged)  # the summary
    # Only the sample goes: the next turn still sees the dropped utterance's text in its context.
    assert [turn["text"] for turn in train[-1]["context"]] == EXPECTED_TEXTS[14:]
    assert train[-1]["turn_index"] == 2


def test_missing_clip_zeros_keeps_the_row_and_logs_it(tmp_path, caplog):
    root = media_root(tmp_path)
    with caplog.at_level(logging.WARNING, logger="telme_hf.data"):
        meld, report = load_meld(root, splits=("train",), on_bad_media="zeros", return_report=True)
    assert meld["train"]["utterance_key"] == EXPECTED_KEYS
    assert meld["train"][15]["video_path"] == str(root / "train_splits" / "dia3_utt2.mp4")
    assert report.keys() == ["dia3_utt2"]
    assert any("dia3_utt2" in record.getMessage() for record in caplog.records)
    # The scan can be re-run on the loaded dataset (e.g. after moving files).
    again = scan_missing_media(meld)
    assert isinstance(again, BadMediaReport) and again.keys("train") == ["dia3_utt2"]
    (root / "train_splits" / "dia3_utt2.mp4").touch()
    assert not scan_missing_media(meld)


def test_invalid_options(tmp_path):
    root = write_meld(tmp_path, {"train": UTF8_CSV})
    with pytest.raises(ValueError, match="on_bad_media"):
        load_meld(root, splits=("train",), modalities=("text",), on_bad_media="ignore")
    with pytest.raises(ValueError, match="modalities"):
        load_meld(root, splits=("train",), modalities=("text", "depth"))
    with pytest.raises(ValueError, match="splits"):
        load_meld(root, splits=("validation",), modalities=("text",))
    with pytest.raises(FileNotFoundError, match="dev_sent_emo.csv"):
        load_meld(root, splits=("dev",), modalities=("text",))


# ----------------------------------------------------------------------------------------- malformed rows


def load_train(tmp_path, data: bytes):
    return load_meld(write_meld(tmp_path, {"train": data}), splits=("train",), modalities=("text",))


def test_unknown_emotion_names_file_and_line(tmp_path):
    # Row 1 spans lines 2-3 (a quoted newline), so the bad row starts on line 4.
    data = csv_bytes(row(1, '"Hello\r\nthere"', "Ross", "neutral", 0, 0), row(2, "Hi", "Rachel", "happy", 0, 1))
    with pytest.raises(ValueError, match=r"train_sent_emo\.csv, line 4: unknown Emotion 'happy'.*label_names"):
        load_train(tmp_path, data)
    # A bad multi-line row is reported at the line where it starts.
    data = csv_bytes(row(1, "Hi", "Ross", "neutral", 0, 0), row(2, '"Hello\r\nthere"', "Rachel", "joyful", 0, 1))
    with pytest.raises(ValueError, match=r"train_sent_emo\.csv, line 3: unknown Emotion 'joyful'"):
        load_train(tmp_path, data)


def test_missing_column_names_file_and_column(tmp_path):
    header = HEADER.replace("Emotion,", "")
    data = csv_bytes("1,Hi,Ross,neutral,0,0,1,1,a,b", header=header)
    with pytest.raises(ValueError, match=r"train_sent_emo\.csv, line 1: missing column\(s\) \['Emotion'\]"):
        load_train(tmp_path, data)


def test_short_row_names_file_and_line(tmp_path):
    data = csv_bytes(row(1, "Hi", "Ross", "neutral", 0, 0), "2,Hey,Rachel,joy")
    with pytest.raises(ValueError, match=r"train_sent_emo\.csv, line 3: expected 11 cells"):
        load_train(tmp_path, data)


def test_unquoted_comma_names_file_and_line(tmp_path):
    data = csv_bytes(row(1, "Hi, you", "Ross", "neutral", 0, 0))
    with pytest.raises(ValueError, match=r"line 2: .*Quote fields that contain commas"):
        load_train(tmp_path, data)


@pytest.mark.parametrize("column", ["Dialogue_ID", "Utterance_ID"])
def test_non_integer_id_names_file_and_line(tmp_path, column):
    ids = ("x", 0) if column == "Dialogue_ID" else (0, "1.5")
    data = csv_bytes(row(1, "Hi", "Ross", "neutral", 0, 0), row(2, "Hey", "Rachel", "joy", *ids))
    with pytest.raises(ValueError, match=rf"train_sent_emo\.csv, line 3: {column} must be an integer"):
        load_train(tmp_path, data)


def test_reappearing_dialogue_is_an_error(tmp_path):
    data = csv_bytes(
        row(1, "a", "Ross", "neutral", 0, 0), row(2, "b", "Joey", "neutral", 1, 0), row(3, "c", "Ross", "joy", 0, 1)
    )
    with pytest.raises(ValueError, match=r"line 4: Dialogue_ID 0 reappears .*line 2"):
        load_train(tmp_path, data)


def test_duplicate_utterance_is_an_error(tmp_path):
    data = csv_bytes(row(1, "a", "Ross", "neutral", 0, 0), row(2, "b", "Joey", "neutral", 0, 0))
    with pytest.raises(ValueError, match=r"line 3: utterance dia0_utt0 appears twice"):
        load_train(tmp_path, data)


def test_an_empty_split_is_named(tmp_path):
    (tmp_path / "train_sent_emo.csv").write_text(HEADER + "\n")
    with pytest.raises(ValueError, match=r"train_sent_emo.csv has no utterances"):
        load_meld(tmp_path, splits=("train",), modalities=("text",))
