"""The Slurm profile on a real single-node Slurm (tests/slurm/start-slurm.sh, from the shared recipe):
jobs go through snakemake-executor-plugin-slurm, and the config's GPU resources reach sbatch.

Needs root (it installs and starts slurmctld, slurmd and munge); `make test` runs it as its own group.
"""

import os
import re
import subprocess

import pandas as pd
import pytest
import yaml

from test_workflow import REPO, SNAKEMAKE, TEST_CONFIG

pytestmark = pytest.mark.slurm
SCRIPTS = REPO / "tests" / "slurm"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "FAKE_GPUS": "1", "SLURM_CI_DIR": str(state)}
    started = subprocess.run(["bash", str(SCRIPTS / "start-slurm.sh")], env=env, capture_output=True, text=True,
                             timeout=600)
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    yield
    subprocess.run(["bash", str(SCRIPTS / "stop-slurm.sh")], env=env, capture_output=True, timeout=60)


def test_profile_runs_jobs_on_slurm_with_gpu_requests(slurm, tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["resources"] = {"train": {"gpu": 1, "mem_mb": 2000, "runtime": 10, "cpu_processes": True}}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = ["timeout", "-k", "30", "500", str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(configfile), "--profile", "slurm",
           "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
           "results/diff/base/start.parquet"]
    # `--profile slurm` as researchers type it, from the repository root (./slurm -> profiles/slurm).
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    jobs = dict(re.findall(r"rule_(\w+)/(?:[^/]*/)?(\d+)\.log", log))
    assert set(jobs) == {"dataset", "build_model", "warmup", "diff"}, log[-3000:]
    def requested_gpus(rule):
        shown = subprocess.run(["scontrol", "show", "job", jobs[rule]], capture_output=True, text=True).stdout
        return re.search(r"TresPerJob=gres[:/]gpu(?::\w+)?[:=](\d+)", shown)

    assert requested_gpus("warmup") and requested_gpus("warmup").group(1) == "1"
    assert requested_gpus("diff") is None
    diff = pd.read_parquet(tmp_path / "results" / "diff" / "base" / "start.parquet")
    assert diff["numel"].sum() > 0
