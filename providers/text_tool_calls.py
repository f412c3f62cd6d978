"""Recover tool calls that a model wrote as text instead of sending them as tool calls.

Servers without a tool parser for the model (or a model that slips) stream the call as
content, often after a spoken preface: "Let me check. <tool_call>{...}</tool_call>".
The formats models really use:

- Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (one per tag)
- Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`, and the newer
  `[TOOL_CALLS]name[ARGS]{...}`
- Llama 3.x: `<|python_tag|>{"name": ..., "parameters": {...}}` and
  `<function=name>{...}</function>`
- bare JSON: `{"name": ..., "arguments": ...}`, a list of those, or OpenAI's own
  `{"type": "function", "function": {...}}` shape

A call is only recovered when it names a tool that was offered, so JSON that merely has
a `name` key is never taken for a call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Iterator
from typing import Any

from .base import ToolCall

__all__ = ["parse_text_tool_calls"]

_MAX_CHARS = 50_000
"""Longer text is not a tool call worth scanning for."""

_FUNCTION_TAG = re.compile(r"<function=([\w.\-]+)>(.*?)(?:</function>|$)", re.S)
_MISTRAL_ARGS = re.compile(r"\[TOOL_CALLS\]\s*([\w.\-]+)\s*\[ARGS\]")
_DECODER = json.JSONDecoder()


def parse_text_tool_calls(text: str, offered: Collection[str]) -> list[ToolCall]:
    """The tool calls written in `text` that name one of `offered`, in order."""
    if not offered or len(text) > _MAX_CHARS:
        return []
    found: list[tuple[int, str, Any]] = []  # (position, name, arguments)
    # named forms first; their spans are blanked so their arguments are not read again
    # as bare JSON (arguments may well hold a "name" key)
    for pattern in (_FUNCTION_TAG, _MISTRAL_ARGS):
        for m in pattern.finditer(text):
            rest = m[2] if pattern is _FUNCTION_TAG else text[m.end() :]
            args, used = _first_json(rest)
            found.append((m.start(), m[1], args if args is not None else {}))
            end = m.end() if pattern is _FUNCTION_TAG else m.end() + used
            text = text[: m.start()] + " " * (end - m.start()) + text[end:]
    for at, value in _json_values(text):
        for item in _flat(value):
            named = _name_and_arguments(item)
            if named is not None:
                found.append((at, *named))
    calls: list[ToolCall] = []
    for _, name, args in sorted(found, key=lambda f: f[0]):
        arguments = _arguments_json(args)
        if name in offered and arguments is not None:
            calls.append(
                ToolCall(call_id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=arguments)
            )
    return calls


def _first_json(text: str) -> tuple[Any, int]:
    """The JSON value at the start of `text` (after whitespace) and where it ends."""
    start = len(text) - len(text.lstrip())
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return None, start
    return value, end


def _json_values(text: str) -> Iterator[tuple[int, Any]]:
    """Every top-level JSON object or array in `text`, with its position."""
    at = 0
    while True:
        starts = [i for i in (text.find("{", at), text.find("[", at)) if i >= 0]
        if not starts:
            return
        at = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, at)
        except ValueError:
            at += 1
            continue
        yield at, value
        at = end


def _flat(value: Any) -> list[Any]:
    """A JSON value's items, lists within lists opened (`[[{...}]]` is a list of calls)."""
    if not isinstance(value, list):
        return [value]
    return [item for inner in value for item in _flat(inner)]


def _name_and_arguments(item: Any) -> tuple[str, Any] | None:
    if not isinstance(item, dict):
        return None
    function = item.get("function")
    if isinstance(function, dict):
        item = function
    name = item.get("name")
    if not isinstance(name, str):
        return None
    for key in ("arguments", "parameters"):
        if key in item:
            return name, item[key]
    return name, {}


def _arguments_json(args: Any) -> str | None:
    """Arguments as the JSON object text a tool call carries; None if they are not one."""
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    return json.dumps(args) if isinstance(args, dict) else None
