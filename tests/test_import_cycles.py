"""The package has no import cycle among module-level imports of ipg.* (issue 14: attribution/
baselines <-> methods was one). Imports inside functions (deferred, e.g. torch) and under
`if TYPE_CHECKING:` do not count: they never run while a module is being imported."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> set[str]:
    """ipg.* modules imported when `module` is imported (module level, try/if bodies included)."""
    out: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.If, ast.Try, ast.With, ast.For)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("ipg"):
                while name and name not in known:  # 'ipg.x.y' of an attribute -> module 'ipg.x'
                    name = name.rpartition(".")[0]
                if name and name != module:
                    out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (SRC / "ipg").rglob("*.py")}
    known = set(files)
    return {m: _top_level_imports(ast.parse(p.read_text()), m, p.name == "__init__.py", known)
            for m, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (a list of modules, first == last) or None.
    Importing a submodule imports its parent packages first; edges to a parent package are
    kept, edges from a package to its own submodules too (they are real import orders)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own submodules: Python's normal package loading
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_finder_detects_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "ipg.attribution.methods" in graph and "ipg.attribution.baselines" in graph
    assert "ipg.attribution.baseline_config" in graph["ipg.attribution.baselines"]
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle among module-level imports: {' -> '.join(cycle)}"
