"""One line per reply for `voice-agent chat`, however the model breaks its text.

A reply streams out delta by delta; newlines inside it (a list, a paragraph break) become
one space, and newlines at its end disappear, so that each reply is exactly one line on
stdout, as `chat`'s contract says, and a script reading it line by line stays in step.
"""

from __future__ import annotations

import re

_BREAKS = re.compile(r"[\r\n]+")


class OneLine:
    """Feed a reply's deltas in order; write what `feed` returns."""

    def __init__(self) -> None:
        self._started = False
        self._pending_space = False

    def feed(self, delta: str) -> str:
        out: list[str] = []
        for i, part in enumerate(_BREAKS.split(delta)):
            if i > 0:
                # a break: held until there is more text, so a trailing one never shows
                self._pending_space = self._started
            if not part:
                continue
            if self._pending_space and not part[0].isspace():
                out.append(" ")
            self._pending_space = False
            self._started = True
            out.append(part)
        return "".join(out)
