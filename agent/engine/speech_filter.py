"""Keep tool calls written as text out of speech while passing real text through at once.

Some models (or servers without a tool parser) write a tool call as text:
`[TOOL_CALLS][...]`, `<function=name>{...}</function>`, `<tool_call>{...}`, the
`<tools>{...}</tools>` wrapper a Qwen template names, a bare `{"name": ..., "arguments":
...}` (or a list of them, or several in a row, or one in doubled braces `{{...}}`),
anywhere in the reply, or the same JSON in a Markdown fence (```` ```json ... ``` ````).
None of that may reach TTS.

The filter reads the text as one stream, whatever the deltas: what it says, and what it
withholds, depend only on the text, never on where the deltas were cut. Text is held
back only from a character that may open a call (`<`, `[`, `{` or a backtick) until it is
decided:
- a marker's start (`<tool_c`, `[TOOL_`): until the next characters tell (at most the
  marker's length);
- `{` or `[` followed only by whitespace so far: until the next character;
- a JSON object or array (`{"`, `{{`, `[{`, `["`, `[[`): until it closes; then it is
  withheld if it names a function, and released if it does not;
- a fence (```` ``` ````): until it closes; withheld if it holds a call.
Anything else, and everything before such a character, is released at once. Whitespace
that opens a reply is held until the first word (a reply of whitespace says nothing).
Once a call is withheld, the rest of the pass is too (`suppressed`, for the engine to
recover the calls from). When a pass fails (`abandon()`), a candidate still open is
dropped: a fragment of a call is never said.
"""

from __future__ import annotations

import json
import re
from typing import Literal

TOOL_CALL_MARKERS = (
    "[TOOL_CALLS]",
    "<function=",
    "<function_call>",
    "<tool_call>",
    "<tools>",
    "<|tool_call",
    "<|python_tag|>",
    "<|im_start|>",
)

FENCE = "```"
_MAY_OPEN = re.compile(r"[<\[{`]")
_FENCE_LANGUAGE = re.compile(r"[\w.+-]*")

Mode = Literal["text", "json", "fence"]
Verdict = Literal["speech", "wait", "marker", "json", "fence"]


class ToolCallTextFilter:
    """Feed it a pass's text deltas; it returns what may be spoken."""

    def __init__(self) -> None:
        self._held = ""
        """Text not released yet: an undecided candidate and what follows it."""
        self._mode: Mode = "text"
        self._scanned = 0
        """In `json` and `fence` mode: how much of `_held` has been read."""
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._lead: str | None = ""
        """Whitespace the reply opened with, held until its first word (None after it)."""
        self.suppressed = ""
        """Text withheld because it was a tool call written as text (for the log)."""

    @property
    def tripped(self) -> bool:
        return bool(self.suppressed)

    def push(self, delta: str) -> str:
        if self.tripped:
            self.suppressed += delta
            return ""
        self._held += delta
        return self._release(self._scan(final=False))

    def flush(self) -> str:
        """End of the pass: release what was held back unless it was a tool call."""
        if self.tripped:
            return ""
        out = self._release(self._scan(final=True))
        self._held = ""
        return out

    def abandon(self) -> str:
        """The pass failed: release the words before any open candidate; the candidate
        itself (a JSON value, a fence or a marker not yet closed, which may be the start
        of a call) is dropped, never said in part."""
        if self.tripped:
            return ""
        out = self._release(self._scan(final=False))
        self._held = ""
        return out

    # -- the scanner: everything it returns is speech, in order

    def _scan(self, *, final: bool) -> str:
        out: list[str] = []
        while self._held and not self.tripped:
            if self._mode == "text":
                if not self._scan_text(out, final=final):
                    break
            elif (end := self._closed_at()) is None:
                if final:
                    self._decide(len(self._held), out)
                break
            else:
                self._decide(end, out)
        return "".join(out)

    def _scan_text(self, out: list[str], *, final: bool) -> bool:
        """Release text up to the next candidate and classify it; False: wait for more."""
        match = _MAY_OPEN.search(self._held)
        if match is None:
            out.append(self._held)
            self._held = ""
            return False
        at = match.start()
        out.append(self._held[:at])
        self._held = rest = self._held[at:]
        verdict = _classify(rest)
        if verdict == "wait":
            if final:  # never became a call: it was words
                out.append(rest)
                self._held = ""
            return False
        if verdict == "speech":
            out.append(rest[0])
            self._held = rest[1:]
        elif verdict == "marker":
            self._trip()
        else:
            self._mode = verdict
            self._scanned = len(FENCE) if verdict == "fence" else 0
            self._depth, self._in_string, self._escaped = 0, False, False
        return True

    def _closed_at(self) -> int | None:
        """Where the JSON value or fence in `_held` ends, once it has."""
        held = self._held
        if self._mode == "fence":
            at = held.find(FENCE, max(len(FENCE), self._scanned - len(FENCE) + 1))
            self._scanned = len(held)
            return None if at < 0 else at + len(FENCE)
        for i in range(self._scanned, len(held)):
            c = held[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == "\\":
                    self._escaped = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
                if self._depth <= 0:
                    self._scanned = i + 1
                    return i + 1
        self._scanned = len(held)
        return None

    def _decide(self, end: int, out: list[str]) -> None:
        """The JSON value or fence `_held[:end]` is complete (or the pass ended)."""
        candidate = self._held[:end]
        body = _fence_body(candidate) if self._mode == "fence" else candidate
        if _is_call(body):
            self._trip()
            return
        out.append(candidate)
        self._held = self._held[end:]
        self._mode = "text"

    def _trip(self) -> None:
        self.suppressed, self._held = self._held, ""

    def _release(self, text: str) -> str:
        if self._lead is None:
            return text
        text = self._lead + text
        if text.strip():
            self._lead = None  # the reply has begun
            return text
        self._lead = text
        return ""


def _classify(rest: str) -> Verdict:
    """What the text from a candidate character on is, as far as it tells yet."""
    if any(rest.startswith(m) for m in TOOL_CALL_MARKERS):
        return "marker"
    if any(m.startswith(rest) for m in TOOL_CALL_MARKERS):
        return "wait"
    head = rest[0]
    if head == "`":
        if rest.startswith(FENCE):
            return "fence"
        return "wait" if FENCE.startswith(rest) else "speech"
    if head in "{[":
        after = rest[1:].lstrip()
        if not after:
            return "wait"
        opens = "\"'{}" if head == "{" else '{["'
        return "json" if after[0] in opens else "speech"
    return "speech"


def _fence_body(fence: str) -> str:
    """A fence's text without its backticks and language tag."""
    inner = fence[len(FENCE) :]
    inner = inner.removesuffix(FENCE) if len(inner) >= len(FENCE) else inner
    language = _FENCE_LANGUAGE.match(inner)
    return inner[language.end() :] if language else inner


def _is_call(text: str) -> bool:
    """Whether `text` (a JSON value, or a fence's body) is a tool call written out."""
    text = text.strip()
    if any(m in text for m in TOOL_CALL_MARKERS):
        return True
    if not text.startswith(("{", "[")):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        # cut-off JSON, or several calls in a row, that names a function is still a call
        return any(key in text for key in ('"name"', '"function"', "'name'"))
    items = _flat(value)
    return (
        any(isinstance(item, dict) and ("name" in item or "function" in item) for item in items)
        or not items
    )


def _flat(value: object) -> list[object]:
    """A JSON value's items, lists within lists opened (`[[{...}]]` is a list of calls)."""
    if not isinstance(value, list):
        return [value]
    return [item for inner in value for item in _flat(inner)]
