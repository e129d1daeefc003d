"""Checkpoint diffing: per-tensor counts of unchanged entries under several criteria, in bounded memory.

The paper counts an entry unchanged when |after - before| <= tol on bf16 values (tol 1e-5). We also
count bitwise equality after casting to bf16 (the bf16-ulp view of follow-up work) and exact equality
of the stored values, so a user can see how much sparsity comes from bf16 rounding alone. Entries whose
bf16 bits are identical are unchanged under every tolerance (so NaN or inf that stays put is unchanged).

Tensors are streamed in chunks (`tensorfile.ChunkReader`): memory is bounded by a chunk, never by a
tensor or a model. Nothing is silently dropped: tensors present on one side only, tensors whose shapes
differ, and stored copies of tied weights each get a row that says what was compared and what skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from .checkpoints import Checkpoint
from .tensorfile import ChunkReader, TensorEntry, element_chunks

DEFAULT_TOLERANCES = (1e-8, 1e-7, 1e-6, 1e-5)
DEFAULT_CHUNK_BYTES = 64 * 2**20
FP8_BLOCK = 128
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_SCALE_SUFFIXES = ("_scale_inv", "_scale")
COMPARED = ("compared", "resized")


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


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bitwise equality in the stored dtype; across float dtypes, in the narrower one (what training
    started from when, say, an fp32 start checkpoint is trained with bf16 weights)."""
    if a.dtype != b.dtype:
        if not (a.dtype.is_floating_point and b.dtype.is_floating_point):
            return a.to(torch.float64) == b.to(torch.float64)
        narrow = min((a.dtype, b.dtype), key=_itemsize)
        a, b = a.to(narrow), b.to(narrow)
    if a.dtype.is_floating_point:
        view = _INT_VIEW[a.element_size()]
        return a.view(view) == b.view(view)
    return a == b


def _exact_is_bf16_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    narrow = min((a.dtype, b.dtype), key=_itemsize) if a.dtype != b.dtype else a.dtype
    return narrow == torch.bfloat16 and a.dtype.is_floating_point and b.dtype.is_floating_point


def _compare(stored_a: torch.Tensor, stored_b: torch.Tensor, values_a: torch.Tensor, values_b: torch.Tensor,
             criteria: list[Criterion], want_masks: bool) -> dict[Criterion, torch.Tensor | int]:
    """Unchanged counts (or boolean masks) per criterion for one chunk.

    `values_*` are the values to compare (bf16 casts, or dequantized fp8); `stored_*` the stored ones,
    for the exact criterion. |Δ| is computed only where the bf16 bits differ: in sparse updates that is
    a small share of the entries.
    """
    a16, b16 = values_a.to(torch.bfloat16), values_b.to(torch.bfloat16)
    same = a16.view(torch.int16) == b16.view(torch.int16)
    n_same = int(same.sum())
    delta = None
    out: dict[Criterion, torch.Tensor | int] = {}
    for criterion in criteria:
        if criterion.kind == "tolerance":
            if delta is None:
                changed = ~same
                delta = (b16[changed].to(torch.float32) - a16[changed].to(torch.float32)).abs()
            within = delta <= criterion.tolerance
            if want_masks:
                mask = same.clone()
                mask[changed] = within
                out[criterion] = mask
            else:
                out[criterion] = n_same + int(within.sum())
        elif criterion.kind == "bf16_bitwise":
            out[criterion] = same if want_masks else n_same
        elif _exact_is_bf16_bits(stored_a, stored_b):
            out[criterion] = same if want_masks else n_same
        else:
            equal = _bits_equal(stored_a, stored_b)
            out[criterion] = equal if want_masks else int(equal.sum())
    return out


def unchanged_masks(before: torch.Tensor, after: torch.Tensor, criteria: list[Criterion]) -> dict[Criterion, torch.Tensor]:
    """Boolean 'entry unchanged' tensors of two whole tensors, one per criterion."""
    masks = _compare(before.reshape(-1), after.reshape(-1), before.reshape(-1), after.reshape(-1), criteria, True)
    return {c: m.reshape(before.shape) for c, m in masks.items()}


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
    elif any(k in module for k in ("gate", "up_proj", "down_proj", "mlp", "fc", "expert")):
        group = "mlp"
    else:
        group = "other"
    return {"layer": int(layer.group(1)) if layer else None, "module": module, "group": group,
            "param": parts[-1]}


