"""Dataset sources: synthetic (default), hub loader (datasets.load_dataset on a local folder), Parquet."""

import pandas as pd
import pytest

from subnet_rl.data import COLUMNS, build_dataset, write_dataset
from subnet_rl.prompting import as_messages, is_conversation


def test_synthetic_columns_and_sizes(tmp_path):
    splits = build_dataset({"source": "synthetic", "digits": 2, "n_train": 300, "n_test": 50, "seed": 0})
    assert list(splits["train"].columns) == COLUMNS
    assert (len(splits["train"]), len(splits["test"])) == (300, 50)
    assert (splits["train"]["chosen"] == splits["train"]["answer"]).all()
    assert (splits["train"]["rejected"] != splits["train"]["answer"]).all()
    out = {"train": tmp_path / "d" / "train.parquet", "test": tmp_path / "d" / "test.parquet"}
    write_dataset(splits, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out["train"]), splits["train"])


def _source_frames():
    train = pd.DataFrame({"question": ["1+1=", "2+2="], "solution": ["2", "4"], "extra": [1, 2]})
    test = pd.DataFrame({"question": ["3+3="], "solution": ["6"], "extra": [3]})
    return train, test


def _parquet_files(tmp_path, train, test):
    files = {"train": str(tmp_path / "tr.parquet"), "test": str(tmp_path / "te.parquet")}
    train.to_parquet(files["train"])
    test.to_parquet(files["test"])
    return files


def test_hub_source_through_load_dataset_on_a_local_folder(tmp_path):
    folder = tmp_path / "hub_like"
    (folder / "data").mkdir(parents=True)
    train, test = _source_frames()
    train.to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    test.to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    splits = build_dataset({"source": "hub", "path": str(folder), "cache_dir": str(tmp_path / "cache"),
                            "task": "addition", "columns": {"prompt": "question", "answer": "solution"}})
    assert list(splits["train"]["prompt"]) == ["1+1=", "2+2="]
    # only the columns the source maps: no invented chosen/rejected, no unmapped extras
    assert list(splits["test"]["answer"]) == ["6"] and list(splits["test"].columns) == ["prompt", "answer"]


def test_parquet_source_and_missing_column_message(tmp_path):
    files = _parquet_files(tmp_path, *_source_frames())
    splits = build_dataset({"source": "parquet", "files": files, "task": "addition",
                            "columns": {"prompt": "question", "answer": "solution"}})
    assert list(splits["train"]["answer"]) == ["2", "4"] and list(splits["train"].columns) == ["prompt", "answer"]
    with pytest.raises(ValueError, match=r"needs column\(s\) \['prompt', 'answer'\].*`columns: \{prompt: <name>, "
                                         r"answer: <name>\}`"):
        build_dataset({"source": "parquet", "files": files, "task": "addition"})
    with pytest.raises(ValueError, match=r"needs column\(s\) \['answer'\].*columns:"):
        build_dataset({"source": "parquet", "files": files, "task": "gsm8k", "columns": {"prompt": "question"}})
    with pytest.raises(FileNotFoundError, match="files.train"):
        build_dataset({"source": "parquet", "task": "addition", "columns": {"prompt": "question", "answer": "solution"},
                       "files": {**files, "train": str(tmp_path / "nope.parquet")}})


def test_gsm8k_chat_prompts_with_system_prompt_survive_parquet(tmp_path):
    train = pd.DataFrame({"question": ["Tom has 3 apples and buys 4. How many?", "What is 9 times 8?"],
                          "answer": ["3 + 4 = 7\n#### 7", "9 * 8 = 72\n#### 72"]})
    test = pd.DataFrame({"question": ["What is 1,000 plus 72?"], "answer": ["#### 1,072"]})
    files = _parquet_files(tmp_path, train, test)
    splits = build_dataset({"source": "parquet", "files": files, "task": "gsm8k", "columns": {"prompt": "question"},
                            "prompt_format": "chat", "system_prompt": "Reason step by step."})
    expected = [{"role": "system", "content": "Reason step by step."},
                {"role": "user", "content": "What is 9 times 8?"}]
    assert splits["train"]["prompt"][1] == expected
    assert list(splits["train"]["answer"]) == list(train["answer"])  # the worked solution, gold read when scored

    out = {"train": tmp_path / "d" / "train.parquet", "test": tmp_path / "d" / "test.parquet"}
    write_dataset(splits, out)
    back = pd.read_parquet(out["train"])
    assert all(is_conversation(p) and not isinstance(p, str) for p in back["prompt"])
    assert as_messages(back["prompt"][1]) == expected
    assert as_messages(pd.read_parquet(out["test"])["prompt"][0])[1]["content"] == "What is 1,000 plus 72?"


def test_preference_implicit_prompt_conversations_are_split(tmp_path):
    def conversation(answer):
        return [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": answer}]

    train = pd.DataFrame({"chosen": [conversation("Blue."), conversation("Red.")],
                          "rejected": [conversation("Seven."), conversation("No.")]})
    test = pd.DataFrame({"chosen": [conversation("Green.")], "rejected": [conversation("A dog.")]})
    files = _parquet_files(tmp_path, train, test)  # read back as NumPy arrays of dicts, as from the hub
    splits = build_dataset({"source": "parquet", "files": files, "task": "preference", "prompt_format": "chat"})
    row = splits["train"].iloc[0]
    assert row["prompt"] == [{"role": "user", "content": "Name a colour."}]
    assert row["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Seven."}]
    assert splits["train"]["rejected"][1] == [{"role": "assistant", "content": "No."}]
    assert "answer" not in splits["train"].columns


