"""MCP servers from `MCP_CONFIG`, through livekit-agents' own MCP client.

`McpTools` is one livekit `Toolset` over every configured server. Each server is a
livekit `MCPToolset` (`MCPServerHTTP` for streamable HTTP and SSE, `MCPServerStdio`
for commands); what this module adds is what a voice session needs around it:

- `setup()` never fails: a server that is down (or slow) at start-up is logged and
  retried in the background with backoff, and its tools appear once it answers.
- Tool names never collide: a tool whose name is already taken (by a built-in, a
  webhook or an earlier server) is offered as `<server>_<tool>`. A name, once given,
  stays for the session, so the history keeps making sense.
- A call to a server that has gone away is an error result the model can speak
  about ("... unavailable right now"), and starts a reconnect.
- Results reach the model as text (not MCP content JSON), redacted and cut to a sane
  length. An HTTP server's responses are read up to `TOOL_RESPONSE_MAX_BYTES` (each
  event, on a stream): a larger one fails the call rather than the process's memory.
  (A stdio server is a process the user runs; its pipe is read by the MCP client.)

`tools` is computed on each access: the engine flattens the tools at the start of
every turn, so a server that comes back is picked up by the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from livekit.agents import llm
from livekit.agents.llm import ToolError, function_tool
from livekit.agents.llm.mcp import (
    MCPServer,
    MCPServerHTTP,
    MCPServerStdio,
    MCPToolResultContext,
    MCPToolset,
)
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from agent.config.tool_files import McpServerSpec
from agent.ops.logging import get_logger, redact, shorten
from agent.tools.read_only import mark_read_only
from agent.tools.results import CappedTransport, ResponseTooLarge, as_text, clip

# livekit's tool wrappers are generic over the wrapped function's signature
_RawTool = llm.RawFunctionTool[..., Any]

log = get_logger("agent.tools.mcp")


class McpTools(llm.Toolset):
    def __init__(
        self,
        specs: Sequence[McpServerSpec],
        *,
        reserved_names: Iterable[str] = (),
        connect_timeout: float = 5.0,
        call_timeout: float = 30.0,
        max_result_chars: int = 4000,
        max_response_bytes: int = 1_000_000,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        self._reserved = set(reserved_names)
        self._names: dict[tuple[str, str], str] = {}  # (server, tool) -> name offered
        self._servers = [
            _Server(
                spec,
                owner=self,
                connect_timeout=connect_timeout,
                call_timeout=call_timeout,
                max_result_chars=max_result_chars,
                max_response_bytes=max_response_bytes,
                retry_initial=retry_initial,
                retry_max=retry_max,
            )
            for spec in specs
        ]
        super().__init__(id="mcp")

    @property
    def tools(self) -> Sequence[llm.Tool | llm.Toolset]:
        # names are given here, in config order, so which server answered first at
        # start-up does not decide who gets the plain name
        return [tool for server in self._servers for tool in server.named_tools()]

    @property
    def connected(self) -> list[str]:
        """The servers whose session is up now (one that dropped is being retried)."""
        return [s.name for s in self._servers if s.connected]

    async def setup(self) -> McpTools:
        """Connect to every server at once; the slow and the dead are retried later."""
        started = time.perf_counter()
        await asyncio.gather(*(server.start() for server in self._servers))
        log.info(
            "mcp tools ready",
            servers=len(self._servers),
            connected=sum(s.connected for s in self._servers),
            tools=len(self.tools),
            setup_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return self

    async def aclose(self) -> None:
        await asyncio.gather(*(server.aclose() for server in self._servers))

    def name_for(self, server: str, tool: str) -> str:
        """The name `tool` of `server` is offered under: its own, unless already taken."""
        key = (server, tool)
        if key not in self._names:
            taken = self._reserved | set(self._names.values())
            name = tool
            if name in taken:
                name = f"{server}_{tool}"[:64]
                n = 2
                while name in taken:
                    name = f"{server}_{tool}"[: 64 - len(str(n)) - 1] + f"_{n}"
                    n += 1
            self._names[key] = name
        return self._names[key]


class _Server:
    def __init__(
        self,
        spec: McpServerSpec,
        *,
        owner: McpTools,
        connect_timeout: float,
        call_timeout: float,
        max_result_chars: int,
        max_response_bytes: int,
        retry_initial: float,
        retry_max: float,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._owner = owner
        self._connect_timeout = connect_timeout
        self._max_chars = max_result_chars
        self._max_bytes = max_response_bytes
        self._retry = (retry_initial, retry_max)
        # kept: its public `initialized` tells whether the connection is up
        self._mcp = self._make_server(spec, call_timeout)
        self._toolset = MCPToolset(id=f"mcp_{spec.name}", mcp_server=self._mcp)
        self._raw: list[_RawTool] = []
        self._named: list[_RawTool] | None = None
        self._read_only: set[str] = set()
        self._retry_task: asyncio.Task[None] | None = None
        self._closed = False
        self._log = log.bind(mcp_server=spec.name, transport=spec.transport)

    def _make_server(self, spec: McpServerSpec, call_timeout: float) -> MCPServer:
        # the engine's per-tool timeout is the one that should fire: the session's own
        # read timeout (5 s by default) would cut slow tools short
        if spec.transport == "stdio":
            assert spec.command is not None
            return MCPServerStdio(
                command=spec.command,
                args=list(spec.args),
                env=dict(spec.env) or None,
                cwd=spec.cwd,
                client_session_timeout_seconds=call_timeout,
                tool_result_resolver=self._result_text,
            )
        assert spec.url is not None
        return _LimitedHTTPServer(
            url=spec.url,
            transport_type="sse" if spec.transport == "sse" else "streamable_http",
            headers=dict(spec.headers),
            timeout=self._connect_timeout,
            client_session_timeout_seconds=call_timeout,
            tool_result_resolver=self._result_text,
            max_response_bytes=self._max_bytes,
        )

    @property
    def connected(self) -> bool:
        """Whether the MCP client session is up (livekit drops it when the server goes)."""
        return self._mcp.initialized

    async def start(self) -> None:
        if not await self._connect():
            self.reconnect_soon()

    async def _connect(self) -> bool:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._toolset.setup(reload=True)
        except (Exception, asyncio.CancelledError) as e:
            # a connect attempt that was itself cancelled (an earlier one timing out)
            # is a failed attempt; our own cancellation is not
            if isinstance(e, asyncio.CancelledError) and _cancelled_from_outside():
                raise
            # MCP's task groups wrap the interesting error; the first leaf says what it was
            cause = _leaf(e)
            self._log.warning(
                "mcp server unavailable; will retry",
                error_type=type(cause).__name__,
                error=shorten(str(cause), 200),
            )
            if self._mcp.initialized:
                await self._drop_session()
            return False
        self._raw = [t for t in self._toolset.tools if isinstance(t, llm.RawFunctionTool)]
        self._read_only = _read_only_names(self._mcp)
        self._named = None
        self._log.info(
            "mcp server connected",
            tools=[t.info.name for t in self._raw],
            connect_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return True

    async def _drop_session(self) -> None:
        """A session whose stream broke (an SSE stream cut at the size limit, say) still
        counts as initialized in livekit, and every request on it fails: close it, so
        that the next attempt makes a new one."""
        try:
            async with asyncio.timeout(5):
                await self._mcp.aclose()
        except (Exception, asyncio.CancelledError) as e:
            if isinstance(e, asyncio.CancelledError) and _cancelled_from_outside():
                raise
            self._log.warning("mcp session did not close cleanly", error_type=type(e).__name__)

    def named_tools(self) -> list[_RawTool]:
        """The server's last known tools, under the names offered to the model. Kept
        while the server is away, so that calling one says why it failed."""
        if self._named is None:
            self._named = [self._wrap(t) for t in self._raw]
        return self._named

    def reconnect_soon(self) -> None:
        if self._closed or (self._retry_task is not None and not self._retry_task.done()):
            return
        self._retry_task = asyncio.create_task(self._retry_loop(), name=f"mcp-retry-{self.name}")

    async def _retry_loop(self) -> None:
        delay, ceiling = self._retry
        while not self._closed:
            await asyncio.sleep(delay)
            if await self._connect():
                return
            delay = min(delay * 2, ceiling)

    async def aclose(self) -> None:
        self._closed = True
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        try:
            async with asyncio.timeout(5):
                await self._toolset.aclose()
        except (Exception, asyncio.CancelledError) as e:
            if isinstance(e, asyncio.CancelledError) and _cancelled_from_outside():
                raise
            self._log.warning("mcp server did not close cleanly", error_type=type(e).__name__)

    def _wrap(self, tool: _RawTool) -> _RawTool:
        original = tool.info.name
        name = self._owner.name_for(self.name, original)

        async def call_mcp_tool(raw_arguments: dict[str, Any]) -> Any:
            if not self.connected:
                self.reconnect_soon()
                raise ToolError(
                    f"The {self.name} tools are unavailable right now; try again in a while."
                )
            cuts = self._cuts()
            try:
                return await tool(raw_arguments)
            except ToolError as e:
                # the server's own error text goes to the model: cut it, and no secrets
                raise ToolError(clip(redact(e.message), self._max_chars)) from None
            except Exception as e:
                # the MCP client reports a response cut at the limit in its own words
                if isinstance(_leaf(e), ResponseTooLarge) or self._cuts() > cuts:
                    self._log.warning("mcp result too large", tool=original)
                    self.reconnect_soon()  # an SSE session ends with the stream that was cut
                    raise ToolError(
                        f"The {self.name} service's answer was too large to read."
                    ) from None
                # the connection broke mid-call: say so, and get it back
                self._log.warning(
                    "mcp tool call failed", tool=original, error_type=type(_leaf(e)).__name__
                )
                # livekit notices a dead session only after this call has failed: get a
                # new one either way (a healthy session just lists its tools again)
                self.reconnect_soon()
                raise ToolError(f"The {self.name} service failed while running {name}.") from None

        wrapped = function_tool(call_mcp_tool, raw_schema={**tool.info.raw_schema, "name": name})
        # the server's own annotation: it may run before the user's turn is confirmed
        return mark_read_only(wrapped) if original in self._read_only else wrapped

    def _cuts(self) -> int:
        return self._mcp.cuts if isinstance(self._mcp, _LimitedHTTPServer) else 0

    def _result_text(self, ctx: MCPToolResultContext) -> str:
        parts: list[str] = []
        for item in ctx.result.content:
            text = getattr(item, "text", None)
            parts.append(text if isinstance(text, str) else f"[{item.type} content omitted]")
        if not parts and ctx.result.structured_content is not None:
            parts.append(as_text(ctx.result.structured_content))
        if not parts:
            raise ToolError(f"{ctx.tool_name} finished without a result.")
        return clip(redact("\n".join(parts)), self._max_chars)


class _LimitedHTTPServer(MCPServerHTTP):
    """livekit's HTTP MCP server, with its responses read through `CappedTransport` and
    each event of a stream limited to as many bytes."""

    def __init__(self, *, max_response_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        # one attribute of our own, named apart from livekit's
        self._limited = _Limits(
            max_bytes=max_response_bytes,
            sse=options["transport_type"] == "sse",
            headers=options["headers"],
            connect_timeout=options["timeout"],
        )
        self._cut_count = 0

    @property
    def cuts(self) -> int:
        """How many responses were cut at the limit so far."""
        return self._cut_count

    def _count_cut(self) -> None:
        self._cut_count += 1

    def _capped_client(
        self,
        headers: dict[str, Any] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        # as livekit's own client: redirects are the MCP transport's to follow
        limits = self._limited
        return httpx2.AsyncClient(
            headers=headers if headers is not None else limits.headers,
            timeout=timeout or httpx2.Timeout(limits.connect_timeout, read=_SSE_READ_TIMEOUT),
            auth=auth,
            transport=CappedTransport(limits.max_bytes, on_cut=self._count_cut),
        )

    def client_streams(self) -> AbstractAsyncContextManager[Any]:
        limits = self._limited
        if limits.sse:
            return sse_client(
                url=self.url,
                headers=limits.headers,
                timeout=limits.connect_timeout,
                sse_read_timeout=_SSE_READ_TIMEOUT,
                httpx_client_factory=self._capped_client,
            )
        return self._streamable_http()

    @asynccontextmanager
    async def _streamable_http(self) -> AsyncIterator[Any]:
        async with (
            self._capped_client() as client,
            streamable_http_client(
                url=self.url, http_client=client, max_sse_event_size=self._limited.max_bytes
            ) as streams,
        ):
            yield streams


@dataclass(frozen=True, slots=True, kw_only=True)
class _Limits:
    max_bytes: int
    sse: bool
    headers: dict[str, str]
    connect_timeout: float


_SSE_READ_TIMEOUT = 300.0
"""livekit's default: how long an open event stream may stay silent."""


def _leaf(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _read_only_names(server: MCPServer) -> set[str]:
    """Tools the server annotates `readOnlyHint: true`. livekit's MCP tools drop the
    annotations; the tool list it fetched during setup (cached on the server) has them."""
    raw = getattr(server, "_raw_tools", None) or []
    return {t.name for t in raw if _read_only_hint(getattr(t, "annotations", None))}


def _read_only_hint(annotations: object) -> bool:
    # the mcp package names the field `readOnlyHint` or, in newer releases, `read_only_hint`
    for name in ("read_only_hint", "readOnlyHint"):
        try:
            if getattr(annotations, name, None) is True:
                return True
        except AttributeError:
            continue
    return False
