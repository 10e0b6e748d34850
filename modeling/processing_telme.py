# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelMEProcessor: dialogue turns → prompted teacher input; waveforms → input_values; frames → pixel_values.

Hub-portable: imports only numpy, torch and transformers; copied verbatim into every saved checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .configuration_telme import validate_prompt_template


# Frame normalisation (mean, std) per channel. TimeSformer-k400 was trained with the Kinetics statistics of its own
# preprocessor; the original TelME code normalised with the `MCG-NJU/videomae-base` processor's ImageNet ones.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIXEL_STATISTICS = {"kinetics": ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}

Turn = Mapping[str, Any]
"""One utterance: `{"speaker": str, "text": str}`, optionally with a precomputed `"speaker_index"` (0-based)."""


def speaker_token(index: int) -> str:
    """The added token of the `index`-th (0-based) speaker of a dialogue: `<s1>`, `<s2>`, …"""
    return f"<s{index + 1}>"


def speaker_indices(turns: Sequence[Turn]) -> list[int]:
    """Per-turn speaker index: order of first appearance in the dialogue, unless a turn carries `speaker_index`.

    Example:

    ```python
    >>> speaker_indices([{"speaker": "Ross"}, {"speaker": "Rachel"}, {"speaker": "Ross"}])
    [0, 1, 0]
    ```
    """
    seen: dict[str, int] = {}
    indices = []
    for turn in turns:
        if turn.get("speaker_index") is not None:
            indices.append(int(turn["speaker_index"]))
            continue
        indices.append(seen.setdefault(str(turn.get("speaker", "")), len(seen)))
    return indices


