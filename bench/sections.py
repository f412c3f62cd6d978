"""What a report section is, and what every section gets to run with.

A section is a module with a `run` function (measures, returns its result) and a
`render` function (that result as Markdown lines), registered once in `SECTIONS` in
`bench/__main__.py`. `numbers` is what the section adds to `bench/results.json`:
summaries, not raw samples, under the section's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .common import Summary

if TYPE_CHECKING:  # not at run time: `python -m bench.sessions` children import this
    from .plan import Plan
    from .server_proc import RemoteLLMServer


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """One run: its plan, the shared scripted LLM server, earlier sections' results."""

    plan: Plan
    server: RemoteLLMServer
    results: dict[str, Any] = field(default_factory=dict)
    """Results of the sections that ran before this one, by section name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    name: str
    """What `python -m bench NAME` selects it by, and its key in results.json."""
    title: str
    """The report heading, without its number."""
    run: Callable[[Context], Any]
    render: Callable[[Any, Context], list[str]]
    numbers: Callable[[Any], Mapping[str, object]]


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """A sample's size and p50 / p95, rounded for results.json."""
    s = Summary.of(values)
    return {"n": s.n, "p50": round(s.p50, 3), "p95": round(s.p95, 3)}
