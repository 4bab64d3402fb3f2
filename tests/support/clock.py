"""Injected time for source clients: a clock that only moves when slept on, recording every wait."""

from __future__ import annotations


class FakeTime:
    """Pass ``sleep=t.sleep, clock=t.clock``; ``t.sleeps`` lists each requested wait (pacing and back-off)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
