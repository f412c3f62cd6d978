"""The one place where `openai`/`httpx2` errors become livekit's `APIError` family.

Messages name what happened, never the key; the server's own message (which may
echo request details) only travels in `body`, for the logs.
"""

from __future__ import annotations

import json
import re

import httpx2
import openai

from .base import APIConnectionError, APIError, APIStatusError, APITimeoutError
from .cooldown import BackendCoolingDown
from .responses import ServerReportedError


class ModelOutputRejected(APIStatusError):
    """The server failed on what the model wrote, not on the request or for want of
    health: llama.cpp answers HTTP 500 "The model produced output that does not match the
    expected peg-native format" when a tool call does not parse, and other servers' tool
    parsers fail alike (as a 5xx, or an `error` event mid-stream). Asked again without
    tools, the same model can still answer in words."""


# what servers say when their parser fails on the model's output (not an outage's words),
# matched in the error's message only: a body may echo the request ("tools", "tool_calls")
_REJECTED_OUTPUT = re.compile(
    r"model produced output that does not match|peg-native format"  # llama.cpp
    r"|failed to parse tool call"  # llama.cpp's tool-call parser
    r"|error in extracting tool call",  # vLLM's tool parsers
    re.IGNORECASE,
)


def _rejects_model_output(body: object) -> bool:
    return bool(_REJECTED_OUTPUT.search(_error_message(body)[:2_000]))


def _error_message(body: object) -> str:
    """The message of an error body: a plain-text body, `message`, or `error.message`."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict | str):
            return _error_message(inner)
        message = body.get("message")
        return message if isinstance(message, str) else ""
    return ""


def is_outage(e: APIError) -> bool:
    """Failures that say the backend is unwell, not that the request was wrong."""
    if isinstance(e, BackendCoolingDown | ModelOutputRejected):
        return False
    if isinstance(e, APIStatusError):
        return e.status_code >= 500 or e.status_code in (408, 429)
    return True


def to_api_error(e: BaseException, *, retryable: bool) -> APIError:
    """`e` as an `APIError`; `retryable` only where nothing has been streamed yet."""
    if isinstance(e, APIError):
        return e
    if isinstance(e, (openai.APITimeoutError, httpx2.TimeoutException, TimeoutError)):
        # not retried: a server that hung once for LLM_TIMEOUT would double the silence;
        # a FallbackAdapter still moves on to the next backend
        return APITimeoutError("the LLM server did not answer in time", retryable=False)
    if isinstance(e, openai.APIStatusError):
        if 500 <= e.status_code < 600 and _rejects_model_output(e.body):
            return ModelOutputRejected(
                f"the LLM server could not parse the model's output (HTTP {e.status_code})",
                status_code=e.status_code,
                request_id=e.request_id,
                body=e.body,
                retryable=False,  # the same request fails the same way: asked without tools
            )
        return APIStatusError(
            f"the LLM server answered HTTP {e.status_code}",
            status_code=e.status_code,
            request_id=e.request_id,
            body=e.body,
            retryable=retryable,
        )
    if isinstance(e, openai.APIConnectionError):
        return APIConnectionError("could not connect to the LLM server", retryable=retryable)
    if isinstance(e, ServerReportedError) and _rejects_model_output(e.body):
        return ModelOutputRejected(
            "the LLM server could not parse the model's output (reported mid-stream)",
            status_code=500,
            body=e.body,
            retryable=False,
        )
    if isinstance(e, (openai.APIError, ServerReportedError)):
        # an `error` object sent inside an SSE stream
        return APIConnectionError(
            "the LLM server reported an error mid-stream", retryable=retryable
        )
    if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError, KeyError)):
        return APIConnectionError("the LLM server sent a malformed response", retryable=retryable)
    if isinstance(e, httpx2.HTTPError):
        return APIConnectionError("the connection to the LLM server failed", retryable=retryable)
    return APIConnectionError(
        f"unexpected LLM client failure ({type(e).__name__})", retryable=retryable
    )
