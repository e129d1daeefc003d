"""End-to-end runs of the Snakefile on the test config (.test/config.yaml): the whole study in seconds.

Grouped under the `e2e` marker; `make test` runs them after the unit tests.
"""

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TEST_CONFIG = REPO / ".test" / "config.yaml"


@functools.cache
def local_env() -> dict[str, str]:
    """The environment for local (non-Slurm) runs.

    At start-up the Slurm executor plugin asks `scontrol show config` for MinJobAge; where the Slurm
    client is installed but no controller runs (after the Slurm tests, say) that waits 10 s per
    Snakemake call. A stub `scontrol` that fails at once keeps local runs from waiting on it.
    """
    stub_dir = Path(tempfile.mkdtemp(prefix="subnet-rl-no-slurm-"))
    stub = stub_dir / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args: str, configfile: Path = TEST_CONFIG, timeout: int = 900, env: dict | None = None):
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**local_env(), **(env or {})})


def planned_outputs(dry_run_stdout: str) -> set[str]:
    outputs = set()
    for line in dry_run_stdout.splitlines():
        match = re.match(r"^\s+output: (.*)$", line)
        if match:
            outputs.update(match.group(1).split(", "))
    return outputs


def finished_run(tmp_path_factory, name: str, configfile: Path = TEST_CONFIG) -> Path:
    """A fresh working folder in which the workflow ran `configfile` to completion (the module fixtures)."""
    workdir = tmp_path_factory.mktemp(name)
    result = snakemake(workdir, configfile=configfile)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


def test_tables_hold_real_numbers(completed_run):
    tables = completed_run / "results" / "tables"
    sparsity = pd.read_csv(tables / "sparsity.csv")
    assert set(sparsity["run"]) == {"sft-from-init", "grpo-a", "grpo-b", "dpo-a", "sft-a"}
    values = sparsity.filter(like="sparsity ")
    assert list(values.columns) == ["sparsity tol=1e-08", "sparsity tol=1e-07", "sparsity tol=1e-06",
                                    "sparsity tol=1e-05", "sparsity exact_tol=1e-05", "sparsity rel=0.001",
                                    "sparsity bf16_bitwise", "sparsity exact"]
    assert values.notna().all().all() and ((values >= 0) & (values <= 100)).all().all()
    # Tolerances nest: a looser tolerance never counts fewer entries unchanged.
    assert (values["sparsity tol=1e-05"] >= values["sparsity tol=1e-08"]).all()
    assert sparsity["accuracy_after"].between(0, 100).all()

    subnet = pd.read_csv(tables / "subnetwork.csv")
    assert list(subnet["run"]) == ["grpo-a"]
    assert 0 < subnet.loc[0, "subnetwork (% of entries)"] <= 100
    assert subnet.loc[0, "equal tol=0.0001 (%)"] >= subnet.loc[0, "equal tol=1e-05 (%)"] > 0
    # Random-mask controls (the test config asks for both kinds): retrained and scored like the subnetwork.
    assert subnet[["accuracy_random_same", "accuracy_random_0.01"]].notna().all().all()
    assert subnet[["accuracy_random_same", "accuracy_random_0.01"]].stack().between(0, 100).all()

    overlap = pd.read_csv(tables / "overlap.csv")
    assert len(overlap) == 6  # every pair of 4 runs
    assert overlap[["o1", "o2", "random_o1", "random_o2"]].notna().all().all()
    assert (tables / "sparsity.md").read_text().startswith("# Update sparsity")

    rank = pd.read_csv(tables / "rank.csv")
    assert set(rank["run"]) == {"grpo-a", "grpo-b", "dpo-a", "sft-a"}
    assert {"attention", "mlp", "embedding"} <= set(rank["group"])
    assert rank["mean_rank_pct"].between(0, 100).all() and (rank["mean_stable_rank"] >= 1).all()
    layers = pd.read_csv(tables / "layers.csv")
    assert set(zip(layers["run"], layers["layer"].astype(str))) >= {("grpo-a", "0"), ("grpo-a", "-")}
    assert {"q_proj", "up_proj", "embed_tokens"} <= set(layers.columns)


