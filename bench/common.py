"""What the sections share besides their protocol: the backend under test, child processes,
memory, a quiet logger, turns that time first words."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import psutil
from livekit.agents import llm
from livekit.agents.voice import io

from agent.config.settings import DEFAULT_INSTRUCTIONS
from agent.ops.logging import configure_logging
from testing.engine import make_engine, make_llm

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
REPLY = "Sure, it is a quarter past ten in the morning here, and the sun is out."

# the tests' engine and client with room for a loaded machine: a slow answer is measured,
# not failed
bench_engine = functools.partial(make_engine, timeout=30.0, tool_timeout=10.0)
bench_llm = functools.partial(make_llm, timeout=30.0)


def machine() -> str:
    """Cores, CPU model, OS and Python: where the numbers were measured."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), model)
    return (
        f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def child_env(*, drop: tuple[str, ...], **values: str) -> dict[str, str]:
    """This environment less the variables starting with `drop`, plus `values`; the
    checkout under test on the child's import path."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return kept | {"PYTHONPATH": str(ROOT), **values}


def run_module(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS...` from the repository root, in a fresh process (its own
    memory and GIL); its output is returned, its exit status is the caller's to check."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=child_env(drop=()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rss_mb(pid: int | None = None) -> float:
    """A process's resident memory (this one's by default), in MiB."""
    return float(psutil.Process(pid).memory_info().rss) / MB


def pss_mb(pid: int) -> float:
    """A process's proportional set size: its shared pages split among their sharers."""
    return float(psutil.Process(pid).memory_full_info().pss) / MB


def quiet_logging() -> None:
    """Production logging (JSON, info), written to /dev/null: its cost is part of a turn."""
    stderr = sys.stderr
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    try:
        configure_logging(level="info", fmt="json")
    finally:
        sys.stderr = stderr


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

    async def capture_text(self, text: str) -> None:
        if self.first_at is None and text.strip():
            self.first_at = time.perf_counter()

    def flush(self) -> None:
        pass


def interleaved(variants: Sequence[T], *, reps: int, warmup: int) -> Iterator[tuple[bool, T]]:
    """Each variant `warmup + reps` times, turn by turn, who goes first rotating each
    repetition (a noisy neighbour slows all alike); with whether the turn is measured."""
    for rep in range(-warmup, reps):
        k = rep % len(variants)
        for variant in [*variants[k:], *variants[:k]]:
            yield rep >= 0, variant


async def settle() -> None:
    """Let tasks a finished turn left behind (logging, stream cleanup) run before the next."""
    for _ in range(3):
        await asyncio.sleep(0)
