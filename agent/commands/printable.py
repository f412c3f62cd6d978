"""Text from elsewhere (a server's model ids, its error messages) made safe for a terminal.

A model id is whatever a server lists: one holding ESC sequences could recolour, retitle
or rewrite the user's terminal (ANSI/OSC), and a carriage return could hide what follows
it. Every control and invisible direction character is shown as its escape instead.
"""

from __future__ import annotations

import re

# C0 and C1 controls, line/paragraph separators, and the bidirectional overrides
_UNPRINTABLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_UNPRINTABLE_OR_BREAK = re.compile(_UNPRINTABLE.pattern[:-1] + r"\n\t]")


def _escape(m: re.Match[str]) -> str:
    return m.group().encode("unicode_escape").decode("ascii")


def printable(text: str, *, newlines: bool = False) -> str:
    r"""`text` with control characters as escapes (`\x1b`, `\r`, `\u2028`); `newlines`:
    keep line breaks and tabs (text of our own that spans lines)."""
    return (_UNPRINTABLE if newlines else _UNPRINTABLE_OR_BREAK).sub(_escape, text)
