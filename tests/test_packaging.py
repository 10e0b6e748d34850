"""A non-editable install carries the model code, the card template, the recipe and its configs as real files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_the_modeling_package_and_data_files(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = zipfile.ZipFile(next(tmp_path.glob("telme_hf-*.whl")))
    names = set(wheel.namelist())
    for name in (
        "telme_hf/modeling/modeling_telme.py",
        "telme_hf/modeling/configuration_telme.py",
        "telme_hf/modeling/processing_telme.py",
        "telme_hf/inference/erc_metric/erc_metric.py",
        "telme_hf/recipes/distill.py",
    ):
        assert name in names, name
    # the symlinked data files arrive with their content, identical to the sources
    assert wheel.read("telme_hf/model_card.md") == (ROOT / "model_card.md").read_bytes()
    for name in ("tiny", "meld", "iemocap"):  # `telme train --config meld` finds them after a pip install
        assert wheel.read(f"telme_hf/recipes/configs/{name}.yaml") == (ROOT / f"recipes/configs/{name}.yaml").read_bytes()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "telme = telme_hf.cli:main" in wheel.read(entry_points).decode()
