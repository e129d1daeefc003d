"""Content hashes of the code a workflow job runs, so reruns follow what really changed.

Snakemake's code trigger compares a rule's script's modification time with its outputs: a `touch` or a
`git checkout` reruns everything downstream, while an edit to the library the script imports is not
seen. Each rule therefore carries, as a param, the hash of its script and of every `subnet_rl` module
that script imports (transitively); the profiles drop the mtime-based code trigger.
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import cache
from pathlib import Path

PACKAGE = "subnet_rl"
PACKAGE_DIR = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    """The file of a `subnet_rl[.a.b]` module, or None when the name is not a module of the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [PACKAGE, *relative.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved; `from m import x` also
    names `m.x`, which counts when x is a submodule)."""
    package = _module_name(path) if path.is_relative_to(PACKAGE_DIR) else ""
    if path.name != "__init__.py" and package:
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(name: str) -> list[str]:
    """A module and the packages above it (importing a.b.c runs a/__init__ and a/b/__init__ too)."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def code_files(script: str | os.PathLike) -> list[Path]:
    """The script and every package file it imports, directly or not."""
    script = Path(script).resolve()
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            for module in _with_parents(name):
                found = _module_file(module)
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(seen)


@cache
def code_hash(script: str | os.PathLike) -> str:
    """sha256 over the contents of `code_files(script)` (package files named relative to the package)."""
    digest = hashlib.sha256()
    for path in code_files(script):
        name = str(path.relative_to(PACKAGE_DIR)) if path.is_relative_to(PACKAGE_DIR) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
