"""Diff counts against an independent brute-force reference, tensor by tensor and end to end."""

import json
import math
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.checkpoints import CheckpointError
from subnet_rl.cli import main
from subnet_rl.diff import (Criterion, canonical_label, compared_params, default_criteria, describe, diff_checkpoints,
                            skipped, sparsity, stream_compare)

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn,
          torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool]


def bf16_of(x: float) -> float:
    """Round a Python float to bf16 by hand (fp32 first, then round-to-nearest-even on the bit pattern)."""
    if math.isnan(x):
        return x
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    lower = bits & 0xFFFF
    upper = bits >> 16
    if lower > 0x8000 or (lower == 0x8000 and upper & 1):
        upper += 1
    return struct.unpack("<f", struct.pack("<I", (upper & 0xFFFF) << 16))[0]


def bf16_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", bf16_of(x)))[0] >> 16


def unchanged_masks(before: torch.Tensor, after: torch.Tensor,
                    criteria: list[Criterion]) -> dict[Criterion, np.ndarray]:
    """'Entry unchanged' arrays of two whole tensors, per criterion, by the engine's own path: both stored as
    safetensors files, their compared parameter streamed with masks, as mask extraction does."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_pair(Path(tmp), {"w": before.contiguous()}, {"w": after.contiguous()})
        chunks = [result for _, result in stream_compare(compared_params(*paths), criteria, want_masks=True)]
    return {c: np.concatenate([chunk[c] for chunk in chunks]).reshape(tuple(before.shape)) for c in criteria}


def official_unchanged(before: torch.Tensor, after: torch.Tensor, tol: float) -> torch.Tensor:
    """The paper's computation, as its official check_sparsity.py does it: both models loaded in bf16,
    Δ = RL - SFT subtracted in bf16, entries with torch.isclose(Δ, 0, atol=tol) unchanged."""
    delta = after.to(torch.bfloat16) - before.to(torch.bfloat16)
    return torch.isclose(delta, torch.zeros_like(delta), atol=tol)


def reference_counts(a: torch.Tensor, b: torch.Tensor, tolerances) -> dict[str, int]:
    """The official computation in torch for tol=; element by element in plain Python (the slow, obvious
    definition) for the others."""
    xs = [float(v) for v in a.to(torch.float64).flatten().tolist()]
    ys = [float(v) for v in b.to(torch.float64).flatten().tolist()]
    raw_a = a.flatten().view(torch.uint8).tolist() if a.dtype.is_floating_point else a.flatten().tolist()
    raw_b = b.flatten().view(torch.uint8).tolist() if b.dtype.is_floating_point else b.flatten().tolist()
    size = a.element_size() if a.dtype.is_floating_point else 1
    counts = {}
    for tol in tolerances:
        counts[f"tol={tol:g}"] = int(official_unchanged(a, b, tol).sum())
        counts[f"exact_tol={tol:g}"] = sum(bf16_bits(x) == bf16_bits(y) or abs(bf16_of(y) - bf16_of(x)) <= tol
                                           for x, y in zip(xs, ys))
    counts["bf16_bitwise"] = sum(bf16_bits(x) == bf16_bits(y) for x, y in zip(xs, ys))
    counts["exact"] = sum(raw_a[i * size:(i + 1) * size] == raw_b[i * size:(i + 1) * size] for i in range(len(xs)))
    return counts


def random_pair(dtype: torch.dtype, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        a = torch.rand(n, generator=g) > 0.5
        return a, a ^ (torch.rand(n, generator=g) > 0.7)
    if not dtype.is_floating_point:
        a = torch.randint(0, 100, (n,), generator=g).to(dtype)
        change = torch.rand(n, generator=g) > 0.6
        return a, torch.where(change, a + 1, a).to(dtype)
    base = torch.randn(n, generator=g, dtype=torch.float64) * 0.05
    # A mix of untouched, tiny (below bf16 resolution), small and large changes.
    scale = torch.tensor([0.0, 1e-9, 3e-7, 4e-6, 2e-5, 1e-2])[torch.randint(0, 6, (n,), generator=g)]
    after = base + scale.to(torch.float64) * torch.randn(n, generator=g, dtype=torch.float64)
    return base.to(dtype), after.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_counts_match_bruteforce_reference(dtype):
    a, b = random_pair(dtype, 3000, seed=DTYPES.index(dtype))
    tolerances = [1e-8, 1e-7, 1e-6, 1e-5]
    got = {c.label: int(m.sum()) for c, m in unchanged_masks(a, b, default_criteria(tolerances, tolerances)).items()}
    assert got == reference_counts(a, b, tolerances)


def edge_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 pairs where the official computation and the exact difference can disagree: |Δ| near each
    tolerance (both signs, and sign-crossing pairs such as 5.0068e-6 vs -4.9770e-6), NaN, ±inf, ±0,
    overflow of the bf16 subtraction."""
    before, after = [], []
    for tol in (1e-8, 1e-7, 1e-6, 1e-5):
        for m in torch.linspace(0.9, 1.1, 81).tolist():
            for base in (0.0, tol / 3, 1e-3, -0.25):
                before.append(base)
                after.append(base + m * tol)
                before.append(base)
                after.append(base - m * tol)
            before.append(m * tol / 2 + tol / 997)   # sign crossing
            after.append(-m * tol / 2)
    before += [5.0068e-6, math.nan, math.nan, math.inf, math.inf, -math.inf, math.inf, 0.0, -0.0, -0.0, 3e38, 1.0]
    after += [-4.9770e-6, math.nan, 1.0, math.inf, -math.inf, -math.inf, 1.0, -0.0, 0.0, -0.0, -3e38, math.nan]
    return torch.tensor(before).to(torch.bfloat16), torch.tensor(after).to(torch.bfloat16)


