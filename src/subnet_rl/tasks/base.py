"""What a task is: how to read the final answer out of a completion, and how to score it.

Every stage that scores text (the RL reward TRL calls, greedy evaluation, on-policy preference pairs,
the tables) asks the dataset's task, so a GSM8K dataset is never scored as addition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any



def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or (TRL's conversational format) the assistant messages."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m["content"]) for m in completion if m.get("role", "assistant") == "assistant")


def ends_in_marker(text: str, markers: Sequence[str]) -> bool:
    """Whether text ends with a proper, non-empty prefix of a marker: a cut that fell while the model was
    writing one ("\\box" of "\\boxed{"), so a final answer was about to follow."""
    return any(text.endswith(marker[:i]) for marker in markers for i in range(1, len(marker)))


class Task:
    """A verifiable task. Subclasses set `name` and override `gold`/`extract`/`cut_short`/`same` as needed.

    `gold` turns the dataset's answer column into the reference final answer (a GSM8K worked solution
    into its number after `####`); `extract` reads the final answer of a completion (None when there is
    none); `same` compares the two as the task defines equality.

    `clipped` marks a completion that generation stopped at its token limit, not at EOS: its last
    characters are where the cut fell, so an answer that runs into them may be a prefix of the one the
    model was writing ("#### 1" of "#### 10"). `cut_short` says, per task, when that is so; such a
    completion has no answer (scored wrong), while a clipped one whose answer is complete and followed
    by more text keeps it.
    """

    name: str = ""
    #: False for data that only ranks texts (preference pairs): nothing to score, no reward.
    scores: bool = True
    #: reward kinds this task can give; the first is the default.
    rewards: tuple[str, ...] = ("binary",)
    #: columns (after the dataset's column map) that the task needs.
    required_columns: tuple[str, ...] = ("prompt", "answer")

    def gold(self, answer: str) -> str:
        return answer.strip()

    def extract(self, completion: str) -> str | None:
        text = completion.strip()
        return text or None

    def cut_short(self, completion: str) -> bool:
        """Whether a clipped completion's answer may run into the cut. Here the answer is the whole
        completion, which the cut leaves without an end: always."""
        return True

    def answer(self, completion: str, clipped: bool = False) -> str | None:
        """The final answer as scored: `extract`, or None when the completion was clipped inside it."""
        if clipped and self.cut_short(completion):
            return None
        return self.extract(completion)

    def same(self, gold: str, extracted: str) -> bool:
        return extracted == gold

    def is_correct(self, completion: str, answer: str, clipped: bool = False) -> bool:
        extracted = self.answer(completion, clipped)
        return extracted is not None and self.same(self.gold(answer), extracted)

    def off_policy_answer(self, answer: str) -> str:
        """The reference answer as text the policy would not write (off-policy preference data): by default
        the dataset's own reference text (a human-written solution, not a sample of the model)."""
        return answer

    def partial_reward(self, completion: str, answer: str) -> float:
        raise ValueError(f"task {self.name!r} has no partial-credit reward; use reward: binary")

    def reward(self, completion: str, answer: str, kind: str, clipped: bool = False) -> float:
        """binary: 1 if correct else 0 (the paper's verifiable reward); partial: the task's partial credit,
        0 for a completion clipped inside its answer (it has none)."""
        if not self.scores:
            raise ValueError(f"task {self.name!r} scores nothing (it is for offline algorithms on chosen/rejected data)")
        if kind == "binary":
            return float(self.is_correct(completion, answer, clipped))
        if kind == "partial" and "partial" in self.rewards:
            return 0.0 if self.answer(completion, clipped) is None else self.partial_reward(completion, answer)
        raise ValueError(f"task {self.name!r} has no {kind!r} reward; it offers {list(self.rewards)}")


def reward_function(task: Task, kind: str) -> Callable[..., list[float]]:
    """The reward function TRL calls: dataset columns arrive as keyword arguments (here `answer`)."""
    if kind not in task.rewards:
        raise ValueError(f"task {task.name!r} has no {kind!r} reward; it offers {list(task.rewards)}")

    def reward(prompts: Sequence, completions: Sequence, answer: Sequence[str], **_: Any) -> list[float]:
        return [task.reward(completion_text(c), a, kind) for c, a in zip(completions, answer, strict=True)]

    reward.__name__ = f"{task.name}_{kind}"  # TRL logs rewards/<name>/mean
    return reward
