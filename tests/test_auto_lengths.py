"""`auto` lengths in real TRL training on a tiny model: the job measures its data and TRL gets the longest
sequence it builds; the job says so in its log and training.json; and the embedded demo's training is
bit-identical with `auto` and with the old explicit 32 / 64."""

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from subnet_rl.algorithms import ALGORITHMS
from subnet_rl.config import RunSpec
from subnet_rl.training import build_trainer, train
from test_training import setup as training_setup  # noqa: F401  (a fixture)

#: a chat template over the character tokenizer (role names are outside its alphabet: one <unk> a character)
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}:{{ m['content'] }}{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


@pytest.fixture(scope="module")
def setup(training_setup):
    """test_training's tiny start checkpoint and addition data."""
    root, train_file, *_ = training_setup
    return root, train_file


def _spec(algorithm, **kw):
    return RunSpec.from_dict({"name": f"t-{algorithm}", "algorithm": algorithm, "lr": 1e-2, "steps": 3, "seed": 0,
                              "dataset": "d", "batch_size": 4, "weight_decay": 0.1, **kw})


def _longest(df: pd.DataFrame) -> tuple[int, int]:
    """The character tokenizer's longest prompt and prompt + completion + EOS (chosen or rejected, answer)."""
    completions = [c for c in ("answer", "chosen", "rejected") if c in df]
    prompt = int(df["prompt"].str.len().max())
    return prompt, max(int((df["prompt"].str.len() + df[c].str.len()).max()) + 1 for c in completions)


#: the algorithms whose TRL config gets max_length (GRPO and RLOO get neither length)
WITH_MAX_LENGTH = ["sft", "dpo", "kto", "orpo", "simpo", "online_dpo"]


@pytest.mark.parametrize("algorithm", WITH_MAX_LENGTH)
def test_auto_trains_bit_identically_to_the_old_explicit_lengths(setup, tmp_path, algorithm, capsys):
    """The embedded demo's rows fit in 32 / 64 tokens: with `auto` TRL gets the data's longest instead, which
    truncates nothing either, and pads each batch to its own longest as before: the same bits."""
    root, train_data = setup
    pairs = train_data if ALGORITHMS[algorithm].reads_pairs else None
    online = {"max_new_tokens": 3} if algorithm == "online_dpo" else {}
    explicit = train(_spec(algorithm, max_prompt_length=32, max_length=64, **online), root / "start", train_data,
                     tmp_path / "explicit", pairs=pairs)
    auto = train(_spec(algorithm, **online), root / "start", train_data, tmp_path / "auto", pairs=pairs)
    prompt, full = _longest(pd.read_parquet(train_data))
    full = prompt + 3 if online else full  # prompt-only data: the longest prompt + max_new_tokens
    assert full < 64 and prompt < 32
    assert auto["environment"]["training_arguments"]["max_length"] == full
    assert explicit["environment"]["training_arguments"]["max_length"] == 64
    a, b = load_file(tmp_path / "explicit" / "model.safetensors"), load_file(tmp_path / "auto" / "model.safetensors")
    start = load_file(root / "start" / "model.safetensors")
    assert any(not torch.equal(a[n], start[n]) for n in a)  # it trained
    assert all(torch.equal(a[n].view(torch.int32), b[n].view(torch.int32)) for n in a)
    # what the job chose, in its log and its record
    log = capsys.readouterr().out
    assert f"run t-{algorithm}: lengths: max_prompt_length {prompt} (auto: the longest prompt)" in log
    assert f"max_length {full} (auto: the longest prompt + " in log
    assert "max_length 64 (as set; the longest prompt + " in log
    record = json.loads((tmp_path / "auto" / "training.json").read_text())
    assert record["lengths"] == {"max_prompt_length": {"setting": "auto", "value": prompt, "longest": prompt},
                                 "max_length": {"setting": "auto", "value": full, "longest": full}}
    assert record["run"]["max_length"] == "auto"  # the run as configured
    assert json.loads((tmp_path / "explicit" / "training.json").read_text())["lengths"]["max_length"] == {
        "setting": 64, "value": 64, "longest": full}


def _chat(df: pd.DataFrame) -> pd.DataFrame:
    turn = lambda role, text: [{"role": role, "content": text}]  # noqa: E731
    return pd.DataFrame({"prompt": [turn("user", p) for p in df["prompt"]],
                         "answer": list(df["answer"]),  # text: SFT makes it the prompt's assistant turn
                         "chosen": [turn("assistant", a) for a in df["chosen"]],
                         "rejected": [turn("assistant", a + "0000") for a in df["rejected"]]})


def _built(algorithm: str, built) -> tuple[list[int], list[int]]:
    """Prompt and sequence lengths of the rows a TRL trainer prepared (each trainer names them its way)."""
    if algorithm == "sft":  # the loss starts where the completion does
        prompts = [next(i for i, label in enumerate(labels) if label != -100) for labels in built["labels"]]
        return prompts, [len(ids) for ids in built["input_ids"]]
    if algorithm in ("orpo", "simpo"):  # TRL's older tokenization: whole sequences per side
        return ([len(p) for p in built["prompt_input_ids"]],
                [len(ids) for column in ("chosen_input_ids", "rejected_input_ids") for ids in built[column]])
    prompts = [len(p) for p in built["prompt_ids"]]
    completions = {"dpo": ("chosen_ids", "rejected_ids"), "kto": ("completion_ids", "KL_completion_ids")}[algorithm]
    return prompts, [p + len(ids) for column in completions for p, ids in zip(prompts, built[column], strict=True)]


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
@pytest.mark.parametrize("algorithm", ["sft", "dpo", "kto", "orpo", "simpo"])
def test_auto_is_the_longest_sequence_trl_builds(setup, tmp_path, algorithm, chat):
    """The lengths the job measures are those of the sequences TRL's own preparation builds without a limit
    (chat template, EOS, ORPO's and SimPO's EOS after a chat turn, KTO's mismatched KL pairs): with them TRL
    prepares the very same rows, and no shorter max_length would leave every sequence whole."""
    from subnet_rl.lengths import MISMATCHED_PAIRS, fit_run, with_lengths
    from subnet_rl.models import load_checkpoint

    root, train_data = setup
    model, tokenizer = load_checkpoint(root / "start")
    df = pd.read_parquet(train_data).iloc[:16]
    # the longest completion on a shorter prompt: the longest sequence is not the longest prompt's
    df.loc[0, ["prompt", "answer", "chosen", "rejected"]] = ["1+2=", "3000000", "3000000", "4000000"]
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
        df = _chat(df)
    spec = _spec(algorithm)
    data, _, lengths = fit_run(spec, tokenizer, df)
    auto = build_trainer(with_lengths(spec, lengths), model, tokenizer, data, str(tmp_path / "auto"), [])
    unlimited = build_trainer(spec.replaced(max_length=10_000), model, tokenizer, data, str(tmp_path / "all"), [])
    assert auto.args.max_length == lengths.values["max_length"] and unlimited.args.max_length == 10_000
    assert auto.train_dataset.to_dict() == unlimited.train_dataset.to_dict()  # nothing cut or dropped
    prompts, sequences = _built(algorithm, unlimited.train_dataset)
    assert len(prompts) == len(df) * (2 if algorithm == "kto" else 1)  # KTO unpairs chosen and rejected
    assert lengths.values["max_prompt_length"] == max(prompts)
    if algorithm == "kto":  # any prompt beside any completion, as its KL pairs may put them
        completions = [s - p for s, p in zip(sequences, prompts * 2, strict=True)]
        assert lengths.values["max_length"] == max(prompts) + max(completions) > max(sequences[:len(prompts)])
        assert algorithm in MISMATCHED_PAIRS
    else:
        assert lengths.values["max_length"] == max(sequences)
    if chat:  # the template's role names count: "user:" and "assistant:" are 15 tokens around the prompt
        assert max(prompts) == _longest(pd.read_parquet(train_data).iloc[1:16])[0] + 15


def test_an_explicit_length_too_small_fails_the_job_naming_the_key(setup, tmp_path):
    root, train_data = setup
    _, full = _longest(pd.read_parquet(train_data))
    with pytest.raises(ValueError, match=rf"is {full} tokens, over max_length={full - 1}.*runs\.t-sft\.max_length"):
        train(_spec("sft", max_length=full - 1), root / "start", train_data, tmp_path / "short")
    assert not (tmp_path / "short").exists()


def test_online_rl_records_its_prompts_and_the_completions_length(setup, tmp_path):
    """Prompt-only data: `auto` max_prompt_length is the longest prompt, max_length that + max_new_tokens
    (GRPO does not pass it to TRL; it is recorded as the longest sequence the run scores)."""
    root, train_data = setup
    summary = train(_spec("grpo", num_generations=4, max_new_tokens=3, steps=1), root / "start", train_data,
                    tmp_path / "grpo")
    prompt, _ = _longest(pd.read_parquet(train_data))
    assert summary["lengths"]["max_prompt_length"]["value"] == prompt
    assert summary["lengths"]["max_length"] == {"setting": "auto", "value": prompt + 3, "longest": prompt + 3}
