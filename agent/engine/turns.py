"""The never-silent turn engine: a tool-resolution pass, tools, then a speaking pass.

`TurnEngine.run()` returns a `Turn`: an async iterator of the words to say, as the
model produces them. Whatever happens underneath (a tool that crashes, a model
that answers with nothing, a backend that errors or hangs), the iterator ends
having said something: the model's words, the configured fallback reply, or the
configured apology. Details of a failure go to the log, never into speech.

The same engine serves voice (as the livekit `Agent.llm_node`) and text (`chat`).
A turn still silent at the first-word deadline says the filler; one that runs past
its cap ends with the apology (`pacing`). Tool calls a model wrote as text are
recovered and run like real ones; every call gets an id no earlier call of the
session has.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from livekit.agents import llm
from livekit.agents.llm import LLM, ChatContext, Tool, Toolset
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from structlog.stdlib import BoundLogger

from agent.engine.pacing import Deadlines, TurnTimedOut, paced
from agent.engine.speech_filter import ToolCallTextFilter
from agent.engine.tool_runner import ToolBatch, ToolGate, ToolListener, ToolResult
from agent.engine.transcript import Transcript
from agent.engine.turn_stats import PassKind, PassStats, TurnStats, ms
from agent.ops.logging import get_logger
from providers import NOT_STREAMED, APIError, APIStatusError, ModelOutputRejected, ToolCall
from providers.call_ids import unique_call_ids
from providers.text_tool_calls import parse_text_tool_calls

log = get_logger("agent.engine.turns")

ToolPassMode = Literal["streamed", "blocking"]


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
    first_word_deadline: float | None = None
    """Seconds into a turn without a word before the filler is said (None: never)."""
    turn_timeout: float | None = None
    """Seconds a whole turn may take before it ends with the apology (None: no cap)."""


class TurnEngine:
    def __init__(
        self, turn_llm: LLM[Any], options: TurnOptions, *, tool_gate: ToolGate | None = None
    ) -> None:
        """`turn_llm`: an `OpenAICompatibleProvider`, or a `FallbackAdapter` over several.
        The engine uses it and does not close it: whoever built it does. `tool_gate`:
        awaited before each tool runs (agent/preemptive.py)."""
        self._llm = turn_llm
        self._opts = options
        self.tool_gate = tool_gate
        self.tool_listener: ToolListener | None = None
        """Told of each tool call's start and end (the worker sets it to tell the room)."""
        self.on_turn_finished: list[Callable[[Turn], None]] = []
        """Called with each turn once it has said its last word (metrics, traces)."""

    @property
    def llm(self) -> LLM[Any]:
        """The LLM client (a livekit `llm.LLM`) every pass of every turn goes to."""
        return self._llm

    @property
    def options(self) -> TurnOptions:
        return self._opts

    def run(
        self,
        chat_ctx: ChatContext,
        tools: Sequence[Tool | Toolset] = (),
        *,
        turn_id: str | None = None,
    ) -> Turn:
        return Turn(self, chat_ctx, tools, turn_id=turn_id or uuid.uuid4().hex[:12])


