"""What a diff table says in a few numbers: overall sparsity per criterion, and what was not compared.

Reads tables only (a DataFrame or the row dicts `table.diff_rows` returns), with no NumPy or checkpoint
code, so the tables and findings modules can import it cheaply.
"""

from __future__ import annotations

from .criteria import criteria_of


def _records(table) -> list[dict]:
    return table.to_dict("records") if hasattr(table, "to_dict") else table


def _columns(table) -> list[str]:
    return list(table.columns) if hasattr(table, "columns") else list(table[0] if table else {})


def sparsity(table) -> dict[str, float]:
    """Overall sparsity (fraction of compared parameter entries unchanged) per criterion label."""
    params = [r for r in _records(table) if r.get("role", "param") == "param"]
    total = sum(r["numel"] for r in params)
    return {c.label: sum(r[c.column] for r in params) / total if total else float("nan")
            for c in criteria_of(_columns(table))}


def skipped(table) -> list[dict]:
    """Tensors not (fully) compared, with why and how many entries were left out."""
    return [{"name": r["name"], "status": r["status"], "numel_skipped": int(r["numel_skipped"])}
            for r in _records(table) if r.get("status", "compared") != "compared"]
