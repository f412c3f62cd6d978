"""Keep a model's reasoning out of the reply, whatever form the server streams it in.

Servers carry reasoning four ways, and a thought must never reach speech or history:
- a separate `reasoning_content` / `reasoning` field: never read as content (nothing to do);
- inline `<think>…</think>` (or `<thinking>`) in the content;
- a closing `</think>` alone: templates that open the thought in the prompt (DeepSeek-R1,
  QwQ through vLLM and llama.cpp without a reasoning parser) stream the thought as plain
  text. Only a backend expected to think (`hold_for_closing_tag`) can be read safely: its
  text is held until the closing tag or the end of the response (or until thoughts come in
  their own field: then the content is the reply, released as it streams). From any other
  backend the first `hold_start` characters of a reply are held: a closing tag that begins
  within them makes what came before it a thought (never said; the backend is then known
  to think). A longer first thought is still said, its tag never: the hold is what a
  reply's first word may cost, not a guarantee for every length. Once a whole held start
  was a reply, the backend is known to answer plainly and nothing more is held;
- gpt-oss's harmony channels served without harmony parsing:
  `<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…`.
  Only the `final` channel is the reply; a `commentary to=functions.NAME` message is a
  tool call, kept in `harmony_calls`.

Nothing here trusts `finish_reason`: text is released by markers and by `finish()`,
called once the response has really ended (`abandon()` when it failed: what was held
until a closing tag is then dropped, never said).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .markers import partial_marker_length

__all__ = ["HarmonyCall", "ReasoningFilter", "ThoughtHabit"]

_THOUGHT_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))
_CLOSING_TAGS = tuple(close for _, close in _THOUGHT_TAGS)
_LONGEST_CLOSING = max(len(tag) for tag in _CLOSING_TAGS)
_HARMONY_OPENERS = ("<|channel|>", "<|start|>")
_HARMONY_TOKENS = (
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|constrain|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
)
_OPENERS = (*(open_ for open_, _ in _THOUGHT_TAGS), *_HARMONY_OPENERS)

_LONGEST_MARKER = max(len(m) for m in (*_HARMONY_TOKENS, *_CLOSING_TAGS, *_OPENERS))

Mode = Literal["undecided", "opening", "held", "reply", "thought", "harmony"]


@dataclass(frozen=True, slots=True)
class HarmonyCall:
    """A harmony `commentary to=functions.NAME` message: a tool call written as text."""

    name: str
    arguments: str


@dataclass(slots=True)
class _Harmony:
    header: str = ""
    """Text since the last `<|start|>`: role, `<|channel|>` name, recipient, constraint."""
    body: list[str] = field(default_factory=list)
    in_message: bool = False

    @property
    def channel(self) -> str:
        after = self.header.rpartition("<|channel|>")[2].split()
        return after[0] if after else ""

    @property
    def recipient(self) -> str | None:
        for word in self.header.replace("<|", " <|").split():
            if word.startswith("to=functions."):
                return word.removeprefix("to=functions.")
        return None


class ReasoningFilter:
    """Feed it a response's content deltas; it returns the part that is the reply."""

    def __init__(self, *, hold_for_closing_tag: bool = False, hold_start: int = 0) -> None:
        self._hold = hold_for_closing_tag
        self._hold_start = hold_start
        self._final = False
        self._mode: Mode = "undecided"
        self._buffer = ""
        self._closing = _CLOSING_TAGS[0]
        self._harmony = _Harmony()
        self._thought_seen = False
        self.saw_bare_closing_tag = False
        """A closing tag arrived without its opener: this backend thinks in plain text."""
        self.held_start_was_reply = False
        """The whole held start came and held no closing tag: the reply began as a reply."""
        self.harmony_calls: list[HarmonyCall] = []

    def push(self, delta: str) -> str:
        self._buffer += delta
        out: list[str] = []
        while self._buffer and self._step(out):
            pass
        return "".join(out)

    def thoughts_apart(self) -> str:
        """The server sends thoughts in a field of their own (it has a reasoning parser):
        its content is the reply, not a thought waiting for its closing tag. Returns what
        was held and can now be said."""
        self._hold_start = 0
        if self._mode == "opening":
            self._mode = "reply"
            return self.push("")
        if not self._hold:
            return ""
        self._hold = False
        if self._mode == "held":
            self._mode = "reply"
        return self.push("")

    def finish(self) -> str:
        """The response ended: release what was held unless it was a thought."""
        self._final = True
        said = self.push("") if self._mode == "opening" else ""
        return said + self._rest()

    def abandon(self) -> str:
        """The response failed: release only what is known to be the reply. Text held
        until a closing tag that never came is a thought (or may be): never said."""
        self._final = True
        said = self.push("") if self._mode == "opening" else ""
        if self._mode in ("held", "undecided"):
            self._buffer = ""
        return said + self._rest()

    def _rest(self) -> str:
        rest, self._buffer = self._buffer, ""
        if self._mode in ("reply", "held"):
            return rest
        if self._mode == "undecided":
            return rest.strip() and rest
        if self._mode == "harmony":
            return self._harmony_text(rest, final=True)
        return ""  # an unterminated thought is still a thought

    # -- one step of the state machine; False: wait for more text
    def _step(self, out: list[str]) -> bool:
        if self._mode == "undecided":
            return self._decide()
        if self._mode == "opening":
            return self._open()
        if self._mode == "harmony":
            out.append(self._harmony_text(self._take_all_but_partial(_HARMONY_TOKENS)))
            return False
        if self._mode == "thought":
            at = self._buffer.find(self._closing)
            if at < 0:
                keep = _partial(self._buffer, (self._closing,))
                self._buffer = self._buffer[len(self._buffer) - keep :]
                return False
            self._after_thought(at, self._closing)
            return True
        if self._mode == "held":
            at, tag = _first(self._buffer, _CLOSING_TAGS)
            opener_at, opener = _first(self._buffer, tuple(o for o, _ in _THOUGHT_TAGS))
            if opener is not None and (tag is None or opener_at < at):
                out.append(self._buffer[:opener_at])
                self._enter_thought(opener, opener_at)
                return True
            if tag is None:
                return False  # keep holding: the thought may not have ended yet
            self.saw_bare_closing_tag = True
            self._after_thought(at, tag)
            return True
        # reply: pass text through, leaving out thoughts and stray closing tags
        at, tag = _first(self._buffer, (*(o for o, _ in _THOUGHT_TAGS), *_CLOSING_TAGS))
        if tag is None:
            out.append(self._take_all_but_partial((*_CLOSING_TAGS, *_OPENERS)))
            return False
        out.append(self._buffer[:at])
        if tag in _CLOSING_TAGS:
            # everything before it was a thought, already let through: remember, so that
            # this backend's next responses are held until their closing tag
            self.saw_bare_closing_tag = True
            self._after_thought(at, tag)
        else:
            self._enter_thought(tag, at)
        return True

    def _decide(self) -> bool:
        head = self._buffer.lstrip()
        if not head:
            return False
        self._buffer = head
        if head.startswith(_HARMONY_OPENERS):
            self._mode = "harmony"
            return True
        if any(o.startswith(head) for o in _OPENERS):
            return False  # could still become an opener
        if self._thought_seen:
            self._mode = "reply"
        elif self._hold:
            self._mode = "held"
        else:
            self._mode = "opening" if self._hold_start > 0 else "reply"
        return True

    def _open(self) -> bool:
        """The start of a reply from a backend not known to think: a closing tag that
        begins within its first `hold_start` characters (and no opener before it) makes
        what came before it a thought. Decided on the text alone, never on the deltas."""
        hold, buffer = self._hold_start, self._buffer
        at, tag = _first(buffer[: hold + _LONGEST_CLOSING], _CLOSING_TAGS)
        if tag is not None and at < hold:
            if _first(buffer[:at], _OPENERS)[1] is None:
                self.saw_bare_closing_tag = True
                self._after_thought(at, tag)
                return True
        elif not self._final and (len(buffer) < hold or _tag_may_begin(buffer, hold)):
            return False  # a closing tag may yet begin within the hold
        self.held_start_was_reply = tag is None and len(buffer) >= hold
        self._mode = "reply"
        return True

    def _after_thought(self, at: int, closing: str) -> None:
        # what follows a thought is decided afresh: whitespace, another thought, the reply
        self._buffer = self._buffer[at + len(closing) :]
        self._thought_seen = True
        self._mode = "undecided"

    def _enter_thought(self, opener: str, at: int) -> None:
        self._closing = dict(_THOUGHT_TAGS)[opener]
        self._buffer = self._buffer[at + len(opener) :]
        self._mode = "thought"

    def _take_all_but_partial(self, markers: tuple[str, ...]) -> str:
        keep = _partial(self._buffer, markers)
        text = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(self._buffer) - keep :]
        return text

    def _harmony_text(self, text: str, *, final: bool = False) -> str:
        """Route harmony `text` (whole tokens only) to the reply, a tool call, or nowhere."""
        out: list[str] = []
        while text:
            at, token = _first(text, _HARMONY_TOKENS)
            piece, text = (text, "") if token is None else (text[:at], text[at + len(token) :])
            h = self._harmony
            if not h.in_message:
                h.header += piece
            elif h.channel == "final":
                out.append(piece)
            else:
                h.body.append(piece)
            if token == "<|message|>":
                h.in_message = True
            elif token in ("<|channel|>", "<|constrain|>"):
                if h.in_message:  # a new header without <|start|>
                    self._end_harmony_message()
                self._harmony.header += f" {token}"
            elif token is not None:  # <|start|>, <|end|>, <|return|>, <|call|>
                self._end_harmony_message()
        if final:
            self._end_harmony_message()
        return "".join(out)

    def _end_harmony_message(self) -> None:
        h = self._harmony
        if h.in_message and h.recipient:
            self.harmony_calls.append(HarmonyCall(h.recipient, "".join(h.body).strip() or "{}"))
        self._harmony = _Harmony()


