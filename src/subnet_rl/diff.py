"""Checkpoint diffing: per-tensor counts of unchanged entries under several criteria, in bounded memory.

`tol=T` is the paper's number, computed exactly as its official script does: both checkpoints as bf16,
Δ = after - before subtracted in bf16 (rounded to nearest even), and `torch.isclose(Δ, 0, atol=T)`,
which compares |Δ| with T rounded to bf16 and never counts NaN (nor an inf that stays inf: inf - inf
is NaN) as close; +0 and -0 are equal. `exact_tol=T` is the exact difference of the two bf16 values
against T itself, with bit-identical entries (NaN and inf included) unchanged. `bf16_bitwise` counts
identical bf16 bit patterns (so +0 vs -0 is a change), and `exact` identical stored values, so a user
can see how much sparsity comes from bf16 rounding alone.

Tensors are streamed in chunks (`tensorfile.ChunkReader`): memory is bounded by a chunk, never by a
tensor or a model. Nothing is silently dropped: tensors present on one side only, tensors whose shapes
differ, tensors whose dtypes are of different kinds (a float vs a bool or an integer: their values are
not comparable; floats of different widths, such as an fp32 start and bf16 weights, are), and stored
copies of tied weights each get a row that says what was compared and what skipped.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .checkpoints import Checkpoint
from .floats import FP8, bf16_bits_to_f32, dequantize, f32_to_bf16_bits, narrower_bits, to_bf16_bits, to_float32
from .tensorfile import ChunkReader, TensorEntry, element_chunks

DEFAULT_TOLERANCES = (1e-8, 1e-7, 1e-6, 1e-5)
DEFAULT_CHUNK_BYTES = 16 * 2**20
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_SCALE_SUFFIXES = ("_scale_inv", "_scale")
COMPARED = ("compared", "resized")
RESIZED_POLICIES = ("skip", "shared_rows")
# Stored buffers (not parameters): the official script counts named_parameters only.
_BUFFER = re.compile(r"(?:^|\.)(?:inv_freq|position_ids|masked_bias|attn\.bias)$")
# What a stored dtype's values are: only tensors of one kind are compared (a float weight stored as bool or
# int64 on the other side is another tensor, not an update).
DTYPE_KINDS = {"F64": "float", "F32": "float", "F16": "float", "BF16": "float", "F8_E4M3": "float",
               "F8_E5M2": "float", "I64": "int", "I32": "int", "I16": "int", "I8": "int", "U8": "uint",
               "BOOL": "bool"}


TOLERANCE_KINDS = {"tolerance": "tol", "exact_tolerance": "exact_tol", "relative": "rel"}


@dataclass(frozen=True)
class Criterion:
    """How 'unchanged' is decided: the official |bf16 Δ| <= tolerance (`tolerance`), the exact difference
    of the bf16 values (`exact_tolerance`), the relative |Δ| <= η max(|w0|, |w1|) of Zhu et al. 2025
    (`relative`, η in `tolerance`), bf16 bitwise, or exact (stored dtype, the narrower of the two when
    they differ)."""

    kind: str
    tolerance: float | None = None

    def __post_init__(self):
        if self.kind not in (*TOLERANCE_KINDS, "bf16_bitwise", "exact"):
            raise ValueError(f"unknown criterion {self.kind!r}; use tolerance, exact_tolerance, bf16_bitwise or exact")
        if (self.kind in TOLERANCE_KINDS) != (self.tolerance is not None):
            raise ValueError("a tolerance criterion needs a tolerance, and only it")

    @property
    def label(self) -> str:
        return f"{TOLERANCE_KINDS[self.kind]}={self.tolerance:g}" if self.kind in TOLERANCE_KINDS else self.kind

    @property
    def column(self) -> str:
        return f"unchanged_{self.label}"

    @classmethod
    def parse(cls, label: str) -> "Criterion":
        """A criterion from its label (tol=T, exact_tol=T, bf16_bitwise, exact); T in any float spelling."""
        for kind, prefix in TOLERANCE_KINDS.items():
            if label.startswith(prefix + "="):
                try:
                    return cls(kind, float(label[len(prefix) + 1 :]))
                except ValueError:
                    break
        if label in ("bf16_bitwise", "exact"):
            return cls(label)
        raise ValueError(f"criterion {label!r} is not tol=<number>, exact_tol=<number>, rel=<number>, "
                         "bf16_bitwise or exact (e.g. tol=1e-05)")


def canonical_label(label: str) -> str:
    """The one spelling of a criterion label the tables use (tol=1e-5 and tol=0.00001 are tol=1e-05)."""
    return Criterion.parse(label).label


def diff_labels(settings: dict) -> set[str]:
    """Criterion labels of the diff tables the workflow's `diff` settings produce."""
    criteria = default_criteria(settings.get("tolerances", DEFAULT_TOLERANCES), settings.get("exact_tolerances", ()),
                                settings.get("relative", ()))
    return {c.label for c in criteria}


