"""Quickstart: land three hours of synthetic 5-minute LMPs in a local lake, gate them, query them.

Everything runs in process on the ``local`` profile (SQLite catalog, file warehouse, DuckDB for SQL):
no servers, no network. The lake lives under ``$HMCO_HOME`` (a fresh temporary directory if unset).

Run: ``python examples/quickstart.py``
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import hmco
from hmco.quality import build_gate
from hmco.query.lake import LakeSQL
from hmco.sources.synthetic import SyntheticISO

NODES = 200
WINDOW = hmco.Window.of("2026-11-26T00:00:00Z", "2026-11-26T03:00:00Z")

#: Trino-dialect SQL, exactly as it would be sent to the platform's Trino; DuckDB runs it locally.
QUERY = """
SELECT iso, market, count(*) AS row_count, count(DISTINCT node) AS nodes,
       round(avg(lmp), 2) AS avg_lmp, round(max(lmp), 2) AS max_lmp
FROM iceberg.hub_curated.rt_lmp
WHERE ts >= TIMESTAMP '2026-11-26 00:00:00 UTC' AND ts < TIMESTAMP '2026-11-26 03:00:00 UTC'
GROUP BY iso, market
"""


def main(home: Path) -> int:
    """Build the lake under ``home``, run the pipeline, query the result; 0 when every check holds."""
    settings = hmco.Settings.load(home=home)
    lake = hmco.Lake(settings)
    created = lake.create_tiers()
    print(
        f"lake at {settings.home_dir} (profile {settings.profile}); created namespaces: {', '.join(created)}"
    )

    source = SyntheticISO(nodes=NODES, settings=settings)
    pipeline = hmco.Pipeline(
        source,
        lake=lake,
        name="quickstart-rt-lmp",
        gate=build_gate(source.dataset, None),  # the dataset's default expectation suite
        window_step=timedelta(hours=1),  # one atomic commit per hour
    )
    print(f"running {pipeline.name}: {NODES} nodes x 5-minute intervals over {WINDOW}")
    report = pipeline.run(WINDOW)
    print("run report:")
    print("  " + str(report).replace("\n", "\n  "))
    for w in report.windows:
        print(
            f"  window {w.window}: {w.status}, {w.rows} rows, {w.payloads} payload(s) archived={w.archived}"
        )
    print(f"watermark: {pipeline.watermark.isoformat() if pipeline.watermark else None}")

    with LakeSQL(lake) as sql:
        result = sql.sql(QUERY)
    print("query result (Trino dialect, run on DuckDB):")
    for row in result.to_pylist():
        print(f"  {row}")

    expected = NODES * int(WINDOW.duration / timedelta(minutes=5))
    got = sum(r["row_count"] for r in result.to_pylist())
    print(f"curated rows: {got} (expected {expected})")
    if not report.ok or got != expected or pipeline.watermark != WINDOW.end:
        print("quickstart FAILED", file=sys.stderr)
        return 1
    print("quickstart OK")
    return 0


if __name__ == "__main__":
    env_home = os.environ.get("HMCO_HOME")
    if env_home:
        sys.exit(main(Path(env_home)))
    with tempfile.TemporaryDirectory(prefix="hmco-quickstart-") as tmp:
        sys.exit(main(Path(tmp) / "hmco"))
