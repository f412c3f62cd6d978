"""The tests' `voice-agent` runner (testing/cli.py): a command forked from the zygote does
what the executable does, given the same environment, directory and stdin."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testing.cli import chat_env, run_cli
from testing.servers.openai_server import ScriptedLLMServer, text_reply

pytestmark = pytest.mark.timeout(120)


def test_a_forked_chat_answers_as_the_executable_does(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("First answer."), text_reply("Second answer."))
    (tmp_path / ".env").write_text("AGENT_INSTRUCTIONS=Be brief.\n")  # read from the cwd
    env = chat_env(llm_server)
    forked = run_cli(["chat"], env=env, stdin="One\nTwo\n", cwd=tmp_path)
    llm_server.script(text_reply("First answer."), text_reply("Second answer."))
    fresh = run_cli(["chat"], env=env, stdin="One\nTwo\n", cwd=tmp_path, fresh=True)
    assert forked.returncode == fresh.returncode == 0, forked.stderr + fresh.stderr
    assert forked.stdout == fresh.stdout == "First answer.\nSecond answer.\n"
    systems = {r.messages[0]["content"] for r in llm_server.requests}
    assert systems == {"Be brief."} and len(llm_server.requests) >= 4


def test_a_forked_command_exits_with_its_status_and_a_timeout_kills_it(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    env = chat_env(llm_server, LLM_BASE_URL="http://127.0.0.1:9/v1")  # nothing listens
    failed = run_cli(["check"], env=env, cwd=tmp_path)
    assert failed.returncode == 1 and "127.0.0.1:9" in failed.stdout + failed.stderr
    llm_server.script(text_reply("Late.", ttft=30))
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli(
            ["chat"],
            env=chat_env(llm_server, LLM_TIMEOUT="60"),
            stdin="Hi\n",
            cwd=tmp_path,
            timeout=3,
        )
    # the next command gets its own answer, not the killed one's exit status
    llm_server.script(text_reply("On time."))
    after = run_cli(["chat"], env=chat_env(llm_server), stdin="Hi\n", cwd=tmp_path)
    assert (after.returncode, after.stdout) == (0, "On time.\n")
