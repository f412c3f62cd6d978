"""Spoken turns through real voice sessions, in a process that plays the job process.

The child, `python -m bench.voice_session`, imports the worker, loads the silero VAD (what
`prewarm` does) and starts one session per pipeline, with the e2e test's paced microphone
and recording speaker in place of the room:
- `ours`: the worker's own session (`build_session` + `build_agent` + `SessionObserver`,
  `greet`) from the default settings: end-of-turn model, STT at each pause, first clause
  to the TTS, safe preemptive generation;
- `livekit_default`: what livekit does given the same VAD, STT, TTS and our agent and
  nothing else: `AgentSession(vad=silero.VAD.load(), stt=..., tts=..., turn_handling=
  {"turn_detection": "vad"})`, so livekit's default endpointing (0.5 s / 3 s), its default
  sentence tokenizer (blingfire, whole sentences), its own `stt.StreamAdapter` and its
  default preemptive generation.
Each WAV is said to every pipeline in turn (the order alternates), each time waiting for
the spoken answer. What livekit reports (`metrics_collected`, the metrics it attaches to
each chat message, user state changes) and the segments ours sends to the STT are written
out tagged with the utterance being said, on one wall clock (`time.time()`, one clock
across processes), with this process's RSS after each turn.

`speak` is the parent side: it runs the child against the real Whisper server
(faster-whisper-server, tiny.en, CPU, warmed up) and the espeak-ng TTS server.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import functools
import gc
import json
import shutil
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, llm, vad
from livekit.agents.voice import (
    ConversationItemAddedEvent,
    MetricsCollectedEvent,
    UserStateChangedEvent,
)

from agent.config.resolved import Config
from agent.voice.observer import SessionObserver
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.turn_detection import load_vad
from agent.wiring import build_agent, build_llm, build_session
from agent.worker.entrypoint import greet
from providers import build_stt_chain, build_tts_chain
from testing.audio_io import PacedMicrophone, RecordingSpeaker, espeak_to_wav
from testing.engine import voice_config
from testing.polling import until
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

from .common import quiet_logging, rss_mb, run_module

PIPELINES = ("ours", "livekit_default")
PAD_SECONDS = 0.3
"""Silence espeak_to_wav puts around each question (Whisper needs a little lead-in)."""
SPEECH_LEVEL = 300
"""A sample louder than this (of 32768) is speech; espeak's own trailing silence is zeros."""


@dataclass
class Record:
    """What one session reported, each entry tagged with the utterance being said."""

    turn: int = -1
    """Index of the utterance being said; -1 for the greeting."""
    items: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    user_states: list[dict[str, Any]] = field(default_factory=list)
    segments_sent: list[dict[str, Any]] = field(default_factory=list)
    mic_end: dict[int, float] = field(default_factory=dict)
    """When the microphone delivered each utterance's last frame."""
    rss_mb_after_turn: list[float] = field(default_factory=list)

    def _tagged(self, **fields: Any) -> dict[str, Any]:
        return {"turn": self.turn, "at": time.time(), **fields}

    def on_item(self, ev: ConversationItemAddedEvent) -> None:
        if isinstance(item := ev.item, llm.ChatMessage):
            text, metrics = item.text_content or "", dict(item.metrics)
            self.items.append(self._tagged(role=item.role, text=text, metrics=metrics))

    def on_metrics(self, ev: MetricsCollectedEvent) -> None:
        self.metrics.append(self._tagged(**ev.metrics.model_dump()))

    def on_user_state(self, ev: UserStateChangedEvent) -> None:
        # the event is back-dated to the estimated end of speech (`created_at`); when it is
        # emitted is when the VAD's silence window closed, which livekit reports nowhere
        self.user_states.append(self._tagged(state=ev.new_state))

    def on_segment_sent(self, speech_ended_at: float, sent_at: float) -> None:
        self.segments_sent.append(self._tagged(speech_ended_at=speech_ended_at, sent_at=sent_at))

    def answered(self, turn: int) -> bool:
        """An answer that started after the whole utterance was said has been added."""
        end = self.mic_end.get(turn)
        return end is not None and any(
            i["turn"] == turn and i["role"] == "assistant" and i["at"] > end for i in self.items
        )


def first(entries: Sequence[dict[str, Any]], turn: int, **match: object) -> dict[str, Any] | None:
    """The first entry of utterance `turn` whose fields have the values in `match`."""
    return next(
        (e for e in entries if e["turn"] == turn and all(e.get(f) == v for f, v in match.items())),
        None,
    )


@dataclass
class _Running:
    name: str
    session: AgentSession[Any]
    mic: PacedMicrophone
    speaker: RecordingSpeaker
    turn_llm: llm.LLM[Any]
    record: Record = field(default_factory=Record)

    def listening(self) -> bool:
        return self.session.agent_state == "listening"


