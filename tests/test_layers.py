"""The package's shape: imports point one way (cli -> app -> engine -> tools -> ports -> store -> core, and
engine -> model), no module imports itself through others, counting imports inside functions and
TYPE_CHECKING blocks, and no module grows past ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "letta_cli"

# layer -> the layers it may import (itself included)
ALLOWED = {
    "core": {"core"},
    "store": {"core", "store"},
    "model": {"core", "store", "model"},
    "ports": {"core", "store", "ports"},
    "tools": {"core", "store", "ports", "tools"},
    "engine": {"core", "store", "model", "ports", "tools", "engine"},
    "app": {"core", "store", "model", "ports", "tools", "engine", "app"},
    "cli": {"core", "app", "cli"},
    "root": {"cli", "root"},  # letta_cli/__init__.py and __main__.py
}
EXCEPTIONS = {("cli", "letta_cli.store.workspace")}  # the Workspace value every app call takes
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "root"
    return parts[1]


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every letta_cli module this file imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy" and node.args:
            arg = node.args[0]
            names = [arg.value] if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else []
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("letta_cli."):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(p, known) - {m} for m, p in mods.items()}


def test_imports_point_down_only():
    wrong = [
        f"{src} ({layer(src)}) imports {dst} ({layer(dst)})"
        for src, dsts in graph().items()
        for dst in sorted(dsts)
        if layer(dst) not in ALLOWED[layer(src)] and dst != "letta_cli" and (layer(src), dst) not in EXCEPTIONS
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = {m: {d for d in ds if d != "letta_cli" and not m.startswith(d + ".")} for m, ds in graph().items()}
    # Tarjan's strongly connected components: any component with more than one module is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_modules_stay_small():
    big = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_every_layer_says_what_it_may_import():
    for folder in ("core", "store", "model", "tools", "engine", "app", "cli"):
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
        assert "import" in doc, f"letta_cli/{folder}/__init__.py should say what the layer may import"


@pytest.mark.parametrize("module", ["letta_cli.cli.main"])
def test_the_checker_sees_function_level_imports(module: str):
    """The checker itself: cli.main registers command modules with importlib at run time, and the lazy()
    helper loads library modules on first use; both must count (else a cycle could hide in them)."""
    deps = graph()[module]
    assert "letta_cli.cli.common" in deps
