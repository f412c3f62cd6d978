"""Tools the agent offers the model: built-in, webhooks and MCP servers, from config."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from livekit.agents import llm

from agent.tools.builtin import builtin_tools, get_current_time
from agent.tools.mcp import McpTools
from agent.tools.webhooks import WebhookToolset

__all__ = [
    "McpTools",
    "WebhookToolset",
    "aclose_tools",
    "builtin_tools",
    "get_current_time",
    "setup_tools",
]


async def setup_tools(tools: Sequence[llm.Tool | llm.Toolset]) -> None:
    """Connect the toolsets (MCP servers). The voice session does this itself; chat calls it."""
    await asyncio.gather(*(t.setup() for t in tools if isinstance(t, llm.Toolset)))


async def aclose_tools(tools: Sequence[llm.Tool | llm.Toolset]) -> None:
    await asyncio.gather(*(t.aclose() for t in tools if isinstance(t, llm.Toolset)))
