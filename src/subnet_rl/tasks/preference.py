"""Preference data: prompts with a chosen and a rejected answer, for offline algorithms (DPO).

Nothing to score and no reward: a run on it needs an evaluation dataset with a scoring task.
"""

from __future__ import annotations

from .base import Task


class Preference(Task):
    name = "preference"
    scores = False
    rewards = ()
    required_columns = ("chosen", "rejected")  # the prompt may sit inside chosen/rejected conversations


PREFERENCE = Preference()
