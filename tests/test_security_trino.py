"""Trino governance from one declaration: each role's allowed action succeeds and its denied one fails.

A second Trino server (``tests/support/trino_governed.py``) runs hmco's generated ``rules.json`` and
``resource-groups.json``; queries run as each role's user. A denial is Trino's own ``PERMISSION_DENIED``,
raised by hmco as :class:`~hmco.errors.AccessDenied` naming the user, action and object. The ``bi`` group
is cut to 1 running + 1 queued, so three BI queries fill it: one runs, one queues, the third is rejected
(:class:`~hmco.errors.QueryRejected`), while an ETL query still completes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from trino.exceptions import TrinoQueryError

from hmco.demo import EIA_QUERY
from hmco.errors import AccessDenied, ConfigError, QueryRejected, TransientError
from hmco.query.trino import TrinoSQL
from hmco.security.access import ACCESS
from hmco.security.trino import access_control_rules, resource_groups, write_trino_security
from tests.support.trino_governed import GovernedTrino, trino_governed

__all__ = ["trino_governed"]  # the module-scoped server fixture, started only for this module

#: A BI query that runs until killed: the curated table against 10^8 generated rows (CPU-bound).
SLOW_BI = """SELECT count(*) FROM hub_curated.eia_daily_fuel
CROSS JOIN UNNEST(sequence(1, 10000)) AS a(x) CROSS JOIN UNNEST(sequence(1, 10000)) AS b(y)
WHERE x + y > value"""
DEADLINE = 60.0


def run(gov: GovernedTrino, user: str, query: str) -> Any:
    with TrinoSQL(gov.as_user(user)) as trino:
        return trino.sql(query)


def denied(gov: GovernedTrino, user: str, query: str) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        run(gov, user, query)
    cause = info.value.__cause__
    assert isinstance(cause, TrinoQueryError) and cause.error_name == "PERMISSION_DENIED"
    assert "Access Denied" in str(info.value) and repr(user) in str(info.value)
    return info.value


# --- the generated files -----------------------------------------------------------------------------
def test_rules_give_each_role_its_tiers_and_no_more() -> None:
    tables = access_control_rules(ACCESS)["tables"]
    by_user = {(r.get("user"), r.get("schema")): r["privileges"] for r in tables}
    assert by_user[("bi", "hub_curated")] == ["SELECT"]
    assert "INSERT" in by_user[("ml", "hub_ml")] and by_user[("ml", "hub_curated")] == ["SELECT"]
    assert "OWNERSHIP" in by_user[("etl", "hub_raw|hub_staged|hub_curated|hub_ml")]
    catalogs = {r["user"]: r["allow"] for r in access_control_rules(ACCESS)["catalogs"]}
    assert catalogs == {"admin": "all", "etl": "all", "bi": "read-only", "ml": "all"}


def test_resource_groups_carry_the_declared_limits_and_select_by_user() -> None:
    spec = resource_groups(ACCESS)
    groups = {g["name"]: g for g in spec["rootGroups"][0]["subGroups"]}
    for declared in ACCESS.resource_groups:
        assert groups[declared.name]["hardConcurrencyLimit"] == declared.hard_concurrency_limit
        assert groups[declared.name]["maxQueued"] == declared.max_queued
        assert groups[declared.name]["softMemoryLimit"] == declared.soft_memory_limit
    selectors = {s.get("user"): s["group"] for s in spec["selectors"]}
    assert selectors == {"etl": "hmco.etl", "bi": "hmco.bi", "ml": "hmco.ml", None: "hmco.adhoc"}


def test_write_trino_security_writes_the_json_and_the_etc_snippets(tmp_path: Any) -> None:
    files = write_trino_security(tmp_path, refresh_period="5s")
    assert json.loads(files.rules.read_text()) == access_control_rules()
    assert json.loads(files.resource_groups.read_text()) == resource_groups()
    access = files.access_control_properties.read_text()
    assert "access-control.name=file\n" in access and f"security.config-file={files.rules}\n" in access
    assert "security.refresh-period=5s" in access
    groups = files.resource_groups_properties.read_text()
    assert f"resource-groups.config-file={files.resource_groups}" in groups


# --- ETL: writes every hub tier --------------------------------------------------------------------------
def test_etl_inserts_into_curated_and_staged(trino_governed: GovernedTrino) -> None:
    gov = trino_governed
    for schema in ("hub_curated", "hub_staged"):
        before = run(gov, "etl", f"SELECT count(*) AS n FROM {schema}.eia_daily_fuel")["n"][0].as_py()
        run(gov, "etl", f"INSERT INTO {schema}.eia_daily_fuel SELECT * FROM {schema}.eia_daily_fuel LIMIT 1")
        after = run(gov, "etl", f"SELECT count(*) AS n FROM {schema}.eia_daily_fuel")["n"][0].as_py()
        assert after == before + 1


def test_etl_creates_and_drops_a_table_in_staged(trino_governed: GovernedTrino) -> None:
    run(trino_governed, "etl", "CREATE TABLE hub_staged.etl_probe AS SELECT 1 AS x")
    assert run(trino_governed, "etl", "SELECT x FROM hub_staged.etl_probe")["x"].to_pylist() == [1]
    run(trino_governed, "etl", "DROP TABLE hub_staged.etl_probe")


# --- BI: reads curated, nothing else ------------------------------------------------------------------
def test_bi_runs_the_seed_eia_query_on_curated(trino_governed: GovernedTrino) -> None:
    result = run(trino_governed, "bi", EIA_QUERY)
    assert result.column_names == ["region", "series", "avg_value"] and result.num_rows > 0


@pytest.mark.parametrize(
    ("query", "action"),
    [
        ("INSERT INTO hub_curated.eia_daily_fuel SELECT * FROM hub_curated.eia_daily_fuel LIMIT 1", "insert"),
        ("DELETE FROM hub_curated.eia_daily_fuel WHERE false", "delete"),
        ("CREATE TABLE hub_curated.bi_copy AS SELECT 1 AS x", "create"),
        ("SELECT count(*) FROM hub_staged.eia_daily_fuel", "select"),
    ],
)
def test_bi_is_denied_writes_to_curated_and_reads_of_staged(
    trino_governed: GovernedTrino, query: str, action: str
) -> None:
    error = denied(trino_governed, "bi", query)
    assert error.role == "bi-reader" and error.action is not None and error.action.startswith(action)
    schema = "hub_staged" if action == "select" else "hub_curated"
    assert error.resource is not None and f"iceberg.{schema}." in error.resource
    assert "etl-writer" in str(error)  # names the role that may
    assert isinstance(error, ConfigError) and not error.transient


# --- ML: reads curated, writes hub_ml -----------------------------------------------------------------
def test_ml_builds_features_in_hub_ml_from_curated(trino_governed: GovernedTrino) -> None:
    gov = trino_governed
    run(gov, "ml", "CREATE TABLE hub_ml.fuel_features AS " + EIA_QUERY)
    run(
        gov,
        "ml",
        "INSERT INTO hub_ml.fuel_features SELECT region, series, avg_value * 0 FROM hub_ml.fuel_features",
    )
    count = run(gov, "ml", "SELECT count(*) AS n FROM hub_ml.fuel_features")["n"][0].as_py()
    assert count == 2 * run(gov, "ml", EIA_QUERY).num_rows > 0


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO hub_curated.eia_daily_fuel SELECT * FROM hub_curated.eia_daily_fuel LIMIT 1",
        "SELECT count(*) FROM hub_staged.eia_daily_fuel",
    ],
)
def test_ml_is_denied_writing_curated_and_reading_staged(trino_governed: GovernedTrino, query: str) -> None:
    error = denied(trino_governed, "ml", query)
    assert error.role == "ml"


def test_a_user_of_no_role_gets_nothing_in_the_lake(trino_governed: GovernedTrino) -> None:
    error = denied(trino_governed, "guest", EIA_QUERY)
    assert error.role == "guest"


# --- resource groups: BI saturated, ETL still runs -------------------------------------------------------
class Background:
    """A query run on its own thread and connection; ``error`` holds how it ended."""

    def __init__(self, gov: GovernedTrino, user: str, query: str) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(gov, user, query), daemon=True)
        self.thread.start()

    def _run(self, gov: GovernedTrino, user: str, query: str) -> None:
        try:
            run(gov, user, query)
        except BaseException as exc:
            self.error = exc


def bi_queries(admin: TrinoSQL) -> list[dict[str, Any]]:
    return admin.sql(
        "SELECT query_id, state, resource_group_id FROM system.runtime.queries "
        "WHERE \"user\" = 'bi' AND state NOT IN ('FINISHED', 'FAILED')"
    ).to_pylist()


def until(admin: TrinoSQL, ready: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Ask the server for BI's live queries until ``ready`` holds (each answer decides; deadline bounds)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        queries = bi_queries(admin)
        if ready(queries):
            return queries
    raise AssertionError(f"the server never reached the expected state: {bi_queries(admin)}")


@pytest.fixture
def admin(trino_governed: GovernedTrino) -> Iterator[TrinoSQL]:
    with TrinoSQL(trino_governed.settings) as sql:
        yield sql
        for query in bi_queries(sql):  # leave no BI query burning CPU for the next test
            sql.sql(f"CALL system.runtime.kill_query(query_id => '{query['query_id']}', message => 'done')")


def test_bi_beyond_its_group_queues_then_is_rejected_while_etl_runs(
    trino_governed: GovernedTrino, admin: TrinoSQL
) -> None:
    gov = trino_governed
    first = Background(gov, "bi", SLOW_BI)
    until(admin, lambda qs: [q["state"] for q in qs] == ["RUNNING"])
    second = Background(gov, "bi", SLOW_BI)
    live = until(admin, lambda qs: sorted(q["state"] for q in qs) == ["QUEUED", "RUNNING"])
    assert all(q["resource_group_id"] == ["hmco", "bi"] for q in live)

    with pytest.raises(QueryRejected) as rejected:  # 1 running + 1 queued: the group is full
        run(gov, "bi", EIA_QUERY)
    assert isinstance(rejected.value, TransientError)
    assert rejected.value.__cause__ is not None
    assert "hmco.bi" in str(rejected.value) and "'bi'" in str(rejected.value)

    etl = run(gov, "etl", EIA_QUERY)  # the ETL group has its own slots
    assert etl.num_rows > 0
    assert sorted(q["state"] for q in bi_queries(admin)) == ["QUEUED", "RUNNING"]  # BI still saturated

    for query in bi_queries(admin):
        admin.sql(f"CALL system.runtime.kill_query(query_id => '{query['query_id']}', message => 'test')")
    for background in (first, second):
        background.thread.join(DEADLINE)
        assert isinstance(background.error, TrinoQueryError)
        assert background.error.error_name == "ADMINISTRATIVELY_KILLED"


def test_other_trino_errors_pass_through_untranslated(trino_governed: GovernedTrino) -> None:
    with pytest.raises(TrinoQueryError) as info:
        run(trino_governed, "bi", "SELECT no_such_column FROM hub_curated.eia_daily_fuel")
    assert info.value.error_name == "COLUMN_NOT_FOUND"


def test_the_cli_writes_the_trino_files_from_the_one_declaration(tmp_path: Path) -> None:
    from hmco.cli import main

    assert main(["security", "trino", "--out", str(tmp_path), "--refresh-period", "10s"]) == 0
    rules = json.loads((tmp_path / "rules.json").read_text())
    assert rules == access_control_rules()
    props = (tmp_path / "access-control.properties").read_text()
    assert "access-control.name=file" in props and "security.refresh-period=10s" in props


def test_cpu_shares_become_trino_cpu_limits_over_the_quota_period() -> None:
    spec = resource_groups(ACCESS, cluster_cores=8)
    assert spec["cpuQuotaPeriod"] == "60s"
    groups = {g["name"]: g for g in spec["rootGroups"][0]["subGroups"]}
    assert (groups["bi"]["hardCpuLimit"], groups["bi"]["softCpuLimit"]) == (
        "192s",
        "96s",
    )  # 0.4 x 8 cores x 60 s
    assert "hardCpuLimit" not in groups["etl"]  # ETL is never held back by CPU
    assert "cpuQuotaPeriod" not in resource_groups(ACCESS)  # without the cluster's size: no CPU limits
