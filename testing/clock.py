"""A clock that moves only when the test moves it, for time-dependent logic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ManualClock:
    """Callable like `time.monotonic`; `advance()` is the only way time passes."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
