"""Tool calls a model writes as text are recovered and run; ids that servers reuse are
made unique. Driven through `voice-agent chat` against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.chat_turns import (
    APOLOGY,
    FOLLOW_UP,
    TOOL_TURN_THEN_NEXT,
    assert_turns_end_in_words,
    chat,
)
from testing.servers.openai_server import (
    Finish,
    Reply,
    ScriptedLLMServer,
    Text,
    ToolCall,
    text_reply,
    tool_reply,
)

pytestmark = pytest.mark.timeout(90)

PREFACE = "Let me check the time for you."
ANSWER = "It is evening in Tokyo."
TOKYO = {"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}

WRITTEN_CALLS = {
    "hermes": f"<tool_call>\n{json.dumps(TOKYO)}\n</tool_call>",
    "mistral list": f"[TOOL_CALLS] [{json.dumps(TOKYO)}]",
    "mistral name args": '[TOOL_CALLS]get_current_time[ARGS]{"timezone": "Asia/Tokyo"}',
    "llama python_tag": '<|python_tag|>{"name": "get_current_time", '
    '"parameters": {"timezone": "Asia/Tokyo"}}',
    "llama function tag": '<function=get_current_time>{"timezone": "Asia/Tokyo"}</function>',
    "bare JSON": json.dumps(TOKYO),
    "json fence": f"```json\n{json.dumps(TOKYO)}\n```",
    "bare fence": f"```\n{json.dumps(TOKYO)}\n```",
    "tools wrapper": f"<tools>\n{json.dumps(TOKYO)}\n</tools>",
    "doubled braces": f"{{{json.dumps(TOKYO)}}}",
    "harmony commentary": "<|channel|>commentary to=functions.get_current_time "
    '<|constrain|>json<|message|>{"timezone": "Asia/Tokyo"}<|call|>',
}


@pytest.mark.parametrize("form", list(WRITTEN_CALLS))
def test_a_tool_call_written_after_a_preface_is_run_and_answered(
    form: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    written = WRITTEN_CALLS[form]
    # harmony opens with its channel token, so it cannot follow a spoken preface
    preface = "" if form.startswith("harmony") else PREFACE
    llm_server.script(
        Reply.of(Text(f"{preface} {written}".strip()), Finish()),
        text_reply(ANSWER),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo?", FOLLOW_UP])
    assert_turns_end_in_words(result, 2)
    assert result.stdout.split("\n")[0] == f"{preface} {ANSWER}".strip()
    assert "get_current_time" not in result.stdout and "Asia/Tokyo" not in result.stdout
    # the speaking pass was asked with the tool's result; the next turn's history holds
    # the preface, the call and its result, then the answer: never the written call
    third = llm_server.requests[2].messages
    assert [m["role"] for m in third] == TOOL_TURN_THEN_NEXT
    assert third[4]["content"] == f"{preface} {ANSWER}".strip()  # the words, as said
    call = third[2]["tool_calls"][0]
    assert call["function"]["name"] == "get_current_time"
    assert json.loads(call["function"]["arguments"]) == {"timezone": "Asia/Tokyo"}
    assert "JST" in next(m for m in third if m["role"] == "tool")["content"]
    assert all(written not in (m.get("content") or "") for m in third)


def test_bare_json_naming_an_offered_tool_is_run(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        Reply.of(Text(json.dumps(TOKYO)), Finish()), text_reply(ANSWER), text_reply("Ok.")
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo?", FOLLOW_UP])
    assert result.stdout == f"{ANSWER}\nOk.\n"
    assert (
        "JST" in next(m for m in llm_server.requests[1].messages if m["role"] == "tool")["content"]
    )


def test_a_written_call_to_a_tool_not_offered_is_neither_run_nor_said(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    unknown = json.dumps({"name": "delete_everything", "arguments": {}})
    llm_server.script(
        Reply.of(Text(f"{PREFACE} <tool_call>{unknown}</tool_call>"), Finish()),
        text_reply("I cannot do that."),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Delete everything", FOLLOW_UP])
    assert_turns_end_in_words(result, 2)
    # not left with the preface alone: the speaking pass answers, knowing the preface
    assert result.stdout == f"{PREFACE} I cannot do that.\nNothing more.\n"
    assert "delete_everything" not in result.stdout
    speaking = llm_server.requests[1]
    assert speaking.body.get("tool_choice") == "none"
    assert speaking.messages[-1] == {"role": "assistant", "content": PREFACE}
    last = llm_server.requests[-1].messages
    assert all(m["role"] != "tool" and "delete_everything" not in str(m) for m in last)


def test_ids_a_server_reuses_across_turns_stay_unique_in_the_history(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    # a server that numbers every call `call_0`, in every response
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}, id="call_0")),
        text_reply("Evening in Tokyo."),
        tool_reply(ToolCall("get_current_time", {"timezone": "Europe/Paris"}, id="call_0")),
        text_reply("Morning in Paris."),
        text_reply("That is all."),
    )
    result = chat(llm_server, tmp_path, ["Tokyo?", "Paris?", FOLLOW_UP])
    assert result.stdout == "Evening in Tokyo.\nMorning in Paris.\nThat is all.\n"
    assert APOLOGY not in result.stdout
    last = llm_server.requests[-1].messages
    calls = [c for m in last if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    outputs = [m for m in last if m["role"] == "tool"]
    assert len(calls) == 2 and len({c["id"] for c in calls}) == 2
    # each result answers its own call: Tokyo's result (JST) on Tokyo's call
    assert [o["tool_call_id"] for o in outputs] == [c["id"] for c in calls]
    assert "JST" in outputs[0]["content"] and "JST" not in outputs[1]["content"]


# what Qwen2.5-Coder-1.5B-Instruct streams through llama.cpp with its own chat template
QWEN_FENCE = f"```json\n{json.dumps(TOKYO)}\n```"
PARIS = {"name": "get_current_time", "arguments": {"timezone": "Europe/Paris"}}


@pytest.mark.parametrize(
    "content",
    [QWEN_FENCE, f"{QWEN_FENCE}\nIt is 9 pm in Tokyo.", f"```json {json.dumps(TOKYO)} ```"],
    ids=["alone", "words after", "one line"],
)
def test_a_fenced_call_is_run_and_answered_and_never_said(
    content: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(Reply.of(Text(content), Finish()), text_reply(ANSWER), text_reply("Ok."))
    result = chat(llm_server, tmp_path, ["Time in Tokyo?", FOLLOW_UP])
    assert result.stdout == f"{ANSWER}\nOk.\n"
    tool = next(m for m in llm_server.requests[1].messages if m["role"] == "tool")
    assert "JST" in tool["content"]


@pytest.mark.parametrize(
    "fenced",
    [
        f"{json.dumps(TOKYO)}\n{json.dumps(PARIS)}",
        json.dumps([TOKYO, PARIS]),
        f"{json.dumps(TOKYO)}\n```\n{{{json.dumps(PARIS)}}}\n```",
    ],
    ids=["one per line", "array", "doubled braces after the fence"],
)
def test_two_calls_in_one_fence_both_run(
    fenced: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    llm_server.script(
        Reply.of(Text(f"{PREFACE}\n```json\n{fenced}\n```"), Finish()),
        text_reply(ANSWER),
        text_reply("Ok."),
    )
    result = chat(llm_server, tmp_path, ["Time in Tokyo and Paris?", FOLLOW_UP])
    assert result.stdout == f"{PREFACE} {ANSWER}\nOk.\n"
    speaking = llm_server.requests[1].messages
    calls = [c for m in speaking if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    zones = [json.loads(c["function"]["arguments"])["timezone"] for c in calls]
    assert zones == ["Asia/Tokyo", "Europe/Paris"]
    assert len([m for m in speaking if m["role"] == "tool"]) == 2


def test_a_fenced_call_to_a_tool_not_offered_is_neither_run_nor_said(
    llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    weather = {"name": "get_current_weather", "arguments": {"location": "Tokyo"}}
    llm_server.script(
        Reply.of(Text(f"```json\n{json.dumps(weather)}\n```"), Finish()),
        text_reply("I cannot check the weather."),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Weather in Tokyo?", FOLLOW_UP])
    assert result.stdout == "I cannot check the weather.\nNothing more.\n"
    assert "get_current_weather" not in result.stdout
    assert llm_server.requests[1].body.get("tool_choice") == "none"
    last = llm_server.requests[-1].messages
    assert all(m["role"] != "tool" and "get_current_weather" not in str(m) for m in last)


@pytest.mark.parametrize(
    "written",
    [
        "```json\n{call}\n```",
        "<tools>\n{call}\n</tools>",
        "```json\n{call}\n```\n{{{call}}}",
        "Sure.\n```json\n[{call}, {call}]\n```\nThat is all.",
    ],
    ids=["fence", "tools wrapper", "fence then doubled braces", "list in a fence, words around"],
)
def test_a_written_call_to_a_tool_not_offered_in_any_form_is_neither_run_nor_said(
    written: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    weather = json.dumps({"name": "get_current_weather", "arguments": {"location": "Tokyo"}})
    llm_server.script(
        Reply.of(Text(written.format(call=weather)), Finish()),
        text_reply("I cannot check the weather."),
        text_reply("Nothing more."),
    )
    result = chat(llm_server, tmp_path, ["Weather in Tokyo?", FOLLOW_UP])
    assert_turns_end_in_words(result, 2)
    assert result.stdout.endswith("I cannot check the weather.\nNothing more.\n")
    for fragment in ("get_current_weather", "{", "`", "<", "location"):
        assert fragment not in result.stdout
    assert llm_server.requests[1].body.get("tool_choice") == "none"
    last = llm_server.requests[-1].messages
    assert all(m["role"] != "tool" and "get_current_weather" not in str(m) for m in last)


@pytest.mark.parametrize("server_id", ["aB3xY9kLm", "call_0a1b2c3d4e5f6a7b8c9d0e1f"])
def test_a_renamed_id_keeps_the_servers_form(
    server_id: str, llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    # vLLM's Mistral templates refuse a history whose ids are not nine letters and digits
    llm_server.script(
        tool_reply(ToolCall("get_current_time", {"timezone": "Asia/Tokyo"}, id=server_id)),
        text_reply("Evening in Tokyo."),
        tool_reply(ToolCall("get_current_time", {"timezone": "Europe/Paris"}, id=server_id)),
        text_reply("Morning in Paris."),
        text_reply("That is all."),
    )
    result = chat(llm_server, tmp_path, ["Tokyo?", "Paris?", FOLLOW_UP])
    assert result.stdout == "Evening in Tokyo.\nMorning in Paris.\nThat is all.\n"
    last = llm_server.requests[-1].messages
    ids = [c["id"] for m in last if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert ids[0] == server_id and ids[1] != server_id
    renamed = ids[1]
    assert len(renamed) == len(server_id) and renamed.isascii()
    if server_id.startswith("call_"):
        assert renamed.startswith("call_") and set(renamed[5:]) <= set("0123456789abcdef")
    else:
        assert renamed.isalnum()
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ids
