"""Where updates land (paper Fig. 3): sparsity per layer and module type, from a per-tensor diff table.

Module types are the tensor's module (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj,
input_layernorm, ...) with norms and embeddings outside the layers under layer "-". Pure: a diff table in,
a frame out; the tables and figures read it.
"""

from __future__ import annotations

import pandas as pd

from .diff import COMPARED
from .diff.criteria import COLUMN_PREFIX, criteria_of


def layer_sparsity(diff_table: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rows: layer x module; columns: numel and sparsity (%) under criterion `label` (e.g. tol=1e-05)."""
    column = COLUMN_PREFIX + label
    if column not in diff_table:
        raise ValueError(f"the diff table has no {label!r} counts (it has "
                         f"{sorted(c.label for c in criteria_of(diff_table.columns))})")
    params = diff_table[(diff_table["role"] == "param") & diff_table["status"].isin(COMPARED)].copy()
    params["layer"] = [str(int(v)) if pd.notna(v) else "-" for v in params["layer"]]
    grouped = params.groupby(["layer", "module", "group"], sort=False)[["numel", column]].sum().reset_index()
    grouped["sparsity (%)"] = 100.0 * grouped[column] / grouped["numel"]
    order = grouped["layer"].map(lambda v: (v == "-", int(v) if v != "-" else 0))
    return (grouped.assign(_order=order).sort_values(["_order", "group", "module"])
            .drop(columns=["_order", column]).reset_index(drop=True))
