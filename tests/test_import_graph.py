"""The import graph of ``opnet/`` and ``data_gen/`` (issue 17): no import circles, the
checkpoint format and the surrogates import no training code, and loading a surrogate
imports neither Lightning nor Hydra.

The graph is read from the source with :mod:`ast` (nothing is imported): an edge A -> B for
every ``import``/``from ... import`` in module A of a module B of ours, *module-level* when it
runs at import time (class bodies included, ``if TYPE_CHECKING:`` blocks left out) and
*function-level* when it sits inside a function (a lazy import). ``from pkg import name``
is an edge to ``pkg.name`` when that is a module of ours, else to ``pkg``. Importing a module
also runs its parent packages' ``__init__``: A -> ``pkg.mod`` adds A -> ``pkg`` unless ``pkg``
encloses A (then it is being imported already, as Python does it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import lightning
import pytest
import torch

from opnet.training.deeponet_module import DeepONetModule
from opnet.training.module import OperatorModule
from tests.test_surrogate_safety import MGNO, M, Q, grid_io, save, toy_prose_module

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("opnet", "data_gen")

LAZY_BY_DESIGN = {
    ("opnet", "opnet.surrogate"):
        "`import opnet` stays light (no torch) until opnet.load_operator is called",
}
"""Function-level imports whose target imports the importer back at module level, each kept
on purpose (the reason says why); any other such import only dodges a circle."""


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module under :data:`PACKAGES`."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, in_function: bool = False
             ) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``tree`` with whether it sits inside a function."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), in_function)
        else:
            yield from _imports(node, in_function or isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def _ours(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its nearest enclosing package that is one of our modules."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, dict[str, dict[str, int]]]:
    """``{"module": {A: {B: line}}, "function": {A: {B: line}}}`` over our modules."""
    modules = module_files()
    graph: dict[str, dict[str, dict[str, int]]] = {"module": {}, "function": {}}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node, lazy in _imports(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the importer's package upwards
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                target = _ours(target, modules)
                while target is not None and target != name and not name.startswith(
                        target + "."):  # the module, then the packages that enclose it
                    graph["function" if lazy else "module"].setdefault(name, {}).setdefault(
                        target, node.lineno)
                    target = target.rpartition(".")[0] or None
    return graph


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for targets in edges.values() for w in targets}):
        if v not in index:
            visit(v)
    return sorted(found)


def reachable(edges: dict[str, dict[str, int]], start: str) -> set[str]:
    """Modules ``start`` imports, directly or not (``start`` itself left out)."""
    seen, todo = set(), [start]
    while todo:
        for w in edges.get(todo.pop(), {}):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen - {start}


def _merged(graph: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for kind in ("module", "function"):
        for a, targets in graph[kind].items():
            merged.setdefault(a, {}).update(targets)
    return merged


def test_the_graph_reader_sees_module_and_function_level_imports():
    """The reader itself: known edges of this tree at both levels, relative imports too."""
    graph = import_graph()
    assert "opnet.checkpoint" in graph["module"]["opnet.surrogate.load"]
    assert "opnet.surrogate" in graph["function"]["opnet"]  # opnet.load_operator's lazy import
    assert "opnet.models.prose.layers" in graph["module"]["opnet.models.prose.fusion"]
    fake = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(fake) == [["a", "b", "c"]] and reachable(fake, "d") == {"a", "b", "c"}


def test_no_module_level_import_circle():
    """Importing any module of opnet/data_gen never re-enters a module still being imported."""
    found = cycles(import_graph()["module"])
    assert not found, f"module-level import circles among opnet/data_gen: {found}"


def test_no_function_level_import_only_dodges_a_circle():
    """A lazy import A -> B where B imports A back at module level is a circle in disguise
    (the old ``from opnet.surrogate import operator_block  # (surrogate imports this module)``);
    only the imports of :data:`LAZY_BY_DESIGN` are lazy on purpose."""
    graph = import_graph()
    dodges = []
    for a, targets in graph["function"].items():
        for b, line in targets.items():
            back = a in reachable(graph["module"], b)
            if back and (a, b) not in LAZY_BY_DESIGN:
                dodges.append(f"{module_files()[a].relative_to(ROOT)}:{line} imports {b}")
    assert not dodges, f"function-level imports that dodge an import circle: {dodges}"


def test_every_circle_through_lazy_imports_is_by_design():
    """Module- and function-level imports together: each circle passes through a lazy import
    of :data:`LAZY_BY_DESIGN` (two lazy imports that close a circle are a circle too)."""
    merged = _merged(import_graph())
    unexplained = []
    for component in cycles(merged):
        inside = set(component)
        rest = {a: {b: n for b, n in t.items() if b in inside and (a, b) not in LAZY_BY_DESIGN}
                for a, t in merged.items() if a in inside}
        if cycles(rest):
            unexplained.append(component)
    assert not unexplained, f"import circles (module + function level): {unexplained}"


@pytest.mark.parametrize("leaf", ["opnet.checkpoint", "opnet.models", "opnet.surrogate",
                                  "opnet.data.normalizers", "opnet.symbolic"])
def test_checkpoint_models_and_surrogates_import_no_training_code(leaf):
    """DESIGN's dependency direction: the checkpoint format, the models and the surrogates
    (with everything they import, lazily or not) never reach opnet.training (Lightning)."""
    modules = module_files()
    graph = _merged(import_graph())
    own = {m for m in modules if m == leaf or m.startswith(leaf + ".")}
    reached = set().union(*(reachable(graph, m) for m in own))
    training = sorted(m for m in reached if m.startswith("opnet.training"))
    assert not training, f"{leaf} imports training code: {training}"


LOAD_AND_PREDICT = """
import sys
import numpy as np
import opnet

grid = opnet.load_operator(sys.argv[1])
assert grid.predict(np.ones((2, 1, 8, 8), np.float32)).shape == (2, 1, 8, 8)
points = opnet.load_operator(sys.argv[2])
assert points.predict(np.ones((2, {m}), np.float32)).shape[:2] == (2, {q})
prose = opnet.load_operator(sys.argv[3])
assert type(prose).__name__ == "ProseSurrogate"
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"lightning", "pytorch_lightning",
                "lightning_fabric", "hydra", "omegaconf"}})
