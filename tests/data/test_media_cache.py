"""The decoded-media cache and the bad-media policy, for every kind of bad media under every policy."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from telme_hf.data.bad_media import BadMediaReport
from telme_hf.data.media_cache import MediaCache, prepare_media
from telme_hf.modeling.media_telme import (
    PLACEHOLDER_AUDIO_SAMPLES,
    AudioDecodeOptions,
    CorruptMediaError,
    EmptyMediaError,
    MediaLoader,
    MissingMediaError,
    NoStreamError,
    TooLongMediaError,
    UnusableMediaError,
    VideoDecodeOptions,
)
from telme_hf.modeling.pipeline_telme import TelMEDataCollator
from telme_hf.data.synthetic import write_media


AUDIO = AudioDecodeOptions()
VIDEO = VideoDecodeOptions(num_frames=4, size=32, center_crop=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2048 * 8) / 16000)).astype(np.float32)[None]
    paths = {
        "good": write_media(root / "good.mp4", frames, tone, fps=12, sample_rate=16000),
        "long": write_media(root / "long.mp4", np.repeat(frames, 3, axis=0), np.tile(tone, 3), fps=12, sample_rate=16000),
        "audio_only": write_media(root / "audio_only.m4a", None, tone, sample_rate=16000),
        "corrupt": root / "corrupt.mp4",
        "missing": root / "missing.mp4",
        # 5 ms of sound: fewer samples than the audio encoder's convolutions need for its frames.
        "short": write_media(root / "short.mkv", frames[:2], tone[:, :80], fps=12, sample_rate=16000,
                             audio_codec="pcm_s16le"),
        # float samples with a NaN: decodes, but nothing the model can read
        "non_finite": write_media(root / "non_finite.mkv", frames,
                                  np.where(np.arange(tone.shape[1]) == 100, np.nan, tone).astype(np.float32),
                                  fps=12, sample_rate=16000, audio_codec="pcm_f32le"),
    }
    paths["corrupt"].write_bytes((root / "good.mp4").read_bytes()[:200])
    return {name: str(path) for name, path in paths.items()}


def row(path: str, key: str = "dia0_utt0", window: tuple[float, float] | None = None) -> dict:
    start, end = window or (float("nan"), float("nan"))
    return {"utterance_key": key, "row_index": 7, "audio_path": path, "video_path": path, "start": start,
            "end": end, "context": [{"speaker": "A", "speaker_index": 0, "text": "hello there"}], "label": 3}


def loader_for(case: str, policy: str, **kwargs) -> MediaLoader:
    # The tiny model's audio encoder needs 165 samples (its convolutions, for SpecAugment's 2 frames).
    return MediaLoader(AUDIO, VIDEO, on_bad_media=policy, max_media_seconds=BAD[case][2], min_audio_samples=165,
                       report=BadMediaReport(policy), **kwargs)


BAD = {
    "missing": ("missing", MissingMediaError, None),
    "corrupt": ("corrupt", CorruptMediaError, None),
    "no_video_stream": ("audio_only", NoStreamError, None),
    "too_long": ("long", TooLongMediaError, 1.5),
    "empty_window": ("good", EmptyMediaError, None),
    "too_short": ("short", UnusableMediaError, None),
    "non_finite": ("non_finite", UnusableMediaError, None),
}
# Rows that cut a window: one past the end of the 1-second clip holds nothing.
WINDOWS = {"empty_window": (5.0, 6.0)}


@pytest.mark.parametrize("case", sorted(BAD))
def test_error_policy_names_file_row_and_fix(case, clips):
    name, error, _ = BAD[case]
    loader = loader_for(case, "error")
    with pytest.raises(error) as info:
        loader.load(row(clips[name], window=WINDOWS.get(case)))
    message = str(info.value)
    assert clips[name] in message and "dia0_utt0" in message and "row 7" in message
    assert "on_bad_media='skip'" in message and "on_bad_media='zeros'" in message


@pytest.mark.parametrize("case", sorted(BAD))
def test_skip_policy_drops_and_reports(case, clips, caplog):
    name, _, _ = BAD[case]
    loader = loader_for(case, "skip")
    with caplog.at_level(logging.INFO, logger="telme_hf"):
        outcome = loader.load(row(clips[name], key=f"bad_{case}", window=WINDOWS.get(case)))
    assert outcome.skipped and outcome.audio is None and outcome.video is None
    assert loader.report.keys() == [f"bad_{case}"]
    assert f"bad_{case}" in caplog.text and "dropped" in caplog.text


@pytest.mark.parametrize("case", sorted(BAD))
def test_zeros_policy_substitutes_placeholders(case, clips):
    name, _, _ = BAD[case]
    loader = loader_for(case, "zeros", pixel_mean=(0.485, 0.456, 0.406))
    outcome = loader.load(row(clips[name], window=WINDOWS.get(case)))
    audio, video = outcome.audio, outcome.video
    assert audio.shape == (PLACEHOLDER_AUDIO_SAMPLES,) and not audio.any()
    assert video.shape == (4, 32, 32, 3) and video.dtype == np.uint8
    assert (video == np.array([124, 116, 104], np.uint8)).all()  # round(255 × the given mean)
    assert "zeros" in loader.report.summary() and len(loader.report) == 1
    assert outcome.note.endswith(": used zeros")


@pytest.mark.parametrize("order", ["rgb", "bgr"])
@pytest.mark.parametrize("statistics", ["kinetics", "imagenet"])
def test_zero_placeholder_frames_reach_the_model_as_zeros(statistics, order, tiny_config, tiny_tokenizer):
    from telme_hf import build_processor

    processor = build_processor(tiny_config, tiny_tokenizer, video_pixel_statistics=statistics,
                                video_channel_order=order)
    collator = TelMEDataCollator(processor, ("video",), on_bad_media="zeros")
    pixel_values = collator([row("/does/not/exist.mp4")])["pixel_values"]
    assert pixel_values.abs().max() < 0.01


def test_window_cuts_the_dialogue_video_but_not_a_separate_utterance_wav(tmp_path):
    # IEMOCAP: a per-utterance wav (starting at 0 s) and a dialogue-level video; start/end are dialogue times.
    frames = np.zeros((120, 32, 32, 3), np.uint8)
    frames[:] = (np.arange(120) * 2).astype(np.uint8)[:, None, None, None]  # brightness encodes the frame index
    video = write_media(tmp_path / "dialogue.avi", frames, None, fps=12)
    wav = write_media(tmp_path / "utterance.wav", None, np.full((1, 16000 * 2), 0.1, np.float32), sample_rate=16000)
    loader = MediaLoader(AUDIO, VideoDecodeOptions(num_frames=4, size=None))
    iemocap_row = row(str(wav)) | {"video_path": str(video), "start": 5.5, "end": 7.25}
    outcome = loader.load(iemocap_row)
    audio, clip = outcome.audio, outcome.video
    assert abs(audio.size - 32000) <= 1024  # the whole 2 s wav, although the window starts at 5.5 s
    picked = clip[:, 0, 0, 0].astype(int) // 2
    # lossy coding blurs the brightness code by a level or two: allow 3 frames (a quarter second)
    assert picked.min() >= 5.5 * 12 - 3 and picked.max() <= 7.25 * 12 + 3  # only frames inside the window


def test_good_clip_is_decoded_and_cached(clips, tmp_path):
    cache = MediaCache(tmp_path)
    loader = MediaLoader(AUDIO, VIDEO, cache=cache)
    first = loader.load(row(clips["good"]))
    audio, video = first.audio, first.video
    assert video.shape == (4, 32, 32, 3) and audio.dtype == np.float32 and audio.size >= 2048 * 8
    assert cache.decode_calls == 1 and not first.entries
    again = loader.load(row(clips["good"]))
    assert cache.decode_calls == 1
    assert np.array_equal(again.audio, audio) and np.array_equal(again.video, video)
    # other decode options are another cache entry
    MediaLoader(AUDIO, VideoDecodeOptions(num_frames=2, size=32, center_crop=True), cache=cache).load(row(clips["good"]))
    assert cache.decode_calls == 2


def test_collator_skips_bad_rows_and_keeps_labels_aligned(clips, tiny_processor):
    loader = MediaLoader.for_processor(tiny_processor, on_bad_media="skip", report=BadMediaReport("skip"))
    collator = TelMEDataCollator(tiny_processor, ("text", "audio", "video"), loader=loader)
    rows = [row(clips["good"], "a") | {"label": 1}, row(clips["corrupt"], "b") | {"label": 2},
            row(clips["good"], "c") | {"label": 5}]
    batch = collator(rows)
    assert batch["labels"].tolist() == [1, 5]
    assert batch["pixel_values"].shape[0] == 2 and batch["input_ids"].shape[0] == 2
    assert collator.bad_media_report.keys() == ["b"]


def test_prepare_media_drops_skipped_rows_from_the_dataset(clips, tmp_path):
    from datasets import Dataset

    data = Dataset.from_list([row(clips["good"], "a"), row(clips["missing"], "b"), row(clips["good"], "c")])
    loader = MediaLoader(AUDIO, VIDEO, MediaCache(tmp_path), on_bad_media="skip")
    kept = prepare_media(data, loader)
    assert list(kept["utterance_key"]) == ["a", "c"]


def test_a_parallel_decode_pass_keeps_caches_and_reports_what_one_process_does(clips, tmp_path):
    from datasets import Dataset

    rows = [row(clips["good"], "a"), row(clips["missing"], "b"), row(clips["corrupt"], "c"), row(clips["good"], "d")]
    data = Dataset.from_list(rows)
    results = {}
    for workers in (0, 2):
        cache, report = MediaCache(tmp_path / f"workers{workers}"), BadMediaReport("skip")
        loader = MediaLoader(AUDIO, VIDEO, cache, on_bad_media="skip", report=report)
        kept = prepare_media(data, loader, num_workers=workers)
        arrays = cache.get(clips["good"], AUDIO, VIDEO)
        files = sorted(path.name for path in cache.root.rglob("*.npy"))
        results[workers] = (list(kept["utterance_key"]), report.keys(), files, arrays)
    assert results[0][:3] == results[2][:3] and results[2][0] == ["a", "d"] and results[2][1] == ["b", "c"]
    for one, two in zip(results[0][3], results[2][3]):
        np.testing.assert_array_equal(one, two)
    with pytest.raises(ValueError, match="needs a loader with a cache"):
        prepare_media(data, MediaLoader(AUDIO, VIDEO, on_bad_media="skip"), num_workers=2)


def test_text_only_collation_touches_no_media(tiny_processor):
    collator = TelMEDataCollator(tiny_processor, ("text",))
    batch = collator([row("/nowhere/at/all.mp4")])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"][0, -1] == tiny_processor.tokenizer.mask_token_id


def test_precomputed_features_pass_through(tiny_processor):
    collator = TelMEDataCollator(tiny_processor, ("text", "audio", "video"))
    features = {name: np.full(8, i, np.float32) for i, name in enumerate(("text_features", "audio_features", "video_features"))}
    batch = collator([row("/nowhere.mp4") | features])
    assert set(batch) == {"text_features", "audio_features", "video_features", "labels"}
    assert torch.equal(batch["audio_features"], torch.ones(1, 8))


def test_a_bad_clip_is_decoded_and_logged_once(clips, caplog, monkeypatch):
    import telme_hf.modeling.media_telme as media

    calls = []
    real = media.decode_clip
    monkeypatch.setattr(media, "decode_clip", lambda *args, **kwargs: calls.append(args[0]) or real(*args, **kwargs))
    loader = MediaLoader(AUDIO, VIDEO, on_bad_media="skip", report=BadMediaReport("skip"))
    with caplog.at_level(logging.INFO, logger="telme_hf"):
        for _ in range(3):  # three epochs
            assert loader.load(row(clips["corrupt"], key="bad")).skipped
    assert calls == [clips["corrupt"]]
    assert sum("bad" in record.getMessage() for record in caplog.records) == 1


def test_a_stream_longer_than_its_header_says_stops_at_the_cap(tmp_path):
    from telme_hf.modeling.media_telme import decode_clip

    rng = np.random.default_rng(0)
    # 4 s of video and audio; decoding with a 2 s cap must stop (here no header is consulted at all).
    path = write_media(tmp_path / "four_seconds.mkv", rng.integers(0, 255, (48, 32, 32, 3), dtype=np.uint8),
                       np.zeros((1, 4 * 16000), np.float32), fps=12, sample_rate=16000)
    with pytest.raises(TooLongMediaError, match="more than 2 s"):
        decode_clip(path, AUDIO, VIDEO, max_seconds=2.0)
    assert decode_clip(path, AUDIO, VIDEO, max_seconds=10.0).video.shape[0] == 4
