"""Keeping the conversation history bounded, for chat and voice alike.

Every request resends the history, so an hour-long session must not grow it
without end. The history keeps the last `max_turns` user turns (cut only at a
user message, so a tool call is never separated from its result) plus the
instructions, through livekit's own `ChatContext.truncate`; tool results of
earlier turns are cut to `max_tool_result_chars`: the model has already spoken
about them, and a big one would otherwise ride along on every later request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from livekit.agents import llm

from agent.tools.results import clip


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryLimits:
    max_turns: int = 20
    max_tool_result_chars: int = 500


def bound_history(ctx: llm.ChatContext, limits: HistoryLimits) -> llm.ChatContext:
    """Bound `ctx` in place (and return it); call it before a turn, with the new user
    message already in, so that only earlier turns' tool results are cut."""
    items = ctx.items
    user_at = [i for i, item in enumerate(items) if _is_user(item)]
    if len(user_at) > limits.max_turns:
        first_kept = user_at[-limits.max_turns]
        ctx.truncate(max_items=len(items) - first_kept)
    for item in ctx.items:
        if isinstance(item, llm.FunctionCallOutput):
            item.output = clip(item.output, limits.max_tool_result_chars)
    return ctx


def remove_filler(ctx: llm.ChatContext, filler: str) -> bool:
    """Take `filler` out of the latest assistant message, where voice's framework recorded
    it with the words around it. Returns whether it was found."""
    filler = filler.strip()
    for item in reversed(ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "assistant":
            for i, part in enumerate(item.content):
                if isinstance(part, str) and filler in part:
                    item.content[i] = re.sub(re.escape(filler) + r"\s*", "", part, count=1).strip()
                    return True
            return False
    return False


def _is_user(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and item.role == "user"
