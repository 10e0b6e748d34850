"""Tests for telme_hf.modeling.media_telme: media generated with PyAV in tmp_path, no network."""

import pickle

import av
import numpy as np
import pytest

from telme_hf.modeling.media_telme import (
    AudioDecodeOptions,
    CorruptMediaError,
    DecodedClip,
    EmptyMediaError,
    MediaError,
    MissingMediaError,
    NoStreamError,
    VideoDecodeOptions,
    decode_clip,
    media_duration,
    sample_frame_indices,
)
from telme_hf.data.synthetic import write_media

from frame_index import HEIGHT, WIDTH, indexed_frames, read_indices


def decode_audio(path, options=AudioDecodeOptions(), *, start=None, end=None) -> np.ndarray:
    """A file's audio alone."""
    return decode_clip(path, audio=options, video=None, start=start, end=end).audio


def decode_video(path, options=VideoDecodeOptions(), *, start=None, end=None) -> np.ndarray:
    """A file's frames alone."""
    return decode_clip(path, audio=None, video=options, start=start, end=end).video


# A whole number of AAC frames (1024 samples): PyAV zero-pads the last frame, which would lengthen the clip.
STEREO_SAMPLES = 94 * 1024  # 2.005 s at 48 kHz


# ------------------------------------------------------------------------------------------------ media builders


