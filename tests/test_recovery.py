"""A workflow killed mid-training (SIGKILL) leaves no output that looks complete; the next run, after the
stale lock is cleared as `make demo` does, reruns exactly the jobs that had not finished."""

import os
import signal
import subprocess
import time

import pytest
import yaml

from subnet_rl.stale_lock import snakemake_running_in, unlock_if_stale
from test_workflow import REPO, SNAKEMAKE, TEST_CONFIG, local_env, planned_outputs, snakemake


@pytest.mark.e2e
def test_killed_training_job_is_rerun_and_nothing_else(tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["runs"]["grpo-b"]["steps"] = 100_000  # still training when it is killed
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(configfile), "--cores", "1",
           "results/checkpoints/full/grpo-b"]  # its upstream jobs only: grpo-b starts as soon as they are done
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=local_env(),
                            start_new_session=True)
    log = work / "results" / "logs" / "train" / "full" / "grpo-b.log"
    deadline = time.time() + 600
    while time.time() < deadline and not log.is_file():
        assert proc.poll() is None, "the workflow ended before grpo-b started"
        time.sleep(1)
    assert log.is_file(), "grpo-b never started"
    time.sleep(12)  # past the imports: the trainer is running (100,000 steps: far from done)
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    checkpoint = work / "results" / "checkpoints" / "full" / "grpo-b"
    assert not checkpoint.exists(), "a killed job left an output that looks complete"
    assert any((work / ".snakemake" / "locks").iterdir()), "Snakemake's lock is left behind by the kill"

    assert not snakemake_running_in(work)
    # What `make demo` runs first (there the workflow is the one in the working directory).
    assert unlock_if_stale(work, ["--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                                  "--configfile", str(configfile)])
    result = snakemake(work, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_outputs(result.stdout)
    assert "results/checkpoints/full/grpo-b" in planned
    finished = {p for p in planned if (work / p).exists()}
    assert not finished, f"outputs of finished jobs were planned again: {sorted(finished)}"
    assert (work / "results" / "checkpoints" / "base" / "start").is_dir()  # finished before: kept


def test_a_lock_held_by_a_running_snakemake_is_left_alone(tmp_path):
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("x")
    running = [{"pid": 1, "cmdline": ["/usr/bin/python3", "/x/.venv/bin/snakemake", "--cores", "2"],
                "cwd": str(tmp_path)}]
    assert snakemake_running_in(tmp_path, running)
    assert not unlock_if_stale(tmp_path, processes=running)
    assert (tmp_path / ".snakemake" / "locks" / "0.input.lock").exists()
    elsewhere = [{**running[0], "cwd": "/"}, {"pid": 2, "cmdline": ["python", "job.py"], "cwd": str(tmp_path)}]
    assert not snakemake_running_in(tmp_path, elsewhere)
