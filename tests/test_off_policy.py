"""Off-policy preference pairs (paper Table 5's control): same prompts, text the policy does not write.

The likelihood test trains a real (tiny) partial addition solver, samples its on-policy pairs, and checks
that the off-policy pairs built from them are less likely under it on both sides: "near" and "far" are
measured. The per-token log-likelihood itself is checked against a hand computation.
"""

import pandas as pd
import pytest
import torch

from subnet_rl.preferences import completion_logprobs, off_policy_pairs, on_policy_pairs, with_likelihoods
from subnet_rl.tasks import get_task

ADDITION = get_task("addition")


def pairs_of(prompts: list[str], answers: list[str]) -> pd.DataFrame:
    """On-policy-shaped pairs (the chosen/rejected texts do not matter to the off-policy control)."""
    return pd.DataFrame({"prompt": prompts, "answer": answers, "chosen": answers, "rejected": ["0"] * len(answers)})


# --- Task.off_policy_answer and off_policy_pairs ---------------------------------------------------

def test_addition_off_policy_answer_appends_two_zeros():
    """Same number read least-significant digit first, in a form the policy never writes."""
    assert ADDITION.off_policy_answer("501") == "50100"
    assert ADDITION.off_policy_answer("7") == "700"


def test_default_off_policy_answer_is_the_reference_text():
    solution = "3 + 4 = 7\n#### 7"
    assert get_task("gsm8k").off_policy_answer(solution) == solution


def test_off_policy_pairs_keep_prompts_and_take_the_next_different_reference():
    """11+11=22 -> '22', 12+12=24 -> '42', 13+13=26 -> '62' (reversed digits); rejected wraps around the
    references (here the pairs' own answers, in train order)."""
    on = pairs_of(["11+11=", "12+12=", "13+13="], ["22", "42", "62"])
    off = off_policy_pairs(on, ["22", "42", "62"], ADDITION)
    assert off.to_dict("records") == [
        {"prompt": "11+11=", "answer": "22", "chosen": "2200", "rejected": "4200"},
        {"prompt": "12+12=", "answer": "42", "chosen": "4200", "rejected": "6200"},
        {"prompt": "13+13=", "answer": "62", "chosen": "6200", "rejected": "2200"},
    ]


def test_off_policy_rejected_skips_prompts_with_the_same_reference():
    """10+12 and 11+11 both sum to 22: neither may be the other's rejected answer."""
    on = pairs_of(["10+12=", "11+11=", "12+12="], ["22", "22", "42"])
    off = off_policy_pairs(on, ["22", "22", "42"], ADDITION)
    assert off["prompt"].tolist() == ["10+12=", "11+11=", "12+12="]
    assert off["chosen"].tolist() == ["2200", "2200", "4200"]
    assert off["rejected"].tolist() == ["4200", "4200", "2200"]
    assert (off["chosen"] != off["rejected"]).all()


def test_off_policy_pairs_need_two_different_references():
    with pytest.raises(ValueError, match="at least two different reference answers"):
        off_policy_pairs(pairs_of(["10+12=", "11+11="], ["22", "22"]), ["22", "22"], ADDITION)


def test_one_on_policy_pair_still_gets_an_off_policy_partner_from_the_train_split():
    """A weak start model may yield a single on-policy pair: its rejected side comes from the train split."""
    off = off_policy_pairs(pairs_of(["11+11="], ["22"]), ["22", "42"], ADDITION)
    assert off.to_dict("records") == [{"prompt": "11+11=", "answer": "22", "chosen": "2200", "rejected": "4200"}]


# --- likelihoods under a trained start model ---------------------------------------------------------

@pytest.fixture(scope="module")
def solver(tmp_path_factory):
    """A partial addition solver: 60 SFT steps (batch 32, lr 1e-2) of a hidden-32 model on 256 two-digit
    problems; it samples both right and wrong answers for some prompts at temperature 1."""
    from subnet_rl.config import RunSpec
    from subnet_rl.data import synthetic_addition, write_dataset
    from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, load_checkpoint, save_checkpoint
    from subnet_rl.tasks import addition as task
    from subnet_rl.training import train

    root = tmp_path_factory.mktemp("off-policy")
    tokenizer = build_char_tokenizer(task.ALPHABET)
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                         max_positions=16)
    save_checkpoint(build_tiny_model(spec, tokenizer, seed=0), tokenizer, root / "init")
    paths = {"train": root / "train.parquet", "test": root / "test.parquet"}
    write_dataset(synthetic_addition(2, 256, 32, seed=0), paths)
    warmup = RunSpec.from_dict(dict(name="warmup", algorithm="sft", lr=1e-2, steps=60, seed=0, dataset="addition",
                                    batch_size=32, warmup_steps=5))
    train(warmup, root / "init", paths["train"], root / "start")
    model, tokenizer = load_checkpoint(root / "start")
    return model, tokenizer, pd.read_parquet(paths["train"])


def test_off_policy_pairs_are_less_likely_than_the_policys_samples(solver):
    """The issue's check: off-policy pairs really differ from the policy's samples. Both their chosen and
    their rejected sides have a lower mean per-token log-likelihood under the start model."""
    model, tokenizer, train_data = solver
    on = on_policy_pairs(model, tokenizer, train_data, ADDITION, "partial", samples=8, temperature=1.0,
                         max_new_tokens=4, seed=0)
    assert len(on) >= 5  # enough prompts with a right and a wrong sample for the means to mean something
    off = off_policy_pairs(on, list(train_data["answer"]), ADDITION)
    assert off["prompt"].tolist() == on["prompt"].tolist()
    on, off = with_likelihoods(model, tokenizer, on), with_likelihoods(model, tokenizer, off)
    assert off["chosen_logp"].mean() < on["chosen_logp"].mean()
    assert off["rejected_logp"].mean() < on["rejected_logp"].mean()
    assert (on["chosen_logp"] < 0).all() and (off["rejected_logp"] < 0).all()


def hand_logprob(model, tokenizer, prompt: str, completion: str) -> float:
    """Mean log p(token | all before it) over the completion's characters and EOS, one unpadded sequence."""
    head = [tokenizer.convert_tokens_to_ids(c) for c in prompt]
    tail = [tokenizer.convert_tokens_to_ids(c) for c in completion] + [tokenizer.eos_token_id]
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    terms = [torch.log_softmax(logits[len(head) + i - 1], dim=-1)[token].item() for i, token in enumerate(tail)]
    return sum(terms) / len(terms)


def test_completion_logprobs_equal_a_hand_computation(solver):
    """Different prompt and completion lengths in one padded batch: each equals its own unpadded sum."""
    model, tokenizer, _ = solver
    prompts, completions = ["12+34=", "1+2=", "99+99="], ["64", "3000", "891"]
    expected = [hand_logprob(model, tokenizer, p, c) for p, c in zip(prompts, completions)]
    got = completion_logprobs(model, tokenizer, prompts, completions)
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    assert completion_logprobs(model, tokenizer, prompts, completions, batch_size=1).tolist() == pytest.approx(
        expected, abs=1e-5)
    pairs = pd.DataFrame({"prompt": prompts[:2], "chosen": completions[:2], "rejected": completions[1:]})
    scored = with_likelihoods(model, tokenizer, pairs)
    assert scored["chosen_logp"].tolist() == pytest.approx(expected[:2], abs=1e-5)
    assert scored["rejected_logp"].tolist() == pytest.approx(
        [hand_logprob(model, tokenizer, p, c) for p, c in zip(prompts[:2], completions[1:])], abs=1e-5)
