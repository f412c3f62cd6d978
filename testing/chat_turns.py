"""`voice-agent chat` turns against the scripted server, and what every scenario checks:
the turn ends in words, nothing internal or secret is said or logged, and the history
the next request carries is right."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from testing.cli import chat_env, run_cli
from testing.servers.openai_server import ScriptedLLMServer

APOLOGY = "Sorry, I'm having trouble answering right now. Please try again."
FOLLOW_UP = "And then?"
TOOL_TURN_THEN_NEXT = ["system", "user", "assistant", "tool", "assistant", "user"]
"""The roles of the request after a turn with one tool call: the call, its result and the
answer are all kept, then the next user message."""


def chat(
    server: ScriptedLLMServer, tmp_path: Path, lines: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    result = run_cli(
        ["chat"],
        env=chat_env(server, LOG_LEVEL="debug", **env),
        stdin="".join(f"{line}\n" for line in lines),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result


def assert_turns_end_in_words(result: subprocess.CompletedProcess[str], count: int) -> None:
    replies = result.stdout.split("\n")[:-1]
    assert len(replies) == count, result.stdout
    assert all(r.strip() for r in replies), result.stdout
    assert APOLOGY not in result.stdout


def assert_never_said_or_logged(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    for text in texts:
        assert text not in result.stdout
        assert text not in result.stderr


def assistant_messages(request_messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("content") or "" for m in request_messages if m["role"] == "assistant"]