def scale_of(name: str, entries: dict[str, TensorEntry]) -> str | None:
    """The block-scale tensor stored beside an fp8 weight (DeepSeek-V3 style `weight_scale_inv`)."""
    for suffix in _SCALE_SUFFIXES:
        if name + suffix in entries:
            return name + suffix
    return None


@dataclass(frozen=True)
class TensorPair:
    """How one tensor name is compared: status, role, and how many leading rows both sides share."""

    name: str
    before: TensorEntry | None
    after: TensorEntry | None
    status: str  # compared | resized | tied | only_before | only_after | shape_mismatch
    role: str    # param | scale
    rows: int = 0
    scale_before: TensorEntry | None = None
    scale_after: TensorEntry | None = None

    @property
    def row_elems(self) -> int:
        n = 1
        for d in self.before.shape[1:]:
            n *= d
        return n

    @property
    def numel(self) -> int:
        """Entries compared."""
        if self.status not in COMPARED:
            return 0
        return self.rows * self.row_elems if self.before.shape else 1

    @property
    def numel_skipped(self) -> int:
        sizes = [e.numel for e in (self.before, self.after) if e is not None]
        if self.status == "tied":
            return 0
        if self.status in COMPARED:
            return sum(sizes) - 2 * self.numel
        return max(sizes)

    @property
    def compared_shape(self) -> tuple[int, ...]:
        return (self.rows, *self.before.shape[1:]) if self.before.shape else ()


def pair_tensors(before: Checkpoint, after: Checkpoint) -> list[TensorPair]:
    """Every tensor name of either checkpoint, classified; shared leading rows of resized tensors."""
    tied = {**before.tied_duplicates(), **after.tied_duplicates()}
    pairs = []
    for name in sorted(set(before.entries) | set(after.entries)):
        a, b = before.entries.get(name), after.entries.get(name)
        role = "scale" if name.endswith(_SCALE_SUFFIXES) and (a or b).dtype == torch.float32 else "param"
        if name in tied:
            pairs.append(TensorPair(name, a, b, "tied", role))
        elif a is None or b is None:
            pairs.append(TensorPair(name, a, b, "only_before" if b is None else "only_after", role))
        elif a.shape == b.shape:
            pairs.append(TensorPair(name, a, b, "compared", role, a.shape[0] if a.shape else 1,
                                    *_scales(name, a, b, before, after)))
        elif len(a.shape) == len(b.shape) >= 1 and a.shape[1:] == b.shape[1:]:
            pairs.append(TensorPair(name, a, b, "resized", role, min(a.shape[0], b.shape[0]),
                                    *_scales(name, a, b, before, after)))
        else:
            pairs.append(TensorPair(name, a, b, "shape_mismatch", role))
    return pairs


def _scales(name, a, b, before, after) -> tuple[TensorEntry | None, TensorEntry | None]:
    fp8 = (torch.float8_e4m3fn, torch.float8_e5m2)
    sa = before.entries[s] if a.dtype in fp8 and (s := scale_of(name, before.entries)) else None
    sb = after.entries[s] if b.dtype in fp8 and (s := scale_of(name, after.entries)) else None
    return sa, sb


def _dequantize(raw: torch.Tensor, scale: torch.Tensor | None, row_elems: int, first_row: int) -> torch.Tensor:
    """fp8 weights times their per-block scale (blocks of 128 x 128), for rows starting at first_row."""
    if scale is None:
        return raw
    rows = raw.numel() // row_elems
    block_rows = scale[first_row // FP8_BLOCK : (first_row + rows + FP8_BLOCK - 1) // FP8_BLOCK]
    expanded = block_rows.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)
    expanded = expanded[first_row % FP8_BLOCK : first_row % FP8_BLOCK + rows, :row_elems]
    return raw.reshape(rows, row_elems).to(torch.float32).mul_(expanded).reshape(-1)


