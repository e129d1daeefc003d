"""Checks of the claims about how sparse an update is: RL vs SFT, matched controls, data and precision.

Each reads named rows of the study's tables and returns (verdict, evidence); see `claims.CLAIMS`.
"""

from __future__ import annotations

import pandas as pd

from .verdicts import (FAILS, HOLDS, NOT_MEASURED, Tables, Verdict, counted, every_one, is_rl, listing, lr_text,
                       missing, numeric_rows, pct, row_keys, weak_arms, with_caveat)


def _median_claim(tables: Tables, column: str, t: float, rl: bool) -> Verdict:
    why = missing(tables, "sparsity", ["run", "algorithm", column])
    if why:
        return NOT_MEASURED, why
    df = numeric_rows(tables, "sparsity", [column])
    df = df[is_rl(df) == rl]
    kind = "RL" if rl else "SFT"
    if df.empty:
        return NOT_MEASURED, f"no {kind} run with a value in {column!r}"
    values = df.set_index("run")[column]
    median = float(values.median())
    ok = median >= t if rl else median <= t
    sign = (">=" if ok else "<") if rl else ("<=" if ok else ">")
    return (HOLDS if ok else FAILS,
            f"{counted(len(values), kind + ' run')}: median {pct(median)} {sign} {t:g}% "
            f"(min {values.idxmin()} {pct(values.min())}, max {values.idxmax()} {pct(values.max())})")


def rl_sparse(tables: Tables, column: str, t: float) -> Verdict:
    return _median_claim(tables, column, t, rl=True)


def sft_dense(tables: Tables, column: str, t: float) -> Verdict:
    return _median_claim(tables, column, t, rl=False)


def matched_control(tables: Tables, column: str, t: float) -> Verdict:
    """Reads the controls table, whose pairs `comparisons.matched_controls` found, at the headline criterion
    it was written with."""
    why = missing(tables, "controls", ["run", "control", "lr", "sparsity", "control_sparsity"])
    if why:
        return NOT_MEASURED, why
    df = numeric_rows(tables, "controls", ["sparsity", "control_sparsity"])
    if df.empty:
        return NOT_MEASURED, "no RL run has a matched SFT control with both sparsities measured"
    ok = df["sparsity"] > df["control_sparsity"] + t
    items = [f"{r.run} {pct(r.sparsity)} {'>' if k else '<='} {r.control} {pct(r.control_sparsity)} "
             f"(lr {lr_text(float(r.lr))})" for r, k in zip(df.itertuples(index=False), ok)]
    weak = list(zip(weak_arms(df), weak_arms(df, "control", "control_")))
    return with_caveat(every_one(ok, items, "matched pairs RL sparser"), weak)


def _logp(row: pd.Series) -> str:
    parts = [f"{name} logp {row[c]:.2f}" for name, c in (("chosen", "chosen_logp"), ("rejected", "rejected_logp"))
             if c in row and pd.notna(row[c])]
    return f" ({', '.join(parts)})" if parts else ""


def in_distribution(tables: Tables, column: str, t: float) -> Verdict:
    why = missing(tables, "data", ["algorithm", "pairs", "sparsity"])
    if why:
        return NOT_MEASURED, why
    df = numeric_rows(tables, "data", ["sparsity"])
    keys = ["algorithm", *[c for c in ("lr", "steps") if c in df]]
    logps = [c for c in ("chosen_logp", "rejected_logp") if c in df]
    for c in logps:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["_key"] = row_keys(df, keys)
    df["_weak"] = weak_arms(df)
    ok, items, weak = [], [], []
    for _, group in df.groupby("_key", sort=True):
        by_pairs = group.groupby(group["pairs"].astype(str))[["sparsity", *logps]].mean()
        if not {"on_policy", "off_policy"} <= set(by_pairs.index):
            continue
        weak.append(group.loc[group["pairs"].astype(str).isin(["on_policy", "off_policy"]), "_weak"])
        on, off = by_pairs.loc["on_policy"], by_pairs.loc["off_policy"]
        ok.append(on["sparsity"] > off["sparsity"] + t)
        where = str(group["algorithm"].iloc[0]) + (f" lr {lr_text(float(group['lr'].iloc[0]))}" if "lr" in keys else "")
        items.append(f"{where}: on-policy {pct(on['sparsity'])}{_logp(on)} {'>' if ok[-1] else '<='} "
                     f"off-policy {pct(off['sparsity'])}{_logp(off)}")
    if not ok:
        return NOT_MEASURED, "no algorithm trained on both on-policy and off-policy pairs at the same lr and steps"
    return with_caveat(every_one(ok, items, limit=4), weak)


