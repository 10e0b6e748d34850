"""`import telme_hf` registers TelME with transformers whenever transformers loads its registries, and stays light."""

import os
import subprocess
import sys

import pytest


CHECK = """
import sys
order = sys.argv[1]
if order == "transformers first":
    from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline  # noqa: F401
if order == "model module first":
    from telme_hf.modeling.modeling_telme import TelMEForEmotionRecognition  # noqa: F401
import telme_hf
from transformers import AutoConfig, AutoModel, AutoProcessor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
from transformers.pipelines import PIPELINE_REGISTRY

config = AutoConfig.for_model("telme")
assert type(config) is telme_hf.TelMEConfig, type(config)
assert MODEL_MAPPING[telme_hf.TelMEConfig] is telme_hf.TelMEForEmotionRecognition
assert PROCESSOR_MAPPING[telme_hf.TelMEConfig] is telme_hf.TelMEProcessor
assert telme_hf.PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks()
assert (telme_hf.TelMEConfig._auto_class, telme_hf.TelMEForEmotionRecognition._auto_class,
        telme_hf.TelMEProcessor._auto_class) == ("AutoConfig", "AutoModel", "AutoProcessor")
print("registered")
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)


@pytest.mark.parametrize("order", ["telme_hf first", "transformers first", "model module first"])
def test_every_registry_knows_telme_whatever_was_imported_first(order):
    proc = _python(CHECK, order)
    assert proc.returncode == 0 and proc.stdout.strip() == "registered", proc.stderr[-3000:]


def test_the_command_line_help_and_version_import_neither_torch_nor_transformers():
    code = """
import sys
from telme_hf.cli import main
for argv in (["--help"], ["--version"]):
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code == 0, stop.code
heavy = sorted(name for name in ("torch", "transformers", "datasets", "av", "numpy") if name in sys.modules)
print("heavy:", heavy)
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "heavy: []"
    assert "telme predict" in proc.stdout and "telme_hf " in proc.stdout  # the help, then the version


def test_a_subcommand_help_still_lists_its_choices():
    proc = _python("from telme_hf.cli import main; main(['evaluate', '--help'])")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--data {meld,iemocap,synthetic}" in proc.stdout
    assert "--on-bad-media {error,skip,zeros}" in " ".join(proc.stdout.split())