def compare_pair(pair: TensorPair, reader: ChunkReader, criteria: list[Criterion], chunk_elems: int,
                 on_mask: Callable[[torch.Tensor], None] | None = None) -> dict[Criterion, int]:
    """Stream one tensor pair chunk by chunk; `on_mask` receives each chunk's 'unchanged' mask under
    criteria[0] (used to write subnetwork masks without holding a whole tensor)."""
    counts = dict.fromkeys(criteria, 0)
    scales = [reader.read(s, 0, s.numel, slot=2 + i).clone().reshape(s.shape) if s is not None else None
              for i, s in enumerate((pair.scale_before, pair.scale_after))]
    row_elems = max(1, pair.row_elems)
    scaled = any(s is not None for s in scales)
    align = FP8_BLOCK * row_elems if scaled else 8
    for start, stop in element_chunks(pair.numel, chunk_elems, align):
        raw_a = reader.read(pair.before, start, stop, slot=0)
        raw_b = reader.read(pair.after, start, stop, slot=1)
        first_row = start // row_elems
        values_a = _dequantize(raw_a, scales[0], row_elems, first_row)
        values_b = _dequantize(raw_b, scales[1], row_elems, first_row)
        result = _compare(raw_a, raw_b, values_a, values_b, criteria, want_masks=on_mask is not None)
        for criterion, value in result.items():
            counts[criterion] += int(value.sum()) if on_mask is not None else value
        if on_mask is not None:
            on_mask(result[criteria[0]])
    return counts


def _row(pair: TensorPair, counts: dict[Criterion, int], criteria: list[Criterion]) -> dict:
    a, b = pair.before, pair.after
    dtype = lambda e: str(e.dtype).removeprefix("torch.") if e is not None else None  # noqa: E731
    return {
        "name": pair.name, **describe(pair.name), "role": pair.role, "status": pair.status,
        "shape": list(a.shape) if a is not None else None, "shape_after": list(b.shape) if b is not None else None,
        "dtype": dtype(a), "dtype_after": dtype(b), "numel": pair.numel, "numel_skipped": pair.numel_skipped,
        **{c.column: counts.get(c, 0) for c in criteria},
    }


def diff_checkpoints(before: str | os.PathLike, after: str | os.PathLike, criteria: list[Criterion] | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> pd.DataFrame:
    """One row per tensor name: what was compared or skipped, and unchanged counts per criterion."""
    criteria = criteria or default_criteria()
    pairs = pair_tensors(Checkpoint(before), Checkpoint(after))
    rows = []
    with ChunkReader(chunk_bytes) as reader:
        for pair in pairs:
            counts = {}
            if pair.status in COMPARED:
                itemsize = max(pair.before.itemsize, pair.after.itemsize)
                counts = compare_pair(pair, reader, criteria, max(1, chunk_bytes // itemsize))
            rows.append(_row(pair, counts, criteria))
    df = pd.DataFrame(rows)
    df["layer"] = df["layer"].astype("Int64")
    return df


def criteria_of(df: pd.DataFrame) -> list[Criterion]:
    return [Criterion.parse(c.removeprefix("unchanged_")) for c in df.columns if c.startswith("unchanged_")]


def _params(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["role"] == "param"] if "role" in df else df


def sparsity(df: pd.DataFrame) -> dict[str, float]:
    """Overall sparsity (fraction of compared parameter entries unchanged) per criterion label."""
    params = _params(df)
    total = params["numel"].sum()
    return {c.label: float(params[c.column].sum() / total) if total else float("nan") for c in criteria_of(df)}


def skipped(df: pd.DataFrame) -> list[dict]:
    """Tensors not (fully) compared, with why and how many entries were left out."""
    rows = df[df["status"] != "compared"] if "status" in df else df.iloc[0:0]
    return [{"name": r.name, "status": r.status, "numel_skipped": int(r.numel_skipped)} for r in rows.itertuples()]


def sparsity_by(df: pd.DataFrame, key: str | list[str]) -> pd.DataFrame:
    """Sparsity per group (e.g. 'layer' or 'module'): unchanged / numel within each group."""
    cols = [c.column for c in criteria_of(df)]
    grouped = _params(df).groupby(key, dropna=False)[["numel", *cols]].sum()
    return grouped[cols].div(grouped["numel"], axis=0).rename(columns=lambda c: c.removeprefix("unchanged_"))
