# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Upload a checkpoint folder to the Hub, its model card pointed at the repository (`telme push`, `push_to_hub`)."""

from __future__ import annotations

from pathlib import Path


def create_hub_repo(repo_id: str, private: bool = True) -> str:
    """Create (or find) a model repository and return its full id (`user/name` for a bare `name`)."""
    from huggingface_hub import HfApi

    return HfApi().create_repo(repo_id, private=private, exist_ok=True).repo_id


def push_folder_to_hub(folder: str | Path, repo_id: str, private: bool = True) -> str:
    """Upload a checkpoint folder to the Hub (model, processor, code, model card, results) and return the repo URL;
    the card's usage section is pointed at the repository first."""
    from huggingface_hub import HfApi

    from .model_card import set_card_repo

    folder = Path(folder)
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a checkpoint folder (no {', '.join(missing)}): pass a run's "
                                "final/ folder.")
    api = HfApi()
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    set_card_repo(folder, repo.repo_id)
    api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), commit_message="Upload TelME checkpoint")
    return str(repo)


__all__ = ["create_hub_repo", "push_folder_to_hub"]
