# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The corpora: MELD (`meld`) and IEMOCAP (`iemocap`) read from their raw files, the shared dialogue-file helpers
(`dialogues`), the table of known corpora (`registry`) and the generated demo corpus (`synthetic`).

Each module turns CSV rows into dataset rows (paths and dialogue context). Decoding and collation are the model's
(`telme_hf.modeling.media_telme`, `pipeline_telme`); the `.npy` media cache (`media_cache`) and the bad-media
report (`bad_media`) are here. Modules here import only `telme_hf.modeling`, `telme_hf.logging` and third-party
packages, never the rest of `telme_hf`. Import names from their module, e.g.
`from telme_hf.data.meld import load_meld`.
"""
