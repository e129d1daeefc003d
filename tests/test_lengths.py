"""Token lengths checked before training: overlong rows fail the run by name, or are dropped and counted."""

import pandas as pd
import pytest

from subnet_rl.lengths import enforce_lengths, find_overlong, fit_lengths
from subnet_rl.models import build_char_tokenizer
from subnet_rl.tasks.addition import ALPHABET


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer(ALPHABET)  # one token per character


@pytest.fixture(scope="module")
def chat_tokenizer():
    tok = build_char_tokenizer(ALPHABET)
    # Role names are outside the alphabet (each character one <unk>), so the template's overhead is countable.
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}:{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}assistant:{% endif %}")
    return tok


def _enforce(df, tok, data="answers", max_prompt_length=32, max_length=64, drop=False):
    return enforce_lengths(df, tok, data, max_prompt_length, max_length, drop, dataset="sums", run="sft-a")


def test_rows_that_fit_pass_unchanged(tokenizer):
    df = pd.DataFrame({"prompt": ["12+34=", "1+2="], "answer": ["64", "3"]})
    # "12+34=" + "64" + EOS is 9 tokens: exactly at the limit is fine
    assert find_overlong(df, tokenizer, "answers", max_prompt_length=6, max_length=9) == []
    out, dropped = _enforce(df, tokenizer, max_prompt_length=6, max_length=9)
    assert dropped == 0 and out is df


def test_sft_prompt_plus_answer_over_max_length_names_dataset_row_and_keys(tokenizer):
    df = pd.DataFrame({"prompt": ["1+2=", "12+34="], "answer": ["3", "64"]})
    (found,) = find_overlong(df, tokenizer, "answers", max_prompt_length=32, max_length=8)
    assert (found.row, found.tokens, found.limit, found.key) == (1, 9, 8, "max_length")
    with pytest.raises(ValueError) as err:
        _enforce(df, tokenizer, max_length=8)
    message = str(err.value)
    for part in ("'sums'", "row 1", "max_length", "runs.sft-a.max_length", "drop_overlong"):
        assert part in message


def test_prompt_over_max_prompt_length_names_that_key(tokenizer):
    df = pd.DataFrame({"prompt": ["1+2=", "123+456="], "answer": ["3", "975"]})
    for data in ("prompts", "answers"):
        with pytest.raises(ValueError, match=r"row 1: prompt is 8 tokens, over max_prompt_length=7"):
            _enforce(df, tokenizer, data=data, max_prompt_length=7)


def test_drop_overlong_drops_and_counts(tokenizer):
    df = pd.DataFrame({"prompt": ["1+2=", "12+34=", "3+4=", "123+456="], "answer": ["3", "64", "7", "975"]},
                      index=[10, 11, 12, 13])
    out, dropped = _enforce(df, tokenizer, max_prompt_length=7, max_length=8, drop=True)
    assert dropped == 2
    assert list(out["prompt"]) == ["1+2=", "3+4="]
    pd.testing.assert_index_equal(out.index, pd.RangeIndex(2))


def test_dpo_checks_chosen_and_rejected(tokenizer):
    for long_column in ("chosen", "rejected"):
        row = {"prompt": "1+2=", "chosen": "3", "rejected": "4"}
        row[long_column] = "3333"  # 4 + 4 + EOS = 9 tokens
        df = pd.DataFrame([row])
        (found,) = find_overlong(df, tokenizer, "pairs", max_prompt_length=32, max_length=8)
        assert (found.key, found.what) == ("max_length", f"prompt + {long_column}")
        assert find_overlong(df, tokenizer, "pairs", max_prompt_length=32, max_length=9) == []


def test_every_row_overlong_raises_even_with_drop(tokenizer):
    df = pd.DataFrame({"prompt": ["12+34=", "56+78="], "answer": ["64", "431"]})
    with pytest.raises(ValueError, match=r"every one of 2 rows.*'sft-a'"):
        _enforce(df, tokenizer, max_length=5, drop=True)


def test_conversational_rows_are_measured_through_the_chat_template(chat_tokenizer):
    prompt = [{"role": "user", "content": "12+34"}]
    # rendered prompt: "user:12+34assistant:" = 5 + 5 + 10 tokens (content alone would be 5)
    df = pd.DataFrame({"prompt": [prompt], "answer": ["64"]})
    (found,) = find_overlong(df, chat_tokenizer, "prompts", max_prompt_length=19, max_length=64)
    assert (found.key, found.tokens) == ("max_prompt_length", 20)
    assert find_overlong(df, chat_tokenizer, "prompts", max_prompt_length=20, max_length=64) == []
    # prompt + answer as the trainer builds it: "user:12+34assistant:64" = 5 + 5 + 10 + 2 tokens
    (found,) = find_overlong(df, chat_tokenizer, "answers", max_prompt_length=20, max_length=21)
    assert (found.key, found.tokens) == ("max_length", 22)
    assert find_overlong(df, chat_tokenizer, "answers", max_prompt_length=20, max_length=22) == []


