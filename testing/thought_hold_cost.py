"""`python -m testing.thought_hold_cost [N]`: what `LLM_THOUGHT_HOLD` costs in time to first
word, a session's first reply and its second, held (32 characters) and not (0).

Against the scripted server with the no-tool bench's timing (first token 150 ms, 20 ms between
words); each trial is a new provider (a new session), the two holds interleaved.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from livekit.agents import llm

from agent.engine.turns import TurnEngine, TurnOptions
from providers import OpenAICompatibleProvider, ProviderOptions
from testing.servers.openai_server import ScriptedLLMServer, text_reply

REPLY = "Tokyo is nine hours ahead of London, so it is evening there now."
HOLDS = (32, 0)


async def _first_word_ms(engine: TurnEngine) -> float:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="What time is it in Tokyo?")
    started, first = time.perf_counter(), None
    turn = engine.run(ctx, [])
    async for text in turn:
        if first is None and text.strip():
            first = (time.perf_counter() - started) * 1000
    await turn.aclose()
    assert first is not None, "the reply had no words"
    return first


async def measure(trials: int) -> dict[int, tuple[list[float], list[float]]]:
    """Per hold: each session's first reply's time to first word, and its second's."""
    results: dict[int, tuple[list[float], list[float]]] = {hold: ([], []) for hold in HOLDS}
    reply = text_reply(REPLY, ttft=0.15, token_delay=0.02)
    with ScriptedLLMServer(default=reply) as server:
        for _ in range(trials):
            for hold in HOLDS:
                options = ProviderOptions(
                    model="test-model",
                    base_url=server.base_url,
                    api_key="not-needed",
                    thought_hold_chars=hold,
                )
                engine = TurnEngine(
                    OpenAICompatibleProvider(options=options),
                    TurnOptions(apology="Sorry.", fallback_reply="Sorry."),
                )
                first, second = results[hold]
                first.append(await _first_word_ms(engine))
                second.append(await _first_word_ms(engine))
    return results


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for hold, (first, second) in asyncio.run(measure(trials)).items():
        print(
            f"LLM_THOUGHT_HOLD={hold}: first reply {statistics.median(first):.0f} ms, "
            f"second reply {statistics.median(second):.0f} ms (medians of {trials})"
        )


if __name__ == "__main__":
    main()