def default_criteria(tolerances=DEFAULT_TOLERANCES, exact_tolerances=(), relative=()) -> list[Criterion]:
    return ([Criterion("tolerance", float(t)) for t in tolerances]
            + [Criterion("exact_tolerance", float(t)) for t in exact_tolerances]
            + [Criterion("relative", float(eta)) for eta in relative]
            + [Criterion("bf16_bitwise"), Criterion("exact")])


@functools.cache
def isclose_threshold(tolerance: float) -> np.float32:
    """The largest float32 |Δ| that torch.isclose(Δ, 0, atol=tolerance) accepts once Δ is a bf16 value.

    isclose on bf16 tensors compares |Δ| with atol rounded to bf16 (`atol + rtol * |0|` computed in the
    tensor's dtype: the double cast to float32, then to bf16). Δ itself is the float32 difference rounded
    to bf16 (nearest even), and rounding is monotonic, so |round(x)| <= t exactly when |x| <= the
    midpoint between t and the next bf16 value, the midpoint included when the tie rounds down to t
    (t's last bit even). Comparing float32 |Δ| with this bound gives the official answer without
    rounding every difference to bf16.
    """
    t = int(f32_to_bf16_bits(np.array([tolerance], dtype=np.float32))[0])
    bound = (t << 16) + (0x8000 if t % 2 == 0 else 0x7FFF)
    return np.array([bound], dtype=np.uint32).view(np.float32)[0]


def _nonfinite(bits: np.ndarray) -> np.ndarray:
    """NaN or ±inf, from bf16 bit patterns (exponent all ones)."""
    return (bits & 0x7F80) == 0x7F80


def _any_nonfinite(bits: np.ndarray) -> bool:
    """Whether any bf16 pattern is NaN or ±inf, in two max reductions and no temporary array: negative
    NaN/inf are the largest uint16 patterns (>= 0xFF80), positive ones the largest int16 (>= 0x7F80)."""
    return bits.size > 0 and (int(bits.max()) >= 0xFF80 or int(bits.view(np.int16).max()) >= 0x7F80)


def _values64(raw: np.ndarray, dtype: str) -> np.ndarray:
    return to_float32(raw, dtype).astype(np.float64) if dtype in FP8 or dtype == "BF16" else raw.astype(np.float64)


