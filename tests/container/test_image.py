"""The Docker image, built from this checkout and run by a real Docker engine.

Skipped where no engine runs; CI installs docker.io and debootstrap and starts dockerd
(.ci/run), so there it runs. The first run on a machine makes the stand-in base image
(about 2 minutes, see engine.py) and installs the dependencies (about 2 minutes); later
runs reuse both from the engine's cache.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from testing.network import answers_live, other_address
from testing.polling import free_port
from testing.servers.livekit_server import FakeLiveKitAgentServer
from testing.servers.openai_server import ScriptedLLMServer, text_reply
from tests.container.engine import (
    TEST_IMAGE,
    NoBaseImage,
    docker,
    docker_unavailable,
    prepare_test_image,
)

pytestmark = pytest.mark.timeout(300)

IMAGE = TEST_IMAGE
# an LLM that is never asked: `start` only reads the configuration
OFFLINE_ENV = ["-e", "LLM_BASE_URL=http://127.0.0.1:9/v1", "-e", "LLM_MODEL=m"]
ONE_RETRY = ["-e", "WORKER_CONNECT_RETRIES=1"]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(reason)
    try:
        yield from prepare_test_image()  # built already if .ci/run started it early
    except NoBaseImage as e:
        pytest.skip(str(e))


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"voice-agent-test-{uuid.uuid4().hex[:8]}"
    yield name
    docker("rm", "-f", name, check=False)


def run(
    options: list[str], image: str, *command: str, timeout: float = 120, input: str | None = None
) -> str:
    return docker("run", "--rm", *options, image, *command, timeout=timeout, input=input).stdout


def test_image_runs_as_a_user_with_the_real_sources_and_no_build_leftovers(image: str) -> None:
    script = (
        "import os, agent, providers, pathlib;"
        "from providers import PLACEHOLDER_API_KEY;"
        "print(os.getuid(), pathlib.Path(agent.__file__).parent, os.path.exists('/src/build'))"
    )
    out = run(["--network=none", "--entrypoint", "python"], image, "-c", script)
    uid, package_dir, leftovers = out.split()
    assert uid != "0"
    assert package_dir.endswith(("site-packages/agent", "dist-packages/agent"))
    assert leftovers == "False"


def test_chat_in_the_container_talks_to_the_scripted_server_over_host_networking(
    image: str, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(text_reply("Hello from\nthe scripted server."))
    env = ["-e", f"LLM_BASE_URL={llm_server.base_url}", "-e", "LLM_MODEL=test-model"]
    out = run(["-i", "--network=host", *env], image, "chat", input="Hi there\n")
    assert out == "Hello from the scripted server.\n"
    assert llm_server.requests, "the container never reached the server"


def test_start_offline_without_livekit_exits_nonzero_having_downloaded_nothing(
    image: str,
) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network=none", *OFFLINE_ENV, *ONE_RETRY, image],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "voice-agent: worker stopped: LiveKit unreachable at ws://localhost:7880" in (
        result.stderr
    )
    # with no network at all, a model fetched at start would have failed loudly
    assert "download" not in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_docker_stop_ends_the_worker_cleanly_within_the_grace_period(
    image: str, container_name: str
) -> None:
    docker(
        "run", "-d", "--name", container_name, "--network=none", *OFFLINE_ENV,
        "-e", "WORKER_CONNECT_RETRIES=1000", image,
    )  # fmt: skip
    probe = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8081/live').status)"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        live = docker("exec", container_name, "python", "-c", probe, check=False)
        if live.stdout.strip() == "200":
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the worker never answered /live")
    ready = docker(
        "exec", container_name, "python", "-c",
        "import urllib.request as u, urllib.error as e\n"
        "try: u.urlopen('http://127.0.0.1:8081/ready')\n"
        "except e.HTTPError as err: print(err.code)",
    )  # fmt: skip
    assert ready.stdout.strip() == "503"  # no LiveKit: alive, not ready

    docker("stop", "-t", "30", container_name, timeout=90)
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container_name).stdout)
    assert state["ExitCode"] == 0, docker("logs", container_name).stderr[-3000:]
    assert state["OOMKilled"] is False
    assert "draining worker" in docker("logs", container_name).stderr


def test_healthcheck_turns_healthy_once_the_worker_registers_with_livekit(
    image: str, container_name: str
) -> None:
    with FakeLiveKitAgentServer() as livekit:
        port = free_port()
        docker(
            "run", "-d", "--name", container_name, "--network=host", *OFFLINE_ENV,
            "-e", f"LIVEKIT_URL={livekit.url}", "-e", f"WORKER_PORT={port}", image,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        health = ""
        while time.monotonic() < deadline:
            health = docker(
                "inspect", "--format", "{{.State.Health.Status}}", container_name
            ).stdout.strip()
            if health == "healthy":
                break
            time.sleep(1)
        assert health == "healthy", docker("logs", container_name).stderr[-3000:]
        assert livekit.registrations == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/worker", timeout=5) as resp:
            status = json.load(resp)
        assert (status["state"], status["url"]) == ("registered", livekit.url)


def test_the_health_port_answers_from_outside_the_container(
    image: str, container_name: str
) -> None:
    """The image listens on every interface: /live answers at this machine's own address
    (host networking; with 127.0.0.1 inside, only loopback would answer)."""
    address = other_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    port = free_port()
    docker(
        "run", "-d", "--name", container_name, "--network=host", *OFFLINE_ENV,
        "-e", f"LIVEKIT_URL=ws://127.0.0.1:{free_port()}", "-e", "WORKER_CONNECT_RETRIES=1000",
        "-e", f"WORKER_PORT={port}", image,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not answers_live("127.0.0.1", port):
        assert time.monotonic() < deadline, docker("logs", container_name).stderr[-3000:]
        time.sleep(0.5)
    assert answers_live(address, port)
