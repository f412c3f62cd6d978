"""The provider boundary: URLs, presets, tool-call reassembly, errors, keys out of sight."""

from __future__ import annotations

import json
import logging

import pytest
from livekit.agents import llm

from agent.ops.logging import configure_logging, register_secrets
from agent.tools import get_current_time
from providers import (
    NOT_STREAMED,
    PRESETS,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    OpenAICompatibleProvider,
    ProviderOptions,
    StreamCutError,
    normalize_base_url,
)
from providers.tool_calls import ToolCallAccumulator
from testing.servers.openai_server import (
    Cut,
    Hang,
    Raw,
    Reply,
    ScriptedLLMServer,
    Status,
    Text,
    ToolCall,
    text_reply,
    tool_reply,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://localhost:11434", "http://localhost:11434/v1"),
        ("http://localhost:11434/", "http://localhost:11434/v1"),
        ("http://localhost:8000/v1/", "http://localhost:8000/v1"),
        ("http://localhost:8000/v1//", "http://localhost:8000/v1"),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1"),
        ("http://host:1234/v1/chat/completions", "http://host:1234/v1"),
        (" http://gpu-box:8080/openai/v1 ", "http://gpu-box:8080/openai/v1"),
    ],
)
def test_base_urls_are_normalized(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


# --- tool-call reassembly ---------------------------------------------------------


def deltas(
    acc: ToolCallAccumulator, *items: tuple[str | None, int | None, str | None, str]
) -> None:
    for id_, index, name, args in items:
        acc.add(id=id_, index=index, name=name, arguments=args)


def test_openai_style_deltas_make_two_calls() -> None:
    acc = ToolCallAccumulator()
    deltas(
        acc,
        ("a", 0, "f", '{"x"'),
        (None, 0, None, ": 1}"),
        ("b", 1, "g", "{}"),
    )
    calls = acc.finish()
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("a", "f", '{"x": 1}'),
        ("b", "g", "{}"),
    ]


def test_calls_without_ids_or_indexes_are_split_on_a_new_name_after_complete_json() -> None:
    acc = ToolCallAccumulator()
    deltas(acc, (None, None, "f", '{"x":'), (None, None, None, " 1}"), (None, None, "g", "{}"))
    calls = acc.finish()
    assert [(c.name, c.arguments) for c in calls] == [("f", '{"x": 1}'), ("g", "{}")]
    assert all(c.call_id.startswith("call_") for c in calls)
    assert calls[0].call_id != calls[1].call_id


def test_name_repeated_on_every_delta_is_one_call() -> None:
    acc = ToolCallAccumulator()
    deltas(acc, ("a", 0, "f", '{"x"'), ("a", 0, "f", ": 1}"))
    assert [(c.name, c.arguments) for c in acc.finish()] == [("f", '{"x": 1}')]


def test_interleaved_parallel_calls_are_routed_by_index() -> None:
    acc = ToolCallAccumulator()
    deltas(
        acc,
        ("a", 0, "f", '{"x"'),
        ("b", 1, "g", '{"y"'),
        (None, 0, None, ": 1}"),
        (None, 1, None, ": 2}"),
    )
    assert [c.arguments for c in acc.finish()] == ['{"x": 1}', '{"y": 2}']


def test_nameless_fragments_are_dropped_and_empty_arguments_become_an_object() -> None:
    acc = ToolCallAccumulator()
    deltas(acc, (None, 3, None, '{"orphan": 1}'), ("c", 0, "h", ""))
    assert [(c.name, c.arguments) for c in acc.finish()] == [("h", "{}")]


# --- presets and keys ---------------------------------------------------------------


def provider_for(
    server: ScriptedLLMServer, preset: str = "openai-compatible", **kw: object
) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        options=ProviderOptions(
            model="test-model",
            base_url=server.base_url,
            max_retries=0,
            timeout=1.0,
            **kw,  # type: ignore[arg-type]
        ),
        preset=PRESETS[preset],
    )


async def collect(provider: OpenAICompatibleProvider) -> str:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="hi")
    async with provider.chat(chat_ctx=ctx) as stream:
        return "".join([c.delta.content or "" async for c in stream if c.delta])


