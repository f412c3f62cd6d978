"""Skip a backend that keeps failing for a while, instead of waiting on it every turn.

After `threshold` consecutive failures the backend is "cooling down": requests fail
at once (retryable=False, so nothing waits on retries) until `seconds` have passed.
The next request after that is a real one again: success closes the breaker, a
failure opens it for another period. Inside a `FallbackAdapter`, a cooling backend
is thus skipped in microseconds, and livekit's recovery probes cost nothing until
the period is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .base import APIConnectionError


class BackendCoolingDown(APIConnectionError):
    """Raised instead of a request while the backend is cooling down."""


class Cooldown:
    """The failure count and cool-down deadline of one backend."""

    def __init__(
        self,
        *,
        seconds: float = 30.0,
        threshold: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.threshold = threshold
        self._clock = clock
        self._failures = 0
        self._until = 0.0
        self.peers: list[Cooldown] = []
        """The cool-downs of every backend in the chain, this one included."""

    def __repr__(self) -> str:
        return (
            f"Cooldown(seconds={self.seconds}, threshold={self.threshold}, cooling={self.cooling})"
        )

    def check(self) -> None:
        """Raise `BackendCoolingDown` if requests should not be sent now.

        Never while every backend of the chain is cooling down: then skipping them all
        would only turn every turn into an apology without asking anyone."""
        remaining = self._until - self._clock()
        if remaining > 0 and not (self.peers and all(peer.cooling for peer in self.peers)):
            raise BackendCoolingDown(
                f"backend skipped for {remaining:.0f} s more after repeated failures",
                retryable=False,
            )

    def record_success(self) -> None:
        self._failures = 0
        self._until = 0.0

    def record_failure(self) -> bool:
        """Count a failure; True when this one starts a cool-down period."""
        self._failures += 1
        if self._failures >= self.threshold:
            self._failures = 0
            self._until = self._clock() + self.seconds
            return True
        return False

    @property
    def cooling(self) -> bool:
        return self._until > self._clock()
