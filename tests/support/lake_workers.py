"""Worker processes for the multi-process lake tests: each opens its own Lake on a shared HMCO_HOME.

Run as ``python -m tests.support.lake_workers <command> <home> ...`` so every worker is a real process
with its own catalog connection, exactly as parallel scheduler tasks would be.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from datetime import timedelta

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import Lake
from hmco.payload import RawPayload
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window, as_utc

NODES = 3
STEP = timedelta(hours=6)


class KillingSource(SyntheticISO):
    """SyntheticISO that SIGKILLs its own process when asked to fetch the window starting at ``kill_at``."""

    def __init__(self, kill_at: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.kill_at = as_utc(kill_at) if kill_at else None

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        if self.kill_at is not None and window.start == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        yield from super().fetch(window)


def pipeline(home: str, kill_at: str | None = None) -> Pipeline:
    settings = Settings.load(home=home)
    source = KillingSource(kill_at, nodes=NODES, settings=settings)
    # A worker that kills itself fetching window n runs windows one after another, so that window n-1 is
    # certainly committed first (with prefetch, window n is fetched while n-1 is still being published).
    return Pipeline(source, lake=Lake(settings), name="parallel", window_step=STEP, prefetch=kill_at is None)


def backfill(home: str, start: str, end: str, kill_at: str | None = None) -> None:
    report = pipeline(home, kill_at).backfill(start, end)
    print(report.count("ok"))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "backfill":
        backfill(*args)
    else:
        raise SystemExit(f"unknown command {command}")


def race_write(home: str, start: str, barrier: object, results: object) -> None:
    """Open a Lake on a (fresh) home, wait for the others, then write one window: the creation race.

    Puts the rows written on ``results``, or the error's text when the write failed.
    """
    settings = Settings.load(home=home)
    source = SyntheticISO(nodes=NODES, settings=settings)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        lake = Lake(settings)
        pipe = Pipeline(source, lake=lake, name=f"race-{start}", window_step=STEP, gate=False, stage=False)
        report = pipe.run(Window(as_utc(start), as_utc(start) + STEP))
        results.put(report.rows)  # type: ignore[attr-defined]
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
        raise
