"""The layers import one way, and no module imports another that (directly or not) imports it back.

The import-linter contracts live in pyproject.toml ([tool.importlinter]); grimp, the graph import-linter builds,
counts imports inside functions too, so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cds_service", "cards")


def _lint_imports() -> str:
    found = Path(sys.executable).parent / "lint-imports"
    return str(found) if found.exists() else shutil.which("lint-imports") or "lint-imports"


def test_the_import_contracts_hold():
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def strongly_connected_components(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Tarjan's algorithm over the direct imports between the project's modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(module: str) -> None:
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == module:
                    break
            components.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(modules):
        if module not in index:
            visit(module)
    return components


def _project_graph() -> tuple[grimp.ImportGraph, set[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return graph, set(graph.modules)


def test_no_import_cycle_among_the_projects_modules():
    graph, modules = _project_graph()
    cycles = [sorted(c) for c in strongly_connected_components(graph, modules) if len(c) > 1]
    self_imports = [m for m in modules if m in graph.find_modules_directly_imported_by(m)]
    assert cycles == [] and self_imports == [], f"import cycles: {cycles} {self_imports}"


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    found = [sorted(c) for c in strongly_connected_components(graph, {"pkg.a", "pkg.b", "pkg.c"}) if len(c) > 1]
    assert found == [["pkg.a", "pkg.b"]]


def test_imports_inside_functions_are_in_the_graph(tmp_path, monkeypatch):
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (package / "b.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("lazypkg", cache_dir=None)
    assert "lazypkg.b" in graph.find_modules_directly_imported_by("lazypkg.a")


MAX_MODULE_LINES = 420  # "about 400": a module of one job


def test_modules_stay_small():
    large = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES:
                large[str(path.relative_to(ROOT))] = lines
    assert large == {}, f"modules over {MAX_MODULE_LINES} lines (split them by job): {large}"
