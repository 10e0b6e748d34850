# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""The corpora: MELD (`meld`) and IEMOCAP (`iemocap`) read from their raw files, the shared dialogue-file helpers
(`dialogues`), the table of known corpora (`registry`) and the generated demo corpus (`synthetic`).

Each module turns CSV rows into dataset rows (paths and dialogue context); decoding, the media cache and collation
are the model's (`telme_hf.modeling.media_telme`, `loading_telme`, `collating_telme`). Modules here import only
`telme_hf.modeling` and third-party packages, never the rest of `telme_hf`. Import names from their module, e.g.
`from telme_hf.data.meld import load_meld`.
"""
