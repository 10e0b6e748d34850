# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Convert the authors' released TelME checkpoints into a `telme_hf` checkpoint folder.

The original release holds four plain PyTorch state dicts per dataset (saved with `torch.save(model.state_dict())`):

| file | keys | becomes |
| --- | --- | --- |
| `teacher.bin` | `text_model.*` (RoBERTa + unused pooler), `W.*` (1024→768), `classifier.*` | `text_teacher.*` |
| `student_audio/total_student.bin` | `model.*` (Data2VecAudioModel), `W.*` (768→C) | `audio_student.*` |
| `student_video/total_student.bin` | `model.*` (TimesformerModel), `W.*` (768→C) | `video_student.*` |
| `total_fusion.bin` | `multihead_attn.*`, `W_hav.*`, `W_av.*`, `AV_LayerNorm.*`, `LayerNorm.*`, `W.*` | `fusion.*` |

The converted configuration switches on every behaviour of the original implementation (`reference_behaviour=True`:
attention across the batch, first-frame audio pooling with left padding, the original audio/video preprocessing,
speaker-index carry-over) and the processor tokenises like the original (`reference_tokenization=True`): evaluated
with batch size 4 in CSV order (`telme evaluate … --batch-size 4`), it should reproduce the published numbers.

Example:

```bash
telme convert-original \\
    --teacher MELD/save_model/teacher.bin \\
    --audio-student MELD/save_model/student_audio/total_student.bin \\
    --video-student MELD/save_model/student_video/total_student.bin \\
    --fusion MELD/save_model/total_fusion.bin \\
    --dataset meld --output telme-meld-original
```
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..atomic import atomic_folder, atomic_write_text
from ..preprocessing import build_processor, processor_options
from ..data.registry import get_corpus
from ..modeling import TelMEConfig, TelMEForEmotionRecognition
from ..modeling.configuration_telme import TEXT_BACKBONE
from ..modeling.processing_telme import TelMEProcessor, speaker_token
from ..logging import get_logger


logger = get_logger(__name__)

# The corpora the authors released weights for.
DATASETS = ("meld", "iemocap")
AV_ORDER_CHOICES = ("audio,video", "video,audio")
# The released IEMOCAP fusion was trained by IEMOCAP/fusion.py, which feeds (audio, video); see
# `convert_original_checkpoint` for why this is the default although IEMOCAP/inference.py feeds (video, audio).
IEMOCAP_DEFAULT_AV_ORDER = ("audio", "video")
_LIST_LIMIT = 20


class ConversionError(ValueError):
    """An original checkpoint file cannot be converted as it is; the message says which file, key and why."""


@dataclass(frozen=True)
class OriginalPart:
    """One file of the original release: how its keys map onto `TelMEForEmotionRecognition`."""

    name: str
    option: str
    file_name: str
    renames: tuple[tuple[str, str], ...]
    signature: str
    """A key only this kind of file has, to recognise files passed to the wrong option."""

    def rename(self, key: str) -> str | None:
        for old, new in self.renames:
            if key.startswith(old):
                return new + key[len(old) :]
        return None

    def original_name(self, key: str) -> str | None:
        for old, new in self.renames:
            if key.startswith(new):
                return old + key[len(new) :]
        return None


ORIGINAL_PARTS: dict[str, OriginalPart] = {
    part.name: part
    for part in (
        OriginalPart(
            "teacher", "--teacher", "teacher.bin",
            (("text_model.", "text_teacher.encoder."), ("W.", "text_teacher.projection."),
             ("classifier.", "text_teacher.classifier.")),
            signature="text_model.embeddings.word_embeddings.weight",
        ),
        OriginalPart(
            "audio_student", "--audio-student", "student_audio/total_student.bin",
            (("model.", "audio_student.encoder."), ("W.", "audio_student.classifier.")),
            signature="model.feature_extractor.conv_layers.0.conv.weight",
        ),
        OriginalPart(
            "video_student", "--video-student", "student_video/total_student.bin",
            (("model.", "video_student.encoder."), ("W.", "video_student.classifier.")),
            signature="model.embeddings.time_embeddings",
        ),
        OriginalPart(
            "fusion", "--fusion", "total_fusion.bin",
            (("multihead_attn.", "fusion.attention."), ("W_hav.", "fusion.gate."), ("W_av.", "fusion.shift."),
             ("AV_LayerNorm.", "fusion.attention_norm."), ("LayerNorm.", "fusion.norm."), ("W.", "fusion.classifier.")),
            signature="multihead_attn.in_proj_weight",
        ),
    )
}


