"""`voice-agent chat` fits a terminal and a pipe: a prompt and readable logs at a terminal,
JSON logs in a pipe, and exactly one line per reply in both."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from agent.commands.oneline import OneLine
from testing.cli import ROOT, VOICE_AGENT, chat_env, run_cli
from testing.servers.openai_server import ScriptedLLMServer, text_reply


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["One.\n\nTwo."], "One. Two."),
        (["One.", "\n", "\n", "Two.\n"], "One. Two."),
        (["- a\r\n- b\n"], "- a - b"),
        (["\nLeading"], "Leading"),
        (["Ends with a break\n\n"], "Ends with a break"),
        (["Spaced \n", " out"], "Spaced  out"),
    ],
)
def test_a_reply_becomes_one_line_however_it_is_split(deltas: list[str], expected: str) -> None:
    one_line = OneLine()
    assert "".join(one_line.feed(d) for d in deltas) == expected


@pytest.mark.timeout(60)
def test_each_reply_is_exactly_one_line_and_logs_are_json_in_a_pipe(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("First line.\nSecond line.\n"), text_reply("Plain."))
    env = chat_env(llm_server)
    del env["LOG_FORMAT"]
    result = run_cli(["chat"], env=env, stdin="one\ntwo\n", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "First line. Second line.\nPlain.\n"  # no prompt in a pipe
    for line in result.stderr.strip().splitlines():
        json.loads(line)


def _read_until(fd: int, needle: bytes, deadline_s: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + deadline_s
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {needle!r} in {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other side closed
                break
    return seen


def _chat_at_a_terminal(env: dict[str, str], *, until: bytes) -> tuple[str, str]:
    """(what the terminal showed before the first turn, what it showed for it)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [VOICE_AGENT, "chat"], stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=ROOT
    )
    os.close(terminal)
    try:
        before = _read_until(controller, b"> ")
        os.write(controller, b"hi\n")
        after = _read_until(controller, until)
        os.write(controller, b"\x04")  # end of input
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    return before.decode(), after.decode()


@pytest.mark.timeout(60)
def test_at_a_terminal_chat_prompts_and_keeps_its_replies_clean(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("Hello\nthere."))
    env = chat_env(llm_server)
    del env["LOG_FORMAT"]
    before, after = _chat_at_a_terminal(env, until=b"Hello there.\r\n> ")
    assert before.endswith("> ")
    # the reply, its newline and the next prompt, with no log line in between
    assert after == "hi\r\nHello there.\r\n> "


@pytest.mark.timeout(60)
def test_at_a_terminal_logs_are_for_people_not_json(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(text_reply("Hello\nthere."))
    env = chat_env(llm_server, LOG_LEVEL="info")
    del env["LOG_FORMAT"]
    before, after = _chat_at_a_terminal(env, until=b"turn finished")
    assert "[info     ] chat started" in before
    assert '{"event"' not in before + after  # console lines, not JSON
