"""Tracking (issue 15, item 8): `report_to: tensorboard` writes event files holding the run's loss and
reward curves under the job's tracking folder, offline; a tracker whose package is missing stops the
config check, naming the package."""

import pytest
import yaml

from subnet_rl.config import check_references
from subnet_rl.launch import train_job
from test_resume import _spec, setup  # noqa: F401  (the shared tiny model and data)


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(folder.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {folder}"
    tags = {}
    for file in files:
        events = EventAccumulator(str(file))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            tags[tag] = [e.value for e in events.Scalars(tag)]
    return tags


@pytest.mark.parametrize("algorithm,curve", [("sft", "train/loss"), ("grpo", "train/reward")])
def test_tensorboard_event_files_hold_the_training_curves(setup, tmp_path, algorithm, curve):  # noqa: F811
    root, train_data = setup
    spec = _spec(algorithm, save_steps=0, steps=4, report_to=["tensorboard"])
    train_job(spec, root / "start", train_data, tmp_path / "out", tracking_dir=tmp_path / "tracking")
    scalars = _scalars(tmp_path / "tracking")
    assert len(scalars[curve]) >= 2, sorted(scalars)
    assert all(v == v for v in scalars[curve])  # real numbers, no NaN


def test_no_tracker_by_default_writes_nothing(setup, tmp_path):  # noqa: F811
    root, train_data = setup
    train_job(_spec("sft", save_steps=0, steps=2), root / "start", train_data, tmp_path / "out",
              tracking_dir=tmp_path / "tracking")
    assert not (tmp_path / "tracking").exists()


def test_a_tracker_without_its_package_is_refused_at_the_config_check(monkeypatch):
    import importlib.util

    config = yaml.safe_load(open(".test/config.yaml"))
    config["training"]["report_to"] = ["wandb"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"runs\.\S+\.report_to: 'wandb' needs the Python package 'wandb'"):
        check_references(config)
    config["training"]["report_to"] = "tensorboard"
    check_references(config)
