import pandas as pd
import pytest

from subnet_rl import preferences
from subnet_rl.tasks import get_task

ADDITION = get_task("addition")


def test_on_policy_pairs_choose_correct_over_lowest_reward(monkeypatch):
    samples = {
        "11+11=": ["22", "23", "x", "22"],  # correct + two wrong: rejected is the lowest-reward one ("x")
        "12+12=": ["42", "42", "42", "42"],  # all correct: no pair
        "13+13=": ["1", "2", "3", "4"],      # all wrong: no pair
    }
    monkeypatch.setattr(preferences, "generate", lambda model, tok, prompts, *a, **k: [samples[p] for p in prompts])
    train = pd.DataFrame({"prompt": list(samples), "answer": ["22", "42", "62"]})
    pairs = preferences.on_policy_pairs(None, None, train, ADDITION, "partial", samples=4, temperature=1.0, max_new_tokens=4, seed=0)
    assert pairs.to_dict("records") == [{"prompt": "11+11=", "answer": "22", "chosen": "22", "rejected": "x"}]


def test_on_policy_pairs_explain_when_none_qualify(monkeypatch):
    monkeypatch.setattr(preferences, "generate", lambda model, tok, prompts, *a, **k: [["0", "0"] for _ in prompts])
    with pytest.raises(ValueError, match="always right or always wrong"):
        preferences.on_policy_pairs(None, None, pd.DataFrame({"prompt": ["1+1="], "answer": ["2"]}),
                                    ADDITION, "partial", 2, 1.0, 4, 0)


def test_on_policy_pairs_of_chat_prompts_are_assistant_turns_judged_by_the_task(monkeypatch):
    prompt = [{"role": "user", "content": "Tom has 3 apples and buys 4. How many?"}]
    samples = ["3 + 4 = 7. #### 7", "He has 34 apples. #### 34"]
    monkeypatch.setattr(preferences, "generate", lambda model, tok, prompts, *a, **k: [samples for _ in prompts])
    train = pd.DataFrame({"prompt": [prompt], "answer": ["3 + 4 = 7\n#### 7"]})
    pairs = preferences.on_policy_pairs(None, None, train, get_task("gsm8k"), "binary", 2, 1.0, 16, 0)
    row = pairs.iloc[0]
    assert row["chosen"] == [{"role": "assistant", "content": samples[0]}]
    assert row["rejected"] == [{"role": "assistant", "content": samples[1]}]
