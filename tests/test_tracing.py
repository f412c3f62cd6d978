"""Traces: with an OTLP endpoint set, each turn reaches it as a span with its LLM passes
and tool calls as children, over real OTLP/HTTP to a receiver started here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit.agents import llm
from livekit.agents.llm import function_tool
from livekit.agents.telemetry import tracer
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.trace import NoOpTracerProvider

from agent.ops.tracing import configure_tracing, record_turn_spans
from testing.engine import make_engine
from testing.servers.openai_server import ScriptedLLMServer, ToolCall, text_reply, tool_reply
from testing.servers.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server
    tracer.set_provider(NoOpTracerProvider())


@function_tool
async def lookup_order(order_id: int) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return f"Order {order_id} ships tomorrow."


async def test_a_turn_with_a_tool_is_one_span_with_its_passes_and_tool_as_children(
    receiver: OtlpReceiver, llm_server: ScriptedLLMServer
) -> None:
    provider = configure_tracing(receiver.origin)
    assert provider is not None
    llm_server.script(
        tool_reply(ToolCall("lookup_order", {"order_id": 42})), text_reply("It ships tomorrow.")
    )
    engine = make_engine(llm_server)
    engine.on_turn_finished.append(record_turn_spans)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="Where is my order?")
    turn = engine.run(ctx, [lookup_order])
    assert "".join([t async for t in turn]) == "It ships tomorrow."
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()

    by_name: dict[str, list[Span]] = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    (root,) = by_name["voice_agent.turn"]
    passes = by_name["voice_agent.llm_pass"]
    (tool,) = by_name["voice_agent.tool"]
    assert [_attr(p, "voice_agent.pass_kind") for p in passes] == ["tools", "speak"]
    assert _attr(tool, "voice_agent.tool") == "lookup_order"
    assert _attr(tool, "voice_agent.outcome") == "ok"
    assert _attr(root, "voice_agent.outcome") == "answered"
    for child in [*passes, tool]:
        assert child.trace_id == root.trace_id
        assert child.parent_span_id == root.span_id
        assert root.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= root.end_time_unix_nano
    # the tool ran between the two passes
    assert passes[0].end_time_unix_nano <= tool.start_time_unix_nano
    assert tool.end_time_unix_nano <= passes[1].start_time_unix_nano


def test_no_endpoint_means_no_tracing() -> None:
    assert configure_tracing(None) is None


def _attr(span: Span, key: str) -> object:
    for kv in span.attributes:
        if kv.key == key:
            value = kv.value
            return getattr(value, value.WhichOneof("value"))
    raise KeyError(key)