def _first(text: str, markers: tuple[str, ...]) -> tuple[int, str | None]:
    """The earliest of `markers` in `text`: (position, marker), or (-1, None)."""
    best, found = -1, None
    for marker in markers:
        at = text.find(marker)
        if at >= 0 and (best < 0 or at < best):
            best, found = at, marker
    return best, found


def _tag_may_begin(text: str, before: int) -> bool:
    """Whether a `<` in `text[:before]` opens what may still become a closing tag."""
    at = text.find("<")
    while 0 <= at < before:
        rest = text[at : at + _LONGEST_CLOSING]
        if any(tag.startswith(rest) for tag in _CLOSING_TAGS):
            return True
        at = text.find("<", at + 1)
    return False


def _partial(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that begins one of `markers`."""
    # every marker opens with "<"; most deltas hold none near their end
    if "<" not in text[-_LONGEST_MARKER:]:
        return 0
    return partial_marker_length(text, markers)


@dataclass
class ThoughtHabit:
    """What one backend was seen to do with its thoughts, learnt reply by reply."""

    in_text: bool = False
    """It closes thoughts with a bare `</think>`: each reply is held until the tag."""
    plain: bool = False
    """A whole held start was a reply: nothing more is held. A template that opens a
    thought in the prompt does so every time, so one such reply is enough."""

    def reasoning_filter(self, hold_chars: int) -> ReasoningFilter:
        return ReasoningFilter(
            hold_for_closing_tag=self.in_text, hold_start=0 if self.plain else hold_chars
        )

    def learn(self, seen: ReasoningFilter) -> None:
        if seen.saw_bare_closing_tag:
            self.in_text = True
        elif seen.held_start_was_reply:
            self.plain = True
