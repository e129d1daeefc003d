"""Checks of the claims about the subnetwork and where updates land: retraining it, its overlap across
runs, the rank of the update and its spread over the layers.

Each reads named rows of the study's tables and returns (verdict, evidence); see `claims.CLAIMS`.
"""

from __future__ import annotations

import pandas as pd

from ..diff import Criterion
from ..uncertainty import NOISE_Z, combined_standard_error, judge
from .verdicts import (FAILS, HOLDS, NOT_MEASURED, Tables, Verdict, counted, every_one, listing, missing,
                       numeric_rows, pct)

#: the module group whose rank says nothing about the transformer blocks: `diff.describe` puts the (tied,
#: vocabulary-sized) embedding and lm_head matrices in it.
RANK_EXCLUDED = frozenset({"embedding"})


def _subnetwork_rows(tables: Tables, columns: list[str], empty: str) -> tuple[pd.DataFrame | None, str]:
    """The subnetwork table's runs with a number in every one of `columns`, or None and why not."""
    why = missing(tables, "subnetwork", ["run", *columns])
    if why:
        return None, why
    df = numeric_rows(tables, "subnetwork", columns)
    return (None, empty) if df.empty else (df, "")


def _accuracy_difference(tables: Tables, a: str, b: str, margin: float, empty: str
                         ) -> tuple[pd.DataFrame | None, str]:
    """The subnetwork table's runs with accuracies `a` and `b` and their standard errors: `difference`
    (a - b, points), `noise` (NOISE_Z combined standard errors) and `outcome`, the difference against `margin`
    beyond the noise or within it (`uncertainty.judge`). Without the errors the comparison is not measured:
    a difference of a few points may be the test set's sampling alone."""
    df, why = _subnetwork_rows(tables, [a, b, f"{a}_se", f"{b}_se"], empty)
    if df is None:
        return None, why
    df["difference"] = df[a] - df[b]
    error = [combined_standard_error(x, y) for x, y in zip(df[f"{a}_se"], df[f"{b}_se"])]
    df["noise"] = [NOISE_Z * e for e in error]
    df["outcome"] = [judge(d, margin, e) for d, e in zip(df["difference"], error)]
    return df, ""


def _versus(difference: float, noise: float, outcome: str) -> str:
    return f"{difference:+.2f} points, noise ±{noise:.2f}" + (", within noise" if outcome == "within noise" else "")


def subnetwork_recovers(tables: Tables, column: str, t: float) -> Verdict:
    """A run recovers when subnetwork - full accuracy is above -t beyond the noise; a shortfall within the
    noise of -t recovers nothing (nor fails): the test set cannot tell."""
    df, why = _accuracy_difference(tables, "accuracy_subnetwork", "accuracy_full", -t,
                                   "no subnetwork run with both accuracies and their standard errors")
    if df is None:
        return NOT_MEASURED, why
    items = [f"{r.run} full {pct(r.accuracy_full)}, subnetwork {pct(r.accuracy_subnetwork)} "
             f"({_versus(r.difference, r.noise, r.outcome)})" for r in df.itertuples(index=False)]
    return every_one(df["outcome"] == "above", items, "runs recover beyond noise")


def mask_beats_random(tables: Tables, column: str, t: float) -> Verdict:
    """A run's subnetwork beats the same-density random mask when their difference is above t beyond the
    noise; within it, the mask is not shown to matter."""
    df, why = _accuracy_difference(tables, "accuracy_subnetwork", "accuracy_random_same", t,
                                   "no run with both the subnetwork and the same-density random mask scored, "
                                   "with their standard errors")
    if df is None:
        return NOT_MEASURED, why
    signs = {"above": ">", "below": "<=", "within noise": "~"}
    items = [f"{r.run} subnetwork {pct(r.accuracy_subnetwork)} {signs[r.outcome]} random "
             f"{pct(r.accuracy_random_same)} ({_versus(r.difference, r.noise, r.outcome)})"
             for r in df.itertuples(index=False)]
    return every_one(df["outcome"] == "above", items, "runs beat random beyond noise")


def _equal_tolerances(columns: list[str]) -> dict[str, float]:
    """The subnetwork table's `equal tol=T (%)` columns (how `tables.subnetwork_table` names them) -> T."""
    tolerances = {}
    for c in columns:
        if c.startswith("equal ") and c.endswith(" (%)"):
            try:
                criterion = Criterion.parse(c.removeprefix("equal ").removesuffix(" (%)"))
            except ValueError:
                continue
            if criterion.kind == "tolerance":
                tolerances[c] = float(criterion.tolerance)
    return tolerances


