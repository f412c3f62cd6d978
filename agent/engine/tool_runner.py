"""Running the tool calls of one pass: all at once, each under its own timeout.

livekit's `execute_function_call` does the hard part: an unknown tool, arguments
that fail the tool's schema and a tool that raises all become error results the
model can read. What is added here is the timeout (a hung webhook must not hang the
turn), a record of each run for logs and metrics, and what is left when the turn is
cut off while tools run: the listener hears they ended, and the calls that had started
keep a result that says they were interrupted (their effect may have happened).
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


INTERRUPTED = "The tool was interrupted before it answered; it may have done its work."
"""The result kept for a call cut off while it ran: the model must not assume either way."""


class ToolBatch:
    """The calls of one pass, run concurrently; each waits for `gate` first (outside its
    timeout). Cut off (the turn was stopped), `so_far()` still says what ran."""

    def __init__(
        self,
        calls: Sequence[ToolCall],
        tool_ctx: llm.ToolContext,
        *,
        per_call_timeout: float,
        log: BoundLogger,
        gate: ToolGate | None = None,
        listener: ToolListener | None = None,
    ) -> None:
        self._calls = list(calls)
        self._ctx = tool_ctx
        self._limit = per_call_timeout
        self._log = log
        self._gate = gate
        self._listener = listener
        self._started: dict[int, float] = {}
        self._results: dict[int, ToolResult] = {}

    async def run(self) -> list[ToolResult]:
        """Every call's result, in the order of the calls."""
        await asyncio.gather(*(self._run(i) for i in range(len(self._calls))))
        return self.so_far()

    def so_far(self) -> list[ToolResult]:
        """In call order: the results of the calls that finished, and for each call that
        started and did not (its effect may have happened), a result that says so. Calls
        still waiting for the gate never ran: nothing."""
        results = []
        for i in range(len(self._calls)):
            if i in self._results:
                results.append(self._results[i])
            elif i in self._started:
                results.append(self._cut_off(i))
        return results

    async def _run(self, i: int) -> None:
        call, listener = self._calls[i], self._listener
        if self._gate is not None:
            await self._gate.wait(call.name, self._ctx.function_tools.get(call.name))
        started = self._started[i] = time.perf_counter()
        if listener is not None:
            listener.tool_started(call_id=call.call_id, name=call.name)
        outcome: ToolOutcome
        try:
            executed = await asyncio.wait_for(
                execute_function_call(call, self._ctx), timeout=self._limit
            )
            fnc_call, fnc_out = executed.fnc_call, executed.fnc_call_out
            outcome = "error" if fnc_out.is_error else "ok"
        except TimeoutError:
            outcome = "timeout"
            fnc_call, fnc_out = _call_and_error(
                call, f"The tool did not answer within {self._limit:g} seconds."
            )
        except asyncio.CancelledError:
            # the page shows the tool as running until it hears that it ended
            self._report(self._cut_off(i).run, call)
            raise
        result = ToolResult(
            call=fnc_call,
            output=fnc_out,
            run=ToolRun(
                name=call.name,
                duration=time.perf_counter() - started,
                outcome=outcome,
                started_at=started,
            ),
        )
        self._results[i] = result
        self._report(result.run, call)

    def _cut_off(self, i: int) -> ToolResult:
        call, started = self._calls[i], self._started[i]
        fnc_call, fnc_out = _call_and_error(call, INTERRUPTED)
        run = ToolRun(
            name=call.name,
            duration=time.perf_counter() - started,
            outcome="cancelled",
            started_at=started,
        )
        return ToolResult(call=fnc_call, output=fnc_out, run=run)

    def _report(self, run: ToolRun, call: ToolCall) -> None:
        self._log.info(
            "tool call", tool=call.name, duration_ms=ms(run.duration), outcome=run.outcome
        )
        if self._listener is not None:
            self._listener.tool_finished(
                call_id=call.call_id, name=call.name, outcome=run.outcome, duration=run.duration
            )


def _call_and_error(call: ToolCall, output: str) -> tuple[llm.FunctionCall, llm.FunctionCallOutput]:
    return (
        llm.FunctionCall(call_id=call.call_id, name=call.name, arguments=call.arguments or "{}"),
        llm.FunctionCallOutput(call_id=call.call_id, name=call.name, output=output, is_error=True),
    )
