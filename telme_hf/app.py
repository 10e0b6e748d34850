# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelME in a browser: a Gradio page that builds a conversation turn by turn and shows one emotion per utterance.

    pip install "telme_hf[app]"
    telme app --model telme-demo/final            # http://127.0.0.1:7860
    telme app --model telme-demo/final --export my-space   # app.py + requirements.txt for a Hugging Face Space

The page only presents: every prediction goes through the `"emotion-recognition-in-conversation"` pipeline, the
code path of `telme predict` (:func:`prepare_dialogue` → :func:`predict_logits` → :func:`format_predictions`).

This file imports neither telme_hf nor anything but gradio, transformers and the standard library at import time,
so that `telme app --export` can copy it as a Space's `app.py`: there it loads the checkpoint with
`trust_remote_code=True` (the checkpoint carries its model and pipeline code) and runs where telme_hf is not
installed.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


# The checkpoint a Space's copy of this file serves (`telme app --export` writes it), or TELME_MODEL.
DEFAULT_MODEL: str | None = None
# A page's conversation is bounded so that one request stays a few seconds of work; `telme predict` takes any length.
MAX_TURNS = 50
# What the clip field accepts: a clip with both streams (like a MELD clip) or an audio file.
CLIP_TYPES = [".mp4", ".mkv", ".avi", ".mov", ".webm", ".wav", ".flac", ".mp3", ".m4a", ".ogg"]
# configuration_telme.PIPELINE_TASK, written out: a Space's copy of this file cannot import telme_hf (tested equal).
PIPELINE_TASK = "emotion-recognition-in-conversation"
EXAMPLE_FILE = "example_dialogue.json"
# A turn's media keys, as the pipeline reads them (one file with both streams, or one per modality):
# pipeline_telme.MEDIA_FIELDS, written out for a Space's copy of this file (tested equal).
MEDIA_FIELDS = ("media", "audio", "video")
_PASTED_TURN = re.compile(r"^\s*([^:]{1,80}?)\s*:\s*(.+?)\s*$")

CSS = """
.telme-table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
.telme-table th, .telme-table td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left;
  vertical-align: top; }
.telme-bar { display: flex; align-items: center; gap: 4px; white-space: nowrap; }
.telme-bar span.fill { display: inline-block; height: 0.7em; background: #5b8def; }
.telme-emotion { font-weight: 600; }
"""


# ------------------------------------------------------------------------------------------------------ loading
def load_pipeline(model: str, device: str | None = None):
    """The ERC pipeline of a checkpoint folder or Hub id, with the checkpoint's own code (`trust_remote_code`)."""
    from transformers import pipeline

    return pipeline(PIPELINE_TASK, model=model, trust_remote_code=True, device=device)


def read_card(model: str) -> tuple[str, str | None]:
    """The checkpoint's model card (README.md, front matter removed) and its confusion matrix image, if it has them.

    A folder is looked in first (and its parent: a training run's output folder holds `confusion_matrix.png` beside
    `final/`); otherwise the Hub repository.
    """
    def local_or_hub(name: str) -> str | None:
        folder = Path(model).expanduser()
        for candidate in (folder / name, folder.parent / name):
            if folder.is_dir() and candidate.is_file():
                return str(candidate)
        if folder.is_dir():
            return None
        try:
            from huggingface_hub import hf_hub_download

            return hf_hub_download(model, name)
        except Exception:  # noqa: BLE001 - offline, private or absent: the tab says so
            return None

    card_path = local_or_hub("README.md")
    if card_path is None:
        card = f"No model card found for `{model}`."
    else:
        card = Path(card_path).read_text(encoding="utf-8")
        if card.startswith("---"):
            end = card.find("\n---", 3)
            card = card[end + 4:] if end != -1 else card
    return card.strip(), local_or_hub("confusion_matrix.png")


def read_example(path: str | os.PathLike) -> list[dict[str, Any]]:
    """An example dialogue in the page's JSON form: a list of `{"speaker", "text"}` with `"media"` (both streams)
    or `"audio"`/`"video"` file names relative to the file's folder, and optional `"start"`/`"end"`."""
    path = Path(path)
    turns = json.loads(path.read_text(encoding="utf-8"))
    return [{**turn, **{field: str(path.parent / turn[field]) for field in MEDIA_FIELDS if turn.get(field)}}
            for turn in turns]


# ------------------------------------------------------------------------------------------------------ rendering
def _escape(value: Any) -> str:
    return html.escape(str(value))


