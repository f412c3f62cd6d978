"""What every benchmark shares: statistics, the backend under test, a quiet logger."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from livekit.agents import llm
from livekit.agents.voice import io

from agent.config import DEFAULT_INSTRUCTIONS
from agent.logging import configure_logging
from agent.turns import ToolPassMode, TurnEngine, TurnOptions
from providers import OpenAICompatibleProvider, ProviderOptions

APOLOGY = "Sorry, something went wrong on my side."
FALLBACK = "I have nothing to add."
REPLY = "Sure, it is a quarter past ten in the morning here, and the sun is out."


def quiet_logging() -> None:
    """Production logging (JSON, info), written to /dev/null: its cost is part of a turn."""
    stderr = sys.stderr
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    try:
        configure_logging(level="info", fmt="json")
    finally:
        sys.stderr = stderr


def make_provider(base_url: str) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        options=ProviderOptions(model="test-model", base_url=base_url, timeout=30.0, max_retries=0)
    )


def make_engine(base_url: str, tool_pass: ToolPassMode = "streamed") -> TurnEngine:
    return TurnEngine(
        make_provider(base_url),
        TurnOptions(apology=APOLOGY, fallback_reply=FALLBACK, tool_pass=tool_pass),
    )


def chat_ctx(user_text: str, *, history_turns: int = 2) -> llm.ChatContext:
    """A realistic request: the default system prompt, a little history, the user's turn."""
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content=DEFAULT_INSTRUCTIONS)
    for i in range(history_turns):
        ctx.add_message(role="user", content=f"Earlier question number {i}?")
        ctx.add_message(role="assistant", content=f"Earlier answer number {i}.")
    ctx.add_message(role="user", content=user_text)
    return ctx


class FirstTextOutput(io.TextOutput):
    """An AgentSession text sink that notes when the first words of a reply came out."""

    def __init__(self) -> None:
        super().__init__(label="bench", next_in_chain=None)
        self.first_at: float | None = None
        self.text = ""

    def arm(self) -> None:
        self.first_at = None
        self.text = ""

    async def capture_text(self, text: str) -> None:
        if self.first_at is None and text.strip():
            self.first_at = time.perf_counter()
        self.text += text

    def flush(self) -> None:
        pass


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    p50: float
    p95: float

    @staticmethod
    def of(values: Sequence[float]) -> Summary:
        return Summary(len(values), pct(values, 50), pct(values, 95))


async def settle() -> None:
    """Let tasks a finished turn left behind (logging, stream cleanup) run before the next."""
    for _ in range(3):
        await asyncio.sleep(0)
