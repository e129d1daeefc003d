"""The ulp account: the half-ulp unit on values worked by hand, the streamed counts against a direct NumPy
computation, the share below one half-ulp against what bf16 casts round back, the tables and the figure."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from safetensors.torch import save_file

from subnet_rl.diff import default_criteria, diff_checkpoints
from subnet_rl.figures.ulp import ulp_histogram
from subnet_rl.ulp import BINS, EDGES, bf16_half_ulp, checkpoint_ulps, half_ulps
from subnet_rl.ulp_table import BF16_NOTE, STEP, ulp_tables

NAMES = ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.norm.weight")


def test_half_ulp_on_values_worked_by_hand():
    # 1.0 = 2^0: bf16 ulp 2^-7, half 2^-8; 3.0 = 1.5 x 2^1: half 2^-7; 0.75 = 1.5 x 2^-1: half 2^-9;
    # the smallest normal 2^-126: half 2^-134, as zero and subnormals (bf16's subnormal spacing 2^-133, halved).
    starts = np.array([1.0, -1.0, 3.0, 0.75, 2.0**-126, 0.0, -0.0, 1e-40, np.inf, np.nan], dtype=np.float32)
    expected = [2.0**-8, 2.0**-8, 2.0**-7, 2.0**-9, 2.0**-134, 2.0**-134, 2.0**-134, 2.0**-134, math.nan, math.nan]
    np.testing.assert_array_equal(bf16_half_ulp(starts), expected)
    before = np.float32([1.0, 1.0, 1.0, 3.0, 0.0, 1.0])
    after = np.float32([1.0 + 2.0**-9, 1.0 - 2.0**-7, 1.0, 3.0 + 2.0**-7, 2.0**-140, np.inf])
    np.testing.assert_array_equal(half_ulps(before, after), [0.5, 2.0, 0.0, 1.0, 2.0**-6, math.inf])


def _direct(before: np.ndarray, after: np.ndarray) -> dict:
    """The same counts by another route: frexp's exponent (x = m 2^k, m in [0.5, 1): half-ulp 2^(k - 9)), and
    each bin by explicit comparisons."""
    finite = np.isfinite(before) & np.isfinite(after)
    b, a = before[finite].astype(np.float64), after[finite].astype(np.float64)
    _, k = np.frexp(b)
    half = np.where(np.abs(b) < 2.0**-126, 2.0**-134, 2.0 ** (k - 9.0))
    r = np.abs(a - b) / half
    lows, highs = (0.0, *EDGES), (*EDGES, math.inf)
    return {"numel": before.size, "non_finite": int((~finite).sum()), "below_half_ulp": int((r < 1).sum()),
            "zero_or_subnormal_start": int((np.abs(b) < 2.0**-126).sum()), "sum_abs_delta": float(np.abs(a - b).sum()),
            BINS[0]: int((r == 0).sum()), **{label: int(((r > lo) & (r <= hi)).sum())
                                             for label, lo, hi in zip(BINS[1:], lows, highs)}}


def test_streamed_counts_match_a_direct_numpy_computation(tmp_path):
    g = torch.Generator().manual_seed(0)
    before = {NAMES[0]: torch.randn(64, 48, generator=g), NAMES[1]: torch.randn(96, 48, generator=g) * 1e-3,
              NAMES[2]: torch.ones(48)}
    before[NAMES[0]][0, :4] = torch.tensor([0.0, 1e-40, float("inf"), -0.0])  # zero, subnormal, inf, -0
    after = {}
    for name, w in before.items():
        size = 10.0 ** (torch.rand(w.shape, generator=g) * 8 - 6) * torch.sign(torch.randn(w.shape, generator=g))
        moved = torch.rand(w.shape, generator=g) < 0.7  # 30% of entries keep their exact value
        after[name] = torch.where(moved, w + size * w.abs().clamp(min=1e-30) * 2.0**-8, w)
    after[NAMES[2]][:3] = torch.tensor([1.0 + 2.0**-8, 1.0 + 2.0**-8 + 2.0**-23, 1.0])  # one half-ulp: a tie, not below
    save_file(before, tmp_path / "before.safetensors")
    save_file(after, tmp_path / "after.safetensors")
    rows = {r["name"]: r for r in checkpoint_ulps(tmp_path / "before.safetensors", tmp_path / "after.safetensors",
                                                  chunk_bytes=1000)}  # many chunks per tensor
    assert set(rows) == set(NAMES)
    for name in NAMES:
        expected = _direct(before[name].numpy().ravel(), after[name].numpy().ravel())
        got = {k: rows[name][k] for k in expected}
        assert got.pop("sum_abs_delta") == pytest.approx(expected.pop("sum_abs_delta"), rel=1e-12)
        assert got == expected
        assert sum(rows[name][b] for b in BINS) == rows[name]["numel"] - rows[name]["non_finite"]
    assert rows[NAMES[0]]["non_finite"] == 1 and rows[NAMES[0]]["zero_or_subnormal_start"] >= 3
    assert rows[NAMES[2]]["(1/2, 1]"] >= 1 and rows[NAMES[2]]["(1, 2]"] >= 1 and rows[NAMES[2]]["0"] >= 1
    assert min(rows[n]["> 64"] for n in NAMES[:2]) > 0 and min(rows[n]["(0, 1/64]"] for n in NAMES[:2]) > 0


def _bf16_start_pair(tmp_path, seed: int = 1):
    """A bf16 start (no powers of two: there a decrease meets a gap half as wide) and fp32 weights moved by
    0.01 to 8 half-ulps either way, never exactly one (a tie); the bf16 casts of the result are checked by torch."""
    g = torch.Generator().manual_seed(seed)
    start = {n: torch.randn(s, generator=g).to(torch.bfloat16) for n, s in zip(NAMES, [(32, 16), (48, 16), (16,)])}
    for name, w in start.items():
        power = (w.view(torch.int16) & 0x7F) == 0
        start[name] = torch.where(power, w * 1.25, w)  # 1.25 x 2^e has fraction bits 0100000: not a power of two
    after = {}
    for name, w in start.items():
        x = w.float()
        units = 10.0 ** (torch.rand(x.shape, generator=g) * 2.9 - 2) * torch.sign(torch.randn(x.shape, generator=g))
        units = torch.where((units.abs() - 1).abs() < 1e-3, units * 1.5, units)
        half = torch.from_numpy(bf16_half_ulp(x.numpy())).float()
        after[name] = x + units * half
    save_file(start, tmp_path / "start.safetensors")
    save_file(after, tmp_path / "after.safetensors")
    kept = sum(int((after[n].to(torch.bfloat16) == start[n]).sum()) for n in NAMES)  # torch's own cast
    return tmp_path / "start.safetensors", tmp_path / "after.safetensors", kept, sum(w.numel() for w in start.values())


def test_the_share_below_one_half_ulp_is_what_bf16_rounds_away(tmp_path):
    start, after, kept, total = _bf16_start_pair(tmp_path)
    rows = checkpoint_ulps(start, after)
    assert 0.2 * total < kept < 0.9 * total  # both sides of half an ulp are well represented
    assert sum(r["below_half_ulp"] for r in rows) == kept
    # Through the tables: the share below one half-ulp beside the diff engine's measured bf16 sparsity.
    diff = diff_checkpoints(start, after, default_criteria())
    spec = {"algorithm": "grpo", "regime": "r", "lr": 1e-4, "steps": 10, "precision": "fp32", "seed": 1}
    tables = ulp_tables({"grpo-a": pd.DataFrame(rows)}, {"grpo-a": pd.DataFrame(diff)}, {"grpo-a": spec})
    row = tables["ulp_summary"].iloc[0]
    assert row["below half-ulp (%)"] == pytest.approx(100 * kept / total)
    assert row["sparsity bf16_bitwise"] == pytest.approx(100 * kept / total)


def test_bf16_weights_are_refused(tmp_path):
    w = torch.randn(8, 8)
    save_file({NAMES[0]: w}, tmp_path / "start.safetensors")
    save_file({NAMES[0]: (w + 1).to(torch.bfloat16)}, tmp_path / "after.safetensors")
    with pytest.raises(ValueError, match="fp32 weights"):
        checkpoint_ulps(tmp_path / "start.safetensors", tmp_path / "after.safetensors")


def _run_tables(tmp_path):
    """Tables of an fp32 GRPO run (every entry moved by 0.5 x lr x steps), an fp32 SFT run and a bf16 run."""
    w = torch.full((4, 8), 0.3)
    save_file({NAMES[0]: w}, tmp_path / "start.safetensors")
    specs = {"grpo-a": ("grpo", 1e-3, 4, "fp32", 0.5), "sft-a": ("sft", 1e-3, 4, "fp32", 100.0),
             "grpo-bf16": ("grpo", 1e-3, 4, "bf16", 1.0)}
    ulps, diffs, runs = {}, {}, {}
    for run, (algorithm, lr, steps, precision, step) in specs.items():
        moved = w + step * lr * steps
        stored = moved.to(torch.bfloat16) if precision == "bf16" else moved
        save_file({NAMES[0]: stored}, tmp_path / f"{run}.safetensors")
        if precision == "fp32":
            ulps[run] = pd.DataFrame(checkpoint_ulps(tmp_path / "start.safetensors", tmp_path / f"{run}.safetensors"))
        diffs[run] = pd.DataFrame(diff_checkpoints(tmp_path / "start.safetensors", tmp_path / f"{run}.safetensors",
                                                   default_criteria()))
        runs[run] = {"algorithm": algorithm, "regime": "r", "lr": lr, "steps": steps, "precision": precision, "seed": 1}
    return ulp_tables(ulps, diffs, runs), (ulps, diffs, runs)


def test_tables_histogram_effective_step_and_bf16_runs(tmp_path):
    tables, (ulps, diffs, runs) = _run_tables(tmp_path)
    hist, summary = tables["ulp"], tables["ulp_summary"].set_index("run")
    assert set(hist["run"]) == {"grpo-a", "sft-a"}  # bf16 weights: no histogram rows
    assert list(hist[hist["run"] == "grpo-a"]["bin"]) == list(BINS)
    assert hist.groupby("run")["% of entries"].sum().tolist() == pytest.approx([100.0, 100.0])
    # 0.3 = 1.2 x 2^-2: half-ulp 2^-10; grpo moves by 2e-3 (2.05 half-ulps), sft by 0.4 (> 64 half-ulps).
    grpo = hist[hist["run"] == "grpo-a"].set_index("bin")
    assert grpo.loc["(2, 4]", "entries"] == 32 and grpo.loc["(2, 4]", "% of entries"] == 100.0
    assert hist[(hist["run"] == "sft-a") & (hist["bin"] == "> 64")]["entries"].item() == 32
    assert summary.loc["grpo-a", STEP] == pytest.approx(0.5, rel=1e-4)
    assert summary.loc["sft-a", STEP] == pytest.approx(100.0, rel=1e-4)
    assert summary.loc["grpo-a", "below half-ulp (%)"] == 0.0 and summary.loc["grpo-a", "sparsity bf16_bitwise"] == 0.0
    bf16 = summary.loc["grpo-bf16"]
    assert bf16["note"] == BF16_NOTE and math.isnan(bf16["below half-ulp (%)"]) and pd.isna(bf16["entries"])
    assert summary.loc["grpo-a", "entries"] == 32 and "32.00" not in summary.to_markdown(floatfmt=".2f")  # counts stay integers
    assert bf16["sparsity bf16_bitwise"] == 0.0  # measured, still shown beside the empty account
    with pytest.raises(ValueError, match="fp32 weights"):
        ulp_tables({k: v for k, v in ulps.items() if k != "sft-a"}, diffs, runs)


def test_figure_draws_rl_solid_sft_dashed_and_needs_its_table(tmp_path):
    tables, _ = _run_tables(tmp_path)
    runs = ["grpo-a", "grpo-bf16", "sft-a"]
    fig = ulp_histogram(tables, runs)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles["grpo-a (grpo)"] == "-" and styles["sft-a (sft)"] == "--"
    assert len(fig.axes[1].collections) == 2  # one point per fp32 run
    assert ulp_histogram({"ulp_summary": tables["ulp_summary"]}, runs) is None
    assert len(ulp_histogram({"ulp": tables["ulp"]}, runs).axes) == 1  # no summary: the histogram alone
