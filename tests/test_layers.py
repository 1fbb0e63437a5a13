"""The import contracts in .importlinter hold: layers, independent families, no trainer/pipeline/metric-network leaks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

importlinter_cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the test extra")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "fastt2i"
# Faces may import lazily so that `fastt2i --help` does not import torch; nothing else hides an import in a function.
LAZY_OK = ("cli",)


def test_import_contracts_hold():
    code = importlinter_cli.lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True)
    assert code == 0, "lint-imports found a broken contract: run `lint-imports` in the repository root to see it"


def _function_level_fastt2i_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("fastt2i")):
                found.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Import) and any(a.name.startswith("fastt2i") for a in node.names):
                found.append(f"{path.name}:{node.lineno}: import {node.names[0].name}")
    return found


def test_no_project_imports_hidden_in_functions():
    """An import inside a function hides a dependency from the contracts (and often dodges a cycle)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] in LAZY_OK:
            continue
        found += [f"{path.parent.relative_to(ROOT)}/{line}" for line in _function_level_fastt2i_imports(path)]
    assert not found, "move these imports to the top of their modules:\n" + "\n".join(found)


def test_the_checker_sees_a_function_level_import(tmp_path):
    p = tmp_path / "lazy.py"
    p.write_text("import fastt2i\n\n\ndef f():\n    from fastt2i.errors import ConfigError\n    import fastt2i.noise\n")
    assert _function_level_fastt2i_imports(p) == ["lazy.py:5: from fastt2i.errors import ...",
                                                  "lazy.py:6: import fastt2i.noise"]
