# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelMEProcessor: dialogue turns → prompted teacher input; waveforms → input_values; frames → pixel_values.

The processor is a checkpoint's preprocessing contract, saved in `processor_config.json`: the prompt and
tokenisation, speaker indexing and CSV text, the audio's rate and length, which frames are picked and how they are
coloured, and the longest media accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .configuration_telme import behaviour_values
from .media_telme import array_frames


# Frame normalisation (mean, std).
PIXEL_STATISTICS = {"kinetics": ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
                    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}

TEXT_NORMALIZATIONS = ("cp1252", "none")

# Every behaviour of the original in what the network is fed (see `TelMEProcessor`): (clean default, original value).
PROCESSOR_REFERENCE_BEHAVIOUR: dict[str, tuple[Any, Any]] = {
    "text_normalization": ("cp1252", "none"),
    "speaker_index_carryover": (False, True),
    "reference_tokenization": (False, True),
    "audio_reference_rate": (False, True),
    # The original normalises the whole waveform, then keeps its last 400000 samples (~18 s at 22.05 kHz).
    "audio_max_samples": (None, 400000),
    "audio_keep": ("first", "last"),
    "audio_normalize_before_keep": (False, True),
    # 60 s fits every MELD and IEMOCAP utterance but two mis-cut MELD test clips, and bounds decoding and the audio
    # encoder's attention (a 5-minute clip would need ~29 GB). The original zeroes MELD clips over 30 s.
    "max_media_seconds": (60.0, 30.0),
    "video_frame_sampling": ("uniform", "strided"),
    "video_channel_order": ("rgb", "bgr"),
    "video_window_margin": (0.0, 1.0),
    "video_pixel_statistics": ("kinetics", "imagenet"),
}

_NOT_GIVEN: Any = object()

Turn = Mapping[str, Any]  # {"speaker": str, "text": str}, optionally with a precomputed 0-based "speaker_index"


def speaker_token(index: int) -> str:
    """The added token of the `index`-th (0-based) speaker of a dialogue: `<s1>`, `<s2>`, …"""
    return f"<s{index + 1}>"


def first_appearance_indices(keys: Sequence[Any]) -> list[int]:
    """0-based index of each key in order of first appearance: `["Ross", "Rachel", "Ross"]` → `[0, 1, 0]`."""
    seen: dict[Any, int] = {}
    return [seen.setdefault(key, len(seen)) for key in keys]


def speaker_indices(turns: Sequence[Turn]) -> list[int]:
    """Per-turn speaker index: a turn's `speaker_index` if given, else the speaker's order of first appearance."""
    clean = first_appearance_indices([str(turn.get("speaker", "")) for turn in turns])
    return [int(turn["speaker_index"]) if turn.get("speaker_index") is not None else index
            for turn, index in zip(turns, clean)]


