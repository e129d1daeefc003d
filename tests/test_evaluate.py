"""Evaluation says when it cannot score: each completion records whether generation stopped at
max_new_tokens (clipped) or at EOS, and the task scores a clipped one cut inside its answer as wrong."""

import pandas as pd
import pytest
import torch

from subnet_rl.evaluate import Completion, clipped_rows, greedy_eval, scored_table
from subnet_rl.tasks import get_task

EOS, PAD = 1, 0


def test_a_row_that_reached_the_limit_without_eos_is_clipped():
    rows = torch.tensor([[5, 6, 7, 8],       # no EOS in 4 = max_new_tokens tokens: cut by the limit
                         [5, 6, 7, EOS],     # exactly max_new_tokens, the last one EOS: ended by itself
                         [5, EOS, PAD, PAD]])  # ended early, padded
    assert clipped_rows(rows, 4, EOS) == [True, False, False]
    assert clipped_rows(rows, 4, [9, EOS]) == [True, False, False]  # several stop ids
    assert clipped_rows(rows, 5, EOS) == [False] * 3  # shorter than the limit: every row ended
    assert clipped_rows(rows, 4, None) == [True] * 3  # no EOS to stop at


def test_a_pad_equal_to_eos_reads_as_ended():
    rows = torch.tensor([[5, EOS, EOS, EOS], [5, 6, 7, 8]])  # real models often pad with EOS
    assert clipped_rows(rows, 4, EOS) == [False, True]


def test_scored_table_carries_clipped_and_scores_a_cut_answer_as_wrong():
    test = pd.DataFrame({"prompt": ["q1", "q2", "q3"], "answer": ["#### 1", "#### 1", "#### 10"]})
    completions = [Completion("8 + 2 = 10\n#### 1", clipped=True), Completion("8 + 2 = 10\n#### 1", clipped=False),
                   Completion("#### 10\nSo", clipped=True)]
    scored = scored_table(test, completions, get_task("gsm8k"), "binary")
    assert list(scored["clipped"]) == [True, False, True]
    assert list(scored["correct"]) == [False, True, True]
    assert pd.isna(scored["extracted"].iloc[0]) and list(scored["extracted"].iloc[1:]) == ["1", "10"]
    assert list(scored["reward"]) == [0.0, 1.0, 1.0]


def _model_that_always_writes(token: str, tokenizer):
    """The embedded tiny model whose head always picks `token` (a biased, untied output layer)."""
    from subnet_rl.models import TinyModelSpec, build_tiny_model

    model = build_tiny_model(TinyModelSpec(hidden_size=16, intermediate_size=32, num_heads=2, num_kv_heads=1,
                                           num_layers=1), tokenizer, seed=0)
    head = torch.nn.Linear(16, len(tokenizer), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[tokenizer.convert_tokens_to_ids(token)] = 10.0
    model.lm_head = head
    return model


@pytest.mark.parametrize("token,max_new_tokens,completion,clipped", [
    ("5", 3, "555", True),       # no EOS within the limit: clipped, and "555" is no answer of "555"
    ("<eos>", 1, "", False),     # exactly max_new_tokens tokens, the last one EOS: not clipped
])
def test_greedy_eval_with_the_models_generate_marks_the_limit(token, max_new_tokens, completion, clipped):
    from subnet_rl.models import build_char_tokenizer

    tokenizer = build_char_tokenizer("0123456789+=")
    model = _model_that_always_writes(token, tokenizer)
    test = pd.DataFrame({"prompt": ["12+34=", "1+2="], "answer": ["555", "555"]})
    scored = greedy_eval(model, tokenizer, test, get_task("addition"), "binary", max_new_tokens)
    assert list(scored["completion"]) == [completion] * 2
    assert list(scored["clipped"]) == [clipped] * 2
    assert not scored["correct"].any()  # "555" cut at the limit would have scored right without the flag
