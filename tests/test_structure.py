"""The house's shape: the model is a leaf, and no module of faceheal imports itself round a circle."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "faceheal"


def test_the_model_imports_nothing_of_faceheal_outside_itself():
    code = ("import sys, faceheal.model.generator, faceheal.model.weights, faceheal.model.device, "
            "faceheal.model.classical, faceheal.model.discriminator; "
            "print(' '.join(m for m in sys.modules if m.startswith('faceheal')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # the package root (version, a lazy facade) and errors.py (exception types, imports nothing) are shared leaves
    outside = [m for m in loaded if not m.startswith("faceheal.model") and m not in ("faceheal", "faceheal.errors")]
    assert outside == []


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    modules.pop("faceheal")  # the package root: its lazy `restore_image` facade is not a dependency
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("faceheal"):
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_circles():
    graph = _import_graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import circle: " + " -> ".join(path[path.index(n):] + [n])
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert graph["faceheal.pipeline"] and "faceheal.pipeline" not in graph["faceheal.masks.damage"]


def test_inference_never_imports_training():
    graph = _import_graph()
    for m in ("faceheal.pipeline", "faceheal.inpainters", "faceheal.faces.find", "faceheal.masks.damage"):
        assert not {t for t in graph[m] if t.startswith("faceheal.train")}, m
