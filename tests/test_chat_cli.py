"""`voice-agent chat` as a user runs it: a subprocess, stdin in, streamed stdout out."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from testing.chat_turns import TOOL_TURN_THEN_NEXT
from testing.cli import VOICE_AGENT, chat_env, chat_ok, run_cli
from testing.servers.openai_server import (
    Reply,
    ScriptedLLMServer,
    Status,
    ToolCall,
    text_reply,
    tool_reply,
)


def log_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_each_line_is_a_turn_and_each_reply_ends_with_a_newline(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("Hello there."), text_reply("Bye now."))
    result = chat_ok(chat_env(llm_server), cwd=tmp_path, stdin="Hi\n\nBye\n")
    assert result.stdout == "Hello there.\nBye now.\n"
    assert len(llm_server.requests) == 2  # the blank line is not a turn


def test_history_carries_tool_calls_and_results_into_the_next_turn(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "Asia/Tokyo"})),
        text_reply("It is evening in Tokyo."),
        text_reply("You asked about Tokyo."),
    )
    result = run_cli(
        ["chat"],
        env=chat_env(llm_server),
        stdin="What time is it in Tokyo?\nWhat did I ask?\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "It is evening in Tokyo.\nYou asked about Tokyo.\n"
    third = llm_server.requests[2].messages
    assert [m["role"] for m in third] == TOOL_TURN_THEN_NEXT
    assert third[2]["tool_calls"][0]["function"]["name"] == "get_current_time"
    assert "JST" in third[3]["content"]
    assert third[4]["content"] == "It is evening in Tokyo."
    assert third[5]["content"] == "What did I ask?"


def test_reply_is_streamed_to_stdout_before_it_is_complete(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("one two three four five six seven eight", token_delay=0.25))
    proc = subprocess.Popen(
        [VOICE_AGENT, "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=chat_env(llm_server),
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"Count please\n")
    proc.stdin.flush()
    first = proc.stdout.read(4)  # blocks until the first delta is flushed
    first_at = time.perf_counter()
    proc.stdin.close()
    rest = proc.stdout.read()
    done_at = time.perf_counter()
    assert proc.wait(timeout=30) == 0
    assert (first + rest).decode() == "one two three four five six seven eight\n"
    # seven more chunks 250 ms apart were still to come when "one " arrived
    assert done_at - first_at > 1.0


def test_logs_go_to_stderr_as_json_with_turn_context(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("Hi."))
    result = chat_ok(chat_env(llm_server), cwd=tmp_path)
    lines = log_lines(result.stderr)
    passes = [line for line in lines if line["event"] == "llm pass"]
    assert passes, result.stderr
    for line in passes:
        assert {"session_id", "turn_id", "provider", "model", "ttft_ms", "duration_ms"} <= set(line)
        assert line["model"] == "test-model"
        assert line["provider"] == "openai-compatible"


def test_backend_failure_is_an_apology_on_stdout_and_details_on_stderr(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(Reply.of(Status(502)))
    secret = "sk-canary-7f3a9c1e"
    env = chat_env(llm_server, LLM_API_KEY=secret, AGENT_APOLOGY="Sorry, try again.")
    result = chat_ok(env, cwd=tmp_path)  # a failed turn is not a failed command
    assert result.stdout == "Sorry, try again.\n"
    failure = next(
        line for line in log_lines(result.stderr) if line["event"].startswith("turn failed")
    )
    assert failure["status_code"] == 502
    assert failure["backend"] == f"openai-compatible:test-model@{llm_server.base_url}"
    assert secret not in result.stdout + result.stderr
    # the key did reach the server, as a bearer token
    assert llm_server.requests[0].headers["authorization"] == f"Bearer {secret}"


def test_unauthenticated_server_gets_the_placeholder_key(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("Hi."))
    chat_ok(chat_env(llm_server), cwd=tmp_path)
    assert llm_server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_base_url_without_v1_and_with_trailing_slash_is_normalized(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("Hi."))
    env = chat_env(llm_server, LLM_BASE_URL=f"http://127.0.0.1:{llm_server.port}/")
    result = chat_ok(env, cwd=tmp_path)
    assert result.stdout == "Hi.\n"
    assert llm_server.requests[0].path == "/v1/chat/completions"


def test_instructions_file_becomes_the_system_message(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    (tmp_path / "prompt.txt").write_text("You are Ada, a terse butler.\n")
    llm_server.script(text_reply("Yes."))
    env = chat_env(llm_server, AGENT_INSTRUCTIONS_FILE=str(tmp_path / "prompt.txt"))
    chat_ok(env, cwd=tmp_path)
    assert llm_server.requests[0].messages[0] == {
        "role": "system",
        "content": "You are Ada, a terse butler.",
    }


def test_env_file_in_the_working_directory_is_read(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"LLM_BASE_URL={llm_server.base_url}\nLLM_MODEL=from-dotenv\n")
    llm_server.script(text_reply("Hi."))
    env = chat_env()
    chat_ok(env, cwd=tmp_path)
    assert llm_server.requests[0].body["model"] == "from-dotenv"


def test_builtin_tools_can_be_turned_off(llm_server: ScriptedLLMServer, tmp_path: Path) -> None:
    llm_server.script(text_reply("Hi."), text_reply("Hi."))
    for env in (chat_env(llm_server), chat_env(llm_server, BUILTIN_TOOLS="false")):
        chat_ok(env, cwd=tmp_path)
    assert llm_server.requests[0].tool_names == ["get_current_time"]
    assert llm_server.requests[1].tool_names == []


def test_blocking_mode_from_env(llm_server: ScriptedLLMServer, tmp_path: Path) -> None:
    llm_server.script(text_reply("Hi."))
    env = chat_env(llm_server, TOOL_PASS_MODE="blocking")
    result = chat_ok(env, cwd=tmp_path)
    assert result.stdout == "Hi.\n"
    assert llm_server.requests[0].stream is False
