"""deploy/: the Kubernetes manifests validate against the Kubernetes schemas offline
(kubernetes-validate ships them), and agree with the worker they deploy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent.config.resolved import SESSIONS_PER_WORKER, SESSIONS_PER_WORKER_EMBEDDED, load_config
from agent.config.settings import Settings
from agent.ops import metrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33.0"
"""The oldest Kubernetes the manifests promise to work on."""


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in documents() if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_validates_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    # strict: a misspelt field is an error, not something the API server drops
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_deployment() -> None:
    deployment = by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)


def test_grace_period_covers_prestop_and_the_drain_timeout() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    drain = int(by_kind("ConfigMap")["data"]["WORKER_DRAIN_TIMEOUT"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # SIGKILL must not land before the drain has had its full time
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + 10


def test_probes_and_scrape_use_the_worker_port_and_its_paths() -> None:
    config = by_kind("ConfigMap")["data"]
    template = by_kind("Deployment")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == int(config["WORKER_PORT"])
    assert container["readinessProbe"]["httpGet"]["port"] == port["name"]
    assert container["livenessProbe"]["httpGet"]["port"] == port["name"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == config["WORKER_PORT"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_config_map_is_a_valid_worker_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap passes the same checks as start-up, backends resolved included: a
    default that changes (the STT moved into the worker) cannot leave the manifests naming a
    combination the worker refuses. The secretRef (LiveKit's key and secret) is the user's."""
    monkeypatch.chdir(tmp_path)  # no .env of this checkout
    config = by_kind("ConfigMap")["data"]
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    resolved = load_config()
    assert resolved.settings.max_sessions == int(config["MAX_SESSIONS"])
    # a fleet shares one STT server: Moonshine in every job process costs ~260 MB a session
    (stt,) = resolved.backends.stt_backends
    assert stt.options.location == config["STT_BASE_URL"]


def test_autoscaler_targets_the_session_gauge_below_max_sessions() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == by_kind("Deployment")["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == metrics.ACTIVE_SESSIONS.describe()[0].name
    target = float(metric["pods"]["target"]["averageValue"])
    max_sessions = int(by_kind("ConfigMap")["data"]["MAX_SESSIONS"])
    # scale out before workers are full, so that new calls find room
    assert 0 < target < max_sessions


def test_sessions_per_worker_follow_the_capacity_benchmark() -> None:
    """MAX_SESSIONS, in the worker's defaults (STT on a server, STT in the worker) and in
    the ConfigMap (Speaches), is what the capacity benchmark measured (bench/results.json);
    a new measurement changes them together."""
    measured = json.loads((ROOT / "bench" / "results.json").read_text())["capacity"]
    per_worker = measured["voice_sessions_per_worker"]
    assert per_worker == SESSIONS_PER_WORKER
    assert measured["voice_sessions_per_worker_embedded"] == SESSIONS_PER_WORKER_EMBEDDED
    assert int(by_kind("ConfigMap")["data"]["MAX_SESSIONS"]) == per_worker
    # the CPU request covers what that many sessions and the worker used in the benchmark
    (level,) = [lvl for lvl in measured["levels"] if lvl["sessions"] == per_worker]
    used = per_worker * level["cpu_per_session"] + level["worker_cpu"]
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert float(container["resources"]["requests"]["cpu"]) >= used


@pytest.mark.parametrize(
    ("fields", "sessions"),
    [
        ({"stt_provider": "moonshine"}, SESSIONS_PER_WORKER_EMBEDDED),
        ({"stt_provider": "speaches"}, SESSIONS_PER_WORKER),
        ({"stt_provider": "moonshine", "max_sessions": 3}, 3),
    ],
)
def test_a_worker_takes_fewer_sessions_when_it_transcribes_them_itself(
    fields: dict[str, Any], sessions: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("MAX_SESSIONS", raising=False)
    config = load_config(llm_base_url="http://127.0.0.1:9/v1", llm_model="m", **fields)
    assert config.sessions_per_worker == sessions


def test_the_image_and_the_manifests_listen_on_every_interface() -> None:
    """Outside a container WORKER_PORT listens on 127.0.0.1 only; the kubelet's probes and
    Prometheus reach a pod from outside it, so the manifests and the image say 0.0.0.0."""
    assert Settings.model_fields["worker_host"].default == "127.0.0.1"
    assert by_kind("ConfigMap")["data"]["WORKER_HOST"] == "0.0.0.0"
    env = re.findall(r"^ENV (.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert "WORKER_HOST=0.0.0.0" in " ".join(env).split()
    # .env.example used as a container's --env-file must not override the image's (an
    # empty WORKER_HOST= would: it reads as unset, which is 127.0.0.1)
    assert not re.search(r"^WORKER_HOST=", (ROOT / ".env.example").read_text(), re.MULTILINE)
