"""The never-silent turn engine: a tool-resolution pass, tools, then a speaking pass.

`TurnEngine.run()` returns a `Turn`: an async iterator of the words to say, as the
model produces them. Whatever happens underneath (a tool that crashes, a model
that answers with nothing, a backend that errors or hangs), the iterator ends
having said something: the model's words, the configured fallback reply, or the
configured apology. Details of a failure go to the log, never into speech.

The same engine serves voice (as the livekit `Agent.llm_node`) and text (`chat`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from livekit.agents import llm
from livekit.agents.llm.utils import execute_function_call
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from providers import NOT_STREAMED, APIError, APIStatusError, ToolCall

from .logging import get_logger
from .speech_filter import ToolCallTextFilter

log = get_logger("agent.turns")

ToolPassMode = Literal["streamed", "blocking"]
PassKind = Literal["tools", "speak", "speak-plain"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnOptions:
    apology: str
    """Said when the backend fails; never contains error details."""
    fallback_reply: str
    """Said when the model, asked twice, still produces no words."""
    tool_pass: ToolPassMode = "streamed"
    max_tool_rounds: int = 1
    """Tool-resolution passes before the speaking pass (tool_choice="none") must answer."""
    tool_timeout: float = 10.0
    filler: str = ""
    """Said once per turn when tools have not answered within `filler_delay`; "" disables."""
    filler_delay: float = 0.7


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


@dataclass(slots=True)
class ToolRun:
    name: str
    duration: float
    outcome: Literal["ok", "error", "timeout"]
    started_at: float = 0.0


@dataclass(slots=True)
class TurnStats:
    started_at: float = field(default_factory=time.perf_counter)
    first_text_at: float | None = None
    passes: list[PassStats] = field(default_factory=list)
    tools: list[ToolRun] = field(default_factory=list)
    outcome: Literal["answered", "fallback", "apology"] = "answered"

    @property
    def time_to_first_text(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.started_at


class _Filler(str):
    """Words said while tools run: spoken, but not the model's, so never part of
    `Turn.text` (what callers record as the assistant's message) or the context."""


class TurnEngine:
    def __init__(self, provider: llm.LLM[Any], options: TurnOptions) -> None:
        """`provider`: an `OpenAICompatibleProvider`, or a `FallbackAdapter` over several."""
        self._llm = provider
        self._opts = options
        self.on_turn_finished: list[Callable[[Turn], None]] = []
        """Called with each turn once it has said its last word (metrics, traces)."""

    @property
    def provider(self) -> llm.LLM[Any]:
        return self._llm

    @property
    def options(self) -> TurnOptions:
        return self._opts

    def run(
        self,
        chat_ctx: llm.ChatContext,
        tools: Sequence[llm.Tool | llm.Toolset] = (),
        *,
        turn_id: str | None = None,
    ) -> Turn:
        return Turn(self, chat_ctx, tools, turn_id=turn_id or uuid.uuid4().hex[:12])


class Turn:
    """One user turn. Iterate it for the text to speak; afterwards, `new_items` holds
    the tool calls and their results, for the caller to keep in the history."""

    def __init__(
        self,
        engine: TurnEngine,
        chat_ctx: llm.ChatContext,
        tools: Sequence[llm.Tool | llm.Toolset],
        *,
        turn_id: str,
    ) -> None:
        self._engine = engine
        self._opts = engine.options
        self._llm = engine.provider
        self._ctx = chat_ctx.copy()
        self._tool_ctx = llm.ToolContext(list(tools))
        self._tools = self._tool_ctx.flatten()
        self.id = turn_id
        self.new_items: list[llm.ChatItem] = []
        self.text = ""
        self.filler: str | None = None
        """The filler sentence, if one was said while tools ran (it is not in `text`)."""
        self.stats = TurnStats()
        self.started_at = time.time()
        """Wall clock when the turn began (livekit stamps chat items on this clock)."""
        self._log = log.bind(turn_id=turn_id, provider=self._llm.provider, model=self._llm.model)
        self._gen: AsyncIterator[str] | None = None
        self._text_in_ctx = 0  # how much of `text` the working context already holds
        self._spoken = ""  # the last text yielded, filler included: for spacing

    @property
    def tool_names(self) -> set[str]:
        """The names of the tools this turn offered the model."""
        return set(self._tool_ctx.function_tools)

    @property
    def backend(self) -> str:
        """The LLM backend's label (a name and URL, never a key)."""
        return self._llm.label

    def __aiter__(self) -> AsyncIterator[str]:
        if self._gen is None:
            self._gen = self._generate()
        return self._gen

    async def _generate(self) -> AsyncIterator[str]:
        try:
            async for text in self._resolve_and_speak():
                yield text if isinstance(text, _Filler) else self._said(text)
        except Exception as e:  # the one place a failed turn becomes words
            self._log_failure(e)
            self.stats.outcome = "apology"
            yield self._said(self._joined(self._opts.apology))
        finally:
            s = self.stats
            self._log.info(
                "turn finished",
                outcome=s.outcome,
                time_to_first_text_ms=_ms(s.time_to_first_text),
                duration_ms=_ms(time.perf_counter() - s.started_at),
                passes=len(s.passes),
                tool_calls=len(s.tools),
            )
            for hook in self._engine.on_turn_finished:
                hook(self)

    async def _resolve_and_speak(self) -> AsyncIterator[str]:
        if self._tools:
            for _ in range(self._opts.max_tool_rounds):
                calls: list[ToolCall] = []
                said_before = len(self.text)
                async for text in self._tool_pass(calls):
                    yield text
                if not calls:
                    if self.text[said_before:].strip():
                        return  # answered without tools: the common fast path
                    break
                async for filler in self._run_tools(calls):
                    yield filler
            speak_kinds: list[PassKind] = ["speak"]
        else:
            async for text in self._stream_pass("speak-plain"):
                yield text
            if self.text.strip():
                return
            speak_kinds = []

        # the speaking pass: tool_choice="none" (a server that refuses it is asked without
        # tools by the provider), then, if still no words, once more without tools
        for kind in [*speak_kinds, "speak-plain"]:
            said_before = len(self.text)
            async for text in self._stream_pass(kind):
                yield text
            if self.text[said_before:].strip():
                return
        self.stats.outcome = "fallback"
        self._log.warning("model produced no words; saying the fallback reply")
        yield self._joined(self._opts.fallback_reply)

    def _tool_pass(self, calls: list[ToolCall]) -> AsyncIterator[str]:
        # blocking: one non-streamed request, for servers whose streamed tool calls break
        blocking = self._opts.tool_pass == "blocking"
        return self._stream_pass("tools", calls=calls, blocking=blocking)

    async def _stream_pass(
        self, kind: PassKind, *, calls: list[ToolCall] | None = None, blocking: bool = False
    ) -> AsyncIterator[str]:
        """One request; text goes out as it arrives, tool calls into `calls`."""
        started = time.perf_counter()
        stats = PassStats(kind=kind, started_at=started)
        tools = self._tools if kind != "speak-plain" else None
        tool_choice: NotGivenOr[llm.ToolChoice] = "none" if kind == "speak" else NOT_GIVEN
        text_filter = ToolCallTextFilter()
        try:
            async with self._llm.chat(
                chat_ctx=self._ctx,
                tools=list(tools) if tools else None,
                tool_choice=tool_choice,
                extra_kwargs=NOT_STREAMED if blocking else NOT_GIVEN,
            ) as stream:
                async for chunk in stream:
                    if chunk.delta is None:
                        continue
                    if chunk.delta.tool_calls:
                        stats.tool_calls += len(chunk.delta.tool_calls)
                        if calls is not None:
                            calls.extend(chunk.delta.tool_calls)
                    if chunk.delta.content:
                        text = text_filter.push(chunk.delta.content)
                        if text:
                            if stats.ttft is None:
                                stats.ttft = time.perf_counter() - started
                                text = self._joined(text)
                            stats.text_chars += len(text)
                            yield text
            if tail := text_filter.flush():
                if stats.text_chars == 0:
                    tail = self._joined(tail)
                stats.text_chars += len(tail)
                yield tail
        except BaseException as e:
            stats.outcome = "cancelled" if isinstance(e, asyncio.CancelledError) else "error"
            raise
        finally:
            stats.duration = time.perf_counter() - started
            if text_filter.tripped:
                stats.outcome = "tool-call-as-text"
                self._log.warning(
                    "model wrote a tool call as text; not speaking it",
                    pass_kind=kind,
                    withheld_chars=len(text_filter.suppressed),
                )
            self._record(stats)

    async def _run_tools(self, calls: list[ToolCall]) -> AsyncIterator[str]:
        """Run `calls` at once; yields the filler (once per turn) if they are slow."""
        # text said before the tool calls belongs before them in the context
        if said := self.text[self._text_in_ctx :].strip():
            self._ctx.add_message(role="assistant", content=said)
            self._text_in_ctx = len(self.text)
        runs = asyncio.ensure_future(asyncio.gather(*(self._run_tool(call) for call in calls)))
        try:
            if self._opts.filler and self.filler is None:
                done, _ = await asyncio.wait({runs}, timeout=self._opts.filler_delay)
                if not done:
                    # slow tools: say something rather than leave the user in silence
                    self.filler = self._opts.filler
                    self._log.info("tools are slow; saying the filler", tools=len(calls))
                    filler = self._joined(self.filler)
                    self._spoken = filler
                    yield _Filler(filler)
            results = await runs
        finally:
            if not runs.done():  # the turn was abandoned (e.g. the user interrupted)
                runs.cancel()
        for fnc_call, fnc_out in results:
            self._ctx.items.extend((fnc_call, fnc_out))
            self.new_items.extend((fnc_call, fnc_out))

    async def _run_tool(self, call: ToolCall) -> tuple[llm.FunctionCall, llm.FunctionCallOutput]:
        started = time.perf_counter()
        outcome: Literal["ok", "error", "timeout"]
        try:
            # livekit's executor: unknown tool, arguments checked against the tool's
            # schema (ToolError the model can read) and a raising tool all become
            # error results instead of exceptions
            result = await asyncio.wait_for(
                execute_function_call(call, self._tool_ctx), timeout=self._opts.tool_timeout
            )
            fnc_call, fnc_out = result.fnc_call, result.fnc_call_out
            outcome = "error" if fnc_out.is_error else "ok"
        except TimeoutError:
            outcome = "timeout"
            fnc_call = llm.FunctionCall(
                call_id=call.call_id, name=call.name, arguments=call.arguments or "{}"
            )
            fnc_out = llm.FunctionCallOutput(
                call_id=call.call_id,
                name=call.name,
                output=f"The tool did not answer within {self._opts.tool_timeout:g} seconds.",
                is_error=True,
            )
        duration = time.perf_counter() - started
        self.stats.tools.append(
            ToolRun(name=call.name, duration=duration, outcome=outcome, started_at=started)
        )
        self._log.info("tool call", tool=call.name, duration_ms=_ms(duration), outcome=outcome)
        return fnc_call, fnc_out

    def _said(self, text: str) -> str:
        if self.stats.first_text_at is None:
            self.stats.first_text_at = time.perf_counter()
        # a space that only separated it from the filler is not the model's
        self.text += text if self.text else text.lstrip()
        self._spoken = text
        return text

    def _joined(self, text: str) -> str:
        """`text` separated from what was already said: passes and apologies are new
        sentences, and "see.It" reads badly in a transcript."""
        if not self._spoken or self._spoken[-1].isspace() or text[:1].isspace():
            return text
        return " " + text

    def _record(self, stats: PassStats) -> None:
        self.stats.passes.append(stats)
        self._log.info(
            "llm pass",
            pass_kind=stats.kind,
            ttft_ms=_ms(stats.ttft),
            duration_ms=_ms(stats.duration),
            text_chars=stats.text_chars,
            tool_calls=stats.tool_calls,
            outcome=stats.outcome,
        )

    def _log_failure(self, e: Exception) -> None:
        fields: dict[str, object] = {
            "error_type": type(e).__name__,
            "error": str(e),
            "backend": self._llm.label,
            "said_chars": len(self.text),
        }
        if isinstance(e, APIStatusError):
            fields["status_code"] = e.status_code
        if isinstance(e, APIError) and e.__cause__ is not None:
            fields["cause"] = f"{type(e.__cause__).__name__}: {e.__cause__}"
        if isinstance(e, APIError):
            self._log.error("turn failed; apologizing", **fields)
        else:
            self._log.exception("turn failed unexpectedly; apologizing", **fields)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
