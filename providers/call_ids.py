"""Tool-call ids that are unique in a session and keep the form the server gave them.

livekit groups a call and its result by id: two calls of one session that share an id
move a result onto the other call, or drop a call. Servers reuse ids (`call_0` in every
response, one id on two parallel calls), so a reused id is replaced. Some chat templates
check an id's form: vLLM's Mistral templates want exactly nine letters and digits. A
replacement therefore keeps the server's form: the same prefix (up to its last `_`, `-`,
`.` or `:`), then as many random characters as the server's had, from the same alphabet
(digits, hex, letters of the cases it used). Only where that alphabet and length leave
too few ids to draw from (`call_0`: ten) is the random part made longer (`call_412`).
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Collection, Iterable

from .base import ToolCall

__all__ = ["fresh_call_id", "unique_call_ids"]

_PREFIX = re.compile(r"^(.*[_\-.:])?([^_\-.:]*)$", re.S)
_MIN_IDS = 10_000
"""Fewer possible ids than this (or than four times the ids taken) and the random part is
made longer: drawing one not taken would take long, or never end. Uniqueness itself is
checked against the ids taken, not left to chance."""
_HEX = frozenset("0123456789abcdef")
_HEX_UPPER = frozenset("0123456789ABCDEF")


def unique_call_ids(calls: Iterable[ToolCall], *, taken: Iterable[str]) -> list[ToolCall]:
    """`calls` with every id that is empty, repeated among them, or already in `taken`
    (the history's ids) replaced by a fresh one of the same form."""
    seen = set(taken)
    out: list[ToolCall] = []
    for call in calls:
        if not call.call_id or call.call_id in seen:
            fresh = fresh_call_id(like=call.call_id, taken=seen)
            call = call.model_copy(update={"call_id": fresh})
        seen.add(call.call_id)
        out.append(call)
    return out


def fresh_call_id(*, like: str = "", taken: Collection[str] = ()) -> str:
    """A new random id, not in `taken`, in the form of `like` (`call_<24 hex>` when
    there is no form to keep)."""
    prefix, body = _form(like)
    alphabet = _alphabet(body)
    size = len(body)
    while len(alphabet) ** size < max(_MIN_IDS, 4 * (len(taken) + 1)):
        size += 1
    while True:
        fresh = prefix + "".join(secrets.choice(alphabet) for _ in range(size))
        if fresh not in taken and fresh != like:
            return fresh


def _form(like: str) -> tuple[str, str]:
    if not like:
        return "call_", uuid.uuid4().hex[:24]
    match = _PREFIX.match(like)
    assert match is not None  # the pattern matches every string
    return match[1] or "", match[2]


def _alphabet(body: str) -> str:
    chars = set(body)
    if chars and chars <= set(string.digits):
        return string.digits
    if chars and chars <= _HEX:
        return "0123456789abcdef"
    if chars and chars <= _HEX_UPPER:
        return "0123456789ABCDEF"
    classes = [
        cls
        for cls in (string.digits, string.ascii_lowercase, string.ascii_uppercase)
        if chars & set(cls)
    ]
    # characters outside letters and digits are not drawn: letters and digits of the
    # server's cases stand in for them (an id made of them only: letters and digits)
    return "".join(classes) or string.ascii_letters + string.digits