async def _start(name: str, config: Config, prewarmed: vad.VAD) -> _Running:
    if name == "ours":
        session = build_session(config, vad=prewarmed)
        SessionObserver(session, stt_error_reply=config.settings.agent_stt_error_reply)
    else:
        from livekit.plugins import silero

        own_vad = silero.VAD.load()
        session = AgentSession(
            vad=own_vad,
            stt=build_stt_chain([b.options for b in config.backends.stt_backends], vad=own_vad),
            tts=build_tts_chain([b.options for b in config.backends.tts_backends]),
            turn_handling={"turn_detection": "vad"},
        )
    s = _Running(name, session, PacedMicrophone(), RecordingSpeaker(), build_llm(config))
    session.on("conversation_item_added", s.record.on_item)
    session.on("metrics_collected", s.record.on_metrics)
    session.on("user_state_changed", s.record.on_user_state)
    if isinstance(session.stt, PauseTranscriber):
        session.stt.on("segment_sent", s.record.on_segment_sent)
    session.input.audio = s.mic
    session.output.audio = s.speaker
    await session.start(build_agent(config, turn_llm=s.turn_llm), record=False)
    return s


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet_logging()
    config = voice_config(
        args.llm_url, stt_url=args.stt_url, tts_url=args.tts_url, agent_greeting=args.greeting
    )
    prewarmed = load_vad(config.settings)  # what the worker's prewarm does
    gc.collect()
    rss_prewarmed = rss_mb()
    running = [await _start(name, config, prewarmed) for name in args.pipelines.split(",")]
    missing: list[tuple[str, int]] = []
    try:
        for s in running:
            if args.greeting:
                greet(s.session, args.greeting)
                await until(lambda s=s: bool(s.speaker.completed), within=30, what="greeting")  # type: ignore[misc]
        for k, wav in enumerate(args.wavs):
            for s in running if k % 2 == 0 else running[::-1]:
                s.record.turn = k
                await s.mic.say(wav)
                s.record.mic_end[k] = s.mic.speech_ended_at[-1]
                if not await _waited(functools.partial(s.record.answered, k), within=60):
                    missing.append((s.name, k))
                await _waited(s.listening, within=30)
                gc.collect()
                s.record.rss_mb_after_turn.append(rss_mb())
                await asyncio.sleep(args.pause)  # a user does not talk over the end of the answer
    finally:
        for s in running:
            await s.session.aclose()
            await s.turn_llm.aclose()
    audio = {s.name: [seg.first_frame_at for seg in s.speaker.segments] for s in running}
    pipelines = {s.name: {**asdict(s.record), "audio_starts": audio[s.name]} for s in running}
    return {"rss_mb_prewarmed": rss_prewarmed, "missing": missing, **pipelines}


async def _waited(check: Any, *, within: float) -> bool:
    """Whether `check()` came to hold within `within` seconds."""
    try:
        await until(check, within=within, what="it")
    except TimeoutError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.voice_session")
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--stt-url", required=True)
    parser.add_argument("--tts-url", required=True)
    parser.add_argument("--pipelines", default="ours", help=f"comma-separated, of {PIPELINES}")
    parser.add_argument("--greeting", default="", help="said first, before any utterance")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between turns")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("wavs", nargs="+", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    # a file, not stdout: a library that prints must not corrupt the result
    args.out.write_text(json.dumps(result, default=str), encoding="utf-8")


# --- the parent side ------------------------------------------------------------------


def espeak_missing() -> str | None:
    """Why nothing can be said here, or None."""
    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not installed (apt-get install espeak-ng)"
    return None


def speech_tail_seconds(wav: Path) -> float:
    """How long the WAV goes on after its last speech sample (padding + espeak's silence)."""
    with wave.open(str(wav), "rb") as w:
        samples = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    last = max((i for i, v in enumerate(samples) if abs(v) > SPEECH_LEVEL), default=0)
    return (len(samples) - last) / rate


@dataclass(frozen=True, slots=True)
class Spoken:
    data: dict[str, Any]
    """What the child wrote: `rss_mb_prewarmed`, `missing`, and a `Record` per pipeline."""
    tails: list[float]
    """Per utterance: how long its WAV goes on after its last speech sample."""
    tts_requests: list[tuple[str, float]]
    """Every request the TTS server got: its text and when it arrived (`time.time()`)."""


def speak(
    llm_url: str,
    questions: Sequence[str],
    turns: int,
    *,
    pipelines: Sequence[str],
    pause: float,
    greeting: str = "",
) -> Spoken:
    """Say `turns` utterances (`questions` spoken by espeak-ng, cycled) to each pipeline."""
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        wavs = [
            espeak_to_wav(q, Path(tmp) / f"q{i}.wav", pad_seconds=PAD_SECONDS)
            for i, q in enumerate(questions)
        ]
        said = [wavs[k % len(wavs)] for k in range(turns)]
        out = Path(tmp) / "spoken.json"
        whisper = WhisperServer().start()  # warmed up: its model is loaded
        try:
            with EspeakTTSServer() as tts:
                proc = run_module(
                    "bench.voice_session",
                    f"--llm-url={llm_url}",
                    f"--stt-url={whisper.base_url}",
                    f"--tts-url={tts.base_url}",
                    f"--pipelines={','.join(pipelines)}",
                    f"--greeting={greeting}",
                    f"--pause={pause}",
                    f"--out={out}",
                    *map(str, said),
                    timeout=120 + 60 * turns * len(pipelines),
                )
                tts_requests = [(r.text, r.received_at) for r in tts.requests]
        finally:
            whisper.stop()
        if proc.returncode != 0:
            raise RuntimeError(f"the voice session failed: {proc.stderr[-3000:]}")
        data = json.loads(out.read_text(encoding="utf-8"))
        return Spoken(data, [speech_tail_seconds(w) for w in said], tts_requests)


if __name__ == "__main__":
    main()
