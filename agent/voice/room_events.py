"""What the agent tells the room besides speech: tool status and turn latency.

The talk page (and any client) reads these from one data topic, as JSON messages:

    {"type": "tool", "phase": "started", "name": "get_weather", "call_id": "..."}
    {"type": "tool", "phase": "finished", "name": "...", "call_id": "...",
     "outcome": "ok" | "error" | "timeout", "duration_ms": 412.0}
    {"type": "latency", "eos_to_first_audio_ms": 840.2, "llm_ttft_ms": 301.5, ...}

Publishing never holds up or breaks a turn: messages are sent on their own tasks, and a
failed send is logged and dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.voice import ConversationItemAddedEvent

from agent.ops.logging import get_logger

EVENTS_TOPIC = "voice-agent.events"

log = get_logger("agent.voice.room_events")

Send = Callable[[bytes], Awaitable[None]]


def room_sender(room: rtc.Room) -> Send:
    async def send(payload: bytes) -> None:
        await room.local_participant.publish_data(payload, reliable=True, topic=EVENTS_TOPIC)

    return send


class RoomEvents:
    """Publishes tool status (`tool_started`/`tool_finished`, called by the turn engine)
    and each turn's latency (from the session's own metrics) through `send`."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: set[asyncio.Task[None]] = set()

    def tool_started(self, *, call_id: str, name: str) -> None:
        self._publish({"type": "tool", "phase": "started", "name": name, "call_id": call_id})

    def tool_finished(self, *, call_id: str, name: str, outcome: str, duration: float) -> None:
        self._publish(
            {
                "type": "tool",
                "phase": "finished",
                "name": name,
                "call_id": call_id,
                "outcome": outcome,
                "duration_ms": round(duration * 1000, 1),
            }
        )

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._on_item)

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role != "assistant":
            return
        m = item.metrics
        latency = {
            "eos_to_first_audio_ms": m.get("e2e_latency"),
            "llm_ttft_ms": m.get("llm_node_ttft"),
            "tts_ttfb_ms": m.get("tts_node_ttfb"),
        }
        if any(v is not None for v in latency.values()):
            self._publish(
                {
                    "type": "latency",
                    **{k: round(v * 1000, 1) for k, v in latency.items() if v is not None},
                }
            )

    def _publish(self, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(json.dumps(message).encode()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, payload: bytes) -> None:
        try:
            await self._send(payload)
        except Exception as e:  # a client that cannot be told must not cost the turn
            log.warning("could not publish a room event", error=str(e))

    async def aclose(self) -> None:
        """Wait for what is being sent (at session end)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
