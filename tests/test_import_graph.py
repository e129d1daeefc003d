"""The library has no import circle: a module-level import of one `subnet_rl` module by another never leads
back to the first (imports inside functions and under `if TYPE_CHECKING:` are not run at import, so they
do not count). A circle makes import order matter and hides which module owns a concept."""

from __future__ import annotations

import ast
from pathlib import Path

from subnet_rl.code_version import PACKAGE_DIR, _module_file, _module_name


def _module_level_imports(path: Path) -> set[str]:
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = (".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
                        if node.level else node.module or "")
                submodules = {f"{base}.{alias.name}" for alias in node.names}
                found = {name for name in submodules if _module_file(name) is not None}
                # `from . import sibling` loads the sibling, not the package being initialised
                names.update(found if found and node.module is None else {base, *submodules})
    visit(ast.parse(path.read_text()).body)
    return names


def import_graph(root: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(root.rglob("*.py")):
        targets = {_module_file(name) for name in _module_level_imports(path)}
        graph[_module_name(path)] = {_module_name(t) for t in targets if t is not None and t != path}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                found.append(stack[stack.index(target):] + [target])
            elif not state.get(target):
                walk(target, stack)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if not state.get(module):
            walk(module, [])
    return found


def test_the_library_has_no_import_circle():
    assert circles(import_graph()) == []


def test_a_circle_is_found(tmp_path):
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_module_level_imports_skip_type_checking_and_functions(tmp_path):
    module = PACKAGE_DIR / "findings" / "claims.py"
    names = _module_level_imports(module)
    assert "subnet_rl.findings.sparsity_checks" in names and "subnet_rl.findings" not in names
    lazy = _module_level_imports(PACKAGE_DIR / "rank.py")
    assert "torch" not in lazy  # imported inside the functions that need it