def _dropped_reason(part: OriginalPart, key: str) -> str | None:
    """Why an original key is deliberately not converted, or None when it must be converted."""
    if part.name == "teacher" and key.startswith("text_model.pooler."):
        return "the RoBERTa pooler, which the original never used (the teacher reads the <mask> state)"
    if key.endswith("embeddings.position_ids"):
        return "a constant position-id buffer that older transformers versions saved"
    return None


# ------------------------------------------------------------------------------------------------------ reading
def load_original_state_dict(path: str | os.PathLike, part: str) -> dict[str, torch.Tensor]:
    """Read one original checkpoint file safely and check that it is a plain state dict of this part.

    Only `torch.load(..., weights_only=True)` is used: a file holding a pickled `nn.Module` or other Python
    objects is refused with a message saying how to turn it into a state dict.

    Args:
        path: the `.bin` file written by the original training scripts.
        part: one of `"teacher"`, `"audio_student"`, `"video_student"`, `"fusion"`.

    Example:

    ```python
    >>> state_dict = load_original_state_dict("MELD/save_model/total_fusion.bin", "fusion")
    >>> state_dict["multihead_attn.in_proj_weight"].shape
    torch.Size([4608, 1536])
    ```
    """
    spec = ORIGINAL_PARTS[part]
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{spec.option}: no file at {path} (expected the original {spec.file_name}).")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError, ValueError) as error:
        raise ConversionError(
            f"{spec.option} {path}: cannot be read as a plain PyTorch state dict with "
            f"torch.load(weights_only=True) ({type(error).__name__}: {str(error).splitlines()[0][:300]}). The "
            f"original scripts save `model.state_dict()`; if this file holds a whole pickled model and you trust "
            f"it, re-save its weights in the environment that wrote it: "
            f"`torch.save(torch.load(path, weights_only=False).state_dict(), 'state_dict.bin')`."
        ) from error
    return _check_plain_state_dict(loaded, path, spec)


def _check_plain_state_dict(loaded: Any, path: Path, spec: OriginalPart) -> dict[str, torch.Tensor]:
    where = f"{spec.option} {path}"
    if isinstance(loaded, torch.nn.Module):
        raise ConversionError(f"{where}: holds a whole {type(loaded).__name__}; save its `.state_dict()` instead.")
    if not isinstance(loaded, Mapping):
        raise ConversionError(f"{where}: holds a {type(loaded).__name__}, not a state dict (a dict of tensors).")
    not_tensors = {key: value for key, value in loaded.items() if not isinstance(value, torch.Tensor)}
    if not_tensors:
        nested = [
            key for key, value in not_tensors.items()
            if isinstance(value, Mapping) and value and all(isinstance(v, torch.Tensor) for v in value.values())
        ]
        preferred = [key for key in ("model", "state_dict", "model_state_dict", "module") if key in nested]
        hint = ""
        if nested:
            likely = (preferred or nested)[0]
            hint = (
                f" It looks like a training checkpoint: the weights are probably under the key {likely!r}; save "
                f"that entry alone: `torch.save(torch.load(path, weights_only=True)[{likely!r}], 'state_dict.bin')`."
            )
        listed = ", ".join(f"{key!r} ({type(value).__name__})" for key, value in list(not_tensors.items())[:8])
        raise ConversionError(f"{where}: is not a plain state dict; these entries are not tensors: {listed}.{hint}")
    state_dict = {str(key): value for key, value in loaded.items()}
    if spec.signature not in state_dict:
        for other in ORIGINAL_PARTS.values():
            if other is not spec and other.signature in state_dict:
                raise ConversionError(
                    f"{where}: looks like the original {other.file_name} (it has {other.signature!r}), not "
                    f"{spec.file_name}; pass it as {other.option}."
                )
        if state_dict and all(key.startswith("module.") for key in state_dict):
            raise ConversionError(
                f"{where}: every key starts with 'module.' (saved from a DataParallel wrapper); strip that "
                f"prefix and save again."
            )
    return state_dict


