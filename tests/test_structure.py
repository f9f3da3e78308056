"""The package's shape (docs/ARCHITECTURE.md): no import circles, the dispatcher on top,
no source file over 600 lines. Read from the source with ``ast``, so every import counts,
also those inside functions and ``if __name__ == "__main__":`` blocks."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastnst"
MAX_LINES = 600


def module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` and the package's modules it imports."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package that holds this module
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets.add(base)
                # ``from fastnst import train`` imports the module fastnst.train.
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as the list of modules around it (empty: none)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_package_has_no_import_circle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and "fastnst.video.warp" in graph["fastnst.video.masks"]
    assert find_cycle(graph) == []


def test_a_circle_is_found_through_lazy_and_relative_imports(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("from pkg.sub import b\n")
    (root / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (root / "c.py").write_text("if __name__ == '__main__':\n    import pkg.a\n")
    graph = import_graph(root)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg", "pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (root / "c.py").write_text("")
    assert find_cycle(import_graph(root)) == []


def test_only_entry_points_import_the_dispatcher() -> None:
    """Commands share fastnst.errors; ``fastnst.cli`` only dispatches, so nothing below it
    imports it but the ``python -m`` entry points."""
    graph = import_graph(PACKAGE)
    importers = {name for name, targets in graph.items() if "fastnst.cli" in targets}
    entry_points = {"fastnst.__main__", "fastnst.datasets.__main__", "fastnst.optimize.__main__"}
    assert importers == entry_points


def test_no_source_file_is_over_600_lines() -> None:
    sizes = {path: len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert len(sizes) > 50 and max(sizes.values()) > 300  # the files were found and read
    too_long = {str(p.relative_to(PACKAGE.parent)): n for p, n in sizes.items() if n > MAX_LINES}
    assert too_long == {}, "split these by concern"