class TelMEProcessor(ProcessorMixin):
    r"""
    Builds every input of [`TelMEForEmotionRecognition`].

    Text: for utterance k of a dialogue the teacher reads `<s_i> u_1 <s_j> u_2 … <s_i> u_k </s> Now <s_i> feels
    <mask>`, where `<s_n>` is the token of the n-th speaker to appear. The history is truncated from the left so the
    prompt is always whole, and batches are padded on the left so that the `<mask>` is the last position.

    Args:
        tokenizer: a RoBERTa tokenizer that knows the speaker tokens `<s1>` … `<sN>` (see `add_speaker_tokens`).
        feature_extractor: a `Wav2Vec2FeatureExtractor` (per-utterance normalisation, 16 kHz).
        image_processor: a VideoMAE-style image processor (resize, centre crop, normalise).
        prompt_template: the prompt after `</s>`; `{speaker}` and `{mask}` are filled in, `{mask}` must end it.
        max_text_length: token budget of the teacher input (the original keeps the last 511 tokens + `<mask>`).
        num_speaker_tokens: how many speaker tokens the tokenizer was extended with.
        audio_padding_side: `"right"` with an attention mask (clean) or `"left"` (the original's zero left-padding).
        audio_max_samples: longest waveform the audio student reads, in samples (`None`: no limit). The original
            keeps 400000.
        audio_keep: which end of a longer waveform is kept, `"first"` or `"last"` (the original's).
        audio_normalize_before_keep: normalise the whole waveform and then keep `audio_max_samples` of it, as the
            original did; by default the kept part is normalised on its own.
        reference_tokenization: encode the teacher's text exactly as the original code did (transformers 4.27's
            slow `RobertaTokenizer` with the speaker tokens added as plain strings). Three differences from the
            default: the whitespace on both sides of `<s1>` … `<sN>` is dropped, so the word after a speaker token
            has no leading-space marker (`hello`, not `Ġhello`), while `</s>` keeps its spaces (`fine Ġ </s> ĠNow`);
            utterances are not stripped (their edge whitespace reaches the tokenizer where no speaker token eats
            it, e.g. next to IEMOCAP's non-special `<s10>`…); and `<mask>` is appended as an id after keeping the
            last `max_text_length - 1` text tokens. Converted original checkpoints set it.

    Example:

    ```python
    >>> dialogue = [{"speaker": "Ross", "text": "Hi."}, {"speaker": "Rachel", "text": "Oh, hi!"}]
    >>> processor.build_prompt(dialogue)
    '<s1> Hi. <s2> Oh, hi! </s> Now <s2> feels <mask>'
    >>> batch = processor(conversations=[dialogue[:1], dialogue])  # one prediction per conversation (last turn)
    ```
    """

    def __init__(
        self,
        tokenizer: Any = None,
        feature_extractor: Any = None,
        image_processor: Any = None,
        prompt_template: str = "Now {speaker} feels {mask}",
        max_text_length: int = 512,
        num_speaker_tokens: int = 9,
        audio_padding_side: str = "right",
        reference_tokenization: bool = False,
        audio_max_samples: int | None = None,
        audio_keep: str = "first",
        audio_normalize_before_keep: bool = False,
    ) -> None:
        validate_prompt_template(prompt_template)
        if audio_padding_side not in ("right", "left"):
            raise ValueError(f"`audio_padding_side` must be 'right' or 'left', got {audio_padding_side!r}.")
        if audio_keep not in ("first", "last"):
            raise ValueError(f"`audio_keep` must be 'first' or 'last', got {audio_keep!r}.")
        if audio_max_samples is not None and (not isinstance(audio_max_samples, int) or audio_max_samples < 1):
            raise ValueError(f"`audio_max_samples` must be a positive integer or None, got {audio_max_samples!r}.")
        self.prompt_template = prompt_template
        self.max_text_length = max_text_length
        self.num_speaker_tokens = num_speaker_tokens
        self.audio_padding_side = audio_padding_side
        self.reference_tokenization = reference_tokenization
        self.audio_max_samples = audio_max_samples
        self.audio_keep = audio_keep
        self.audio_normalize_before_keep = audio_normalize_before_keep
        super().__init__(tokenizer, feature_extractor, image_processor)

    # ----------------------------------------------------------------------------------------------------- text
    def build_prompt(self, turns: Sequence[Turn], index: int | None = None) -> str:
        """The teacher's input string for turn `index` (default: the last) of a dialogue, before truncation.

        Only turns up to `index` are read: the model never sees the future of the conversation.
        """
        if not turns:
            raise ValueError("A conversation needs at least one turn.")
        index = len(turns) - 1 if index is None else index
        if not -len(turns) <= index < len(turns):
            raise IndexError(f"Turn index {index} is out of range for a conversation of {len(turns)} turns.")
        index %= len(turns)
        history = turns[: index + 1]
        indices = speaker_indices(history)
        if self.reference_tokenization:
            # The original joins "<s_i> " + utterance + " " per turn and strips only the ends of the whole string.
            context = "".join(f"{speaker_token(i)} {turn['text']} " for i, turn in zip(indices, history)).strip()
        else:
            context = " ".join(f"{speaker_token(i)} {str(turn['text']).strip()}" for i, turn in zip(indices, history))
        prompt = self.prompt_template.format(speaker=speaker_token(indices[-1]), mask=self.tokenizer.mask_token)
        return f"{context} {self.tokenizer.sep_token} {prompt}"

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt, keeping the last `max_text_length` tokens so the `<mask>` prompt survives."""
        if self.reference_tokenization:
            return self._encode_prompt_as_original(prompt)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return ids[-self.max_text_length :]

    def _encode_prompt_as_original(self, prompt: str) -> list[int]:
        # transformers 4.27's slow tokenizer stripped the spaces around added tokens that were given as plain
        # strings (the speaker tokens) but not around `</s>`, which carries explicit no-strip flags; the original
        # then appended the `<mask>` id to the last 511 tokens.
        mask = self.tokenizer.mask_token
        text = prompt.rstrip()
        if text.endswith(mask):
            text = text[: -len(mask)].rstrip()
        tokens = sorted((speaker_token(i) for i in range(self.num_speaker_tokens)), key=len, reverse=True)
        pattern = r"\s*(" + "|".join(re.escape(token) for token in tokens) + r")\s*"
        text = re.sub(pattern, r"\1", text)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[max(0, len(ids) - (self.max_text_length - 1)) :] + [self.tokenizer.mask_token_id]

    def _pad_left(self, sequences: list[list[int]]) -> dict[str, torch.Tensor]:
        # Left padding keeps `<mask>` at the final position; RoBERTa derives positions from non-pad tokens, so
        # left padding does not shift them.
        width = max(len(ids) for ids in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            if ids:
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, width - len(ids) :] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    # ----------------------------------------------------------------------------------------------------- call
    def __call__(
        self,
        conversations: Sequence[Turn] | Sequence[Sequence[Turn]] | None = None,
        audio: np.ndarray | Sequence[np.ndarray] | None = None,
        videos: np.ndarray | Sequence[np.ndarray] | None = None,
        sampling_rate: int | None = None,
        return_tensors: str = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Prepare a batch. Every argument is optional; give the modalities you need.

        Args:
            conversations: one conversation (a list of turns) or a batch of them; each is encoded for its last turn.
            audio: one waveform or a list (1-D float arrays at `sampling_rate`, 16 kHz by default).
            videos: one clip or a list of clips, each `(num_frames, height, width, 3)` uint8 RGB.
            sampling_rate: rate of `audio`; checked against the feature extractor's.

        Returns:
            `BatchFeature` with `input_ids`/`attention_mask`, `input_values`/`audio_attention_mask`,
            `pixel_values` of shape `(batch, num_frames, 3, height, width)` — whichever were requested.
        """
        if conversations is None and audio is None and videos is None:
            raise ValueError("Give at least one of `conversations`, `audio` or `videos`.")
        data: dict[str, Any] = {}
        if conversations is not None:
            if conversations and isinstance(conversations[0], Mapping):
                conversations = [conversations]
            data.update(self._pad_left([self.encode_prompt(self.build_prompt(turns)) for turns in conversations]))
        if audio is not None:
            data.update(self._encode_audio(audio, sampling_rate))
        if videos is not None:
            data["pixel_values"] = self._encode_videos(videos)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _encode_audio(self, audio: np.ndarray | Sequence[np.ndarray], sampling_rate: int | None) -> dict[str, Any]:
        if isinstance(audio, np.ndarray) and audio.ndim == 1:
            audio = [audio]
        audio = [np.asarray(wave, dtype=np.float32) for wave in audio]
        empty = [i for i, wave in enumerate(audio) if wave.size == 0]
        if empty:
            raise ValueError(f"Audio item(s) {empty} are empty; decode them with a bad-media policy first.")
        if not self.audio_normalize_before_keep:
            audio = [self._keep_audio(wave) for wave in audio]
        # Normalise each waveform on its own, then pad: the feature extractor's masked normalisation assumes right
        # padding and would normalise the padding (and zero the speech) of a left-padded batch.
        normalised = self.feature_extractor(
            audio, sampling_rate=sampling_rate or self.feature_extractor.sampling_rate, padding=False
        )["input_values"]
        if self.audio_normalize_before_keep:
            normalised = [self._keep_audio(np.asarray(wave)) for wave in normalised]
        width = max(len(wave) for wave in normalised)
        input_values = torch.full((len(normalised), width), float(self.feature_extractor.padding_value))
        attention_mask = torch.zeros((len(normalised), width), dtype=torch.long)
        for row, wave in enumerate(normalised):
            span = slice(width - len(wave), width) if self.audio_padding_side == "left" else slice(0, len(wave))
            input_values[row, span] = torch.as_tensor(np.asarray(wave, dtype=np.float32))
            attention_mask[row, span] = 1
        return {"input_values": input_values, "audio_attention_mask": attention_mask}

    def _keep_audio(self, wave: np.ndarray) -> np.ndarray:
        """At most `audio_max_samples` of a waveform, from the end `audio_keep` names."""
        limit = self.audio_max_samples
        if limit is None or len(wave) <= limit:
            return wave
        return wave[:limit] if self.audio_keep == "first" else wave[-limit:]

    def _encode_videos(self, videos: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        if isinstance(videos, np.ndarray) and videos.ndim == 4:
            videos = [videos]
        clips = [[np.asarray(frame) for frame in clip] for clip in videos]
        lengths = {len(clip) for clip in clips}
        if len(lengths) != 1:
            raise ValueError(f"All clips of a batch need the same number of frames, got {sorted(lengths)}.")
        pixel_values = self.image_processor(clips, return_tensors="pt")["pixel_values"]
        return torch.as_tensor(pixel_values)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values"]


__all__ = ["TelMEProcessor", "speaker_token", "speaker_indices"]
