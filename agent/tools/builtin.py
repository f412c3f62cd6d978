"""Built-in tools. Voice users ask for the time, and models do not know it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit.agents import llm
from livekit.agents.llm import ToolError, function_tool

from agent.tools.read_only import mark_read_only


@mark_read_only
@function_tool
async def get_current_time(timezone: str | None = None) -> str:
    """Get the current date and time.

    Args:
        timezone: IANA time zone name such as "Europe/Paris" or "America/New_York".
            Leave it out for the server's local time.
    """
    try:
        tz = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"Unknown time zone {timezone!r}; use an IANA name like Europe/Paris."
        ) from None
    now = datetime.now(tz).astimezone(tz) if tz else datetime.now().astimezone()
    return now.strftime("%A, %B %d, %Y, %H:%M (%Z, UTC%z)")


def builtin_tools(*, enabled: bool = True) -> list[llm.Tool]:
    return [get_current_time] if enabled else []
