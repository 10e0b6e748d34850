"""A preamble for scripts that must run as where telme_hf is not installed (a Space, a bare `transformers` user):
every import of telme_hf fails in that process, as it would there."""

BLOCK_TELME_HF = '''
import builtins
_real_import = builtins.__import__
def _guarded(name, *args, **kwargs):
    if name == "telme_hf" or name.startswith("telme_hf."):
        raise ImportError("telme_hf is blocked in this process")
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _guarded
'''
