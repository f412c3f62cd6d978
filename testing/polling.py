"""Waiting for something to happen: poll with a deadline, never sleep a guessed time."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable


async def until(
    check: Callable[[], bool], *, within: float, what: str, every: float = 0.02
) -> None:
    """Return once `check()` holds; TimeoutError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {within:g} s")
        await asyncio.sleep(every)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
