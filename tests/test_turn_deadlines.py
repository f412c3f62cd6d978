"""Streams without end: the first-word deadline says the filler, a backend with no output
by LLM_TIMEOUT gives way to the apology (or the next fallback, see test_server_quirks),
and the turn cap ends a turn that goes on too long. Through `voice-agent chat`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testing.chat_turns import APOLOGY, FOLLOW_UP, assistant_messages, chat
from testing.servers.openai_server import (
    Finish,
    Raw,
    Reasoning,
    Reply,
    ScriptedLLMServer,
    Sleep,
    Step,
    Text,
    text_reply,
)

pytestmark = pytest.mark.timeout(90)

FILLER = "One moment."
KEEP_ALIVE = Raw(b": OPENROUTER PROCESSING\n\n")


def ask_then_follow_up(
    llm_server: ScriptedLLMServer, tmp_path: Path, question: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Two turns through `voice-agent chat`, with no builtin tools to say anything else."""
    return chat(llm_server, tmp_path, [question, FOLLOW_UP], BUILTIN_TOOLS="false", **env)


def stalling(beat: Step, seconds: float, every: float = 0.1) -> list[Step]:
    return [s for _ in range(round(seconds / every)) for s in (beat, Sleep(every))]


@pytest.mark.parametrize(
    ("stall", "env"),
    [
        ("keep-alive comments", {}),
        # a thinking model: its thinking time gets the filler too
        ("reasoning deltas", {"LLM_THINKING": "true"}),
    ],
)
def test_a_silent_start_gets_the_filler_then_the_answer(
    stall: str, env: dict[str, str], llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    beat = KEEP_ALIVE if stall.startswith("keep") else Reasoning("hmm ")
    llm_server.script(
        Reply.of(*stalling(beat, 1.5), Text("It is four."), Finish()),
        text_reply("Then five."),
    )
    result = ask_then_follow_up(
        llm_server,
        tmp_path,
        "What is two plus two?",
        AGENT_FIRST_WORD_DEADLINE="0.3",
        LLM_TIMEOUT="20",
        **env,
    )
    assert result.stdout == f"{FILLER} It is four.\nThen five.\n"
    # the filler was said, but it is not the model's: never in the history
    assert assistant_messages(llm_server.requests[1].messages) == ["It is four."]
    assert "hmm" not in result.stdout


def test_a_backend_that_never_speaks_ends_in_filler_then_apology(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(Reply.of(*stalling(KEEP_ALIVE, 30)), text_reply("Back again."))
    result = ask_then_follow_up(
        llm_server, tmp_path, "Hi", AGENT_FIRST_WORD_DEADLINE="0.3", LLM_TIMEOUT="1.5"
    )
    # keep-alives reset each read, not the wait for the first word: the turn is not silent
    # for 30 s but gives up after LLM_TIMEOUT, and the session carries on
    assert result.stdout == f"{FILLER} {APOLOGY}\nBack again.\n"
    assert assistant_messages(llm_server.requests[-1].messages) == [APOLOGY]


def test_a_turn_past_its_cap_ends_with_the_apology(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    # words keep coming (no read ever waits long), but the turn would take 20 s
    slow = " ".join(f"w{i}" for i in range(40))
    llm_server.script(text_reply(slow, token_delay=0.5), text_reply("Back again."))
    # no hold at the start of the reply (LLM_THOUGHT_HOLD): at this pace its 32 characters
    # would take longer than the cap, and this test is about what the cap cuts
    result = ask_then_follow_up(
        llm_server,
        tmp_path,
        "Talk",
        AGENT_TURN_TIMEOUT="2",
        LLM_TIMEOUT="5",
        LLM_THOUGHT_HOLD="0",
    )
    first, second = result.stdout.split("\n")[:2]
    assert first.startswith("w0 w1") and first.endswith(APOLOGY)
    assert "w39" not in first
    assert second == "Back again."
    assert assistant_messages(llm_server.requests[-1].messages) == [first]
    assert '"error_type": "TurnTimedOut"' in result.stderr
