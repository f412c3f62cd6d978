"""What a turn measured about itself: passes, tool runs and how it ended.

Kept apart from the engine so that the numbers (logs today, metrics and benches
tomorrow) have one definition that does not change with how a turn is driven.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

PassKind = Literal["tools", "speak", "speak-plain"]
"""`tools`: tools offered; `speak`: tools offered with tool_choice="none"; `speak-plain`:
no tools at all (a server that still answers with calls is asked this way)."""
ToolOutcome = Literal["ok", "error", "timeout", "cancelled"]
"""`cancelled`: cut off by the turn's end (an interruption, the turn's cap, a discarded
preemptive attempt) while it ran."""
TurnOutcome = Literal["answered", "fallback", "apology", "cancelled"]
"""`cancelled`: the turn was stopped before its end (the user interrupted, or livekit
discarded a preemptive attempt): whatever it said, it did not finish answering."""


@dataclass(slots=True)
class PassStats:
    kind: PassKind
    started_at: float = 0.0
    """`time.perf_counter()` when the request was sent."""
    ttft: float | None = None
    """Seconds from request to the first text delta, None if it produced none."""
    duration: float = 0.0
    text_chars: int = 0
    tool_calls: int = 0
    outcome: str = "ok"


@dataclass(frozen=True, slots=True)
class ToolRun:
    name: str
    duration: float
    outcome: ToolOutcome
    started_at: float = 0.0
    """`time.perf_counter()` when the call started."""


@dataclass(slots=True)
class TurnStats:
    started_at: float = field(default_factory=time.perf_counter)
    first_text_at: float | None = None
    passes: list[PassStats] = field(default_factory=list)
    tools: list[ToolRun] = field(default_factory=list)
    outcome: TurnOutcome = "answered"

    @property
    def time_to_first_text(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.started_at


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds for a log field (None stays None)."""
    return None if seconds is None else round(seconds * 1000, 1)
