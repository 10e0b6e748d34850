"""The package's layering: each part imports only the parts below it, so a reader can find where an idea lives.

`modeling/` (the Hub folder, copied into every checkpoint) imports nothing of telme_hf; `data/` only the Hub folder
and the package's small utilities; `inference/` adds the data; `training/` and `hub/` may use everything below them;
the CLI and the page sit on top. Read from the source with `ast`, module-level and function-level imports alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
UTILITIES = {"logging", "atomic", "errors", "preprocessing"}
# Which parts of telme_hf each part may import (besides itself).
ALLOWED = {
    "modeling": set(),
    "preprocessing": {"modeling", "logging"},
    "logging": set(),
    "atomic": set(),
    "errors": {"logging"},
    "data": {"modeling"} | UTILITIES - {"preprocessing"},
    "inference": {"modeling", "data"} | UTILITIES,
    "hub": {"modeling", "data", "inference", "app", "<package>"} | UTILITIES,
    "training": {"modeling", "data", "inference", "hub", "recipes", "<package>"} | UTILITIES,
}


def part_of(module: str) -> str:
    parts = module.split(".")
    return "<package>" if len(parts) == 1 else parts[1]


def imports(path: Path, module: str) -> set[str]:
    """The telme_hf modules a source file imports, resolved to absolute names."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            found.update(name for name in names if name.startswith("telme_hf"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("telme_hf"))
    return found


def source_modules():
    for path in sorted((ROOT / "telme_hf").rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("").parts
        yield path, ".".join(relative[:-1] if relative[-1] == "__init__" else relative)
    for path in sorted((ROOT / "modeling").glob("*.py")):
        yield path, "telme_hf.modeling" + ("" if path.stem == "__init__" else f".{path.stem}")


@pytest.mark.parametrize("path,module", list(source_modules()), ids=lambda value: getattr(value, "name", value))
def test_each_part_imports_only_the_parts_below_it(path, module):
    part = part_of(module)
    if part not in ALLOWED:  # the CLI, the page and the package's own __init__ sit on top
        return
    wrong = sorted(name for name in imports(path, module) if part_of(name) not in ALLOWED[part] | {part})
    assert not wrong, f"{module} ({part}/) imports {wrong}; it may import {sorted(ALLOWED[part])}"


def test_the_hub_folder_imports_nothing_of_telme_hf():
    for path in (ROOT / "modeling").glob("*.py"):
        module = "telme_hf.modeling" + ("" if path.stem == "__init__" else f".{path.stem}")
        outside = [name for name in imports(path, module) if not name.startswith("telme_hf.modeling")]
        assert not outside, f"{path.name} imports {outside}: a checkpoint loaded with trust_remote_code has only modeling/"


def test_telme_hf_has_few_modules_side_by_side():
    top = sorted(path.name for path in (ROOT / "telme_hf").glob("*.py"))
    assert len(top) <= 8, top
