"""How much a run measures: what the CLI changes and more than one section reads.

A section's own sizes stay in its module, `ctx.sized(full=..., quick=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backend:
    """What the scripted model does: its time to first token and token rate."""

    ttft: float
    token_delay: float
    tool_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicePlan:
    turns: int  # spoken turns measured in the voice section (0: skip it)
    warmup: int
    ttft: float
    token_delay: float
    side_by_side: int = 16  # utterances said to each pipeline (the paused questions, cycled)
    idle_worker: bool = True  # also measure an idle `voice-agent start` (about 10 s)
    pause: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    quick: bool
    backend: Backend
    reps: int  # turns per variant in the no-tool and tool sections
    warmup: int
    voice: VoicePlan


FULL = Plan(
    quick=False,
    backend=Backend(ttft=0.15, token_delay=0.02, tool_seconds=0.05),
    reps=40,
    warmup=3,
    # the scripted LLM as in sections 1-2; 12 spoken turns after one for warm-up
    voice=VoicePlan(turns=12, warmup=1, ttft=0.15, token_delay=0.02),
)
QUICK = Plan(
    quick=True,
    backend=Backend(ttft=0.02, token_delay=0.001, tool_seconds=0.005),
    reps=2,
    warmup=1,
    # the voice section is skipped: even one spoken turn adds about 25 s (the Whisper
    # server, a session process and a real-time utterance); `--voice-turns 1` runs one
    voice=VoicePlan(
        turns=0, warmup=0, ttft=0.02, token_delay=0.001, side_by_side=2, idle_worker=False
    ),
)
