"""The task registry: every stage that scores text looks its dataset's task up here.

Adding a task is one module with a `Task` subclass and one line in `TASKS`.
"""

from __future__ import annotations

from .addition import ADDITION
from .base import Task, completion_text, reward_function
from .competition_math import MATH_TASK
from .gsm8k import GSM8K_TASK
from .preference import PREFERENCE

TASKS: dict[str, Task] = {task.name: task for task in (ADDITION, GSM8K_TASK, MATH_TASK, PREFERENCE)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None


def default_reward(task: str) -> str | None:
    """The reward a dataset gets when its config names none (addition: partial credit; others: binary)."""
    rewards = get_task(task).rewards
    return rewards[0] if rewards else None


__all__ = ["TASKS", "Task", "completion_text", "default_reward", "get_task", "reward_function"]
