# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""A one-minute end-to-end check: tiny model, trained tokenizer, save, reload, predict (`python -m telme_hf.smoke`)."""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from transformers import AutoModel, AutoProcessor

from . import TelMEConfig, TelMEForEmotionRecognition, build_processor, train_tokenizer


def main() -> None:
    dialogue = [
        {"speaker": "Ross", "text": "We were on a break!"},
        {"speaker": "Rachel", "text": "I cannot believe you just said that."},
        {"speaker": "Ross", "text": "Okay, okay, I am sorry."},
    ]
    tokenizer = train_tokenizer([turn["text"] for turn in dialogue] * 20, vocab_size=300)
    config = TelMEConfig.from_preset("tiny")
    config.text_config.vocab_size = len(tokenizer)
    processor = build_processor(config, tokenizer)
    model = TelMEForEmotionRecognition(config).eval()
    rng = np.random.default_rng(0)
    batch = processor(
        conversations=[dialogue[: k + 1] for k in range(len(dialogue))],
        audio=[rng.standard_normal(16000).astype(np.float32) for _ in dialogue],
        videos=[rng.integers(0, 255, (config.video_num_frames, 48, 64, 3), dtype=np.uint8) for _ in dialogue],
    )
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        processor = AutoProcessor.from_pretrained(folder)
    with torch.inference_mode():
        probs = model(**batch).logits.softmax(-1)
    for turn, row in zip(dialogue, probs):
        label = config.id2label[int(row.argmax())]
        print(f"{turn['speaker']:>7}: {turn['text']:<40} → {label} ({float(row.max()):.2f}, untrained)")


if __name__ == "__main__":
    main()
