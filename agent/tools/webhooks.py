"""Webhook tools: an HTTP endpoint per tool (n8n, Home Assistant, Zapier, ...), from a file.

Each configured webhook becomes a livekit raw function tool, so the turn engine runs
it like any other tool. The model's arguments are checked against the tool's JSON
schema before anything is sent, and that schema refuses properties the tool does not
declare (unless the file sets `additionalProperties`); failures become `ToolError`s
the model can read, without status codes, URLs or header values.

GET and DELETE send the arguments in the query, after the parameters the configured
URL already has, which win: the model cannot override a pinned `entity=`. Responses
are read as a stream up to `TOOL_RESPONSE_MAX_BYTES`, and redacted before the model
reads them (a body that echoes the request would carry its `Authorization`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2
import jsonschema
from livekit.agents import llm
from livekit.agents.llm import ToolError, function_tool

from agent.config.tool_files import WebhookSpec
from agent.ops.logging import get_logger, redact
from agent.tools.read_only import mark_read_only
from agent.tools.results import CUT_MARK, as_text, clip, read_capped

# livekit's tool wrappers are generic over the wrapped function's signature
_RawTool = llm.RawFunctionTool[..., Any]

log = get_logger("agent.tools.webhooks")

_ERROR_BODY_CHARS = 300
DEFAULT_MAX_RESPONSE_BYTES = 1_000_000


class WebhookToolset(llm.Toolset):
    """The configured webhook tools, sharing one HTTP connection pool (closed by `aclose`)."""

    def __init__(
        self,
        specs: Sequence[WebhookSpec],
        *,
        max_result_chars: int = 4000,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        # connections are pooled across calls; timeouts are per tool (set on each request)
        self._client = httpx2.AsyncClient(follow_redirects=False)
        self._max_chars = max_result_chars
        self._max_bytes = max_response_bytes
        super().__init__(id="webhooks", tools=[self._make_tool(spec) for spec in specs])

    async def aclose(self) -> None:
        await super().aclose()
        await self._client.aclose()

    def _make_tool(self, spec: WebhookSpec) -> _RawTool:
        schema = closed_schema(spec.parameters)
        validator = jsonschema.Draft202012Validator(schema)

        async def call_webhook(raw_arguments: dict[str, Any]) -> str:
            errors = sorted(validator.iter_errors(raw_arguments), key=lambda e: list(e.path))
            if errors:
                where = "/".join(str(p) for p in errors[0].path) or "arguments"
                raise ToolError(f"Invalid arguments for {spec.name}: {where}: {errors[0].message}")
            return await self._send(spec, raw_arguments)

        tool = function_tool(
            call_webhook,
            raw_schema={
                "name": spec.name,
                "description": spec.description,
                "parameters": schema,
            },
        )
        return mark_read_only(tool) if spec.read_only else tool

    async def _send(self, spec: WebhookSpec, arguments: dict[str, Any]) -> str:
        # GET and DELETE carry no body by convention: the arguments go in the query
        in_query = spec.method in ("GET", "DELETE")
        try:
            async with self._client.stream(
                spec.method,
                with_query(spec.url, arguments) if in_query else spec.url,
                headers=spec.headers,
                json=None if in_query else arguments,
                timeout=spec.timeout,
            ) as resp:
                body, cut = await read_capped(resp, self._max_bytes)
        except httpx2.TimeoutException:
            log.warning("webhook timed out", tool=spec.name, timeout_s=spec.timeout)
            raise ToolError(
                f"The {spec.name} service did not answer within {spec.timeout:g} seconds."
            ) from None
        except httpx2.HTTPError as e:
            log.warning("webhook unreachable", tool=spec.name, error_type=type(e).__name__)
            raise ToolError(f"The {spec.name} service could not be reached.") from None
        if cut:
            log.warning("webhook response cut", tool=spec.name, max_bytes=self._max_bytes)
        if resp.status_code >= 500:
            log.warning("webhook failed", tool=spec.name, status_code=resp.status_code)
            raise ToolError(f"The {spec.name} service failed; it may work again later.")
        text = redact(_body_text(resp, body, cut=cut))
        if resp.status_code >= 400:
            # a 4xx body usually says what was wrong with the request: let the model read it
            log.warning("webhook rejected the call", tool=spec.name, status_code=resp.status_code)
            detail = clip(text, _ERROR_BODY_CHARS)
            raise ToolError(f"The {spec.name} service rejected the request: {detail}")
        log.info("webhook answered", tool=spec.name, status_code=resp.status_code)
        return clip(text, self._max_chars) or "Done."


def closed_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """The tool's argument schema as offered and enforced: an object, and one that refuses
    properties it does not declare unless the file says `additionalProperties` itself."""
    schema = {"type": "object", "properties": {}, **parameters}
    schema.setdefault("additionalProperties", False)
    return schema


def with_query(url: str, arguments: dict[str, Any]) -> str:
    """`url` with `arguments` added to its query; a parameter the URL already has (a token,
    a pinned entity) is kept as configured and the argument of that name dropped."""
    parts = urlsplit(url)
    pinned = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = urlencode([(k, _query_value(v)) for k, v in arguments.items() if k not in pinned])
    query = "&".join(q for q in (parts.query, added) if q)
    return urlunsplit(parts._replace(query=query))


def _body_text(resp: httpx2.Response, body: bytes, *, cut: bool) -> str:
    if not cut and "json" in resp.headers.get("content-type", ""):
        try:
            return as_text(json.loads(body))
        except ValueError:
            pass
    text = body.decode(resp.charset_encoding or "utf-8", errors="replace").strip()
    return text + CUT_MARK if cut else text


def _query_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else str(v)