def _compare(stored_a: np.ndarray, a_dtype: str, stored_b: np.ndarray, b_dtype: str, bits_a: np.ndarray,
             bits_b: np.ndarray, criteria: list[Criterion], want_masks: bool) -> dict[Criterion, np.ndarray | int]:
    """Unchanged counts (or boolean masks) per criterion for one chunk.

    `bits_*` are the compared values as bf16 bit patterns (bf16 casts, or dequantized fp8 rounded to
    bf16); `stored_*` the stored values, for the exact criterion. |Δ| is computed only where the bf16
    bits differ, which in sparse updates is a small share of the entries.
    """
    changed = bits_a != bits_b
    # Positions whose bits differ: needed by every tolerance criterion, and their count gives n_same
    # (one scan of `changed` instead of two).
    where = np.flatnonzero(changed) if any(c.kind in TOLERANCE_KINDS for c in criteria) else None
    n_same = changed.size - (where.size if where is not None else int(np.count_nonzero(changed)))
    delta = exact_delta = magnitude = stuck = None
    out: dict[Criterion, np.ndarray | int] = {}
    for criterion in criteria:
        if criterion.kind in TOLERANCE_KINDS:
            if delta is None:
                with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf, NaN: as torch
                    delta = np.abs(bf16_bits_to_f32(bits_b[where]) - bf16_bits_to_f32(bits_a[where]))
            if criterion.kind == "tolerance":
                # Official: Δ subtracted in bf16 (float32 compute, then rounded), isclose(Δ, 0, atol); NaN
                # is never close, and NaN or inf that stays put gives Δ = NaN: changed too.
                if stuck is None:
                    stuck = _nonfinite(bits_a) & ~changed if _any_nonfinite(bits_a) else False
                within = delta <= isclose_threshold(criterion.tolerance)
                lost = stuck
            else:
                # The exact difference of the two bf16 values (in float64, where it is always exact); the
                # relative criterion bounds it by η max(|w0|, |w1|) (bit-identical entries unchanged).
                if exact_delta is None:
                    a64, b64 = (bf16_bits_to_f32(bits[where]).astype(np.float64) for bits in (bits_a, bits_b))
                    with np.errstate(invalid="ignore"):
                        exact_delta = np.abs(b64 - a64)
                    magnitude = np.maximum(np.abs(a64), np.abs(b64))
                bound = criterion.tolerance * magnitude if criterion.kind == "relative" else criterion.tolerance
                with np.errstate(invalid="ignore"):
                    within = (exact_delta <= bound) & np.isfinite(exact_delta)
                lost = False
            if want_masks:
                mask = ~changed if lost is False else ~changed & ~lost
                mask[where] = within
                out[criterion] = mask
            else:
                lost_count = 0 if lost is False else int(np.count_nonzero(lost))
                out[criterion] = n_same - lost_count + int(np.count_nonzero(within))
        elif criterion.kind == "bf16_bitwise" or (a_dtype == b_dtype == "BF16"):
            out[criterion] = ~changed if want_masks else n_same
        else:
            as_bits = narrower_bits(stored_a, a_dtype, stored_b, b_dtype)
            equal = (as_bits[0] == as_bits[1]) if as_bits is not None else (
                _values64(stored_a, a_dtype) == _values64(stored_b, b_dtype))
            out[criterion] = equal if want_masks else int(np.count_nonzero(equal))
    return out


_TORCH_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                 "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
                 "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}


def as_stored(tensor) -> tuple[np.ndarray, str]:
    """A torch tensor as (flat NumPy storage, safetensors dtype name), the form the engine compares."""
    import torch

    dtype = _TORCH_DTYPES[str(tensor.dtype).removeprefix("torch.")]
    flat = tensor.detach().reshape(-1).cpu()
    if dtype == "BF16":
        return flat.view(torch.int16).numpy().view(np.uint16), dtype
    if dtype in FP8:
        return flat.view(torch.uint8).numpy(), dtype
    return flat.numpy(), dtype


