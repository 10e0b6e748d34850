"""Inference: evaluation of a checkpoint on a corpus split, prediction with a checkpoint, the ERC metrics (and the
`evaluate` module in `erc_metric/`), their tables, plots and writers.

May import `telme_hf.modeling` and `telme_hf.data`; training and the Hub tools import it, never the reverse.
"""
