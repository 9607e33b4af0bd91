"""Dependencies run one way: deploy/ -> lbstack/ -> facts/ (and the checkout's bench/ on top).

Every import of every module is read from its source (module level and inside functions alike),
so a lazy ``from deploy import ...`` halfway down a function fails here too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from lbstack import REPO_ROOT

# layer -> the project's top-level packages it may import (besides itself, the stdlib and libraries)
ALLOWED = {
    "facts": set(),
    "lbstack": {"facts"},
    "deploy": {"lbstack", "facts"},
    "bench": {"lbstack", "facts"},
}
PROJECT = set(ALLOWED) | {"tests", "inventories"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((REPO_ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    wrong = []
    for path in _modules(layer):
        for line, name in _imports(path):
            top = name.split(".")[0]
            if name.startswith("."):
                continue  # relative: within the same package
            if top in PROJECT and top != layer and top not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {name}")
    assert wrong == [], "imports against the layer order deploy -> lbstack -> facts:\n" + "\n".join(wrong)


@pytest.mark.parametrize("layer", ["facts", "lbstack", "deploy"])
def test_no_module_patches_the_import_path(layer):
    # lbstack/cli.py alone sets PYTHONPATH, for `lbstack bench`: a child `python -m bench` of the checkout
    patched = [str(p.relative_to(REPO_ROOT)) for p in _modules(layer) if "sys.path" in p.read_text()]
    assert patched == []


def test_the_checker_sees_a_lazy_upward_import(tmp_path):
    """The test above can fail: an import inside a function is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from deploy import nginx\n    return nginx\n")
    assert _imports(module) == [(2, "deploy")]


def test_the_cli_starts_without_the_benchmark_or_matplotlib():

    code = ("import sys, lbstack.cli; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('bench', 'matplotlib', 'deploy')); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
