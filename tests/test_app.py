"""`telme app`: the page's actions against `telme predict`, the Space export, and the page in headless Chromium."""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from telme_hf.app import MAX_TURNS, TelMEApp, read_card, render_results
from telme_hf.cli import main
from telme_hf.data.synthetic import write_media
from telme_hf.hub.space import export_space
from without_telme_hf import BLOCK_TELME_HF


ARTIFACTS = Path(os.environ.get("TELME_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
TURNS = [
    {"speaker": "Ross", "text": "hello there how are you"},
    {"speaker": "Rachel", "text": "I am so angry leave me alone"},
]


@pytest.fixture
def clips(tmp_path):
    """Two short clips with both streams (distinct colours and pitches) and an unreadable one."""
    folder = tmp_path / "clips"
    folder.mkdir()
    paths = []
    rng = np.random.default_rng(0)
    for index in range(2):
        frames = np.full((8, 32, 32, 3), 90 * index + 30, np.uint8) + rng.integers(0, 20, (8, 32, 32, 3), np.uint8)
        audio = (0.3 * np.sin(2 * np.pi * (200 + 200 * index) * np.arange(8192) / 16000)).astype(np.float32)[None]
        paths.append(write_media(folder / f"turn{index}.mp4", frames, audio, fps=8, sample_rate=16000))
    bad = folder / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 50)
    return [Path(p) for p in paths], bad


@pytest.fixture
def erc(tiny_checkpoint):
    from telme_hf.inference.prediction import load_model_and_processor
    from telme_hf.modeling.pipeline_telme import EmotionRecognitionInConversationPipeline

    model, processor = load_model_and_processor(tiny_checkpoint, "cpu")
    return EmotionRecognitionInConversationPipeline(model=model, processor=processor, device=model.device)


def predict_cli(capsys, checkpoint, folder: Path, turns, *options: str) -> list[dict]:
    """`telme predict --format json` on the same turns, written as a dialogue CSV."""
    path = folder / "dialogue.csv"
    fields = ["speaker", "text", "media", "audio", "video"]
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        writer.writerows({field: t.get(field) or "" for field in fields} for t in turns)
    assert main(["predict", "--model", str(checkpoint), "--dialogue", str(path), "--format", "json",
                 "--device", "cpu", *options]) == 0
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------------------------ the actions
def test_the_page_predicts_what_telme_predict_does(erc, clips, tiny_checkpoint, tmp_path, capsys):
    (first, second), _ = clips
    app = TelMEApp(erc)
    turns, status = app.add_turn([], "Ross", TURNS[0]["text"], str(first))
    assert status == "Added turn 0 (Ross)." and turns[0]["media"] == str(first)
    turns, _ = app.add_turn(turns, "Rachel", TURNS[1]["text"], str(second))
    turns, _ = app.add_turn(turns, "Ross", "oh my god", None)  # no clip: text alone
    table, status = app.predict(turns)
    expected = predict_cli(capsys, tiny_checkpoint, tmp_path, turns)
    assert status == "Predicted 3 utterances (2 from text, audio and video)."
    assert table.count("class='telme-result'") == 3
    for result in expected:
        row = table.split("class='telme-result'")[result["turn"] + 1]
        assert f"class='telme-emotion'>{result['label']}</td><td>{result['score']:.3f}</td>" in row
        assert f"class='telme-modalities'>{'+'.join(result['modalities'])}</td>" in row
        for label, probability in result["scores"].items():  # one bar per class, its width the probability
            assert f"data-label='{label}'" in row and f"width:{100 * probability:.0f}px" in row
    assert [r["modalities"] for r in expected] == [["text", "audio", "video"]] * 2 + [["text"]]


def test_a_recording_or_an_audio_file_is_the_turn_audio_and_zeros_stand_in_for_its_picture(
        erc, clips, tiny_checkpoint, tmp_path, capsys):
    (first, _), _ = clips
    wav = write_media(tmp_path / "recording.wav", None, (0.3 * np.sin(np.arange(16000) / 9)).astype(np.float32)[None],
                      sample_rate=16000)
    app = TelMEApp(erc)
    turns, _ = app.add_turn([], "Ross", TURNS[0]["text"], str(first))
    turns, status = app.add_turn(turns, "Rachel", TURNS[1]["text"], None, str(wav))  # recorded in the browser
    assert status == "Added turn 1 (Rachel)." and turns[1]["audio"] == str(wav) and "video" not in turns[1]
    turns, _ = app.add_turn(turns, "Ross", "oh my god", str(wav))  # an uploaded audio file
    assert turns[2]["audio"] == str(wav) and "media" not in turns[2]
    turns, _ = app.add_turn(turns, "Rachel", "hello there", str(first), str(wav))  # picture from the clip
    assert turns[3]["video"] == str(first) and turns[3]["audio"] == str(wav)
    after, status = app.add_turn(turns, "Ross", "hello", str(wav), str(wav))
    assert after is turns and status.startswith("⚠️ recording.wav is audio, and so is the recording")
    table, _ = app.predict(turns)
    with_media = predict_cli(capsys, tiny_checkpoint, tmp_path, turns)
    with_zeros = predict_cli(capsys, tiny_checkpoint, tmp_path, turns, "--on-bad-media", "zeros")
    rows = table.split("class='telme-result'")[1:]
    for index, expected in enumerate([with_media[0], with_zeros[1], with_zeros[2], with_media[3]]):
        assert f"class='telme-emotion'>{expected['label']}</td><td>{expected['score']:.3f}</td>" in rows[index]
        assert f"class='telme-note'>{expected['note']}</td>" in rows[index]
    assert with_zeros[1]["note"] == "video not given: used zeros" and with_media[3]["note"] == ""


def test_bad_input_gets_a_message_and_changes_nothing(erc, clips):
    (first, _), bad = clips
    app = TelMEApp(erc)
    turns, _ = app.add_turn([], "Ross", "hello", str(first))
    for arguments, expected in [
        (("Ross", "   ", None), "A turn needs its text"),
        (("Ross", "hello again", str(bad)), "The clip broken.mp4 cannot be used"),
        (("Ross", "hello again", str(bad.parent / "gone.mp4")), "The clip gone.mp4 cannot be used"),
    ]:
        after, status = app.add_turn(turns, *arguments)
        assert after is turns and status.startswith("⚠️ " + expected), status
        assert "\n" not in status and "Traceback" not in status and "on_bad_media" not in status
    pasted = "\n".join(f"Speaker{i % 2}: line {i}" for i in range(300))
    after, status = app.add_pasted(turns, pasted)
    assert after is turns and f"at most {MAX_TURNS} turns; this one would have 301" in status
    after, status = app.add_pasted(turns, "Ross: fine\nno speaker here")
    assert after is turns and "Line 2 of the paste is not `Speaker: text`" in status
    after, status = app.add_pasted(turns, "Ross: fine\n\nRachel: so am I")
    assert [t["speaker"] for t in after] == ["Ross", "Ross", "Rachel"] and status == "Added 2 turns."
    assert app.predict([]) == ("", "⚠️ Add at least one turn first.")
    assert app.load_example(turns)[1].startswith("⚠️ This checkpoint ships no example")


def test_the_page_names_the_pipeline_task_and_media_keys_as_the_package_does():
    from telme_hf import app
    from telme_hf.modeling.pipeline_telme import MEDIA_FIELDS, PIPELINE_TASK

    assert app.PIPELINE_TASK == PIPELINE_TASK and app.MEDIA_FIELDS == MEDIA_FIELDS


def test_a_space_example_keeps_each_file_under_its_field_and_the_window(clips, tmp_path):
    from telme_hf.app import read_example, render_conversation
    from telme_hf.hub.space import write_space_example

    (first, second), _ = clips
    turns = [{"speaker": "Ross", "text": "hi", "media": str(first), "start": 0.5, "end": 1.0},
             {"speaker": "Rachel", "text": "oh", "audio": str(second), "video": str(first)},
             {"speaker": "Ross", "text": "no media"}]
    back = read_example(write_space_example(turns, tmp_path / "examples"))
    assert [sorted(turn) for turn in back] == [["end", "media", "speaker", "start", "text"],
                                               ["audio", "speaker", "text", "video"], ["speaker", "text"]]
    assert (back[0]["start"], back[0]["end"]) == (0.5, 1.0)
    for turn, original in zip(back[:2], turns[:2]):
        for field in ("media", "audio", "video"):
            if field in original:
                assert Path(turn[field]).parent == tmp_path / "examples"
                assert Path(turn[field]).read_bytes() == Path(original[field]).read_bytes()
    shown = render_conversation(back)
    assert "turn1-audio.mp4 + turn1-video.mp4" in shown and shown.count("<td>none</td>") == 1


def test_render_results_escapes_text_and_orders_the_bars_by_label():
    result = {"turn": 0, "speaker": "<b>Ross</b>", "text": "a < b", "label": "joy", "score": 0.7,
              "scores": {"joy": 0.7, "anger": 0.3}, "modalities": ["text"], "note": "no media given"}
    page = render_results([result], ["anger", "joy"])
    assert "&lt;b&gt;Ross&lt;/b&gt;" in page and "a &lt; b" in page and "<b>" not in page
    assert page.index("data-label='anger'") < page.index("data-label='joy'")
    assert "width:30px" in page and "width:70px" in page


def test_read_card_drops_the_front_matter_and_finds_the_run_confusion_matrix(tmp_path):
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    (final / "README.md").write_text("---\nlicense: apache-2.0\n---\n\n# telme\n\n| class | F1 |\n")
    (tmp_path / "run" / "confusion_matrix.png").write_bytes(b"png")
    card, image = read_card(str(final))
    assert card.startswith("# telme") and "license" not in card
    assert image == str(tmp_path / "run" / "confusion_matrix.png")
    assert read_card(str(tmp_path / "empty"))[0].startswith("No model card found")


# ------------------------------------------------------------------------------------------------ the Space
def test_the_exported_space_runs_on_the_checkpoint_code_alone(tiny_checkpoint, clips, tmp_path, capsys):
    (first, second), _ = clips
    example = [{**TURNS[0], "media": str(first)}, {**TURNS[1], "media": str(second)}]
    space = export_space(tiny_checkpoint, tmp_path / "space", example)
    assert {p.name for p in space.iterdir()} == {"app.py", "requirements.txt", "README.md", "examples", "checkpoint"}
    code = (space / "app.py").read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(code))
                for alias in getattr(node, "names", []) if isinstance(node, (ast.Import, ast.ImportFrom))}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(code))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "telme_hf" not in imported and "gradio" in (space / "requirements.txt").read_text()
    assert "DEFAULT_MODEL: str | None = 'checkpoint'" in code
    assert (space / "README.md").read_text().startswith("---\ntitle: TelME\nemoji: 💬\nsdk: gradio\n")

    # Where telme_hf cannot be imported, as on a Space: the app and the checkpoint's own code only.
    script = BLOCK_TELME_HF + f"""
import importlib.util, json
spec = importlib.util.spec_from_file_location("app", {str(space / "app.py")!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
erc = app.load_pipeline({str(space / "checkpoint")!r}, device="cpu")
actions = app.TelMEApp(erc, app.read_example({str(space / "examples" / "example_dialogue.json")!r}))
turns, loaded = actions.load_example([])
table, status = actions.predict(turns)
print(json.dumps({{"module": type(erc).__module__, "loaded": loaded, "media": turns[0]["media"], "table": table}}))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    remote = json.loads(completed.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules.")  # the checkpoint's own copy of the pipeline
    assert remote["loaded"] == "Loaded the example dialogue (2 turns)."
    assert Path(remote["media"]).parent == space / "examples"
    expected = predict_cli(capsys, tiny_checkpoint, tmp_path, example)
    for result in expected:
        assert f"class='telme-emotion'>{result['label']}</td><td>{result['score']:.3f}" in remote["table"]
    with pytest.raises(FileExistsError, match="not empty"):
        export_space(tiny_checkpoint, space)


def test_the_app_command_reports_a_missing_checkpoint_or_gradio_in_one_line(tmp_path, capsys, monkeypatch):
    code = main(["app", "--model", str(tmp_path / "nothing-here")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("telme app: error: Could not load a TelME model") and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "gradio", None)  # as where the extra is not installed
    code = main(["app", "--model", str(tmp_path / "nothing-here")])
    expected = 'telme app: error: telme app needs Gradio: pip install "telme_hf[app]"\n'
    assert code == 2 and capsys.readouterr().err == expected


# ------------------------------------------------------------------------------------------------ the browser
def _browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium: apt-get install chromium chromium-driver")
def test_the_page_in_headless_chromium(tiny_checkpoint, clips, tmp_path, capsys):
    pytest.importorskip("gradio")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    (first, second), bad = clips
    port = _free_port()
    log = tmp_path / "server.log"  # a file, not a pipe: a full pipe would block the server
    server = subprocess.Popen([sys.executable, "-m", "telme_hf.cli", "app", "--model", str(tiny_checkpoint),
                               "--port", str(port), "--device", "cpu"], stdout=log.open("w"),
                              stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "0"})
    chromium, driver_path = _browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'profile'}",
                 # A fake microphone (a tone), allowed without a prompt: the recording path runs too.
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    browser = None
    try:
        deadline = time.time() + 90
        while True:  # the page is up once the port answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"telme app did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
        wait = WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,))
        browser.get(f"http://127.0.0.1:{port}/")

        def field(elem_id: str):
            return wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} textarea, "
                                                                                  f"#{elem_id} input")))

        def add_turn(speaker: str, text: str, clip: Path | None, expect: str) -> None:
            field("telme-speaker").clear()
            field("telme-speaker").send_keys(speaker)
            field("telme-text").clear()
            field("telme-text").send_keys(text)
            if clip is not None:
                browser.find_element(By.CSS_SELECTOR, "#telme-clip input[type=file]").send_keys(str(clip))
                wait.until(lambda b: clip.stem in b.find_element(By.ID, "telme-clip").text)
            browser.find_element(By.ID, "telme-add").click()
            wait.until(lambda b: expect in b.find_element(By.ID, "telme-status").text)

        add_turn("Ross", TURNS[0]["text"], first, "Added turn 0 (Ross).")
        add_turn("Rachel", TURNS[1]["text"], bad, "The clip broken.mp4 cannot be used")  # refused, on the page
        assert len(browser.find_elements(By.CSS_SELECTOR, "#telme-conversation .telme-turn")) == 1
        browser.find_element(By.CSS_SELECTOR, "#telme-clip button[aria-label='Clear']").click()
        add_turn("Rachel", TURNS[1]["text"], second, "Added turn 1 (Rachel).")
        browser.find_element(By.CSS_SELECTOR, "#telme-recording button.record-button").click()
        time.sleep(2)  # two seconds of the fake microphone's tone
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#telme-recording button.stop-button").is_displayed())
        browser.find_element(By.CSS_SELECTOR, "#telme-recording button.stop-button").click()
        # The page re-renders the recorder as the recording ends: the stop button may vanish between being found
        # and being read, which invisibility_of_element_located takes as "gone" rather than failing.
        wait.until(ready.invisibility_of_element_located((By.CSS_SELECTOR, "#telme-recording button.stop-button")))
        add_turn("Ross", "oh my god", None, "Added turn 2 (Ross).")
        browser.find_element(By.ID, "telme-predict").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#telme-results .telme-emotion")) == 3)
        shown = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#telme-results .telme-emotion")]
        used = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#telme-results .telme-modalities")]
        notes = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#telme-results .telme-note")]
        clips_shown = browser.find_element(By.ID, "telme-conversation").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "telme_app.png"))
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)
    expected = predict_cli(capsys, tiny_checkpoint, tmp_path,
                           [{**TURNS[0], "media": str(first)}, {**TURNS[1], "media": str(second)}])
    assert shown[:2] == [r["label"] for r in expected]
    assert used == ["text+audio+video"] * 2 + ["text+audio"] and notes == ["", "", "video not given: used zeros"]
    assert clips_shown.splitlines()[-1].endswith("recording")  # the third turn's audio is the recording
    assert (ARTIFACTS / "telme_app.png").stat().st_size > 10_000