@dataclass
class RenamedPart:
    """One original file mapped onto `TelMEForEmotionRecognition`'s names."""

    tensors: dict[str, torch.Tensor]
    """The tensors under their new names."""
    sources: dict[str, str]
    """For each new name, the original key."""
    dropped: dict[str, str]
    """Original keys deliberately left out, with the reason."""
    unknown: list[str]
    """Original keys that no rule maps (reported as unexpected)."""


def rename_original_state_dict(state_dict: Mapping[str, torch.Tensor], part: str) -> RenamedPart:
    """Map one original state dict onto `TelMEForEmotionRecognition`'s parameter names.

    Example:

    ```python
    >>> renamed = rename_original_state_dict({"W_hav.weight": torch.zeros(768, 2304)}, "fusion")
    >>> list(renamed.tensors)
    ['fusion.gate.weight']
    ```
    """
    spec = ORIGINAL_PARTS[part]
    renamed = RenamedPart({}, {}, {}, [])
    for key, tensor in state_dict.items():
        reason = _dropped_reason(spec, key)
        new_key = spec.rename(key)
        if reason is not None:
            renamed.dropped[key] = reason
        elif new_key is None:
            renamed.unknown.append(key)
        else:
            renamed.tensors[new_key] = tensor
            renamed.sources[new_key] = key
    return renamed


# ------------------------------------------------------------------------------------------------------- config
def _load_user_config(config: TelMEConfig | str | os.PathLike) -> TelMEConfig:
    if isinstance(config, TelMEConfig):
        return config
    path = Path(config)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"--config {path}: no TelMEConfig JSON file (or folder with config.json) there.")
    model_type = json.loads(file.read_text(encoding="utf-8")).get("model_type")
    if model_type not in (None, TelMEConfig.model_type):
        raise ConversionError(
            f"--config {file}: is a {model_type!r} config; give a TelMEConfig (model_type 'telme') whose "
            f"text_config / audio_config / video_config describe the backbones, e.g. one written by "
            f"`TelMEConfig(text_config=..., audio_config=..., video_config=...).save_pretrained(DIR)`."
        )
    return TelMEConfig.from_json_file(str(file))


def _layer_count(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int | None:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(match.group(1)) for key in state_dict if (match := pattern.match(key))}
    return max(indices) + 1 if indices else None


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    return tuple(state_dict[key].shape) if key in state_dict else None


