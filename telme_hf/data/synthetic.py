# Copyright 2024 The TelME-HF contributors. Licensed under the Apache License, Version 2.0.
"""A small synthetic corpus laid out exactly like an unpacked ``MELD.Raw``, for demos and tests.

```
root/
  train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv     MELD's header, CRLF, UTF-8
  train_splits/dia{D}_utt{U}.mp4                              H.264 video + AAC stereo audio
  dev_splits_complete/dia{D}_utt{U}.mp4
  output_repeated_splits_test/dia{D}_utt{U}.mp4
  corpus.json                                                  seed, counts, bad clips, cue of every utterance
```

Every emotion is signalled by each modality, and each modality is imperfect in its own way, so a text-only model
is capped below 100% and fusing audio and video helps:

- **text** names a *group*: anger and disgust share one vocabulary, fear and surprise another; joy, neutral and
  sadness each have their own. With probability `text_noise` the line comes from another group.
- **audio** is a voiced, speech-like harmonic tone whose fundamental, pitch contour and syllable rate depend on
  the class (:data:`AUDIO_CUES`), plus noise; with probability `audio_noise` it carries another class's cue.
- **video** shows a background of a class-specific hue and a square moving in a class-specific way
  (:data:`VIDEO_CUES`), plus pixel noise; with probability `video_noise` it shows another class's cue.

As in real MELD, one dev clip is missing (like ``dev/dia110_utt7``), one train clip is corrupt (like
``train/dia125_utt3``), some dialogues skip Utterance_IDs, one train Dialogue_ID is absent, and classes are skewed
with neutral the most frequent; unlike MELD, every class appears in every split.

Example:

```python
>>> from telme_hf.data.synthetic import make_synthetic_corpus
>>> root = make_synthetic_corpus("/tmp/meld_synthetic", num_dialogues=125, seed=0)  # doctest: +SKIP
>>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
['corpus.json', 'dev_sent_emo.csv', 'dev_splits_complete', 'output_repeated_splits_test', 'test_sent_emo.csv',
 'train_sent_emo.csv', 'train_splits']
```
"""

from __future__ import annotations

import colorsys
import csv
import json
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..atomic import atomic_open, atomic_path, atomic_write_text, remove_stale_temporaries
from ..logging import get_logger, progress_bar


logger = get_logger("telme_hf.data")


__all__ = [
    "EMOTIONS",
    "MELD_COLUMNS",
    "MELD_SPLITS",
    "AUDIO_CUES",
    "VIDEO_CUES",
    "H264_ENCODER",
    "make_synthetic_corpus",
    "synthetic_corpus_is_complete",
    "write_media",
]

GENERATOR_VERSION = 1

EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = {"anger": "negative", "disgust": "negative", "fear": "negative", "joy": "positive",
              "neutral": "neutral", "sadness": "negative"}  # surprise: positive or negative, drawn per utterance
MELD_COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
                "Season", "Episode", "StartTime", "EndTime")
