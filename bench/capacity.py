"""Section: how many spoken sessions one worker holds before latency suffers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import takewhile
from pathlib import Path
from typing import Any

import psutil

from testing.audio_io import espeak_to_wav
from testing.cli import stop
from testing.servers.livekit_dispatch import FakeLiveKitDispatch
from testing.servers.openai_server import text_reply
from testing.servers.scripted_speech import ScriptedSpeechServer

from .sections import ROOT, Context, child_env, pct, pss_mb, table
from .server_proc import RemoteLLMServer

NAME = "capacity"
TITLE = "Capacity: spoken sessions per worker"
UTTERANCE = "What time is it in Tokyo right now?"
REPLY = "It is nine in the evening there."


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityPlan:
    levels: Sequence[int] = (1, 5, 10, 20, 40)  # a level over budget ends the run
    measured_turns: int = 4  # per session after its first (warm-up); a lone one: lone_turns
    lone_turns: int = 12
    stagger: float = 3.0  # sessions start spread over this many seconds, as calls do
    pause: float = 1.0
    stt_delay: float = 0.15
    llm_ttft: float = 0.2
    token_delay: float = 0.01
    tts_delay: float = 0.1
    budget_ms: float = 100.0
    embedded_stt: bool = False  # Moonshine in each job process instead of the scripted STT


@dataclass(frozen=True, slots=True)
class Level:
    sessions: int
    turns: int
    p50_ms: float  # livekit's end of speech -> first audio (`e2e_latency`), turns after the first
    p95_ms: float
    cpu_per_session: float  # cores (1.0 = one core busy) each session's job process used
    worker_cpu: float  # cores the worker's main process used
    pss_per_session_mb: float
    silent_turns: int  # answered without audio (no e2e latency) or not at all: a failure
    other_cpu: float  # cores busy outside the worker meanwhile (the servers, other work)


@dataclass(slots=True)
class CapacityResult:
    plan: CapacityPlan
    levels: list[Level] = field(default_factory=list)
    cores: int = field(default_factory=lambda: os.cpu_count() or 0)

    def within_budget(self, level: Level) -> bool:
        lone = next((lv.p95_ms for lv in self.levels if lv.sessions == 1), float("-inf"))
        return not level.silent_turns and level.p95_ms <= lone + self.plan.budget_ms

    def row(self, lv: Level) -> list[object]:  # the level's row of the table
        return [
            *(lv.sessions, lv.turns, lv.silent_turns, f"{lv.p50_ms:.0f}", f"{lv.p95_ms:.0f}"),
            *("yes" if self.within_budget(lv) else "no", f"{lv.cpu_per_session:.3f}"),
            *(f"{lv.worker_cpu:.3f}", f"{lv.pss_per_session_mb:.0f}", f"{lv.other_cpu:.2f}"),
        ]

    @property
    def sessions_per_worker(self) -> int:
        ordered = sorted(self.levels, key=lambda lv: lv.sessions)
        return max((lv.sessions for lv in takewhile(self.within_budget, ordered)), default=0)


def run(ctx: Context) -> CapacityResult:
    # one lone session, one measured turn: the section runs end to end (about 25 s)
    quick = CapacityPlan(levels=(1,), measured_turns=1, lone_turns=1, pause=0.3)
    embedded = ctx.plan.capacity.get("embedded_stt")  # Moonshine in every job: 2 cores fill soon
    full = CapacityPlan(levels=(1, 2, 3, 4, 6, 8, 10, 12)) if embedded else CapacityPlan()
    return measure(replace(ctx.sized(full=full, quick=quick), **ctx.plan.capacity))


def measure(plan: CapacityPlan) -> CapacityResult:
    result = CapacityResult(plan=plan)
    speech = ScriptedSpeechServer(
        transcript=UTTERANCE, stt_delay=plan.stt_delay, tts_delay=plan.tts_delay
    )
    reply = text_reply(REPLY, ttft=plan.llm_ttft, token_delay=plan.token_delay)
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp, speech:
        wav = espeak_to_wav(UTTERANCE, Path(tmp) / "utterance.wav")
        with RemoteLLMServer(default=reply) as llm:
            for n in plan.levels:
                print(f"capacity: {n} sessions ...", file=sys.stderr, flush=True)
                work = Path(tempfile.mkdtemp(dir=tmp))
                turns = 1 + (plan.lone_turns if n == 1 else plan.measured_turns)
                stagger = plan.stagger if n > 1 else 0
                spec = {"sessions": n, "turns": turns, "wav": str(wav), "stagger": stagger}
                env = _worker_env(plan, llm.base_url, speech.base_url, work)
                env["CAPACITY_SPEC"] = json.dumps(spec | {"pause": plan.pause, "dir": str(work)})
                result.levels.append(_level(n, turns, env, work))
                if not result.within_budget(result.levels[-1]):
                    break
    return result


def _worker_env(plan: CapacityPlan, llm_url: str, speech_url: str, work: Path) -> dict[str, str]:
    env = child_env(
        drop=("LLM_", "STT_", "TTS_", "AGENT_", "LIVEKIT_", "OTEL_", "PROMETHEUS"),
        LLM_BASE_URL=llm_url,
        LLM_MODEL="bench-model",
        LLM_MAX_RETRIES="0",
        TTS_BASE_URL=speech_url,
        AGENT_GREETING="",
        BUILTIN_TOOLS="false",
        LOG_LEVEL="warning",
        MAX_SESSIONS="10000",
        WORKER_PORT="0",
        PROMETHEUS_MULTIPROC_DIR=str(work / "metrics"),
    )
    if plan.embedded_stt:
        env.update(STT_PROVIDER="moonshine", STT_ON_PAUSE="true")
    else:
        # one sentence for any clip: the pause path needs a real STT (`bench.voice_latency`)
        env.update(STT_PROVIDER="speaches", STT_BASE_URL=speech_url, STT_ON_PAUSE="false")
    return env


def _level(n: int, turns: int, env: dict[str, str], work: Path) -> Level:
    with FakeLiveKitDispatch() as dispatch, (work / "worker.log").open("w") as log:
        env["LIVEKIT_URL"] = dispatch.url
        cmd = [sys.executable, "-m", "bench.capacity_worker"]
        worker = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            dispatch.wait_for("registration", dispatch.registered, within=120)
            # calls arrive one after another: livekit counts a job it has accepted but not
            # yet started as a share of the threshold, and turns down a burst of offers
            offers = (dispatch.offer_job() for _ in range(n))  # each once the last has started
            jobs = {job: _started_pid(dispatch, work, job) for job in offers}
            return _measure_level(n, turns, work, jobs, worker.pid)
        finally:
            stop(worker, within=120)


def _started_pid(dispatch: FakeLiveKitDispatch, work: Path, job: str) -> int:
    path = work / f"{job}.started"
    answer = dispatch.wait_for(f"answer to {job}", lambda: dispatch.availability(job))
    if not answer.available:
        raise RuntimeError(f"the worker turned {job} down; see {work / 'worker.log'}")

    def pid() -> str | None:
        return (path.read_text() or None) if path.exists() else None

    # forking and prewarming 40 job processes on 2 busy cores takes a while
    return int(dispatch.wait_for(f"{job} started", pid, within=300))


def _measure_level(n: int, turns: int, work: Path, jobs: dict[str, int], worker: int) -> Level:
    """Let the N sessions talk; their CPU, PSS and end of speech -> first audio."""
    procs = {pid: psutil.Process(pid) for pid in [*jobs.values(), worker]}
    cpu_start = {pid: sum(p.cpu_times()[:2]) for pid, p in procs.items()}  # user + system
    cpu_last, pss_peak = dict(cpu_start), {pid: 0.0 for pid in jobs.values()}
    machine_start, started = _machine_busy(), time.perf_counter()
    (work / "go").touch()
    deadline = time.monotonic() + 120 + turns * 20
    while not all((work / f"{job}.json").exists() for job in jobs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"sessions did not finish; see {work / 'worker.log'}")
        # PSS (smaps) is costly to read: every 5 s is enough for a plateau
        sample_pss = int(time.perf_counter() - started) % 5 == 0
        for pid, proc in procs.items():
            try:
                cpu_last[pid] = sum(proc.cpu_times()[:2])
                if pid != worker and (sample_pss or not pss_peak[pid]):
                    pss_peak[pid] = max(pss_peak[pid], pss_mb(pid))
            except (psutil.Error, OSError):
                pass  # the session ended and its process with it
        time.sleep(1.0)
    wall = time.perf_counter() - started
    machine_busy = _machine_busy() - machine_start
    e2e: list[float] = []
    silent = 0
    for job in jobs:
        per_turn = json.loads((work / f"{job}.json").read_text())["e2e"][1:]  # 1st: warm-up
        e2e.extend(x for x in per_turn if x is not None)
        # no audio, or no answer at all before the session gave up waiting
        silent += per_turn.count(None) + max(turns - 1 - len(per_turn), 0)
    used = {pid: cpu_last[pid] - cpu_start[pid] for pid in procs}
    job_cpu = sum(used[pid] for pid in jobs.values())
    return Level(
        sessions=n,
        turns=len(e2e),
        p50_ms=pct(e2e, 50) * 1000,
        p95_ms=pct(e2e, 95) * 1000,
        cpu_per_session=job_cpu / wall / n,
        worker_cpu=used[worker] / wall,
        pss_per_session_mb=sum(pss_peak.values()) / max(len(pss_peak), 1),
        silent_turns=silent,
        other_cpu=max(machine_busy - job_cpu - used[worker], 0.0) / wall,
    )


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))


def render(result: CapacityResult) -> list[str]:
    plan, stt = result.plan, f"Scripted STT {result.plan.stt_delay * 1000:.0f} ms"
    return [
        f"{'Moonshine tiny-en in each job' if plan.embedded_stt else stt}, LLM first token "
        f"{plan.llm_ttft * 1000:.0f} ms, TTS first byte {plan.tts_delay * 1000:.0f} ms; "
        f"{result.cores} cores. Method: docs/benchmarks.md#capacity.",
        table(
            f"sessions | turns | silent | p50 ms | p95 ms | within +{plan.budget_ms:.0f} ms | "
            "CPU per session (cores) | worker main CPU | PSS per session MB | other CPU (cores)",
            [result.row(lv) for lv in result.levels],
        ),
        f"**`capacity.voice_sessions_per_worker{'_embedded' if plan.embedded_stt else ''}` = "
        f"{result.sessions_per_worker}** (the largest N whose p95 stays within "
        f"+{plan.budget_ms:.0f} ms of one session's).",
    ]


def numbers(result: CapacityResult) -> dict[str, Any]:
    suffix = "_embedded" if result.plan.embedded_stt else ""  # beside the scripted run's keys
    return {
        f"voice_sessions_per_worker{suffix}": result.sessions_per_worker,
        f"budget_ms{suffix}": result.plan.budget_ms,
        f"cores{suffix}": result.cores,
        f"date{suffix}": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        f"levels{suffix}": [asdict(lv) for lv in result.levels],
    }
