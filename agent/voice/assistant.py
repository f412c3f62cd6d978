"""The livekit `Agent` whose `llm_node` is our turn engine (built in `agent.wiring`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence

from livekit.agents import Agent, ModelSettings, llm

from agent.engine.history import HistoryLimits, bound_history, remove_filler
from agent.engine.turns import Turn, TurnEngine
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.preemptive import current_speech

HEARD_KEPT = 64
"""Turns whose one pass over the whole turn is kept (`Assistant._heard`)."""


class Assistant(Agent):
    """A livekit Agent that answers every user turn through the `TurnEngine`."""

    def __init__(
        self,
        *,
        engine: TurnEngine,
        instructions: str,
        tools: Sequence[llm.Tool | llm.Toolset] = (),
        history: HistoryLimits | None = None,
    ) -> None:
        super().__init__(instructions=instructions, tools=list(tools), llm=engine.llm)
        self._engine = engine
        self._limits = history or HistoryLimits()
        self._filler_to_remove: str | None = None
        self._heard: dict[str, str] = {}
        """An STT in the worker's last pass over each turn, by the words livekit committed
        for it: what the LLM reads in their place."""

    @property
    def engine(self) -> TurnEngine:
        return self._engine

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        # an STT in the worker heard the whole turn again at its last pause: that one pass
        # is the user's words, not the pieces given pause by pause (agent/voice/whole_turn.py).
        # The message keeps the pieces: changed here, it would no longer be the transcript
        # the preemptive reply was started on, and livekit would drop that reply and start
        # again (the LLM's first token and first clause again, on every such turn);
        # `llm_node` gives the model the pass instead, in this turn and the next ones
        committed = new_message.text_content or ""
        if (pauses := self._pause_stt()) and (heard := pauses.take_turn_transcript(committed)):
            self._heard[committed] = heard
            while len(self._heard) > HEARD_KEPT:
                del self._heard[next(iter(self._heard))]

    def as_read(self, transcript: str) -> str:
        """What the LLM reads for the committed user message `transcript`."""
        return self._heard.get(transcript, transcript)

    def _pause_stt(self) -> PauseTranscriber | None:
        try:
            stt_engine = self.session.stt
        except RuntimeError:  # not in a session (the engine's own tests)
            return None
        return stt_engine if isinstance(stt_engine, PauseTranscriber) else None

    def _as_heard(self, chat_ctx: llm.ChatContext) -> llm.ChatContext:
        """`chat_ctx` with each user message the STT heard better in one pass given as that
        pass (the turn under way too: a preemptive reply starts before it is committed)."""
        pauses = self._pause_stt()
        users = [i for i, item in enumerate(chat_ctx.items) if _is_user_message(item)]
        if not users or (not self._heard and pauses is None):
            return chat_ctx
        items = list(chat_ctx.items)
        for i in users:
            message = items[i]
            assert isinstance(message, llm.ChatMessage)
            text = message.text_content or ""
            heard = self._heard.get(text)
            if heard is None and pauses is not None and i == users[-1]:
                heard = pauses.heard_for(text)
            if heard is not None:
                items[i] = message.model_copy(update={"content": [heard]})
        return llm.ChatContext(items)

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterable[str]:
        # the framework recorded last turn's filler as part of the assistant's message:
        # it was said, but the model did not say it
        filler, self._filler_to_remove = self._filler_to_remove, None
        if filler:
            remove_filler(chat_ctx, filler)
        turn = self._engine.run(bound_history(self._as_heard(chat_ctx), self._limits), tools)
        finished = False
        try:
            async for text in turn:
                yield text
            finished = True
        finally:
            await turn.aclose()  # interrupted: its tools stop now, and say what they did
            # also when interrupted: a filler that was said must not stay the model's words
            self._filler_to_remove = turn.filler
            # an interrupted reply keeps what its tools did (a table booked while the filler
            # played); a discarded preemptive attempt was never the reply: it keeps nothing
            speech = current_speech()
            if finished or speech is None or speech.scheduled:
                await self._keep(turn, chat_ctx, filler)

    async def _keep(self, turn: Turn, chat_ctx: llm.ChatContext, filler: str | None) -> None:
        # the framework records what was said; tool calls and results are ours to keep.
        # Its message is stamped with the reply's start; ours go right after the user's
        # message, so the next request reads: user, tool call, tool result, answer
        after = next(
            (i.created_at for i in reversed(chat_ctx.items) if _is_user_message(i)),
            turn.started_at,
        )
        for n, item in enumerate(turn.new_items, start=1):
            item.created_at = after + n * 1e-6
        history = self.chat_ctx.copy()
        if filler:
            remove_filler(history, filler)
        history.insert(turn.new_items)
        # no realtime session here: this does not suspend, so it also completes while the
        # reply is being cancelled
        await self.update_chat_ctx(bound_history(history, self._limits))


def _is_user_message(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and item.role == "user"
