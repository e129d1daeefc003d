"""Sharded and multi-node launches (issue 15, items 1 and 5): the commands the launcher builds, two node
launchers on this machine as machine ranks 0 and 1 against one two-process launcher, and the Slurm request
of a two-node job."""

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from subnet_rl.launch import Launch, accelerate_command, free_port, launch_of, srun_command, train_job
from test_resume import _spec, setup  # noqa: F401  (the shared tiny model and data)

REPO = Path(__file__).resolve().parents[1]


def test_fsdp2_launch_wraps_decoder_layers_and_gathers_a_full_state_dict():
    command = accelerate_command(Launch(gpus=8, sharding="fsdp2"), ["--spec", "s"], layer_classes="LlamaDecoderLayer")
    text = " ".join(command)
    for flag in ("--use_fsdp", "--fsdp_version 2", "--fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP",
                 "--fsdp_transformer_layer_cls_to_wrap LlamaDecoderLayer", "--fsdp_state_dict_type FULL_STATE_DICT",
                 "--num_processes 8", "--num_machines 1"):
        assert flag in text, flag
    assert "--multi_gpu" not in text
    ddp = " ".join(accelerate_command(Launch(gpus=2), ["--spec", "s"]))
    assert "--multi_gpu" in ddp and "--use_fsdp" not in ddp
    assert command[-3:] == ["train", "--spec", "s"]


def test_one_process_without_sharding_trains_in_this_process():
    assert Launch(gpus=0).in_process and Launch(gpus=1).in_process
    assert not Launch(gpus=1, sharding="fsdp2").in_process  # FSDP2 on one GPU still goes through accelerate
    assert not Launch(gpus=2).in_process and not Launch(gpus=1, nodes=2).in_process
    with pytest.raises(ValueError, match="not resolved"):
        Launch(sharding="auto")


def test_auto_sharding_is_ddp_without_a_memory_limit(setup):  # noqa: F811
    root, _ = setup
    settings = {"gpus": 2, "nodes": 1, "cpu_processes": True, "gpu_mem_gb": None}
    assert launch_of(_spec("sft"), root / "start", settings).sharding == "ddp"
    assert launch_of(_spec("sft", sharding="fsdp2"), root / "start", settings).sharding == "fsdp2"


def test_auto_sharding_and_the_job_start_check_follow_the_plan_of_the_fetched_checkpoint(setup):  # noqa: F811
    """With gpu_mem_gb, the launcher plans the job from its start checkpoint as it is on disk: DDP when a
    replica fits, FSDP2 when only shards fit, and a refusal naming what to change when neither does."""
    from subnet_rl.plan import GiB, PlanError, plan_job

    root, _ = setup
    settings = {"gpus": 4, "nodes": 1, "cpu_processes": True, "gpu_mem_gb": None}
    plan = plan_job(_spec("sft"), root / "start", settings, mask=True)
    ddp, fsdp2 = (plan.by_sharding[s].total / GiB for s in ("ddp", "fsdp2"))
    assert fsdp2 < ddp
    assert launch_of(_spec("sft"), root / "start", {**settings, "gpu_mem_gb": ddp * 1.01}, mask=True).sharding == "ddp"
    between = {**settings, "gpu_mem_gb": (ddp + fsdp2) / 2}
    assert launch_of(_spec("sft"), root / "start", between, mask=True).sharding == "fsdp2"
    with pytest.raises(PlanError, match="r-sft"):
        launch_of(_spec("sft"), root / "start", {**settings, "gpu_mem_gb": fsdp2 / 2}, mask=True)


def test_srun_starts_one_node_launcher_per_node():
    command = srun_command(Launch(gpus=8, nodes=4, sharding="fsdp2"), ["--spec", "s"], "node001", 29500, "X")
    text = " ".join(command)
    assert text.startswith("srun --nodes 4 --ntasks 4 --ntasks-per-node 1")
    assert "-m subnet_rl.launch node --gpus 8 --nodes 4 --sharding fsdp2 --main-address node001 --main-port 29500" in text
    assert command[-3:] == ["--", "--spec", "s"]


def test_several_nodes_outside_slurm_is_an_error(setup, tmp_path, monkeypatch):  # noqa: F811
    root, train_data = setup
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(RuntimeError, match="nodes is 2, which needs a Slurm allocation"):
        train_job(_spec("sft", save_steps=0), root / "start", train_data, tmp_path / "out",
                  launch=Launch(gpus=1, nodes=2, cpu_processes=True))


def test_two_node_launchers_train_the_same_weights_as_one_two_process_launcher(setup, tmp_path):  # noqa: F811
    """Machine ranks 0 and 1 (one gloo process each, as two nodes would run them) against DDP with two
    processes under one launcher: the same world, the same batches, the same weights bit for bit."""
    root, train_data = setup
    spec = _spec("sft", save_steps=0, steps=3)
    train_job(spec, root / "start", train_data, tmp_path / "one-launcher", processes=2, cpu_processes=True)

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec.as_dict()))
    out = tmp_path / "two-nodes"
    train_args = ["--spec", str(spec_file), "--start", str(root / "start"), "--train", str(train_data),
                  "--out", str(out)]
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "subnet_rl.launch", "node", "--gpus", "1", "--nodes", "2",
                               "--sharding", "ddp", "--main-address", "127.0.0.1", "--main-port", str(port),
                               "--cpu-processes", "--machine-rank", str(rank), "--", *train_args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "--num_machines 2 --machine_rank 1" in logs[1]
    record = json.loads((out / "training.json").read_text())
    assert record["environment"]["world_size"] == 2
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "one-launcher" / "model.safetensors").read_bytes()


def test_a_two_node_job_asks_slurm_for_two_nodes_one_task_and_the_gpus_on_each(tmp_path):
    """Dry run of a two-node config: the training jobs' resources, turned into the sbatch call by the
    Slurm executor plugin's own functions."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["resources"] = {"train": {"gpu": 8, "nodes": 2, "mem_mb": 64000, "runtime": 2880}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "c.yaml"), "--cores", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = re.findall(r"rule train_full:.*?resources: ([^\n]*)", result.stdout, re.S)
    assert shown, result.stdout[-2000:]
    resources = dict(item.split("=", 1) for item in shown[0].split(", "))
    assert (resources["nodes"], resources["gres"], resources["slurm_extra"]) == ("2", "gpu:8", "--ntasks-per-node=1")
    assert "gpu" not in resources  # --gpus would be the job's total, not per node

    class Resources(dict):
        __getattr__ = dict.get

    typed = Resources({k: int(v) if v.isdigit() else v for k, v in resources.items()})
    job = SimpleNamespace(resources=typed, name="train_full", threads=1)
    params = {"run_uuid": "x", "slurm_logfile": "log", "comment_str": "c", "account": "", "partition": "",
              "workdir": str(tmp_path)}
    call = get_submit_command(job, params) + set_gres_string(job)
    assert "--nodes=2" in call and "--ntasks-per-node=1" in call and "--gres=gpu:8" in call
    assert "--gpus=" not in call
