"""How much of everything one run measures: the full run and `--quick`.

Nothing here imports the rest of `bench/`: every section reads its sizes from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backend:
    """What the scripted model does: its time to first token and token rate."""

    ttft: float
    token_delay: float
    tool_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicePlan:
    turns: int
    """Spoken turns measured in the voice section (0: skip it)."""
    warmup: int
    ttft: float
    token_delay: float
    side_by_side: int = 16
    """Utterances said to each pipeline in the side by side (the paused questions, cycled)."""
    idle_worker: bool = True
    """Also start `voice-agent start` to measure an idle worker's memory (about 10 s)."""
    pause: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityPlan:
    levels: Sequence[int] = (1, 5, 10, 20, 40)
    measured_turns: int = 4
    """Turns per session after its first (warm-up); a lone session says `lone_turns`."""
    lone_turns: int = 12
    stagger: float = 3.0
    """Sessions start spread over this many seconds, as independent calls do."""
    pause: float = 1.0
    stt_delay: float = 0.15
    llm_ttft: float = 0.2
    token_delay: float = 0.01
    tts_delay: float = 0.1
    budget_ms: float = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    quick: bool
    backend: Backend
    reps: int
    """Turns per variant in the no-tool and tool sections."""
    warmup: int
    filler_delay: float
    """TOOL_FILLER_DELAY for the slow-tool filler row of the tool section."""
    cpu_reps: int
    profile_turns: int
    cpu_token_delay: float
    levels: list[int]
    """Sessions per process in the sessions section."""
    min_turns: int
    think: float
    voice: VoicePlan
    tool_runs: int
    """Repetitions per MCP start-up and turn variant in the tools section."""
    soak_turns: int
    fault_sessions: tuple[int, int]
    """Sessions x turns each in the faults section."""
    capacity: CapacityPlan


FULL = Plan(
    quick=False,
    backend=Backend(ttft=0.15, token_delay=0.02, tool_seconds=0.05),
    reps=40,
    warmup=3,
    filler_delay=0.7,  # the default TOOL_FILLER_DELAY
    cpu_reps=150,
    profile_turns=40,
    cpu_token_delay=0.002,
    levels=[1, 10, 50, 100],
    min_turns=30,
    think=0.5,
    # the scripted LLM as in sections 1-2; 12 spoken turns after one for warm-up
    voice=VoicePlan(turns=12, warmup=1, ttft=0.15, token_delay=0.02),
    tool_runs=10,
    soak_turns=1000,
    fault_sessions=(50, 20),
    capacity=CapacityPlan(),
)
QUICK = Plan(
    quick=True,
    backend=Backend(ttft=0.02, token_delay=0.001, tool_seconds=0.005),
    reps=2,
    warmup=1,
    filler_delay=0.05,
    cpu_reps=3,
    profile_turns=2,
    cpu_token_delay=0.0,
    levels=[2],  # one process of two sessions: a second process costs its imports again
    min_turns=3,
    think=0.02,
    # the voice section is skipped: even one spoken turn adds about 25 s (the Whisper
    # server, a session process and a real-time utterance); `--voice-turns 1` runs one
    voice=VoicePlan(
        turns=0, warmup=0, ttft=0.02, token_delay=0.001, side_by_side=2, idle_worker=False
    ),
    tool_runs=1,
    soak_turns=20,
    fault_sessions=(5, 3),
    # one lone session, one measured turn: the section runs end to end (about 25 s)
    capacity=CapacityPlan(levels=(1,), measured_turns=1, lone_turns=1, pause=0.3),
)
