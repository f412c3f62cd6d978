"""The child side of the side-by-side voice bench: two sessions in one process, taking turns.

`ours` is the worker's own session (`build_session`: end-of-turn model, STT at each pause,
first clause to the TTS, safe preemptive generation, from the default settings).
`livekit_default` is what livekit does when given the same VAD, STT, TTS and our agent and
nothing else: `AgentSession(vad=silero.VAD.load(), stt=..., tts=..., turn_handling=
{"turn_detection": "vad"})`, so livekit's default endpointing (0.5 s / 3 s), its default
sentence tokenizer (blingfire, whole sentences), its own `stt.StreamAdapter` and its default
preemptive generation. Each utterance is said to one session, then to the other (the order
alternates), and everything each reports is written out with wall-clock times (`time.time()`,
one clock across processes).

Run alone: `python -m bench.voice_latency_session --llm-url URL --stt-url URL --tts-url URL
--out result.json WAV...` (`--stt-url in-process`: Moonshine in this process, for both).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice import (
    ConversationItemAddedEvent,
    MetricsCollectedEvent,
    UserStateChangedEvent,
)

from agent.config.resolved import Config
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.turn_detection import load_vad
from agent.wiring import build_agent, build_llm, build_session
from providers import build_stt_chain, build_tts_chain
from testing.audio_io import PacedMicrophone, RecordingSpeaker
from testing.engine import voice_config

from .common import quiet_logging
from .voice_session import session_main

VARIANTS = ("ours", "livekit_default")


@dataclass
class Record:
    """What one session reported, each entry tagged with the utterance being said."""

    turn: int = -1
    items: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    user_states: list[dict[str, Any]] = field(default_factory=list)
    segments_sent: list[dict[str, Any]] = field(default_factory=list)
    mic_end: dict[int, float] = field(default_factory=dict)
    said_at: dict[int, float] = field(default_factory=dict)

    def on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.ChatMessage):
            self.items.append(
                {
                    "turn": self.turn,
                    "at": time.time(),
                    "role": item.role,
                    "text": item.text_content or "",
                    "interrupted": item.interrupted,
                    "metrics": dict(item.metrics),
                }
            )

    def on_metrics(self, ev: MetricsCollectedEvent) -> None:
        self.metrics.append({"turn": self.turn, "at": time.time(), **ev.metrics.model_dump()})

    def on_user_state(self, ev: UserStateChangedEvent) -> None:
        self.user_states.append({"turn": self.turn, "at": time.time(), "state": ev.new_state})

    def on_segment_sent(self, speech_ended_at: float, sent_at: float) -> None:
        self.segments_sent.append(
            {"turn": self.turn, "speech_ended_at": speech_ended_at, "sent_at": sent_at}
        )

    def answered(self, turn: int) -> bool:
        """An answer that started after the whole utterance was said has been added."""
        end = self.mic_end.get(turn)
        return end is not None and any(
            i["turn"] == turn and i["role"] == "assistant" and i["at"] > end for i in self.items
        )


def _livekit_default(config: Config) -> AgentSession[Any]:
    from livekit.plugins import silero

    vad = silero.VAD.load()
    return AgentSession(
        vad=vad,
        stt=build_stt_chain([b.options for b in config.backends.stt_backends], vad=vad),
        tts=build_tts_chain([b.options for b in config.backends.tts_backends]),
        turn_handling={"turn_detection": "vad"},
    )


async def _until(check: Callable[[], bool], *, within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass
class _Running:
    session: AgentSession[Any]
    mic: PacedMicrophone
    speaker: RecordingSpeaker
    record: Record
    turn_llm: llm.LLM[Any]


async def _start(name: str, config: Config) -> _Running:
    session = (
        build_session(config, vad=load_vad(config.settings))
        if name == "ours"
        else _livekit_default(config)
    )
    record = Record()
    session.on("conversation_item_added", record.on_item)
    session.on("metrics_collected", record.on_metrics)
    session.on("user_state_changed", record.on_user_state)
    if isinstance(session.stt, PauseTranscriber):
        session.stt.on("segment_sent", record.on_segment_sent)
    mic, speaker = PacedMicrophone(), RecordingSpeaker()
    session.input.audio = mic
    session.output.audio = speaker
    turn_llm = build_llm(config)
    await session.start(build_agent(config, turn_llm=turn_llm), record=False)
    return _Running(session, mic, speaker, record, turn_llm)


async def run(
    wavs: list[Path], *, llm_url: str, stt_url: str, tts_url: str, pause: float
) -> dict[str, Any]:
    quiet_logging()
    config = voice_config(llm_url, stt_url=stt_url, tts_url=tts_url, agent_greeting="")
    sessions = {name: await _start(name, config) for name in VARIANTS}
    missing: list[tuple[str, int]] = []
    try:
        for k, wav in enumerate(wavs):
            order = VARIANTS if k % 2 == 0 else VARIANTS[::-1]
            for name in order:
                s = sessions[name]
                s.record.turn = k
                s.record.said_at[k] = time.time()
                await s.mic.say(wav)
                s.record.mic_end[k] = s.mic.speech_ended_at[-1]
                if not await _until(lambda s=s, k=k: s.record.answered(k), within=30):  # type: ignore[misc]
                    missing.append((name, k))
                await _until(lambda s=s: s.session.agent_state == "listening", within=30)  # type: ignore[misc]
                gc.collect()
                await asyncio.sleep(pause)  # a user does not talk over the end of the answer
    finally:
        for s in sessions.values():
            await s.session.aclose()
            await s.turn_llm.aclose()
    return {
        name: {
            "items": s.record.items,
            "metrics": s.record.metrics,
            "user_states": s.record.user_states,
            "segments_sent": s.record.segments_sent,
            "mic_end": {str(k): v for k, v in s.record.mic_end.items()},
            "said_at": {str(k): v for k, v in s.record.said_at.items()},
            "audio_starts": [seg.first_frame_at for seg in s.speaker.segments],
        }
        for name, s in sessions.items()
    } | {"missing": missing}


def main() -> None:
    session_main("python -m bench.voice_latency_session", run)


if __name__ == "__main__":
    main()