def precision(tables: Tables, column: str, t: float) -> Verdict:
    why = missing(tables, "precision", ["algorithm", "lr", "precision", "sparsity"])
    if why:
        return NOT_MEASURED, why
    df = numeric_rows(tables, "precision", ["lr", "sparsity"])
    df = df[is_rl(df)]
    # Steps too when the table has them: a longer run in one precision would confound the comparison.
    keys = ["algorithm", "lr", *[c for c in ("steps",) if c in df]]
    df["_key"] = row_keys(df, keys)
    df["_weak"] = weak_arms(df)
    ok, items, weak = [], [], []
    for _, group in df.groupby("_key", sort=True):
        by_precision = group.groupby(group["precision"].astype(str).str.lower())["sparsity"].mean()
        if not {"fp32", "bf16"} <= set(by_precision.index):
            continue
        weak.append(group["_weak"])
        fp32, bf16 = by_precision["fp32"], by_precision["bf16"]
        ok.append(bf16 - fp32 >= t)
        items.append(f"{group['algorithm'].iloc[0]} lr {lr_text(float(group['lr'].iloc[0]))}: "
                     f"fp32 {pct(fp32)}, bf16 {pct(bf16)} ({bf16 - fp32:+.1f} points)")
    if not ok:
        return NOT_MEASURED, "no RL algorithm run in both fp32 and bf16 at the same lr and steps"
    return with_caveat(every_one(ok, items), weak)


def matched_gain(tables: Tables, column: str, t: float) -> Verdict:
    """Reads the frontier table: each RL run that learned, at a gain inside its group's SFT runs' gains, is
    sparser than the SFT curve by more than t points everywhere within the noise of its gain (the curve's
    `sft_sparsity_high`); a run between the curve's low and high there is within noise, which is no win."""
    needed = ["run", "rl", "gain", "gain_se", "sparsity", "sft_sparsity_at_gain", "sft_sparsity_low",
              "sft_sparsity_high", "sft_between", "versus_sft"]
    why = missing(tables, "frontier", needed)
    if why:
        return NOT_MEASURED, why
    df = tables["frontier"]
    df = df[df["rl"].astype(str).str.lower() == "true"]
    decided = numeric_rows({"frontier": df}, "frontier", ["sparsity", "sft_sparsity_low", "sft_sparsity_high"])
    aside = df[~df["run"].isin(decided["run"])]
    noted = listing([f"{r.run} ({r.versus_sft})" for r in aside.itertuples(index=False)], 4)
    if decided.empty:
        return NOT_MEASURED, ("no RL run that learned has a gain within its group's SFT runs' gains"
                              + (f"; set aside: {noted}" if noted else ""))
    sign = {True: ">", False: "<="}
    ok, items = [], []
    for r in decided.itertuples(index=False):
        beyond = r.sparsity > r.sft_sparsity_high + t
        within = not beyond and r.sparsity >= r.sft_sparsity_low + t
        ok.append(beyond)
        items.append(f"{r.run} gain {float(r.gain):+.1f}±{float(r.gain_se):.1f}: {pct(r.sparsity)} {sign[beyond]} "
                     f"SFT {pct(r.sft_sparsity_at_gain)} ({pct(r.sft_sparsity_low)}-{pct(r.sft_sparsity_high)} "
                     f"within the gain's noise; {r.sft_between})" + (", within noise" if within else ""))
    verdict, evidence = every_one(ok, items, "RL runs sparser than SFT at their gain", limit=4)
    return verdict, evidence + (f"; set aside: {noted}" if noted else "")
