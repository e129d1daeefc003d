"""Bad input that used to lose data or pass silently: paths leaving the work folder, a live run's lock
removed, a key given twice, more GPUs asked for than the machine has (issue 14, items 1, 2, 3 and 5)."""

import copy
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from subnet_rl.config import check_references
from subnet_rl.config_files import DuplicateKeyError, check_config_files, check_no_duplicate_keys
from subnet_rl.hub_refs import HubRefError, download_slug
from subnet_rl.launch import check_gpus, train_job
from subnet_rl.stale_lock import Holder, lock_holder, snakemake_running_in, unlock_if_stale

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TEST_CONFIG = REPO / ".test" / "config.yaml"
HOSTILE = ["../../outside", "/etc/passwd-like", "a/../../b", "..", "x/../../../y"]


def _study():
    return yaml.safe_load(TEST_CONFIG.read_text())


def _with_hub_pieces(config):
    """The test study plus a hub start model under `models`, a checkpoint pair of hub models, a hub dataset."""
    config = copy.deepcopy(config)
    config["models"] = {"smol": {"source": "hub", "name": "org/smol", "revision": "main"}}
    config["checkpoint_pairs"] = {"p": {"before": {"source": "hub", "name": "org/base", "revision": "main"},
                                        "after": {"source": "hub", "name": "org/tuned", "revision": "v1"}}}
    config["datasets"]["hubdata"] = {"source": "hub", "path": "org/data", "task": "gsm8k", "revision": "main",
                                     "columns": {"prompt": "question", "answer": "answer"}}
    return config


def _validated(config):
    validate(config, schema=str(SCHEMA))
    check_references(config)


def _set(config, path, value):
    *parents, last = path
    node = config
    for key in parents:
        node = node[key]
    node[last] = value


def _rename(config, section, old, new):
    config[section][new] = config[section].pop(old)


# Every config string that becomes part of a path: names (run, dataset, model, pair keys), hub ids
# and revisions. Each hostile value must be refused, naming the key.
VALUE_KEYS = [
    ("models", "smol", "name"), ("models", "smol", "revision"),
    ("checkpoint_pairs", "p", "before", "name"), ("checkpoint_pairs", "p", "before", "revision"),
    ("checkpoint_pairs", "p", "after", "name"), ("checkpoint_pairs", "p", "after", "revision"),
    ("datasets", "hubdata", "revision"),
]
NAME_KEYS = [("runs", "grpo-a"), ("datasets", "addition"), ("models", "smol"), ("checkpoint_pairs", "p")]


def test_the_unmodified_configs_pass():
    """The control of the refusals below: the same configs, every hub piece well formed, pass both checks,
    and each hub model gets its download slug (a revision's `/` encoded, not a path)."""
    from subnet_rl.hub_refs import hub_refs

    _validated(_with_hub_pieces(_study()))
    config = _with_hub_pieces(_study())
    config["model"] = {"source": "hub", "name": "org/start", "revision": "refs/pr/1"}
    _validated(config)
    slugs = {key: download_slug(ref) for key, ref in hub_refs(config)}
    assert slugs == {"model": "org--start@refs%2Fpr%2F1", "models.smol": "org--smol@main",
                     "checkpoint_pairs.p.before": "org--base@main", "checkpoint_pairs.p.after": "org--tuned@v1"}


@pytest.mark.parametrize("key", VALUE_KEYS, ids=".".join)
@pytest.mark.parametrize("value", HOSTILE)
def test_path_traversal_through_hub_ids_and_revisions_is_refused(key, value):
    config = _with_hub_pieces(_study())
    _set(config, key, value)
    with pytest.raises(HubRefError) as caught:
        _validated(config)
    assert str(caught.value).startswith(".".join(key) + ": "), caught.value


@pytest.mark.parametrize("section,name", NAME_KEYS)
@pytest.mark.parametrize("value", HOSTILE)
def test_path_traversal_through_names_is_refused_by_the_schema(section, name, value):
    config = _with_hub_pieces(_study())
    if section == "datasets":  # runs refer to the dataset by name: rename it there too
        for run in config["runs"].values():
            run["dataset"] = value
    _rename(config, section, name, value)
    with pytest.raises(Exception, match="does not match|is not valid under"):
        _validated(config)


def test_the_start_model_revision_is_checked_too():
    config = _study()
    config["model"] = {"source": "hub", "name": "org/start", "revision": "../../x"}
    with pytest.raises(HubRefError, match=r"model\.revision"):
        check_references(config)