def test_conversational_prompt_without_chat_template_is_refused(tokenizer):
    df = pd.DataFrame({"prompt": [[{"role": "user", "content": "1+2"}]], "answer": ["3"]})
    with pytest.raises(ValueError, match="no chat template"):
        find_overlong(df, tokenizer, "answers", max_prompt_length=32, max_length=64)


# -- `auto`: the longest of the data, counted as the trainer builds it -----------------------------------------
def _fit(df, tok, data="answers", max_prompt_length="auto", max_length="auto", drop=False, new_tokens=0):
    return fit_lengths(df, tok, data, max_prompt_length, max_length, drop, dataset="sums", run="sft-a",
                       new_tokens=new_tokens)


def test_auto_is_the_longest_prompt_and_the_longest_prompt_plus_answer(tokenizer):
    # prompts of 4, 8 and 6 tokens; prompt + answer + EOS of 4+1+1, 8+3+1 and 6+4+1 tokens
    df = pd.DataFrame({"prompt": ["1+2=", "123+456=", "12+34="], "answer": ["3", "975", "9999"]})
    out, dropped, lengths = _fit(df, tokenizer)
    assert out is df and dropped == 0
    assert lengths.values == {"max_prompt_length": 8, "max_length": 12}
    assert lengths.record() == {"max_prompt_length": {"setting": "auto", "value": 8, "longest": 8},
                                "max_length": {"setting": "auto", "value": 12, "longest": 12}}
    # a row of the shorter prompt with a longer answer (6+7+1 tokens) sets max_length; the prompt stays
    longer = df.assign(answer=["3", "975", "9999999"])
    assert _fit(longer, tokenizer)[2].values == {"max_prompt_length": 8, "max_length": 14}
    # auto leaves nothing over it: the same data with the measured values set explicitly passes, one less fails
    assert find_overlong(df, tokenizer, "answers", 8, 12) == []
    assert [o.key for o in find_overlong(df, tokenizer, "answers", 7, 12)] == ["max_prompt_length"]
    assert [o.key for o in find_overlong(df, tokenizer, "answers", 8, 11)] == ["max_length"]


def test_auto_through_the_chat_template(chat_tokenizer):
    short, long = [{"role": "user", "content": "1+2"}], [{"role": "user", "content": "12+34"}]
    # rendered prompts: "user:1+2assistant:" = 18 tokens, "user:12+34assistant:" = 20 (content alone: 3 and 5)
    df = pd.DataFrame({"prompt": [long, short], "answer": ["64", "3333333"]})
    _, _, lengths = _fit(df, chat_tokenizer)
    # sequences: "user:12+34assistant:64" = 22, "user:1+2assistant:3333333" = 25 (the short prompt's)
    assert lengths.values == {"max_prompt_length": 20, "max_length": 25}
    _, _, prompts_only = _fit(df, chat_tokenizer, data="prompts", new_tokens=5)
    assert prompts_only.values == {"max_prompt_length": 20, "max_length": 20 + 5}  # prompt + max_new_tokens
    assert prompts_only.longest["max_length"] == 25


def test_auto_max_length_of_pairs_is_the_longer_of_chosen_and_rejected(tokenizer):
    df = pd.DataFrame({"prompt": ["1+2=", "12+34="], "chosen": ["3", "46"], "rejected": ["44444", "4"]})
    # "1+2=" + "44444" + EOS = 10 tokens: a rejected answer sets it
    assert _fit(df, tokenizer, data="pairs")[2].values == {"max_prompt_length": 6, "max_length": 10}


def test_an_explicit_limit_is_applied_first_and_auto_measures_the_rows_kept(tokenizer):
    df = pd.DataFrame({"prompt": ["1+2=", "123+456=", "12+34="], "answer": ["3", "975", "64"]})
    out, dropped, lengths = _fit(df, tokenizer, max_length=9, drop=True)
    assert dropped == 1 and list(out["prompt"]) == ["1+2=", "12+34="]
    assert lengths.values == {"max_prompt_length": 6, "max_length": 9}  # the 8-token prompt was dropped
    assert lengths.record()["max_length"] == {"setting": 9, "value": 9, "longest": 9}
    with pytest.raises(ValueError, match=r"row 1: prompt \+ answer is 12 tokens, over max_length=9.*runs\.sft-a"
                                         r"\.max_length.*'auto'"):
        _fit(df, tokenizer, max_length=9)


def test_plain_text_is_counted_with_the_tokenizers_special_tokens_as_trl_does(tokenizer):
    """TRL tokenizes plain text with the tokenizer's own call: a tokenizer that adds a BOS makes every
    prompt and sequence a token longer, and `auto` must count it or TRL would cut the EOS."""
    from tokenizers.processors import TemplateProcessing

    with_bos = build_char_tokenizer(ALPHABET)
    with_bos.backend_tokenizer.post_processor = TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", with_bos.bos_token_id)])
    df = pd.DataFrame({"prompt": ["12+34="], "answer": ["64"]})
    assert _fit(df, tokenizer)[2].values == {"max_prompt_length": 6, "max_length": 9}
    assert _fit(df, with_bos)[2].values == {"max_prompt_length": 7, "max_length": 10}
