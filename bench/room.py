"""Section: latency as a participant hears it, in a real LiveKit room."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from testing.audio_io import espeak_to_wav
from testing.room import Backends, Stack, VoiceWorker
from testing.servers.livekit_real import LiveKitServer, LiveKitServerMissing, pinned_version
from testing.servers.openai_server import ScriptedLLMServer, text_reply
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

from .sections import Context, cells, summary, table
from .voice_session import waited

NAME = "room"
TITLE = "Latency as heard: a participant in a real LiveKit room"
QUESTION = "What time is it in Tokyo?"
ANSWER = "It is nine in the evening in Tokyo. The sun set a few hours ago."
LABELS = {  # key in results.json: the row in the report
    "eos_to_first_audio_heard_ms": "end of speech -> first agent audio heard",
    "agent_reported_ms": "agent's own eos_to_first_audio_ms",
}


@dataclass(frozen=True, slots=True)
class RoomTurn:
    heard_ms: float  # end of the participant's speech -> the first agent audio it heard
    agent_ms: float | None  # the agent's own eos_to_first_audio_ms (None: no message came)


@dataclass
class RoomResult:
    turns: list[RoomTurn] = field(default_factory=list)
    skipped: str | None = None
    ttft_ms: float = 0.0

    def series(self) -> dict[str, list[float]]:
        return {
            "eos_to_first_audio_heard_ms": [t.heard_ms for t in self.turns],
            "agent_reported_ms": [t.agent_ms for t in self.turns if t.agent_ms is not None],
        }


async def measure(stack: Stack, *, turns: int, question: Path) -> list[RoomTurn]:
    """`turns` spoken turns in one room on `stack`, one after the other."""
    out: list[RoomTurn] = []
    async with stack.participant("bench-room") as p:
        await p.utterance_after(0, within=60, what="the greeting")
        for _ in range(turns):
            before = len(_reported(p.events))
            spoken = await p.say(question)
            answer = await p.utterance_after(spoken.ended_at, within=60, what="the answer")
            # the message follows the reply's end by a moment (awaited at once: no late binding)
            await waited(lambda: len(_reported(p.events)) > before, within=10)  # noqa: B023
            now = _reported(p.events)
            heard_ms = (answer.start - spoken.ended_at) * 1000
            out.append(RoomTurn(heard_ms, now[-1] if len(now) > before else None))
    return out


def _reported(events: list[dict[str, object]]) -> list[float]:
    return [
        float(e["eos_to_first_audio_ms"])  # type: ignore[arg-type]
        for e in events
        if e.get("type") == "latency" and "eos_to_first_audio_ms" in e
    ]


def run(ctx: Context) -> RoomResult:
    voice = ctx.plan.voice
    reply = text_reply(ANSWER, ttft=voice.ttft, token_delay=voice.token_delay)
    result = RoomResult(ttft_ms=voice.ttft * 1000)
    try:
        livekit = LiveKitServer()
    except LiveKitServerMissing as e:
        return RoomResult(skipped=str(e))
    with (
        tempfile.TemporaryDirectory() as tmp,
        livekit,
        ScriptedLLMServer(default=reply) as llm,
        EspeakTTSServer() as tts,
        WhisperServer() as whisper,
    ):
        question = espeak_to_wav(QUESTION, Path(tmp) / "question.wav")
        backends = Backends(llm=llm, stt=whisper, tts=tts)
        worker = VoiceWorker(livekit, backends)
        try:
            worker.start()
            stack = Stack(livekit=livekit, backends=backends, worker=worker)
            turns = ctx.sized(full=10, quick=2)
            result.turns = asyncio.run(measure(stack, turns=turns, question=question))
        finally:
            worker.close()
    return result


def render(r: RoomResult) -> list[str]:
    if r.skipped is not None:
        return [f"Skipped: {r.skipped}."]
    return [
        f"{len(r.turns)} spoken turns in one room on livekit-server {pinned_version()}, the "
        f"scripted LLM's time to first token {r.ttft_ms:.0f} ms. Method: docs/benchmarks.md#room.",
        table(
            "measure | p50 ms | p95 ms | turns",
            [[LABELS[key], *cells(ms), len(ms)] for key, ms in r.series().items()],
        ),
    ]


def numbers(r: RoomResult) -> Mapping[str, object]:
    if r.skipped is not None:
        return {"skipped": r.skipped}
    return {key: summary(ms) for key, ms in r.series().items()}