class Turn:
    """One user turn. Iterate it for the text to speak; afterwards, `text` holds the
    model's words and `new_items` the tool calls and their results, for the caller to
    keep in the history."""

    def __init__(
        self,
        engine: TurnEngine,
        chat_ctx: llm.ChatContext,
        tools: Sequence[llm.Tool | llm.Toolset],
        *,
        turn_id: str,
    ) -> None:
        self._opts = engine.options
        self._llm = engine.llm
        self._gate = engine.tool_gate
        self._tool_listener = engine.tool_listener
        self._on_finished = engine.on_turn_finished
        self._ctx = chat_ctx.copy()
        self._tool_ctx = llm.ToolContext(list(tools))
        self._tools = self._tool_ctx.flatten()
        self.id = turn_id
        self.new_items: list[llm.ChatItem] = []
        self.filler: str | None = None
        """The filler sentence, if one was said while tools ran (it is not in `text`)."""
        self.stats = TurnStats()
        self.started_at = time.time()
        """Wall clock when the turn began (livekit stamps chat items on this clock)."""
        self._transcript = Transcript()
        self._log = log.bind(turn_id=turn_id, provider=self._llm.provider, model=self._llm.model)
        self._gen: AsyncGenerator[str, None] | None = None

    @property
    def text(self) -> str:
        """The model's words (or the fallback reply or apology), without the filler."""
        return self._transcript.said

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

    async def aclose(self) -> None:
        """Stop the turn where it is (its tools are cancelled; what they did is kept in
        `new_items`). Nothing happens to a turn that ended or never started."""
        if self._gen is not None:
            await self._gen.aclose()

    async def _generate(self) -> AsyncGenerator[str, None]:
        deadlines = Deadlines(
            first_word=self._opts.first_word_deadline, turn=self._opts.turn_timeout
        )
        words = paced(
            self._resolve_and_speak(),
            deadlines,
            spoke=lambda: self.stats.first_text_at is not None,
            filler=self._say_filler,
        )
        try:
            # closed with the turn, not when collected: its tools stop (and are recorded)
            # before whoever stopped the turn reads `new_items`
            async with contextlib.aclosing(words):
                async for text in words:
                    yield text
        except (asyncio.CancelledError, GeneratorExit):
            self.stats.outcome = "cancelled"  # stopped before its end: not an answer
            raise
        except Exception as e:  # the one place a failed turn becomes words
            _log_failure(self, e)
            self.stats.outcome = "apology"
            yield self._say(self._opts.apology, new_sentence=True)
        finally:
            s = self.stats
            self._log.info(
                "turn finished",
                outcome=s.outcome,
                time_to_first_text_ms=ms(s.time_to_first_text),
                duration_ms=ms(time.perf_counter() - s.started_at),
                passes=len(s.passes),
                tool_calls=len(s.tools),
            )
            for hook in self._on_finished:
                try:
                    hook(self)
                except Exception:  # metrics or traces never cost a turn its words
                    self._log.exception("turn hook failed", hook=getattr(hook, "__name__", hook))

    async def _resolve_and_speak(self) -> AsyncGenerator[str, None]:
        speak_kinds: list[PassKind] = ["speak-plain", "speak-plain"]
        if self._tools:
            speak_kinds = ["speak", "speak-plain"]
            blocking = self._opts.tool_pass == "blocking"
            for _ in range(self._opts.max_tool_rounds):
                tool_pass = _Pass(self, "tools", blocking=blocking)
                try:
                    async for text in tool_pass:
                        yield text
                except APIError as e:
                    if not _ask_without_tools(self, e, "tools"):
                        raise
                    speak_kinds = ["speak-plain"]
                    break
                if not tool_pass.tool_calls:
                    if tool_pass.said.strip() and not tool_pass.withheld_call:
                        return  # answered without tools: the common fast path
                    # a preface before a call that could not be run is no answer: the
                    # speaking pass gives one, knowing what was already said
                    if said := self._transcript.take_unrecorded():
                        self._ctx.add_message(role="assistant", content=said)
                    break
                async with contextlib.aclosing(self._run_tools(tool_pass.tool_calls)) as run:
                    async for filler in run:  # closed with the turn: its tools stop too
                        yield filler

        # the speaking pass: tool_choice="none" (a server that refuses it is asked without
        # tools by the provider), then, if still no words, once more without tools
        for kind in speak_kinds:
            speaking = _Pass(self, kind)
            try:
                async for text in speaking:
                    yield text
            except APIError as e:
                if kind != "speak" or not _ask_without_tools(self, e, kind):
                    raise
                continue  # the parser failed on the speaking pass: the plain one answers
            if speaking.said.strip():
                return
        self.stats.outcome = "fallback"
        self._log.warning("model produced no words; saying the fallback reply")
        yield self._say(self._opts.fallback_reply, new_sentence=True)

    async def _run_tools(self, calls: list[ToolCall]) -> AsyncGenerator[str, None]:
        """Run `calls` at once; yields the filler (once per turn) if they are slow."""
        # ids unique in the whole session: servers that number every call `call_0` would
        # otherwise glue calls together in the history, or move a result onto another call
        taken = (i.call_id for i in self._ctx.items if isinstance(i, llm.FunctionCall))
        calls = unique_call_ids(calls, taken=taken)
        # text said before the tool calls belongs before them in the context
        if said := self._transcript.take_unrecorded():
            self._ctx.add_message(role="assistant", content=said)
        batch = ToolBatch(
            calls,
            self._tool_ctx,
            per_call_timeout=self._opts.tool_timeout,
            log=self._log,
            gate=self._gate,
            listener=self._tool_listener,
        )
        runs = asyncio.ensure_future(batch.run())
        try:
            if self._opts.filler and self.filler is None:
                done, _ = await asyncio.wait({runs}, timeout=self._opts.filler_delay)
                if not done and (filler := self._say_filler()):
                    # slow tools: say something rather than leave the user in silence
                    self._log.info("tools are slow; saying the filler", tools=len(calls))
                    yield filler
            results = await runs
        finally:
            if not runs.done():  # the turn was abandoned (e.g. the user interrupted)
                runs.cancel()
                # what already ran stays on record: the caller keeps it in the history
                self._keep(batch.so_far())
        self._keep(results)

    def _keep(self, results: list[ToolResult]) -> None:
        for result in results:
            self.stats.tools.append(result.run)
            self._ctx.items.extend((result.call, result.output))
            self.new_items.extend((result.call, result.output))

    def _say_filler(self) -> str | None:
        """The filler, the first time it is asked for in this turn (None after, or if
        there is none)."""
        if not self._opts.filler or self.filler is not None:
            return None
        self.filler = self._opts.filler
        return self._transcript.aside(self.filler)

    def _say(self, text: str, *, new_sentence: bool = False) -> str:
        if self.stats.first_text_at is None:
            self.stats.first_text_at = time.perf_counter()
        return self._transcript.say(text, new_sentence=new_sentence)


