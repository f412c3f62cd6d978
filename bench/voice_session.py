"""Spoken turns through real voice sessions, in a process that plays the job process;
`speak` runs it against the real Whisper server and the espeak-ng TTS server.

`python -m bench.voice_session` imports the worker, loads the silero VAD (what `prewarm`
does) and starts one session per pipeline, a paced microphone and a recording speaker in
place of the room:
- `ours`: the worker's own session (`build_session`, `build_agent`, `SessionObserver`)
  from the default settings: end-of-turn model, STT at each pause, first clause to the
  TTS, safe preemptive generation;
- `livekit_default`: what livekit does given the same VAD, STT, TTS and our agent and
  nothing else (`turn_detection="vad"`): its default endpointing (0.5 s / 3 s), sentence
  tokenizer (blingfire, whole sentences), `stt.StreamAdapter` and preemptive generation.
Each WAV is said to every pipeline in turn (the order alternates), waiting for the spoken
answer. What livekit reports (metrics, chat messages with their metrics, user states) and
the segments ours sends to the STT are written out tagged with the utterance being said,
on one wall clock (`time.time()`, one clock across processes), with this process's RSS.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, llm, vad

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


def first(entries: Sequence[dict[str, Any]], turn: int, **match: object) -> dict[str, Any] | None:
    """The first entry of utterance `turn` whose fields have the values in `match`."""
    return next(
        (e for e in entries if e["turn"] == turn and all(e.get(f) == v for f, v in match.items())),
        None,
    )


@dataclass
class Pipeline:
    """One session and all it reported, each entry tagged with the utterance being said."""

    name: str
    session: AgentSession[Any]
    turn_llm: llm.LLM[Any]
    mic: PacedMicrophone = field(default_factory=PacedMicrophone)
    speaker: RecordingSpeaker = field(default_factory=RecordingSpeaker)
    turn: int = -1
    """Index of the utterance being said; -1 before the first (the greeting)."""
    log: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"items": [], "metrics": [], "user_states": [], "segments_sent": []}
    )
    mic_end: dict[int, float] = field(default_factory=dict)
    """When the microphone delivered each utterance's last frame."""
    rss_mb_after_turn: list[float] = field(default_factory=list)

    def note(self, kind: str, **fields: Any) -> None:
        entry = {"turn": self.turn, "at": time.time(), **fields}
        self.log[kind].append(entry)

    def on_item(self, ev: Any) -> None:
        if isinstance(m := ev.item, llm.ChatMessage):
            self.note("items", role=m.role, text=m.text_content or "", metrics=dict(m.metrics))

    def answered(self, turn: int) -> bool:
        """An answer that started after the whole utterance was said has been added."""
        end = self.mic_end.get(turn)
        return end is not None and any(
            i["turn"] == turn and i["role"] == "assistant" and i["at"] > end
            for i in self.log["items"]
        )

    def listening(self) -> bool:
        return self.session.agent_state == "listening"


async def _start(name: str, config: Config, prewarmed: vad.VAD) -> Pipeline:
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
    p = Pipeline(name, session, build_llm(config))
    session.on("conversation_item_added", p.on_item)
    session.on("metrics_collected", lambda ev: p.note("metrics", **ev.metrics.model_dump()))
    # the state change is back-dated to the estimated end of speech; when it is emitted is
    # when the VAD's silence window closed, which livekit reports nowhere
    session.on("user_state_changed", lambda ev: p.note("user_states", state=ev.new_state))
    if isinstance(session.stt, PauseTranscriber):
        session.stt.on(
            "segment_sent", lambda _end, sent_at: p.note("segments_sent", sent_at=sent_at)
        )
    session.input.audio, session.output.audio = p.mic, p.speaker
    await session.start(build_agent(config, turn_llm=p.turn_llm), record=False)
    return p


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet_logging()
    config = voice_config(
        args.llm_url, stt_url=args.stt_url, tts_url=args.tts_url, agent_greeting=args.greeting
    )
    prewarmed = load_vad(config.settings)  # what the worker's prewarm does
    gc.collect()
    out: dict[str, Any] = {"rss_mb_prewarmed": rss_mb(), "missing": []}
    pipelines = [await _start(name, config, prewarmed) for name in args.pipelines.split(",")]
    try:
        for p in pipelines:
            if args.greeting:
                greet(p.session, args.greeting)
                await _waited(lambda p=p: bool(p.speaker.completed), within=30)  # type: ignore[misc]
        for k, wav in enumerate(args.wavs):
            for p in pipelines if k % 2 == 0 else pipelines[::-1]:
                p.turn = k
                await p.mic.say(wav)
                p.mic_end[k] = p.mic.speech_ended_at[-1]
                if not await _waited(functools.partial(p.answered, k), within=60):
                    out["missing"].append((p.name, k))
                await _waited(p.listening, within=30)
                gc.collect()
                p.rss_mb_after_turn.append(rss_mb())
                await asyncio.sleep(args.pause)  # a user does not talk over the end of the answer
    finally:
        for p in pipelines:
            await p.session.aclose()
            await p.turn_llm.aclose()
    for p in pipelines:
        audio_starts = [seg.first_frame_at for seg in p.speaker.segments]
        out[p.name] = {**p.log, "mic_end": p.mic_end, "audio_starts": audio_starts}
        out[p.name]["rss_mb_after_turn"] = p.rss_mb_after_turn
    return out


async def _waited(check: Callable[[], bool], *, within: float) -> bool:
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

PAD_SECONDS = 0.3
"""Silence espeak_to_wav puts around each question (Whisper needs a little lead-in)."""
SPEECH_LEVEL = 300
"""A sample louder than this (of 32768) is speech; espeak's own trailing silence is zeros."""


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
    """What the child wrote: `rss_mb_prewarmed`, `missing`, and each pipeline's log."""
    tails: list[float]
    """Per utterance: how long its WAV goes on after its last speech sample."""
    tts_requests: list[tuple[str, float]]
    """Every request the TTS server got: its text and when it arrived (`time.time()`)."""


def speak(
    llm_url: str, questions: Sequence[str], turns: int, *, pipelines: Sequence[str], **args: Any
) -> Spoken:
    """Say `turns` utterances (`questions` by espeak-ng, cycled) to each pipeline; `args`:
    the child's `pause` and `greeting`."""
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
                    *(f"--{name}={value}" for name, value in args.items()),
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
