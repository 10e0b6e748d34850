# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelME: a text teacher, audio and video students, and the Attention-based modality Shifting Fusion (ASF)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import Data2VecAudioModel, PreTrainedModel, RobertaModel, TimesformerModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput, can_return_tuple, logging

from .configuration_telme import TelMEConfig


logger = logging.get_logger(__name__)

# The backbone of each sub-config, and the flag a backbone declares for each attention implementation.
_BACKBONES = {"text_config": RobertaModel, "audio_config": Data2VecAudioModel, "video_config": TimesformerModel}
_ATTENTION_FLAGS = {"sdpa": "_supports_sdpa", "flex_attention": "_supports_flex_attn"}


def _backbone_supports(backbone: type[PreTrainedModel], attn_implementation: str | None) -> bool:
    if attn_implementation in (None, "eager", "paged|eager"):
        return True
    flag = "_supports_flash_attn" if "flash" in attn_implementation else _ATTENTION_FLAGS.get(attn_implementation)
    return bool(getattr(backbone, flag or "_supports_attention_backend", False))


@dataclass
class TelMEOutput(ModelOutput):
    r"""
    Output of [`TelMEForEmotionRecognition`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Cross-entropy of `logits` against `labels`, when labels are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            The fusion's logits when all three modalities are given, else those of the one modality given.
        text_logits, audio_logits, video_logits, fusion_logits (`torch.FloatTensor`, *optional*):
            Each part's own classifier output.
        text_features, audio_features, video_features (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            F_T, F_a, F_v in the shared width d, what distillation and the fusion read.
        shift_weights (`torch.FloatTensor` of shape `(batch_size,)`, *optional*):
            λ of the fusion: how far audio/video shifted each text feature.
        shift_norms (`torch.FloatTensor` of shape `(batch_size,)`, *optional*):
            ‖λH‖ / ‖F_T‖: the norm of the shift applied, relative to the text feature's (at most θ).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    text_logits: torch.FloatTensor | None = None
    audio_logits: torch.FloatTensor | None = None
    video_logits: torch.FloatTensor | None = None
    fusion_logits: torch.FloatTensor | None = None
    text_features: torch.FloatTensor | None = None
    audio_features: torch.FloatTensor | None = None
    video_features: torch.FloatTensor | None = None
    shift_weights: torch.FloatTensor | None = None
    shift_norms: torch.FloatTensor | None = None


def last_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-padding token of each row (the `<mask>`), for left or right padding."""
    seq_len = attention_mask.shape[-1]
    return seq_len - 1 - attention_mask.flip(-1).to(torch.long).argmax(-1)


def _pooled(encoder_output: ModelOutput, features: torch.Tensor) -> BaseModelOutputWithPooling:
    """A backbone's output with `pooler_output` set to the projected feature (as CLIP's `get_text_features`)."""
    return BaseModelOutputWithPooling(
        last_hidden_state=encoder_output.last_hidden_state,
        pooler_output=features,
        hidden_states=encoder_output.hidden_states,
        attentions=encoder_output.attentions,
    )


class TelMETextTeacher(nn.Module):
    """RoBERTa over `history </s> Now <s_i> feels <mask>`; the `<mask>` state, projected to d, is F_T."""

    def __init__(self, config: TelMEConfig) -> None:
        super().__init__()
        self.encoder = RobertaModel(config.text_config, add_pooling_layer=False)
        self.projection = nn.Linear(config.text_config.hidden_size, config.projection_dim)
        self.classifier = nn.Linear(config.projection_dim, config.num_labels)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        hidden = out.last_hidden_state
        mask_state = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_positions(attention_mask)]
        return _pooled(out, self.projection(mask_state))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(input_ids, attention_mask).pooler_output


class TelMEAudioStudent(nn.Module):
    """data2vec-audio over the 16 kHz waveform, pooled over time to F_a."""

    def __init__(self, config: TelMEConfig) -> None:
        super().__init__()
        self.pooling = config.audio_pooling
        self.encoder = Data2VecAudioModel(config.audio_config)
        width = config.audio_config.hidden_size
        self.projection = nn.Linear(width, config.projection_dim) if width != config.projection_dim else nn.Identity()
        self.classifier = nn.Linear(config.projection_dim, config.num_labels)

    def encode(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        if self.pooling == "first":
            # The original passes no mask and keeps frame 0 of left-zero-padded audio.
            out = self.encoder(input_values, return_dict=True, **kwargs)
            return _pooled(out, self.projection(out.last_hidden_state[:, 0]))
        out = self.encoder(input_values, attention_mask=attention_mask, return_dict=True, **kwargs)
        hidden = out.last_hidden_state
        if attention_mask is None:
            return _pooled(out, self.projection(hidden.mean(dim=1)))
        frame_mask = self.encoder._get_feature_vector_attention_mask(hidden.shape[1], attention_mask)
        frame_mask = frame_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * frame_mask).sum(dim=1) / frame_mask.sum(dim=1).clamp(min=1.0)
        return _pooled(out, self.projection(pooled))

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(input_values, attention_mask).pooler_output


