"""What every backend shares: the tool-call shape and the error family.

Errors are livekit-agents' own `APIError` family, so the framework's retry logic
(`retryable`), `FallbackAdapter` and metrics understand ours without adapters.
"""

from __future__ import annotations

from livekit.agents import APIConnectionError, APIError, APIStatusError, APITimeoutError
from livekit.agents.llm import FunctionToolCall as ToolCall

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "StreamCutError",
    "ToolCall",
]


class StreamCutError(APIConnectionError):
    """The server closed a streamed completion before it said it was finished."""
