# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Building the processor's parts: the speaker-token tokenizer, the audio feature extractor, the frame processor.

The paper's parts come from the backbones' Hub repositories; `train_tokenizer` builds a small byte-level BPE
tokenizer on the fly for the demo and the tests, which run offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import AddedToken
from transformers import AutoTokenizer, PreTrainedTokenizerBase, RobertaTokenizerFast, Wav2Vec2FeatureExtractor
from transformers.models.videomae import VideoMAEImageProcessorPil

from .modeling import TelMEConfig, TelMEProcessor
from .modeling.processing_telme import PIXEL_STATISTICS, speaker_token


ROBERTA_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def add_speaker_tokens(tokenizer: PreTrainedTokenizerBase, num_speaker_tokens: int) -> PreTrainedTokenizerBase:
    """Register `<s1>` … `<sN>` as additional special tokens (in place) and return the tokenizer.

    Example:

    ```python
    >>> tokenizer = add_speaker_tokens(AutoTokenizer.from_pretrained("roberta-large"), 9)
    >>> len(tokenizer)
    50274
    ```
    """
    # lstrip: the space before a speaker token belongs to it, so no stray "Ġ" token is emitted before it.
    tokens = [AddedToken(speaker_token(i), lstrip=True, special=True, normalized=False) for i in range(num_speaker_tokens)]
    tokenizer.add_special_tokens({"additional_special_tokens": tokens})
    return tokenizer


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 1000, num_speaker_tokens: int = 9, min_frequency: int = 1
) -> RobertaTokenizerFast:
    """Train a small byte-level BPE RoBERTa tokenizer with speaker tokens (offline demo and tests).

    Example:

    ```python
    >>> tokenizer = train_tokenizer(["I am so happy today", "leave me alone"], vocab_size=300)
    >>> tokenizer.convert_ids_to_tokens(tokenizer("<s2> hi")["input_ids"])[1]
    '<s2>'
    ```
    """
    from tokenizers import ByteLevelBPETokenizer

    # add_prefix_space while training gives every word its "Ġword" form, as RoBERTa's vocabulary has.
    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    bpe.train_from_iterator(
        list(texts), vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=ROBERTA_SPECIAL_TOKENS,
        show_progress=False,
    )
    vocab = bpe.get_vocab()
    tokenizer = RobertaTokenizerFast(vocab=vocab, merges=_merges_of(bpe))
    return add_speaker_tokens(tokenizer, num_speaker_tokens)


def _merges_of(bpe: Any) -> list[tuple[str, str]]:
    import json

    model = json.loads(bpe._tokenizer.to_str())["model"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def build_feature_extractor(sampling_rate: int = 16000) -> Wav2Vec2FeatureExtractor:
    """data2vec-audio's feature extractor: per-utterance zero-mean/unit-variance, zero padding, attention mask."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )


def build_image_processor(size: int = 224, statistics: str = "kinetics") -> VideoMAEImageProcessorPil:
    """A VideoMAE-style frame processor without torchvision: shortest edge → `size`, centre crop, normalisation
    with `statistics` (`"kinetics"`: TimeSformer-k400's own; `"imagenet"`: what the original code used)."""
    mean, std = PIXEL_STATISTICS[statistics]
    return VideoMAEImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(mean),
        image_std=list(std),
    )


def build_processor(
    config: TelMEConfig, tokenizer: PreTrainedTokenizerBase | str | None = None, **tokenizer_kwargs: Any
) -> TelMEProcessor:
    """The processor matching a config: tokenizer with speaker tokens, feature extractor, frame processor.

    Args:
        config: the model's configuration (prompt, lengths, image size and padding side come from it).
        tokenizer: a tokenizer object, a Hub id / folder to load one from, or None for the text backbone's own
            (`config.text_config.name_or_path`, e.g. `roberta-large`). Speaker tokens are added when missing.

    Example:

    ```python
    >>> processor = build_processor(TelMEConfig.from_preset("meld"))  # downloads roberta-large's tokenizer
    ```
    """
    if tokenizer is None or isinstance(tokenizer, str):
        source = tokenizer or config.text_config.name_or_path
        if not source:
            raise ValueError("The config names no text backbone; pass `tokenizer=` (an object or a Hub id/folder).")
        tokenizer = AutoTokenizer.from_pretrained(source, **tokenizer_kwargs)
    if speaker_token(config.num_speaker_tokens - 1) not in tokenizer.get_vocab():
        add_speaker_tokens(tokenizer, config.num_speaker_tokens)
    if len(tokenizer) > config.text_config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the text backbone's embedding has "
            f"{config.text_config.vocab_size}; set `text_config.vocab_size` to at least {len(tokenizer)}."
        )
    return TelMEProcessor(
        tokenizer=tokenizer,
        feature_extractor=build_feature_extractor(config.audio_sampling_rate),
        image_processor=build_image_processor(config.video_config.image_size, config.video_pixel_statistics),
        prompt_template=config.prompt_template,
        max_text_length=config.max_text_length,
        num_speaker_tokens=config.num_speaker_tokens,
        audio_padding_side="left" if config.audio_pooling == "first" else "right",
        reference_tokenization=config.reference_tokenization,
        audio_max_samples=config.audio_max_samples,
        audio_keep=config.audio_keep,
        audio_normalize_before_keep=config.audio_normalize_before_keep,
    )


__all__ = ["add_speaker_tokens", "train_tokenizer", "build_feature_extractor", "build_image_processor", "build_processor"]
