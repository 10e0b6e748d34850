# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Recordings: one audio or video file and its transcript in, one emotion per utterance out.

A transcript (SRT, WebVTT or a `start, end, speaker, text` CSV, or cues from a speech recogniser) becomes a dialogue
whose turns each name their window of the one file (`{"media": path, "start": s, "end": e}`); the pipeline decodes a
window when it reaches that turn, so memory stays flat however long the recording. The predictions can be written
back as subtitles with the emotion in each cue, or drawn as a timeline per speaker.

Example:

```python
>>> rows = predict_recording("telme-demo/final", "talk.mp4", "talk.srt")  # doctest: +SKIP
>>> write_emotion_subtitles(rows, "talk.emotions.vtt")  # doctest: +SKIP
>>> plot_timeline(rows, "talk.png")  # doctest: +SKIP
```
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_open, atomic_path
from ..logging import get_logger
from ..modeling.media_telme import AudioDecodeOptions, CorruptMediaError, EmptyMediaError, decode_clip


__all__ = [
    "DEFAULT_ASR_MODEL",
    "Cue",
    "TranscriptError",
    "check_cues",
    "emotion_subtitles",
    "write_example_recording",
    "plot_timeline",
    "predict_recording",
    "read_transcript",
    "recording_dialogue",
    "transcribe",
    "write_emotion_subtitles",
]

logger = get_logger(__name__)

DEFAULT_ASR_MODEL = "openai/whisper-small"
# The speaker of a cue that names none.
DEFAULT_SPEAKER = "Speaker"
SUBTITLE_FORMATS = ("srt", "vtt")
# A cue may end this much after the recording's header duration (subtitle times and headers both round).
END_TOLERANCE_SECONDS = 0.5
# Speech recognition: each window of the recording is this long (Whisper reads 30 s), and a segment shorter than
# the last constant is too short to predict from.
ASR_WINDOW_SECONDS = 30.0
_ASR_EDGE_SECONDS = 1.0
_ASR_MIN_SECONDS = 0.1
# Utterances decoded and predicted together: enough for full batches, few enough to keep memory flat.
_BLOCK_UTTERANCES = 32

_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*?)\s*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_BLANK_LINE = re.compile(r"\\N\s*\\N")
# `ROSS: ...` or `- Dr. Green: ...`: up to three words before a colon and a space.
_NAME_PREFIX = re.compile(
    r"^\s*(?:-\s*)?(?P<name>[^\W\d_][\w'’.\-]*(?: [\w'’.\-]+){0,2})\s*:(?:\s+|$)(?P<text>.*)$", re.DOTALL)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")


class TranscriptError(ValueError):
    """A transcript that cannot become a dialogue: names the file, the cue (number and times) and the fix."""


@dataclass(frozen=True)
class Cue:
    """One utterance of a recording: its number in the transcript (from 1), its window in seconds, who says it, the
    words, and where they come from (`"transcript"` or `"asr"`)."""

    index: int
    start: float
    end: float
    speaker: str
    text: str
    source: str = "transcript"


