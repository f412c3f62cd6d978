"""What one turn has said, kept in one place.

Three questions are asked of it while a turn runs: what were the model's words (what
callers record as the assistant's message), what was last spoken (filler included,
so that the next piece is spaced from it), and how much of the model's words the
working context already holds (so that text said before a tool call goes into the
context before that call, once).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Transcript:
    said: str = ""
    """The model's words and any fallback or apology: never the filler."""
    last_spoken: str = ""
    """The last piece handed out, filler included."""
    _in_context: int = 0

    def say(self, text: str, *, new_sentence: bool = False) -> str:
        """Record `text` as the turn's words; returns it as it is to be spoken.

        `new_sentence`: the first words of a pass, a fallback or an apology, which
        must not run into what was already said ("see.It" reads badly)."""
        if new_sentence:
            text = self._spaced(text)
        # a space that only separated it from the filler is not the model's
        self.said += text if self.said else text.lstrip()
        self.last_spoken = text
        return text

    def aside(self, text: str) -> str:
        """Words that are spoken but are not the model's (the filler)."""
        self.last_spoken = self._spaced(text)
        return self.last_spoken

    def take_unrecorded(self) -> str:
        """The words said since the last call, for the working context."""
        new = self.said[self._in_context :].strip()
        self._in_context = len(self.said)
        return new

    def said_since(self, mark: int) -> str:
        return self.said[mark:]

    @property
    def mark(self) -> int:
        """A position to ask `said_since` about later."""
        return len(self.said)

    def _spaced(self, text: str) -> str:
        last = self.last_spoken
        if not last or last[-1].isspace() or text[:1].isspace():
            return text
        return " " + text
