"""Keep garbled tool calls out of speech while passing real text through at once.

Some models (or servers without a tool parser) write a tool call as text:
`[TOOL_CALLS][...]`, `<function=name>{...}</function>`, `<tool_call>{...}`, or a bare
`{"name": ..., "arguments": ...}`. None of that may reach TTS. Text is held back
only while it could still be the start of such a marker.
"""

from __future__ import annotations

import json

from providers.markers import partial_marker_length

TOOL_CALL_MARKERS = (
    "[TOOL_CALLS]",
    "<function=",
    "<function_call>",
    "<tool_call>",
    "<|tool_call",
    "<|python_tag|>",
    "<|im_start|>",
)

_LONGEST_MARKER = max(len(m) for m in TOOL_CALL_MARKERS)


class ToolCallTextFilter:
    """Feed it a pass's text deltas; it returns what may be spoken."""

    def __init__(self) -> None:
        self._pending = ""
        self._started = False
        self._json_candidate = False
        self.suppressed = ""
        """Text withheld because it was a tool call written as text (for the log)."""

    @property
    def tripped(self) -> bool:
        return bool(self.suppressed)

    def push(self, delta: str) -> str:
        if self.tripped:
            self.suppressed += delta
            return ""
        text = self._pending + delta
        self._pending = ""
        if not self._started:
            stripped = text.lstrip()
            if not stripped:
                self._pending = text
                return ""
            if stripped == "[":
                self._pending = text  # "[laughs]" or '[{"name": ...': the next char tells
                return ""
            self._started = True
            # a reply that opens with JSON is never speech; decide when the pass ends
            self._json_candidate = stripped[0] == "{" or (
                stripped[0] == "[" and stripped[1:].lstrip()[:1] in ("{", '"')
            )
        if self._json_candidate:
            self._pending = text
            return ""
        for marker in TOOL_CALL_MARKERS:
            at = text.find(marker)
            if at >= 0:
                self.suppressed = text[at:]
                return text[:at]
        keep = _partial_marker_length(text)
        if keep:
            self._pending = text[-keep:]
            return text[:-keep]
        return text

    def flush(self) -> str:
        """End of the pass: release what was held back unless it was a tool call."""
        text, self._pending = self._pending, ""
        if self._json_candidate and _looks_like_tool_call_json(text):
            self.suppressed = text
            return ""
        return text


def _partial_marker_length(text: str) -> int:
    """Length of the longest suffix of `text` that starts some marker."""
    # every marker opens with "<" or "["; most deltas hold neither near their end
    tail = text[-_LONGEST_MARKER:]
    if "<" not in tail and "[" not in tail:
        return 0
    return partial_marker_length(text, TOOL_CALL_MARKERS)


def _looks_like_tool_call_json(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        # cut-off JSON that names a function is still a tool call
        return '"name"' in text or '"function"' in text
    items = value if isinstance(value, list) else [value]
    return (
        any(isinstance(item, dict) and ("name" in item or "function" in item) for item in items)
        or not items
    )
