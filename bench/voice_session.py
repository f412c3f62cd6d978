"""Spoken turns through real voice sessions, in a process that plays the job process; and the
idle worker's memory, process by process."""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import gc
import json
import math
import shutil
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import psutil
from livekit.agents import AgentSession, llm, vad
from livekit.agents.utils.hw import get_cpu_monitor

from agent.config.resolved import Config
from agent.voice.assistant import Assistant
from agent.voice.observer import SessionObserver
from agent.voice.pause_stt import PauseTranscriber
from agent.voice.turn_detection import load_vad
from agent.wiring import build_agent, build_llm, build_session
from agent.worker.entrypoint import greet
from providers import build_stt_chain, build_tts_chain
from testing.audio_io import PacedMicrophone, RecordingSpeaker, espeak_to_wav
from testing.cli import spawn_cli, stop
from testing.engine import IN_PROCESS, voice_config
from testing.polling import free_port, until
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

from .sections import MB, ROOT, child_env, p50, pss_mb, quiet_logs, rss_mb, run_module

PIPELINES = ("ours", "livekit_default")
SPEECH_LEVEL = 300  # a louder sample (of 32768) is speech; espeak's trailing silence is zeros


def first(entries: Sequence[dict[str, Any]], turn: int, **match: object) -> dict[str, Any]:
    """The first entry of utterance `turn` whose fields have the values in `match` ({}: none)."""
    match["turn"] = turn
    return next((e for e in entries if all(e.get(f) == v for f, v in match.items())), {})


class Stages(dict[str, list[float]]):
    """Milliseconds per stage over the measured turns; a stage a turn lacks is left out."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__({key: [] for key in keys})

    def add(self, key: str, end: float | None, start: float | None = 0.0) -> None:
        """`end - start` seconds, where both are known and it is not negative."""
        if end is not None and start is not None and end >= start:
            self[key].append((end - start) * 1000)

    def add_reply(self, reply: dict[str, Any] | None) -> None:
        """The reply's own stages, from the metrics livekit put on its chat item."""
        m = reply["metrics"] if reply else {}
        self.add("node_ttft", m.get("llm_node_ttft"))
        self.add("text_tts", m.get("llm_node_ttfs"), m.get("llm_node_ttft"))
        self.add("tts_ttfb", m.get("tts_node_ttfb"))

    def p50(self, key: str) -> float:
        return p50(self[key])


@dataclass
class Pipeline:
    """A session, and what it reported: each entry tagged with the utterance being said."""

    name: str
    session: AgentSession[Any]
    turn_llm: llm.LLM[Any]
    mic: PacedMicrophone = field(default_factory=PacedMicrophone)
    speaker: RecordingSpeaker = field(default_factory=RecordingSpeaker)
    turn: int = -1  # -1: before the first utterance (the greeting)
    log: dict[str, Any] = field(
        default_factory=lambda: {
            **{kind: [] for kind in ("items", "metrics", "user_states", "segments_sent")},
            "speech_end": {},  # utterance -> when its last speech sample went out
            "rss_mb_after_turn": [],
        }
    )

    def note(self, kind: str, **fields: Any) -> None:
        self.log[kind].append({"turn": self.turn, "at": time.time(), **fields})

    def on_item(self, ev: Any) -> None:
        if isinstance(m := ev.item, llm.ChatMessage):
            text = m.text_content or ""
            if m.role == "user" and isinstance(agent := self.session.current_agent, Assistant):
                text = agent.as_read(text)  # the whole-turn pass, in place of the pieces
            self.note("items", role=m.role, text=text, metrics=dict(m.metrics))

    def answered(self, turn: int) -> bool:
        """The utterance was said, and its last user turn has an answer after it (a fast
        pipeline answers while the WAV's trailing silence still plays)."""
        items = [i for i in self.log["items"] if i["turn"] == turn]
        last_user = max((i["at"] for i in items if i["role"] == "user"), default=math.inf)
        said = turn in self.log["speech_end"]
        return said and any(i["role"] == "assistant" and i["at"] >= last_user for i in items)