@pytest.mark.parametrize("tol", [1e-8, 1e-7, 1e-6, 1e-5])
def test_tolerance_matches_the_official_computation_on_edge_cases(tol):
    before, after = edge_pairs()
    ours = unchanged_masks(before, after, [Criterion("tolerance", tol)])[Criterion("tolerance", tol)]
    reference = official_unchanged(before, after, tol).numpy()
    assert (ours == reference).all(), [(before[i].item(), after[i].item()) for i in (ours != reference).nonzero()[0][:5]]


def test_official_and_exact_difference_differ_where_the_issue_says():
    """5.0068e-6 vs -4.9770e-6 in bf16: exact |Δ| 9.98e-6 <= 1e-5; bf16 Δ rounds to 1.0014e-5, which
    isclose compares with 1e-5 rounded to bf16 (also 1.0014e-5): close. NaN, inf that stays inf: not
    close officially, unchanged bitwise. +0 vs -0: equal officially, a change bitwise."""
    b, a = torch.tensor([5.0068e-6, math.nan, math.inf, 0.0]).bfloat16(), torch.tensor([-4.9770e-6, math.nan, math.inf, -0.0]).bfloat16()
    masks = unchanged_masks(b, a, [Criterion("tolerance", 1e-5), Criterion("exact_tolerance", 1e-5),
                                   Criterion("bf16_bitwise")])
    assert masks[Criterion("tolerance", 1e-5)].tolist() == [True, False, False, True]
    assert masks[Criterion("exact_tolerance", 1e-5)].tolist() == [True, True, True, True]
    assert masks[Criterion("bf16_bitwise")].tolist() == [False, True, True, False]
    # Between 1e-5 and 1e-5 rounded to bf16 (1.0014e-5) the two disagree: |Δ| = 1.0014e-5 exactly here.
    b, a = torch.tensor([5.04e-6]).bfloat16(), torch.tensor([-4.99e-6]).bfloat16()
    assert abs(b.double().item() - a.double().item()) > 1e-5 and official_unchanged(b, a, 1e-5).item() is True
    masks = unchanged_masks(b, a, [Criterion("tolerance", 1e-5), Criterion("exact_tolerance", 1e-5)])
    assert masks[Criterion("tolerance", 1e-5)].tolist() == [True]
    assert masks[Criterion("exact_tolerance", 1e-5)].tolist() == [False]


def test_edge_cases_through_files_and_counts(tmp_path):
    """The counting path (diff of two files, chunked) agrees with the masks and the reference."""
    before, after = edge_pairs()
    criteria = default_criteria([1e-8, 1e-5], [1e-5])
    table = diff_checkpoints(*_write_pair(tmp_path, {"w": before}, {"w": after}), criteria, chunk_bytes=256)
    row = table.set_index("name").loc["w"]
    assert row["unchanged_tol=1e-05"] == int(official_unchanged(before, after, 1e-5).sum())
    assert row["unchanged_tol=1e-08"] == int(official_unchanged(before, after, 1e-8).sum())
    masks = unchanged_masks(before, after, criteria)
    assert row["unchanged_exact_tol=1e-05"] == int(masks[Criterion("exact_tolerance", 1e-5)].sum())


def test_criteria_are_not_trivial():
    """The random pairs must separate the criteria, or the reference test proves little."""
    a, b = random_pair(torch.float32, 3000, seed=1)
    got = reference_counts(a, b, [1e-8, 1e-5])
    assert 0 < got["exact"] < got["bf16_bitwise"] <= got["tol=1e-08"] < got["tol=1e-05"] < 3000
    assert got["exact_tol=1e-05"] < 3000


def _write_pair(tmp_path, before: dict, after: dict):
    save_file(before, tmp_path / "before.safetensors")
    save_file(after, tmp_path / "after.safetensors")
    return tmp_path / "before.safetensors", tmp_path / "after.safetensors"


