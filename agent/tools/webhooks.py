"""Webhook tools: an HTTP endpoint per tool (n8n, Home Assistant, Zapier, ...), from a file.

Each configured webhook becomes a livekit raw function tool, so the turn engine runs
it like any other tool. The model's arguments are checked against the tool's JSON
schema before anything is sent; failures become `ToolError`s the model can read,
without status codes, URLs or header values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx2
import jsonschema
from livekit.agents import llm
from livekit.agents.llm import ToolError, function_tool

from agent.config.tool_files import WebhookSpec
from agent.ops.logging import get_logger, redact
from agent.tools.read_only import mark_read_only
from agent.tools.results import as_text, clip

# livekit's tool wrappers are generic over the wrapped function's signature
_RawTool = llm.RawFunctionTool[..., Any]

log = get_logger("agent.tools.webhooks")

_ERROR_BODY_CHARS = 300


class WebhookToolset(llm.Toolset):
    """The configured webhook tools, sharing one HTTP connection pool (closed by `aclose`)."""

    def __init__(self, specs: Sequence[WebhookSpec], *, max_result_chars: int = 4000) -> None:
        # connections are pooled across calls; timeouts are per tool (set on each request)
        self._client = httpx2.AsyncClient(follow_redirects=False)
        self._max_chars = max_result_chars
        super().__init__(id="webhooks", tools=[self._make_tool(spec) for spec in specs])

    async def aclose(self) -> None:
        await super().aclose()
        await self._client.aclose()

    def _make_tool(self, spec: WebhookSpec) -> _RawTool:
        validator = jsonschema.Draft202012Validator(spec.parameters)

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
                "parameters": spec.parameters,
            },
        )
        return mark_read_only(tool) if spec.read_only else tool

    async def _send(self, spec: WebhookSpec, arguments: dict[str, Any]) -> str:
        # GET and DELETE carry no body by convention: the arguments go in the query
        in_query = spec.method in ("GET", "DELETE")
        try:
            resp = await self._client.request(
                spec.method,
                spec.url,
                headers=spec.headers,
                json=None if in_query else arguments,
                params={k: _query_value(v) for k, v in arguments.items()} if in_query else None,
                timeout=spec.timeout,
            )
        except httpx2.TimeoutException:
            log.warning("webhook timed out", tool=spec.name, timeout_s=spec.timeout)
            raise ToolError(
                f"The {spec.name} service did not answer within {spec.timeout:g} seconds."
            ) from None
        except httpx2.HTTPError as e:
            log.warning("webhook unreachable", tool=spec.name, error_type=type(e).__name__)
            raise ToolError(f"The {spec.name} service could not be reached.") from None
        if resp.status_code >= 500:
            log.warning("webhook failed", tool=spec.name, status_code=resp.status_code)
            raise ToolError(f"The {spec.name} service failed; it may work again later.")
        if resp.status_code >= 400:
            # a 4xx body usually says what was wrong with the request: let the model read it
            log.warning("webhook rejected the call", tool=spec.name, status_code=resp.status_code)
            detail = clip(redact(_body_text(resp)), _ERROR_BODY_CHARS)
            raise ToolError(f"The {spec.name} service rejected the request: {detail}")
        log.info("webhook answered", tool=spec.name, status_code=resp.status_code)
        return clip(_body_text(resp), self._max_chars) or "Done."


def _body_text(resp: httpx2.Response) -> str:
    if "json" in resp.headers.get("content-type", ""):
        try:
            return as_text(resp.json())
        except ValueError:
            pass
    return resp.text.strip()


def _query_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else str(v)