def reconcile_config_with_state_dict(config: TelMEConfig, state_dict: Mapping[str, torch.Tensor]) -> TelMEConfig:
    """Infer the shape-defining backbone options from converted weights and check them against `config`.

    The presets write out the backbones' configs because the Hub cannot be reached offline; the weights are the
    authority. Options that only the weights decide (vocabulary size, data2vec's `conv_bias`, layer counts) are
    taken from them, with a warning when they differ from the config. Widths are checked: a different hidden size
    needs a different attention head count, which weights cannot tell, so a mismatch is an error asking for
    `--config`. The label count must match the dataset's labels. Everything else is checked key by key later.

    Args:
        config: the configuration to adjust in place (its sub-configs).
        state_dict: all four parts, already renamed (see `rename_original_state_dict`).

    Example:

    ```python
    >>> renamed = rename_original_state_dict(load_original_state_dict("teacher.bin", "teacher"), "teacher")
    >>> config = reconcile_config_with_state_dict(build_reference_config("meld"), renamed.tensors)
    ```
    """
    text, audio, video = config.text_config, config.audio_config, config.video_config
    taken: list[str] = []

    def adopt(sub_config: Any, backbone: str, option: str, value: Any, evidence: str) -> None:
        if value is None:
            return
        current = getattr(sub_config, option)
        if current != value:
            logger.warning(
                "%s %s: the config says %r, the weights say %r (%s); using %r.", backbone, option, current, value,
                evidence, value,
            )
            setattr(sub_config, option, value)
        taken.append(f"{backbone} {option}={value!r} ({evidence})")

    def check(option: str, expected: Any, value: Any, evidence: str, fix: str) -> None:
        if value is None:
            return
        if value != expected:
            raise ConversionError(f"{option}: the config says {expected}, the weights say {value} ({evidence}). {fix}")
        taken.append(f"{option}={value} ({evidence}, matches)")

    fix = "Pass --config with a TelMEConfig whose sub-configs describe these backbones."
    embeddings = _shape(state_dict, "text_teacher.encoder.embeddings.word_embeddings.weight")
    if embeddings is not None:
        adopt(text, "text", "vocab_size", embeddings[0], "embedding rows")
        check("text hidden_size", text.hidden_size, embeddings[1], "embedding width", fix)
    adopt(text, "text", "num_hidden_layers", _layer_count(state_dict, "text_teacher.encoder.encoder.layer."),
          "numbered encoder layers")

    if any(key.startswith("audio_student.encoder.feature_extractor.conv_layers.0.") for key in state_dict):
        conv_bias = "audio_student.encoder.feature_extractor.conv_layers.0.conv.bias" in state_dict
        adopt(audio, "audio", "conv_bias", conv_bias, "feature_extractor.conv_layers.0.conv.bias present"
              if conv_bias else "no feature_extractor.conv_layers.0.conv.bias")
    projection = _shape(state_dict, "audio_student.encoder.feature_projection.projection.weight")
    if projection is not None:
        check("audio hidden_size", audio.hidden_size, projection[0], "feature projection rows", fix)
    adopt(audio, "audio", "num_hidden_layers", _layer_count(state_dict, "audio_student.encoder.encoder.layers."),
          "numbered encoder layers")

    cls_token = _shape(state_dict, "video_student.encoder.embeddings.cls_token")
    if cls_token is not None:
        check("video hidden_size", video.hidden_size, cls_token[-1], "CLS token width", fix)
    adopt(video, "video", "num_hidden_layers", _layer_count(state_dict, "video_student.encoder.encoder.layer."),
          "numbered encoder layers")

    teacher_projection = _shape(state_dict, "text_teacher.projection.weight")
    if teacher_projection is not None:
        check("projection_dim", config.projection_dim, teacher_projection[0], "teacher W rows", fix)

    classifiers = {
        "teacher": "text_teacher.classifier.weight", "audio student": "audio_student.classifier.weight",
        "video student": "video_student.classifier.weight", "fusion": "fusion.classifier.weight",
    }
    classifier_rows = {
        name: shape[0] for name, key in classifiers.items() if (shape := _shape(state_dict, key)) is not None
    }
    if len(set(classifier_rows.values())) > 1:
        raise ConversionError(
            f"The four files disagree on the number of classes (classifier rows: {classifier_rows}); they must come "
            f"from the same release (all MELD or all IEMOCAP)."
        )
    if classifier_rows:
        rows = next(iter(classifier_rows.values()))
        if rows != config.num_labels:
            other = [name for name, size in (("meld", 7), ("iemocap", 6)) if size == rows]
            hint = f" Did you mean --dataset {other[0]}?" if other else ""
            raise ConversionError(
                f"The classifiers have {rows} rows but the dataset's labels are {config.num_labels} "
                f"({[config.id2label[i] for i in range(config.num_labels)]}).{hint}"
            )
        taken.append(f"num_labels={rows} (classifier rows, matches)")
    logger.info("Backbone options inferred from the weights and checked against the config: %s.", "; ".join(taken))
    logger.info(
        "Not inferable from weights, taken from the config: attention head counts (text %d, audio %d, video %d), "
        "activations and norm epsilons.", text.num_attention_heads, audio.num_attention_heads,
        video.num_attention_heads,
    )
    return config