def test_diff_checkpoints_rows_and_sparsity(tmp_path):
    before = {
        "model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 8),
        "model.layers.1.mlp.up_proj.weight": torch.zeros(8, 4),
        "model.norm.weight": torch.ones(4),
    }
    after = {k: v.clone() for k, v in before.items()}
    after["model.layers.0.self_attn.q_proj.weight"][0, :3] = 1.0  # 3 of 32 changed
    after["model.layers.1.mlp.up_proj.weight"][:, 0] = 1e-6       # 8 of 32 changed by < 1e-5
    table = diff_checkpoints(*_write_pair(tmp_path, before, after))
    row = table.set_index("name").loc["model.layers.0.self_attn.q_proj.weight"]
    assert (row["layer"], row["module"], row["group"], row["numel"]) == (0, "q_proj", "attention", 32)
    assert row["unchanged_tol=1e-05"] == 29
    assert table.set_index("name").loc["model.norm.weight", "layer"] is pd_na()
    s = sparsity(table)
    assert s["tol=1e-05"] == pytest.approx((68 - 3) / 68)
    assert s["tol=1e-07"] == pytest.approx((68 - 3 - 8) / 68)


def pd_na():
    import pandas as pd

    return pd.NA


def test_describe_groups():
    assert describe("model.layers.3.mlp.down_proj.weight")["group"] == "mlp"
    assert describe("model.layers.3.post_attention_layernorm.weight")["group"] == "norm"
    assert describe("model.embed_tokens.weight") == {"layer": None, "module": "embed_tokens",
                                                     "group": "embedding", "param": "weight"}


def test_resized_vocabulary_is_skipped_as_the_official_script_does(tmp_path):
    before = {"model.embed_tokens.weight": torch.zeros(4, 3), "w": torch.zeros(2)}
    after = {"model.embed_tokens.weight": torch.zeros(6, 3), "w": torch.zeros(2)}
    after["model.embed_tokens.weight"][1, 0] = 1.0
    table = diff_checkpoints(*_write_pair(tmp_path, before, after)).set_index("name")
    row = table.loc["model.embed_tokens.weight"]
    assert (row["status"], row["numel"], row["numel_skipped"]) == ("resized_skipped", 0, 18)
    assert sparsity(table.reset_index())["tol=1e-05"] == 1.0  # only w is in the total, as in the paper's
    assert skipped(table.reset_index()) == [{"name": "model.embed_tokens.weight", "status": "resized_skipped",
                                             "numel_skipped": 18}]


def test_resized_vocabulary_is_compared_on_shared_rows_and_reported(tmp_path):
    before = {"model.embed_tokens.weight": torch.zeros(4, 3), "w": torch.zeros(2)}
    after = {"model.embed_tokens.weight": torch.zeros(6, 3), "w": torch.zeros(2)}
    after["model.embed_tokens.weight"][1, 0] = 1.0  # one change in the shared rows
    table = diff_checkpoints(*_write_pair(tmp_path, before, after), resized="shared_rows").set_index("name")
    row = table.loc["model.embed_tokens.weight"]
    assert (row["status"], row["numel"], row["numel_skipped"]) == ("resized", 12, 6)
    assert list(row["shape"]) == [4, 3] and list(row["shape_after"]) == [6, 3]
    assert row["unchanged_tol=1e-05"] == 11
    assert sparsity(table.reset_index())["tol=1e-05"] == pytest.approx(13 / 14)
    assert skipped(table.reset_index()) == [{"name": "model.embed_tokens.weight", "status": "resized", "numel_skipped": 6}]


def test_tensors_on_one_side_or_of_other_shapes_are_listed_not_dropped(tmp_path):
    before, after = _write_pair(tmp_path, {"w": torch.zeros(2), "extra": torch.zeros(5), "m": torch.zeros(2, 3)},
                                {"w": torch.zeros(2), "new": torch.zeros(7), "m": torch.zeros(2, 4)})
    table = diff_checkpoints(before, after)
    status = dict(zip(table["name"], table["status"]))
    assert status == {"extra": "only_before", "m": "shape_mismatch", "new": "only_after", "w": "compared"}
    assert dict(zip(table["name"], table["numel_skipped"])) == {"extra": 5, "m": 8, "new": 7, "w": 0}
    assert sparsity(table)["exact"] == 1.0


def test_corrupt_file_names_the_file(tmp_path):
    before, after = _write_pair(tmp_path, {"w": torch.zeros(1000)}, {"w": torch.zeros(1000)})
    data = after.read_bytes()
    after.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="after.safetensors"):
        diff_checkpoints(before, after)


