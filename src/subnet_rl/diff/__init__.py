"""Checkpoint diffing: per-tensor counts of unchanged entries under several criteria, in bounded memory.

The package, by concern (each name below is defined once, in the module named):

- `criteria`: what "unchanged" means (`Criterion`, its labels, the workflow's default set);
- `kernel`: the NumPy comparison of one chunk, bit-exact with the paper's official bf16 script;
- `taxonomy`: what a tensor is from its name (layer, module, parameter / fp8 scale / buffer);
- `pairing`: which tensor is compared with which, and `compared_params`, the one list of compared
  parameters that masks, ranks and dynamics iterate;
- `streaming`: chunks on worker threads, in bounded memory;
- `table` builds the diff table, `summary` reads it (sparsity, skipped tensors).

Names are loaded on first use (PEP 562): the Snakefile imports `canonical_label` and `diff_labels` on
every DAG parse, and that must cost the pure-Python `criteria` module only, not NumPy or the checkpoint
readers. The `TYPE_CHECKING` imports below are kept in step with `_HOME`: type checkers read them, and so
does `code_version`, which hashes the submodules a rule's script reaches through them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # re-exported through __all__, which linters cannot read: hence the noqa
    from .criteria import (DEFAULT_TOLERANCES, RESIZED_POLICIES, TOLERANCE_KINDS, Criterion,  # noqa: F401
                           canonical_label, default_criteria, diff_labels)
    from .pairing import COMPARED, TensorPair, compared_params, pair_tensors  # noqa: F401
    from .streaming import DEFAULT_CHUNK_BYTES, stream_compare  # noqa: F401
    from .summary import skipped, sparsity  # noqa: F401
    from .table import diff_checkpoints, diff_rows  # noqa: F401
    from .taxonomy import describe  # noqa: F401

_HOME = {
    "criteria": ("DEFAULT_TOLERANCES", "RESIZED_POLICIES", "TOLERANCE_KINDS", "Criterion", "canonical_label",
                 "default_criteria", "diff_labels"),
    "pairing": ("COMPARED", "TensorPair", "compared_params", "pair_tensors"),
    "streaming": ("DEFAULT_CHUNK_BYTES", "stream_compare"),
    "summary": ("skipped", "sparsity"),
    "table": ("diff_checkpoints", "diff_rows"),
    "taxonomy": ("describe",),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    """A public name, imported from its module the first time it is asked for."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