async def test_openrouter_sends_its_attribution_headers(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(text_reply("Hi."))
    await collect(provider_for(llm_server, "openrouter", api_key="or-key"))
    headers = llm_server.requests[0].headers
    assert headers["x-title"] == "voice-agent"
    assert headers["http-referer"].startswith("https://")
    assert llm_server.requests[0].body["stream_options"] == {"include_usage": True}


async def test_generic_server_is_not_sent_fields_old_servers_reject(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(text_reply("Hi."))
    await collect(provider_for(llm_server))
    body = llm_server.requests[0].body
    assert "stream_options" not in body
    assert "temperature" not in body


async def test_temperature_is_sent_when_configured(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(text_reply("Hi."))
    await collect(provider_for(llm_server, temperature=0.3))
    assert llm_server.requests[0].body["temperature"] == 0.3


async def test_thinking_tokens_are_not_streamed_as_text(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(Reply.of(Text("<think> plan the answer </think>Hello."), done=True))
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(model="m", base_url=llm_server.base_url, max_retries=0),
        preset=PRESETS["openai-compatible"].__class__(
            name="openai-compatible",
            default_base_url=None,
            quirks=PRESETS["openai-compatible"].quirks.__class__(reports_finish_reason=False),
        ),
    )
    assert (await collect(provider)).strip() == "Hello."


def test_key_is_not_in_the_provider_repr_or_options_repr() -> None:
    provider = OpenAICompatibleProvider(
        options=ProviderOptions(model="m", base_url="http://x:1/v1", api_key="sk-top-secret-42")
    )
    assert "sk-top-secret-42" not in repr(provider)
    assert "sk-top-secret-42" not in repr(provider.options)
    assert provider.base_url == "http://x:1/v1"


# --- errors are translated at the boundary --------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "retryable"),
    [
        (Reply.of(Status(503)), APIStatusError, True),
        (Reply.of(Status(429)), APIStatusError, True),
        (Reply.of(Status(401)), APIStatusError, False),
        (Reply.of(Hang()), APITimeoutError, False),  # a hang is not worth a second wait
        (Reply.of(Text("Hello"), Cut()), APIConnectionError, False),
        (Reply.of(Raw(b"data: {garbage\n\n")), APIConnectionError, True),
        (Reply.of(Text("Hello"), done=False), StreamCutError, False),
    ],
    ids=["503", "429", "401", "hang", "cut-after-text", "garbage", "no-finish"],
)
async def test_backend_failures_become_livekit_api_errors(
    llm_server: ScriptedLLMServer, reply: Reply, error: type[Exception], retryable: bool
) -> None:
    llm_server.script(reply)
    with pytest.raises(error) as raised:
        await collect(provider_for(llm_server, api_key="sk-leaky-123456"))
    assert type(raised.value) is error
    assert raised.value.retryable is retryable  # type: ignore[attr-defined]
    assert "sk-leaky-123456" not in str(raised.value)
    assert "sk-leaky-123456" not in repr(raised.value)


@pytest.mark.usefixtures("restore_logging")
async def test_registered_secrets_are_redacted_from_every_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="debug", fmt="json")
    register_secrets(["sk-redact-me-999"])
    logging.getLogger("livekit.agents").warning("bad key sk-redact-me-999 in %s", "header")
    from agent.ops.logging import get_logger

    get_logger("test").error("failed", detail={"auth": "Bearer sk-redact-me-999"})
    err = capsys.readouterr().err
    assert "sk-redact-me-999" not in err
    assert err.count("[redacted]") == 2


async def test_not_streamed_mode_gives_text_and_typed_tool_calls_from_one_request(
    llm_server: ScriptedLLMServer,
) -> None:
    llm_server.script(tool_reply(ToolCall("get_current_time", {"timezone": "UTC"}), text="Ok."))
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="time?")
    provider = provider_for(llm_server)
    chunks = []
    async with provider.chat(
        chat_ctx=ctx, tools=[get_current_time], extra_kwargs=NOT_STREAMED
    ) as stream:
        chunks = [c async for c in stream if c.delta is not None]
    await provider.aclose()
    assert len(llm_server.requests) == 1 and llm_server.requests[0].stream is False
    assert "".join(c.delta.content or "" for c in chunks if c.delta) == "Ok."
    [call] = [tc for c in chunks if c.delta for tc in c.delta.tool_calls]
    assert (call.name, json.loads(call.arguments)) == ("get_current_time", {"timezone": "UTC"})
    assert call.call_id
