"""Training: the run's options and their parser, the losses, the stage trainers, the staged run, the frozen-output
cache and resuming.

`arguments` (options, parser), `losses` (pure functions), `trainer` (one `Trainer` per stage, precision),
`recipe` (the clean and reference recipes' pieces), `frozen_features` (the frozen parts' outputs cached per
sample), `resume` (a killed run's state), `progress` (the stage's log line), `run` (all stages, evaluation,
artefacts). May import `telme_hf.modeling`, `telme_hf.data`, `telme_hf.inference`, `telme_hf.hub` and
`telme_hf.preprocessing`; nothing imports it but the CLI and the recipe.
"""
