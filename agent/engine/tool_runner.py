"""Running the tool calls of one pass: all at once, each under its own timeout.

livekit's `execute_function_call` does the hard part: an unknown tool, arguments
that fail the tool's schema and a tool that raises all become error results the
model can read. What is added here is the timeout (a hung webhook must not hang the
turn) and a record of each run for logs and metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from livekit.agents import llm
from livekit.agents.llm.utils import execute_function_call
from structlog.stdlib import BoundLogger

from agent.engine.turn_stats import ToolOutcome, ToolRun, ms
from providers import ToolCall


class ToolGate(Protocol):
    async def wait(self, name: str, tool: object | None) -> None:
        """Returns when the tool may run; raises to keep it from running."""


class ToolListener(Protocol):
    """Told when each tool call starts and ends (the worker tells the room: `room_events`)."""

    def tool_started(self, *, call_id: str, name: str) -> None: ...

    def tool_finished(self, *, call_id: str, name: str, outcome: str, duration: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ToolResult:
    call: llm.FunctionCall
    output: llm.FunctionCallOutput
    run: ToolRun


async def run_tool_calls(
    calls: Sequence[ToolCall],
    tool_ctx: llm.ToolContext,
    *,
    per_call_timeout: float,
    log: BoundLogger,
    gate: ToolGate | None = None,
    listener: ToolListener | None = None,
) -> list[ToolResult]:
    """Run `calls` concurrently; results in the order of `calls`. Each waits for `gate`
    first (outside its timeout)."""
    runs = (_run(call, tool_ctx, per_call_timeout, log, gate, listener) for call in calls)
    return list(await asyncio.gather(*runs))


async def _run(
    call: ToolCall,
    tool_ctx: llm.ToolContext,
    limit: float,
    log: BoundLogger,
    gate: ToolGate | None,
    listener: ToolListener | None,
) -> ToolResult:
    if gate is not None:
        await gate.wait(call.name, tool_ctx.function_tools.get(call.name))
    started = time.perf_counter()
    if listener is not None:
        listener.tool_started(call_id=call.call_id, name=call.name)
    outcome: ToolOutcome
    try:
        executed = await asyncio.wait_for(execute_function_call(call, tool_ctx), timeout=limit)
        fnc_call, fnc_out = executed.fnc_call, executed.fnc_call_out
        outcome = "error" if fnc_out.is_error else "ok"
    except TimeoutError:
        outcome = "timeout"
        fnc_call = llm.FunctionCall(
            call_id=call.call_id, name=call.name, arguments=call.arguments or "{}"
        )
        fnc_out = llm.FunctionCallOutput(
            call_id=call.call_id,
            name=call.name,
            output=f"The tool did not answer within {limit:g} seconds.",
            is_error=True,
        )
    run = ToolRun(
        name=call.name,
        duration=time.perf_counter() - started,
        outcome=outcome,
        started_at=started,
    )
    log.info("tool call", tool=call.name, duration_ms=ms(run.duration), outcome=outcome)
    if listener is not None:
        listener.tool_finished(
            call_id=call.call_id, name=call.name, outcome=outcome, duration=run.duration
        )
    return ToolResult(call=fnc_call, output=fnc_out, run=run)
