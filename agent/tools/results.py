"""Tool results as the model should see them: text, and not too much of it.

A voice reply is a sentence or two; a 200 kB JSON dump costs latency and context
on every later request and the model speaks no better for it.
"""

from __future__ import annotations

import json
from typing import Any

CUT_MARK = " …[cut]"


def clip(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with a visible mark when it was cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_MARK))].rstrip() + CUT_MARK


def as_text(value: Any) -> str:
    """A tool's result as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)
