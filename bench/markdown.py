"""Markdown pieces every section's `render` uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .common import Summary


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def f1(x: float) -> str:
    return f"{x:.1f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def f3(x: float) -> str:
    return f"{x:.3f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def p50_p95(values: Sequence[float], fmt: Callable[[float], str] = f1) -> list[str]:
    """Two table cells: the sample's p50 and p95."""
    s = Summary.of(values)
    return [fmt(s.p50), fmt(s.p95)]


def key_values(intro: str, rows: Sequence[tuple[str, str]]) -> list[str]:
    """A paragraph, then a two-column table of named values."""
    return [intro, "", table(["what", "value"], [list(row) for row in rows]), ""]
