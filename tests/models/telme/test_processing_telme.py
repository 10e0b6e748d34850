"""TelMEProcessor's keywords: the ones it takes, and a one-line error for the ones transformers users try."""

from __future__ import annotations

import numpy as np
import pytest

from telme_hf import TelMEProcessor


@pytest.mark.parametrize("keyword", ["text", "images", "audios", "video"])
def test_a_keyword_the_processor_does_not_take_is_an_error_naming_the_accepted_ones(tiny_processor, keyword):
    with pytest.raises(TypeError, match=rf"does not take `{keyword}=`.*`conversations=`.*`audio=`.*`videos=`") as error:
        tiny_processor(**{keyword: "hello there"})
    assert "\n" not in str(error.value)


def test_the_accepted_keywords_still_work_and_name_their_masks_apart(tiny_processor, dialogue):
    rng = np.random.default_rng(0)
    batch = tiny_processor(conversations=[dialogue], audio=[rng.standard_normal(4000).astype(np.float32)],
                           videos=[rng.integers(0, 255, (4, 40, 48, 3), dtype=np.uint8)], sampling_rate=16000)
    assert set(batch) == {"input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values"}
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["audio_attention_mask"].shape == batch["input_values"].shape
    doc = TelMEProcessor.__call__.__doc__
    assert "`attention_mask` (the text's mask)" in doc and "`audio_attention_mask`" in doc
