# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""`telme_hf.modeling.loading_telme`, where this code lives: it is Hub-portable, so a saved checkpoint carries it."""

from ..modeling.loading_telme import *  # noqa: F401,F403
from ..modeling.loading_telme import __all__  # noqa: F401
