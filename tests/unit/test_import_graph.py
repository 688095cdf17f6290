"""No import cycles among edgefinder's modules.

The graph is read from the modules' syntax trees, so it sees every import a module can run: at the
top and inside functions alike (a function-level import only postpones a cycle to the first call).
Imports under ``if TYPE_CHECKING:`` are left out: they never run. ``from pkg import name`` is an
edge to ``pkg.name`` when that is a module, else to ``pkg`` itself; relative imports are resolved
against the importing module's package.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def modules(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Every module of ``package`` under ``root``: dotted name -> (file, is a package)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree`` outside ``if TYPE_CHECKING:`` bodies."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports."""
    mods = modules(root, package)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in mods.items():
        here = name if is_package else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [known(a.name) for a in node.names]
            else:
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [
                    f"{origin}.{a.name}" if f"{origin}.{a.name}" in mods else known(origin)
                    for a in node.names
                ]
            deps.update(t for t in targets if t is not None and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, in import order (``[a, b, ..., a]``: a imports b ...), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        # graphlib lists each node before the one that depends on it: reverse for import order
        return list(reversed(exc.args[1]))
    return None


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_edgefinder_has_no_import_cycle() -> None:
    graph = import_graph(SRC, "edgefinder")
    assert len(graph) > 50 and "edgefinder.esports.api" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_through_function_level_and_relative_imports_is_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "def f():\n    from pkg.sub.c import g\n    return g\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from ..a import x\n",
            "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.e\n",
            "pkg/e.py": "import pkg.d\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert graph["pkg.d"] == set() and graph["pkg.e"] == {"pkg.d"}  # typing-only: no edge
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    start = cycle.index("pkg.a")
    assert (cycle[start:-1] + cycle[:start])[:3] == ["pkg.a", "pkg.b", "pkg.sub.c"]


@pytest.mark.parametrize(
    "a_imports",
    ["import pkg.b", "from pkg import b", "from .b import name", "from pkg.b import name"],
)
def test_every_import_form_is_an_edge(tmp_path: Path, a_imports: str) -> None:
    _write(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/a.py": a_imports + "\n", "pkg/b.py": "import pkg.a\n"},
    )
    assert find_cycle(import_graph(tmp_path, "pkg")) is not None
    _write(tmp_path, {"pkg/b.py": "import json\n"})
    assert find_cycle(import_graph(tmp_path, "pkg")) is None


def test_layers_the_app_joins_esports_and_report() -> None:
    """``edgefinder.app`` sits above the esports and report packages; neither imports it, the
    esports package never imports the report, and settings import neither."""
    graph = import_graph(SRC, "edgefinder")
    below_app = [m for m, deps in graph.items() if "edgefinder.app" in deps]
    assert below_app == [] or set(below_app) <= {"edgefinder.cli", "edgefinder.analytics.api"}
    esports_to_report = {
        (m, d)
        for m, deps in graph.items()
        if m.startswith("edgefinder.esports")
        for d in deps
        if d.startswith("edgefinder.report")
    }
    assert esports_to_report == set()
    assert not {d for d in graph["edgefinder.settings"] if d.startswith("edgefinder.esports")}
    assert {"edgefinder.esports.api", "edgefinder.report.api"} <= graph["edgefinder.app"]