def unchanged_masks(before, after, criteria: list[Criterion]) -> dict[Criterion, np.ndarray]:
    """Boolean 'entry unchanged' arrays of two whole torch tensors, one per criterion."""
    (a, a_dtype), (b, b_dtype) = as_stored(before), as_stored(after)
    masks = _compare(a, a_dtype, b, b_dtype, to_bf16_bits(a, a_dtype), to_bf16_bits(b, b_dtype), criteria, True)
    return {c: m.reshape(tuple(before.shape)) for c, m in masks.items()}


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
    status: str  # compared | resized | resized_skipped | tied | only_before | only_after | shape_mismatch
    #              | dtype_mismatch
    role: str    # param | scale | buffer
    rows: int = 0
    scale_before: TensorEntry | None = None
    scale_after: TensorEntry | None = None
    block_before: tuple[int, int] | None = None  # fp8 block size (rows, columns) of each side's scales
    block_after: tuple[int, int] | None = None
    tied_to: str | None = None  # the tensor one side's tied weight is (tied on one side only)

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
        return max(sizes)  # not compared at all (resized_skipped, shape_mismatch, dtype_mismatch, one side only)

    @property
    def compared_shape(self) -> tuple[int, ...]:
        return (self.rows, *self.before.shape[1:]) if self.before.shape else ()


def pair_tensors(before: Checkpoint, after: Checkpoint, resized: str = "skip") -> list[TensorPair]:
    """Every tensor name of either checkpoint, classified.

    Tensors whose first dimension differs (a resized vocabulary) are skipped, as the official script
    does (its subtraction fails), or with `resized="shared_rows"` compared on their shared leading rows.
    A weight tied on both sides counts once; tied on one side only, that side's tied weight (its input
    embedding) is compared with the other side's separately trained one. Dtypes of different kinds
    (`DTYPE_KINDS`: float, signed or unsigned integer, bool) are never compared as values
    (`dtype_mismatch`, skipped); floats of any widths are.
    """
    if resized not in RESIZED_POLICIES:
        raise ValueError(f"resized must be one of {RESIZED_POLICIES}, not {resized!r}")
    entries_a, aliases_a = _with_tied_aliases(before, after)
    entries_b, aliases_b = _with_tied_aliases(after, before)
    tied = before.tied_weights().keys() & after.tied_weights().keys()
    pairs = []
    for name in sorted(set(before.entries) | set(after.entries) | set(aliases_a) | set(aliases_b)):
        a, b = entries_a.get(name), entries_b.get(name)
        role = ("scale" if _is_block_scale(name, before.entries) or _is_block_scale(name, after.entries)
                else "buffer" if _BUFFER.search(name) else "param")
        alias = aliases_a.get(name) or aliases_b.get(name)
        if name in tied:
            pairs.append(TensorPair(name, a, b, "tied", role))
        elif a is None or b is None:
            pairs.append(TensorPair(name, a, b, "only_before" if b is None else "only_after", role))
        elif DTYPE_KINDS[a.dtype] != DTYPE_KINDS[b.dtype]:
            pairs.append(TensorPair(name, a, b, "dtype_mismatch", role, tied_to=alias))
        elif a.shape == b.shape:
            pairs.append(TensorPair(name, a, b, "compared", role, a.shape[0] if a.shape else 1,
                                    *_scales(name, a, b, before, after), tied_to=alias))
        elif len(a.shape) == len(b.shape) >= 1 and a.shape[1:] == b.shape[1:]:
            if resized == "skip":
                pairs.append(TensorPair(name, a, b, "resized_skipped", role, tied_to=alias))
            else:
                pairs.append(TensorPair(name, a, b, "resized", role, min(a.shape[0], b.shape[0]),
                                        *_scales(name, a, b, before, after), tied_to=alias))
        else:
            pairs.append(TensorPair(name, a, b, "shape_mismatch", role, tied_to=alias))
    return pairs


def _with_tied_aliases(side: Checkpoint, other: Checkpoint) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """`side`'s entries, plus its tied weights as the tensors they are tied to where `other` trains them
    separately (e.g. lm_head.weight -> model.embed_tokens.weight)."""
    entries = dict(side.entries)
    aliases = {}
    other_tied = other.tied_weights()
    for copy, source in side.tied_weights().items():
        if copy not in entries and copy in other.entries and copy not in other_tied:
            entries[copy] = entries[source]
            aliases[copy] = source
    return entries, aliases