class TelMEProcessor(ProcessorMixin):
    r"""
    Builds every input of [`TelMEForEmotionRecognition`]; its options also say how media is decoded.

    For utterance k the teacher reads `<s_i> u_1 <s_j> u_2 … <s_i> u_k </s> Now <s_i> feels <mask>`, `<s_n>` being the
    token of the n-th speaker to appear (speakers beyond the speaker tokens share the last). The history is truncated
    from the left so the prompt stays whole, and batches are padded on the left so `<mask>` is the last position.

    Every option is saved in `processor_config.json`. Those of `PROCESSOR_REFERENCE_BEHAVIOUR` take their clean value
    by default and the original's with `reference_behaviour=True`.

    Args:
        tokenizer: a RoBERTa tokenizer that knows the speaker tokens `<s1>` … `<sN>`.
        feature_extractor: a `Wav2Vec2FeatureExtractor`; its `sampling_rate` is the rate waveforms are decoded to.
        image_processor: a VideoMAE-style image processor; frames are decoded at its sizes.
        prompt_template: the prompt after `</s>`; `{speaker}` and `{mask}` are filled in, `{mask}` must end it.
        max_text_length: token budget of the teacher input.
        num_speaker_tokens: how many speaker tokens the tokenizer was extended with.
        audio_padding_side: `"right"` with an attention mask, or `"left"` (the original's zero left-padding, which its
            first-frame audio pooling reads).
        num_frames: frames per clip; clips of any length are picked down to it.
        audio_min_samples: the shortest waveform the audio encoder reads; a shorter one is bad media.
        text_normalization: how the corpus loaders read the CSVs' text: `"cp1252"` maps the Windows-1252 leftovers
            of MELD's CSVs (such as U+0092) to their punctuation and strips the cells; `"none"` keeps each cell as
            `csv.reader` reads the UTF-8 file, as the original.
        speaker_index_carryover: index each dialogue's first turn against the previous dialogue's speakers, as the
            original.
        reference_tokenization: encode as the original did (transformers 4.27's slow tokenizer with the speaker
            tokens as plain strings): no whitespace around `<s1>` … `<sN>` (`hello`, not `Ġhello`) while `</s>` keeps
            its spaces; utterances not stripped; `<mask>` appended as an id after the last `max_text_length - 1`
            text tokens.
        audio_reference_rate: decode audio at librosa's 22050 Hz and declare it to be the feature extractor's rate,
            as the original.
        audio_max_samples: longest waveform the audio student reads, in samples (`None`: no limit).
        audio_keep: which end of a longer waveform is kept, `"first"` or `"last"`.
        audio_normalize_before_keep: normalise the whole waveform, then keep `audio_max_samples` of it.
        max_media_seconds: media longer than this is bad media, and decoding stops there; `None` accepts any length.
        video_frame_sampling: `"uniform"` over the clip, or the original's `"strided"` picks.
        video_channel_order: `"rgb"`, or `"bgr"` (the original fed BGR frames to an RGB model).
        video_window_margin: seconds added on both sides of a time window before frames are picked (the original
            cuts IEMOCAP's video from the dialogue AVI at `[max(start - 1, 0), end + 1]`).
        video_pixel_statistics: the image processor's normalisation statistics: TimeSformer-k400's `"kinetics"`, or
            the original's `"imagenet"` (VideoMAE's processor).
        reference_behaviour: the original value for every behaviour not given explicitly.

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
        num_frames: int = 8,
        audio_min_samples: int = 1,
        text_normalization: str = _NOT_GIVEN,
        speaker_index_carryover: bool = _NOT_GIVEN,
        reference_tokenization: bool = _NOT_GIVEN,
        audio_reference_rate: bool = _NOT_GIVEN,
        audio_max_samples: int | None = _NOT_GIVEN,
        audio_keep: str = _NOT_GIVEN,
        audio_normalize_before_keep: bool = _NOT_GIVEN,
        max_media_seconds: float | None = _NOT_GIVEN,
        video_frame_sampling: str = _NOT_GIVEN,
        video_channel_order: str = _NOT_GIVEN,
        video_window_margin: float = _NOT_GIVEN,
        video_pixel_statistics: str = _NOT_GIVEN,
        reference_behaviour: bool = False,
    ) -> None:
        self.prompt_template = prompt_template
        self.max_text_length = max_text_length
        self.num_speaker_tokens = num_speaker_tokens
        self.audio_padding_side = audio_padding_side
        self.num_frames = num_frames
        self.audio_min_samples = audio_min_samples
        self.reference_behaviour = reference_behaviour
        given = {name: value for name, value in locals().items()
                 if name in PROCESSOR_REFERENCE_BEHAVIOUR and value is not _NOT_GIVEN}
        for name, value in behaviour_values(PROCESSOR_REFERENCE_BEHAVIOUR, given, reference_behaviour).items():
            setattr(self, name, value)
        self.validate()
        super().__init__(tokenizer, feature_extractor, image_processor)

    def validate(self) -> None:
        """Raise a `ValueError` naming the option when a preprocessing option cannot work."""
        template = self.prompt_template
        if "{speaker}" not in template or not template.endswith("{mask}"):
            raise ValueError(
                f"`prompt_template` needs `{{speaker}}` and must end exactly with `{{mask}}` (the model reads the last "
                f"position, so nothing may follow it, not even a space), got {template!r}."
            )
        choices = {
            "audio_padding_side": ("right", "left"),
            "audio_keep": ("first", "last"),
            "text_normalization": TEXT_NORMALIZATIONS,
            "video_frame_sampling": ("uniform", "strided"),
            "video_channel_order": ("rgb", "bgr"),
            "video_pixel_statistics": tuple(PIXEL_STATISTICS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}.")
        for name in ("max_text_length", "num_speaker_tokens", "num_frames", "audio_min_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        limit = self.audio_max_samples
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"`audio_max_samples` must be a positive integer or None, got {limit!r}.")
        for name in ("max_media_seconds", "video_window_margin"):
            value = getattr(self, name)
            if value is None and name == "max_media_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value != value:
                raise ValueError(f"`{name}` must be a number of seconds >= 0, got {value!r}.")
        if self.max_media_seconds == 0:
            raise ValueError("`max_media_seconds` must be positive (or None for no limit), got 0.")

    @property
    def uses_reference_behaviour(self) -> dict[str, bool]:
        """For each behaviour in `PROCESSOR_REFERENCE_BEHAVIOUR`, whether this processor uses the original value."""
        return {name: getattr(self, name) == original
                for name, (_, original) in PROCESSOR_REFERENCE_BEHAVIOUR.items()}

    def build_prompt(self, turns: Sequence[Turn], index: int | None = None) -> str:
        """The teacher's input string for turn `index` (default: the last), from the turns up to it only."""
        if not turns:
            raise ValueError("A conversation needs at least one turn.")
        index = len(turns) - 1 if index is None else index
        if not -len(turns) <= index < len(turns):
            raise IndexError(f"Turn index {index} is out of range for a conversation of {len(turns)} turns.")
        index %= len(turns)
        history = turns[: index + 1]
        indices = speaker_indices(history)
        if self.reference_tokenization:
            # The original joins "<s_i> " + utterance + " " per turn (writing `<s10>`, ... as plain text) and strips
            # only the ends of the whole string.
            context = "".join(f"{speaker_token(i)} {turn['text']} " for i, turn in zip(indices, history)).strip()
        else:
            indices = [min(i, self.num_speaker_tokens - 1) for i in indices]
            context = " ".join(f"{speaker_token(i)} {str(turn['text']).strip()}" for i, turn in zip(indices, history))
        prompt = self.prompt_template.format(speaker=speaker_token(indices[-1]), mask=self.tokenizer.mask_token)
        return f"{context} {self.tokenizer.sep_token} {prompt}"

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt, keeping the last `max_text_length` tokens so the `<mask>` prompt survives."""
        if not self.reference_tokenization:
            return self.tokenizer(prompt, add_special_tokens=False)["input_ids"][-self.max_text_length :]
        # transformers 4.27's slow tokenizer stripped the spaces around added tokens given as plain strings (the
        # speaker tokens), not around `</s>`; the original then appended the `<mask>` id to the last 511 tokens.
        mask = self.tokenizer.mask_token
        text = prompt.rstrip()
        if text.endswith(mask):
            text = text[: -len(mask)].rstrip()
        tokens = sorted((speaker_token(i) for i in range(self.num_speaker_tokens)), key=len, reverse=True)
        text = re.sub(r"\s*(" + "|".join(re.escape(token) for token in tokens) + r")\s*", r"\1", text)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[max(0, len(ids) - (self.max_text_length - 1)) :] + [self.tokenizer.mask_token_id]

    def __call__(
        self,
        conversations: Sequence[Turn] | Sequence[Sequence[Turn]] | None = None,
        audio: np.ndarray | Sequence[np.ndarray] | None = None,
        videos: np.ndarray | Sequence[np.ndarray] | None = None,
        sampling_rate: int | None = None,
        return_tensors: str = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Prepare a batch of any of the modalities.

        Args:
            conversations: one conversation (a list of turns) or a batch of them, each encoded for its last turn.
                There is no `text=`: the prompt needs each turn's speaker.
            audio: one waveform or a list (1-D float arrays at `sampling_rate`).
            videos: one clip or a list, each `(num_frames, height, width, 3)` RGB, uint8 or float in [0, 1] (or a list
                of such frames); picked to `num_frames`.
            sampling_rate: rate of `audio`, checked against the feature extractor's.

        Returns:
            `BatchFeature` with `input_ids`/`attention_mask` (the text's mask), `input_values`/`audio_attention_mask`
            (the audio's mask, named apart so both fit one batch) and `pixel_values`
            `(batch, num_frames, 3, height, width)`, for the modalities given.

        Raises:
            `TypeError` for any other keyword (`text=`, `images=`, ...), which would otherwise be ignored.
        """
        if kwargs:
            raise TypeError(
                f"TelMEProcessor does not take {', '.join(f'`{k}=`' for k in sorted(kwargs))}; it accepts "
                "`conversations=` (lists of {'speaker', 'text'} turns), `audio=`, `videos=`, `sampling_rate=` and "
                "`return_tensors=`."
            )
        if conversations is None and audio is None and videos is None:
            raise ValueError("Give at least one of `conversations`, `audio` or `videos`.")
        data: dict[str, Any] = {}
        if conversations is not None:
            if conversations and isinstance(conversations[0], Mapping):
                conversations = [conversations]
            sequences = [self.encode_prompt(self.build_prompt(turns)) for turns in conversations]
            data["input_ids"], data["attention_mask"] = self._pad(
                sequences, self.tokenizer.pad_token_id, torch.long, "left")
        if audio is not None:
            data["input_values"], data["audio_attention_mask"] = self._encode_audio(audio, sampling_rate)
        if videos is not None:
            data["pixel_values"] = self._encode_videos(videos)
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _pad(sequences: list, value: float, dtype: torch.dtype, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        # Text is padded on the left so `<mask>` is last; RoBERTa derives positions from non-pad tokens, so left
        # padding does not shift them.
        width = max(len(sequence) for sequence in sequences)
        values = torch.full((len(sequences), width), value, dtype=dtype)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            if len(sequence):
                span = slice(width - len(sequence), width) if side == "left" else slice(0, len(sequence))
                values[row, span] = torch.as_tensor(np.asarray(sequence), dtype=dtype)
                mask[row, span] = 1
        return values, mask

    def _encode_audio(self, audio: np.ndarray | Sequence[np.ndarray], sampling_rate: int | None):
        if isinstance(audio, np.ndarray) and audio.ndim == 1:
            audio = [audio]
        audio = [np.asarray(wave, dtype=np.float32) for wave in audio]
        empty = [i for i, wave in enumerate(audio) if wave.size == 0]
        if empty:
            raise ValueError(f"Audio item(s) {empty} are empty; decode them with a bad-media policy first.")
        if not self.audio_normalize_before_keep:
            audio = [self._keep_audio(wave) for wave in audio]
        # Normalise each waveform on its own, then pad: the feature extractor's masked normalisation assumes right
        # padding and would normalise the padding of a left-padded batch.
        normalised = self.feature_extractor(
            audio, sampling_rate=sampling_rate or self.feature_extractor.sampling_rate, padding=False
        )["input_values"]
        if self.audio_normalize_before_keep:
            normalised = [self._keep_audio(np.asarray(wave)) for wave in normalised]
        normalised = [np.asarray(wave, dtype=np.float32) for wave in normalised]
        return self._pad(normalised, float(self.feature_extractor.padding_value), torch.float32,
                         self.audio_padding_side)

    def _keep_audio(self, wave: np.ndarray) -> np.ndarray:
        limit = self.audio_max_samples
        if limit is None or len(wave) <= limit:
            return wave
        return wave[:limit] if self.audio_keep == "first" else wave[-limit:]

    def _encode_videos(self, videos: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        if isinstance(videos, np.ndarray) and videos.ndim == 4:
            videos = [videos]
        clips = []
        for index, clip in enumerate(videos):
            # Picked down (or up) to the model's frames like decoded clips, as uint8 (see `array_frames`).
            try:
                clip = array_frames(clip, self.num_frames, self.video_frame_sampling, f"clip {index}")
            except ValueError as error:  # the processor takes arrays only: name that form
                raise ValueError(f"{str(error).split('; give')[0]}; a clip is (num_frames, height, width, 3) RGB "
                                 "frames, uint8 or float in [0, 1].") from None
            if self.video_channel_order == "bgr":
                clip = clip[..., ::-1]
            clips.append([np.ascontiguousarray(frame) for frame in clip])
        # Channels last, said: (1, 1, 3) or (3, H, 3) frames would be read as channels first.
        return torch.as_tensor(self.image_processor(clips, return_tensors="pt", input_data_format="channels_last")
                               ["pixel_values"])

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values"]


__all__ = ["TelMEProcessor"]
