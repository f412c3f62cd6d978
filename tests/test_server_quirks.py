"""What real servers do to replies, through `voice-agent chat` against the scripted server.

Each scenario checks the three things a user and the next turn depend on: the turn ends
in words, nothing internal (a thought, a tool call as text) or secret is said or logged,
and the history the next request carries is right.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testing.chat_turns import (
    APOLOGY,
    FOLLOW_UP,
    TOOL_TURN_THEN_NEXT,
    assert_never_said_or_logged,
    assert_turns_end_in_words,
    assistant_messages,
    chat,
)
from testing.cli import VOICE_AGENT, chat_env, run_cli
from testing.servers.openai_server import (
    Finish,
    Raw,
    Reasoning,
    Reply,
    ScriptedLLMServer,
    Sleep,
    Status,
    Text,
    ToolCall,
    text_reply,
    tool_reply,
)

pytestmark = pytest.mark.timeout(90)

THOUGHT = "SECRET-THOUGHT the user wants"

# --- 1. reasoning is never spoken, never stored as the reply ---------------------------

REASONING_FORMS = {
    "inline think tags": (Reply.of(Text(f"<think>{THOUGHT}</think> It is four."), Finish()), {}),
    "thinking tags": (Reply.of(Text(f"<thinking>{THOUGHT}</thinking>It is four."), Finish()), {}),
    # DeepSeek-R1 / QwQ through vLLM or llama.cpp without a reasoning parser: the template
    # opened the thought, only the closing tag is streamed
    "closing tag alone": (
        Reply.of(Text(f"{THOUGHT}.\n</think>\n\nIt is four."), Finish()),
        {"LLM_MODEL": "deepseek-r1-distill-qwen-7b"},
    ),
    "closing tag alone, thinking on": (
        Reply.of(Text(f"{THOUGHT}.\n</think>\n\nIt is four."), Finish()),
        {"LLM_THINKING": "true"},
    ),
    # a server that puts finish_reason on every chunk must not flush the thought
    "misreported finish_reason": (
        Reply.of(Text(f"<think>{THOUGHT} </think>It is four.", finish_reason="stop")),
        {},
    ),
    # gpt-oss without harmony parsing
    "harmony channels": (
        Reply.of(
            Text(
                f"<|channel|>analysis<|message|>{THOUGHT}.<|end|><|start|>assistant"
                "<|channel|>final<|message|>It is four.<|return|>",
                chunk_words=2,
            ),
            Finish(),
        ),
        {},
    ),
    "reasoning_content field": (
        Reply.of(Reasoning(THOUGHT), Text("It is four."), Finish()),
        {},
    ),
    "reasoning field": (
        Reply.of(Reasoning(THOUGHT, field="reasoning"), Text("It is four."), Finish()),
        {},
    ),
}


@pytest.mark.parametrize("form", list(REASONING_FORMS))
def test_reasoning_is_never_said_nor_kept_as_the_reply(
    form: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    reply, env = REASONING_FORMS[form]
    llm_server.script(reply, text_reply("Then five."))
    result = chat(llm_server, tmp_path, ["What is two plus two?", FOLLOW_UP], **env)
    assert result.stdout == "It is four.\nThen five.\n"
    assert_never_said_or_logged(result, "SECRET-THOUGHT")
    assert assistant_messages(llm_server.requests[1].messages) == ["It is four."]


def test_a_backend_seen_thinking_in_plain_text_has_its_next_replies_held(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    # a model no hint names: its first bare `</think>` comes within the hold at the start
    # of every reply, so even the first thought is never said
    bare = Reply.of(Text(f"{THOUGHT}.\n</think>\n\nIt is four."), Finish())
    llm_server.script(bare, bare)
    result = chat(llm_server, tmp_path, ["Question", "Again"], BUILTIN_TOOLS="false")
    assert "</think>" not in result.stdout
    assert result.stdout.count("SECRET-THOUGHT") == 0
    assert result.stdout == "It is four.\nIt is four.\n"


def test_reasoning_with_a_tool_call_runs_the_tool_and_keeps_only_the_answer(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        Reply.of(
            Reasoning(THOUGHT),
            Text(f"<think>{THOUGHT}</think>"),
            ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}),
            Finish("tool_calls"),
        ),
        Reply.of(Text(f"<think>{THOUGHT}</think>It is evening in Tokyo."), Finish()),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo?", FOLLOW_UP])
    assert_turns_end_in_words(result, 2)
    assert result.stdout.startswith("It is evening in Tokyo.\n")
    assert_never_said_or_logged(result, "SECRET-THOUGHT")
    third = llm_server.requests[2].messages
    assert [m["role"] for m in third] == TOOL_TURN_THEN_NEXT
    assert "JST" in third[3]["content"]
    assert third[4]["content"] == "It is evening in Tokyo."


def test_thinking_is_switched_off_by_default_and_on_by_setting(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    chat(llm_server, tmp_path, ["Hi"])
    assert llm_server.requests[-1].body["chat_template_kwargs"] == {"enable_thinking": False}
    chat(llm_server, tmp_path, ["Hi"], LLM_THINKING="true")
    assert llm_server.requests[-1].body["chat_template_kwargs"] == {"enable_thinking": True}


def test_ollama_gets_its_own_thinking_switch(llm_server: ScriptedLLMServer, tmp_path: Path) -> None:
    chat(llm_server, tmp_path, ["Hi"], LLM_PROVIDER="ollama")
    body = llm_server.requests[-1].body
    assert body["think"] is False and body["reasoning_effort"] == "none"
    assert "chat_template_kwargs" not in body


def test_a_server_refusing_the_thinking_switch_is_answered_without_it(tmp_path: Path) -> None:
    def strict(body: dict[str, Any]) -> Reply:
        if "chat_template_kwargs" in body:
            return Reply.of(Status(400, {"error": {"message": "unknown field"}}))
        return text_reply("Fine.")

    with ScriptedLLMServer(default=strict) as server:
        result = chat(server, tmp_path, ["Hi", "Again"], BUILTIN_TOOLS="false")
        assert result.stdout == "Fine.\nFine.\n"
        # learnt: the second turn does not ask with the switch again
        assert [("chat_template_kwargs" in r.body) for r in server.requests] == [
            True,
            False,
            False,
        ]


# --- 2. tool calls that servers mangle ---------------------------------------------------


def test_two_calls_sharing_one_id_in_one_response_both_run_with_their_own_results(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        tool_reply(
            ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}, id="call_0", index=0),
            ToolCall("get_current_time", {"timezone": "Europe/Paris"}, id="call_0", index=0),
        ),
        text_reply("Evening in Tokyo, morning in Paris."),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Tokyo and Paris?", FOLLOW_UP])
    assert_turns_end_in_words(result, 2)
    third = llm_server.requests[2].messages
    calls = [c for m in third if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    results = {m["tool_call_id"]: m["content"] for m in third if m["role"] == "tool"}
    assert len(calls) == 2 and len({c["id"] for c in calls}) == 2
    by_zone = {json.loads(c["function"]["arguments"])["timezone"]: c["id"] for c in calls}
    assert "JST" in results[by_zone["Asia/Tokyo"]]
    assert "CET" in results[by_zone["Europe/Paris"]] or "CEST" in results[by_zone["Europe/Paris"]]


def test_arguments_sent_as_a_json_object_are_taken_as_they_are(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        tool_reply(
            ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}, arguments_as_object=True)
        ),
        text_reply("It is evening in Tokyo."),
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo?"])
    assert result.stdout == "It is evening in Tokyo.\n"
    tool_message = next(m for m in llm_server.requests[1].messages if m["role"] == "tool")
    assert "JST" in tool_message["content"]


@pytest.mark.parametrize("shape", ["text", "tool call"])
def test_done_without_finish_reason_after_complete_output_is_used(
    shape: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    if shape == "text":
        llm_server.script(Reply.of(Text("It is four.")), text_reply("Then five."))
    else:
        llm_server.script(
            Reply.of(ToolCall("get_current_time", {"timezone": "Asia/Tokyo"})),
            Reply.of(Text("It is four.")),
            text_reply("Then five."),
        )
    result = chat(llm_server, tmp_path, ["Question", FOLLOW_UP])
    assert result.stdout == "It is four.\nThen five.\n"
    assert assistant_messages(llm_server.requests[-1].messages)[-1] == "It is four."


def test_a_cut_tool_call_under_done_is_still_a_failure_not_a_call(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        Reply.of(ToolCall("get_current_time", '{"timezone": "Asia/To')),
        text_reply("Then five."),
    )
    result = chat(llm_server, tmp_path, ["Question", FOLLOW_UP])
    assert result.stdout == f"{APOLOGY}\nThen five.\n"
    assert all(m["role"] != "tool" for m in llm_server.requests[-1].messages)


@pytest.mark.parametrize(
    ("body", "content_type", "mode"),
    [
        ("json", None, "streamed"),  # a JSON body where a stream was asked for
        ("sse", None, "blocking"),  # a stream where a JSON body was asked for
        ("sse", "text/plain", "streamed"),  # SSE labelled as something else
        ("json", "text/plain", "blocking"),
    ],
)
def test_responses_are_read_by_what_they_are(
    body: Any, content_type: str | None, mode: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        Reply.of(
            ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}),
            Finish("tool_calls"),
            body=body,
            content_type=content_type,
        ),
        Reply.of(Text("It is evening in Tokyo."), Finish(), body=body, content_type=content_type),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo?", FOLLOW_UP], TOOL_PASS_MODE=mode)
    assert result.stdout == "It is evening in Tokyo.\nNothing more.\n"
    third = llm_server.requests[2].messages
    assert [m["role"] for m in third][-4:] == ["assistant", "tool", "assistant", "user"]


# --- 3. streams without end --------------------------------------------------------------


@pytest.mark.parametrize("stall", ["keep-alive comments", "reasoning deltas"])
def test_a_backend_that_only_stalls_gives_way_to_the_fallback(
    stall: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    beat = Raw(b": OPENROUTER PROCESSING\n\n") if stall.startswith("keep") else Reasoning("hmm ")

    llm_server.default = Reply.of(*[s for _ in range(100) for s in (beat, Sleep(0.1))])
    with ScriptedLLMServer(default=text_reply("Backup answer.")) as backup:
        fallbacks = json.dumps([{"base_url": backup.base_url, "model": "test-model"}])
        result = chat(
            llm_server,
            tmp_path,
            ["Hi", FOLLOW_UP],
            LLM_TIMEOUT="1.5",
            LLM_FALLBACKS=fallbacks,
            BUILTIN_TOOLS="false",
        )
        assert result.stdout == "Backup answer.\nBackup answer.\n"
        assert assistant_messages(backup.requests[-1].messages) == ["Backup answer."]
    assert_never_said_or_logged(result, "hmm")


# --- 4. credentials -----------------------------------------------------------------------


def test_url_userinfo_is_sent_as_basic_auth_and_never_logged(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    url = llm_server.base_url.replace("http://", "http://agent:pw-canary-7788@")
    result = chat(llm_server, tmp_path, ["Hi"], LLM_BASE_URL=url)
    assert result.stdout == "Default reply.\n"
    assert llm_server.requests[0].headers["authorization"].startswith("Basic ")
    assert_never_said_or_logged(result, "pw-canary-7788", "agent:pw")
    assert "127.0.0.1" in result.stderr  # the backend is still named, by its host


def test_with_userinfo_and_an_api_key_the_key_is_sent(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    url = llm_server.base_url.replace("http://", "http://agent:pw-canary-7788@")
    result = chat(llm_server, tmp_path, ["Hi"], LLM_BASE_URL=url, LLM_API_KEY="sk-canary-4455")
    assert llm_server.requests[0].headers["authorization"] == "Bearer sk-canary-4455"
    assert "sending the API key (Bearer), not the URL's credentials" in result.stderr
    assert_never_said_or_logged(result, "pw-canary-7788", "sk-canary-4455")


# --- 5. input and settings ---------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "utf-8:strict"])
def test_undecodable_stdin_is_replaced_and_the_chat_carries_on_and_ends(
    encoding: str | None, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(text_reply("Got it."), text_reply("Still here."))
    env = chat_env(llm_server, LC_ALL="C", LANG="C")
    env.pop("PYTHONIOENCODING", None)
    if encoding:
        env["PYTHONIOENCODING"] = encoding
    result = subprocess.run(
        [VOICE_AGENT, "chat"],
        input=b"caf\xe9 \xff please\nSecond\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Got it.\nStill here.\n"
    second = llm_server.requests[1].messages
    assert [m["content"] for m in second if m["role"] == "user"] == [
        "caf\ufffd \ufffd please",
        "Second",
    ]


@pytest.mark.parametrize("variable", ["AGENT_APOLOGY", "AGENT_FALLBACK_REPLY"])
def test_a_blank_reply_setting_is_refused_at_start_up(variable: str, tmp_path: Path) -> None:
    result = run_cli(
        ["chat"],
        env=chat_env(
            None, LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_MODEL="m", **{variable: "   "}
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"voice-agent: configuration error: {variable}: must not be empty"
    ]


def test_check_shows_no_userinfo_and_redacts_before_it_shortens(tmp_path: Path) -> None:
    key = "sk-canary-abcdefghijklmnopqrstuvwxyz"
    url_password = "pw-canary-7788"
    with ScriptedLLMServer(model="another-model") as server:
        url = server.base_url.replace("http://", f"http://agent:{url_password}@")
        # the server echoes the key in its error (as OpenAI's 401 does), placed so that
        # the line's cut falls inside it: cut first, and its prefix would survive
        head = f"llm      FAIL {server.base_url}  HTTP 401: "
        said = " Incorrect API key: "
        padding = "x" * (226 - len(head) - len(said))  # the key starts at column 226 of 240
        server.default = Reply.of(Status(401, {"error": {"message": f"{padding}{said}{key}"}}))
        result = run_cli(
            ["check"],
            env=chat_env(server, LLM_BASE_URL=url, LLM_API_KEY=key, LLM_MODEL="test-model"),
            cwd=tmp_path,
        )
    llm_line = next(line for line in result.stdout.splitlines() if line.startswith("llm "))
    assert llm_line.startswith(f"llm      FAIL {server.base_url}  HTTP 401: xxx")
    assert "sk-can" not in result.stdout
    assert_never_said_or_logged(result, url_password, "agent:")
