"""Reference-mode teacher inputs equal the original's, checked against an independent restatement of its code.

`tests/parity/original_teacher_inputs.py` restates the original's CSV reading, speaker bookkeeping, string building
and transformers-4.27 tokenisation without telme_hf; these tests compare telme_hf's reference mode with it, token for
token. The tokenizer is a small byte-level BPE trained here (roberta-large cannot be downloaded offline); byte-level
BPE is lossless, so any difference in the text reaching the tokenizer shows up as different tokens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from telme_hf import TelMEConfig, build_processor, train_tokenizer
from telme_hf.data.registry import load_corpus


sys.path.insert(0, str(Path(__file__).parents[1] / "parity"))
import original_teacher_inputs as original  # noqa: E402
from frame_index import indexed_frames, read_indices  # noqa: E402


HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
# MELD rows as the authors' CSVs hold them: UTF-8 files carrying C1 control characters where the release had
# Windows-1252 punctuation (U+0092 for ’, U+0085 for …, U+0097 for —), a no-break space, and quoted commas.
DIALOGUES = [
    [("Ross", "I\x92m fine\x85 really.", "neutral"), ("Rachel", "Oh, you\x92re back\x97finally!", "joy"),
     ("Ross", "Yeah.", "neutral"), ("Monica", "Did you\xa0see it?", "surprise")],
    [("Monica", "That\x92s so \x93great\x94.", "joy"), ("Joey", "How you doin\x92?", "neutral"),
     ("Monica", "Fine.", "neutral")],
    [("Phoebe", "My mother\x92s ghost\x85 again.", "sadness"), ("Joey", "No way.", "surprise"),
     ("Phoebe", "Way.", "neutral"), ("Chandler", "Could this BE any longer?", "anger"),
     ("Joey", "It\x92s long, it\x92s very long, it goes on and on and on.", "disgust"),
     ("Phoebe", "Okay\x85", "fear")],
]


def write_meld_csvs(root: Path, encoding: str = "utf-8") -> None:
    lines = [HEADER]
    number = 1
    for dialogue_id, dialogue in enumerate(DIALOGUES):
        for utterance_id, (speaker, text, emotion) in enumerate(dialogue):
            lines.append(f'{number},"{text}",{speaker},{emotion},neutral,{dialogue_id},{utterance_id},1,1,'
                         f'"00:00:01,000","00:00:02,000"')
            number += 1
    # "latin-1" writes the C1 characters as the single bytes 0x92, 0x85, ... of MELD.Raw's cp1252 CSVs.
    data = ("\n".join(lines) + "\n").encode(encoding)
    for split in ("train", "dev", "test"):
        (root / f"{split}_sent_emo.csv").write_bytes(data)


def our_tokens(root, processor, config, split="train"):
    rows = load_corpus("meld", root, processor, config.label_names, splits=split, modalities=("text",))[0][split]
    ids = [processor.encode_prompt(processor.build_prompt(row["context"])) for row in rows]
    return [processor.tokenizer.convert_ids_to_tokens(sequence) for sequence in ids], rows


def reference_setup(texts, max_text_length, **options):
    tokenizer = train_tokenizer(texts, vocab_size=500)
    config = TelMEConfig.from_preset("meld", reference_behaviour=True)
    config.text_config.vocab_size = len(tokenizer)
    return config, build_processor(config, tokenizer, max_text_length=max_text_length, **options)


@pytest.mark.parametrize("max_text_length", [512, 24])  # 24 tokens: the oldest context is cut
def test_reference_inputs_equal_the_restated_original_on_rows_with_c1_characters(tmp_path, max_text_length):
    write_meld_csvs(tmp_path)
    texts = [text for dialogue in DIALOGUES for _, text, _ in dialogue]
    config, processor = reference_setup(texts * 3, max_text_length)
    ours, rows = our_tokens(tmp_path, processor, config)
    expected = original.original_tokens(
        original.teacher_strings(original.read_rows(tmp_path / "train_sent_emo.csv")), processor.tokenizer,
        max_length=max_text_length - 1,
    )
    assert len(ours) == len(expected) == sum(len(d) for d in DIALOGUES)
    for row, mine, theirs in zip(rows, ours, expected):
        assert mine == theirs, row["utterance_key"]
    # The C1 characters reach the tokenizer as they are (U+0092 is the two bytes C2 92: 'Â', 'Ĵ').
    assert "Ĵ" in "".join(ours[0])
    if max_text_length == 24:
        assert max(len(tokens) for tokens in ours) == 24
    # Clean mode would feed other text: the check above can fail.
    clean = build_processor(config, processor.tokenizer, max_text_length=max_text_length, text_normalization="cp1252")
    cleaned, _ = our_tokens(tmp_path, clean, config)
    assert cleaned[0] != expected[0]
    # MELD.Raw's cp1252 bytes give the same reference text as the authors' UTF-8 files with C1 characters.
    raw = tmp_path / "raw"
    raw.mkdir()
    write_meld_csvs(raw, encoding="latin-1")
    assert b"\x92" in (raw / "train_sent_emo.csv").read_bytes()
    assert our_tokens(raw, processor, config)[0] == ours


AUTHORS_CSV = Path(os.environ.get("TELME_MELD_AUTHORS_CSV", Path(__file__).resolve().parents[3] / "shared" / "data"
                                  / "meld_authors_csv"))


@pytest.mark.slow
@pytest.mark.skipif(not (AUTHORS_CSV / "train_sent_emo.csv").exists(),
                    reason=f"the authors' MELD CSVs are not at {AUTHORS_CSV} (set TELME_MELD_AUTHORS_CSV)")
def test_every_meld_teacher_input_equals_the_original_on_the_authors_csvs():
    texts = []
    for split in ("train", "dev", "test"):
        texts += [text for _, _, text in original.read_rows(AUTHORS_CSV / f"{split}_sent_emo.csv")]
    config, processor = reference_setup(texts, 512)
    identical = total = 0
    for split in ("train", "dev", "test"):
        ours, _ = our_tokens(AUTHORS_CSV, processor, config, split)
        expected = original.original_tokens(
            original.teacher_strings(original.read_rows(AUTHORS_CSV / f"{split}_sent_emo.csv")), processor.tokenizer
        )
        assert len(ours) == len(expected)
        identical += sum(mine == theirs for mine, theirs in zip(ours, expected))
        total += len(ours)
    assert total == 13708
    assert identical == total, f"{identical} of {total} teacher inputs equal the original's"


# ------------------------------------------------------------------------------------------------ IEMOCAP windows
IEMOCAP_HEADER = "Utterance,Speaker,Dialogue_ID,Start_Time,End_Time,Wav_Path,Video_Path,Emotion"


@pytest.fixture
def iemocap_release(tmp_path):
    """A 10 s dialogue AVI at 10 fps (frame i shows i), an utterance wav, and a CSV cutting [4 s, 6 s] and [0, 31 s]."""
    from telme_hf.data.synthetic import write_media

    release = tmp_path / "IEMOCAP_full_release"
    avi = release / "Session1/dialog/avi/DivX/Ses01F_impro01.avi"
    avi.parent.mkdir(parents=True)
    write_media(avi, indexed_frames(100), np.zeros((1, 160000), np.float32), fps=10, sample_rate=16000, gop_size=10)
    for utterance in ("Ses01F_impro01_F000", "Ses01F_impro01_M000"):
        wav = release / f"Session1/sentences/wav/Ses01F_impro01/{utterance}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_media(wav, audio=(0.1 * np.sin(np.arange(32000) / 5.0))[None].astype(np.float32), sample_rate=16000)
    rel = "./dataset/IEMOCAP_full_release/Session1"
    rows = [f"Hi.,Ses01F_impro01_F000,Ses01F_impro01,4.0,6.0,{rel}/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav,"
            f"{rel}/dialog/avi/DivX/Ses01F_impro01.avi,neu",
            f"Long.,Ses01F_impro01_M000,Ses01F_impro01,0.0,31.0,{rel}/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav,"
            f"{rel}/dialog/avi/DivX/Ses01F_impro01.avi,ang"]
    (tmp_path / "IEMOCAP_test.csv").write_text("\n".join([IEMOCAP_HEADER, *rows]) + "\n")
    return tmp_path


def processor_for(preset, tokenizer, **config_kwargs):
    return build_processor(TelMEConfig.from_preset(preset, **config_kwargs), tokenizer)


def loader_for(processor):
    from dataclasses import replace

    from telme_hf.data.bad_media import BadMediaReport
    from telme_hf.modeling.media_telme import MediaLoader, media_options

    audio, video = media_options(processor)
    # Native frame size, so the index stripes survive (the preset's 224-px centre crop would cut the outer ones).
    return MediaLoader(audio, replace(video, size=None, center_crop=False), on_bad_media="zeros",
                       max_media_seconds=processor.max_media_seconds, report=BadMediaReport("zeros"))


def first_rows(root, processor):
    return load_corpus("iemocap", root, processor, splits="test")[0]["test"]


def test_iemocap_reference_video_window_has_the_one_second_margin(iemocap_release, tiny_tokenizer):
    reference = processor_for("iemocap", tiny_tokenizer, reference_behaviour=True)
    clean = processor_for("iemocap", tiny_tokenizer)
    outcome = loader_for(reference).load(first_rows(iemocap_release, reference)[0])
    waveform, frames = outcome.audio, outcome.video
    # Window [max(4 - 1, 0), 6 + 1] = [3, 7] s; the original's rule: step = (10 fps * 4 s) // 8 = 5 over the frames
    # numbered 30..70 (1-based, frames 29..69): counts 5, 10, ..., 40.
    assert read_indices(frames) == [33, 38, 43, 48, 53, 58, 63, 68]
    # The audio is the utterance's own 2 s wav, read whole (no margin), at librosa's 22050 Hz (declared 16 kHz).
    assert len(waveform) == 2 * 22050
    frames = loader_for(clean).load(first_rows(iemocap_release, clean)[0]).video
    assert read_indices(frames) == [40, 43, 46, 49, 51, 54, 57, 60]  # uniform over the 21 frames of [4 s, 6 s]


def test_the_30_second_rule_is_melds_only(iemocap_release, tiny_tokenizer, tmp_path):
    from transformers import AutoProcessor

    meld = processor_for("meld", tiny_tokenizer, reference_behaviour=True)
    assert meld.max_media_seconds == 30.0
    reference = processor_for("iemocap", tiny_tokenizer, reference_behaviour=True)
    assert reference.max_media_seconds == 60.0  # the clean cap, not the 30-second rule
    long_row = first_rows(iemocap_release, reference)[1]
    loader = loader_for(reference)
    loader.load(long_row)  # a 31 s utterance keeps its media, as in the original's IEMOCAP code
    assert not loader.report
    meld_rule = loader_for(meld)
    assert meld_rule.load(long_row).video is not None  # zeros stand in for it
    assert meld_rule.report.keys() == ["Ses01F_impro01_M000"] and "too long" in meld_rule.report.entries[0].note
    # A saved reference processor keeps an explicit None (it is not re-defaulted to 30 s on loading).
    reference.max_media_seconds = None
    reference.save_pretrained(tmp_path / "saved")
    assert AutoProcessor.from_pretrained(tmp_path / "saved").max_media_seconds is None


# ---------------------------------------------------------------------------------------------------------- audio
def test_reference_audio_is_normalised_whole_then_cut_to_the_last_samples(tiny_tokenizer):
    rng = np.random.default_rng(0)
    # A loud start and a quiet end: normalising before or after the cut gives very different numbers.
    wave = np.concatenate([3.0 * rng.standard_normal(3000), 0.1 * rng.standard_normal(1000) + 0.5]).astype(np.float32)

    def normalise(x):  # Wav2Vec2FeatureExtractor's zero-mean unit-variance
        return (x - x.mean()) / np.sqrt(x.var() + 1e-7)

    config = TelMEConfig.from_preset("tiny", reference_behaviour=True)
    config.text_config.vocab_size = len(tiny_tokenizer)
    for reference, expected in ((True, normalise(wave)[-1000:]), (False, normalise(wave[-1000:]))):
        processor = build_processor(config, tiny_tokenizer, audio_max_samples=1000,
                                    audio_normalize_before_keep=reference)
        values = processor(audio=[wave])["input_values"][0].numpy()
        assert values.shape == (1000,)
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(normalise(wave)[-1000:], normalise(wave[-1000:]), atol=0.1)
    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tiny_tokenizer)
    clean = build_processor(config, tiny_tokenizer)
    assert clean.audio_keep == "first" and clean.audio_normalize_before_keep is False
