"""Reruns follow the content of the code a job runs, not file times: on a copy of the repository (so its
library can be edited), the test study runs once, then each change plans exactly what it invalidates."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_workflow import REPO, SNAKEMAKE, TEST_CONFIG, local_env, planned_outputs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def study(tmp_path_factory, completed_run):
    """A copy of the repository, and a copy of the finished test study (results and Snakemake's records) that
    the copy's Snakefile takes over: nothing to do until the copy's code changes."""
    root = tmp_path_factory.mktemp("reruns")
    repo = root / "repo"
    repo.mkdir()
    shutil.copy2(REPO / "Snakefile", repo / "Snakefile")
    for folder in ("workflow", "src", "config", "profiles", "envs"):
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    work = root / "work"
    shutil.copytree(completed_run, work, symlinks=True, ignore=shutil.ignore_patterns("report.html"))

    def run(*args, configfile=TEST_CONFIG):
        # The copy's library is imported first (PYTHONPATH), by Snakemake and by every job.
        env = {**local_env(), "PYTHONPATH": str(repo / "src")}
        cmd = [str(SNAKEMAKE), "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
               "--configfile", str(configfile), "--cores", "2", *args]
        return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900, env=env)

    assert plan(run) == set(), "the copied study is not complete for the copied repository"
    return repo, run


def plan(run, **kwargs) -> set[str]:
    result = run("-n", **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return planned_outputs(result.stdout)


@pytest.fixture
def edited(study):
    """Append a comment to a library module for one test; the original content is put back after it."""
    repo, _ = study
    originals = {}

    def edit(module: str):
        path = repo / "src" / "subnet_rl" / module
        originals[path] = path.read_text()
        path.write_text(originals[path] + "\n# an edit that changes the file's content\n")

    yield edit
    for path, text in originals.items():
        path.write_text(text)


def test_touching_scripts_and_library_reruns_nothing(study):
    repo, run = study
    for path in [*(repo / "workflow" / "scripts").glob("*.py"), *(repo / "src").rglob("*.py")]:
        os.utime(path)  # what `touch` or a `git checkout` does
    assert plan(run) == set()


def test_changed_training_code_reruns_training_and_what_follows_only(study, edited):
    _, run = study
    edited("training.py")
    planned = plan(run)
    assert {"results/checkpoints/base/start", "results/checkpoints/full/grpo-a",
            "results/checkpoints/subnet/grpo-a", "results/tables/sparsity.csv"} <= planned
    # Stages that do not run training.py and do not follow a training job stay as they are.
    assert not {p for p in planned if p.startswith(("results/data/", "results/checkpoints/base/init"))}


def test_changed_diff_engine_reruns_diffs_and_tables_not_training(study, edited):
    """The diff kernel decides which entries changed: diffs and masks rerun, and so does what follows a mask
    (subnetwork retraining, its evaluation, overlap); full training and its evaluations do not."""
    _, run = study
    edited("diff/kernel.py")
    planned = plan(run)
    assert {"results/diff/full/grpo-a.parquet", "results/diff/base/start.parquet", "results/masks/grpo-a.safetensors",
            "results/tables/sparsity.csv"} <= planned
    assert not {p for p in planned if p.startswith(("results/checkpoints/full/", "results/checkpoints/base/",
                                                     "results/eval/addition/full/", "results/eval/addition/base/",
                                                     "results/data/"))}


def test_putting_the_code_back_reruns_nothing(study, edited):
    _, run = study
    edited("training.py")
    assert plan(run)
    (study[0] / "src" / "subnet_rl" / "training.py").write_text((REPO / "src" / "subnet_rl" / "training.py").read_text())
    assert plan(run) == set()


def test_analysis_only_setting_does_not_retrain(study, tmp_path):
    _, run = study
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["diff"] = {"tolerances": [1.0e-6, 1.0e-4]}
    changed = tmp_path / "tolerances.yaml"
    changed.write_text(yaml.safe_dump(config))
    planned = plan(run, configfile=changed)
    assert {"results/diff/full/grpo-a.parquet", "results/tables/sparsity.csv"} <= planned
    assert not {p for p in planned if p.startswith(("results/checkpoints/", "results/masks/", "results/eval/"))}