async def _start(name: str, config: Config, prewarmed: vad.VAD) -> Pipeline:
    if name == "ours":
        session = build_session(config, vad=prewarmed)
        SessionObserver(session, stt_error_reply=config.settings.agent_stt_error_reply)
    else:
        from livekit.plugins import silero

        own = silero.VAD.load()
        session = AgentSession(
            vad=own,
            stt=build_stt_chain([b.options for b in config.backends.stt_backends], vad=own),
            tts=build_tts_chain([b.options for b in config.backends.tts_backends]),
            turn_handling={"turn_detection": "vad"},
        )
    p = Pipeline(name, session, build_llm(config))
    session.on("conversation_item_added", p.on_item)
    session.on("metrics_collected", lambda ev: p.note("metrics", **ev.metrics.model_dump()))
    # back-dated to the estimated end of speech: when it is emitted is when the VAD's
    # silence window closed, which livekit reports nowhere
    session.on("user_state_changed", lambda ev: p.note("user_states", state=ev.new_state))
    if isinstance(stt := session.stt, PauseTranscriber):
        stt.on("segment_sent", lambda _end, sent_at: p.note("segments_sent", sent_at=sent_at))
    session.input.audio, session.output.audio = p.mic, p.speaker
    await session.start(build_agent(config, turn_llm=p.turn_llm), record=False)
    return p


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    quiet_logs()
    urls = {key: spec[key] for key in ("stt_url", "tts_url")}
    config = voice_config(spec["llm_url"], **urls, agent_greeting=spec["greeting"])
    prewarmed = load_vad(config.settings)  # what the worker's prewarm does
    tails = [speech_tail_seconds(Path(wav)) for wav in spec["wavs"]]
    gc.collect()
    out: dict[str, Any] = {"rss_mb_prewarmed": rss_mb(), "missing": []}
    pipelines = [await _start(name, config, prewarmed) for name in spec["pipelines"]]
    try:
        for p in pipelines:
            if spec["greeting"]:
                greet(p.session, spec["greeting"])
                await waited(lambda p=p: bool(p.speaker.completed), within=30)  # type: ignore[misc]
        for k, wav in enumerate(spec["wavs"]):
            for p in pipelines if k % 2 == 0 else pipelines[::-1]:
                p.turn = k
                await p.mic.say(Path(wav))
                # the WAV's last speech sample went out its tail before its last frame did
                p.log["speech_end"][k] = p.mic.speech_ended_at[-1] - tails[k]
                if not await waited(functools.partial(p.answered, k), within=60):
                    out["missing"].append((p.name, k))
                await waited(lambda p=p: p.session.agent_state == "listening", within=30)  # type: ignore[misc]
                gc.collect()
                p.log["rss_mb_after_turn"].append(rss_mb())
                await asyncio.sleep(spec["pause"])  # a user does not talk over the answer's end
    finally:
        for p in pipelines:
            await p.session.aclose()
            await p.turn_llm.aclose()
    for p in pipelines:
        out[p.name] = p.log | {"audio_starts": [s.first_frame_at for s in p.speaker.segments]}
    return out


async def waited(check: Callable[[], bool], *, within: float) -> bool:
    """Whether `check()` came to hold within `within` seconds."""
    with contextlib.suppress(TimeoutError):
        await until(check, within=within, what="it")
    return check()


# --- the parent side ------------------------------------------------------------------


def espeak_missing() -> str | None:
    """Why nothing can be said here, or None."""
    installed = shutil.which("espeak-ng") is not None
    return None if installed else "espeak-ng is not installed (apt-get install espeak-ng)"


def speech_tail_seconds(wav: Path) -> float:
    """How long the WAV goes on after its last speech sample (padding + espeak's silence)."""
    with wave.open(str(wav), "rb") as w:
        samples = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    last = max((i for i, v in enumerate(samples) if abs(v) > SPEECH_LEVEL), default=0)
    return (len(samples) - last) / rate


Row = tuple[str, float, float | None]  # what a process is, its RSS and PSS (if measured), MB


