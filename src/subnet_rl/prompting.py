"""Prompts as plain text or as conversations (TRL's conversational format), rendered one way everywhere.

Training hands conversations to TRL, which applies the tokenizer's chat template with a generation
prompt; pair sampling and evaluation call `render`, which does the same, so a model is scored on the
prompt it was trained on. Parquet stores conversations as lists of {role, content}.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Messages = list[dict[str, str]]


def is_conversation(value: Any) -> bool:
    """True for a list (or a NumPy array read back from Parquet) of {role, content} mappings."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        return False
    first = value[0]
    return isinstance(first, dict) and "role" in first and "content" in first


def as_messages(value: Any) -> Messages:
    """Plain Python messages (Parquet hands back NumPy arrays of dicts)."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def user_prompt(text: str, system_prompt: str | None = None) -> Messages:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": text}]


def assistant_reply(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def as_completion(prompt: Any, text: str) -> Any:
    """A completion in the prompt's format: a string for a plain prompt, an assistant turn for a chat one."""
    return assistant_reply(text) if is_conversation(prompt) else text


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def require_chat_template(tokenizer) -> None:
    if not has_chat_template(tokenizer):
        raise ValueError("the prompts are conversations (prompt_format: chat) but the tokenizer has no chat "
                         "template; use prompt_format: plain or a model whose tokenizer has one")


def render(tokenizer, prompt: Any) -> str:
    """The text a model continues: the chat template with a generation prompt, or the plain prompt."""
    if not is_conversation(prompt):
        return str(prompt)
    require_chat_template(tokenizer)
    return tokenizer.apply_chat_template(as_messages(prompt), add_generation_prompt=True, tokenize=False)


def render_all(tokenizer, prompts: Iterable[Any]) -> list[str]:
    return [render(tokenizer, p) for p in prompts]
