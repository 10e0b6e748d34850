"""`telme push` uploads a checkpoint folder with its card pointed at the repository."""

from __future__ import annotations

from pathlib import Path






def test_telme_push_uploads_the_final_folder_with_its_card_pointed_at_the_repo(tmp_path, monkeypatch, capsys,
                                                                               tiny_model, tiny_processor):
    from huggingface_hub import HfApi, ModelCard

    from telme_hf.cli import main
    from telme_hf.hub.model_card import write_model_card

    folder = tmp_path / "final"
    tiny_model.save_pretrained(folder)
    tiny_processor.save_pretrained(folder)
    metrics = {"weighted_f1": 0.5, "accuracy": 0.6, "f1": {}}
    write_model_card(folder, tiny_model.config, tiny_processor, {}, {"fusion": {"test": metrics}}, repo=str(folder))
    sent = {}

    class Repo(str):
        repo_id = "someone/telme-tiny"  # a bare name is created under the user's account

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: sent.update(private=kw["private"]) or
                        Repo(f"https://hub/someone/{repo_id}"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: sent.update(
        kw, files=sorted(p.name for p in Path(kw["folder_path"]).iterdir()),
        card=(Path(kw["folder_path"]) / "README.md").read_text()))
    assert main(["push", str(folder), "--repo-id", "telme-tiny"]) == 0
    assert "Uploaded" in capsys.readouterr().out
    assert sent["repo_id"] == "someone/telme-tiny" and sent["private"] is True
    assert {"config.json", "model.safetensors", "modeling_telme.py", "processor_config.json", "README.md"} <= set(sent["files"])
    card = ModelCard.load(folder / "README.md")
    assert 'model="someone/telme-tiny"' in sent["card"] and str(folder) not in sent["card"]
    assert card.data.model_name == "telme-tiny" and card.data.eval_results[0].metric_value == 50.0
    # Not a checkpoint folder: one line, nothing uploaded.
    sent.clear()
    assert main(["push", str(tmp_path), "--repo-id", "telme-tiny"]) == 1
    assert "is not a checkpoint folder" in capsys.readouterr().err and not sent
