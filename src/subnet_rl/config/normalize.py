"""Config values made canonical before validation (numbers YAML 1.1 reads as strings) and before they
become rule params (key order)."""

from __future__ import annotations

import re
from typing import Any

_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_scientific_notation(node: Any) -> Any:
    """Turn strings like '1e-4' into floats, in place (YAML 1.1 reads a dot-less exponent as a string).

    Anything else that is not a number (e.g. 'abc') stays a string, so schema validation names it.
    """
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            node[key] = float(value)
        else:
            coerce_scientific_notation(value)
    return node


def sort_keys_in_place(node: Any) -> Any:
    """Order every mapping by key, in place.

    Snakemake compares a rule's params by their text, so reordering keys in the YAML (or a tool that
    rewrites it) would otherwise rerun every stage although no setting changed.
    """
    if isinstance(node, dict):
        items = sorted(node.items())
        node.clear()
        node.update(items)
        for value in node.values():
            sort_keys_in_place(value)
    elif isinstance(node, list):
        for value in node:
            sort_keys_in_place(value)
    return node
