"""The frozen-output cache: computed once, invalidated by a changed clip or configuration."""

from __future__ import annotations

import pytest

from telme_hf.data.frozen_outputs import FEATURE_COLUMNS, add_frozen_outputs
from telme_hf.training.trainer import TrainingCollator


def test_feature_cache_is_invalidated_by_a_replaced_clip_or_a_changed_config(splits, tiny_model, tiny_processor, tmp_path):
    import os

    (data, cache) = splits
    dev = data["dev"]
    collator = TrainingCollator(tiny_processor, ("text", "audio", "video"), cache=cache)
    parts = ["text_teacher", "audio_student", "video_student"]
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    files = set((tmp_path / "frozen").glob("*.arrow"))
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    assert set((tmp_path / "frozen").glob("*.arrow")) == files  # unchanged: reused
    clip = dev[0]["video_path"]
    stat = os.stat(clip)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the clip was replaced
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    after_clip = set((tmp_path / "frozen").glob("*.arrow"))
    assert len(after_clip - files) == 1
    tiny_model.config.audio_pooling = "first"  # same weights, another behaviour: a new key
    add_frozen_outputs(dev, tiny_model, collator, FEATURE_COLUMNS, tmp_path / "frozen", parts)
    assert len(set((tmp_path / "frozen").glob("*.arrow")) - after_clip) == 1


def _checksums_by_hand(tensor) -> list[int]:
    """`tensor_checksums` written out in plain Python integers, from the tensor's raw bytes."""
    import struct

    import torch

    from telme_hf.data.frozen_outputs import _PRIME, _SEEDS

    raw = bytes(tensor.detach().contiguous().reshape(-1).view(torch.uint8).tolist())  # numpy has no bfloat16
    words = struct.unpack(f"<{len(raw) // 2}h", raw) if len(raw) % 2 == 0 else tuple(raw)
    return [sum((w % _PRIME) * ((a * (i + 1) + b) % _PRIME) for i, w in enumerate(words)) % _PRIME
            for a, b in _SEEDS]


def test_tensor_checksums_match_a_plain_python_computation_across_chunks(monkeypatch):
    import torch

    import telme_hf.data.frozen_outputs as frozen_outputs

    monkeypatch.setattr(frozen_outputs, "_CHUNK_WORDS", 7)  # several chunks, the last one short
    generator = torch.Generator().manual_seed(0)
    for tensor in (torch.randn(5, 9, generator=generator), torch.randn(13, generator=generator).to(torch.bfloat16),
                   torch.tensor([-0.0, float("nan"), 1e30]), torch.arange(5, dtype=torch.uint8),
                   torch.randn(4, 6, generator=generator).t(),  # not contiguous
                   torch.arange(10, dtype=torch.uint8)[1:9]):  # bytes at an odd offset, read as 16-bit words
        assert frozen_outputs.tensor_checksums(tensor).tolist() == _checksums_by_hand(tensor)


@pytest.mark.parametrize("on_device", [False, True])
def test_module_fingerprint_sees_one_ulp_and_a_cast_but_not_a_copy(on_device):
    import copy

    import torch

    from telme_hf.data.frozen_outputs import module_fingerprint

    def fingerprint(module):
        return module_fingerprint(module, on_device=on_device)

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.LayerNorm(200))
    reference = fingerprint(module)
    assert fingerprint(copy.deepcopy(module)) == reference
    for index in (0, 12_345, 59_999):  # the first, a middle and the last weight, nudged by one ulp
        changed = copy.deepcopy(module)
        weight = changed[0].weight.data.view(-1)
        weight[index] = torch.nextafter(weight[index], torch.tensor(float("inf")))
        assert fingerprint(changed) != reference
    swapped = copy.deepcopy(module)  # the same values in other places
    swapped[0].weight.data[[0, 1]] = swapped[0].weight.data[[1, 0]].clone()
    assert fingerprint(swapped) != reference
    assert fingerprint(copy.deepcopy(module).to(torch.bfloat16)) != reference
    assert fingerprint(torch.nn.Identity()) == fingerprint(torch.nn.ReLU())  # no weights, one key
    # Bytes hashed on the host and checksums summed on a device never give the same key.
    assert module_fingerprint(module, on_device=not on_device) != reference
