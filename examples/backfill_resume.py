"""Backfill with a source outage, then resume: committed windows are skipped, no gap, no duplicate.

A six-hour backfill runs in one-hour windows, each committed atomically to curated together with the
pipeline's watermark. The source fails once on the fourth window (``SourceUnavailable``, as an API
returning 503s would after its retries). The run stops there and reports the failed window; re-running
with ``resume=True`` skips every window at or before the watermark and loads the rest.

Run: ``python examples/backfill_resume.py`` (the lake goes under ``$HMCO_HOME`` or a temp dir).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

import hmco
from hmco.errors import PipelineError, SourceUnavailable
from hmco.quality import build_gate
from hmco.query.lake import LakeSQL
from hmco.sources.base import RawPayload, Source
from hmco.sources.synthetic import SyntheticISO

NODES = 100
BACKFILL = hmco.Window.of("2026-11-26T00:00:00Z", "2026-11-26T06:00:00Z")
STEP = timedelta(hours=1)
OUTAGE = hmco.Window.of("2026-11-26T03:00:00Z", "2026-11-26T04:00:00Z")


class FlakyOnce(Source):
    """Wraps a source and fails the first fetch of one window, like an API outage would."""

    name: ClassVar[str] = "flaky_synthetic_iso"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp",)
    window_step: timedelta = STEP

    def __init__(self, inner: Source, fail_on: hmco.Window) -> None:
        super().__init__(inner.dataset.name, settings=inner.settings)
        self.inner = inner
        self.fail_on = fail_on
        self.failed = False

    def scope(self) -> dict[str, list[str]]:
        return self.inner.scope()

    def fetch(self, window: hmco.Window) -> Iterator[RawPayload]:
        if window == self.fail_on and not self.failed:
            self.failed = True
            raise SourceUnavailable(f"{self.inner.name}: HTTP 503 for {window} after 5 attempts; retry later")
        yield from self.inner.fetch(window)

    def parse(self, payload: RawPayload) -> pa.Table:
        return self.inner.parse(payload)


def _print_report(title: str, report: hmco.RunReport) -> None:
    print(title)
    print("  " + str(report).replace("\n", "\n  "))
    for w in report.windows:
        print(f"  {w.window.start:%H:%M}-{w.window.end:%H:%M} {w.status:8} {w.rows:>6} rows")


def _curated_counts(lake: hmco.Lake) -> dict[str, int]:
    query = """
    SELECT count(*) AS row_count, count(DISTINCT (node, ts)) AS distinct_keys,
           count(DISTINCT date_trunc('hour', ts)) AS hours
    FROM hub_curated.rt_lmp
    """
    with LakeSQL(lake) as sql:
        row = sql.sql(query).to_pylist()[0]
    return {k: int(v) for k, v in row.items()}


def main(home: Path) -> int:
    """Run the failing backfill and its resume under ``home``; 0 when the lake ends exact."""
    settings = hmco.Settings.load(home=home)
    lake = hmco.Lake(settings)
    lake.create_tiers()
    synthetic = SyntheticISO(nodes=NODES, settings=settings)
    source = FlakyOnce(synthetic, fail_on=OUTAGE)
    pipeline = hmco.Pipeline(
        source, lake=lake, name="backfill-demo", gate=build_gate(source.dataset, None), window_step=STEP
    )
    print(f"backfill {BACKFILL} in {STEP} windows, {NODES} nodes; the source fails once on {OUTAGE}")

    try:
        pipeline.run(BACKFILL)
        print("first run unexpectedly succeeded", file=sys.stderr)
        return 1
    except PipelineError as exc:
        first: hmco.RunReport = exc.report
    _print_report("first run (stopped at the outage):", first)
    mark = pipeline.watermark
    print(f"watermark after first run: {mark.isoformat() if mark else None}")
    print(f"curated after first run: {_curated_counts(lake)}")

    second = pipeline.run(BACKFILL, resume=True)
    _print_report("resumed run:", second)
    print(f"watermark after resume: {pipeline.watermark.isoformat() if pipeline.watermark else None}")

    per_hour = NODES * 12
    expected = per_hour * int(BACKFILL.duration / STEP)
    counts = _curated_counts(lake)
    print(f"curated after resume: {counts} (expected {expected} rows)")
    checks = {
        "first run committed 3 windows then failed 1": (first.count("ok"), first.count("failed")) == (3, 1),
        "resume skipped the 3 committed windows": second.count("skipped") == 3,
        "resume loaded the other 3": second.count("ok") == 3 and second.rows == 3 * per_hour,
        "no gap": counts["row_count"] == expected and counts["hours"] == 6,
        "no duplicate": counts["distinct_keys"] == counts["row_count"],
        "watermark at the end": pipeline.watermark == BACKFILL.end,
    }
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if not all(checks.values()):
        print("backfill_resume FAILED", file=sys.stderr)
        return 1
    print("backfill_resume OK")
    return 0


if __name__ == "__main__":
    env_home = os.environ.get("HMCO_HOME")
    if env_home:
        sys.exit(main(Path(env_home)))
    with tempfile.TemporaryDirectory(prefix="hmco-backfill-") as tmp:
        sys.exit(main(Path(tmp) / "hmco"))