def _rejected(e: BaseException) -> ModelOutputRejected | None:
    """The server's rejection of the model's output behind `e`, if that is what failed:
    livekit's client (after its retries) and its FallbackAdapter raise their own
    `APIConnectionError`, chained to it or raised while handling it."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ModelOutputRejected):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _ask_without_tools(turn: Turn, e: APIError, kind: PassKind) -> bool:
    """Whether the pass failed because the server's tool parser rejected what the model
    wrote: then the words said so far go into the context, and the next pass is asked
    without tools (the model answers in words; a second failure is the apology)."""
    if (rejected := _rejected(e)) is None:
        return False
    # the server's message may echo the model: not logged
    turn._log.warning(
        "the server could not parse the model's output; asking again without tools",
        pass_kind=kind,
        status_code=rejected.status_code,
        said_chars=len(turn.text),
    )
    if said := turn._transcript.take_unrecorded():
        turn._ctx.add_message(role="assistant", content=said)
    return True


def _log_failure(turn: Turn, e: Exception) -> None:
    fields: dict[str, object] = {
        "error_type": type(e).__name__,
        "error": str(e),
        "backend": turn.backend,
        "said_chars": len(turn.text),
    }
    if isinstance(e, APIStatusError):
        fields["status_code"] = e.status_code
    if isinstance(e, APIError) and e.__cause__ is not None:
        fields["cause"] = f"{type(e.__cause__).__name__}: {e.__cause__}"
    if isinstance(e, APIError | TurnTimedOut):
        turn._log.error("turn failed; apologizing", **fields)
    else:
        turn._log.exception("turn failed unexpectedly; apologizing", **fields)


class _Pass:
    """One request to the LLM. Iterate it for the words to speak, as they arrive;
    afterwards `tool_calls` holds the calls it asked for and `said` its words."""

    def __init__(self, turn: Turn, kind: PassKind, *, blocking: bool = False) -> None:
        self._turn = turn
        self._blocking = blocking
        self._mark = turn._transcript.mark
        self.stats = PassStats(kind=kind)
        self.tool_calls: list[ToolCall] = []
        self.withheld_call = False
        """The model wrote a tool call as text (recovered into `tool_calls` or not)."""

    @property
    def said(self) -> str:
        return self._turn._transcript.said_since(self._mark)

    async def __aiter__(self) -> AsyncIterator[str]:
        turn, stats = self._turn, self.stats
        started = stats.started_at = time.perf_counter()
        tools = turn._tools if stats.kind != "speak-plain" else None
        tool_choice: NotGivenOr[llm.ToolChoice] = "none" if stats.kind == "speak" else NOT_GIVEN
        text_filter = ToolCallTextFilter()
        try:
            async with turn._llm.chat(
                chat_ctx=turn._ctx,
                tools=list(tools) if tools else None,
                tool_choice=tool_choice,
                # blocking: one non-streamed request, for servers whose streamed tool calls break
                extra_kwargs=NOT_STREAMED if self._blocking else NOT_GIVEN,
            ) as stream:
                async for chunk in stream:
                    if chunk.delta is None:
                        continue
                    self.tool_calls.extend(chunk.delta.tool_calls)
                    if chunk.delta.content and (text := text_filter.push(chunk.delta.content)):
                        if stats.ttft is None:
                            stats.ttft = time.perf_counter() - started
                        yield self._say(text)
            if tail := text_filter.flush():
                yield self._say(tail)
        except Exception:
            stats.outcome = "error"
            # words before a failure are said the same way every time, whatever the cuts;
            # an open candidate (maybe a call's start) never is: then the turn apologises
            if tail := text_filter.abandon():
                yield self._say(tail)
            raise
        except BaseException as e:
            stats.outcome = "cancelled" if isinstance(e, asyncio.CancelledError) else "error"
            raise
        finally:
            stats.duration = time.perf_counter() - started
            stats.tool_calls = len(self.tool_calls)
            if text_filter.tripped:
                self._recover(text_filter.suppressed)
            self._record(turn._log)

    def _recover(self, text: str) -> None:
        """A tool call the model wrote as text: never spoken; in a tool pass, run like
        one it had sent (the speaking pass then answers with its result)."""
        turn, stats = self._turn, self.stats
        self.withheld_call = True
        offered = turn._tool_ctx.function_tools.keys() if stats.kind == "tools" else ()
        recovered = parse_text_tool_calls(text, offered) if not self.tool_calls else []
        self.tool_calls.extend(recovered)
        stats.outcome = "tool-call-recovered" if recovered else "tool-call-as-text"
        turn._log.warning(
            "model wrote a tool call as text; not speaking it",
            pass_kind=stats.kind,
            withheld_chars=len(text),
            recovered=[c.name for c in recovered],
        )

    def _say(self, text: str) -> str:
        # a pass's first words are a new sentence after an earlier pass or the filler
        text = self._turn._say(text, new_sentence=self.stats.text_chars == 0)
        self.stats.text_chars += len(text)
        return text

    def _record(self, log: BoundLogger) -> None:
        stats = self.stats
        self._turn.stats.passes.append(stats)
        log.info(
            "llm pass",
            pass_kind=stats.kind,
            ttft_ms=ms(stats.ttft),
            duration_ms=ms(stats.duration),
            text_chars=stats.text_chars,
            tool_calls=stats.tool_calls,
            outcome=stats.outcome,
        )