def tone(frequency, seconds, sample_rate, amplitude=0.5):
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(signal, sample_rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.fft.rfftfreq(len(signal), 1 / sample_rate)[int(np.argmax(spectrum))]


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def stereo_clip(tmp_path_factory):
    """~2 s mp4, H.264 + AAC 48 kHz stereo: L = 440 Hz tone, R = 0.5 * L."""
    path = tmp_path_factory.mktemp("media") / "stereo.mp4"
    left = tone(440.0, STEREO_SAMPLES / 48000, 48000)
    write_media(path, indexed_frames(24), np.stack([left, 0.5 * left]), fps=12, sample_rate=48000,
                audio_bitrate=192000, audio_options={})
    return path


@pytest.fixture(scope="module")
def index_clip(tmp_path_factory):
    """77 frames (like a 3.2 s MELD clip at 24 fps), frame index encoded in the picture."""
    path = tmp_path_factory.mktemp("media") / "index77.mp4"
    write_media(path, indexed_frames(77), tone(300.0, 77 / 24, 16000)[None], fps=24, sample_rate=16000)
    return path


# ------------------------------------------------------------------------------------------------ audio


def test_audio_is_resampled_to_16k_with_the_right_pitch_and_length(stereo_clip):
    audio = decode_audio(stereo_clip)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Exact length: the decoder trims the AAC priming samples (edit list) and the resampler is flushed.
    assert abs(len(audio) - STEREO_SAMPLES * 16000 / 48000) <= 2
    assert abs(peak_frequency(audio, 16000) - 440.0) <= 2.0


@pytest.mark.parametrize("container", ["mp4", "wav"])
def test_stereo_downmix_is_the_channel_mean(tmp_path, container):
    left = tone(440.0, 1.0, 48000, amplitude=0.6)
    path = write_media(tmp_path / f"stereo.{container}", None, np.stack([left, 0.5 * left]), sample_rate=48000,
                       audio_bitrate=192000, audio_options={})
    mono = decode_audio(path)
    expected = rms(0.75 * left)  # (L + R) / 2
    assert abs(rms(mono) / expected - 1) < 0.02
    # libswresample's own stereo->mono is (L + R) / sqrt(2), 1.41x louder: make sure that is not what we return.
    assert abs(rms(mono) / (expected * np.sqrt(2)) - 1) > 0.2


def test_mono_source_is_left_unscaled(tmp_path):
    signal = tone(440.0, 1.0, 16000, amplitude=0.6)
    mono = decode_audio(write_media(tmp_path / "mono.wav", None, signal[None], sample_rate=16000))
    np.testing.assert_allclose(mono, signal, atol=1e-4)  # 16-bit PCM, same rate: passthrough


def test_reference_rate_returns_22050_hz_samples(stereo_clip):
    audio = decode_audio(stereo_clip, AudioDecodeOptions(reference_rate=True))
    assert abs(len(audio) - STEREO_SAMPLES * 22050 / 48000) <= 2
    # Still a 440 Hz tone at the true rate: it is 22.05 kHz audio that the model will be told is 16 kHz.
    assert abs(peak_frequency(audio, 22050) - 440.0) <= 2.0


def test_max_length_keeps_the_requested_end(tmp_path):
    # First second 300 Hz, second second 700 Hz.
    signal = np.concatenate([tone(300.0, 1.0, 44100), tone(700.0, 1.0, 44100)])
    path = write_media(tmp_path / "two_tones.wav", None, signal[None], sample_rate=44100)
    full = decode_audio(path, AudioDecodeOptions(reference_rate=True))

    # Reference: the limit counts samples at the declared 16 kHz (400000 in the original = 25 s at 16 kHz).
    last = decode_audio(path, AudioDecodeOptions(max_seconds=0.5, keep="last", reference_rate=True))
    first = decode_audio(path, AudioDecodeOptions(max_seconds=0.5, keep="first", reference_rate=True))
    assert len(last) == len(first) == 8000
    np.testing.assert_array_equal(last, full[-8000:])
    np.testing.assert_array_equal(first, full[:8000])
    assert abs(peak_frequency(last, 22050) - 700.0) <= 3.0
    assert abs(peak_frequency(first, 22050) - 300.0) <= 3.0

    clean = decode_audio(path, AudioDecodeOptions(max_seconds=0.5, keep="last"))
    assert len(clean) == 8000 and abs(peak_frequency(clean, 16000) - 700.0) <= 3.0
    assert AudioDecodeOptions.reference().max_samples == 400000


# ------------------------------------------------------------------------------------------------ video


def test_frames_are_rgb_and_bgr_swaps(tmp_path):
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    frames = np.concatenate([np.full((4, HEIGHT, WIDTH, 3), rgb, dtype=np.uint8) for rgb in colours.values()])
    path = write_media(tmp_path / "rgb.mp4", frames, fps=12)

    rgb = decode_video(path, VideoDecodeOptions(num_frames=12, size=None))
    bgr = decode_video(path, VideoDecodeOptions(num_frames=12, size=None, channel_order="bgr"))
    assert rgb.dtype == np.uint8 and rgb.shape == (12, HEIGHT, WIDTH, 3)
    for block, channel in enumerate([0, 1, 2]):  # red, green, blue frames
        means = rgb[4 * block : 4 * block + 4].mean(axis=(0, 1, 2))
        assert means[channel] > 200 and np.delete(means, channel).max() < 60, means
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])


def test_size_resizes_the_shortest_edge_keeping_aspect(index_clip):
    assert decode_video(index_clip, VideoDecodeOptions(size=None)).shape == (8, 48, 64, 3)
    assert decode_video(index_clip, VideoDecodeOptions(size=32)).shape == (8, 32, 42, 3)  # int(32 * 64 / 48)
    assert decode_video(index_clip, VideoDecodeOptions(size=224)).shape == (8, 224, 298, 3)
    cropped = decode_video(index_clip, VideoDecodeOptions(size=32, center_crop=True))
    assert cropped.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(cropped, decode_video(index_clip, VideoDecodeOptions(size=32))[:, :, 5:37])


def test_frame_sampling_uniform_and_strided(index_clip):
    uniform = decode_video(index_clip, VideoDecodeOptions(size=None, sampling="uniform"))
    strided = decode_video(index_clip, VideoDecodeOptions(size=None, sampling="strided"))
    assert read_indices(uniform) == [0, 11, 22, 33, 43, 54, 65, 76]
    # The original rule: step = 77 // 8 = 9, 1-based counter, keep count % 9 == 0.
    assert read_indices(strided) == [8, 17, 26, 35, 44, 53, 62, 71]


