"""IEMOCAP loader: path re-rooting, Session 5's `Divx`, clean vs reference speakers, windows, bad rows/media."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from telme_hf import IEMOCAP_LABELS
from telme_hf.data.dialogues import row_features
from telme_hf.data.iemocap import IemocapPathResolver, iemocap_actor, load_iemocap
from telme_hf.modeling.media_telme import MissingMediaError


HEADER = "Utterance,Speaker,Dialogue_ID,Start_Time,End_Time,Wav_Path,Video_Path,Emotion"
RELEASE = "./dataset/IEMOCAP_full_release"

# (text, utterance id, dialogue, start, end, emotion); the CSVs' paths are derived from the ids as in TelME's.
TRAIN = [
    ("Excuse me.", "Ses01F_impro01_F000", "Ses01F_impro01", 6.2901, 8.2357, "neu"),
    ("Do you have your forms?", "Ses01F_impro01_M000", "Ses01F_impro01", 8.9, 10.5, "fru"),
    ("Yeah.", "Ses01F_impro01_F001", "Ses01F_impro01", 10.01, 11.3925, "neu"),
    ("Let me see them.", "Ses01F_impro01_M001", "Ses01F_impro01", 14.8872, 18.0175, "ang"),
    ("I got the job!", "Ses01M_script01_1_M000", "Ses01M_script01_1", 1.0, 3.5, "exc"),
    ("That's great.", "Ses01M_script01_1_F000", "Ses01M_script01_1", 3.75, 5.0, "hap"),
    ("I start Monday.", "Ses01M_script01_1_M001", "Ses01M_script01_1", 5.5, 7.25, "sad"),
]
TEST = [
    ("Hi.", "Ses05M_impro02_M000", "Ses05M_impro02", 0.5, 1.25, "neu"),
    ("Hello.", "Ses05M_impro02_F000", "Ses05M_impro02", 1.5, 2.0, "hap"),
]
# ang 0, exc 1, fru 2, hap 3, neu 4, sad 5.
TRAIN_LABELS = [4, 2, 4, 0, 1, 3, 5]
# Clean: the actor after the last "_", indexed by first appearance per dialogue.
CLEAN_SPEAKERS = ["F", "M", "F", "M", "M", "F", "M"]
CLEAN_INDICES = [0, 1, 0, 1, 0, 1, 0]
# Reference: the unique utterance id is the "speaker" -> turn index, plus the carry-over of the first turn of the
# second dialogue against the first dialogue's 4-entry list (-> 4), after which the list is emptied (-> 0, 1).
REFERENCE_INDICES = [0, 1, 2, 3, 4, 0, 1]


def session_of(utterance_id: str) -> str:
    return f"Session{int(utterance_id[3:5])}"


def wav_rel(utterance_id: str, dialogue: str) -> str:
    return f"{session_of(utterance_id)}/sentences/wav/{dialogue}/{utterance_id}.wav"


def avi_rel(utterance_id: str, dialogue: str, divx: str = "DivX") -> str:
    return f"{session_of(utterance_id)}/dialog/avi/{divx}/{dialogue}.avi"


def csv_bytes(rows, header: str = HEADER) -> bytes:
    lines = [header]
    for text, utterance_id, dialogue, start, end, emotion in rows:
        # The CSVs always say DivX, Session 5 included; quote the text like pandas would when needed.
        wav, avi = f"{RELEASE}/{wav_rel(utterance_id, dialogue)}", f"{RELEASE}/{avi_rel(utterance_id, dialogue)}"
        lines.append(f'"{text}",{utterance_id},{dialogue},{start},{end},{wav},{avi},{emotion}')
    return ("\n".join(lines) + "\n").encode("utf-8")


def make_release(folder: Path, rows, skip: tuple[str, ...] = ()) -> None:
    """Touch the wav and AVI files of `rows` under an IEMOCAP_full_release-like `folder` (Session 5: Divx)."""
    for _, utterance_id, dialogue, *_ in rows:
        divx = "Divx" if session_of(utterance_id) == "Session5" else "DivX"
        for rel in (wav_rel(utterance_id, dialogue), avi_rel(utterance_id, dialogue, divx)):
            if rel in skip:
                continue
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).touch()


@pytest.fixture
def parent_root(tmp_path) -> Path:
    """`root/IEMOCAP_{split}.csv` and `root/IEMOCAP_full_release/Session{1,5}/...`."""
    (tmp_path / "IEMOCAP_train.csv").write_bytes(csv_bytes(TRAIN))
    (tmp_path / "IEMOCAP_test.csv").write_bytes(csv_bytes(TEST))
    make_release(tmp_path / "IEMOCAP_full_release", TRAIN + TEST)
    return tmp_path


def test_actor_from_utterance_id():
    assert iemocap_actor("Ses01F_impro01_F000") == "F"
    assert iemocap_actor("Ses01F_impro01_M012") == "M"  # the letter after the LAST underscore, not after Ses01
    assert iemocap_actor("Ses05M_script02_2_F013") == "F"
    assert iemocap_actor("Ses01F_impro01") is None


def test_paths_are_rerooted_from_the_csv(parent_root):
    iemocap, report = load_iemocap(parent_root, splits=("train",), return_report=True)
    train = iemocap["train"]
    release = parent_root / "IEMOCAP_full_release"
    assert train[0]["audio_path"] == str(release / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    assert train[0]["video_path"] == str(release / "Session1/dialog/avi/DivX/Ses01F_impro01.avi")
    assert train[6]["audio_path"].endswith("Ses01M_script01_1/Ses01M_script01_1_M001.wav")
    assert all(Path(p).is_file() for p in [*train["audio_path"], *train["video_path"]])
    assert not report


def test_root_may_be_the_release_folder_itself(parent_root):
    release = parent_root / "IEMOCAP_full_release"
    by_parent = load_iemocap(parent_root, splits=("train",))["train"]
    by_release = load_iemocap(release, splits=("train",), csv_dir=parent_root)["train"]
    assert by_release["audio_path"] == by_parent["audio_path"]
    assert by_release["video_path"] == by_parent["video_path"]


def test_session5_divx_spelling(parent_root):
    test = load_iemocap(parent_root, splits=("test",))["test"]
    # The CSV says DivX; the release has Divx for Session 5.
    expected = parent_root / "IEMOCAP_full_release/Session5/dialog/avi/Divx/Ses05M_impro02.avi"
    assert not (parent_root / "IEMOCAP_full_release/Session5/dialog/avi/DivX").exists()  # the CSV's spelling
    assert test["video_path"] == [str(expected)] * 2
    assert Path(test[0]["video_path"]).is_file()


def test_resolver_anchors():
    resolver = IemocapPathResolver("/nowhere")
    assert resolver.relative_parts(f"{RELEASE}/Session1/sentences/wav/d/u.wav") == (
        "Session1", "sentences", "wav", "d", "u.wav"
    )
    # Without the release folder, the first SessionN component anchors (Windows separators too).
    assert resolver.relative_parts(r"D:\iemocap\Session3\dialog\avi\DivX\x.avi") == (
        "Session3", "dialog", "avi", "DivX", "x.avi"
    )


def test_clean_and_reference_speakers(parent_root):
    clean = load_iemocap(parent_root, splits=("train",), modalities=("text",))["train"]
    assert clean["speaker"] == CLEAN_SPEAKERS
    assert clean["speaker_index"] == CLEAN_INDICES
    assert clean["utterance_key"] == [r[1] for r in TRAIN] == clean["utterance_id"]
    assert clean["dialogue_id"] == [r[2] for r in TRAIN]
    assert clean["turn_index"] == [0, 1, 2, 3, 0, 1, 2]
    assert clean["label"] == TRAIN_LABELS
    assert clean["text"] == [r[0] for r in TRAIN]
    assert clean.features == row_features(IEMOCAP_LABELS)

    reference = load_iemocap(parent_root, splits=("train",), modalities=("text",), speaker_index_carryover=True)
    assert reference["train"]["speaker_index"] == REFERENCE_INDICES
    assert reference["train"]["speaker"] == CLEAN_SPEAKERS  # the actor is kept for reading; only indices change
    assert [t["speaker_index"] for t in reference["train"][6]["context"]] == [4, 0, 1]
    assert [t["speaker_index"] for t in clean[6]["context"]] == [0, 1, 0]
    # The two quirks can be chosen separately.
    turn_only = load_iemocap(parent_root, splits="train", modalities=("text",), speaker_source="utterance_id")
    assert turn_only["train"]["speaker_index"] == [0, 1, 2, 3, 0, 1, 2]


def test_reference_indices_past_eight_reach_the_prompt(tmp_path, tiny_processor):
    rows = [(f"t{i}", f"Ses01F_impro03_{'FM'[i % 2]}{i:03d}", "Ses01F_impro03", i, i + 0.5, "neu") for i in range(11)]
    (tmp_path / "IEMOCAP_dev.csv").write_bytes(csv_bytes(rows))
    dev = load_iemocap(tmp_path, splits="dev", modalities=("text",), speaker_index_carryover=True)["dev"]
    assert dev["speaker_index"] == list(range(11))
    # Clean tokenisation: speakers beyond the 9 speaker tokens share the last one.
    assert tiny_processor.build_prompt(dev[10]["context"]).split(" </s> ")[1].startswith("Now <s9> feels")
    # The original's tokenisation writes <s10>, <s11>, ... as plain text.
    tiny_processor.reference_tokenization = True
    assert tiny_processor.build_prompt(dev[10]["context"]).split(" </s> ")[1].startswith("Now <s11> feels")


def test_windows_come_from_the_csv(parent_root):
    train = load_iemocap(parent_root, splits=("train",), modalities=("text", "video"))["train"]
    assert train["start"] == pytest.approx([r[3] for r in TRAIN])
    assert train["end"] == pytest.approx([r[4] for r in TRAIN])
    assert set(train["audio_path"]) == {""}  # audio not requested
    assert len(set(train["video_path"])) == 2  # one AVI per dialogue


def test_text_only_needs_no_release(tmp_path):
    (tmp_path / "IEMOCAP_train.csv").write_bytes(csv_bytes(TRAIN))
    train = load_iemocap(tmp_path, splits=("train",), modalities=("text",))["train"]
    assert train.num_rows == 7 and set(train["video_path"]) == {""}
    with pytest.raises(FileNotFoundError, match="Session1..Session5"):
        load_iemocap(tmp_path, splits=("train",))


def test_missing_wav_policies(tmp_path, caplog):
    (tmp_path / "IEMOCAP_train.csv").write_bytes(csv_bytes(TRAIN))
    missing = wav_rel("Ses01F_impro01_F001", "Ses01F_impro01")
    make_release(tmp_path / "IEMOCAP_full_release", TRAIN, skip=(missing,))
    with pytest.raises(MissingMediaError) as caught:
        load_iemocap(tmp_path, splits=("train",))
    message = str(caught.value)
    assert "Ses01F_impro01_F001.wav" in message and "IEMOCAP_train.csv, line 4" in message
    assert "on_bad_media='skip'" in message

    with caplog.at_level(logging.WARNING, logger="telme_hf.data"):
        skipped, report = load_iemocap(tmp_path, splits=("train",), on_bad_media="skip", return_report=True)
    assert skipped["train"]["utterance_key"] == [r[1] for r in TRAIN if r[1] != "Ses01F_impro01_F001"]
    assert report.keys("train") == ["Ses01F_impro01_F001"]
    assert any("Ses01F_impro01_F001" in record.getMessage() for record in caplog.records)
    # Video only: the wav is not needed, so nothing is missing.
    assert load_iemocap(tmp_path, splits=("train",), modalities=("text", "video"))["train"].num_rows == 7

    zeros, report = load_iemocap(tmp_path, splits=("train",), on_bad_media="zeros", return_report=True)
    assert zeros["train"].num_rows == 7 and report.keys() == ["Ses01F_impro01_F001"]


def test_missing_dialogue_video_affects_all_its_rows(tmp_path):
    (tmp_path / "IEMOCAP_train.csv").write_bytes(csv_bytes(TRAIN))
    missing = avi_rel("Ses01M_script01_1_M000", "Ses01M_script01_1")
    make_release(tmp_path / "IEMOCAP_full_release", TRAIN, skip=(missing,))
    iemocap, report = load_iemocap(tmp_path, splits=("train",), on_bad_media="skip", return_report=True)
    assert iemocap["train"]["dialogue_id"] == ["Ses01F_impro01"] * 4
    assert len(report) == 3


def test_malformed_rows(tmp_path):
    def load(rows, header=HEADER):
        (tmp_path / "IEMOCAP_test.csv").write_bytes(csv_bytes(rows, header=header))
        return load_iemocap(tmp_path, splits="test", modalities=("text",))

    bad_label = [TEST[0], (*TEST[1][:5], "fea")]
    with pytest.raises(ValueError, match=r"IEMOCAP_test\.csv, line 3: unknown Emotion 'fea'"):
        load(bad_label)
    with pytest.raises(ValueError, match=r"IEMOCAP_test\.csv, line 1: missing column\(s\) \['End_Time'\]"):
        load(TEST, header=HEADER.replace("End_Time", "Stop_Time"))
    with pytest.raises(ValueError, match=r"line 2: Start_Time must be a number"):
        load([(*TEST[0][:3], "soon", *TEST[0][4:])])
    with pytest.raises(ValueError, match=r"line 2: End_Time 0.1 is before Start_Time 0.5"):
        load([(*TEST[0][:4], 0.1, TEST[0][5])])
    with pytest.raises(ValueError, match=r"line 2: Speaker 'Ses05M_impro02' is not an IEMOCAP utterance id"):
        load([(TEST[0][0], "Ses05M_impro02", *TEST[0][2:])])
    # Full-word labels are accepted, and a spaced header (`Utterance, Speaker, ...`) is read by name.
    worded = load([(*TEST[0][:5], "neutral"), (*TEST[1][:5], "happy")], header=HEADER.replace(",", ", "))
    assert worded["test"]["label"] == [4, 3]