def _clock(seconds: float) -> str:
    """`83.5` → `"00:01:23.500"`."""
    milliseconds = int(round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _span(cue: Cue) -> str:
    return f"{_clock(cue.start)} --> {_clock(cue.end)}"


def _cue_error(source: Any, cue: Cue, problem: str, fix: str) -> TranscriptError:
    return TranscriptError(f"{source}, cue {cue.index} ({_span(cue)}): {problem}. {fix}")


def _speaker_and_text(text: str, default: str) -> tuple[str, str]:
    """A cue's speaker (its `NAME:` prefix, else `default`) and its words."""
    match = _NAME_PREFIX.match(text)
    return (match["name"].strip(), match["text"].strip()) if match else (default, text)


def _subtitle_cues(path: Path, fmt: str, default: str) -> list[Cue]:
    import pysubs2
    from pysubs2.formats import get_format_class

    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise TranscriptError(f"{path} is not UTF-8 text ({error}). Save it as UTF-8.") from None
    # pysubs2 reads a timing line it cannot parse as words of the cue before: find such lines first.
    stamp = get_format_class(fmt).TIMESTAMP
    count = 0
    for number, line in enumerate(raw.splitlines(), start=1):
        found = len(stamp.findall(line))
        if found == 2:
            count += 1
        elif "-->" in line:
            example = "00:01:02,500 --> 00:01:04,000" if fmt == "srt" else "00:01:02.500 --> 00:01:04.000"
            raise TranscriptError(f"{path}, line {number}: the times of cue {count + 1}, {line.strip()!r}, cannot be "
                                  f"read. Write them as {example}.")
    subs = pysubs2.SSAFile.from_string(raw, format_=fmt, keep_html_tags=True)
    cues = []
    for number, event in enumerate(subs, start=1):
        # A cue's text ends at its first blank line: what follows is a WebVTT NOTE or the next cue's identifier.
        text = _BLANK_LINE.split(event.text, maxsplit=1)[0]
        voices = list(dict.fromkeys(name.strip() for name in _VOICE.findall(text) if name.strip()))
        text = re.sub(r"\\[Nnh]", " ", _TAG.sub("", text))
        text = " ".join((html.unescape(text) if fmt == "vtt" else text).split())
        cue = Cue(number, event.start / 1000, event.end / 1000, default, text)
        if len(voices) > 1:
            raise _cue_error(path, cue, f"several voices ({', '.join(voices)}) in one cue",
                             "Split it into one cue per speaker")
        speaker, text = (html.unescape(voices[0]), text) if voices else _speaker_and_text(text, default)
        cues.append(Cue(number, cue.start, cue.end, speaker, text))
    return cues


def _seconds(value: str) -> float:
    """A time cell: seconds (`83.5`) or a clock (`1:23.5`, `00:01:23,500`); `ValueError` otherwise."""
    value = value.strip()
    match = _CLOCK.match(value)
    seconds = (int(match[1] or 0) * 3600 + int(match[2]) * 60 + float(match[3].replace(",", "."))) if match else \
        float(value)
    if not math.isfinite(seconds):
        raise ValueError(value)
    return seconds


def _csv_cues(path: Path, default: str) -> list[Cue]:
    from ..data.dialogues import read_csv_rows

    rows = read_csv_rows(path, ()) if path.read_bytes().strip() else []
    cues = []
    for number, row in enumerate(rows, start=1):
        values = {name.strip().lower(): (value or "") for name, value in row.values.items()}
        missing = [name for name in ("start", "end", "text") if name not in values]
        if missing:
            raise TranscriptError(f"{path}: no {', '.join(missing)} column. A transcript CSV has the columns start, "
                                  "end, speaker, text (times in seconds or as 00:01:02.500).")
        times = []
        for name in ("start", "end"):
            try:
                times.append(_seconds(values[name]))
            except ValueError:
                raise TranscriptError(f"{path}, line {row.line}: the {name} of cue {number}, {values[name]!r}, is "
                                      "not a time. Write seconds (62.5) or a clock (00:01:02.500).") from None
        text = " ".join(values["text"].split())
        speaker = values.get("speaker", "").strip()
        if not speaker:
            speaker, text = _speaker_and_text(text, default)
        cues.append(Cue(number, times[0], times[1], speaker, text))
    return cues


def check_cues(cues: Sequence[Cue], source: Any) -> None:
    """Raise a `TranscriptError` for a cue without words, ending before it starts, out of order or overlapping the
    cue before, or for a transcript without cues."""
    if not cues:
        raise TranscriptError(f"{source} has no cue. Give a transcript with at least one timed utterance, or none to "
                              "have the speech recognised.")
    previous = None
    for cue in cues:
        if not cue.text.strip():
            raise _cue_error(source, cue, "no words", "Write its words, or delete the cue")
        if cue.start < 0:
            raise _cue_error(source, cue, "starts before 0", "Fix its start")
        if cue.end <= cue.start:
            raise _cue_error(source, cue, "does not end after it starts", "Fix its times")
        if previous is not None and cue.start < previous.start:
            raise _cue_error(source, cue, f"starts before cue {previous.index} ({_span(previous)})",
                             "Sort the cues by start time")
        if previous is not None and cue.start < previous.end - 5e-4:
            raise _cue_error(source, cue, f"overlaps cue {previous.index} ({_span(previous)})",
                             f"Start it at {_clock(previous.end)} or later, or merge the two cues")
        previous = cue


def read_transcript(path: str | os.PathLike, *, speaker: str = DEFAULT_SPEAKER) -> list[Cue]:
    """Read a transcript into cues, one per utterance, checked.

    SRT and WebVTT are parsed with pysubs2; a CSV needs the columns `start`, `end` and `text` (times in seconds or
    as clocks, `speaker` optional). A cue's speaker is its WebVTT voice (`<v Ross>`), else its `NAME:` prefix, else
    its CSV `speaker` cell, else `speaker`. Markup is removed and lines are joined.

    Args:
        path: a `.srt`, `.vtt` or `.csv` file.
        speaker: the speaker of cues that name none.

    Returns:
        The cues in order.

    Raises:
        TranscriptError: unreadable times, a cue without words, ending before it starts, out of order or
            overlapping the one before, several voices in one cue, or no cue at all; the message names the file,
            the cue and the fix.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Transcript {path} not found.")
    fmt = path.suffix.lower().lstrip(".")
    if fmt in SUBTITLE_FORMATS:
        cues = _subtitle_cues(path, fmt, speaker)
    elif fmt == "csv":
        cues = _csv_cues(path, speaker)
    else:
        raise TranscriptError(f"{path}: unknown transcript format {path.suffix!r}. Give a .srt, .vtt or .csv file.")
    check_cues(cues, path)
    return cues


@dataclass(frozen=True)
class _Streams:
    duration: float | None
    audio: bool
    video: bool


def _probe(recording: str | os.PathLike) -> _Streams:
    """The recording's duration (from its header) and which streams it has; nothing is decoded."""
    import av

    path = os.fspath(recording)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recording {path} not found.")
    try:
        with av.open(path) as container:
            duration = container.duration / av.time_base if container.duration is not None else None
            streams = _Streams(duration, bool(container.streams.audio), bool(container.streams.video))
    except av.FFmpegError as error:
        raise CorruptMediaError(path, f"PyAV cannot open it ({error})", "Re-encode or replace the recording") from None
    if not (streams.audio or streams.video):
        raise CorruptMediaError(path, "no audio or video stream", "Give an audio or video recording")
    return streams


def recording_dialogue(recording: str | os.PathLike, cues: Sequence[Cue], *,
                       source: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The dialogue of a recording: one pipeline turn per cue, naming its window of the file.

    Each turn is `{"speaker", "text", "media", "start", "end"}`; the pipeline decodes the window when it reaches
    the turn. A recording without video gives `"audio"` instead of `"media"` (and without audio, `"video"`): the
    stream it lacks is zeros, and the prediction's note says so.

    Args:
        recording: the audio or video file.
        cues: its cues ([`read_transcript`] or [`transcribe`]).
        source: the transcript's name, for messages.

    Returns:
        The turns, in the cues' order.

    Raises:
        TranscriptError: a cue that starts after the recording's end or ends more than half a second after it.
    """
    streams = _probe(recording)
    name = source or "the transcript"
    check_cues(cues, name)
    if streams.duration is not None:
        for cue in cues:
            if cue.start >= streams.duration or cue.end > streams.duration + END_TOLERANCE_SECONDS:
                raise _cue_error(name, cue, f"ends after the recording {os.fspath(recording)} "
                                 f"({_clock(streams.duration)})", "Fix its times, or give the recording it belongs to")
    key = "media" if streams.audio and streams.video else "audio" if streams.audio else "video"
    if key != "media":
        missing = "video" if key == "audio" else "audio"
        logger.warning("%s has no %s stream: every utterance gets zeros for its %s.", os.fspath(recording), missing,
                       missing)
    path = os.path.abspath(os.fspath(recording))
    return [{"speaker": cue.speaker, "text": cue.text, key: path, "start": cue.start, "end": cue.end} for cue in cues]


def _asr_pipeline(model: Any, device: Any) -> Any:
    if not isinstance(model, (str, os.PathLike)):
        return model  # a ready pipeline (or anything called like one)
    from transformers import pipeline

    return pipeline("automatic-speech-recognition", model=os.fspath(model), device=device)


def transcribe(recording: str | os.PathLike, model: Any = DEFAULT_ASR_MODEL, device: Any = None, *,
               speaker: str = DEFAULT_SPEAKER, window_seconds: float = ASR_WINDOW_SECONDS,
               generate_kwargs: Mapping[str, Any] | None = None) -> list[Cue]:
    """Cues from speech recognition (`source="asr"`), for a recording without a transcript.

    The audio is decoded and recognised one window at a time, so memory stays flat. A segment that runs into the
    end of its window is recognised again at the start of the next one, so that words are not cut in two.

    Args:
        recording: the audio or video file.
        model: a Hub id or folder of a speech recognition model with timestamps (Whisper), or a ready
            `pipeline("automatic-speech-recognition")`.
        device: where the model runs (`"cpu"`, `"cuda"`, ...), for a model given by name.
        speaker: every cue's speaker (the recogniser does not tell voices apart).
        window_seconds: the length of each window.
        generate_kwargs: passed to the model's `generate` (e.g. `{"language": "en"}`).

    Returns:
        The cues in order, numbered from 1; segments without words or shorter than 0.1 s are left out (logged).
    """
    if not window_seconds > 2 * _ASR_EDGE_SECONDS:
        raise ValueError(f"window_seconds must be more than {2 * _ASR_EDGE_SECONDS:g}, got {window_seconds!r}.")
    streams = _probe(recording)
    if not streams.audio:
        raise TranscriptError(f"{os.fspath(recording)} has no audio stream to recognise. Give a transcript.")
    asr = _asr_pipeline(model, device)
    rate = int(getattr(getattr(asr, "feature_extractor", None), "sampling_rate", 16000))
    options = AudioDecodeOptions(sampling_rate=rate)
    total = streams.duration if streams.duration is not None else math.inf
    extra = {"generate_kwargs": dict(generate_kwargs)} if generate_kwargs else {}
    cues: list[Cue] = []
    start = 0.0
    while start < total - _ASR_MIN_SECONDS:
        end = min(start + window_seconds, total)
        try:
            audio = decode_clip(recording, options, None, start=start, end=end).audio
        except EmptyMediaError:
            break  # past the last sample of a recording without a declared duration
        output = asr({"raw": audio, "sampling_rate": rate}, return_timestamps=True, **extra)
        length = len(audio) / rate
        segments = []  # (start, end) in the window, words
        for chunk in output.get("chunks", []):
            first, last = chunk["timestamp"]
            first, last = float(first or 0.0), length if last is None else min(float(last), length)
            if first < length:  # a random or confused model may place segments past the audio
                segments.append((first, last, " ".join(str(chunk["text"]).split())))
        following = start + length
        if end < total and length >= window_seconds - 1e-3 and len(segments) > 1 and \
                segments[-1][1] >= length - _ASR_EDGE_SECONDS and _ASR_EDGE_SECONDS <= segments[-1][0] < length:
            following = start + segments.pop()[0]  # cut by the window's end: recognised whole in the next window
        for first, last, text in segments:
            first = max(start + first, cues[-1].end if cues else 0.0)
            last = min(start + last, following)
            if not text or last - first < _ASR_MIN_SECONDS:
                logger.info("Speech recognition: segment %s-%s (%r) left out: %s.", _clock(first), _clock(last), text,
                            "no words" if not text else "shorter than 0.1 s or past the window's end")
                continue
            cues.append(Cue(len(cues) + 1, first, last, speaker, text, source="asr"))
        if following <= start:
            break
        start = following
    if not cues:
        raise TranscriptError(f"Speech recognition found no words in {os.fspath(recording)}. Give a transcript.")
    return cues


def _load(model: Any, device: Any) -> tuple[Any, Any]:
    """The model and processor of a pipeline, a `(model, processor)` pair, or a checkpoint folder or Hub id."""
    if isinstance(model, (str, os.PathLike)):
        from .prediction import load_model_and_processor

        return load_model_and_processor(model, device)
    if isinstance(model, tuple):
        return model
    if getattr(model, "processor", None) is None:
        raise TypeError(f"Pass an emotion-recognition-in-conversation pipeline, a (model, processor) pair or a "
                        f"checkpoint folder or Hub id, got {type(model).__name__}.")
    return model.model, model.processor


def predict_recording(model: Any, recording: str | os.PathLike, transcript: str | os.PathLike | Sequence[Cue] | None
                      = None, *, asr_model: Any = None, on_bad_media: str = "skip", batch_size: int = 4,
                      top_k: int | None = None, device: Any = None, cache: Any = None,
                      cli_hint: bool = False) -> list[dict[str, Any]]:
    """Predict the emotion of every utterance of a recording.

    Utterances are decoded and predicted a block at a time, each from the dialogue up to it (as far back as the
    text model reads), so time grows linearly with the recording and memory stays flat. A cue longer than the
    processor's `max_media_seconds` is bad media ("too long") and goes by `on_bad_media`, as any utterance.

    Args:
        model: an emotion-recognition-in-conversation pipeline, a `(model, processor)` pair, or a checkpoint folder
            or Hub id (loaded on `device`).
        recording: the audio or video file.
        transcript: a `.srt`, `.vtt` or `.csv` file, or cues; `None` recognises the speech with `asr_model`.
        asr_model: the speech recogniser when there is no transcript (default `DEFAULT_ASR_MODEL`), see
            [`transcribe`].
        on_bad_media: `"skip"` (text alone), `"zeros"` or `"error"`, for an utterance whose media cannot be used.
        batch_size: utterances per forward pass.
        top_k: keep only the `top_k` most probable labels in `scores` and `text_scores`.
        device: where a model given by name runs (both models).
        cache: a `MediaCache` or its folder, to decode each window once across calls.
        cli_hint: spell bad-media hints as the `telme` command's `--on-bad-media`.

    Returns:
        One dict per cue: the pipeline's (`turn`, `speaker`, `text`, `label`, `score`, `scores`, `modalities`,
        `note`, the text-alone `text_label`/`text_score`/`text_scores` and `shift`) with the cue's number, `start`
        and `end` in seconds, and `source` (`"transcript"` or `"asr"`).
    """
    from ..modeling.pipeline_telme import format_predictions, predict_logits
    from ..modeling.processing_telme import first_appearance_indices
    from .prediction import prepare_dialogue

    if transcript is not None and asr_model is not None:
        raise ValueError("Give a transcript or a speech recognition model, not both.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if isinstance(transcript, (str, os.PathLike)):
        source, cues = os.fspath(transcript), read_transcript(transcript)
    elif transcript is None:
        source, cues = "speech recognition", transcribe(recording, asr_model or DEFAULT_ASR_MODEL, device)
    else:
        source, cues = "the cues", list(transcript)
    turns = recording_dialogue(recording, cues, source=source)
    model, processor = _load(model, device)

    # Each turn's speaker is numbered over the whole dialogue, so a context that starts later keeps the numbering.
    for turn, index in zip(turns, first_appearance_indices([turn["speaker"] for turn in turns])):
        turn["speaker_index"] = index
    speakers = len({turn["speaker"] for turn in turns})
    if speakers > processor.num_speaker_tokens and not processor.reference_tokenization:
        logger.warning("%s has %d speakers but the model has %d speaker tokens: the extra speakers share <s%d>.",
                       source, speakers, processor.num_speaker_tokens, processor.num_speaker_tokens)
    # Every turn takes at least two tokens (its speaker token and a word), so the text model's last
    # `max_text_length` tokens never reach further back than this many turns.
    history = processor.max_text_length // 2 + 2
    block = batch_size * math.ceil(_BLOCK_UTTERANCES / batch_size)
    rows: list[dict[str, Any]] = []
    for first in range(0, len(turns), block):
        context = [{key: turn[key] for key in ("speaker", "text", "speaker_index")}
                   for turn in turns[max(0, first - history):first]]
        utterances = prepare_dialogue(context + turns[first:first + block], processor, on_bad_media, cache=cache,
                                      source=source, cli_hint=cli_hint)[len(context):]
        outputs = predict_logits(model, processor, utterances, batch_size)
        for offset, row in enumerate(format_predictions(outputs, utterances, model.config.id2label, top_k)):
            cue = cues[first + offset]
            rows.append({**row, "turn": first + offset, "cue": cue.index, "start": cue.start, "end": cue.end,
                         "source": cue.source})
    return rows


def _decoded(path: str, size: tuple[int, int] | None, rate: int) -> tuple[np.ndarray, float, np.ndarray]:
    """A clip's every frame (RGB, resized to `size`), its frame rate, and its audio (mono at `rate`), decoded whole."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = [frame.to_ndarray(format="rgb24", width=size[0], height=size[1]) if size else
                  frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    with av.open(path) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.stack(frames), fps, np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def write_example_recording(dataset, path: str | os.PathLike, max_seconds: float = 120.0, max_speakers: int = 9,
                            fps: int = 12, sample_rate: int = 16000) -> Path | None:
    """Join the clips of a split's first dialogues into one recording, with its transcript as SRT, WebVTT (speakers
    as `<v Name>` tags) and CSV beside it: the input of `telme predict --recording`.

    Args:
        dataset: rows of a corpus split whose utterances each have one clip with both streams (MELD's layout).
        path: the recording to write (`.mp4`); the transcripts take its name with `.srt`, `.vtt` and `.csv`.
        max_seconds: stop adding utterances once the recording is this long.
        max_speakers: stop before a new speaker beyond this many (the model's speaker tokens: 9 in the paper).
        fps, sample_rate: the recording's frame and sample rates.

    Returns:
        The recording, or `None` when the split has no clip to use.
    """
    import csv

    from ..data.synthetic import write_media

    path = Path(path)
    gap = fps // 2  # frames of silence and a still picture between utterances
    size, frames, audio, cues, num_frames, speakers = None, [], [], [], 0, set()
    for row in dataset:
        clip = row.get("video_path")
        if num_frames >= max_seconds * fps or (row["speaker"] not in speakers and len(speakers) == max_speakers):
            break
        if not clip or clip != row.get("audio_path") or not os.path.isfile(clip):
            continue
        try:
            video, clip_fps, wave = _decoded(clip, size, sample_rate)
        except Exception:  # noqa: BLE001 - an unreadable clip of the corpus is left out of the example
            continue
        size = size or (video.shape[2], video.shape[1])
        count = int(min(len(video) / clip_fps, len(wave) / sample_rate) * fps)
        if count < 1:
            continue
        picks = np.minimum((np.arange(count) * clip_fps / fps).astype(int), len(video) - 1)
        start = num_frames + gap
        frames += [np.repeat(video[:1], gap, axis=0), video[picks]]
        num_frames = start + count
        # The audio ends exactly where the frames do (its sample at each frame boundary, rounded).
        audio += [np.zeros(round(start * sample_rate / fps) - sum(map(len, audio)), np.float32),
                  wave[: round(num_frames * sample_rate / fps) - round(start * sample_rate / fps)]]
        speakers.add(row["speaker"])
        cues.append(Cue(len(cues) + 1, round(start / fps, 3), round(num_frames / fps, 3), row["speaker"],
                        row["text"]))
    if not cues:
        return None
    waveform = np.concatenate(audio)
    write_media(path, np.concatenate(frames), np.clip(waveform, -1, 1)[None], fps=fps, sample_rate=sample_rate)
    rows = [{"start": cue.start, "end": cue.end, "speaker": cue.speaker, "text": cue.text, "label": ""}
            for cue in cues]
    for fmt in SUBTITLE_FORMATS:
        with atomic_open(path.with_suffix(f".{fmt}"), "w", encoding="utf-8") as stream:
            stream.write(_subtitles(rows, fmt, labelled=False))
    with atomic_open(path.with_suffix(".csv"), "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["start", "end", "speaker", "text"])
        writer.writerows([cue.start, cue.end, cue.speaker, cue.text] for cue in cues)
    return path


def emotion_subtitles(rows: Sequence[Mapping[str, Any]], format: str) -> str:
    """Predictions as subtitles, the emotion at the start of each cue: `Ross: [anger] We were on a break!` in SRT,
    `<v Ross>[anger] We were on a break!` in WebVTT ([`read_transcript`] reads either back).

    Args:
        rows: [`predict_recording`]'s rows (`start`, `end`, `speaker`, `text`, `label`).
        format: `"srt"` or `"vtt"`.

    Returns:
        The subtitle file's text.
    """
    fmt = str(format).lower()
    if fmt not in SUBTITLE_FORMATS:
        raise ValueError(f"Unknown subtitle format {format!r}; use srt or vtt.")
    missing = next((row for row in rows if row.get("start") is None or row.get("end") is None), None)
    if missing is not None:
        raise ValueError(f"Turn {missing.get('turn', '?')} has no start and end time: subtitles need the times of a "
                         "recording's cues (telme predict --recording FILE --transcript FILE).")
    return _subtitles(rows, fmt)


def _subtitles(rows: Sequence[Mapping[str, Any]], fmt: str, labelled: bool = True) -> str:
    import pysubs2

    subs = pysubs2.SSAFile()
    for row in rows:
        line = f"[{row['label']}] {row['text']}" if labelled else row["text"]
        speaker = row["speaker"] or DEFAULT_SPEAKER
        line = (f"<v {html.escape(speaker)}>{html.escape(line, quote=False)}" if fmt == "vtt"
                else f"{speaker}: {line}")
        subs.append(pysubs2.SSAEvent(start=int(round(row["start"] * 1000)), end=int(round(row["end"] * 1000)),
                                     text=line))
    return subs.to_string(fmt, keep_ssa_tags=True)  # the words exactly, braces included


def write_emotion_subtitles(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike,
                            format: str | None = None) -> Path:
    """Write [`emotion_subtitles`] to `path` (whole or not at all), in `format` or else the file's suffix.

    Returns:
        The written file.
    """
    path = Path(path)
    text = emotion_subtitles(rows, format or path.suffix.lstrip(".") or "?")
    with atomic_open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    return path


def plot_timeline(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Save an emotion timeline as a PNG: one lane per speaker, each utterance a bar over its time, coloured by its
    emotion and as opaque as its score; an outlined bar is one whose audio and video changed the text-alone label.

    Args:
        rows: [`predict_recording`]'s rows (`start`, `end`, `speaker`, `label`, `score`, optionally `shift`).
        path: the PNG to write (whole or not at all).
        title: the figure's title.

    Returns:
        The written file.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not rows:
        raise ValueError("No predictions to plot.")
    speakers = list(dict.fromkeys(str(row["speaker"]) for row in rows))
    first_scores = rows[0].get("scores") or {}
    labels = list(dict.fromkeys([*first_scores, *(row["label"] for row in rows)]))
    palette = colormaps["tab10"]
    colours = {label: palette(i % 10) for i, label in enumerate(labels)}
    end = max(float(row["end"]) for row in rows)
    unit, scale = ("min", 60.0) if end > 600 else ("s", 1.0)

    figure = Figure(figsize=(min(6.0 + end / 60.0, 20.0), 1.2 + 0.6 * len(speakers)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    changed_any = False
    for row in rows:
        lane = speakers.index(str(row["speaker"]))
        changed = bool((row.get("shift") or {}).get("changed_label"))
        changed_any |= changed
        start = float(row["start"]) / scale
        axes.broken_barh([(start, float(row["end"]) / scale - start)], (lane - 0.4, 0.8),
                         facecolors=colours[row["label"]], alpha=0.3 + 0.7 * float(row.get("score", 1.0)),
                         edgecolors="black" if changed else "none", linewidth=1.0)
    axes.set_yticks(range(len(speakers)), labels=speakers)
    axes.set_ylim(len(speakers) - 0.5, -0.5)
    axes.set_xlim(0, end / scale)
    axes.set_xlabel(f"time ({unit})")
    used = [label for label in labels if any(row["label"] == label for row in rows)]
    handles = [Patch(color=colours[label], label=label) for label in used]
    if changed_any:
        handles.append(Patch(facecolor="none", edgecolor="black", label="media changed\nthe text's label"))
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    return path
