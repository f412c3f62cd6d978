"""A backend having a bad day: realistic latency and a share of every kind of fault.

Used by the load test (small, in CI) and `bench/load.py` (full size).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .openai_server import (
    Cut,
    Finish,
    Hang,
    Raw,
    Reply,
    Status,
    Text,
    ToolCall,
    text_reply,
    tool_reply,
)

FAULTS: dict[str, Reply] = {
    "http-500": Reply.of(Status(500)),
    "http-429": Reply.of(Status(429)),
    "hang": Reply.of(Hang()),
    "hang-mid-stream": Reply.of(Text("Well,"), Hang()),
    "cut-mid-stream": Reply.of(Text("Let me"), Cut()),
    "garbage-sse": Reply.of(Raw(b"data: {not json\n\n")),
    "empty-completion": Reply.of(Finish("stop")),
    "no-finish": Reply.of(Text("Half"), done=False),
    "tool-call-as-text": Reply.of(Text('[TOOL_CALLS][{"name": "x"}]'), Finish("stop")),
}


@dataclass
class FaultyBackend:
    """A `ScriptedLLMServer` default: answers with latency, calls tools, fails `fault_rate`."""

    fault_rate: float = 0.1
    ttft: tuple[float, float] = (0.05, 0.15)
    token_delay: float = 0.01
    tool_rate: float = 0.2
    seed: int = 7
    injected: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self, body: dict[str, Any]) -> Reply:
        rng = self._rng
        if rng.random() < self.fault_rate:
            name = rng.choice(list(FAULTS))
            self.injected[name] = self.injected.get(name, 0) + 1
            return FAULTS[name]
        wait = rng.uniform(*self.ttft)
        after_tool = any(m.get("role") == "tool" for m in body.get("messages", [])[-2:])
        may_call = body.get("tools") and body.get("tool_choice") != "none" and not after_tool
        if may_call and rng.random() < self.tool_rate:
            return tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}), ttft=wait)
        return text_reply(
            "Sure, here is a short spoken answer for you.", ttft=wait, token_delay=self.token_delay
        )

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())