def test_download_ids_are_one_path_component():
    assert download_slug({"name": "org/name"}) == "org--name"
    assert download_slug({"name": "org/name", "revision": "main"}) == "org--name@main"
    assert download_slug({"name": "org/name", "revision": "refs/pr/1"}) == "org--name@refs%2Fpr%2F1"
    for ref in ({"name": "org/name", "revision": "../../x"}, {"name": "../x"}, {"name": "a/b/c"}):
        with pytest.raises(HubRefError):
            download_slug(ref)


def _snakemake(workdir, configfile, *args):
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(configfile), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_a_traversing_revision_stops_the_workflow_and_touches_nothing_outside(tmp_path):
    """The reported data loss: a revision `../../...` made a job's log overwrite, and its failure delete,
    a file outside the work folder. Now the workflow stops at parse time, naming the key."""
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    config = {"checkpoint_pairs": {"p": {"before": {"source": "hub", "name": "org/base",
                                                    "revision": "../../../../precious.txt"},
                                         "after": {"source": "hub", "name": "org/tuned"}}}}
    (tmp_path / "pairs.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake(work, tmp_path / "pairs.yaml")
    assert result.returncode != 0
    assert "checkpoint_pairs.p.before.revision" in result.stdout + result.stderr
    assert outside.read_text() == "keep me"
    assert not (work / "results").exists()


# --- duplicate keys ---------------------------------------------------------------------------------


def test_a_key_given_twice_anywhere_is_refused_with_its_line(tmp_path):
    text = TEST_CONFIG.read_text()
    assert "  grpo-b: {" in text
    doubled = text.replace("  grpo-b: {", "  grpo-a: {algorithm: sft, lr: 1.0, steps: 1, seed: 9, dataset: addition}\n"
                                          "  grpo-b: {", 1)
    (tmp_path / "c.yaml").write_text(doubled)
    line = doubled.splitlines().index(next(s for s in doubled.splitlines() if s.startswith("  grpo-a: {algorithm: sft"))) + 1
    with pytest.raises(DuplicateKeyError, match=rf"c\.yaml: line {line}: key 'grpo-a' is given twice"):
        check_no_duplicate_keys(tmp_path / "c.yaml")
    nested = tmp_path / "nested.yaml"
    nested.write_text("training:\n  lr: 1\n  batch_size: 2\n  lr: 3\n")
    with pytest.raises(DuplicateKeyError, match="line 4: key 'lr'.*first at line 2"):
        check_config_files([nested])
    flow = tmp_path / "flow.yaml"
    flow.write_text("runs: {a: {lr: 1, lr: 2}}\n")
    with pytest.raises(DuplicateKeyError, match="key 'lr'"):
        check_no_duplicate_keys(flow)
    (tmp_path / "c.json").write_text('{"runs": {"a": {}, "a": {}}}')
    with pytest.raises(DuplicateKeyError, match="key 'a'"):
        check_no_duplicate_keys(tmp_path / "c.json")


def test_the_shipped_configs_have_no_duplicate_keys():
    shipped = sorted((REPO / "config").glob("*.yaml")) + sorted((REPO / ".test").glob("*.yaml"))
    assert len(shipped) >= 4  # config.yaml, study.yaml, paper.yaml, train-paper.yaml and the tests' own
    check_config_files(shipped)  # raises DuplicateKeyError, naming the key, on a key given twice


@pytest.mark.e2e
def test_the_workflow_refuses_a_duplicated_run_before_any_job(tmp_path):
    text = TEST_CONFIG.read_text().replace("  grpo-b: {", "  grpo-a: {algorithm: sft, lr: 1.0, steps: 1, seed: 9, "
                                                         "dataset: addition}\n  grpo-b: {", 1)
    (tmp_path / "c.yaml").write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    result = _snakemake(work, tmp_path / "c.yaml", "-n")
    assert result.returncode != 0
    assert "key 'grpo-a' is given twice" in result.stdout + result.stderr
    assert not (work / "results").exists()


# --- stale locks ------------------------------------------------------------------------------------


def _locked(folder: Path) -> Path:
    lock = folder / ".snakemake" / "locks" / "0.input.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("x")
    return lock


@pytest.mark.parametrize("cmdline", [
    ["/x/.venv/bin/snakemake", "--cores", "2"],
    ["/usr/bin/python3", "-m", "snakemake", "--cores", "2"],
    ["python3.11", "/x/.venv/bin/snakemake", "--cores", "2"],
    ["uv", "run", "snakemake", "--profile", "slurm"],
    ["conda", "run", "-n", "env", "snakemake", "-c1"],
    ["nohup", "snakemake", "--cores", "all"],
    ["bash", "-c", "cd /x && snakemake --cores 2 > log"],
    ["/usr/bin/python3", "-c", "from snakemake.cli import main; main()"],
])
def test_every_way_of_running_snakemake_here_keeps_the_lock(tmp_path, cmdline):
    lock = _locked(tmp_path)
    running = [{"pid": 1, "cmdline": cmdline, "cwd": str(tmp_path)}]
    assert lock_holder(tmp_path, running)[0] is Holder.RUNNING
    assert not unlock_if_stale(tmp_path, processes=running)
    assert lock.exists()


def test_a_run_elsewhere_that_names_this_folder_keeps_the_lock(tmp_path):
    _locked(tmp_path)
    for cmdline in (["snakemake", "--directory", str(tmp_path)], ["snakemake", "-d", tmp_path.name],
                    ["snakemake", f"--directory={tmp_path}"]):
        running = [{"pid": 1, "cmdline": cmdline, "cwd": str(tmp_path.parent)}]
        assert lock_holder(tmp_path, running)[0] is Holder.RUNNING, cmdline


def test_unsure_keeps_the_lock_and_says_how_to_unlock(tmp_path, capsys):
    lock = _locked(tmp_path)
    unreadable = [{"pid": 7, "cmdline": ["python", "-m", "snakemake"], "cwd": None},
                  {"pid": 8, "cmdline": None, "cwd": str(tmp_path)}]
    for process in unreadable:
        assert lock_holder(tmp_path, [process])[0] is Holder.UNSURE
        assert not unlock_if_stale(tmp_path, processes=[process])
        assert "snakemake --unlock" in capsys.readouterr().err
    assert lock.exists()


def test_other_processes_do_not_hold_the_lock(tmp_path):
    others = [{"pid": 2, "cmdline": ["python", "job.py"], "cwd": str(tmp_path)},
              {"pid": 3, "cmdline": ["snakemake", "--cores", "1"], "cwd": "/"},
              {"pid": 4, "cmdline": ["vim", "Snakefile"], "cwd": str(tmp_path)}]
    assert lock_holder(tmp_path, others) == (Holder.NONE, [])


def _wait_for(predicate, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_a_live_python_m_snakemake_run_keeps_its_lock(tmp_path):
    """The reported case, with real processes: a run started as `python -m snakemake` (first two words
    `python -m`) was taken for no run, and its lock removed. Here a real Snakemake runs a sleeping job."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "Snakefile").write_text(textwrap.dedent("""
        rule slow:
            output: "done.txt"
            shell: "sleep 60 && touch {output}"
    """))
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        locks = work / ".snakemake" / "locks"
        assert _wait_for(lambda: locks.is_dir() and any(locks.iterdir())), "snakemake never locked its folder"
        assert snakemake_running_in(work)
        assert not unlock_if_stale(work)
        assert any(locks.iterdir()), "the live run's lock was removed"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    # Killed: now the lock is stale and is removed.
    assert _wait_for(lambda: not snakemake_running_in(work), 30)
    assert unlock_if_stale(work)
    assert not (locks.is_dir() and any(locks.iterdir()))


# --- GPUs -------------------------------------------------------------------------------------------


def test_more_gpus_than_the_machine_has_is_an_error_unless_cpu_processes_are_asked_for():
    with pytest.raises(RuntimeError, match=r"resources\.train\.gpu asks for 2 GPU\(s\) and this machine shows 0.*"
                                           r"resources\.train\.cpu_processes: true"):
        check_gpus(2, available=0)
    with pytest.raises(RuntimeError, match="asks for 1 GPU"):
        check_gpus(1, available=0)
    check_gpus(2, cpu_processes=True, available=0)
    check_gpus(2, available=2)
    check_gpus(0, available=0)


def test_train_job_checks_the_machine_before_launching(tmp_path):
    """On this machine (no GPU) a two-GPU job stops before starting anything; never two silent CPU ranks."""
    import torch

    from subnet_rl.config import RunSpec

    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the GPUs")
    spec = RunSpec.from_dict(dict(name="r", algorithm="sft", lr=1e-3, steps=1, seed=0, dataset="d"))
    with pytest.raises(RuntimeError, match="cpu_processes"):
        train_job(spec, tmp_path / "no-start", tmp_path / "no-data.parquet", tmp_path / "out", processes=2)
    assert not (tmp_path / "out").exists()


def test_the_schema_takes_the_cpu_processes_setting():
    config = _study()
    config["resources"] = {"train": {"gpu": 2, "cpu_processes": True}}
    validate(config, schema=str(SCHEMA))
    config["resources"]["train"]["cpu_processes"] = "yes"
    with pytest.raises(Exception, match="cpu_processes|'yes'"):
        validate(config, schema=str(SCHEMA))