print("heavy:", heavy)
print("training:", sorted(m for m in sys.modules if m.startswith("opnet.training")))
"""


def test_load_operator_imports_neither_lightning_nor_hydra(tmp_path):
    """``import opnet; opnet.load_operator(ckpt).predict(...)`` for each family, in a fresh
    process: Lightning, Hydra/OmegaConf and opnet.training stay out of sys.modules."""
    torch.manual_seed(0)
    grid = save(OperatorModule(MGNO, grid_io()), tmp_path / "grid.ckpt")
    io = {"kind": "points", "input_field": "f", "input_fields": ["f"], "output_fields": ["u"],
          "branch": "vector", "input_shape": [M], "n_sensors": M, "sensor_points": M,
          "sensor_dim": 1, "n_query": Q, "query_dim": 1, "out_channels": 1,
          "input_grid": None, "output_grid": None, "layout": "aligned",
          "dataset": {"name": "toy", "path": "data/toy"}}
    points = save(DeepONetModule({"_target_": "opnet.models.deeponet.DeepONet",
                                  "branch": [M, 8, 8], "trunk": [1, 8, 8], "num_outputs": 1},
                                 io), tmp_path / "points.ckpt")
    prose = save(toy_prose_module(), tmp_path / "prose.ckpt")
    assert lightning.__version__  # the checkpoints were written the way Lightning writes them
    run = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT.format(m=M, q=Q),
                          str(grid), str(points), str(prose)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "heavy: []" in run.stdout and "training: []" in run.stdout, run.stdout