def render_conversation(turns: Sequence[Mapping[str, Any]]) -> str:
    """The conversation built so far, as an HTML table (turn, speaker, text, clip)."""
    if not turns:
        return "<p>No turns yet: add one below, paste several, or load the example.</p>"
    rows = "".join(
        f"<tr class='telme-turn'><td>{i}</td><td>{_escape(t['speaker'])}</td><td>{_escape(t['text'])}</td>"
        f"<td>{_escape(t.get('clip_name') or ' + '.join(Path(t[f]).name for f in MEDIA_FIELDS if t.get(f)) or 'none')}"
        "</td></tr>"
        for i, t in enumerate(turns))
    return ("<table class='telme-table'><thead><tr><th>turn</th><th>speaker</th><th>text</th><th>clip</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def shift_text(result: Mapping[str, Any]) -> str:
    """Why the label came out: `"text alone: neutral 0.41; audio/video shifted it by 0.08 of its norm (λ 1.00),
    to anger"`."""
    if "text_label" not in result:  # a checkpoint whose pipeline code predates the explanation
        return ""
    said = f"text alone: {result['text_label']} {result['text_score']:.2f}"
    shift = result.get("shift")
    if not shift:
        return said
    moved = f", to {result['label']}" if shift["changed_label"] else ", same label"
    return f"{said}; audio/video shifted it by {shift['relative_norm']:.2f} of its norm (λ {shift['lambda']:.2f}){moved}"


def render_results(results: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """One row per utterance: the emotion, a probability bar per class, the modalities used, why (the text alone and
    the shift audio/video made) and the note."""
    def bars(scores: Mapping[str, float]) -> str:
        return "".join(f"<div class='telme-bar' data-label='{_escape(label)}'><span style='width:5.5em'>"
                       f"{_escape(label)}</span><span class='fill' style='width:{100 * scores[label]:.0f}px'></span>"
                       f"<span>{scores[label]:.2f}</span></div>" for label in labels)

    timed = bool(results) and all(r.get("start") is not None for r in results)

    def times(r: Mapping[str, Any]) -> str:
        return f"<td>{r['start']:.2f}</td><td>{r['end']:.2f}</td>" if timed else ""

    rows = "".join(
        f"<tr class='telme-result'><td>{r['turn']}</td>{times(r)}<td>{_escape(r['speaker'])}</td><td>{_escape(r['text'])}"
        f"</td><td class='telme-emotion'>{_escape(r['label'])}</td><td>{r['score']:.3f}</td><td>{bars(r['scores'])}"
        f"</td><td class='telme-modalities'>{_escape('+'.join(r['modalities']))}</td>"
        f"<td class='telme-why'>{_escape(shift_text(r))}</td>"
        f"<td class='telme-note'>{_escape(r['note'])}</td></tr>" for r in results)
    return ("<table class='telme-table'><thead><tr><th>turn</th>" + ("<th>start (s)</th><th>end (s)</th>" if timed
                                                                     else "") + "<th>speaker</th><th>text</th><th>emotion</th>"
            "<th>score</th><th>probabilities</th><th>from</th><th>why</th><th>note</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _status(message: str, error: bool = False) -> str:
    return f"⚠️ {message}" if error else message


# ------------------------------------------------------------------------------------------------------ actions
class TelMEApp:
    """The page's actions as plain functions of the conversation (a list of turn dicts): testable without a browser.

    Args:
        erc: the `"emotion-recognition-in-conversation"` pipeline.
        example: turns that "Load the example" puts in the conversation.
        max_turns: the longest conversation the page takes.
    """

    def __init__(self, erc, example: Sequence[Mapping[str, Any]] | None = None, max_turns: int = MAX_TURNS):
        self.erc = erc
        self.example = [dict(turn) for turn in example or []]
        self.max_turns = max_turns
        self.labels = list(erc.model.config.label_names)
        # The pipeline's own module (telme_hf's, or the checkpoint's remote code): its `prepare_dialogue` checks a
        # clip exactly as prediction will read it.
        self._pipeline_module = importlib.import_module(type(erc).__module__)

    def check_clip(self, path: str, field: str = "media") -> str | None:
        """Why a file cannot be used as a turn's `field` ("media", "audio" or "video"), in one line, or None when it
        decodes as prediction will decode it."""
        turn: dict[str, Any] = {"speaker": "", "text": "clip check", field: path}
        # A one-stream file is checked alone: the other stream is a stand-in array, so an error is this file's.
        if field == "audio":
            turn["video"] = np.zeros((1, 16, 16, 3), np.uint8)
        elif field == "video":
            turn["audio"] = np.zeros(1600, np.float32)
        try:
            self._pipeline_module.prepare_dialogue([turn], self.erc.processor, "error")
        except Exception as error:  # noqa: BLE001 - any unreadable upload becomes the page's message
            # A media error's reason names the problem without the server's temporary path or the API's options.
            message = getattr(error, "reason", None) or str(error) or type(error).__name__
            return message.splitlines()[0]
        return None

    @staticmethod
    def clip_field(path: str) -> str:
        """What a file gives a turn: "media" (both streams, like a MELD clip), "audio" or "video" (one stream)."""
        try:
            import av

            with av.open(path) as container:
                kinds = {stream.type for stream in container.streams}
        except Exception:  # noqa: BLE001 - unreadable: checking it as a clip says why
            return "media"
        if "video" in kinds and "audio" not in kinds:
            return "video"
        return "audio" if "audio" in kinds and "video" not in kinds else "media"

    def _too_many(self, count: int) -> str:
        return (f"A conversation on this page has at most {self.max_turns} turns; this one would have {count}. "
                "Remove some, or predict long dialogues with `telme predict --dialogue FILE`.")

    def add_turn(self, turns: list[dict], speaker: str, text: str, clip: str | None,
                 recording: str | None = None) -> tuple[list[dict], str]:
        """Append one turn; returns the new conversation and the status line (an error leaves it unchanged)."""
        speaker, text = (speaker or "").strip(), (text or "").strip()
        if not text:
            return turns, _status("A turn needs its text: type what the speaker says, then add the turn.", True)
        if len(turns) + 1 > self.max_turns:
            return turns, _status(self._too_many(len(turns) + 1), True)
        turn: dict[str, Any] = {"speaker": speaker or f"Speaker{len(turns) % 2}", "text": text}
        # A clip with both streams is the turn's media; a file with one stream (an audio file, a silent video) and
        # the recording are that modality alone; with both, the recording is the audio and the clip the video.
        parts: dict[str, str] = {}
        if clip:
            field = self.clip_field(clip)
            if field == "media" and recording:
                field = "video"
            if field == "audio" and recording:
                return turns, _status(f"{Path(clip).name} is audio, and so is the recording: give the turn one of "
                                      "them (or a clip with picture).", True)
            parts[field] = clip
        if recording:
            parts["audio"] = recording
        for field, path in parts.items():
            problem = self.check_clip(path, field)
            if problem:
                what = "recording" if path == recording else f"clip {Path(path).name}"
                return turns, _status(f"The {what} cannot be used: {problem}", True)
        turn.update(parts)
        if parts:
            turn["clip_name"] = " + ".join("recording" if p == recording else Path(p).name for p in parts.values())
        return [*turns, turn], _status(f"Added turn {len(turns)} ({turn['speaker']}).")

    def add_pasted(self, turns: list[dict], pasted: str) -> tuple[list[dict], str]:
        """Append the turns of a paste, one `Speaker: text` per line (text only)."""
        lines = [line for line in (pasted or "").splitlines() if line.strip()]
        if not lines:
            return turns, _status("Paste one turn per line, as `Speaker: what they say`.", True)
        if len(turns) + len(lines) > self.max_turns:
            return turns, _status(self._too_many(len(turns) + len(lines)), True)
        new = []
        for number, line in enumerate(lines, start=1):
            match = _PASTED_TURN.match(line)
            if not match:
                return turns, _status(f"Line {number} of the paste is not `Speaker: text`: {line[:60]!r}.", True)
            new.append({"speaker": match.group(1), "text": match.group(2)})
        return [*turns, *new], _status(f"Added {len(new)} turns.")

    def load_example(self, turns: list[dict]) -> tuple[list[dict], str]:
        if not self.example:
            return turns, _status("This checkpoint ships no example dialogue.", True)
        return [dict(turn) for turn in self.example][: self.max_turns], _status(
            f"Loaded the example dialogue ({len(self.example)} turns).")

    def predict(self, turns: list[dict], progress: Any = None) -> tuple[str, str]:
        """The results table and a status line for the conversation."""
        if not turns:
            return "", _status("Add at least one turn first.", True)
        if progress is not None:
            progress(0.05, desc=f"Decoding the clips and predicting {len(turns)} utterances")
        # The pipeline's rule, as `telme predict`: a turn with a clip gets the fused prediction, one with one stream
        # (a recording, an audio file) zeros for the other, one without media its text's; the note says which.
        dialogue = [{k: v for k, v in turn.items() if k != "clip_name"} for turn in turns]
        try:
            results = self.erc(dialogue, on_bad_media="skip")
        except Exception as error:  # noqa: BLE001 - shown on the page, never as a stack trace
            return "", _status(f"Prediction failed: {error}", True)
        fused = sum(r["modalities"] == ["text", "audio", "video"] for r in results)
        return render_results(results, self.labels), _status(
            f"Predicted {len(results)} utterances ({fused} from text, audio and video).")


    def predict_recording(self, recording: str | None, transcript: str | None, timeline: str | os.PathLike,
                          progress: Any = None) -> tuple[str, str | None, str]:
        """The results table, the emotion timeline (written to `timeline`) and a status line for one recording and
        its transcript (SRT, WebVTT or CSV), each cue one utterance."""
        if not recording or not transcript:
            return "", None, _status("Give a recording and its transcript (.srt, .vtt or .csv).", True)
        if progress is not None:
            progress(0.05, desc="Cutting the recording cue by cue and predicting")
        try:
            results = self.erc({"recording": recording, "transcript": transcript}, on_bad_media="skip")
            importlib.import_module("telme_hf.inference.recordings").plot_timeline(results, timeline,
                                                                                  title=Path(recording).name)
        except Exception as error:  # noqa: BLE001 - shown on the page, never as a stack trace
            return "", None, _status(f"Prediction failed: {error}", True)
        return render_results(results, self.labels), str(timeline), _status(
            f"Predicted {len(results)} cues of {Path(recording).name}.")


# ------------------------------------------------------------------------------------------------------ the page
def build_app(erc, card: str = "", confusion_matrix: str | None = None,
              example: Sequence[Mapping[str, Any]] | None = None, title: str = "TelME"):
    """The Gradio page (`gradio.Blocks`) for a pipeline; `launch()` it, or mount it in a FastAPI app.

    Args:
        erc: the `"emotion-recognition-in-conversation"` pipeline (see :func:`load_pipeline`).
        card: the checkpoint's model card in markdown, shown in the second tab (see :func:`read_card`).
        confusion_matrix: path of the card's confusion matrix image.
        example: the example dialogue's turns.
    """
    import gradio as gr

    actions = TelMEApp(erc, example)
    with gr.Blocks(title=title) as page:
        gr.Markdown(f"# {html.escape(title)}: emotion recognition in conversation\n"
                    "Build a conversation turn by turn (speaker, text and, if you have one, a clip with its sound "
                    "and picture), then predict: every utterance gets one emotion, from the dialogue up to it. A "
                    "turn with a clip is predicted from text, audio and video (with only sound or only picture, "
                    "zeros stand in for the other); one without from its text. *Why* shows what the text alone "
                    "said and how far the sound and picture shifted it.")
        turns = gr.State([])
        with gr.Tab("Conversation"):
            conversation = gr.HTML(render_conversation([]), elem_id="telme-conversation")
            with gr.Row():
                speaker = gr.Textbox(label="Speaker", placeholder="Ross", scale=1, elem_id="telme-speaker")
                text = gr.Textbox(label="Text", placeholder="We were on a break!", scale=3, elem_id="telme-text")
            with gr.Row():
                clip = gr.File(label="Clip (optional: video with sound, or audio)", file_types=CLIP_TYPES,
                               type="filepath", elem_id="telme-clip")
                recording = gr.Audio(label="Or record the audio (optional)", sources=["microphone"],
                                     type="filepath", elem_id="telme-recording")
            with gr.Row():
                add = gr.Button("Add turn", variant="secondary", elem_id="telme-add")
                undo = gr.Button("Remove last turn", elem_id="telme-undo")
                clear = gr.Button("Clear", elem_id="telme-clear")
                load = gr.Button("Load the example", elem_id="telme-example", interactive=bool(actions.example))
            with gr.Accordion("Paste several turns (text only)", open=False):
                pasted = gr.Textbox(label="One turn per line: `Speaker: text`", lines=4, elem_id="telme-paste")
                add_pasted = gr.Button("Add the pasted turns", elem_id="telme-add-pasted")
            predict = gr.Button("Predict the emotions", variant="primary", elem_id="telme-predict")
            status = gr.Markdown("", elem_id="telme-status")
            results = gr.HTML("", elem_id="telme-results")
        # Reading transcripts is telme_hf's: a Space (the checkpoint's code alone) shows the conversation only.
        with gr.Tab("Recording", visible=importlib.util.find_spec("telme_hf") is not None):
            gr.Markdown("One recording of the whole conversation and its transcript: every cue is one utterance, "
                        "its sound and picture cut from the recording by the cue's times. Speakers come from WebVTT "
                        "`<v Name>` tags, a `Name:` prefix or the CSV's `speaker` column.")
            with gr.Row():
                whole = gr.File(label="Recording (video or audio)", file_types=CLIP_TYPES, type="filepath",
                                elem_id="telme-whole-recording")
                transcript = gr.File(label="Transcript (.srt, .vtt or .csv: start, end, speaker, text)",
                                     file_types=[".srt", ".vtt", ".csv"], type="filepath", elem_id="telme-transcript")
            predict_whole = gr.Button("Predict every cue", variant="primary", elem_id="telme-predict-recording")
            whole_status = gr.Markdown("", elem_id="telme-recording-status")
            timeline = gr.Image(label="Emotion timeline", interactive=False, elem_id="telme-timeline")
            whole_results = gr.HTML("", elem_id="telme-recording-results")
        with gr.Tab("Model card"):
            gr.Markdown(card or "No model card.", elem_id="telme-card")
            if confusion_matrix:
                gr.Image(confusion_matrix, label="Confusion matrix (test split)", interactive=False,
                         elem_id="telme-confusion")

        def show(new_turns: list[dict], message: str) -> tuple[list[dict], str, str]:
            return new_turns, render_conversation(new_turns), message

        def on_add(current, who, said, path, recorded):
            new, message = actions.add_turn(current, who, said, path, recorded)
            cleared = new is not current
            return (*show(new, message), "" if cleared else said, None if cleared else path,
                    None if cleared else recorded)

        add.click(on_add, [turns, speaker, text, clip, recording], [turns, conversation, status, text, clip, recording])
        undo.click(lambda current: show(current[:-1], "Removed the last turn." if current else ""), [turns],
                   [turns, conversation, status])
        clear.click(lambda: show([], "Cleared."), None, [turns, conversation, status]).then(
            lambda: "", None, results)
        load.click(lambda current: show(*actions.load_example(current)), [turns], [turns, conversation, status])
        add_pasted.click(lambda current, text_: show(*actions.add_pasted(current, text_)), [turns, pasted],
                         [turns, conversation, status])

        def on_predict(current, progress=gr.Progress()):
            return actions.predict(current, progress)

        predict.click(on_predict, [turns], [results, status])

        def on_predict_recording(path, subtitles, progress=gr.Progress()):
            folder = Path(tempfile.mkdtemp(prefix="telme-timeline-"))
            table, image, message = actions.predict_recording(path, subtitles, folder / "timeline.png", progress)
            return table, image, message

        predict_whole.click(on_predict_recording, [whole, transcript], [whole_results, timeline, whole_status])
    return page


def launch(page, host: str = "127.0.0.1", port: int | None = None, share: bool = False, **kwargs: Any):
    """Serve the page (with its stylesheet); returns what `gradio.Blocks.launch` does."""
    return page.launch(server_name=host, server_port=port, share=share, css=CSS, **kwargs)


def main(model: str | None = None) -> None:
    """A Space's entry point: serve `model` (default TELME_MODEL, then DEFAULT_MODEL) on 0.0.0.0:$PORT."""
    model = model or os.environ.get("TELME_MODEL") or DEFAULT_MODEL
    if not model:
        raise SystemExit("Set TELME_MODEL to a checkpoint folder or Hub id (or run `telme app --model ...`).")
    here = Path(__file__).resolve().parent
    if (here / model).is_dir():  # a checkpoint folder inside the Space's repository
        model = str(here / model)
    example_path = here / "examples" / EXAMPLE_FILE
    example = read_example(example_path) if example_path.is_file() else None
    card, confusion = read_card(model)
    page = build_app(load_pipeline(model), card, confusion, example)
    launch(page, os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
           int(os.environ.get("PORT", os.environ.get("GRADIO_SERVER_PORT", 7860))))


if __name__ == "__main__":
    main()
