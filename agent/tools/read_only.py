"""Which tools change nothing, so that they may run on a guessed transcript.

The built-in clock, MCP tools annotated `readOnlyHint` and webhooks with `read_only: true` are
marked where they are built; the preemptive gate (`agent.voice.preemptive`) asks before a tool
runs on a turn that is not confirmed yet.
"""

from __future__ import annotations

import weakref
from typing import TypeVar

from livekit.agents import llm

_read_only: weakref.WeakSet[object] = weakref.WeakSet()
T = TypeVar("T", bound=llm.Tool)


def mark_read_only(tool: T) -> T:
    """Declare that running `tool` changes nothing, so it may run on a guessed transcript."""
    _read_only.add(tool)
    return tool


def is_read_only(tool: object) -> bool:
    return tool in _read_only
