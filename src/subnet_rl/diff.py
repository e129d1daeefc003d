"""Checkpoint diffing: per-tensor counts of unchanged entries under several criteria, streamed.

The paper counts an entry unchanged when |after - before| <= tol on bf16 values (tol 1e-5). We also
count bitwise equality after casting to bf16 (the bf16-ulp view of follow-up work) and exact equality
in the stored dtype, so a user can see how much sparsity comes from bf16 rounding alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pandas as pd
import torch

from .checkpoints import StreamingCheckpoint, paired_tensors

DEFAULT_TOLERANCES = (1e-8, 1e-7, 1e-6, 1e-5)
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class Criterion:
    """How 'unchanged' is decided: |Δ| <= tolerance on bf16 values, bf16 bitwise, or exact (stored dtype,
    the narrower of the two when they differ)."""

    kind: str
    tolerance: float | None = None

    def __post_init__(self):
        if self.kind not in ("tolerance", "bf16_bitwise", "exact"):
            raise ValueError(f"unknown criterion {self.kind!r}; use tolerance, bf16_bitwise or exact")
        if (self.kind == "tolerance") != (self.tolerance is not None):
            raise ValueError("a tolerance criterion needs a tolerance, and only it")

    @property
    def label(self) -> str:
        return f"tol={self.tolerance:g}" if self.kind == "tolerance" else self.kind

    @property
    def column(self) -> str:
        return f"unchanged_{self.label}"

    @classmethod
    def parse(cls, label: str) -> "Criterion":
        if label.startswith("tol="):
            return cls("tolerance", float(label[4:]))
        return cls(label)


def default_criteria(tolerances=DEFAULT_TOLERANCES) -> list[Criterion]:
    return [Criterion("tolerance", float(t)) for t in tolerances] + [Criterion("bf16_bitwise"), Criterion("exact")]


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bitwise equality in the stored dtype; across dtypes, in the narrower one (what training started from
    when, say, an fp32 start checkpoint is trained with bf16 weights)."""
    if a.dtype != b.dtype:
        if not (a.dtype.is_floating_point and b.dtype.is_floating_point):
            return a.to(torch.float64) == b.to(torch.float64)
        narrow = min((a.dtype, b.dtype), key=lambda d: torch.empty(0, dtype=d).element_size())
        a, b = a.to(narrow), b.to(narrow)
    if a.dtype.is_floating_point:
        view = _INT_VIEW[a.element_size()]
        return a.view(view) == b.view(view)
    return a == b


def unchanged_masks(before: torch.Tensor, after: torch.Tensor, criteria: list[Criterion]) -> dict[Criterion, torch.Tensor]:
    """Boolean 'entry unchanged' tensors, one per criterion (bf16 casts and |Δ| computed once)."""
    a16, b16 = before.to(torch.bfloat16), after.to(torch.bfloat16)
    delta = None
    out = {}
    for criterion in criteria:
        if criterion.kind == "tolerance":
            if delta is None:
                delta = (b16.to(torch.float32) - a16.to(torch.float32)).abs()
            out[criterion] = delta <= criterion.tolerance
        elif criterion.kind == "bf16_bitwise":
            out[criterion] = a16.view(torch.int16) == b16.view(torch.int16)
        else:
            out[criterion] = _bits_equal(before, after)
    return out


def describe(name: str) -> dict:
    """Layer index, module and parameter kind parsed from a tensor name (e.g. layers.3.mlp.up_proj.weight)."""
    parts = name.split(".")
    layer = _LAYER.search(name)
    module = parts[-2] if len(parts) >= 2 else parts[-1]
    if "norm" in module or "ln" in module.split("_"):
        group = "norm"
    elif "embed" in module or module in ("lm_head", "wte", "wpe"):
        group = "embedding"
    elif any(k in module for k in ("q_proj", "k_proj", "v_proj", "o_proj", "attn", "query", "key", "value")):
        group = "attention"
    elif any(k in module for k in ("gate", "up_proj", "down_proj", "mlp", "fc")):
        group = "mlp"
    else:
        group = "other"
    return {"layer": int(layer.group(1)) if layer else None, "module": module, "group": group,
            "param": parts[-1]}


def diff_checkpoints(before: str | os.PathLike, after: str | os.PathLike,
                     criteria: list[Criterion] | None = None) -> pd.DataFrame:
    """One row per tensor: name, layer, module, shape, numel, dtypes and unchanged counts per criterion."""
    criteria = criteria or default_criteria()
    rows = []
    with StreamingCheckpoint(before) as ckpt_before, StreamingCheckpoint(after) as ckpt_after:
        for name, a, b in paired_tensors(ckpt_before, ckpt_after):
            row = {"name": name, **describe(name), "shape": list(a.shape), "numel": a.numel(),
                   "dtype": str(a.dtype).removeprefix("torch."), "dtype_after": str(b.dtype).removeprefix("torch.")}
            for criterion, mask in unchanged_masks(a, b, criteria).items():
                row[criterion.column] = int(mask.sum())
            rows.append(row)
    df = pd.DataFrame(rows)
    df["layer"] = df["layer"].astype("Int64")
    return df


def criteria_of(df: pd.DataFrame) -> list[Criterion]:
    return [Criterion.parse(c.removeprefix("unchanged_")) for c in df.columns if c.startswith("unchanged_")]


def sparsity(df: pd.DataFrame) -> dict[str, float]:
    """Overall sparsity (fraction of entries unchanged) per criterion label."""
    total = df["numel"].sum()
    return {c.label: float(df[c.column].sum() / total) for c in criteria_of(df)}


def sparsity_by(df: pd.DataFrame, key: str | list[str]) -> pd.DataFrame:
    """Sparsity per group (e.g. 'layer' or 'module'): unchanged / numel within each group."""
    cols = [c.column for c in criteria_of(df)]
    grouped = df.groupby(key, dropna=False)[["numel", *cols]].sum()
    return grouped[cols].div(grouped["numel"], axis=0).rename(columns=lambda c: c.removeprefix("unchanged_"))
