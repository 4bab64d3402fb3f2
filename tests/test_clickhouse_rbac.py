"""ClickHouse roles and row policies as code: golden SQL text, parse-checked by chdb's EXPLAIN AST."""

from __future__ import annotations

import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse
from hmco.security.clickhouse_rbac import DEFAULT_DESKS, Desk, render_rbac, render_role_assignments
from tests.support.chdb import chdb_settings

SINGLE = ClickHouseLayout.of("rt_lmp", database="lmp")
CLUSTER = ClickHouseLayout.of("rt_lmp", database="lmp", cluster="hmco_cluster")


def test_single_node_statements_golden() -> None:
    assert render_rbac(SINGLE)[:8] == [
        "CREATE ROLE IF NOT EXISTS etl_writer",
        "CREATE ROLE IF NOT EXISTS bi_reader",
        "CREATE ROLE IF NOT EXISTS desk_west",
        "CREATE ROLE IF NOT EXISTS desk_east",
        "GRANT SELECT, INSERT ON lmp.* TO etl_writer",
        "GRANT SELECT ON lmp.* TO bi_reader",
        "GRANT SELECT ON lmp.* TO desk_west",
        "GRANT SELECT ON lmp.* TO desk_east",
    ]
    assert render_rbac(SINGLE)[8:11] == [
        "CREATE ROW POLICY IF NOT EXISTS desk_west_rows ON lmp.rt_lmp_store "
        "FOR SELECT USING iso IN ('CAISO', 'SPP') AS PERMISSIVE TO desk_west",
        "CREATE ROW POLICY IF NOT EXISTS desk_east_rows ON lmp.rt_lmp_store "
        "FOR SELECT USING iso IN ('MISO') AS PERMISSIVE TO desk_east",
        "CREATE ROW POLICY IF NOT EXISTS all_rows ON lmp.rt_lmp_store "
        "FOR SELECT USING 1 AS PERMISSIVE TO ALL EXCEPT desk_west, desk_east",
    ]


def test_policies_cover_every_table_holding_rows() -> None:
    tables = {s.split(" ON ")[1].split(" ")[0] for s in render_rbac(SINGLE) if "ROW POLICY" in s}
    assert tables == {"lmp.rt_lmp_store", "lmp.rt_lmp_hourly_store", "lmp.rt_lmp_daily_store"}
    assert sum("ROW POLICY" in s for s in render_rbac(SINGLE)) == 3 * (len(DEFAULT_DESKS) + 1)


def test_cluster_statements_run_on_cluster_against_local_tables() -> None:
    statements = render_rbac(CLUSTER)
    assert all(" ON CLUSTER hmco_cluster" in s for s in statements)
    assert statements[4] == "GRANT ON CLUSTER hmco_cluster SELECT, INSERT ON lmp.* TO etl_writer"
    assert statements[8] == (
        "CREATE ROW POLICY IF NOT EXISTS desk_west_rows ON CLUSTER hmco_cluster ON lmp.rt_lmp_local "
        "FOR SELECT USING iso IN ('CAISO', 'SPP') AS PERMISSIVE TO desk_west"
    )
    tables = {s.split(" ON ")[2].split(" ")[0] for s in statements if "ROW POLICY" in s}
    assert tables == {"lmp.rt_lmp_local", "lmp.rt_lmp_hourly_local", "lmp.rt_lmp_daily_local"}


def test_custom_desks_and_quoting() -> None:
    statements = render_rbac(SINGLE, [Desk("desk_odd", ("O'HARE",))])
    assert "USING iso IN ('O\\'HARE') AS PERMISSIVE TO desk_odd" in statements[6]
    assert statements[7].endswith("TO ALL EXCEPT desk_odd")


def test_role_assignments() -> None:
    assert render_role_assignments(
        CLUSTER, {"bob": ["desk_east"], "alice": ["desk_west", "bi_reader"], "x": []}
    ) == [
        "GRANT ON CLUSTER hmco_cluster desk_west, bi_reader TO alice",
        "GRANT ON CLUSTER hmco_cluster desk_east TO bob",
    ]


@pytest.mark.parametrize("layout", [SINGLE, CLUSTER], ids=["single", "cluster"])
def test_every_statement_parses(layout: ClickHouseLayout) -> None:
    client = connect_clickhouse(chdb_settings())
    statements = render_rbac(layout) + render_role_assignments(layout, {"alice": ["desk_west"]})
    for stmt in statements:
        assert client.query(f"EXPLAIN AST {stmt}").result_rows, stmt


def test_unusual_role_and_user_names_are_quoted_not_spliced_into_sql() -> None:
    desk = Desk("desk west`) TO ALL --", ("CAISO",))
    statements = render_rbac(SINGLE, [desk]) + render_role_assignments(
        SINGLE, {"alice@corp.example": [desk.role]}
    )
    quoted = "`desk west\\`) TO ALL --`"
    assert statements[2] == f"CREATE ROLE IF NOT EXISTS {quoted}"
    assert statements[6] == (
        "CREATE ROW POLICY IF NOT EXISTS `desk west\\`) TO ALL --_rows` ON lmp.rt_lmp_store "
        f"FOR SELECT USING iso IN ('CAISO') AS PERMISSIVE TO {quoted}"
    )
    assert statements[-1] == f"GRANT {quoted} TO `alice@corp.example`"
    client = connect_clickhouse(chdb_settings())
    for stmt in statements:
        assert client.query(f"EXPLAIN AST {stmt}").result_rows, stmt
