"""Rebuild whole tool calls from streamed deltas without trusting the server.

Real servers disagree on the details: some put `index: 0` on every parallel call,
some omit `index` or repeat `id`/`name` on every delta, some never send a
`finish_reason` of `tool_calls`, some number every call `call_0` in every response or
give two calls one id. A call is therefore identified by its `id` and `index` when the
server gives them, told apart by position when they collide (a new name after complete
arguments is a new call), and only emitted when the stream ends, with ids unique within
the response (`unique_call_ids` makes them unique across a whole history).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .base import ToolCall
from .call_ids import unique_call_ids


@dataclass(slots=True)
class _PendingCall:
    id: str | None
    index: int | None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def is_complete(self) -> bool:
        """Named, with arguments that already parse: a further name starts another call."""
        if not self.name or not self.arguments:
            return False
        try:
            json.loads("".join(self.arguments))
        except ValueError:
            return False
        return True


class ToolCallAccumulator:
    def __init__(self) -> None:
        self._calls: list[_PendingCall] = []

    def __bool__(self) -> bool:
        return bool(self._calls)

    def complete(self) -> bool:
        """Every call so far has a name and arguments that parse (or none at all)."""
        return all(c.name and (not c.arguments or c.is_complete()) for c in self._calls)

    def add(self, *, id: str | None, index: int | None, name: str | None, arguments: Any) -> None:
        call = self._route(id=id or None, index=index, name=name or None)
        if name and not call.name:
            call.name = name
        if arguments is not None and not isinstance(arguments, str):
            # some servers send the arguments as a JSON object, not a string: take them
            arguments = json.dumps(arguments)
        if arguments:
            call.arguments.append(arguments)

    def add_delta(self, delta: Any) -> None:
        """Add one tool-call delta as a server sends it (a JSON object)."""
        if not isinstance(delta, dict):
            return
        function = delta.get("function")
        function = function if isinstance(function, dict) else {}
        id_, index, name = delta.get("id"), delta.get("index"), function.get("name")
        self.add(
            id=id_ if isinstance(id_, str) else None,
            index=index if isinstance(index, int) else None,
            name=name if isinstance(name, str) else None,
            arguments=function.get("arguments"),
        )

    def finish(self) -> list[ToolCall]:
        """The completed calls, ids unique among them; calls never named are dropped."""
        named = [
            c
            for i, c in enumerate(self._calls)
            if c.name and not (c.arguments == [] and i and _same_header(self._calls[i - 1], c))
        ]
        calls = [
            ToolCall(call_id=c.id or "", name=c.name, arguments="".join(c.arguments) or "{}")
            for c in named
        ]
        self._calls = []
        return unique_call_ids(calls, taken=())

    def _route(self, *, id: str | None, index: int | None, name: str | None) -> _PendingCall:
        current = self._calls[-1] if self._calls else None
        if id is not None:
            same = [c for c in self._calls if c.id == id]
            if same:
                call = same[-1]
                if index is not None and call.index is not None and index != call.index:
                    # one id on calls the server numbers apart: the index tells them apart
                    other = next((c for c in same if c.index == index), None)
                    return other or self._start(id=id, index=index)
                if name and call.is_complete():
                    return self._start(id=id, index=index)  # a reused id: a new call
                return call
            # a new id is a new call, unless it names the call already under way
            if (
                current is not None
                and current.id is None
                and not current.name
                and (index is None or current.index in (None, index))
            ):
                current.id = id
                return current
            return self._start(id=id, index=index)
        if index is not None:
            for call in reversed(self._calls):
                if call.index == index:
                    # a server that numbers every call 0: a name after complete
                    # arguments starts the next call
                    if name and call.is_complete():
                        return self._start(id=None, index=index)
                    return call
            return self._start(id=None, index=index)
        if current is None:
            return self._start(id=None, index=None)
        if name and current.is_complete():
            return self._start(id=None, index=None)
        return current

    def _start(self, *, id: str | None, index: int | None) -> _PendingCall:
        call = _PendingCall(id=id, index=index)
        self._calls.append(call)
        return call


def _same_header(previous: _PendingCall, call: _PendingCall) -> bool:
    """`call` only repeats `previous`'s id and name (sent again after its arguments)."""
    return (previous.id, previous.name) == (call.id, call.name)
