# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""TelME's training recipes, installed as `telme_hf.recipes`: `distill.py` and its YAML configs (`configs/`)."""