# split -> (annotation csv, media folder), as in MELD.Raw.
MELD_SPLITS = {
    "train": ("train_sent_emo.csv", "train_splits"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
MANIFEST_NAME = "corpus.json"
# Present while a corpus is being generated (it holds the generation's arguments): a folder that has it was
# interrupted, and the next generation there finishes it (same arguments) or starts it again (other arguments).
INCOMPLETE_NAME = ".corpus-incomplete.json"

# Skewed like MELD (neutral first) but less extreme, so that disgust and fear still have a few dozen examples.
DEFAULT_CLASS_WEIGHTS = {"anger": 0.12, "disgust": 0.09, "fear": 0.09, "joy": 0.16, "neutral": 0.30,
                         "sadness": 0.12, "surprise": 0.12}
# Split shares of `num_dialogues` (MELD: 73% / 8% / 19% of dialogues; dev is larger here for steadier metrics).
SPLIT_SHARES = {"train": 2 / 3, "dev": 2 / 15, "test": 1 / 5}
# 83 / 17 / 25 dialogues: small enough for a tiny model to go through all three stages on a CPU in minutes.
DEFAULT_NUM_DIALOGUES = 125

# libx264 is in the PyAV wheels; a build without it falls back to MPEG-4 part 2 (also decodable everywhere).
H264_ENCODER = "libx264" if "libx264" in av.codecs_available else "mpeg4"

# ----------------------------------------------------------------------------------------------------------------
# The cues
# ----------------------------------------------------------------------------------------------------------------

# Text groups: classes inside one group share every template, so text alone cannot tell them apart.
TEXT_GROUPS = {
    "hostile": ("anger", "disgust"),
    "startled": ("fear", "surprise"),
    "joy": ("joy",),
    "neutral": ("neutral",),
    "sadness": ("sadness",),
}
_GROUP_OF = {emotion: group for group, members in TEXT_GROUPS.items() for emotion in members}
TEXT_TEMPLATES = {
    "hostile": (
        "I can't believe you did that to my {thing}!",
        "That is {hostile}, {name}.",
        "Get that {thing} away from me.",
        "Are you kidding me? That's {hostile}!",
        "Ugh, stop it right now.",
        "Why would anyone touch the {thing}? It's {hostile}.",
    ),
    "startled": (
        "Oh my God, what was that?",
        "Wait, {name}, the {thing} is {startled}?",
        "No way! Did you just see that?",
        "What?! Since when?",
        "Whoa, I did not expect the {thing}.",
        "Is that really the {thing}? That's {startled}!",
    ),
    "joy": (
        "This is {joyful}!",
        "I love the {thing}, {name}!",
        "We did it! This is the best day ever.",
        "Ha, that is {joyful}.",
        "Thank you so much, I’m so happy!",
    ),
    "neutral": (
        "I’m going to get the {thing}.",
        "What time is it, {name}?",
        "Okay, so the {thing} is in the kitchen.",
        "Did you call about the {thing}?",
        "Yeah, I think so.",
        "Let’s meet at six, then.",
    ),
    "sadness": (
        "I really miss the {thing}.",
        "It’s over, {name}. It’s just over.",
        "Nobody ever calls me anymore.",
        "I’m sorry, I just feel so alone.",
        "I lost the {thing}, and now everything is gone.",
    ),
}
TEXT_SLOTS = {
    "thing": ("sandwich", "apartment", "couch", "letter", "ring", "job", "coffee", "car", "present", "guitar"),
    "hostile": ("disgusting", "outrageous", "gross", "unacceptable", "revolting", "ridiculous"),
    "startled": ("unbelievable", "insane", "happening", "real", "back"),
    "joyful": ("wonderful", "amazing", "perfect", "so great", "fantastic"),
}
TEXT_OPENERS = ("", "", "", "Well, ", "So, ", "Hey, ", "Okay, ", "Look, ")
SPEAKER_NAMES = ("Rachel", "Monica", "Phoebe", "Joey", "Chandler", "Ross", "Mike", "Janice", "Gunther", "Emily",
                 "Richard", "Carol", "Susan", "Frank", "Ursula", "Tag")


@dataclass(frozen=True)
class AudioCue:
    """A class's voice: fundamental (Hz), contour of the fundamental, syllable rate (Hz), number of harmonics."""

    f0: float
    contour: str  # flat | rise | fall | bell | vibrato
    syllable_rate: float
    harmonics: int


# Fundamentals at least 1.2x apart (more than the +-5% jitter), and the pairs that share text (anger/disgust,
# fear/surprise) far apart; the contour and syllable rate add a second, temporal cue.
AUDIO_CUES = {
    "anger": AudioCue(205.0, "flat", 6.0, 10),
    "disgust": AudioCue(125.0, "fall", 2.0, 6),
    "fear": AudioCue(360.0, "vibrato", 8.0, 5),
    "joy": AudioCue(300.0, "bell", 4.5, 8),
    "neutral": AudioCue(160.0, "flat", 3.5, 6),
    "sadness": AudioCue(95.0, "fall", 1.5, 4),
    "surprise": AudioCue(250.0, "rise", 3.0, 6),
}


@dataclass(frozen=True)
class VideoCue:
    """A class's picture: background hue (degrees) and how the square moves."""

    hue: float
    motion: str  # shake | drift_left | tremble | grow | bounce | still | sink


# Hues evenly spaced on the colour wheel; the pairs that share text differ in hue by >= 51 degrees and in motion.
VIDEO_CUES = {
    "anger": VideoCue(0.0, "shake"),
    "joy": VideoCue(360 / 7, "bounce"),
    "disgust": VideoCue(2 * 360 / 7, "drift_left"),
    "neutral": VideoCue(3 * 360 / 7, "still"),
    "sadness": VideoCue(4 * 360 / 7, "sink"),
    "fear": VideoCue(5 * 360 / 7, "tremble"),
    "surprise": VideoCue(6 * 360 / 7, "grow"),
}


# ----------------------------------------------------------------------------------------------------------------
# Writing media
# ----------------------------------------------------------------------------------------------------------------


def _default_options(video_codec: str) -> dict[str, str]:
    return {"crf": "23", "preset": "veryfast"} if video_codec == "libx264" else {}


def _reproducible_options(video_codec: str) -> dict[str, str]:
    # One thread; and for x264 no macroblock tree: with it, ~2% of 64x48 clips came out different from one run to
    # the next (same input, same process). Without it the output is byte-identical run to run.
    return {"threads": "1", "x264-params": "no-mbtree=1"} if video_codec == "libx264" else {"threads": "1"}


def write_media(
    path: str | Path,
    video: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    *,
    fps: int = 12,
    sample_rate: int = 44100,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    video_options: Mapping[str, str] | None = None,
    audio_bitrate: int = 96000,
    audio_options: Mapping[str, str] | None = None,
    gop_size: int | None = None,
    faststart: bool = False,
) -> Path:
    """Encode frames and/or a waveform into one media file with PyAV (deterministic: same input, same bytes).

    Args:
        path: output file; its suffix picks the container (`.mp4`, `.avi`, `.wav`, `.m4a`, ...).
        video: `uint8 (num_frames, height, width, 3)` RGB frames (even height and width for yuv420p), or `None`.
        audio: `float32 (channels, num_samples)` in [-1, 1], 1 or 2 channels, or `None`. AAC encodes whole
            1024-sample frames and PyAV zero-pads the last one, so the decoded audio can be up to 1023 samples
            longer; pass a multiple of 1024 samples where the exact length matters.
        fps: video frame rate.
        sample_rate: audio rate.
        video_codec: defaults to H.264 (`mpeg4` in `.avi`).
        audio_codec: defaults to AAC (16-bit PCM in `.wav` and `.avi`).
        video_options: encoder options, defaults to `{"crf": "23", "preset": "veryfast"}` for libx264; added to
            options that make the output reproducible (one thread, x264 without mbtree).
        audio_bitrate: AAC bitrate in bit/s.
        audio_options: encoder options, defaults to `{"aac_coder": "fast", "aac_pns": "0"}` for AAC (5x faster
            than FFmpeg's default coder, which would dominate the corpus generation time).
        gop_size: keyframe interval in frames (default: the encoder's, one keyframe per short clip with x264).
        faststart: put the mp4 index first (so a truncated file still opens, with missing frames).

    The file is encoded under a temporary name beside `path` and renamed to `path` once complete.

    Example:

    ```python
    >>> frames = np.zeros((12, 48, 64, 3), dtype=np.uint8)
    >>> tone = np.sin(2 * np.pi * 220 * np.arange(44100) / 44100).astype(np.float32)[None]
    >>> write_media("/tmp/clip.mp4", frames, tone)  # doctest: +SKIP
    PosixPath('/tmp/clip.mp4')
    ```
    """
    if video is None and audio is None:
        raise ValueError("write_media needs video and/or audio.")
    path = Path(path)
    suffix = path.suffix.lower()
    pcm_container = suffix in (".wav", ".avi")
    video_codec = video_codec or ("mpeg4" if suffix == ".avi" else H264_ENCODER)
    audio_codec = audio_codec or ("pcm_s16le" if pcm_container else "aac")
    # +bitexact keeps library version strings out of the file, so identical input gives identical bytes.
    container_options = {"fflags": "+bitexact"}
    if faststart:
        container_options["movflags"] = "+faststart"

    with atomic_path(path, suffix=suffix) as temporary, \
            av.open(str(temporary), mode="w", options=container_options) as container:
        video_stream = audio_stream = None
        if video is not None:
            video = np.asarray(video, dtype=np.uint8)
            video_stream = container.add_stream(video_codec, rate=fps)
            video_stream.height, video_stream.width = video.shape[1:3]
            video_stream.pix_fmt = "yuv420p"
            if gop_size is not None:
                video_stream.codec_context.gop_size = gop_size
            options = video_options if video_options is not None else _default_options(video_codec)
            video_stream.options = {**_reproducible_options(video_codec), **options}
        if audio is not None:
            audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
            layout = {1: "mono", 2: "stereo"}[audio.shape[0]]
            audio_stream = container.add_stream(audio_codec, rate=sample_rate, layout=layout)
            if audio_codec == "aac":
                audio_stream.bit_rate = audio_bitrate
                audio_options = {"aac_coder": "fast", "aac_pns": "0"} if audio_options is None else audio_options
            audio_stream.options = dict(audio_options or {})

        if video_stream is not None:
            for index, image in enumerate(video):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = index
                container.mux(video_stream.encode(frame))
            container.mux(video_stream.encode(None))
        if audio_stream is not None:
            # Feed encoder-sized chunks; PyAV re-frames anyway, fixed chunks keep the output reproducible.
            chunk = 1024
            for offset in range(0, audio.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, offset : offset + chunk]), format="fltp", layout=layout
                )
                frame.sample_rate = sample_rate
                frame.pts = offset
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode(None))
    return path


