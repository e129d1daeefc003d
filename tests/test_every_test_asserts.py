"""Every test asserts something: a test function that neither asserts, expects an exception or warning
(`pytest.raises`, `pytest.warns`), nor calls a helper of its module that does, passes whatever the code
does, and so checks nothing."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _checks(node: ast.AST, helpers: set[str]) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Assert):
            return True
        if isinstance(n, ast.Attribute) and n.attr in ("raises", "warns", "fail", "deprecated_call"):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in helpers:
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr.startswith("assert"):
            return True
    return False


def unchecked_tests(source: str) -> list[str]:
    """Names of the `test_*` functions of a module's source that check nothing."""
    functions = {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
    helpers: set[str] = set()
    grew = True
    while grew:  # helpers that assert, or call a helper that does
        grew = False
        for name, function in functions.items():
            if not name.startswith("test") and name not in helpers and _checks(function, helpers):
                helpers.add(name)
                grew = True
    return [name for name, function in functions.items() if name.startswith("test_") and not _checks(function, helpers)]


def test_every_test_function_checks_something():
    found = {str(path.relative_to(TESTS)): names for path in sorted(TESTS.rglob("test_*.py"))
             if (names := unchecked_tests(path.read_text()))}
    assert found == {}


def test_a_test_without_a_check_is_found():
    source = ("def _expect(x):\n    assert x\n\ndef test_a():\n    _expect(1)\n\n"
              "def test_b():\n    run()\n\ndef test_c():\n    with pytest.raises(ValueError):\n        run()\n")
    assert unchecked_tests(source) == ["test_b"]
