"""Markers in streamed text, which may arrive split across deltas.

A stream filter that cuts at markers (`<think>`, `[TOOL_CALLS]`, ...) must hold back the
tail of each delta that could still grow into one, and release the rest at once.
"""

from __future__ import annotations

from collections.abc import Iterable


def partial_marker_length(text: str, markers: Iterable[str]) -> int:
    """Length of the longest suffix of `text` that begins one of `markers` without being
    all of it: how much to hold back until the next delta tells."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best
