"""Shared fixtures: tiny random models, a tokenizer trained on the fly, offline Hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import logging

import pytest
import torch

from telme_hf import TelMEConfig, TelMEForEmotionRecognition, build_processor, train_tokenizer


# The package logger does not propagate (as transformers' does not); in tests it does, so that `caplog` sees it.
logging.getLogger("telme_hf").propagate = True


TOKENIZER_TEXTS = [
    "Now feels hello there how are you doing today",
    "I am fine thanks for asking my friend",
    "leave me alone now please I am so angry",
    "oh my god that is amazing what a surprise",
    "this is disgusting and gross I hate it",
    "I am scared of the dark and the noise",
    "we lost everything and I feel so sad",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return train_tokenizer(TOKENIZER_TEXTS * 5, vocab_size=400)


@pytest.fixture
def tiny_config(tiny_tokenizer) -> TelMEConfig:
    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tiny_tokenizer)
    return config


@pytest.fixture
def tiny_processor(tiny_config, tiny_tokenizer):
    return build_processor(tiny_config, tiny_tokenizer)


@pytest.fixture
def tiny_model(tiny_config) -> TelMEForEmotionRecognition:
    torch.manual_seed(0)
    return TelMEForEmotionRecognition(tiny_config).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model, tiny_processor):
    """A saved tiny model and processor with its pipeline, as `telme predict`/`evaluate` and `pipeline()` load them."""
    from telme_hf.inference.prediction import save_checkpoint

    return save_checkpoint(tiny_model, tiny_processor, tmp_path / "checkpoint")


@pytest.fixture
def dialogue() -> list[dict]:
    return [
        {"speaker": "Ross", "text": "hello there how are you"},
        {"speaker": "Rachel", "text": "I am fine thanks"},
        {"speaker": "Monica", "text": "oh my god"},
        {"speaker": "Ross", "text": "leave me alone"},
    ]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small synthetic MELD-layout corpus (with its one missing and one corrupt clip)."""
    from telme_hf.data.synthetic import make_synthetic_corpus

    root = tmp_path_factory.mktemp("corpus")
    make_synthetic_corpus(root, num_dialogues={"train": 6, "dev": 3, "test": 3}, seed=1, progress=False)
    return root


@pytest.fixture
def splits(tiny_corpus, tiny_processor, tmp_path):
    """The tiny corpus's train and dev splits, their media decoded into a cache: `(splits, cache)`."""
    from telme_hf.data.media_cache import MediaCache, prepare_media
    from telme_hf.data.meld import load_meld
    from telme_hf.modeling.media_telme import MediaLoader

    data = load_meld(tiny_corpus, on_bad_media="skip")
    cache = MediaCache(tmp_path / "media")
    out = {}
    for name in ("train", "dev"):
        out[name] = prepare_media(data[name], MediaLoader.for_processor(tiny_processor, cache, on_bad_media="skip"))
    return out, cache