def test_short_clip_repeats_the_last_frame(tmp_path):
    path = write_media(tmp_path / "short.mp4", indexed_frames(5), fps=12)
    assert read_indices(decode_video(path, VideoDecodeOptions(size=None, sampling="strided"))) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert read_indices(decode_video(path, VideoDecodeOptions(size=None))) == [0, 1, 1, 2, 2, 3, 3, 4]


def test_sample_frame_indices_rules():
    assert sample_frame_indices(77, 8, "uniform") == [0, 11, 22, 33, 43, 54, 65, 76]
    assert sample_frame_indices(77, 8, "strided") == [8, 17, 26, 35, 44, 53, 62, 71]
    assert sample_frame_indices(16, 8, "strided") == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_frame_indices(8, 8, "uniform") == list(range(8))
    assert sample_frame_indices(1, 3, "uniform") == [0, 0, 0]
    with pytest.raises(ValueError):
        sample_frame_indices(0, 8)


@pytest.mark.parametrize("container", ["mp4", "avi"])
def test_window_returns_only_frames_and_audio_inside_it(tmp_path, container):
    # 10 s at 10 fps with a keyframe every 10 frames (a long recording); second k of audio is at 200 + 100 k Hz.
    t = np.arange(10 * 16000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * (200 + 100 * np.floor(t)) * t)).astype(np.float32)
    path = write_media(tmp_path / f"long.{container}", indexed_frames(100), audio[None], fps=10,
                       sample_rate=16000, gop_size=10)

    clip = decode_clip(path, AudioDecodeOptions(), VideoDecodeOptions(size=None), start=4.0, end=6.0)
    indices = read_indices(clip.video)
    assert all(40 <= i <= 60 for i in indices), indices
    assert indices == [40, 43, 46, 49, 51, 54, 57, 60]  # uniform over the 21 frames of [4 s, 6 s]
    assert abs(len(clip.audio) - 32000) <= 16
    assert clip.duration == pytest.approx(10.0, abs=0.2)

    inside_one_second = decode_audio(path, start=5.1, end=5.9)
    assert abs(len(inside_one_second) - 12800) <= 16
    assert abs(peak_frequency(inside_one_second, 16000) - 700.0) <= 3.0

    strided = decode_video(path, VideoDecodeOptions(size=None, sampling="strided"), start=4.0, end=6.0)
    # The original's windowed rule: step = (10 fps * 2 s) // 8 = 2; frame numbers (1-based, as OpenCV's
    # CAP_PROP_POS_FRAMES after a read) 40..60 are inside, i.e. frames 39..59; every 2nd of them counted from 1.
    assert read_indices(strided) == [40, 42, 44, 46, 48, 50, 52, 54]


def test_window_past_the_end_is_empty(index_clip):
    with pytest.raises(EmptyMediaError, match="index77.mp4"):
        decode_video(index_clip, start=50.0, end=60.0)


# ------------------------------------------------------------------------------------------------ one code path


def test_decode_clip_matches_the_single_stream_wrappers(index_clip):
    clip = decode_clip(index_clip)
    assert isinstance(clip, DecodedClip)
    np.testing.assert_array_equal(clip.audio, decode_audio(index_clip))
    np.testing.assert_array_equal(clip.video, decode_video(index_clip))
    assert clip.duration == pytest.approx(media_duration(index_clip)) == pytest.approx(77 / 24, abs=0.05)
    assert decode_clip(index_clip, video=None).video is None
    with pytest.raises(ValueError):
        decode_clip(index_clip, audio=None, video=None)


