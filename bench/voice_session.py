"""The child side of section 5: one voice session, run the way a job process runs it.

This process plays the job process: it imports the worker, loads the silero VAD (what
`prewarm` does), then runs the worker's own session (`build_session` + `build_agent` +
`SessionObserver` + `greet`) with the e2e test's paced microphone and recording speaker in
place of the room. It says each WAV in turn, waits for the spoken answer, and prints JSON:
per turn, livekit's own numbers (the `metrics_collected` events and the metrics livekit
attaches to each chat message), and this process's RSS.

Run alone: `python -m bench.voice_session --llm-url URL --stt-url URL --tts-url URL
--out result.json WAV...`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from livekit.agents import llm
from livekit.agents.voice import (
    ConversationItemAddedEvent,
    MetricsCollectedEvent,
    UserStateChangedEvent,
)

from agent.voice.observer import SessionObserver
from agent.voice.turn_detection import load_vad
from agent.wiring import build_agent, build_llm, build_session
from agent.worker.entrypoint import greet
from testing.audio_io import PacedMicrophone, RecordingSpeaker
from testing.engine import voice_config
from testing.polling import until

from .common import quiet_logging
from .memory import rss_bytes

GREETING = "Hello, ask me anything."


class TurnLog:
    """Everything livekit reports, tagged with the turn that was being said."""

    def __init__(self) -> None:
        self.turn = -1
        """Index of the utterance being said; -1 for the greeting."""
        self.metrics: list[tuple[int, dict[str, Any]]] = []
        self.messages: list[tuple[int, str, str, dict[str, Any]]] = []
        self.vad_end_seen_at: dict[int, float] = {}
        """time.time() when livekit reported the user stopped speaking (its VAD fired)."""

    def on_metrics(self, ev: MetricsCollectedEvent) -> None:
        self.metrics.append((self.turn, ev.metrics.model_dump()))

    def on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.ChatMessage):
            self.messages.append(
                (self.turn, item.role, item.text_content or "", dict(item.metrics))
            )

    def on_user_state(self, ev: UserStateChangedEvent) -> None:
        # the event is back-dated to the estimated end of speech (`created_at`); when it is
        # emitted is when the VAD's silence window closed, which livekit reports nowhere
        if ev.new_state == "listening" and self.turn not in self.vad_end_seen_at:
            self.vad_end_seen_at[self.turn] = time.time()

    def assistant_messages(self, turn: int) -> int:
        return sum(1 for t, role, _, _ in self.messages if t == turn and role == "assistant")


async def run(
    wavs: list[Path], *, llm_url: str, stt_url: str, tts_url: str, pause: float
) -> dict[str, Any]:
    quiet_logging()
    config = voice_config(llm_url, stt_url=stt_url, tts_url=tts_url, agent_greeting=GREETING)
    vad = load_vad(config.settings)  # what the worker's prewarm does
    gc.collect()
    rss_prewarmed = rss_bytes()

    session = build_session(config, vad=vad)
    observer = SessionObserver(session, stt_error_reply=config.settings.agent_stt_error_reply)
    log = TurnLog()
    session.on("metrics_collected", log.on_metrics)
    session.on("conversation_item_added", log.on_item)
    session.on("user_state_changed", log.on_user_state)
    mic, speaker = PacedMicrophone(), RecordingSpeaker()
    session.input.audio = mic
    session.output.audio = speaker
    turn_llm = build_llm(config)
    await session.start(build_agent(config, turn_llm=turn_llm), record=False)
    rss_after_turn: list[int] = []
    mic_speech_end: list[float] = []
    try:
        greet(session, GREETING)
        await until(lambda: len(speaker.completed) >= 1, within=30, what="greeting")
        for k, wav in enumerate(wavs):
            log.turn = k
            await mic.say(wav)
            mic_speech_end.append(mic.speech_ended_at[-1])
            await until(
                lambda k=k: log.assistant_messages(k) >= 1,  # type: ignore[misc]
                within=60,
                what=f"answer to utterance {k}",
            )
            await until(
                lambda: session.agent_state == "listening", within=30, what="end of the answer"
            )
            gc.collect()
            rss_after_turn.append(rss_bytes())
            await asyncio.sleep(pause)  # a user does not talk over the end of the answer
    finally:
        await session.aclose()
        await turn_llm.aclose()
    return {
        "rss_prewarmed": rss_prewarmed,
        "rss_after_turn": rss_after_turn,
        "mic_speech_end": mic_speech_end,
        "vad_end_seen_at": {str(k): v for k, v in log.vad_end_seen_at.items()},
        "metrics": log.metrics,
        "messages": log.messages,
        "observer_latencies": observer.turn_latencies,
    }


SessionRun = Callable[..., Coroutine[Any, Any, dict[str, Any]]]


def session_main(prog: str, session_run: SessionRun) -> None:
    """The child-process command line of a voice session bench (this one and voice_latency's)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--stt-url", required=True)
    parser.add_argument("--tts-url", required=True)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between turns")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("wavs", nargs="+", type=Path)
    args = parser.parse_args()
    result = asyncio.run(
        session_run(
            args.wavs,
            llm_url=args.llm_url,
            stt_url=args.stt_url,
            tts_url=args.tts_url,
            pause=args.pause,
        )
    )
    # a file, not stdout: a library that prints must not corrupt the result
    args.out.write_text(json.dumps(result, default=str), encoding="utf-8")


def main() -> None:
    session_main("python -m bench.voice_session", run)


if __name__ == "__main__":
    main()