def test_criterion_parse_round_trip():
    for c in default_criteria([1e-5, 3e-7]):
        assert Criterion.parse(c.label) == c
    with pytest.raises(ValueError):
        Criterion("tolerance")


def test_cli_json_and_out(tmp_path, capsys):
    before, after = _write_pair(tmp_path, {"w": torch.zeros(10)}, {"w": torch.tensor([0.0] * 9 + [1.0])})
    out = tmp_path / "d.parquet"
    assert main(["diff", str(before), str(after), "-t", "1e-5", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sparsity"]["tol=1e-05"] == pytest.approx(0.9)
    assert summary["numel"] == 10 and out.is_file()


def test_cli_error_exit_code(tmp_path, capsys):
    assert main(["diff", str(tmp_path / "nope"), str(tmp_path / "nope2")]) == 2
    assert "nope" in capsys.readouterr().err


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "subnet-rl 0.1.0" in capsys.readouterr().out


def test_cli_mask_and_skipped_in_json(tmp_path, capsys):
    before, after = _write_pair(tmp_path, {"w": torch.zeros(10), "gone": torch.zeros(3)},
                                {"w": torch.tensor([0.0] * 9 + [1.0])})
    assert main(["diff", str(before), str(after), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == [{"name": "gone", "status": "only_before", "numel_skipped": 3}]
    assert summary["numel"] == 10
    out = tmp_path / "mask.safetensors"
    assert main(["mask", str(before), str(after), "--out", str(out), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["updated"] == 1 and out.is_file()


def test_stored_buffers_are_listed_outside_the_totals(tmp_path):
    """The official script counts named_parameters: a stored rotary inv_freq is not a parameter."""
    before = {"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4), "w": torch.zeros(4)}
    after = {"model.layers.0.self_attn.rotary_emb.inv_freq": torch.full((4,), 2.0), "w": torch.zeros(4)}
    after["w"][0] = 1.0
    table = diff_checkpoints(*_write_pair(tmp_path, before, after)).set_index("name")
    assert table.loc["model.layers.0.self_attn.rotary_emb.inv_freq", "role"] == "buffer"
    assert sparsity(table.reset_index())["exact"] == pytest.approx(3 / 4)


def test_criterion_labels_have_one_spelling():
    assert canonical_label("tol=1e-5") == canonical_label("tol=0.00001") == "tol=1e-05"
    assert canonical_label("exact_tol=1e-5") == "exact_tol=1e-05" and canonical_label("exact") == "exact"
    with pytest.raises(ValueError, match="tol=<number>"):
        canonical_label("tol=abc")


def test_the_criteria_vocabulary_loads_without_the_engine():
    """The Snakefile imports canonical_label and diff_labels on every DAG parse: that costs the criteria
    module only, not NumPy or the checkpoint readers (the package loads its other names on first use)."""
    code = ("import json, sys; from subnet_rl.diff import canonical_label, diff_labels; "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('subnet_rl.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(loaded) == ["subnet_rl.diff", "subnet_rl.diff.criteria"]


def test_every_public_name_resolves_and_a_rule_hashes_every_module_of_the_package(tmp_path):
    """Names load lazily, so a rule's code hash (`code_version`) reaches the submodules only through the
    package's TYPE_CHECKING imports: an edit of any of them must rerun what imports the package."""
    import subnet_rl.diff as package
    from subnet_rl.code_version import PACKAGE_DIR, code_files

    assert all(getattr(package, name) is not None for name in package.__all__)
    script = tmp_path / "rule.py"
    script.write_text("from subnet_rl.diff import sparsity\n")
    modules = (PACKAGE_DIR / "diff").glob("*.py")
    assert {p for p in code_files(script) if p.parent.name == "diff"} == {p.resolve() for p in modules}


def test_relative_criterion():
    """|Δ| <= η max(|w0|, |w1|) on bf16 values (Zhu et al. 2025). With η = 1e-3, below half a bf16 ulp,
    it is bitwise equality but for +0 vs -0 (equal values) and inf (never within)."""
    before, after = edge_pairs()
    rel = Criterion("relative", 1e-3)
    masks = unchanged_masks(before, after, [rel, Criterion("bf16_bitwise")])
    signed_zeros = ((before == 0) & (after == 0) & (before.view(torch.int16) != after.view(torch.int16))).numpy()
    assert (masks[rel] == (masks[Criterion("bf16_bitwise")] | signed_zeros)).all()
    a, b = torch.tensor([1.0, 1.0, 100.0, 1.0]).bfloat16(), torch.tensor([1.0078125, 1.5, 100.5, math.inf]).bfloat16()
    loose = unchanged_masks(a, b, [Criterion("relative", 0.01)])[Criterion("relative", 0.01)]
    assert loose.tolist() == [True, False, True, False]
    assert Criterion.parse("rel=1e-3").label == "rel=0.001"
