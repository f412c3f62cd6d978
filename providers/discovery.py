"""Finding backends: the usual ports of self-hosted servers, and what each one serves.

`discover` asks every candidate at once, with short timeouts, so a scan of a machine
with nothing running costs one connect timeout, not one per port. A server is asked
for its model list (`/v1/models`, and Ollama's own `/api/tags`); its models say which
roles (LLM, STT, TTS) it can fill. Like the rest of `providers/`, nothing here reads
the environment, and a key given for a server is sent, never returned or printed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx2

from .probes import describe_error

Role = Literal["llm", "stt", "tts"]
Status = Literal["ok", "needs-key", "down", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownPort:
    port: int
    kind: str
    """What usually listens there; refined from the answers (vLLM or Speaches on 8000)."""


KNOWN_PORTS: tuple[KnownPort, ...] = (
    KnownPort(port=11434, kind="ollama"),
    KnownPort(port=1234, kind="lm-studio"),
    KnownPort(port=8000, kind="vllm-or-speaches"),
    KnownPort(port=8080, kind="llama.cpp"),
    KnownPort(port=4000, kind="litellm"),
    KnownPort(port=8880, kind="kokoro"),
    KnownPort(port=7880, kind="livekit"),
)

# what a model's id says it does; anything else that is listed is taken for an LLM
_STT_MODEL = re.compile(r"whisper|transcribe|parakeet|canary|\bstt\b", re.I)
_TTS_MODEL = re.compile(r"kokoro|piper|\btts\b|-tts|speech|xtts|orpheus|melo", re.I)
_NOT_A_MODEL = re.compile(r"embed|rerank|vad", re.I)
# what a kind serves even when its model list does not say so (or there is none)
KIND_ROLES: dict[str, frozenset[Role]] = {
    "ollama": frozenset({"llm"}),
    "kokoro": frozenset({"tts"}),
    "speaches": frozenset({"stt", "tts"}),
}


def model_role(model_id: str) -> Role | None:
    if _STT_MODEL.search(model_id):
        return "stt"
    if _TTS_MODEL.search(model_id):
        return "tts"
    return None if _NOT_A_MODEL.search(model_id) else "llm"


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    """One server found (or not) at one address."""

    kind: str
    url: str
    """Its root (`http://host:port`, or `ws://host:port` for LiveKit): what users type."""
    status: Status
    detail: str = ""
    """Why it is not `ok` (`connection refused ...`, `HTTP 401`); never a key."""
    models: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    """The key that made it answer, if one was needed."""

    @property
    def api_url(self) -> str:
        """The OpenAI-compatible base URL (`.../v1`)."""
        return f"{self.url}/v1"

    @property
    def roles(self) -> frozenset[Role]:
        found = {role for m in self.models if (role := model_role(m)) is not None}
        return frozenset(found) | KIND_ROLES.get(self.kind, frozenset())

    def models_for(self, role: Role) -> list[str]:
        if self.kind == "kokoro" and role == "tts":
            return list(self.models)  # Kokoro-FastAPI lists its aliases (tts-1, kokoro)
        return [m for m in self.models if model_role(m) == role]

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "needs-key") and self.kind != "livekit"


def candidates(
    hosts: Iterable[str], extra_urls: Iterable[str], *, ports: Iterable[KnownPort] = KNOWN_PORTS
) -> list[tuple[str, str]]:
    """(kind, root URL) for the usual ports on each host, then each added URL."""
    known = list(ports)
    found = [
        (k.kind, f"{'ws' if k.kind == 'livekit' else 'http'}://{host}:{k.port}")
        for host in hosts
        for k in known
    ]
    return found + [("", root_url(url)) for url in extra_urls]


def root_url(url: str) -> str:
    """`http://h:p/v1/` -> `http://h:p`; a bare `h:p` is taken for http."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    path = parts.path.rstrip("/").removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")).rstrip("/")


async def discover(
    targets: Sequence[tuple[str, str]],
    *,
    request_timeout: float = 1.0,
    api_keys: dict[str, str] | None = None,
) -> list[Server]:
    """Ask every (kind, URL) at once; one `Server` each, in the order given.

    `kind` "" means unknown (a URL the user added): it is found out from the answers.
    `api_keys` maps a root URL to the key to send it.
    """
    keys = api_keys or {}
    limits = httpx2.Timeout(request_timeout, connect=min(request_timeout, 0.5))
    async with httpx2.AsyncClient(timeout=limits, follow_redirects=True) as client:
        return list(
            await asyncio.gather(
                *(inspect(client, kind, url, api_key=keys.get(url)) for kind, url in targets)
            )
        )


async def inspect(
    client: httpx2.AsyncClient, kind: str, url: str, *, api_key: str | None = None
) -> Server:
    """What answers at `url`: LiveKit, Ollama, or an OpenAI-compatible server."""
    if kind == "livekit" or url.startswith(("ws://", "wss://")):
        return await _inspect_livekit(client, url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    server = Server(kind=kind or "openai-compatible", url=url, status="down", api_key=api_key)
    try:
        if kind in ("ollama", ""):
            tags = await _ollama_tags(client, url, headers)
            if tags is not None:
                return replace(server, kind="ollama", status="ok", models=tags)
        resp = await client.get(f"{url}/v1/models", headers=headers)
    except Exception as e:
        return replace(server, detail=describe_error(e))
    if resp.status_code in (401, 403):
        return replace(server, status="needs-key", detail=f"HTTP {resp.status_code}")
    if resp.status_code == 404:
        # alive, without a model list (some speech servers): usable, models named by hand
        return replace(server, status="ok", detail="no model list")
    if resp.status_code != 200:
        return replace(server, status="error", detail=f"HTTP {resp.status_code}")
    models = _model_ids(resp)
    return replace(server, kind=_refine(server.kind, models), status="ok", models=models)


async def _inspect_livekit(client: httpx2.AsyncClient, url: str) -> Server:
    parts = urlsplit(url)
    scheme = "https" if parts.scheme in ("wss", "https") else "http"
    server = Server(kind="livekit", url=url, status="down")
    try:
        # livekit-server answers its root with 200 "OK" (its health check)
        resp = await client.get(urlunsplit((scheme, parts.netloc, "/", "", "")))
    except Exception as e:
        return replace(server, detail=describe_error(e))
    if resp.status_code == 200:
        return replace(server, status="ok")
    return replace(server, status="error", detail=f"HTTP {resp.status_code}")


async def _ollama_tags(
    client: httpx2.AsyncClient, url: str, headers: dict[str, str]
) -> tuple[str, ...] | None:
    resp = await client.get(f"{url}/api/tags", headers=headers)
    if resp.status_code != 200:
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("models"), list):
        return None
    names = (m.get("name") or m.get("model") for m in body["models"] if isinstance(m, dict))
    return tuple(str(n) for n in names if n)


def _model_ids(resp: httpx2.Response) -> tuple[str, ...]:
    try:
        body = resp.json()
    except ValueError:
        return ()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return ()
    return tuple(str(m["id"]) for m in data if isinstance(m, dict) and m.get("id"))


def _refine(kind: str, models: Sequence[str]) -> str:
    """Port 8000 is vLLM's and Speaches': speech models mean Speaches."""
    if kind == "vllm-or-speaches":
        speech = any(model_role(m) in ("stt", "tts") for m in models)
        return "speaches" if speech else "vllm"
    return kind
