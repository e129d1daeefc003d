"""The diff's vocabulary: what 'unchanged' means, how each criterion is spelled, which ones a workflow's
`diff` settings produce, and the policies for a resized tensor.

Pure Python on purpose: the Snakefile imports it on every DAG parse (to check the configured criterion
against the diff tables' columns), so it must not pull in NumPy or the checkpoint readers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_TOLERANCES = (1e-8, 1e-7, 1e-6, 1e-5)
# Criterion kind that takes a number -> the prefix of its label (tol=1e-05).
TOLERANCE_KINDS = {"tolerance": "tol", "exact_tolerance": "exact_tol", "relative": "rel"}
# Criterion kinds that take none, spelled as their label.
PLAIN_KINDS = ("bf16_bitwise", "exact")
# A diff table's count column of a criterion is this prefix + the criterion's label.
COLUMN_PREFIX = "unchanged_"
# A tensor whose first dimension differs (a resized vocabulary): skipped, as the official script does, or
# compared on the rows both sides have.
RESIZED_POLICIES = ("skip", "shared_rows")


@dataclass(frozen=True)
class Criterion:
    """How 'unchanged' is decided: the official |bf16 Δ| <= tolerance (`tolerance`), the exact difference
    of the bf16 values (`exact_tolerance`), the relative |Δ| <= η max(|w0|, |w1|) of Zhu et al. 2025
    (`relative`, η in `tolerance`), bf16 bitwise, or exact (identical stored bits; of two float dtypes, in
    the one both widen into without loss, so fp32 weights trained from a bf16 start show every change)."""

    kind: str
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in (*TOLERANCE_KINDS, *PLAIN_KINDS):
            raise ValueError(f"unknown criterion {self.kind!r}; use tolerance, exact_tolerance, bf16_bitwise or exact")
        if (self.kind in TOLERANCE_KINDS) != (self.tolerance is not None):
            raise ValueError("a tolerance criterion needs a tolerance, and only it")

    @property
    def label(self) -> str:
        return f"{TOLERANCE_KINDS[self.kind]}={self.tolerance:g}" if self.kind in TOLERANCE_KINDS else self.kind

    @property
    def column(self) -> str:
        return COLUMN_PREFIX + self.label

    @classmethod
    def parse(cls, label: str) -> Criterion:
        """A criterion from its label (tol=T, exact_tol=T, bf16_bitwise, exact); T in any float spelling."""
        for kind, prefix in TOLERANCE_KINDS.items():
            if label.startswith(prefix + "="):
                try:
                    return cls(kind, float(label[len(prefix) + 1 :]))
                except ValueError:
                    break
        if label in PLAIN_KINDS:
            return cls(label)
        raise ValueError(f"criterion {label!r} is not tol=<number>, exact_tol=<number>, rel=<number>, "
                         "bf16_bitwise or exact (e.g. tol=1e-05)")


def canonical_label(label: str) -> str:
    """The one spelling of a criterion label the tables use (tol=1e-5 and tol=0.00001 are tol=1e-05)."""
    return Criterion.parse(label).label


def default_criteria(tolerances: Iterable[float] = DEFAULT_TOLERANCES, exact_tolerances: Iterable[float] = (),
                     relative: Iterable[float] = ()) -> list[Criterion]:
    """The criteria a diff counts: each tolerance, exact tolerance and relative η given, then bf16 bitwise
    and exact (always: they say how much sparsity is bf16 rounding alone)."""
    return ([Criterion("tolerance", float(t)) for t in tolerances]
            + [Criterion("exact_tolerance", float(t)) for t in exact_tolerances]
            + [Criterion("relative", float(eta)) for eta in relative]
            + [Criterion(kind) for kind in PLAIN_KINDS])


def diff_labels(settings: dict) -> set[str]:
    """Criterion labels of the diff tables the workflow's `diff` settings produce."""
    criteria = default_criteria(settings.get("tolerances", DEFAULT_TOLERANCES), settings.get("exact_tolerances", ()),
                                settings.get("relative", ()))
    return {c.label for c in criteria}


def criteria_of(columns: Iterable[str]) -> list[Criterion]:
    """Criteria whose counts a diff table's columns hold (in column order)."""
    return [Criterion.parse(c.removeprefix(COLUMN_PREFIX)) for c in columns if c.startswith(COLUMN_PREFIX)]
