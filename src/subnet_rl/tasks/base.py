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


class Task:
    """A verifiable task. Subclasses set `name` and override `gold`/`extract`/`is_correct` as needed.

    `gold` turns the dataset's answer column into the reference final answer (a GSM8K worked solution
    into its number after `####`); `extract` reads the final answer of a completion (None when there is
    none); `is_correct` compares the two as the task defines equality.
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

    def is_correct(self, completion: str, answer: str) -> bool:
        extracted = self.extract(completion)
        return extracted is not None and extracted == self.gold(answer)

    def off_policy_answer(self, answer: str) -> str:
        """The reference answer as text the policy would not write (off-policy preference data): by default
        the dataset's own reference text (a human-written solution, not a sample of the model)."""
        return answer

    def partial_reward(self, completion: str, answer: str) -> float:
        raise ValueError(f"task {self.name!r} has no partial-credit reward; use reward: binary")

    def reward(self, completion: str, answer: str, kind: str) -> float:
        """binary: 1 if correct else 0 (the paper's verifiable reward); partial: the task's partial credit."""
        if not self.scores:
            raise ValueError(f"task {self.name!r} scores nothing (it is for offline algorithms on chosen/rejected data)")
        if kind == "binary":
            return float(self.is_correct(completion, answer))
        if kind == "partial" and "partial" in self.rewards:
            return self.partial_reward(completion, answer)
        raise ValueError(f"task {self.name!r} has no {kind!r} reward; it offers {list(self.rewards)}")


def reward_function(task: Task, kind: str) -> Callable[..., list[float]]:
    """The reward function TRL calls: dataset columns arrive as keyword arguments (here `answer`)."""
    if kind not in task.rewards:
        raise ValueError(f"task {task.name!r} has no {kind!r} reward; it offers {list(task.rewards)}")

    def reward(prompts: Sequence, completions: Sequence, answer: Sequence[str], **_: Any) -> list[float]:
        return [task.reward(completion_text(c), a, kind) for c, a in zip(completions, answer, strict=True)]

    reward.__name__ = f"{task.name}_{kind}"  # TRL logs rewards/<name>/mean
    return reward
