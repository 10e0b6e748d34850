# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Load and save TelME checkpoints: loading names the damaged file when it fails, saving writes the pipeline too.

Prediction itself is `telme_hf.modeling.pipeline_telme` (a checkpoint carries it).

Example:

```python
>>> from telme_hf.modeling.pipeline_telme import predict_dialogue
>>> from telme_hf.inference.prediction import load_model_and_processor
>>> model, processor = load_model_and_processor("telme-demo/final")  # doctest: +SKIP
>>> turns = [
...     {"speaker": "Ross", "text": "We were on a break!", "media": "clips/dia0_utt0.mp4"},
...     {"speaker": "Rachel", "text": "Unbelievable.", "media": "clips/dia0_utt1.mp4"},
... ]
>>> predict_dialogue(model, processor, turns)[1]  # doctest: +SKIP
{'turn': 1, 'speaker': 'Rachel', 'text': 'Unbelievable.', 'label': 'anger', 'score': 0.71,
 'scores': {'anger': 0.71, 'disgust': 0.04, ...}, 'modalities': ['text', 'audio', 'video'], 'note': ''}
```
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


__all__ = ["load_model_and_processor", "prepare_dialogue", "save_checkpoint"]


def damaged_file(folder: str, error: Exception) -> str:
    """Which file of a checkpoint folder failed to load, as a phrase for the error message."""
    import json

    root = Path(folder)
    for path in sorted(root.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return f"{path} is not valid JSON"
    weights = root / "model.safetensors"
    if weights.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception:  # noqa: BLE001 - any failure to read the header or a tensor
            return f"{weights} is damaged (truncated or not a safetensors file)"
    if "size mismatch" in str(error) or "shape" in str(error):
        return f"the weights in {weights} do not fit the model's config.json"
    return f"a file of {root} is damaged"


QUANTIZATIONS = ("int8",)


def quantize_for_cpu(model: torch.nn.Module, quantize: str) -> torch.nn.Module:
    """The model with every `nn.Linear` replaced by a dynamically quantised int8 one, for prediction on a CPU.

    `benchmarks/bench_inference.py` measured it at full size on 2 cores: 1.16 s per utterance against 2.89 s in fp32,
    the same fused labels on its 10 utterances, probabilities within 0.016 (random weights). On a trained checkpoint,
    the tiny demo's (`telme demo`, then `telme predict --model telme-demo/final --recording
    telme-demo/example_recording.mp4 --transcript telme-demo/example_recording.srt --format json`, with and without
    `--quantize int8`), the labels of all 37 utterances stayed the same but probabilities moved by up to 0.24: check
    a checkpoint's labels against fp32 before relying on it. Training needs the float model.
    """
    import warnings

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantisation {quantize!r}; choose one of {list(QUANTIZATIONS)}.")
    with warnings.catch_warnings():  # torch 2.13 marks its quantised tensors deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def load_model_and_processor(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
                             quantize: str | None = None):
    """`AutoModel` and `AutoProcessor` of a checkpoint folder or Hub id, in eval mode on `device` (default: CUDA when
    available, else CPU). A telme_hf 0.1 checkpoint's preprocessing options (kept in its config.json) are applied to
    its processor. `quantize="int8"` quantises the linear layers for a CPU (see [`quantize_for_cpu`]).

    Example:

    ```python
    >>> model, processor = load_model_and_processor("telme-demo/final")  # doctest: +SKIP
    ```
    """
    from transformers import AutoModel, AutoProcessor

    from ..preprocessing import apply_legacy_preprocessing

    name = os.fspath(name_or_path)
    try:
        model = AutoModel.from_pretrained(name)
        processor = AutoProcessor.from_pretrained(name)
    except Exception as error:  # noqa: BLE001 - every failure becomes one message naming the file
        if os.path.isfile(os.path.join(name, "config.json")):  # a checkpoint folder with a damaged file
            raise OSError(f"Could not load the TelME checkpoint {name!r}: {damaged_file(name, error)} "
                          f"({type(error).__name__}: {error}). Re-download it or save it again.") from error
        where = "a folder without a TelME checkpoint" if os.path.isdir(name) else "neither a folder here nor a Hub id"
        raise OSError(f"Could not load a TelME model from {name!r} ({where}): {error}. Pass the folder a training run "
                      "wrote (its `final/`, with config.json and model.safetensors) or a Hub id.") from error
    apply_legacy_preprocessing(processor, model.config, name)
    device = device or ("cpu" if quantize else "cuda" if torch.cuda.is_available() else "cpu")
    if quantize:
        if torch.device(device).type != "cpu":
            raise ValueError(f"quantize={quantize!r} runs on a CPU, not on {device}.")
        return quantize_for_cpu(model.eval(), quantize), processor
    return model.to(device).eval(), processor


def save_checkpoint(model, processor, folder: str | os.PathLike) -> Path:
    """Save a model and its processor as a checkpoint that carries its pipeline.

    The pipeline's own `save_pretrained` writes the model (its code and config.json, which then names the pipeline
    in `custom_pipelines`), the pipeline's code and the processor, so that
    `pipeline(model=folder, trust_remote_code=True)` runs where telme_hf is not installed.

    Returns:
        The folder.

    Example:

    ```python
    >>> save_checkpoint(model, processor, "telme-demo/final")  # doctest: +SKIP
    ```
    """
    from ..modeling.pipeline_telme import EmotionRecognitionInConversationPipeline

    folder = Path(folder)
    EmotionRecognitionInConversationPipeline(model=model, processor=processor, device=model.device).save_pretrained(folder)
    return folder


def prepare_dialogue(turns, processor, on_bad_media: str = "skip", media_root: str | os.PathLike | None = None,
                     cache=None, source: str | None = None, cli_hint: bool = False):
    """The pipeline's `prepare_dialogue` with telme_hf's media cache (a `MediaCache` or its folder) and, with
    `cli_hint`, bad-media hints spelled as the `telme` command's `--on-bad-media`.

    Returns:
        One `PreparedUtterance` per turn (see `telme_hf.modeling.pipeline_telme.prepare_dialogue`).
    """
    from ..data.bad_media import cli_spelling
    from ..data.media_cache import as_media_cache
    from ..modeling.media_telme import python_spelling
    from ..modeling.pipeline_telme import prepare_dialogue as prepare

    return prepare(turns, processor, on_bad_media, media_root, as_media_cache(cache), source,
                   cli_spelling if cli_hint else python_spelling)
