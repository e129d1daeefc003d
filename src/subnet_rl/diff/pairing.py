"""Which tensor of one checkpoint is compared with which of the other, and how: one `TensorPair` per
tensor name, with a status that says what was compared or why not.

Nothing is silently dropped: tensors present on one side only, tensors whose shapes differ, tensors whose
dtypes are of different kinds (a float vs a bool or an integer: their values are not comparable; floats of
different widths, such as an fp32 start and bf16 weights, are), and stored copies of tied weights each get
a pair that says what was compared and what skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..checkpoints import Checkpoint
from ..floats import FP8
from ..tensorfile import TensorEntry
from .criteria import RESIZED_POLICIES
from .taxonomy import role_of, scale_of

# Statuses whose values are compared (a resized tensor on its shared leading rows).
COMPARED = ("compared", "resized")
# What a stored dtype's values are: only tensors of one kind are compared (a float weight stored as bool or
# int64 on the other side is another tensor, not an update).
DTYPE_KINDS = {"F64": "float", "F32": "float", "F16": "float", "BF16": "float", "F8_E4M3": "float",
               "F8_E5M2": "float", "I64": "int", "I32": "int", "I16": "int", "I8": "int", "U8": "uint",
               "BOOL": "bool"}


@dataclass(frozen=True)
class TensorPair:
    """How one tensor name is compared: status, role, and how many leading rows both sides share."""

    name: str
    before: TensorEntry | None
    after: TensorEntry | None
    status: str  # compared | resized | resized_skipped | tied | only_before | only_after | shape_mismatch
    #              | dtype_mismatch
    role: str    # taxonomy.ROLES: param | scale | buffer
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
    """Every tensor name of either checkpoint, classified, in name order.

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
        role = role_of(name, before.entries, after.entries)
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


def compared_params(before: Checkpoint | str | os.PathLike, after: Checkpoint | str | os.PathLike,
                    resized: str = "skip") -> list[TensorPair]:
    """The parameters whose values a diff compares (role param, status in COMPARED), in `pair_tensors`
    order: the one set that masks, ranks and dynamics iterate, so their entries line up with the diff's.
    `before`/`after` are checkpoint paths or already opened `Checkpoint`s."""
    before = before if isinstance(before, Checkpoint) else Checkpoint(before)
    after = after if isinstance(after, Checkpoint) else Checkpoint(after)
    return [p for p in pair_tensors(before, after, resized) if p.role == "param" and p.status in COMPARED]


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


def _scales(name: str, a: TensorEntry, b: TensorEntry, before: Checkpoint, after: Checkpoint) -> tuple:
    """Each side's block-scale tensor of an fp8 weight, then each side's block size (from its config)."""
    sa = before.entries[s] if a.dtype in FP8 and (s := scale_of(name, before.entries)) else None
    sb = after.entries[s] if b.dtype in FP8 and (s := scale_of(name, after.entries)) else None
    return sa, sb, before.fp8_block if sa is not None else None, after.fp8_block if sb is not None else None
