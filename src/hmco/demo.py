"""The demo job (``hmco demo`` / ``make demo``): the whole spine on the embedded default, no network.

It ingests a day of synthetic 5-minute LMPs for thousands of nodes and ten days of EIA daily
fuel-type generation (EIA's real JSON format, parsed by the real EIA parser) through
archive → parse → audit branch ‖ quality gate → curated, then runs the seed's two example queries as
written (Trino dialect, translated for DuckDB) over the lake, loads the last hour of LMPs into the
real-time store (ClickHouse, in process through chdb) and runs the RT query there too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from hmco.compose.pipeline import Pipeline, RunReport
from hmco.config import Settings
from hmco.lake import Lake
from hmco.sources.synthetic import SyntheticEIADailyFuel, SyntheticISO
from hmco.windows import Window, floor_time

__all__ = ["EIA_QUERY", "RT_QUERY", "DemoResult", "run_demo"]

#: The seed's example queries, verbatim (platform overview, "Query Data").
EIA_QUERY = """SELECT region, series, avg(value) as avg_value
FROM hub_curated.eia_daily_fuel
WHERE ts >= CURRENT_DATE - INTERVAL '7' DAY
GROUP BY region, series"""

RT_QUERY = """SELECT iso, node, avg(lmp) as avg_lmp
FROM clickhouse.default.rt_lmp
WHERE ts >= now() - INTERVAL '1' HOUR
GROUP BY iso, node
ORDER BY avg_lmp DESC
LIMIT 10"""


@dataclass
class DemoResult:
    reports: list[RunReport]
    eia: pa.Table
    rt: pa.Table
    seconds: float
    where: str
    extra: dict[str, Any] = field(default_factory=dict)


def _gate(dataset: str) -> Any:
    try:
        from hmco.quality.spec import build_gate
    except ImportError:  # pragma: no cover - quality is part of the package
        return None
    from hmco.schemas import get_dataset

    return build_gate(get_dataset(dataset), None)


def _warm(settings: Settings, lake: Lake, gates: dict[str, Any], now: datetime) -> float:
    """Load what the first window would otherwise pay for (imports, gate compile, table load); its seconds.

    The run reports' rows/s then cover the pipelines' own work, not one-off start-up costs.
    """
    started = time.perf_counter()
    from hmco.schemas import get_dataset
    from hmco.sources.synthetic import synthetic_lmp

    window = Window(now - timedelta(minutes=5), now)
    sample = synthetic_lmp(window, nodes=2)
    for name, gate in gates.items():
        lake.table(name)
        if gate is not None:
            ds = get_dataset(name)
            gate.check(sample if name == "rt_lmp" else ds.schema.empty_table(), ds, window)
    return time.perf_counter() - started


def run_demo(
    settings: Settings | None = None,
    *,
    nodes: int = 3000,
    now: datetime | None = None,
    clickhouse: bool = True,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo and return what it printed (tests call this with a temporary HMCO_HOME)."""
    started = time.perf_counter()
    settings = settings or Settings.load()
    now = now or datetime.now(UTC)
    lake = Lake(settings)
    lake.create_tiers()
    say(
        f"hmco demo — lake at {settings.home_dir} (profile {settings.profile}, catalog {settings.catalog.type})"
    )

    end = floor_time(now, timedelta(minutes=5))
    gates = {"rt_lmp": _gate("rt_lmp"), "eia_daily_fuel": _gate("eia_daily_fuel")}
    warm = _warm(settings, lake, gates, end)
    say(f"• start-up (imports, quality suites, tables) {warm:.1f}s — not counted in the rows/s below")
    rt_window = Window(end - timedelta(days=1), end)
    rt = Pipeline(
        SyntheticISO(nodes=nodes, settings=settings),
        lake=lake,
        name="demo-synthetic-rt-lmp",
        gate=gates["rt_lmp"],
        window_step=timedelta(hours=6),
    )
    say(f"• ingesting {nodes:,} nodes × 288 five-minute intervals of synthetic LMPs for {rt_window} …")
    rt_report = rt.run(rt_window)

    today = floor_time(now, timedelta(days=1))
    eia_window = Window(today - timedelta(days=10), today)
    eia = Pipeline(
        SyntheticEIADailyFuel(settings=settings),
        lake=lake,
        name="demo-eia-daily-fuel",
        gate=gates["eia_daily_fuel"],
        window_step=timedelta(days=10),
    )
    say(f"• ingesting EIA daily fuel-type generation (EIA v2 JSON) for {eia_window} …")
    eia_report = eia.run(eia_window)

    from hmco.query.lake import LakeSQL

    with LakeSQL(lake) as sql:
        eia_result = sql.sql(EIA_QUERY).sort_by([("region", "ascending"), ("series", "ascending")])
        rt_result = sql.sql(RT_QUERY)

    _print_table(say, "Seed EIA query (hub_curated.eia_daily_fuel, last 7 days)", EIA_QUERY, eia_result)
    _print_table(say, "Seed RT LMP query (against the lake's rt_lmp)", RT_QUERY, rt_result)

    extra: dict[str, Any] = {}
    if clickhouse:
        from hmco.clickhouse import connect_clickhouse
        from hmco.query.clickhouse import SEED_QUERY, top_nodes_last_hour
        from hmco.sinks.clickhouse import load_rt_lmp

        say("")
        say(f"• loading the last hour of rt_lmp into ClickHouse ({settings.clickhouse.interface}) …")
        recent = lake.scan(
            "rt_lmp", row_filter=f"ts >= '{(end - timedelta(hours=1)).isoformat()}'"
        ).to_arrow()
        written = load_rt_lmp(recent, settings, batch_id=f"demo-{end:%Y%m%dT%H%M}")
        ch_result = top_nodes_last_hour(connect_clickhouse(settings))
        extra = {"clickhouse": ch_result, "clickhouse_rows": written.rows}
        _print_table(
            say, "Seed RT LMP query on ClickHouse (rt_lmp, deduplicated view)", SEED_QUERY, ch_result
        )
    say("Run reports (rows/s: wall time of each run — generate, archive, parse, gate, write, publish):")
    for report in (rt_report, eia_report):
        say("  " + str(report).replace("\n", "\n  "))
    where = str(settings.home_dir)
    say(
        f"Data: catalog {settings.home_dir / 'catalog.db'}; tables under {settings.home_dir / 'warehouse'} "
        f"(hmco-curated; gate results and quarantine beside hmco-staged); raw payloads in {settings.home_dir / 'warehouse' / 'hmco-raw' / 'payloads'}"
        + (f"; ClickHouse (chdb) data in {settings.chdb_path}." if clickhouse else ".")
    )
    seconds = time.perf_counter() - started
    say(f"Done in {seconds:.1f}s.")
    extra["warm_seconds"] = warm
    return DemoResult([rt_report, eia_report], eia_result, rt_result, seconds, where, extra)


def _print_table(say: Callable[[str], None], title: str, query: str, table: pa.Table) -> None:
    import polars as pl

    say("")
    say(f"== {title}")
    say("   " + query.replace("\n", "\n   "))
    with pl.Config(tbl_rows=60, tbl_hide_dataframe_shape=True, fmt_str_lengths=40, tbl_width_chars=100):
        say(str(pl.from_arrow(table)))
    say(f"({table.num_rows} rows)")