class TelMEVideoStudent(nn.Module):
    """TimeSformer over T frames; the CLS state is F_v."""

    def __init__(self, config: TelMEConfig) -> None:
        super().__init__()
        self.encoder = TimesformerModel(config.video_config)
        width = config.video_config.hidden_size
        self.projection = nn.Linear(width, config.projection_dim) if width != config.projection_dim else nn.Identity()
        self.classifier = nn.Linear(config.projection_dim, config.num_labels)

    def encode(self, pixel_values: torch.Tensor, **kwargs: Any) -> BaseModelOutputWithPooling:
        out = self.encoder(pixel_values, return_dict=True, **kwargs)
        return _pooled(out, self.projection(out.last_hidden_state[:, 0]))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.encode(pixel_values).pooler_output


class TelMEFusion(nn.Module):
    r"""Attention-based modality Shifting Fusion.

    X = [F_a; F_v];  A = MHA(X) + X;  F_att = Dropout(LN(A));  g = ReLU(W₁[F_att; F_T] + b₁);
    H = g ⊙ (W₂F_att + b₂);  λ = min(θ‖F_T‖/‖H‖, 1);  Z = Dropout(LN(F_T + λH));  logits = W·Z.

    The attention runs over the two modality tokens of each utterance (`"modalities"`), or, as the original, over
    the [B, 2d] matrix as one unbatched sequence of length B (`"batch"`).
    """

    def __init__(self, config: TelMEConfig) -> None:
        super().__init__()
        dim = config.projection_dim
        self.attention_scope = config.fusion_attention_scope
        self.modality_order = tuple(config.fusion_modality_order)
        self.shift_weight = config.fusion_shift_weight
        self.attention = nn.MultiheadAttention(
            config.fusion_attention_width, config.fusion_num_heads, batch_first=self.attention_scope != "batch"
        )
        self.attention_norm = nn.LayerNorm(2 * dim)
        self.gate = nn.Linear(3 * dim, dim)
        self.shift = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(config.fusion_dropout)
        self.classifier = nn.Linear(dim, config.num_labels)

    def attend(self, audio_features: torch.Tensor, video_features: torch.Tensor) -> torch.Tensor:
        """A = MHA(X) + X over the non-verbal features, returned flat as [B, 2d]."""
        by_name = {"audio": audio_features, "video": video_features}
        first, second = (by_name[name] for name in self.modality_order)
        if self.attention_scope == "batch":
            tokens = torch.cat([first, second], dim=-1)
            return self.attention(tokens, tokens, tokens, need_weights=False)[0] + tokens
        tokens = torch.stack([first, second], dim=1)
        attended = self.attention(tokens, tokens, tokens, need_weights=False)[0] + tokens
        return attended.flatten(1)

    def forward(
        self, text_features: torch.Tensor, audio_features: torch.Tensor, video_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The logits, λ and ‖λH‖ / ‖F_T‖."""
        nonverbal = self.dropout(self.attention_norm(self.attend(audio_features, video_features)))
        gate = F.relu(self.gate(torch.cat([nonverbal, text_features], dim=-1)))
        shift = gate * self.shift(nonverbal)
        text_norm, shift_norm = text_features.norm(p=2, dim=-1), shift.norm(p=2, dim=-1)
        # A zero shift vector would divide by zero; the original treats its norm as 1 (λ then stays finite).
        safe_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        shift_weights = (self.shift_weight * text_norm / (safe_norm + 1e-6)).clamp(max=1.0)
        fused = self.dropout(self.norm(text_features + shift_weights.unsqueeze(-1) * shift))
        return self.classifier(fused), shift_weights, shift_weights * shift_norm / text_norm


class TelMEPreTrainedModel(PreTrainedModel):
    config_class = TelMEConfig
    base_model_prefix = "telme"
    main_input_name = "input_ids"
    input_modalities = ("text", "audio", "video")
    # Losses are means over the batch: let the Trainer scale them for gradient accumulation.
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    _no_split_modules = ["RobertaLayer", "Data2VecAudioEncoderLayer", "TimesformerLayer", "TelMEFusion"]
    # No attention of its own (the fusion's is torch's): every implementation is accepted, each backbone checks its own.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class TelMEForEmotionRecognition(TelMEPreTrainedModel):
    r"""
    TelME for emotion recognition in conversation: one emotion per utterance from its dialogue context (text),
    waveform (audio) and frames (video). Give one modality or all three; precomputed `*_features` skip that encoder.

    The fused loss does not train the per-modality classifiers (`text_teacher.classifier`,
    `audio_student.classifier`, `video_student.classifier`): the fusion reads features, and those heads are trained
    by stages 1 and 2, so their gradients stay `None`.

    `attn_implementation` reaches the three backbones: one name applies to each backbone that supports it
    (TimeSformer has only `"eager"` and keeps it, with a warning); a dict per sub-config, e.g.
    `{"text_config": "sdpa", "video_config": "eager"}`, is taken as asked, or raises naming the sub-model.

    Example:

    ```python
    >>> from telme_hf import TelMEConfig, TelMEForEmotionRecognition
    >>> model = TelMEForEmotionRecognition(TelMEConfig.from_preset("tiny")).eval()
    >>> out = model(input_ids=torch.tensor([[0, 5, 6, 2, 7, 4]]))
    >>> out.logits.shape
    torch.Size([1, 7])
    ```
    """

    def __init__(self, config: TelMEConfig) -> None:
        requested = config._attn_implementation  # what was asked of the whole model, before it is resolved
        super().__init__(config)
        self._fit_attention_to_backbones(requested)
        self.text_teacher = TelMETextTeacher(config)
        self.audio_student = TelMEAudioStudent(config)
        self.video_student = TelMEVideoStudent(config)
        self.fusion = TelMEFusion(config)
        self.post_init()

    def _fit_attention_to_backbones(self, requested: str | None) -> None:
        for key, backbone in _BACKBONES.items():
            sub_config = getattr(self.config, key)
            wanted = sub_config._attn_implementation
            if _backbone_supports(backbone, wanted):
                continue
            part = key.removesuffix("_config")
            if wanted == requested:  # one name for the whole model: the backbones that can use it
                logger.warning("The %s backbone (%s) has no %r attention; it keeps 'eager'.", part, backbone.__name__,
                               wanted)
                sub_config._attn_implementation = "eager"
                continue
            supported = ["eager"] + [name for name in ("sdpa", "flex_attention", "flash_attention_2")
                                     if _backbone_supports(backbone, name)]
            raise ValueError(f"The {part} sub-model ({backbone.__name__}, `{key}`) does not support "
                             f"attn_implementation={wanted!r}; it supports {supported}.")

    def get_input_embeddings(self) -> nn.Embedding:
        """The text teacher's word embeddings (speaker tokens included)."""
        return self.text_teacher.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.text_teacher.encoder.set_input_embeddings(value)

    def enable_input_require_grads(self) -> None:
        # transformers' hook calls `output.requires_grad_()`, which fails on TimeSformer's patch embedding (it returns
        # a tuple) in every video forward under gradient checkpointing; this one marks a tuple's first element.
        def require_grads(module: nn.Module, args: Any, output: Any) -> None:
            (output[0] if isinstance(output, tuple) else output).requires_grad_(True)

        embeddings = (self.get_input_embeddings(), self.video_student.encoder.get_input_embeddings())
        self._require_grads_hooks = [module.register_forward_hook(require_grads) for module in embeddings]
        self._require_grads_hook = self._require_grads_hooks[0]

    @can_return_tuple
    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling | tuple:
        r"""RoBERTa's output for the prompted, left-padded teacher input, with F_T (the projected `<mask>` state) as
        `pooler_output`; `kwargs` go to RoBERTa (`output_hidden_states`, `output_attentions`, `return_dict`)."""
        return self.text_teacher.encode(input_ids, attention_mask, **kwargs)

    @can_return_tuple
    def get_audio_features(
        self, input_values: torch.Tensor, audio_attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling | tuple:
        r"""data2vec-audio's output for 16 kHz waveforms and their padding mask, with F_a (the pooled audio state) as
        `pooler_output`."""
        return self.audio_student.encode(input_values, audio_attention_mask, **kwargs)

    @can_return_tuple
    def get_video_features(self, pixel_values: torch.Tensor, **kwargs: Any) -> BaseModelOutputWithPooling | tuple:
        r"""TimeSformer's output for frames `(batch_size, num_frames, 3, height, width)`, with F_v (the projected CLS
        state) as `pooler_output`."""
        return self.video_student.encode(pixel_values, **kwargs)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> TelMEOutput | tuple:
        r"""
        Args:
            input_ids, attention_mask: the prompted, left-padded teacher input from [`TelMEProcessor`].
            input_values, audio_attention_mask: 16 kHz waveforms and their padding mask.
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`): video frames.
            labels (`torch.LongTensor` of shape `(batch_size,)`): emotion ids, for the loss on `logits`.
            text_features, audio_features, video_features: precomputed F_T / F_a / F_v (skip that encoder).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if text_features is None and input_ids is not None:
            text_features = self.get_text_features(input_ids, attention_mask, return_dict=True).pooler_output
        if audio_features is None and input_values is not None:
            audio_features = self.get_audio_features(input_values, audio_attention_mask, return_dict=True).pooler_output
        if video_features is None and pixel_values is not None:
            video_features = self.get_video_features(pixel_values, return_dict=True).pooler_output

        text_logits = self.text_teacher.classifier(text_features) if text_features is not None else None
        audio_logits = self.audio_student.classifier(audio_features) if audio_features is not None else None
        video_logits = self.video_student.classifier(video_features) if video_features is not None else None

        fusion_logits = shift_weights = shift_norms = None
        available = [logits for logits in (text_logits, audio_logits, video_logits) if logits is not None]
        if len(available) == 3:
            fusion_logits, shift_weights, shift_norms = self.fusion(text_features, audio_features, video_features)
            logits = fusion_logits
        elif len(available) == 1:
            logits = available[0]
        else:
            features = (text_features, audio_features, video_features)
            given = [name for name, f in zip(("text", "audio", "video"), features) if f is not None]
            raise ValueError(
                "Give inputs for one modality (that part's prediction) or for all three (the fused prediction); "
                f"got {given or 'none'}. Each part's logits are also returned separately when all three are given."
            )

        loss = F.cross_entropy(logits, labels) if labels is not None else None
        output = TelMEOutput(
            loss=loss,
            logits=logits,
            text_logits=text_logits,
            audio_logits=audio_logits,
            video_logits=video_logits,
            fusion_logits=fusion_logits,
            text_features=text_features,
            audio_features=audio_features,
            video_features=video_features,
            shift_weights=shift_weights,
            shift_norms=shift_norms,
        )
        return output if return_dict else output.to_tuple()

    @classmethod
    def from_backbones(
        cls,
        config: TelMEConfig,
        text_model: str | None = None,
        audio_model: str | None = None,
        video_model: str | None = None,
        mean_resizing: bool = True,
        **from_pretrained_kwargs: Any,
    ) -> "TelMEForEmotionRecognition":
        """Pretrained backbones (Hub ids or folders; default: those the sub-configs name) with fresh heads and fusion.

        The sub-configs become the backbones' own, except that the text embeddings grow to
        `config.text_config.vocab_size` for the speaker tokens and the audio SpecAugment/LayerDrop settings come from
        `config`. The model is assembled in float32 on the CPU.

        Args:
            config: labels, fusion and behaviours.
            text_model, audio_model, video_model: the backbones to load.
            mean_resizing: `False` draws the speaker tokens' rows from N(0, initializer_range), as transformers 4.27
                did for the original, instead of around the mean of the pretrained rows.
            **from_pretrained_kwargs: given to all three loads (`local_files_only`, `revision`, `token`, ...).

        Example:

        ```python
        >>> config = TelMEConfig.from_preset("meld")
        >>> model = TelMEForEmotionRecognition.from_backbones(config)  # downloads the three backbones
        ```
        """
        sources = {
            "text": text_model or config.text_config.name_or_path,
            "audio": audio_model or config.audio_config.name_or_path,
            "video": video_model or config.video_config.name_or_path,
        }
        missing = [name for name, source in sources.items() if not source]
        if missing:
            raise ValueError(f"No pretrained source for the {missing} backbone(s): pass e.g. `text_model=...`.")

        text = RobertaModel.from_pretrained(sources["text"], add_pooling_layer=False, **from_pretrained_kwargs)
        # Grow (never shrink) the embedding matrix so the speaker tokens get rows of their own.
        text.resize_token_embeddings(
            max(config.text_config.vocab_size, text.config.vocab_size), mean_resizing=mean_resizing
        )
        audio_overrides = {
            key: getattr(config.audio_config, key)
            for key in ("mask_time_length", "mask_time_prob", "mask_time_min_masks", "layerdrop")
        }
        audio = Data2VecAudioModel.from_pretrained(sources["audio"], **audio_overrides, **from_pretrained_kwargs)
        video = TimesformerModel.from_pretrained(sources["video"], **from_pretrained_kwargs)

        config = copy.deepcopy(config)
        config.text_config = copy.deepcopy(text.config)
        config.audio_config = copy.deepcopy(audio.config)
        config.video_config = copy.deepcopy(video.config)
        config.validate_telme()
        model = cls(config)
        model.text_teacher.encoder = text
        model.audio_student.encoder = audio
        model.video_student.encoder = video
        return model


__all__ = ["TelMEForEmotionRecognition", "TelMEOutput", "TelMEPreTrainedModel"]
