"""Resumable training (issue 15, item 4): a job SIGKILLed after its first `save_steps` checkpoint, rerun,
ends with the same weights as an uninterrupted run, bit for bit; the resume folder is gone afterwards."""

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest

from subnet_rl import resume
from subnet_rl.config import RunSpec
from subnet_rl.launch import train_job
from subnet_rl.step_sparsity_records import FILE as STEP_SPARSITY
from test_training import setup as training_setup

# Run in a fresh interpreter: train_job with a callback that SIGKILLs the process right after the Trainer's
# checkpoint at step `kill_at` is written (as a time limit or a preemption would, with no clean-up).
KILLED_JOB = """
import json, os, signal, sys
from transformers import TrainerCallback
import subnet_rl.training as training
from subnet_rl.config import RunSpec
from subnet_rl.launch import train_job

args = json.loads(sys.argv[1])

class KillAfterSave(TrainerCallback):
    def on_save(self, a, state, control, **kw):
        if state.global_step == args["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)

build = training.build_trainer
training.build_trainer = lambda spec, model, tok, data, out, callbacks: build(spec, model, tok, data, out,
                                                                              [*callbacks, KillAfterSave()])
train_job(RunSpec.from_dict(args["spec"]), args["start"], args["train"], args["out"], mask=args.get("mask"),
          resume_dir=args["resume"])
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny model, data and a half-density mask of tests/test_training.py, as (root, train split)."""
    root, train, _, _ = training_setup.__wrapped__(tmp_path_factory)
    return root, train


def _spec(algorithm: str, **kw) -> RunSpec:
    group = {"num_generations": 4} if algorithm in ("grpo", "rloo") else {}
    return RunSpec.from_dict({"name": f"r-{algorithm}", "algorithm": algorithm, "lr": 1e-2, "steps": 6, "seed": 0,
                              "dataset": "d", "batch_size": 4, "weight_decay": 0.1, "save_steps": 2, **group, **kw})


@pytest.mark.parametrize("algorithm,masked,settings", [("sft", False, {}), ("grpo", False, {}), ("sft", True, {}),
                                                       ("sft", False, {"step_sparsity": True})])
def test_a_killed_job_resumes_and_ends_bit_identical(setup, tmp_path, algorithm, masked, settings):
    """With step_sparsity, the records of the steps before the kill come back from the Trainer's checkpoint:
    the resumed run's record equals the uninterrupted run's."""
    root, train_data = setup
    spec = _spec(algorithm, **settings)
    mask = str(root / "mask.safetensors") if masked else None
    train_job(spec, root / "start", train_data, tmp_path / "whole", mask=mask, resume_dir=tmp_path / "resume-whole")
    assert not (tmp_path / "resume-whole").exists(), "the resume folder outlived the final checkpoint"

    resume_dir, out = tmp_path / "resume", tmp_path / "out"
    job = {"spec": spec.as_dict(), "start": str(root / "start"), "train": str(train_data), "out": str(out),
           "mask": mask, "resume": str(resume_dir), "kill_at": 2}
    killed = subprocess.run([sys.executable, "-c", KILLED_JOB, json.dumps(job)], capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not out.exists(), "a killed job left a final checkpoint"
    assert [p.name for p in resume.complete_checkpoints(resume_dir)] == ["checkpoint-2"]

    rerun = subprocess.run([sys.executable, "-c", KILLED_JOB, json.dumps({**job, "kill_at": -1})],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resume: continuing from checkpoint-2" in rerun.stdout
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert not resume_dir.exists()
    history = json.loads((out / "training.json").read_text())["log_history"]
    assert history[-1]["step"] == 6
    if settings.get("step_sparsity"):
        resumed, whole = pd.read_parquet(out / STEP_SPARSITY), pd.read_parquet(tmp_path / "whole" / STEP_SPARSITY)
        assert resumed["step"].tolist() == list(range(1, 7)) and (resumed["changed"] > 0).all()
        pd.testing.assert_frame_equal(resumed, whole)
    else:
        assert not (out / STEP_SPARSITY).exists()


def test_a_resume_folder_of_other_settings_is_not_resumed(setup, tmp_path):
    root, train_data = setup
    folder = tmp_path / "resume"
    first = resume.fingerprint(_spec("sft").as_dict(), [root / "start", train_data])
    resume.prepare(folder, first)
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-4").mkdir()  # killed while saving: no trainer_state.json
    assert resume.prepare(folder, first) == str(folder / "checkpoint-2")
    other = resume.fingerprint(_spec("sft", lr=2e-2).as_dict(), [root / "start", train_data])
    assert other != first
    messages = []
    assert resume.prepare(folder, other, log=messages.append) is None
    assert "other settings or inputs" in messages[0] and not (folder / "checkpoint-2").exists()