def test_nothing_to_do_after_a_complete_run(completed_run):
    result = snakemake(completed_run, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    assert not planned_outputs(result.stdout)


def test_changing_one_lr_reruns_only_that_run_and_its_dependents(completed_run, tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["runs"]["grpo-a"]["lr"] = 5.0e-4
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(completed_run, "-n", configfile=changed)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_outputs(result.stdout)
    assert {
        "results/checkpoints/full/grpo-a", "results/masks/grpo-a.safetensors",
        "results/checkpoints/subnet/grpo-a", "results/diff/full/grpo-a.parquet",
        "results/eval/addition/full/grpo-a.parquet", "results/overlap/pairs.parquet",
    } <= planned
    downstream = ("results/overlap/", "results/tables/", "results/figures/", "results/findings.")
    unrelated = {p for p in planned if "grpo-a" not in p and not p.startswith(downstream)}
    assert not unrelated, f"jobs outside grpo-a's downstream were planned: {sorted(unrelated)}"


def test_lint_is_clean():
    result = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=local_env())
    assert result.returncode == 0
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c.update(unknown_setting=1), "unknown_setting"),
    (lambda c: c["runs"]["grpo-a"].update(lr_typo=1.0e-3), "lr_typo"),
    (lambda c: c["runs"]["grpo-a"].update(lr="abc"), "lr"),
])
def test_bad_config_fails_before_any_job_and_writes_nothing(tmp_path, mutate, key):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    mutate(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(workdir, configfile=bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Snakemake's validation message names the offending key: "'x' was unexpected" or "...['grpo-a']['lr']".
    assert (f"['grpo-a']['{key}']" in output and "'abc'" in output) if key == "lr" else f"'{key}' was unexpected" in output
    assert not (workdir / "results").exists()


def chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing and this is root (as CI is); else skip."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("needs Chromium (apt-get install chromium; installed by this test when run as root)")
    return found


def headless(browser: str, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1000",
           "--virtual-time-budget=8000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def pixel_std(png: Path) -> float:
    import matplotlib.image

    return float(matplotlib.image.imread(png)[..., :3].std())


def test_html_report_opens_in_a_browser_with_findings_first_and_every_figure(completed_run, tmp_path):
    """`snakemake --report` on the finished study, opened in headless Chromium: the page renders (its
    screenshot is not blank), the menu lists the findings first, and every figure is embedded and drawn."""
    result = snakemake(completed_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ERROR" not in result.stdout + result.stderr
    report = completed_run / "report.html"
    browser = chromium()
    shot = tmp_path / "report.png"
    done = headless(browser, report.as_uri(), f"--screenshot={shot}")
    assert shot.is_file(), done.stderr[-2000:]
    assert pixel_std(shot) > 0.02  # a blank (or error) page is one flat colour
    dom = headless(browser, report.as_uri(), "--dump-dom").stdout
    menu = [m for m in ("1. Findings", "2. Sparsity", "3. Subnetwork", "4. Overlap") if m in dom]
    assert menu == ["1. Findings", "2. Sparsity", "3. Subnetwork", "4. Overlap"], dom[:2000]
    assert "Start with" in dom and "showCategory('1.%20Findings')" in dom  # the landing page points there
    html = report.read_text()
    figures = sorted((completed_run / "results" / "figures").glob("*.png"))
    assert {f.stem for f in figures} == {"sparsity_vs_tolerance", "overlap", "accuracy", "layers", "dynamics",
                                         "precision", "rank", "ulp", "step_sparsity", "frontier"}
    for figure in figures:
        assert figure.stem + ".png" in html, f"{figure.name} is not in the report"
        shown = tmp_path / f"{figure.stem}-in-chromium.png"
        headless(browser, figure.as_uri(), f"--screenshot={shown}")
        assert pixel_std(shown) > 0.02, f"{figure.name} renders blank"


def test_findings_follow_the_tables(completed_run, tmp_path):
    """The verdicts are computed from results/tables: editing the tables' numbers flips them (the findings
    rule reruns because its inputs changed; nothing upstream does)."""
    work = tmp_path / "copy"
    shutil.copytree(completed_run, work, symlinks=True)
    tables = work / "results" / "tables"
    before = pd.read_csv(work / "results" / "findings.csv").set_index("claim")["verdict"]
    assert set(before) <= {"holds", "does not hold", "not measured"}
    assert before["rl-sparse"] != "not measured" and before["overlap-above-random"] != "not measured"

    overlap = pd.read_csv(tables / "overlap.csv")
    above = before["overlap-above-random"] != "holds"
    overlap[["o1", "o2"]] = 100.0 if above else 0.0
    overlap[["random_o1", "random_o2"]] = 0.0 if above else 100.0
    overlap.to_csv(tables / "overlap.csv", index=False)
    # A figure reruns only when its data does: the overlap figure (and the findings), no other figure.
    planned = planned_outputs(snakemake(work, "-n").stdout)
    assert {p for p in planned if p.startswith("results/figures/")} == {
        "results/figures/overlap.png", "results/figures/overlap.pdf"}
    assert "results/findings.csv" in planned
    sparsity = pd.read_csv(tables / "sparsity.csv")
    rl = sparsity["algorithm"] != "sft"
    sparsity.loc[rl, "sparsity tol=1e-05"] = 1.0 if before["rl-sparse"] == "holds" else 99.0
    sparsity.to_csv(tables / "sparsity.csv", index=False)
    subnet = pd.read_csv(tables / "subnetwork.csv")
    subnet["accuracy_random_same"] = 100.0 if before["mask-beats-random"] == "holds" else 0.0
    subnet["accuracy_subnetwork"] = 50.0
    subnet.to_csv(tables / "subnetwork.csv", index=False)

    result = snakemake(work, "results/findings.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule findings" in result.stdout + result.stderr and "rule tables" not in result.stdout + result.stderr
    after = pd.read_csv(work / "results" / "findings.csv").set_index("claim")["verdict"]
    flipped = {c for c in ("rl-sparse", "overlap-above-random", "mask-beats-random") if after[c] != before[c]}
    assert flipped == {"rl-sparse", "overlap-above-random", "mask-beats-random"}, (before, after)
    assert (work / "results" / "findings.md").read_text().startswith("# Findings")


def _with_gsm8k_dataset(config, tmp_path, **entry):
    """The test config plus a GSM8K-format Parquet dataset (a `question`/`answer` file) named `gsm`."""
    for split in ("train", "test"):
        pd.DataFrame({"question": ["What is 2 + 3?"], "answer": ["2 + 3 = 5\n#### 5"]}).to_parquet(tmp_path / f"{split}.parquet")
    files = {split: str(tmp_path / f"{split}.parquet") for split in ("train", "test")}
    config["datasets"]["gsm"] = {"source": "parquet", "files": files, **entry}
    return config


@pytest.mark.parametrize("entry,run_on_it,expected", [
    ({"task": "poetry", "columns": {"prompt": "question"}}, False, "'poetry' is not one of"),
    ({"columns": {"prompt": "question"}}, False, "'task' is a required property"),
    ({"task": "gsm8k", "columns": {"prompt": "question", "answer": "solution"}}, False, "datasets.gsm.columns"),
    ({"task": "gsm8k", "columns": {"prompt": "question"}, "prompt_format": "chat"}, True, "datasets.gsm.prompt_format"),
])
def test_bad_dataset_settings_fail_before_any_job_naming_the_key(tmp_path, entry, run_on_it, expected):
    config = _with_gsm8k_dataset(yaml.safe_load(TEST_CONFIG.read_text()), tmp_path, **entry)
    if run_on_it:
        config["runs"]["grpo-gsm"] = {"algorithm": "grpo", "lr": 1.0e-3, "steps": 1, "seed": 1, "dataset": "gsm"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(workdir, configfile=bad)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_headline_criterion_must_be_a_diff_column(tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["analyses"] = {"criterion": "tol=0.5"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=bad)
    assert result.returncode != 0 and "analyses.criterion: 'tol=0.5'" in result.stdout + result.stderr
