"""A request too long for the model's context, told apart from a refused field, and shortened.

vLLM, OpenAI and llama.cpp answer a prompt longer than the context with a 400, as they
answer fields they refuse. Dropping the tool schemas often makes the same request fit, so
the two must not be confused: a server that overflowed once does not refuse tools. An
overflow is answered by asking again with less history, tools kept: first the older half
of the earlier turns goes (whole turns: a tool call stays with its result), then, when
only the current turn is left, its longest tool result is cut in half.
"""

from __future__ import annotations

import re
from typing import Any

from .base import APIStatusError

__all__ = ["is_context_overflow", "server_message", "shorter"]

_OVERFLOW = re.compile(
    r"context[ _-]?(length|size|window)|maximum context|exceed_context|prompt is too long"
    r"|too many (input )?tokens|input is too long|max_new_tokens. must be"
    r"|reduce the length of the (messages|prompt)",
    re.I,
)
_SHORTEST_CUT = 500
"""A tool result is never cut below this many characters."""
CUT_NOTE = " [...cut: too long for the model's context]"


def server_message(error: APIStatusError) -> str:
    """What the server said about the error: its JSON body's message, type and code (or
    the body as it came)."""
    body = error.body
    if not isinstance(body, dict):
        return "" if body is None else str(body)
    inner = body.get("error")
    holder = inner if isinstance(inner, dict) else body
    said = [v for k in ("message", "detail", "type", "code") if isinstance(v := holder.get(k), str)]
    if isinstance(inner, str):
        said.insert(0, inner)
    return " ".join(said) or str(body)


def is_context_overflow(error: APIStatusError) -> bool:
    return bool(_OVERFLOW.search(server_message(error)))


def shorter(request: dict[str, Any]) -> dict[str, Any] | None:
    """`request` with less history (see the module docstring); None if nothing is left to
    cut."""
    messages: list[dict[str, Any]] = list(request.get("messages") or [])
    head = 0
    while head < len(messages) and messages[head].get("role") in ("system", "developer"):
        head += 1
    turns = [i for i in range(head, len(messages)) if messages[i].get("role") == "user"]
    if len(turns) > 1:
        # keep the newer half of the earlier turns, and the current one
        earlier = turns[:-1]
        keep_from = earlier[len(earlier) // 2] if len(earlier) > 1 else turns[-1]
        return {**request, "messages": messages[:head] + messages[keep_from:]}
    if turns and turns[0] > head:  # an opening greeting before the only user message
        return {**request, "messages": messages[:head] + messages[turns[0] :]}
    longest = max(
        (i for i, m in enumerate(messages) if m.get("role") == "tool"),
        key=lambda i: len(_text(messages[i])),
        default=None,
    )
    if longest is None:
        return None
    text = _text(messages[longest]).removesuffix(CUT_NOTE)
    if len(text) <= _SHORTEST_CUT:
        return None
    cut = {**messages[longest], "content": text[: max(_SHORTEST_CUT, len(text) // 2)] + CUT_NOTE}
    return {**request, "messages": [*messages[:longest], cut, *messages[longest + 1 :]]}


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""
