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
    assert wheel.read("telme_hf/hub/model_card.md") == (ROOT / "model_card.md").read_bytes()
    for name in ("tiny", "meld", "iemocap", "reference/meld", "reference/iemocap"):  # found after a pip install
        assert wheel.read(f"telme_hf/recipes/configs/{name}.yaml") == (ROOT / f"recipes/configs/{name}.yaml").read_bytes()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "telme = telme_hf.cli:main" in wheel.read(entry_points).decode()


@pytest.mark.slow
def test_the_source_folder_imports_whole_where_the_package_is_installed_without_e(tmp_path):
    """Python started from the repository root imports the source `telme_hf/` before an installed one; the Hub
    folder and the recipes, which sit beside it, must still be found (`python -m telme_hf.cli` there)."""
    import sysconfig

    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "--target", str(tmp_path / "installed")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    # -S: no site hooks, so the editable install of this environment is not in play; its packages are on the path.
    code = ("import sys; sys.path[:0] = ['', sys.argv[1], sys.argv[2]]; import telme_hf.modeling.modeling_telme, "
            "telme_hf.recipes; import telme_hf.training.run; print(telme_hf.modeling.__file__)")
    run = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path / "installed"),
                          sysconfig.get_paths()["purelib"]], cwd=ROOT, capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == str(ROOT / "modeling" / "__init__.py")
