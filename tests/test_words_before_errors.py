"""Words a model streamed before the backend failed are handled one way, every time: they
are said, then the apology. Not by timing, not by where the deltas were cut, not by what
was being held back (the start of a reply) when the failure came; a possible tool call
still open when it came is never said, not even in part."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from livekit.agents import llm

from agent.tools import get_current_time
from testing.engine import APOLOGY, make_engine
from testing.servers.openai_server import Cut, Hang, Raw, Reply, ScriptedLLMServer, Step, Text

pytestmark = pytest.mark.timeout(120)

WORDS = "Partial words then"
ERROR_EVENT = Raw(b'data: {"error": {"message": "CUDA out of memory", "code": 500}}\n\n')
FAULTS: dict[str, tuple[list[Step], bool]] = {
    # the fault's steps, and whether [DONE] follows
    "cut": ([Cut()], True),
    "error event": ([ERROR_EVENT], True),
    "ends without finish": ([], False),
    "hang": ([Hang()], True),
}
# words, and words that end in what the filters hold back (a possible tool call, a
# possible tag): the words are said, an open candidate (maybe a call's start) never is
TEXTS = [WORDS, f"{WORDS} and more words, long enough to pass the start of a reply", "Costs {"]
SAID = {"Costs {": "Costs"}
"""What is said of a text cut off by a failure, where it is not the whole text."""


def case_reply(case: int) -> Reply:
    """Case `case`: one text, cut into deltas at its own points, then one fault."""
    rng = random.Random(case)
    text = TEXTS[case % len(TEXTS)]
    fault, done = FAULTS[list(FAULTS)[case // len(TEXTS) % len(FAULTS)]]
    points = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, min(6, len(text) - 1))))
    deltas = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    steps: list[Step] = [Text(d, chunk_words=10_000) for d in deltas]
    return Reply.of(*steps, *fault, done=done)


def by_case(body: dict[str, Any]) -> Reply:
    user = next(m for m in reversed(body["messages"]) if m["role"] == "user")
    return case_reply(int(json.loads(user["content"])["case"]))


@pytest.mark.parametrize("with_tools", [True, False], ids=["tools", "no-tools"])
async def test_words_before_a_failure_are_said_then_the_apology_every_time_under_load(
    with_tools: bool,
) -> None:
    cases = list(range(len(TEXTS) * len(FAULTS) * 4))  # every text and fault, 4 cuts each
    with ScriptedLLMServer(default=by_case, record=False) as server:
        # the hang is ended by the client's wait for output (5 s: the others are not)
        engine = make_engine(server, timeout=5.0)

        async def turn(case: int) -> str:
            ctx = llm.ChatContext()
            ctx.add_message(role="user", content=json.dumps({"case": case}))
            tools = [get_current_time] if with_tools else []
            return "".join([t async for t in engine.run(ctx, tools)])

        try:
            for _ in range(2):  # twice: the same words both times
                said = await asyncio.gather(*(turn(c) for c in cases))
                for case, words in zip(cases, said, strict=True):
                    text = TEXTS[case % len(TEXTS)]
                    expected = SAID.get(text, text)
                    assert words == f"{expected} {APOLOGY}", (
                        case,
                        case_reply(case),
                    )
        finally:
            await engine.llm.aclose()