def _av_order(dataset: str, iemocap_av_order: str | Sequence[str] | None) -> tuple[str, str]:
    if iemocap_av_order is None:
        return IEMOCAP_DEFAULT_AV_ORDER
    order = tuple(part.strip() for part in iemocap_av_order.split(",")) if isinstance(iemocap_av_order, str) \
        else tuple(iemocap_av_order)
    if order not in (("audio", "video"), ("video", "audio")):
        raise ValueError(
            f"`iemocap_av_order` must be ('audio', 'video') or ('video', 'audio'), got {iemocap_av_order!r}."
        )
    if dataset != "iemocap" and order != IEMOCAP_DEFAULT_AV_ORDER:
        raise ValueError(
            "`iemocap_av_order` applies to IEMOCAP only: the original MELD scripts train and evaluate with "
            "(audio, video)."
        )
    return order


def build_reference_config(
    dataset: str, config: TelMEConfig | str | os.PathLike | None = None, av_order: Sequence[str] = ("audio", "video")
) -> TelMEConfig:
    """The configuration of a converted checkpoint, before it is checked against the weights.

    The dataset preset with `reference_behaviour=True` supplies labels, fusion hyper-parameters and the original
    behaviours; `config` (a `TelMEConfig`, or a JSON file / folder holding one) only replaces the backbones.

    Example:

    ```python
    >>> build_reference_config("iemocap").fusion_num_heads
    4
    ```
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}.")
    backbones: dict[str, Any] = {}
    if config is not None:
        user = _load_user_config(config)
        backbones = {key: copy.deepcopy(getattr(user, key)) for key in ("text_config", "audio_config", "video_config")}
        logger.info("Backbone configs from %s; labels, fusion and behaviours from the %r preset.", config, dataset)
    return TelMEConfig.from_preset(dataset, reference_behaviour=True, fusion_modality_order=list(av_order), **backbones)


# ----------------------------------------------------------------------------------------------------- checking
def _listing(lines: list[str]) -> str:
    shown = lines[:_LIST_LIMIT]
    more = f"\n    … and {len(lines) - _LIST_LIMIT} more" if len(lines) > _LIST_LIMIT else ""
    return "".join(f"\n    {line}" for line in shown) + more


def _describe(new_key: str, sources: Mapping[str, str]) -> str:
    for spec in ORIGINAL_PARTS.values():
        original = spec.original_name(new_key)
        if original is not None:
            return f"{spec.option} {sources.get(new_key, original)} (→ {new_key})"
    return new_key


def check_converted_state_dict(
    converted: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    sources: Mapping[str, str],
    unknown: Sequence[str] = (),
) -> None:
    """Raise a `ConversionError` listing every unexpected, missing and wrongly-shaped key.

    Args:
        converted: the renamed tensors of all parts.
        expected: the model's parameter shapes.
        sources: for each new name, the original key (for messages).
        unknown: original keys no rule maps, already written as `"--option key"`.
    """
    unexpected = list(unknown) + [_describe(key, sources) for key in sorted(converted) if key not in expected]
    missing = [_describe(key, sources) for key in sorted(expected) if key not in converted]
    wrong = [
        f"{_describe(key, sources)}: expected {tuple(expected[key])}, got {tuple(tensor.shape)}"
        for key, tensor in sorted(converted.items())
        if key in expected and tuple(tensor.shape) != tuple(expected[key])
    ]
    if not (unexpected or missing or wrong):
        return
    sections = []
    if unexpected:
        sections.append(f"{len(unexpected)} unexpected key(s), which no part of the model has:" + _listing(unexpected))
    if missing:
        sections.append(f"{len(missing)} missing key(s):" + _listing(missing))
    if wrong:
        sections.append(f"{len(wrong)} key(s) with the wrong shape:" + _listing(wrong))
    raise ConversionError(
        "The original checkpoint does not fit the TelME configuration.\n" + "\n".join(sections) +
        "\nCheck that the four files come from one release of the original code and that --dataset (and --config, "
        "if given) describe it."
    )


# ---------------------------------------------------------------------------------------------------- tokenizer
def _load_tokenizer(tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None) -> PreTrainedTokenizerBase:
    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    source = str(tokenizer) if tokenizer is not None else TEXT_BACKBONE
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise OSError(
            f"Could not load the tokenizer {source!r} ({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            f"The converted teacher needs {TEXT_BACKBONE}'s tokenizer: run once with Hub access, or pass --tokenizer "
            f"a local folder holding it (e.g. written by "
            f"`AutoTokenizer.from_pretrained('{TEXT_BACKBONE}').save_pretrained(DIR)` on a machine that is online)."
        ) from error


def _check_speaker_token_ids(tokenizer: PreTrainedTokenizerBase, config: TelMEConfig) -> None:
    # The original resized roberta-large's embeddings after adding the speaker tokens, so <s1>…<sN> are its last N
    # rows. Another tokenizer would put them elsewhere and silently read the wrong rows.
    count, rows = config.num_speaker_tokens, config.text_config.vocab_size
    tokens = [speaker_token(i) for i in range(count)]
    got = tokenizer.convert_tokens_to_ids(tokens)
    expected = list(range(rows - count, rows))
    if got != expected:
        raise ConversionError(
            f"The tokenizer maps {tokens[0]}…{tokens[-1]} to ids {got[0]}…{got[-1]}, but the teacher's embedding "
            f"({rows} rows) holds them in its last {count} rows ({expected[0]}…{expected[-1]}). Use the original's "
            f"tokenizer ({TEXT_BACKBONE}, {rows - count} tokens before the speaker tokens) via --tokenizer."
        )


# -------------------------------------------------------------------------------------------------------- card
def render_conversion_card(
    config: TelMEConfig, processor: Any, dataset: str, output_dir: str | os.PathLike,
    sources: Mapping[str, tuple[str, str]], dropped: Mapping[str, int], av_order: Sequence[str],
) -> str:
    """README.md of a converted checkpoint (`telme_hf.hub.model_card`): where it comes from, which original behaviours
    are on, how to check it.

    Args:
        config, processor: the converted configuration and processor.
        dataset: `"meld"` or `"iemocap"`.
        output_dir: the checkpoint folder, shown in the commands.
        sources: per part, `(file, sha256)` of the original file (the file as it should be shown).
        dropped: per part, how many original keys were deliberately left out.
        av_order: the fusion's audio/video order.
    """
    from .model_card import render_model_card

    corpus = get_corpus(dataset)
    name = {"meld": "MELD", "iemocap": "IEMOCAP"}[dataset]
    published = corpus.paper["weighted_f1"]
    files = "\n".join(
        f"| {ORIGINAL_PARTS[part].option} | `{file}` | `{digest[:16]}…` | {dropped.get(part, 0)} |"
        for part, (file, digest) in sources.items()
    )
    order = ", ".join(av_order)
    if dataset == "iemocap":
        order_note = (
            f"The fusion reads `[{order}]`. The released IEMOCAP fusion was trained by the original "
            f"`IEMOCAP/fusion.py`, which feeds (audio, video); the original `IEMOCAP/inference.py` feeds "
            f"(video, audio). The default follows training. The published {published} may have "
            f"been measured either way (the training script prints test F1 with (audio, video)); convert with "
            f"`--iemocap-av-order video,audio` to reproduce the inference script."
        )
    else:
        order_note = f"The fusion reads `[{order}]`, as the original MELD training and inference scripts do."
    command = (
        f"telme evaluate --model {output_dir} --data {dataset} --data-root {corpus.default_root} "
        f"--split test --batch-size 4"
    )
    origin = f"""The weights of the authors' released TelME checkpoints (NAACL 2024) for {name}, converted to `telme_hf` with
