"""The worker as LiveKit's dispatcher sees it: its load, its threshold, its drain, and
the metrics it serves, with real job processes (livekit's proc pool, forked per job).

The worker runs as `voice-agent start` runs (livekit's CLI, `tests.voice.held_jobs`)
against the dispatch side of LiveKit's protocol (`FakeLiveKitDispatch`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from livekit.protocol import agent
from prometheus_client.parser import text_string_to_metric_families

from testing.cli import ROOT, chat_env
from testing.polling import free_port
from testing.servers.livekit_dispatch import FakeLiveKitDispatch
from testing.servers.openai_server import ScriptedLLMServer, text_reply
from testing.servers.otlp_receiver import OtlpReceiver
from testing.servers.tts_server import EspeakTTSServer
from testing.servers.whisper_server import WhisperServer

pytestmark = pytest.mark.timeout(240)

ANSWER = "It is nine in the evening in Tokyo."


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    port: int
    marks: Path
    dispatch: FakeLiveKitDispatch

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return str(r.read().decode())

    def samples(self) -> dict[str, float]:
        """`/metrics` as {'name{label="v"}': value}."""
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics")):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def take_job(self) -> str:
        """Offer a job, check it was accepted, wait until its session runs."""
        job_id = self.dispatch.offer_job()
        answer = self.dispatch.wait_for("answer", lambda: self.dispatch.availability(job_id))
        assert answer.available, f"worker refused {job_id}"
        self.wait_mark(job_id, "started")
        return job_id

    def wait_mark(self, job_id: str, mark: str, within: float = 120) -> None:
        path = self.marks / f"{job_id}.{mark}"
        self.dispatch.wait_for(f"{mark} mark of {job_id}", path.exists, within=within)

    def status_with(self, job_count: int) -> agent.UpdateWorkerStatus:
        """The first status report the worker sent with `job_count` jobs running."""
        return self.dispatch.wait_for(
            f"status with {job_count} jobs",
            lambda: next((s for s in self.dispatch.statuses() if s.job_count == job_count), None),
        )


@pytest.fixture
def start_worker(tmp_path: Path, llm_server: ScriptedLLMServer) -> Iterator[Callable[..., Worker]]:
    started: list[tuple[Worker, FakeLiveKitDispatch]] = []

    def start(**env: str) -> Worker:
        dispatch = FakeLiveKitDispatch().start()
        port = free_port()
        full_env = chat_env(
            llm_server,
            LIVEKIT_URL=dispatch.url,
            WORKER_PORT=str(port),
            AGENT_GREETING="",
            BUILTIN_TOOLS="false",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
            HELD_JOB_DIR=str(tmp_path),
            **env,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.voice.held_jobs"],
            env=full_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        worker = Worker(proc=proc, port=port, marks=tmp_path, dispatch=dispatch)
        started.append((worker, dispatch))
        dispatch.wait_for("registration", dispatch.registered, within=120)
        return worker

    yield start
    for worker, dispatch in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.proc.communicate(timeout=30)
        dispatch.stop()


def test_load_is_active_sessions_over_max_sessions_and_a_full_worker_refuses_jobs(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker(MAX_SESSIONS="2", LOAD_THRESHOLD="1.0", HELD_JOB_SECONDS="600")
    idle = worker.status_with(0)
    assert idle.load == 0.0 and idle.status == agent.WorkerStatus.WS_AVAILABLE

    worker.take_job()
    half = worker.status_with(1)
    assert half.load == pytest.approx(0.5)
    assert half.status == agent.WorkerStatus.WS_AVAILABLE

    worker.take_job()
    full = worker.status_with(2)
    assert full.load == pytest.approx(1.0)
    assert full.status == agent.WorkerStatus.WS_FULL
    # LiveKit still offers one: the worker turns it down
    third = worker.dispatch.offer_job()
    answer = worker.dispatch.wait_for("answer", lambda: worker.dispatch.availability(third))
    assert not answer.available
    assert json.loads(worker.get("/worker"))["active_sessions"] == 2
    assert worker.samples()["voice_agent_active_sessions"] == 2


def test_sigterm_drains_live_sessions_refuses_new_jobs_and_exits_0(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker(HELD_JOB_SECONDS="6", WORKER_DRAIN_TIMEOUT="120")
    jobs = [worker.take_job(), worker.take_job()]
    statuses_before = len(worker.dispatch.statuses())
    worker.proc.send_signal(signal.SIGTERM)

    # the worker tells LiveKit it is full, and turns down a job offered while it drains
    worker.dispatch.wait_for(
        "full status after SIGTERM",
        lambda: any(
            s.status == agent.WorkerStatus.WS_FULL
            for s in worker.dispatch.statuses()[statuses_before:]
        ),
    )
    late = worker.dispatch.offer_job()
    answer = worker.dispatch.wait_for("answer", lambda: worker.dispatch.availability(late))
    assert not answer.available
    assert not (worker.marks / f"{late}.started").exists()

    output, _ = worker.proc.communicate(timeout=180)
    assert worker.proc.returncode == 0, output[-3000:]
    # both sessions ran to their end before the worker exited
    for job_id in jobs:
        assert (worker.marks / f"{job_id}.finished").exists(), output[-3000:]


def test_drain_is_bounded_by_worker_drain_timeout(start_worker: Callable[..., Worker]) -> None:
    worker = start_worker(HELD_JOB_SECONDS="3600", WORKER_DRAIN_TIMEOUT="2")
    job = worker.take_job()
    worker.proc.send_signal(signal.SIGTERM)
    # a session that would last an hour does not keep the worker: it exits when the
    # drain times out (pytest's timeout is the bound on this test)
    output, _ = worker.proc.communicate(timeout=180)
    assert worker.proc.returncode == 0, output[-3000:]
    assert "drain timed out" in output
    assert not (worker.marks / f"{job}.finished").exists()


def test_a_spoken_session_in_a_job_process_reaches_metrics_and_traces(
    start_worker: Callable[..., Worker],
    llm_server: ScriptedLLMServer,
    whisper_server: WhisperServer,
    tts_server: EspeakTTSServer,
    question_wav: Path,
) -> None:
    llm_server.script(text_reply(ANSWER))
    with OtlpReceiver() as collector:
        worker = start_worker(
            STT_PROVIDER="speaches",
            STT_BASE_URL=whisper_server.base_url,
            STT_MODEL="tiny.en",
            TTS_BASE_URL=tts_server.base_url,
            HELD_JOB_WAV=str(question_wav),
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.origin,
        )
        _spoken_session_metrics(worker)
        # the job process flushed its spans as it ended: ours and livekit's, one trace
        names = {span.name for span in collector.spans}
        assert {"voice_agent.turn", "voice_agent.llm_pass", "agent_turn", "llm_node"} <= names
        (turn,) = [span for span in collector.spans if span.name == "voice_agent.turn"]
        (llm_node,) = [span for span in collector.spans if span.name == "llm_node"]
        assert turn.parent_span_id == llm_node.span_id
        # conversation text stays out of exported spans
        assert not [s for s in collector.spans if ANSWER in str(s.attributes)]


def _spoken_session_metrics(worker: Worker) -> None:
    before = worker.samples()
    assert before.get("voice_agent_turns_total", 0) == 0
    job = worker.take_job()
    worker.wait_mark(job, "finished")
    worker.dispatch.wait_for("job end", lambda: _ended(worker))

    m = worker.samples()
    assert m['voice_agent_turns_total{outcome="answered"}'] == 1
    assert m.get('voice_agent_turns_total{outcome="apology"}', 0) == 0
    assert m["voice_agent_eos_to_first_audio_seconds_count"] == 1
    assert m["voice_agent_eos_to_first_audio_seconds_sum"] > 0
    assert m['voice_agent_llm_ttft_seconds_count{pass_kind="speak-plain"}'] == 1
    assert m["voice_agent_stt_duration_seconds_count"] >= 1
    assert m["voice_agent_tts_ttfb_seconds_count"] >= 1
    # the session is over and its process gone: it no longer counts as active
    assert m["voice_agent_active_sessions"] == 0


def deployment_probe(kind: str) -> str:
    deploy = yaml.safe_load_all((ROOT / "deploy" / "voice-agent.yaml").read_text())
    (deployment,) = [d for d in deploy if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return str(container[f"{kind}Probe"]["httpGet"]["path"])


@pytest.mark.parametrize("kind", ["liveness", "readiness"])
def test_the_deployment_probes_answer_200_on_a_registered_worker(
    start_worker: Callable[..., Worker], kind: str
) -> None:
    worker = start_worker()
    worker.status_with(0)  # registered and reporting
    assert worker.get(deployment_probe(kind)).strip()


def _ended(worker: Worker) -> bool:
    statuses = worker.dispatch.statuses()
    return bool(statuses) and statuses[-1].job_count == 0


def test_a_job_process_hears_with_the_stt_in_the_worker_and_no_stt_server(
    start_worker: Callable[..., Worker],
    llm_server: ScriptedLLMServer,
    tts_server: EspeakTTSServer,
    question_wav: Path,
) -> None:
    """The default STT (Moonshine) is loaded by each job process as it starts (livekit forks
    them from its own process) and answers the held session's spoken question."""
    llm_server.script(text_reply(ANSWER))
    worker = start_worker(TTS_BASE_URL=tts_server.base_url, HELD_JOB_WAV=str(question_wav))
    _spoken_session_metrics(worker)
    users = [m for m in llm_server.requests[-1].messages if m["role"] == "user"]
    heard = str(users[-1]["content"]).lower()
    # what tiny-en makes of espeak-ng's "Tokyo" varies ("to? you know"): the question is heard
    assert "what time is it" in heard, heard


