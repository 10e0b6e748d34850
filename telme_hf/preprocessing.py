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
from .logging import get_logger
from .modeling.configuration_telme import behaviour_values
from .modeling.processing_telme import PIXEL_STATISTICS, PROCESSOR_REFERENCE_BEHAVIOUR, speaker_token


# Preprocessing a preset needs besides the defaults.
PROCESSOR_PRESETS: dict[str, dict[str, Any]] = {
    "meld": {},
    # The original's 30-second rule is MELD's only.
    "iemocap": {"max_media_seconds": PROCESSOR_REFERENCE_BEHAVIOUR["max_media_seconds"][0]},
    # A from-scratch 2-layer teacher generalises far better reading the current utterance and a turn or two of
    # context than the whole dialogue (test accuracy 0.73 vs 0.53 on the synthetic corpus).
    "tiny": {"max_text_length": 32},
}


logger = get_logger("telme_hf")


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
    config: TelMEConfig,
    tokenizer: PreTrainedTokenizerBase | str | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> TelMEProcessor:
    """The processor matching a config: tokenizer with speaker tokens, feature extractor, frame processor, and the
    preprocessing contract.

    The preprocessing options come, in increasing precedence, from the clean defaults or with
    `config.reference_behaviour` the original's (`PROCESSOR_REFERENCE_BEHAVIOUR`), the config's preset
    (`PROCESSOR_PRESETS`), a checkpoint of telme_hf 0.1 that kept them in its config (`legacy_preprocessing`), and
    `options`. Frames are sized for the video backbone and audio is padded on the left when the model pools the
    first frame.

    Args:
        config: the model's configuration.
        tokenizer: a tokenizer object, a Hub id / folder to load one from, or None for the text backbone's own
            (`config.text_config.name_or_path`, e.g. `roberta-large`). Speaker tokens are added when missing.
        tokenizer_kwargs: passed to `AutoTokenizer.from_pretrained` (e.g. `local_files_only=True`).
        **options: any `TelMEProcessor` option, e.g. `max_text_length=256`.

    Example:

    ```python
    >>> processor = build_processor(TelMEConfig.from_preset("meld"))  # downloads roberta-large's tokenizer
    >>> build_processor(TelMEConfig.from_preset("meld", reference_behaviour=True)).max_media_seconds  # doctest: +SKIP
    30.0
    ```
    """
    if tokenizer is None or isinstance(tokenizer, str):
        source = tokenizer or config.text_config.name_or_path
        if not source:
            raise ValueError("The config names no text backbone; pass `tokenizer=` (an object or a Hub id/folder).")
        tokenizer = AutoTokenizer.from_pretrained(source, **(tokenizer_kwargs or {}))
    if speaker_token(config.num_speaker_tokens - 1) not in tokenizer.get_vocab():
        add_speaker_tokens(tokenizer, config.num_speaker_tokens)
    if len(tokenizer) > config.text_config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the text backbone's embedding has "
            f"{config.text_config.vocab_size}; set `text_config.vocab_size` to at least {len(tokenizer)}."
        )
    resolved = processor_options(config, **options)
    processor = TelMEProcessor(
        tokenizer=tokenizer,
        feature_extractor=build_feature_extractor(resolved.pop("audio_sampling_rate")),
        image_processor=build_image_processor(config.video_config.image_size, resolved["video_pixel_statistics"]),
        **resolved,
    )
    positions = config.text_config.max_position_embeddings - config.text_config.pad_token_id - 1
    if processor.max_text_length > positions:
        raise ValueError(
            f"`max_text_length={processor.max_text_length}` exceeds the {positions} positions of the text backbone; "
            f"pass max_text_length={positions} or less."
        )
    return processor


