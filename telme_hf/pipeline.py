# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The `"emotion-recognition-in-conversation"` pipeline: a dialogue in, one emotion per utterance out.

`import telme_hf` registers the task, so `transformers.pipeline` builds it from any TelME checkpoint; a checkpoint
also names it in its config.json and carries its code (`telme_hf.modeling.pipeline_telme`), so that elsewhere
`pipeline(PIPELINE_TASK, model=..., trust_remote_code=True)` works without telme_hf:

```python
>>> import telme_hf
>>> from transformers import pipeline
>>> erc = pipeline("emotion-recognition-in-conversation", model="telme-demo/final")  # doctest: +SKIP
>>> dialogue = [{"speaker": "Ross", "text": "We were on a break!"}, {"speaker": "Rachel", "text": "Unbelievable."}]
>>> erc(dialogue)  # doctest: +SKIP
[{'turn': 0, 'speaker': 'Ross', 'text': 'We were on a break!', 'label': 'anger', 'score': 0.48, 'scores': {...},
  'modalities': ['text'], 'note': "no media given: text teacher's prediction"},
 {'turn': 1, 'speaker': 'Rachel', ...}]
```
"""

from .modeling.pipeline_telme import PIPELINE_TASK, EmotionRecognitionInConversationPipeline


__all__ = ["PIPELINE_TASK", "EmotionRecognitionInConversationPipeline"]