@pytest.mark.parametrize("sampling", ["uniform", "strided"])
def test_threaded_video_decoding_gives_the_single_threaded_frames(index_clip, monkeypatch, sampling):
    from telme_hf.modeling import media_telme

    options = VideoDecodeOptions(num_frames=8, size=None, sampling=sampling)
    threaded = decode_clip(index_clip, video=options)
    monkeypatch.setattr(media_telme, "VIDEO_DECODE_THREADS", "NONE")
    single = decode_clip(index_clip, video=options)
    assert media_telme.VIDEO_DECODE_THREADS == "NONE" and threaded.video.shape == (8, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(threaded.video, single.video)
    np.testing.assert_array_equal(threaded.audio, single.audio)
    assert read_indices(threaded.video) == read_indices(single.video)


def test_cache_keys_are_stable_and_option_specific():
    assert AudioDecodeOptions().cache_key() == AudioDecodeOptions().cache_key()
    assert AudioDecodeOptions(max_seconds=25).cache_key() == AudioDecodeOptions(max_seconds=25.0).cache_key()
    audio_keys = {o.cache_key() for o in [AudioDecodeOptions(), AudioDecodeOptions(reference_rate=True),
                                          AudioDecodeOptions(max_seconds=3), AudioDecodeOptions(keep="last")]}
    video_keys = {o.cache_key() for o in [VideoDecodeOptions(), VideoDecodeOptions(size=None),
                                          VideoDecodeOptions(sampling="strided"), VideoDecodeOptions(num_frames=4),
                                          VideoDecodeOptions(channel_order="bgr"), VideoDecodeOptions(center_crop=True)]}
    assert len(audio_keys) == 4 and len(video_keys) == 6
    with pytest.raises(ValueError):
        VideoDecodeOptions(sampling="random")


# ------------------------------------------------------------------------------------------------ bad media


def assert_names_path(error_info, path):
    assert error_info.value.path == str(path)
    assert str(path) in str(error_info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "dia110_utt7.mp4"
    with pytest.raises(MissingMediaError) as info:
        decode_clip(path)
    assert_names_path(info, path)
    with pytest.raises(MissingMediaError):
        media_duration(path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptMediaError) as info:
        decode_clip(path)
    assert_names_path(info, path)


def test_truncated_mp4(tmp_path, index_clip):
    path = tmp_path / "dia125_utt3.mp4"
    path.write_bytes(index_clip.read_bytes()[: index_clip.stat().st_size // 3])  # index (moov) at the end: lost
    with pytest.raises(CorruptMediaError) as info:
        decode_clip(path)
    assert_names_path(info, path)


def test_truncated_faststart_mp4_samples_from_the_frames_that_decode(tmp_path, caplog):
    # Index first, data cut after 40 of 77 frames: the container announces frames that are not there.
    full = write_media(tmp_path / "faststart.mp4", indexed_frames(77), fps=24, faststart=True,
                       video_options={"bf": "0"})  # no B-frames: decode order = display order
    with av.open(str(full)) as container:
        positions = [packet.pos for packet in container.demux(video=0)]
    path = tmp_path / "cut.mp4"
    path.write_bytes(full.read_bytes()[: positions[40]])
    indices = read_indices(decode_video(path, VideoDecodeOptions(size=None)))
    assert indices == [0, 6, 11, 17, 22, 28, 33, 39]  # uniform over the 40 frames that decode
    assert "announces 77 video frames but only 40 decode" in caplog.text


def test_audio_only_file_asked_for_video(tmp_path):
    path = write_media(tmp_path / "speech.wav", None, tone(200.0, 0.5, 16000)[None], sample_rate=16000)
    assert decode_audio(path).shape == (8000,)
    with pytest.raises(NoStreamError, match="no video stream") as info:
        decode_video(path)
    assert_names_path(info, path)


def test_video_only_file_asked_for_audio(tmp_path):
    path = write_media(tmp_path / "silent.mp4", indexed_frames(12), fps=12)
    assert decode_video(path).shape[0] == 8
    with pytest.raises(NoStreamError, match="no audio stream") as info:
        decode_audio(path)
    assert_names_path(info, path)


def test_errors_survive_pickling():
    # DataLoader workers send exceptions to the main process by pickling them.
    error = pickle.loads(pickle.dumps(CorruptMediaError("/data/x.mp4", "broken")))
    assert isinstance(error, CorruptMediaError) and isinstance(error, MediaError)
    assert error.path == "/data/x.mp4" and error.reason == "broken"
