"""The livekit `Agent` whose `llm_node` is our turn engine (built in `agent.wiring`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence

from livekit.agents import Agent, ModelSettings, llm

from agent.engine.history import HistoryLimits, bound_history, remove_filler
from agent.engine.turns import Turn, TurnEngine
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.preemptive import current_speech


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

    @property
    def engine(self) -> TurnEngine:
        return self._engine

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        # an STT in the worker heard the whole turn again at its last pause: that one pass
        # is the user's words, not the pieces given pause by pause (agent/voice/whole_turn.py)
        stt_engine = self.session.stt
        if isinstance(stt_engine, PauseTranscriber):
            heard = stt_engine.take_turn_transcript(new_message.text_content or "")
            if heard is not None:
                new_message.content = [heard]

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
        turn = self._engine.run(bound_history(chat_ctx, self._limits), tools)
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
