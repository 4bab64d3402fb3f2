"""SQL over the lake: Trino-dialect queries run on DuckDB against the catalog's current snapshot."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hmco.compose.pipeline import Pipeline
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.query.lake import LakeSQL, translate
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window

DAY = Window.day("2026-11-26")


@pytest.fixture
def loaded(lake: Lake) -> Lake:
    Pipeline(
        SyntheticISO(nodes=40, settings=lake.settings), lake=lake, name="rt", window_step=timedelta(days=1)
    ).run(DAY)
    return lake


def test_counts_match_the_catalogs_current_snapshot(loaded: Lake) -> None:
    with LakeSQL(loaded) as sql:
        assert sql.iceberg, "the DuckDB iceberg extension should load from the installed wheels"
        n = sql.sql("SELECT count(*) AS n FROM hub_curated.rt_lmp").column("n")[0].as_py()
    assert n == loaded.table("rt_lmp").scan().to_arrow().num_rows == 40 * 288


def test_trino_dialect_and_catalog_prefixes_work(loaded: Lake) -> None:
    query = """
        SELECT date_trunc('hour', ts) AS hour, count_if(lmp > 0) AS positive, approx_distinct(node) AS nodes
        FROM iceberg.hub_curated.rt_lmp
        WHERE ts >= TIMESTAMP '2026-11-26 00:00:00 UTC' AND ts < TIMESTAMP '2026-11-26 00:00:00 UTC' + INTERVAL '2' HOUR
        GROUP BY 1 ORDER BY 1
    """
    with LakeSQL(loaded) as sql:
        out = sql.sql(query)
    assert out.num_rows == 2
    assert out.column("nodes").to_pylist() == [40, 40]


def test_new_commits_are_visible_to_the_next_query(loaded: Lake) -> None:
    nxt = Window.day("2026-11-27")
    with LakeSQL(loaded) as sql:
        before = sql.sql("SELECT count(*) AS n FROM hub_curated.rt_lmp").column("n")[0].as_py()
        Pipeline(SyntheticISO(nodes=40, settings=loaded.settings), lake=loaded, name="rt").run(nxt)
        after = sql.sql("SELECT count(*) AS n FROM hub_curated.rt_lmp").column("n")[0].as_py()
    assert after - before == 40 * 288


def test_unknown_table_is_a_clear_error(loaded: Lake) -> None:
    with LakeSQL(loaded) as sql, pytest.raises(ConfigError, match=r"hub_curated\.nope does not exist"):
        sql.sql("SELECT * FROM hub_curated.nope")


def test_translate_turns_trino_intervals_into_duckdb() -> None:
    assert "INTERVAL" in translate("SELECT now() - INTERVAL '1' HOUR").upper()


def test_a_cte_named_like_a_lake_table_still_reads_the_qualified_table(loaded: Lake) -> None:
    query = """
        WITH rt_lmp AS (SELECT node FROM hub_curated.rt_lmp WHERE node_type IS NOT NULL OR TRUE)
        SELECT count(DISTINCT node) AS nodes FROM rt_lmp
    """
    with LakeSQL(loaded) as sql:
        assert sql.sql(query).column("nodes").to_pylist() == [40]


def test_upper_case_trino_names_resolve_like_lower_case_ones(loaded: Lake) -> None:
    with LakeSQL(loaded) as sql:
        out = sql.sql("SELECT count(*) AS n FROM ICEBERG.HUB_CURATED.RT_LMP")
    assert out.column("n").to_pylist() == [40 * 288]