_WAVETABLE_SIZE = 4096


def _voice(cue: AudioCue, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A mono speech-like signal: harmonics of a moving fundamental, syllable envelope, breath noise."""
    t = np.arange(num_samples) / sample_rate
    progress = t / max(t[-1], 1e-9)
    f0 = cue.f0 * rng.uniform(0.95, 1.05)
    contour = {
        "flat": np.ones_like(t),
        "rise": 1.0 + 0.45 * progress,
        "fall": 1.0 - 0.3 * progress,
        "bell": 1.0 + 0.25 * np.sin(np.pi * progress),
        "vibrato": 1.0 + 0.06 * np.sin(2 * np.pi * 7.0 * t),
    }[cue.contour]
    cycles = np.cumsum(f0 * contour) / sample_rate  # phase of the fundamental, in periods
    # One period of the harmonic waveform (4096 points), looked up by phase: ~10x cheaper than summing sines.
    table_phase = np.arange(_WAVETABLE_SIZE) / _WAVETABLE_SIZE * 2 * np.pi
    period = sum(
        np.sin(k * table_phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, cue.harmonics + 1)
    )
    voiced = period[(cycles * _WAVETABLE_SIZE).astype(np.int64) % _WAVETABLE_SIZE]
    syllables = np.clip(np.sin(2 * np.pi * cue.syllable_rate * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 0.5
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.03, 0, 1)  # no click at either end
    signal = voiced * (0.25 + 0.75 * syllables) * fade
    signal /= np.abs(signal).max() + 1e-9
    snr_db = rng.uniform(8.0, 20.0)
    noise = rng.standard_normal(num_samples) * np.sqrt(np.mean(signal**2) / 10 ** (snr_db / 10))
    return (signal + noise) * rng.uniform(0.25, 0.6)


def _stereo(mono: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Unequal channels, so a wrong downmix (sum, (L+R)/sqrt(2), one channel) changes the level.
    right_gain = rng.uniform(0.5, 1.0)
    return np.stack([mono, right_gain * mono]).astype(np.float32)


def _scene(cue: VideoCue, num_frames: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """`uint8 (num_frames, height, width, 3)`: tinted background, a moving square, pixel noise."""
    width, height = size
    hue = ((cue.hue + rng.uniform(-8, 8)) % 360) / 360
    background = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 0.8), rng.uniform(0.55, 0.85))) * 255
    square_colour = rng.uniform(170, 250, size=3)
    side0 = int(min(width, height) * rng.uniform(0.28, 0.36))
    cx0, cy0 = width / 2 + rng.uniform(-6, 6), height / 2 + rng.uniform(-4, 4)
    phase = rng.uniform(0, 2 * np.pi)
    frames = np.empty((num_frames, height, width, 3), dtype=np.float32)
    for i in range(num_frames):
        s = i / max(num_frames - 1, 1)  # 0 -> 1 over the clip
        cx, cy, side = cx0, cy0, side0
        if cue.motion == "shake":
            cx += 0.12 * width * np.sin(2 * np.pi * 4.0 * s + phase)  # four shakes per clip
        elif cue.motion == "drift_left":
            cx -= 0.3 * width * s
        elif cue.motion == "tremble":
            cx, cy = cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 2)
        elif cue.motion == "grow":
            side = int(side0 * (0.6 + 0.9 * s))
        elif cue.motion == "bounce":
            cy -= 0.25 * height * abs(np.sin(2 * np.pi * s + phase))
        elif cue.motion == "sink":
            cy += 0.3 * height * s
        frame = frames[i]
        frame[:] = background
        top, left = int(round(cy - side / 2)), int(round(cx - side / 2))
        frame[max(top, 0) : max(top + side, 0), max(left, 0) : max(left + side, 0)] = square_colour
    frames *= rng.uniform(0.9, 1.1, size=(num_frames, 1, 1, 1))  # flicker
    frames += rng.normal(0.0, 8.0, size=frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# The corpus plan (everything but the media), drawn from one generator so that it is reproducible
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Utterance:
    split: str
    dialogue_id: int
    utterance_id: int
    speaker: str
    text: str
    emotion: str
    sentiment: str
    season: int
    episode: int
    start: float
    end: float
    num_frames: int
    text_cue: str  # the group the text came from
    audio_cue: str  # the class whose voice the audio has
    video_cue: str  # the class whose picture the video shows

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue_id}_utt{self.utterance_id}.mp4"

    @property
    def relative_path(self) -> str:
        return f"{MELD_SPLITS[self.split][1]}/{self.clip_name}"


def _split_sizes(num_dialogues: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(num_dialogues, Mapping):
        sizes = {split: int(num_dialogues[split]) for split in MELD_SPLITS}
    else:
        dev = max(1, round(num_dialogues * SPLIT_SHARES["dev"]))
        test = max(1, round(num_dialogues * SPLIT_SHARES["test"]))
        sizes = {"train": num_dialogues - dev - test, "dev": dev, "test": test}
    if min(sizes.values()) < 1:
        raise ValueError(f"Every split needs at least one dialogue, got {sizes}; use num_dialogues >= 3.")
    return sizes


def _corrupt(true_value: str, choices: Sequence[str], probability: float, rng: np.random.Generator) -> str:
    """`true_value`, or with `probability` a different value drawn uniformly from `choices`."""
    if rng.random() >= probability:
        return true_value
    others = [c for c in choices if c != true_value]
    return others[rng.integers(len(others))]


def _timestamp(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    return f"{millis // 3600000:02d}:{millis // 60000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def _line(group: str, listener: str, rng: np.random.Generator) -> str:
    template = TEXT_TEMPLATES[group][rng.integers(len(TEXT_TEMPLATES[group]))]
    slots = {slot: words[rng.integers(len(words))] for slot, words in TEXT_SLOTS.items()}
    opener = TEXT_OPENERS[rng.integers(len(TEXT_OPENERS))]
    text = template.format(name=listener, **slots)
    if opener and not (text.startswith(("I ", "I’", "I'"))):
        text = text[0].lower() + text[1:]  # "Well, what time is it?" but "Well, I love it"
    return opener + text


def _ensure_every_class(emotions: list[str], rng: np.random.Generator) -> None:
    # Relabel draws of the most frequent class until each class has at least one utterance.
    for emotion in EMOTIONS:
        if emotion not in emotions:
            most = Counter(emotions).most_common(1)[0][0]
            positions = [i for i, e in enumerate(emotions) if e == most]
            emotions[positions[rng.integers(len(positions))]] = emotion


def _plan_split(
    split: str,
    num_dialogues: int,
    rng: np.random.Generator,
    class_weights: Mapping[str, float],
    noise: Mapping[str, float],
    fps: int,
    frames_range: tuple[int, int],
) -> list[_Utterance]:
    turns = [int(rng.integers(2, 9)) for _ in range(num_dialogues)]
    while sum(turns) < len(EMOTIONS):  # room for every class
        turns[int(np.argmin(turns))] += 1
    probabilities = np.array([class_weights[e] for e in EMOTIONS], dtype=float)
    emotions = [EMOTIONS[i] for i in rng.choice(len(EMOTIONS), size=sum(turns), p=probabilities / probabilities.sum())]
    _ensure_every_class(emotions, rng)

    # Like MELD's train ID 60, one train Dialogue_ID is absent: loaders must not assume contiguous ids.
    dialogue_ids = list(range(num_dialogues + (split == "train" and num_dialogues > 4)))
    if len(dialogue_ids) > num_dialogues:
        dialogue_ids.pop(int(rng.integers(1, len(dialogue_ids) - 1)))

    utterances, cursor = [], 0
    for dialogue_id, num_turns in zip(dialogue_ids, turns):
        cast = [str(n) for n in rng.choice(SPEAKER_NAMES, size=int(rng.integers(2, 5)), replace=False)]
        # Like MELD, some dialogues skip Utterance_IDs (start at 1, or jump): build names from the ids.
        utterance_ids = list(range(num_turns + 2))
        gap = rng.random()
        if gap < 0.08:
            utterance_ids = utterance_ids[1:]
        elif gap < 0.2 and num_turns > 2:
            skip_at = int(rng.integers(1, num_turns))
            del utterance_ids[skip_at : skip_at + int(rng.integers(1, 3))]
        season, episode = int(rng.integers(1, 11)), int(rng.integers(1, 25))
        clock = rng.uniform(60, 1200)
        speaker = cast[0]
        for utterance_id in utterance_ids[:num_turns]:
            if utterance_id != utterance_ids[0] and rng.random() < 0.8:
                speaker = cast[(cast.index(speaker) + 1 + int(rng.integers(len(cast) - 1))) % len(cast)]
            listener = next(name for name in cast if name != speaker)
            emotion = emotions[cursor]
            cursor += 1
            text_cue = _corrupt(_GROUP_OF[emotion], list(TEXT_GROUPS), noise["text"], rng)
            sentiment = SENTIMENTS.get(emotion) or ("positive" if rng.random() < 0.4 else "negative")
            num_frames = int(rng.integers(frames_range[0], frames_range[1] + 1))
            start = clock + rng.uniform(0.2, 1.5)
            clock = start + num_frames / fps
            utterances.append(
                _Utterance(
                    split=split, dialogue_id=dialogue_id, utterance_id=utterance_id, speaker=speaker,
                    text=_line(text_cue, listener, rng), emotion=emotion, sentiment=sentiment, season=season,
                    episode=episode, start=start, end=clock, num_frames=num_frames, text_cue=text_cue,
                    audio_cue=_corrupt(emotion, EMOTIONS, noise["audio"], rng),
                    video_cue=_corrupt(emotion, EMOTIONS, noise["video"], rng),
                )
            )
    return utterances


def _write_csv(path: Path, utterances: Sequence[_Utterance]) -> None:
    # MELD's CSVs on GitHub are UTF-8 with CRLF line endings; csv's default terminator is CRLF.
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MELD_COLUMNS)
        for number, u in enumerate(utterances, start=1):
            writer.writerow([number, u.text, u.speaker, u.emotion, u.sentiment, u.dialogue_id, u.utterance_id,
                             u.season, u.episode, _timestamp(u.start), _timestamp(u.end)])


def _clear(root: Path) -> None:
    """Remove a synthetic corpus's files from `root`, marking it incomplete first (a kill midway leaves it so)."""
    atomic_write_text(root / INCOMPLETE_NAME, "{}\n")  # matches no arguments: nothing left here is reused
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    for csv_name, media_dir in MELD_SPLITS.values():
        (root / csv_name).unlink(missing_ok=True)
        shutil.rmtree(root / media_dir, ignore_errors=True)
    remove_stale_temporaries(root)


def _prepare_root(root: Path, overwrite: bool, arguments: dict) -> bool:
    """Make `root` ready for a corpus generated with `arguments`; `True` when the clips already there are reused.

    An interrupted generation (`INCOMPLETE_NAME` present) is finished when it had the same arguments, and started
    again otherwise; in both cases without `overwrite`, since the folder holds only an unfinished corpus.
    """
    marker = root / INCOMPLETE_NAME
    resume = False
    remove_stale_temporaries(root, INCOMPLETE_NAME)  # killed while writing the marker: nothing else was written
    if marker.is_file():
        try:
            earlier = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = None
        resume = earlier == arguments
        logger.warning("%s holds an incomplete synthetic corpus (its generation was interrupted): %s.", root,
                       "finishing it" if resume else "generating it again")
        if resume:
            remove_stale_temporaries(root)
            for _, media_dir in MELD_SPLITS.values():
                remove_stale_temporaries(root / media_dir)
        else:
            _clear(root)
    elif root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty. Pass overwrite=True (--overwrite) or choose another folder.")
        if not (root / MANIFEST_NAME).is_file():
            raise FileExistsError(
                f"{root} is not empty and has no {MANIFEST_NAME}, so it is not a synthetic corpus; refusing to "
                "overwrite it. Choose an empty or new folder."
            )
        _clear(root)
    if not resume:
        atomic_write_text(marker, json.dumps(arguments, sort_keys=True) + "\n")
    for _, media_dir in MELD_SPLITS.values():
        (root / media_dir).mkdir(parents=True, exist_ok=True)
    return resume


def make_synthetic_corpus(
    root: str | Path,
    *,
    num_dialogues: int | Mapping[str, int] = DEFAULT_NUM_DIALOGUES,
    seed: int = 0,
    text_noise: float = 0.1,
    audio_noise: float = 0.25,
    video_noise: float = 0.25,
    class_weights: Mapping[str, float] | None = None,
    frame_size: tuple[int, int] = (64, 48),
    fps: int = 12,
    frames_range: tuple[int, int] = (12, 19),
    sample_rate: int = 44100,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a MELD.Raw-shaped synthetic corpus to `root` and return `root`.

    Args:
        root: output folder (created; must be empty unless `overwrite`).
        num_dialogues: total dialogues, split 2/3 train, 2/15 dev, 1/5 test; or a mapping per split. Dialogues
            have 2-8 turns (5 on average): the default 125 (83 / 17 / 25) gives ~415 train, ~85 dev, ~125 test utterances.
        seed: everything (CSVs and media bytes) is a function of the seed and the other arguments.
        text_noise: probability that an utterance's text comes from another class group.
        audio_noise: probability that the audio carries another class's voice.
        video_noise: probability that the video shows another class's picture.
        class_weights: class frequencies (normalised); defaults to a MELD-like skew with neutral first.
        frame_size: `(width, height)`, both even.
        fps: video frame rate.
        frames_range: inclusive range of frames per clip (clip length = frames / fps: 1.0-1.6 s by default).
        sample_rate: audio rate of the (stereo AAC) soundtrack.
        overwrite: replace an earlier synthetic corpus in `root`. An incomplete one (its generation was killed)
            is finished, or generated again if its arguments differ, without it.
        progress: show a progress bar over the clips.

    Returns:
        `Path(root)`. `root/corpus.json` records the seed, the arguments, counts per split and class, the missing
        and corrupt clips, and each utterance's text/audio/video cue.

    Example:

    ```python
    >>> root = make_synthetic_corpus("/tmp/tiny_meld", num_dialogues=12, seed=1, progress=False)  # doctest: +SKIP
    >>> json.loads((root / "corpus.json").read_text())["missing"]  # doctest: +SKIP
    [{'split': 'dev', 'Dialogue_ID': 1, 'Utterance_ID': 2, 'path': 'dev_splits_complete/dia1_utt2.mp4'}]
    ```
    """
    root = Path(root)
    if any(side % 2 for side in frame_size):
        raise ValueError(f"frame_size must have even sides (yuv420p), got {frame_size}.")
    if frames_range[0] < 1 or frames_range[1] < frames_range[0]:
        raise ValueError(f"frames_range must be (low, high) with 1 <= low <= high, got {frames_range}.")
    class_weights = dict(DEFAULT_CLASS_WEIGHTS if class_weights is None else class_weights)
    if set(class_weights) != set(EMOTIONS) or min(class_weights.values()) <= 0:
        raise ValueError(f"class_weights needs a positive weight for each of {EMOTIONS}, got {class_weights}.")
    noise = {"text": text_noise, "audio": audio_noise, "video": video_noise}
    if not all(0.0 <= p <= 1.0 for p in noise.values()):
        raise ValueError(f"noise probabilities must lie in [0, 1], got {noise}.")
    sizes = _split_sizes(num_dialogues)
    arguments = {
        "num_dialogues": sizes, "text_noise": text_noise, "audio_noise": audio_noise,
        "video_noise": video_noise, "class_weights": class_weights, "frame_size": list(frame_size),
        "fps": fps, "frames_range": list(frames_range), "sample_rate": sample_rate,
        "video_codec": H264_ENCODER, "audio_codec": "aac", "audio_channels": 2,
    }
    marker_arguments = {"generator_version": GENERATOR_VERSION, "seed": seed, **arguments}
    root.mkdir(parents=True, exist_ok=True)
    resume = _prepare_root(root, overwrite, json.loads(json.dumps(marker_arguments, sort_keys=True)))

    rng = np.random.default_rng(seed)
    plan = {
        split: _plan_split(split, sizes[split], rng, class_weights, noise, fps, frames_range) for split in MELD_SPLITS
    }
    # One missing dev clip and one corrupt train clip, like MELD's dev dia110_utt7 and train dia125_utt3.
    missing = plan["dev"][int(rng.integers(1, len(plan["dev"]))) if len(plan["dev"]) > 1 else 0]
    corrupt = plan["train"][int(rng.integers(len(plan["train"])))]

    all_utterances = [u for split in MELD_SPLITS for u in plan[split]]
    for index, u in enumerate(progress_bar(all_utterances, disable=None if progress else True,
                                                    desc="synthetic MELD clips", unit="clip")):
        if u is missing:
            continue
        path = root / u.relative_path
        if resume and path.exists():  # written whole by an interrupted generation with the same arguments
            continue
        # Media randomness depends only on (seed, position), not on how many draws the plan made.
        media_rng = np.random.default_rng([seed, index])
        num_samples = int(round(u.num_frames / fps * sample_rate))
        audio = _stereo(_voice(AUDIO_CUES[u.audio_cue], num_samples, sample_rate, media_rng), media_rng)
        video = _scene(VIDEO_CUES[u.video_cue], u.num_frames, frame_size, media_rng)
        if u is corrupt:
            # Keep the head of a real clip: the mp4 index sits at the end, so the file cannot be opened.
            with atomic_path(path, suffix=path.suffix) as whole:
                write_media(whole, video, audio, fps=fps, sample_rate=sample_rate)
                whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
        else:
            write_media(path, video, audio, fps=fps, sample_rate=sample_rate)

    manifest = {
        "generator": "telme_hf.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "arguments": arguments,
        "splits": {
            split: {
                "csv": MELD_SPLITS[split][0],
                "media_dir": MELD_SPLITS[split][1],
                "dialogues": len({u.dialogue_id for u in plan[split]}),
                "utterances": len(plan[split]),
                "emotions": {e: sum(u.emotion == e for u in plan[split]) for e in EMOTIONS},
            }
            for split in MELD_SPLITS
        },
        "missing": [_clip_record(missing)],
        "corrupt": [_clip_record(corrupt)],
        "cues": {
            "text_groups": {group: list(members) for group, members in TEXT_GROUPS.items()},
            "audio": {e: vars(c) for e, c in AUDIO_CUES.items()},
            "video": {e: vars(c) for e, c in VIDEO_CUES.items()},
        },
        "utterances": [
            {**_clip_record(u), "emotion": u.emotion, "text_cue": u.text_cue, "audio_cue": u.audio_cue,
             "video_cue": u.video_cue}
            for u in all_utterances
        ],
    }
    # The index goes in after the media it lists, the train CSV last (the recipe takes it for a generated corpus),
    # and the marker goes once everything is in place: a kill at any point leaves the marker, and the next
    # generation here finishes the corpus.
    for split in ("dev", "test"):
        _write_csv(root / MELD_SPLITS[split][0], plan[split])
    atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    _write_csv(root / MELD_SPLITS["train"][0], plan["train"])
    (root / INCOMPLETE_NAME).unlink()
    return root


def synthetic_corpus_is_complete(root: str | Path) -> bool:
    """Whether `root` holds a synthetic corpus whose generation finished (`make_synthetic_corpus` ran to its end)."""
    root = Path(root)
    return (root / MANIFEST_NAME).is_file() and not (root / INCOMPLETE_NAME).exists()


def _clip_record(u: _Utterance) -> dict:
    return {"split": u.split, "Dialogue_ID": u.dialogue_id, "Utterance_ID": u.utterance_id, "path": u.relative_path}