def subnetwork_same_weights(tables: Tables, column: str, t: float) -> Verdict:
    why = missing(tables, "subnetwork", ["run"])
    if why:
        return NOT_MEASURED, why
    tolerances = _equal_tolerances(list(tables["subnetwork"].columns))
    if not tolerances:
        return NOT_MEASURED, "subnetwork.csv has no 'equal tol=... (%)' column"
    equal = max(tolerances, key=tolerances.get)
    df = numeric_rows(tables, "subnetwork", [equal])
    if df.empty:
        return NOT_MEASURED, f"no run with a value in {equal!r}"
    values = df.set_index("run")[equal]
    mean = float(values.mean())
    ok = mean >= t
    return (HOLDS if ok else FAILS,
            f"{equal.removesuffix(' (%)')}: mean {pct(mean)} {'>=' if ok else '<'} {t:g}% over "
            f"{counted(len(values), 'run')} (min {values.idxmin()} {pct(values.min())})")


def overlap_above_random(tables: Tables, column: str, t: float) -> Verdict:
    numeric = ["o1", "random_o1", "o2", "random_o2"]
    why = missing(tables, "overlap", ["run_1", "run_2", *numeric])
    if why:
        return NOT_MEASURED, why
    df = numeric_rows(tables, "overlap", numeric)
    if df.empty:
        return NOT_MEASURED, "no pair of runs with overlaps"
    above = (df["o1"] > df["random_o1"]) & (df["o2"] > df["random_o2"])
    share = float(above.mean())
    below = [f"{r.run_1} vs {r.run_2} o1 {pct(r.o1)} (random {pct(r.random_o1)}), o2 {pct(r.o2)} "
             f"(random {pct(r.random_o2)})" for r in df[~above].itertuples(index=False)]
    evidence = (f"{int(above.sum())}/{len(df)} pairs ({100 * share:.1f}%) above random both ways; "
                f"mean o1 {pct(df['o1'].mean())} vs random {pct(df['random_o1'].mean())}, "
                f"mean o2 {pct(df['o2'].mean())} vs random {pct(df['random_o2'].mean())}")
    if below:
        evidence += "; not above: " + listing(below, limit=3)
    return (HOLDS if share >= t else FAILS), evidence


def full_rank(tables: Tables, column: str, t: float) -> Verdict:
    """Reads `mean_rank_pct`, the rank table's mean rank (% of the maximum) per run and module group."""
    why = missing(tables, "rank", ["run", "group", "mean_rank_pct"])
    if why:
        return NOT_MEASURED, why
    df = numeric_rows(tables, "rank", ["mean_rank_pct"])
    df = df[~df["group"].astype(str).isin(RANK_EXCLUDED)]
    if df.empty:
        return NOT_MEASURED, "no rank measured outside the embedding and lm_head"
    mean = float(df["mean_rank_pct"].mean())
    low = df.loc[df["mean_rank_pct"].idxmin()]
    ok = mean >= t
    return (HOLDS if ok else FAILS,
            f"{counted(len(df), '(run, group) row')} of {counted(df['run'].nunique(), 'run')}, embedding/lm_head "
            f"excluded: mean {pct(mean)} {'>=' if ok else '<'} {t:g}% (lowest {low['run']} {low['group']} "
            f"{pct(low['mean_rank_pct'])})")


def layer_spread(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run: std (points, over the numbered layers) of each layer's mean sparsity over its module types.

    The population std (ddof=0): it describes the layers measured, it estimates nothing beyond them.
    Rows outside the numbered layers (layer "-": embeddings, lm_head, the final norm) are left out: the
    claim is about the transformer blocks.
    """
    df = layers.copy()
    df["_layer"] = pd.to_numeric(df["layer"], errors="coerce")
    df = df[df["_layer"].notna() & (df["_layer"] == df["_layer"].round())]
    modules = [c for c in layers.columns if c not in ("run", "layer")]
    values = df[modules].apply(pd.to_numeric, errors="coerce")
    df["_mean"] = values.mean(axis=1, skipna=True)
    rows = []
    for run, group in df.dropna(subset=["_mean"]).groupby("run", sort=True):
        if len(group) >= 2:
            rows.append({"run": run, "layers": len(group), "spread": float(group["_mean"].std(ddof=0)),
                         "min": float(group["_mean"].min()), "max": float(group["_mean"].max())})
    return pd.DataFrame(rows, columns=["run", "layers", "spread", "min", "max"])


def layers_uniform(tables: Tables, column: str, t: float) -> Verdict:
    why = missing(tables, "layers", ["run", "layer"])
    if why:
        return NOT_MEASURED, why
    spread = layer_spread(tables["layers"])
    if spread.empty:
        return NOT_MEASURED, "no run with sparsity measured in 2 or more numbered layers"
    worst = spread.loc[spread["spread"].idxmax()]
    ok = worst["spread"] <= t
    return (HOLDS if ok else FAILS,
            f"{counted(len(spread), 'run')}; largest spread {worst['run']} {worst['spread']:.2f} points "
            f"{'<=' if ok else '>'} {t:g} over {int(worst['layers'])} layers "
            f"(layer means {pct(worst['min'])} to {pct(worst['max'])})")