def processor_options(config: TelMEConfig, **options: Any) -> dict[str, Any]:
    """Every preprocessing option a model's processor gets (see `build_processor`), before any tokenizer exists:
    the corpus loaders need some of them (speaker indexing, CSV text) to read the data a tokenizer is trained on.

    Example:

    ```python
    >>> processor_options(TelMEConfig.from_preset("iemocap", reference_behaviour=True))["max_media_seconds"] is None
    True
    ```
    """
    resolved = {
        **PROCESSOR_PRESETS.get(config.preset or "", {}),
        **legacy_processor_options(config),
        **options,
    }
    resolved.update(behaviour_values(PROCESSOR_REFERENCE_BEHAVIOUR, resolved, config.reference_behaviour))
    resolved.setdefault("audio_sampling_rate", 16000)
    resolved.setdefault("num_frames", config.video_config.num_frames)
    resolved.setdefault("num_speaker_tokens", config.num_speaker_tokens)
    resolved.setdefault("audio_padding_side", "left" if config.audio_pooling == "first" else "right")
    resolved.setdefault("reference_behaviour", config.reference_behaviour)
    resolved.setdefault("audio_min_samples", min_audio_samples(config.audio_config))
    return resolved


def min_audio_samples(audio_config: Any) -> int:
    """The fewest waveform samples from which the audio encoder's convolutions give enough frames: one, or as many
    as SpecAugment masks at once (`mask_time_length`) when it is on.

    Example:

    ```python
    >>> min_audio_samples(TelMEConfig.from_preset("meld").audio_config)  # 3 frames of data2vec-audio-base
    1040
    ```
    """
    frames = max(1, int(audio_config.mask_time_length)) if audio_config.mask_time_prob > 0 else 1
    samples = frames
    for kernel, stride in reversed(list(zip(audio_config.conv_kernel, audio_config.conv_stride))):
        samples = (samples - 1) * stride + kernel
    return samples


# Preprocessing options that checkpoints of telme_hf 0.1 kept in config.json; they belong to the processor now. Such
# a config still loads (they are plain attributes of it); telme_hf applies them to the processor when it loads the
# checkpoint, and `telme upgrade-checkpoint` moves them into processor_config.json. A config saved in between keeps
# them in one `legacy_preprocessing` dict.
LEGACY_PREPROCESSING_OPTIONS = (
    "prompt_template", "max_text_length", "audio_sampling_rate", "audio_reference_rate", "audio_max_samples",
    "audio_keep", "audio_normalize_before_keep", "video_num_frames", "video_frame_sampling", "video_channel_order",
    "video_pixel_statistics", "video_window_margin", "speaker_index_carryover", "reference_tokenization",
    "max_media_seconds", "text_normalization",
)


def legacy_processor_options(config: Any) -> dict[str, Any]:
    """The preprocessing options a telme_hf 0.1 checkpoint kept in its config.json, as `TelMEProcessor` options.

    Example:

    ```python
    >>> legacy_processor_options(TelMEConfig(max_text_length=64, video_num_frames=4))
    {'max_text_length': 64, 'num_frames': 4}
    ```
    """
    legacy = {name: getattr(config, name) for name in LEGACY_PREPROCESSING_OPTIONS if hasattr(config, name)}
    legacy.update(getattr(config, "legacy_preprocessing", None) or {})
    renamed = {"video_num_frames": "num_frames"}
    return {renamed.get(name, name): value for name, value in legacy.items()}


def apply_legacy_preprocessing(processor: TelMEProcessor, config: Any, source: str = "") -> bool:
    """Give a loaded processor the preprocessing options its checkpoint kept in config.json (telme_hf 0.1).

    Returns:
        Whether there were any; a warning then names the command that moves them into processor_config.json.
    """
    options = legacy_processor_options(config)
    options.pop("audio_sampling_rate", None)  # the feature extractor's rate, saved with it already
    if not options:
        return False
    for name, value in options.items():
        setattr(processor, name, value)
    processor.validate()
    logger.warning(
        "%s keeps its preprocessing options in config.json (a telme_hf 0.1 checkpoint); they are applied. Run "
        "`telme upgrade-checkpoint %s` to move them into processor_config.json.", source or "This checkpoint",
        source or "FOLDER",
    )
    return True


__all__ = [
    "LEGACY_PREPROCESSING_OPTIONS",
    "add_speaker_tokens",
    "apply_legacy_preprocessing",
    "build_feature_extractor",
    "build_image_processor",
    "build_processor",
    "legacy_processor_options",
    "min_audio_samples",
    "processor_options",
    "train_tokenizer",
]