def _is_block_scale(name: str, entries: dict[str, TensorEntry]) -> bool:
    """A scale tensor belongs to an fp8 weight beside it (not every tensor named *_scale does)."""
    return any(name.endswith(suffix) and (w := entries.get(name.removesuffix(suffix))) is not None
               and w.dtype in FP8 for suffix in _SCALE_SUFFIXES)


def _scales(name, a, b, before, after) -> tuple:
    """Each side's block-scale tensor of an fp8 weight, then each side's block size (from its config)."""
    sa = before.entries[s] if a.dtype in FP8 and (s := scale_of(name, before.entries)) else None
    sb = after.entries[s] if b.dtype in FP8 and (s := scale_of(name, after.entries)) else None
    return sa, sb, before.fp8_block if sa is not None else None, after.fp8_block if sb is not None else None


@dataclass(frozen=True)
class _Chunk:
    pair: TensorPair
    start: int
    stop: int
    scales: tuple[np.ndarray | None, np.ndarray | None]


def _chunks(pairs: Iterable[TensorPair], chunk_bytes: int, reader: ChunkReader) -> Iterator[_Chunk]:
    """Element ranges of every compared pair; fp8 block-scaled tensors split on block-row boundaries.
    Scales are decoded from their own stored dtype (float32 in DeepSeek-V3; bf16 or fp16 elsewhere)."""
    for pair in pairs:
        scales = tuple(to_float32(reader.read(s, 0, s.numel, slot=0), s.dtype).copy().reshape(s.shape)
                       if s is not None else None for s in (pair.scale_before, pair.scale_after))
        row_elems = max(1, pair.row_elems)
        block_rows = [block[0] for block in (pair.block_before, pair.block_after) if block is not None]
        align = math.lcm(*block_rows) * row_elems if block_rows else 8
        itemsize = max(pair.before.itemsize, pair.after.itemsize)
        for start, stop in element_chunks(pair.numel, max(1, chunk_bytes // itemsize), align):
            yield _Chunk(pair, start, stop, scales)


def _bits(raw: np.ndarray, entry: TensorEntry, scale: np.ndarray | None, block: tuple[int, int] | None,
          row_elems: int, first_row: int) -> np.ndarray:
    """Values to compare, as bf16 bits: the stored values, or fp8 weights times their block scales."""
    if scale is None:
        return to_bf16_bits(raw, entry.dtype)
    return f32_to_bf16_bits(dequantize(raw, entry.dtype, scale, row_elems, first_row, block))


def _ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """`map` over a thread pool, results in order, at most 2 x workers chunks in flight (bounded memory)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def stream_compare(pairs: list[TensorPair], criteria: list[Criterion], chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                   want_masks: bool = False, workers: int | None = None) -> Iterator[tuple[TensorPair, dict]]:
    """Compare chunk by chunk on worker threads (NumPy releases the GIL); yield (pair, per-chunk result)
    in file order, so masks can be appended to a file as they come."""
    local = threading.local()
    readers: list[ChunkReader] = []

    def run(chunk: _Chunk) -> tuple[TensorPair, dict]:
        if not hasattr(local, "reader"):
            local.reader = ChunkReader(chunk_bytes)
            readers.append(local.reader)
        pair, row_elems = chunk.pair, max(1, chunk.pair.row_elems)
        raw_a = local.reader.read(pair.before, chunk.start, chunk.stop, slot=0)
        raw_b = local.reader.read(pair.after, chunk.start, chunk.stop, slot=1)
        first_row = chunk.start // row_elems
        bits_a = _bits(raw_a, pair.before, chunk.scales[0], pair.block_before, row_elems, first_row)
        bits_b = _bits(raw_b, pair.after, chunk.scales[1], pair.block_after, row_elems, first_row)
        return pair, _compare(raw_a, pair.before.dtype, raw_b, pair.after.dtype, bits_a, bits_b, criteria, want_masks)

    with ChunkReader(chunk_bytes) as scale_reader:
        try:
            yield from _ordered_map(run, _chunks(pairs, chunk_bytes, scale_reader), workers or default_workers())
        finally:
            for reader in readers:
                reader.close()


def _row(pair: TensorPair, counts: dict[Criterion, int], criteria: list[Criterion]) -> dict:
    a, b = pair.before, pair.after
    dtype = lambda e: e.dtype if e is not None else None  # noqa: E731
    return {
        "name": pair.name, **describe(pair.name), "role": pair.role, "status": pair.status,
        "shape": list(a.shape) if a is not None else None, "shape_after": list(b.shape) if b is not None else None,
        "dtype": dtype(a), "dtype_after": dtype(b), "numel": pair.numel, "numel_skipped": pair.numel_skipped,
        "tied_to": pair.tied_to,
        **{c.column: counts.get(c, 0) for c in criteria},
    }


def diff_rows(before: str | os.PathLike, after: str | os.PathLike, criteria: list[Criterion] | None = None,
              chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int | None = None, resized: str = "skip",
              progress: bool = False) -> list[dict]:
    """One dict per tensor name: what was compared or skipped, and unchanged counts per criterion.

    With `progress`, a tqdm bar over tensors goes to stderr (a job's log): a large pair takes minutes.
    """
    from tqdm import tqdm

    criteria = criteria or default_criteria()
    pairs = pair_tensors(Checkpoint(before), Checkpoint(after), resized)
    compared = [p for p in pairs if p.status in COMPARED]
    counts: dict[str, dict[Criterion, int]] = {p.name: dict.fromkeys(criteria, 0) for p in pairs}
    with tqdm(total=len(compared), unit="tensor", desc="diff", disable=not progress, mininterval=5,
              file=sys.stderr) as bar:
        started: set[str] = set()
        for pair, result in stream_compare(compared, criteria, chunk_bytes, workers=workers):
            if pair.name not in started:
                started.add(pair.name)
                bar.update(1)
            for criterion, value in result.items():
                counts[pair.name][criterion] += value
    return [_row(pair, counts[pair.name], criteria) for pair in pairs]


def diff_checkpoints(before: str | os.PathLike, after: str | os.PathLike, criteria: list[Criterion] | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int | None = None, resized: str = "skip",
                     progress: bool = False):
    """`diff_rows` as a DataFrame (layer as a nullable integer)."""
    import pandas as pd

    df = pd.DataFrame(diff_rows(before, after, criteria, chunk_bytes, workers, resized, progress))
    df["layer"] = df["layer"].astype("Int64")
    return df


def criteria_of(table) -> list[Criterion]:
    """Criteria whose counts a diff table (DataFrame or list of row dicts) holds."""
    columns = table.columns if hasattr(table, "columns") else (table[0] if table else {})
    return [Criterion.parse(c.removeprefix("unchanged_")) for c in columns if c.startswith("unchanged_")]


def _records(table) -> list[dict]:
    return table.to_dict("records") if hasattr(table, "to_dict") else table


def sparsity(table) -> dict[str, float]:
    """Overall sparsity (fraction of compared parameter entries unchanged) per criterion label."""
    params = [r for r in _records(table) if r.get("role", "param") == "param"]
    total = sum(r["numel"] for r in params)
    return {c.label: sum(r[c.column] for r in params) / total if total else float("nan") for c in criteria_of(table)}


def skipped(table) -> list[dict]:
    """Tensors not (fully) compared, with why and how many entries were left out."""
    return [{"name": r["name"], "status": r["status"], "numel_skipped": int(r["numel_skipped"])}
            for r in _records(table) if r.get("status", "compared") != "compared"]
