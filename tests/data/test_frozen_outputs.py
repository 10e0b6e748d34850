"""The frozen-output cache: computed once, invalidated by a changed clip or configuration."""

from __future__ import annotations



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
