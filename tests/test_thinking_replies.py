"""With thinking on, a server that sends its thoughts in a field of their own (a reasoning
parser) has its reply spoken as it streams: a long answer is neither held to its end nor
cut off by the wait for the first output."""

from __future__ import annotations

import asyncio
import time

import pytest
from livekit.agents import llm

from agent.engine.turns import TurnEngine, TurnOptions
from providers import OpenAICompatibleProvider, ProviderOptions
from testing.engine import APOLOGY, FALLBACK
from testing.servers.openai_server import (
    Cut,
    Finish,
    Hang,
    Reasoning,
    Reply,
    ScriptedLLMServer,
    Text,
)

ANSWER = " ".join(f"word{i}" for i in range(30)) + "."


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_a_long_answer_after_parsed_thoughts_streams_and_does_not_time_out(
    field: str, llm_server: ScriptedLLMServer
) -> None:
    # the answer takes 2.4 s to stream; the wait for the first output is 1 s
    llm_server.script(
        Reply.of(Reasoning("the user wants words", field=field), Text(ANSWER), token_delay=0.08)
    )
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(
            model="test-model",
            base_url=llm_server.base_url,
            timeout=1.0,
            max_retries=0,
            thinking=True,
        )
    )
    engine = TurnEngine(provider, TurnOptions(apology=APOLOGY, fallback_reply=FALLBACK))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Say thirty words.")
    said, first_at = "", None
    async for text in engine.run(ctx):
        first_at = first_at or time.perf_counter()
        said += text
    assert said == ANSWER
    finished_at = llm_server.requests[0].finished_at
    assert first_at is not None and finished_at is not None
    assert first_at < finished_at - 1.0  # spoken while it streamed, not held to its end
    await provider.aclose()


async def test_without_parsed_thoughts_a_thinking_backend_still_holds_its_reply(
    llm_server: ScriptedLLMServer,
) -> None:
    """The thought as plain text, closed by a bare tag: never said."""
    llm_server.script(Reply.of(Text("SECRET-THOUGHT here </think> It is four."), Finish()))
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(
            model="test-model", base_url=llm_server.base_url, max_retries=0, thinking=True
        )
    )
    engine = TurnEngine(provider, TurnOptions(apology=APOLOGY, fallback_reply=FALLBACK))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Two plus two?")
    said = "".join([t async for t in engine.run(ctx)])
    assert said.strip() == "It is four."
    await provider.aclose()


@pytest.mark.parametrize("model", ["test-model", "gpt-4o-mini", "llama-3.3-70b"])
async def test_a_bare_closing_tag_from_a_model_of_any_name_is_never_said_the_first_time(
    model: str, llm_server: ScriptedLLMServer
) -> None:
    """A thought opened in the prompt, closed by a bare tag within the hold at the start of
    the reply: not said even the first time; then the backend is known to think."""
    thought = "SECRET-THOUGHT: four."
    llm_server.script(
        Reply.of(Text(f"{thought}\n</think>\n\nIt is four."), Finish()),
        Reply.of(
            Text(f"{thought} And it is long enough to pass the hold. </think> Four."), Finish()
        ),
    )
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(model=model, base_url=llm_server.base_url, max_retries=0)
    )
    engine = TurnEngine(provider, TurnOptions(apology=APOLOGY, fallback_reply=FALLBACK))
    for expected in ("It is four.", "Four."):
        ctx = llm.ChatContext()
        ctx.add_message(role="user", content="Two plus two?")
        said = "".join([t async for t in engine.run(ctx)])
        assert said.strip() == expected
        assert "SECRET-THOUGHT" not in said and "think>" not in said
    await provider.aclose()


async def test_once_a_reply_began_as_a_reply_later_replies_are_not_held(
    llm_server: ScriptedLLMServer,
) -> None:
    """The hold costs the first reply only: a backend whose whole held start was a reply
    answers plainly, and its next reply's first words go out before the reply ends."""
    first = "It is four, as it always was and always will be."
    llm_server.script(
        Reply.of(Text(first), Finish()),
        Reply.of(Text("Yes."), Hang()),
    )
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(model="test-model", base_url=llm_server.base_url, max_retries=0)
    )
    engine = TurnEngine(provider, TurnOptions(apology=APOLOGY, fallback_reply=FALLBACK))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Two plus two?")
    assert "".join([t async for t in engine.run(ctx)]).strip() == first
    # "Yes." is shorter than the hold and the stream never ends: only an unheld start
    # lets it out
    turn = aiter(engine.run(ctx))
    assert (await asyncio.wait_for(anext(turn), timeout=30)).strip() == "Yes."
    await turn.aclose()  # type: ignore[attr-defined]
    await provider.aclose()


@pytest.mark.parametrize("fault", ["hang", "cut", "ends without finish"])
@pytest.mark.parametrize("model", ["test-model", "deepseek-r1"])
async def test_a_thought_cut_off_by_a_failure_is_never_said(
    fault: str, model: str, llm_server: ScriptedLLMServer
) -> None:
    """A backend held until its closing tag fails before the tag (a thought longer than
    the wait for output, a cut stream): what was held is a thought, not the reply."""
    steps = {"hang": [Hang()], "cut": [Cut()], "ends without finish": []}[fault]
    thought = Text("SECRET-THOUGHT: the user wants four, I should say", chunk_words=10_000)
    llm_server.script(Reply.of(thought, *steps, done=fault != "ends without finish"))
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(
            model=model, base_url=llm_server.base_url, timeout=1.0, max_retries=0, thinking=True
        )
    )
    engine = TurnEngine(provider, TurnOptions(apology=APOLOGY, fallback_reply=FALLBACK))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Two plus two?")
    said = "".join([t async for t in engine.run(ctx)])
    assert said.strip() == APOLOGY
    await provider.aclose()