def test_preference_row_with_empty_rejected_is_refused(tmp_path):
    train = pd.DataFrame({"q": ["1+1=", "2+2="], "good": ["2", "4"], "bad": ["3", "  "]})
    files = _parquet_files(tmp_path, train, train)
    with pytest.raises(ValueError, match=r"row 1 has an empty 'rejected' answer"):
        build_dataset({"source": "parquet", "files": files, "task": "preference",
                       "columns": {"prompt": "q", "chosen": "good", "rejected": "bad"}})


_USER = {"role": "user", "content": "Name a colour."}


@pytest.mark.parametrize("empty", [
    [_USER, {"role": "assistant", "content": "  "}],  # an assistant turn with no text
    [_USER],                                          # no assistant turn at all: only the shared prompt
], ids=["blank-assistant-turn", "prompt-only"])
def test_conversational_preference_row_with_empty_rejected_is_refused(tmp_path, empty):
    full = [_USER, {"role": "assistant", "content": "Blue."}]
    train = pd.DataFrame({"chosen": [full, full], "rejected": [[_USER, {"role": "assistant", "content": "7"}], empty]})
    files = _parquet_files(tmp_path, train, train)
    with pytest.raises(ValueError, match=r"row 1 has an empty 'rejected' answer"):
        build_dataset({"source": "parquet", "files": files, "task": "preference", "prompt_format": "chat"})


def test_conversations_need_prompt_format_chat(tmp_path):
    train = pd.DataFrame({"prompt": [[{"role": "user", "content": "What is 9 times 8?"}]], "answer": ["#### 72"]})
    files = _parquet_files(tmp_path, train, train)
    with pytest.raises(ValueError, match=r"column 'prompt' holds conversations; set `prompt_format: chat`"):
        build_dataset({"source": "parquet", "files": files, "task": "gsm8k"})
    splits = build_dataset({"source": "parquet", "files": files, "task": "gsm8k", "prompt_format": "chat"})
    assert splits["train"]["prompt"][0] == [{"role": "user", "content": "What is 9 times 8?"}]


def test_gsm8k_answer_without_a_number_names_the_row(tmp_path):
    train = pd.DataFrame({"prompt": ["a?", "b?", "c?"], "answer": ["#### 1", "#### 2", "I am not sure"]})
    files = _parquet_files(tmp_path, train, train)
    with pytest.raises(ValueError, match=r"tr\.parquet: row 2: gsm8k answer 'I am not sure'"):
        build_dataset({"source": "parquet", "files": files, "task": "gsm8k"})


def test_synthetic_arithmetic_in_gsm8k_format_scores_its_own_answers():
    """task: gsm8k makes one-step arithmetic: disjoint splits, the instruction in the question, a worked answer
    the gsm8k task reads back as the right number, chat prompts when asked."""
    from subnet_rl.tasks import get_task

    spec = {"source": "synthetic", "task": "gsm8k", "digits": 2, "second_digits": 1, "operations": ["+", "-"],
            "n_train": 300, "n_test": 50, "seed": 3, "prompt_format": "chat"}
    splits = build_dataset(spec, "arithmetic")
    train, test = splits["train"], splits["test"]
    assert (len(train), len(test)) == (300, 50)
    question = lambda p: p[0]["content"]  # noqa: E731
    assert not {question(p) for p in train["prompt"]} & {question(p) for p in test["prompt"]}
    task = get_task("gsm8k")
    for row in test.to_dict("records"):
        assert row["prompt"][0]["role"] == "user" and "'#### '" in question(row["prompt"])
        a, op, b = question(row["prompt"]).removeprefix("What is ").split("?")[0].split()
        value = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert value >= 0 and int(a) < 100 and int(b) < 10
        assert task.gold(row["answer"]) == str(value) and task.is_correct(row["answer"], row["answer"])
        assert not task.is_correct(f"#### {value + 1}", row["answer"])
    assert build_dataset(spec, "arithmetic")["test"].equals(test)  # the seed decides
    plain = build_dataset({**spec, "prompt_format": "plain", "operations": ["+"]}, "arithmetic")["train"]
    assert all(isinstance(p, str) and " + " in p for p in plain["prompt"])


def test_synthetic_arithmetic_refuses_more_problems_than_exist():
    # 1-digit a + b: 100 problems
    with pytest.raises(ValueError, match="number only 100; n_train \\+ n_test = 101"):
        build_dataset({"source": "synthetic", "task": "gsm8k", "digits": 1, "operations": ["+"], "n_train": 100,
                       "n_test": 1}, "small")


@pytest.mark.parametrize("spec", [
    {"task": "gsm8k", "digits": 2, "second_digits": 1, "operations": ["+", "-"]},
    {"task": "gsm8k", "digits": 1, "second_digits": 2, "operations": ["-"]},
    {"task": "gsm8k", "digits": 1, "operations": ["+"]},
])
def test_the_config_check_counts_the_generators_problems(spec):
    """The parse-time count equals the problems the generator lists, and one problem more is refused there."""
    from subnet_rl.config.checks import check_references
    from subnet_rl.tasks.arithmetic import all_problems, problem_count

    operations = tuple(spec["operations"])
    count = problem_count(spec["digits"], spec.get("second_digits", spec["digits"]), operations)
    assert count == len(all_problems(spec["digits"], spec.get("second_digits", spec["digits"]), operations))
    dataset = {"source": "synthetic", **spec, "n_train": count - 1, "n_test": 1}
    check_references({"datasets": {"arith": dataset}})
    with pytest.raises(ValueError, match=f"datasets.arith: n_train \\+ n_test = {count + 1}, and its digits give only {count}"):
        check_references({"datasets": {"arith": {**dataset, "n_test": 2}}})
