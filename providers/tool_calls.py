"""Rebuild whole tool calls from streamed deltas without trusting the server.

Real servers disagree on the details: some put `index: 0` on every parallel call,
some omit `index` or repeat `id`/`name` on every delta, some never send a
`finish_reason` of `tool_calls`. A call is therefore identified by its `id` when
the server gives one, by `index` otherwise, and only emitted when the stream ends.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from .base import ToolCall


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

    def add(
        self, *, id: str | None, index: int | None, name: str | None, arguments: str | None
    ) -> None:
        call = self._route(id=id or None, index=index, name=name or None)
        if name and not call.name:
            call.name = name
        if arguments:
            call.arguments.append(arguments)

    def add_delta(self, delta: Any) -> None:
        """Add one `ChoiceDeltaToolCall` (or anything shaped like it)."""
        function = getattr(delta, "function", None)
        self.add(
            id=getattr(delta, "id", None),
            index=getattr(delta, "index", None),
            name=getattr(function, "name", None),
            arguments=getattr(function, "arguments", None),
        )

    def finish(self) -> list[ToolCall]:
        """The completed calls; calls that never got a name are dropped."""
        calls = [
            ToolCall(
                call_id=c.id or f"call_{uuid.uuid4().hex[:24]}",
                name=c.name,
                arguments="".join(c.arguments) or "{}",
            )
            for c in self._calls
            if c.name
        ]
        self._calls = []
        return calls

    def _route(self, *, id: str | None, index: int | None, name: str | None) -> _PendingCall:
        current = self._calls[-1] if self._calls else None
        if id is not None:
            for call in self._calls:
                if call.id == id:
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
