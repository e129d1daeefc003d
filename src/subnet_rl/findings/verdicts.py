"""What every claim check shares: the verdicts, how evidence quotes numbers, and reading table rows.

A check never raises on a table that lacks what it needs: it says so (`missing`), and its verdict is
"not measured", never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..algorithms import get_algorithm
from ..outcomes import DOUBTFUL, described

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"

Tables = dict[str, pd.DataFrame]
Verdict = tuple[str, str]
#: (tables, headline sparsity column, threshold) -> (verdict, evidence)
Check = Callable[[Tables, str, float], Verdict]


def pct(x: float) -> str:
    return f"{x:.1f}%"


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def lr_text(x: float) -> str:
    return f"{x:.0e}"


def match_key(value: object) -> str:
    """A matching key that ignores float noise (a CSV round trip may turn 1e-06 into 1.0000000000000002e-06)."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def row_keys(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """One matching key per row over `columns`: rows with equal keys are compared with each other."""
    return ["\x1f".join(match_key(v) for v in row) for row in df[columns].itertuples(index=False)]


def listing(items: list[str], limit: int = 6) -> str:
    """Evidence lists stay readable: the first `limit` items, then how many were left out."""
    shown = "; ".join(items[:limit])
    return shown + (f"; ... +{len(items) - limit} more" if len(items) > limit else "")


def every_one(ok: Sequence[bool], items: list[str], counted_as: str = "", limit: int = 6) -> Verdict:
    """Holds when every item passes; the evidence lists the failing ones first, after how many of the
    `counted_as` passed when that is named."""
    ok = [bool(k) for k in ok]
    listed = [item for item, _ in sorted(zip(items, ok), key=lambda x: x[1])]
    head = f"{sum(ok)}/{len(ok)} {counted_as}: " if counted_as else ""
    return (HOLDS if all(ok) else FAILS), head + listing(listed, limit)


def missing(tables: Tables, name: str, columns: Iterable[str]) -> str | None:
    """Why a table cannot serve a claim (absent, or lacking a column), or None when it can."""
    df = tables.get(name)
    if df is None:
        return f"no {name}.csv"
    absent = [c for c in columns if c not in df.columns]
    return f"{name}.csv has no column {', '.join(repr(c) for c in absent)}" if absent else None


def numeric_rows(tables: Tables, name: str, numeric: list[str]) -> pd.DataFrame:
    """The rows of a table with every `numeric` column a number (coerced; rows without one dropped)."""
    df = tables[name].copy()
    for c in numeric:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=numeric).reset_index(drop=True)


def is_rl(df: pd.DataFrame) -> pd.Series:
    """Rows of RL (and preference) runs, as the algorithm registry counts them; SFT, the control and the
    warmup from random init alike, is not."""
    return df["algorithm"].map(lambda name: get_algorithm(str(name)).is_rl).astype(bool)


def weak_arms(df: pd.DataFrame, run: str = "run", prefix: str = "") -> list[str]:
    """Per row of a comparison table, the arm it holds if that arm did not learn the task (`outcomes.DOUBTFUL`:
    lost accuracy, learned another target, or no change beyond the noise), described with its accuracies; ""
    for an arm that learned, or with no `outcome` column (an older table: nothing is claimed about it)."""
    column = f"{prefix}outcome"
    if column not in df:
        return [""] * len(df)
    before = df["accuracy_before"] if "accuracy_before" in df else pd.Series(np.nan, index=df.index)
    return [described(str(r), str(o), float(b), float(a)) if o in DOUBTFUL else ""
            for r, o, b, a in zip(df[run], df[column], before, df[f"{prefix}accuracy_after"])]


def with_caveat(verdict: Verdict, weak: Sequence[Iterable[str]]) -> Verdict:
    """A verdict whose comparisons rest partly on arms that did not learn the task says so first: how many of
    the comparisons (`weak`: per comparison, the descriptions of its weak arms; "" entries are none), and
    which arms."""
    per_comparison = [{w for w in arms if w} for arms in weak]
    named = sorted(set().union(*per_comparison)) if per_comparison else []
    if not named:
        return verdict
    flagged = sum(1 for arms in per_comparison if arms)
    return verdict[0], (f"caution: {flagged}/{len(per_comparison)} comparisons rest on an arm that did not learn "
                        f"the task ({listing(named, 4)}); " + verdict[1])