def _role(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return "main (voice-agent start)"
    cmd = " ".join(proc.cmdline())
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "forkserver" in cmd:
        # the forkserver itself is the main process's child; job processes are its children
        return "forkserver" if proc.ppid() == root else "idle job process (prewarmed)"
    return cmd[:60]


def _tree(root: int) -> list[Row]:
    rows: list[Row] = []
    main = psutil.Process(root)
    for proc in [main, *sorted(main.children(recursive=True), key=lambda p: p.pid)]:
        with contextlib.suppress(psutil.Error):  # exited while we looked
            rows.append((_role(proc, root), proc.memory_info().rss / MB, pss_mb(proc.pid)))
    return rows


def idle_worker(llm_url: str, *, timeout: float = 90) -> list[Row]:
    """`voice-agent start` against a closed LiveKit port, measured once its prewarmed job
    processes are forked and memory settles: livekit starts its process pool before it first
    connects, then retries, so the tree is what an idle worker holds but the websocket."""
    env = child_env(
        drop=("LLM_", "LIVEKIT_", "WORKER_", "STT_", "TTS_"),
        LLM_BASE_URL=llm_url,
        LLM_MODEL="test-model",
        # nothing listens there: the worker keeps retrying, idle, for minutes
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",
        WORKER_CONNECT_RETRIES="1000",
        WORKER_PORT="0",
        LOG_FORMAT="json",
    )
    idle = math.ceil(get_cpu_monitor().cpu_count())
    # its own process group, so everything it forked is ours to end
    proc = spawn_cli(["start"], env=env, cwd=ROOT, stdout=DEVNULL, stderr=DEVNULL, new_session=True)
    try:
        deadline, stable_since, last = time.monotonic() + timeout, time.monotonic(), 0.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited early with status {proc.returncode}")
            tree = _tree(proc.pid)
            ready = sum(role.startswith("idle job") for role, _, _ in tree) >= idle
            total = sum(rss for _, rss, _ in tree)
            if not ready or abs(total - last) > 1.0:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= 2.0:
                pss = sum(pss or 0.0 for _, _, pss in tree)
                # summed RSS counts shared pages once per process; PSS does not
                tree.append(("whole process tree", total, pss))
                return [(f"idle worker: {role}", rss, pss) for role, rss, pss in tree]
            last = total
            time.sleep(0.25)
        raise RuntimeError(f"the worker's {idle} idle processes did not settle")
    finally:
        stop(proc, within=20, group=True)


STT_NAMES = {
    "moonshine": "Moonshine tiny-en in the session's process",
    "whisper": "the Whisper server: faster-whisper-server, tiny.en, CPU, warmed up",
}


def speak(llm_url: str, questions: Sequence[str], turns: int, **spec: Any) -> dict[str, Any]:
    """Say `turns` utterances (`questions`, cycled) to each of `spec`'s `pipelines`, with
    its `pause` between turns and its `greeting` (if any) first. What the child wrote
    (`rss_mb_prewarmed`, `missing`, each pipeline's log), and `tts_requests`: every request
    the TTS server got, its text and when it arrived (`time.time()`)."""
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        wavs = [espeak_to_wav(q, Path(tmp) / f"q{i}.wav") for i, q in enumerate(questions)]
        said = [wavs[k % len(wavs)] for k in range(turns)]
        out = Path(tmp) / "spoken.json"
        # the Whisper server warmed up (its model loaded), or Moonshine in the session process
        whisper = WhisperServer() if spec.pop("stt", "moonshine") == "whisper" else None
        with EspeakTTSServer() as tts, whisper or contextlib.nullcontext():
            stt_url = whisper.base_url if whisper else IN_PROCESS
            urls = {"llm_url": llm_url, "stt_url": stt_url, "tts_url": tts.base_url}
            spec = {"greeting": "", **spec, **urls, "wavs": [str(w) for w in said]}
            limit = 120 + 60 * turns * len(spec["pipelines"])
            run_module("bench.voice_session", json.dumps(spec), str(out), timeout=limit)
            tts_requests = [(r.text, r.received_at) for r in tts.requests]
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return data | {"tts_requests": tts_requests}


if __name__ == "__main__":
    spec, out_file = json.loads(sys.argv[1]), Path(sys.argv[2])
    result = asyncio.run(run(spec))
    # a file, not stdout: a library that prints must not corrupt the result
    out_file.write_text(json.dumps(result, default=str), encoding="utf-8")
