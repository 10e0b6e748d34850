"""`telme upgrade-checkpoint` brings a checkpoint of an earlier telme_hf up to date, its predictions unchanged."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import pipeline

import telme_hf.modeling
from telme_hf.cli import main
from telme_hf.inference.prediction import load_model_and_processor


def test_an_older_checkpoints_code_is_replaced_and_its_obsolete_files_removed(tiny_checkpoint, dialogue, capsys):
    folder = Path(tiny_checkpoint)
    # What an earlier layout left: a module this version no longer has, and another version's pipeline code.
    (folder / "loading_telme.py").write_text("raise ImportError('an earlier layout')\n")
    (folder / "pipeline_telme.py").write_text((folder / "pipeline_telme.py").read_text() + "\nOLDER = True\n")
    model, processor = load_model_and_processor(folder, "cpu")
    before = model(**processor(conversations=[dialogue])).logits
    assert main(["upgrade-checkpoint", str(folder)]) == 0
    assert "removed loading_telme.py" in capsys.readouterr().out
    assert not (folder / "loading_telme.py").exists()
    source = Path(telme_hf.modeling.__file__).parent
    for name in ("pipeline_telme.py", "modeling_telme.py", "processing_telme.py"):
        assert (folder / name).read_text() == (source / name).read_text(), name
    model, processor = load_model_and_processor(folder, "cpu")
    torch.testing.assert_close(model(**processor(conversations=[dialogue])).logits, before, rtol=0, atol=0)
    # The checkpoint's own pipeline runs beside the installed package.
    erc = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    assert [result["turn"] for result in erc(dialogue)] == list(range(len(dialogue)))
