"""Tool configuration files: MCP servers (`MCP_CONFIG`) and webhook tools (`WEBHOOK_TOOLS`).

Both are parsed and checked at start-up into plain specs; nothing here connects
anywhere. Secrets are written in the files as `${VAR}` (or `${VAR:-default}`)
references and expanded from the environment mapping the caller passes in, so a
file can be committed and shared. A problem raises `SpecError` with one line
naming the entry and field, e.g. `tools[1].url: expected an http(s) URL`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.config.validation import one_line, url_check

McpTransport = Literal["stdio", "streamable_http", "sse"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
T = TypeVar("T")

# OpenAI's rule for function names; other servers are no more lenient
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# header / env names whose values are credentials: these must be ${VAR} references
_SECRET_NAME = re.compile(r"auth|token|key|secret|password|passwd|cookie|credential", re.I)


class SpecError(ValueError):
    """A tool configuration file is unreadable or wrong; the message is one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServerSpec:
    name: str
    transport: McpTransport
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def __repr__(self) -> str:  # header and env values may be secrets
        where = self.url if self.url is not None else f"{self.command} {' '.join(self.args)}"
        return f"McpServerSpec({self.name!r}, {self.transport}, {where})"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSpec:
    name: str
    description: str
    url: str
    method: HttpMethod = "POST"
    parameters: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    read_only: bool = False
    """Calling it changes nothing, so it may run before the user's turn is confirmed."""

    def __repr__(self) -> str:
        return f"WebhookSpec({self.name!r}, {self.method} {self.url})"


@dataclass(frozen=True, slots=True)
class Loaded(Generic[T]):
    specs: list[T]
    secrets: list[str]
    """Expanded header and env values: never to be logged or spoken."""


# --- ${VAR} expansion ----------------------------------------------------------------


class _Expander:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.secrets: list[str] = []

    def __call__(self, value: str, where: str, *, secret: bool = False) -> str:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            found = self._env.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    raise SpecError(f"{where} references ${{{name}}}, which is not set")
                return default
            # whatever the file keeps out of itself (a key in a URL, a token in an
            # argument) is treated as a secret
            self.secrets.append(found)
            return found

        expanded = _REF.sub(sub, value)
        if secret and expanded:
            self.secrets.append(expanded)
        return expanded

    def mapping(self, values: Mapping[str, str], where: str, *, all_secret: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in values.items():
            if _SECRET_NAME.search(key) and value and not _REF.search(value):
                raise SpecError(
                    f"{where}.{key}: write credentials as a ${{VAR}} reference, not literally"
                )
            out[key] = self(value, f"{where}.{key}", secret=all_secret or bool(_REF.search(value)))
        return out


# --- MCP_CONFIG ------------------------------------------------------------------------


class _McpEntry(BaseModel):
    # the same files feed other MCP clients, which add keys of their own
    model_config = ConfigDict(extra="ignore")

    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    type: str | None = None
    transport: str | None = None
    disabled: bool = False


class _McpFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mcpServers: dict[str, _McpEntry]


_TRANSPORTS: dict[str, McpTransport] = {
    "stdio": "stdio",
    "sse": "sse",
    "http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamable_http": "streamable_http",
    "streamablehttp": "streamable_http",
}


def load_mcp_config(path: Path, env: Mapping[str, str]) -> Loaded[McpServerSpec]:
    data = _read(path)
    try:
        parsed = _McpFile.model_validate(data)
    except ValidationError as e:
        raise SpecError(_pydantic_line(e)) from None
    expand = _Expander(env)
    specs: list[McpServerSpec] = []
    for name, entry in parsed.mcpServers.items():
        where = f"mcpServers.{name}"
        if entry.disabled:
            continue
        if not TOOL_NAME.match(name):
            raise SpecError(f"{where}: server names may use only letters, digits, _ and -")
        if (entry.url is None) == (entry.command is None):
            raise SpecError(f"{where}: give either url (HTTP/SSE) or command (stdio)")
        declared = (entry.type or entry.transport or "").strip().lower()
        if declared and declared not in _TRANSPORTS:
            raise SpecError(f"{where}.type: expected stdio, http or sse, got {declared!r}")
        if entry.command is not None:
            if declared not in ("", "stdio"):
                raise SpecError(f"{where}.type: a server with a command speaks stdio")
            specs.append(
                McpServerSpec(
                    name=name,
                    transport="stdio",
                    command=expand(entry.command, f"{where}.command"),
                    args=[expand(a, f"{where}.args[{i}]") for i, a in enumerate(entry.args)],
                    env=expand.mapping(entry.env, f"{where}.env", all_secret=False),
                    cwd=expand(entry.cwd, f"{where}.cwd") if entry.cwd else None,
                )
            )
            continue
        assert entry.url is not None
        url = _check_url(expand(entry.url, f"{where}.url"), f"{where}.url")
        if declared in ("", "stdio"):
            # unstated: the current transport, unless the URL says it is the legacy SSE one
            transport: McpTransport = (
                "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "streamable_http"
            )
            if declared == "stdio":
                raise SpecError(f"{where}.type: a server with a url speaks http or sse")
        else:
            transport = _TRANSPORTS[declared]
        specs.append(
            McpServerSpec(
                name=name,
                transport=transport,
                url=url,
                headers=expand.mapping(entry.headers, f"{where}.headers", all_secret=True),
            )
        )
    return Loaded(specs, expand.secrets)


# --- WEBHOOK_TOOLS ---------------------------------------------------------------------


class _WebhookEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=TOOL_NAME.pattern)]
    description: Annotated[str, Field(min_length=1)]
    url: str
    method: HttpMethod = "POST"
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    read_only: bool = False

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("parameters")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type") != "object":
            raise ValueError('expected a JSON schema with "type": "object"')
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as e:
            raise ValueError(f"not a valid JSON schema: {e.message}") from None
        return v


class _WebhookFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tools: list[_WebhookEntry]


def load_webhook_tools(path: Path, env: Mapping[str, str]) -> Loaded[WebhookSpec]:
    try:
        parsed = _WebhookFile.model_validate(_read(path))
    except ValidationError as e:
        raise SpecError(_pydantic_line(e)) from None
    expand = _Expander(env)
    specs: list[WebhookSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(parsed.tools):
        where = f"tools[{i}]"
        if entry.name in seen:
            raise SpecError(f"{where}.name: {entry.name!r} is used twice")
        seen.add(entry.name)
        specs.append(
            WebhookSpec(
                name=entry.name,
                description=entry.description,
                url=_check_url(expand(entry.url, f"{where}.url"), f"{where}.url"),
                method=entry.method,
                parameters=entry.parameters,
                headers=expand.mapping(entry.headers, f"{where}.headers", all_secret=True),
                timeout=entry.timeout,
                read_only=entry.read_only,
            )
        )
    return Loaded(specs, expand.secrets)


# --- helpers ---------------------------------------------------------------------------


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        # YAML is a superset of JSON: one parser reads both
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SpecError(f"{path} is not valid {kind}{at}") from None


_check_http_url = url_check()


def _check_url(url: str, where: str) -> str:
    try:
        return _check_http_url(url) or ""
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from None


def _pydantic_line(e: ValidationError) -> str:
    return one_line(
        e, messages={"string_pattern_mismatch": "use only letters, digits, _ and - (at most 64)"}
    )