`telme convert-original`. Nothing was retrained: every tensor is the original's, renamed. The checkpoint is
converted from the original release.

| option | original file | sha256 | keys left out |
| --- | --- | --- | --- |
{files}

Left out: the text backbone's pooler (never used: the teacher reads the `<mask>` state) and any saved
`position_ids` buffer.

The configuration and the processor reproduce the original implementation, including its quirks, because the
weights were trained with them (see "Behaviours"). The processor tokenises like the original
(`reference_tokenization=True`: no spaces kept around the speaker tokens, `<mask>` appended to the last
{processor.max_text_length - 1} tokens). Fusion attention runs across the utterances of a mini-batch
(`fusion_attention_scope="batch"`), so predictions depend on the batch: evaluate with batch size 4 in CSV order,
as the original did.

{order_note}"""
    results_text = f"""Not measured here. The paper reports a weighted F1 of {published} on the {name} test split. Check it:
```bash
{command}
```"""
    return render_model_card(
        config, processor, dataset=dataset, repo=str(output_dir), origin=origin,
        title=f"TelME — {name} (converted from the original release)", results_text=results_text,
        training="Not trained with telme_hf: converted from the original release.",
        extra="## Licence\nThe original code and weights were released without a licence; ask the authors before "
        "redistributing these weights.",
        license="other", license_name="no-license", license_link="https://github.com/yuntaeyang/TelME",
    )


# ------------------------------------------------------------------------------------------------------ convert
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


@torch.no_grad()
def convert_original_checkpoint(
    teacher: str | os.PathLike,
    audio_student: str | os.PathLike,
    video_student: str | os.PathLike,
    fusion: str | os.PathLike,
    dataset: str,
    output_dir: str | os.PathLike,
    config: TelMEConfig | str | os.PathLike | None = None,
    tokenizer: PreTrainedTokenizerBase | str | os.PathLike | None = None,
    iemocap_av_order: str | Sequence[str] | None = None,
) -> Path:
    """Convert the four files of an original TelME release into a checkpoint folder.

    The folder holds `model.safetensors` + `config.json` (with every original behaviour switched on), the processor
    (tokenising like the original) and a README.md model card. Load it with
    `TelMEForEmotionRecognition.from_pretrained(output_dir)` or `AutoModel.from_pretrained(output_dir)`.

    IEMOCAP audio/video order: the original `IEMOCAP/fusion.py` trains the fusion with (audio, video), while
    `IEMOCAP/inference.py` feeds (video, audio). The released IEMOCAP weights come out of `fusion.py`, so they expect
    **(audio, video)**, the default here. The published 70.48 may nevertheless have been measured with the swapped
    inference script (the training script also prints test F1, with (audio, video)); pass
    `iemocap_av_order=("video", "audio")` to reproduce `inference.py`. MELD always uses (audio, video).

    Args:
        teacher, audio_student, video_student, fusion: the original `teacher.bin`, `student_audio/total_student.bin`,
            `student_video/total_student.bin` and `total_fusion.bin` (plain state dicts).
        dataset: `"meld"` or `"iemocap"`: labels, fusion heads/θ/dropout.
        output_dir: the folder to write (new or empty; it appears once the checkpoint is complete).
        config: a `TelMEConfig`, or a JSON file / folder holding one, whose backbone sub-configs replace the
            preset's (roberta-large + 9 speaker tokens, data2vec-audio-base-960h, timesformer-base-finetuned-k400).
        tokenizer: a tokenizer, Hub id or folder; defaults to `roberta-large` from the Hub (pass a local copy
            offline). The speaker tokens are added when missing and must land on the embedding's last rows.
        iemocap_av_order: `("audio", "video")` (default) or `("video", "audio")`, or the same as `"video,audio"`.

    Example:

    ```python
    >>> from telme_hf.hub.convert import convert_original_checkpoint
    >>> folder = convert_original_checkpoint(
    ...     "MELD/save_model/teacher.bin", "MELD/save_model/student_audio/total_student.bin",
    ...     "MELD/save_model/student_video/total_student.bin", "MELD/save_model/total_fusion.bin",
    ...     dataset="meld", output_dir="telme-meld-original",
    ... )
    ```
    """
    from accelerate import init_empty_weights

    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}.")
    av_order = _av_order(dataset, iemocap_av_order)
    tokenizer = _load_tokenizer(tokenizer)
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise FileExistsError(f"{output_dir} exists and is not empty; convert into a new or empty folder.")

    paths = {"teacher": teacher, "audio_student": audio_student, "video_student": video_student, "fusion": fusion}
    converted: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    unknown: list[str] = []
    file_info: dict[str, tuple[str, str]] = {}
    dropped_counts: dict[str, int] = {}
    for part, path in paths.items():
        option, path = ORIGINAL_PARTS[part].option, Path(path)
        state_dict = load_original_state_dict(path, part)
        renamed = rename_original_state_dict(state_dict, part)
        logger.info("%s %s: %d tensors.", option, path, len(state_dict))
        for key, reason in renamed.dropped.items():
            logger.info("%s: dropped %s: %s.", option, key, reason)
        converted.update(renamed.tensors)
        sources.update(renamed.sources)
        unknown += [f"{option} {key}" for key in renamed.unknown]
        dropped_counts[part] = len(renamed.dropped)
        file_info[part] = ("/".join(path.parts[-2:]), _sha256(path))

    telme_config = build_reference_config(dataset, config, av_order)
    reconcile_config_with_state_dict(telme_config, converted)
    telme_config.validate_telme()
    _check_speaker_token_ids(tokenizer, telme_config)

    with init_empty_weights():
        model = TelMEForEmotionRecognition(telme_config)
    expected = {key: value.shape for key, value in model.state_dict().items()}
    check_converted_state_dict(converted, expected, sources, unknown)
    reference = model.state_dict()
    for key, tensor in converted.items():
        if tensor.dtype != reference[key].dtype:
            logger.info("%s: cast from %s to %s.", sources[key], tensor.dtype, reference[key].dtype)
            converted[key] = tensor.to(reference[key].dtype)
        converted[key] = converted[key].contiguous()
    model.load_state_dict(converted, strict=True, assign=True)
    model.eval()

    # The original keeps 511 tokens + <mask>; a teacher with fewer positions keeps as many as it has.
    text_config = telme_config.text_config
    positions = text_config.max_position_embeddings - text_config.pad_token_id - 1
    default = inspect.signature(TelMEProcessor).parameters["max_text_length"].default
    max_text_length = min(processor_options(telme_config).get("max_text_length", default), positions)
    # reference_tokenization follows the reference config
    processor = build_processor(telme_config, tokenizer, max_text_length=max_text_length)

    # Built in a hidden folder beside output_dir and renamed to it when whole: a conversion that is killed or runs
    # out of disk leaves no folder that looks like a checkpoint.
    with atomic_folder(output_dir) as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        card = render_conversion_card(telme_config, processor, dataset, output_dir, file_info, dropped_counts,
                                      av_order)
        atomic_write_text(folder / "README.md", card)
    logger.info("Wrote the converted %s checkpoint to %s.", dataset, output_dir)
    return output_dir


__all__ = [
    "ConversionError",
    "ORIGINAL_PARTS",
    "RenamedPart",
    "build_reference_config",
    "check_converted_state_dict",
    "convert_original_checkpoint",
    "load_original_state_dict",
    "reconcile_config_with_state_dict",
    "rename_original_state_dict",
    "render_conversion_card",
]