def test_metrics_has_every_known_series_at_zero_and_livekits_own_before_any_turn(
    start_worker: Callable[..., Worker], llm_server: ScriptedLLMServer
) -> None:
    worker = start_worker(MAX_SESSIONS="2")
    # livekit's own: the worker's load, from its status loop (this process's memory)

    def with_livekits() -> dict[str, float] | None:
        samples = worker.samples()
        return samples if any(k.startswith("lk_agents_worker_load") for k in samples) else None

    samples = worker.dispatch.wait_for("livekit's metrics on /metrics", with_livekits)
    assert any(k.startswith("lk_agents_worker_load{") for k in samples), sorted(samples)
    for outcome in ("answered", "fallback", "apology", "cancelled"):
        assert samples[f'voice_agent_turns_total{{outcome="{outcome}"}}'] == 0
    for kind in ("tools", "speak", "speak-plain"):
        assert samples[f'voice_agent_llm_ttft_seconds_count{{pass_kind="{kind}"}}'] == 0
    backend = f"openai-compatible:test-model@{llm_server.base_url}"
    for counter in ("voice_agent_backend_errors_total", "voice_agent_fallbacks_total"):
        assert samples[f'{counter}{{backend="{backend}",kind="llm"}}'] == 0
    # BUILTIN_TOOLS=false here: a made-up tool's label is the one tool label known
    for tool_outcome in ("ok", "error", "timeout", "cancelled"):
        key = f'voice_agent_tool_duration_seconds_count{{outcome="{tool_outcome}",tool="unknown"}}'
        assert samples[key] == 0
    assert samples["voice_agent_active_sessions"] == 0
    assert not llm_server.requests  # before any turn
    # a series is exposed once, and without the scraping process's creation time
    text = worker.get("/metrics")
    assert "_created" not in text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == len({line.rsplit(" ", 1)[0] for line in lines})
    worker.proc.send_signal(signal.SIGTERM)  # no session: it exits at once, children too
    worker.proc.communicate(timeout=180)
