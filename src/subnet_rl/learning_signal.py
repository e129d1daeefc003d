"""Did a run learn anything, and can its accuracy be read? Its trainer log, read so a 100%-sparse run
that never had a gradient signal cannot pass for a sparse update; and its evaluations' share of
completions cut at `evaluate.max_new_tokens`, since a cut answer is scored wrong, not as what it would be.

GRPO's advantage is a reward minus its group's mean: when every completion of a group gets the same
reward the group contributes nothing, and when that holds for every group the update is exactly zero.
"""

from __future__ import annotations

import math
from typing import Any

NO_UPDATE = "no entry changed: all updates were zero"
NO_SIGNAL = "no learning signal: every group's rewards had zero variance"


def _series(log_history: list[dict[str, Any]], key: str) -> list[float]:
    return [float(entry[key]) for entry in log_history if key in entry]


def learning_signal(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean reward (RL) or loss (offline/SFT) at the first and last logging step, and for group-based RL
    the mean fraction of groups whose rewards had zero variance and of completions cut at
    `max_new_tokens` (NaN where the log has none)."""
    rewards = _series(log_history, "reward")
    values, name = (rewards, "reward") if rewards else (_series(log_history, "loss"), "loss")
    zero_std = _series(log_history, "frac_reward_zero_std")
    clipped = _series(log_history, "completions/clipped_ratio")
    return {
        "signal": name if values else "",
        "signal_start": values[0] if values else math.nan,
        "signal_end": values[-1] if values else math.nan,
        "zero_variance_groups": sum(zero_std) / len(zero_std) if zero_std else math.nan,
        "completions_clipped": sum(clipped) / len(clipped) if clipped else math.nan,
    }


def clipped_note(clipped: dict[str, float], max_share: float) -> str:
    """Which evaluations (label -> share of completions clipped) pass `max_share`, or "" (an unknown, NaN,
    share passes nothing): their accuracy counts every answer the limit cut as wrong."""
    over = [f"{label} {100.0 * share:.1f}%" for label, share in clipped.items() if share > max_share]
    if not over:
        return ""
    return (f"completions clipped at evaluate.max_new_tokens ({', '.join(over)}; over evaluate.max_clipped_share "
            f"{100.0 * max_share:g}%): answers cut by the limit count as wrong; raise max_new_tokens")


def warning(signal: dict[str, Any], exact_sparsity: float, clipped: dict[str, float] | None = None,
            max_clipped_share: float | None = None) -> str:
    """What makes a run's sparsity meaningless or its accuracy unreadable, or "" when nothing does."""
    notes = []
    if signal.get("zero_variance_groups") == 1.0:
        notes.append(NO_SIGNAL)
    if exact_sparsity >= 1.0:
        notes.append(NO_UPDATE)
    if clipped is not None and max_clipped_share is not None:
        notes.append(clipped_note(clipped, max_clipped_share))
    return "; ".join(n for n in notes if n)
