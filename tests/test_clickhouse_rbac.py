"""ClickHouse roles and row policies as code.

The SQL is golden text parse-checked by chdb's ``EXPLAIN AST``: chdb cannot execute it (its only access
storage is the read-only ``users_xml`` one, and every session is its ``default`` user). The same model
rendered as a users XML file *is* enforced by chdb: each identity runs in an engine of its own (a
subprocess, whose ``default`` user is defined by that file) over one data directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse
from hmco.errors import ConfigError
from hmco.security.clickhouse_rbac import (
    DEFAULT_DESKS,
    Desk,
    apply,
    render_rbac,
    render_role_assignments,
    render_users_xml,
)
from tests.support.chdb import chdb_settings

REPO = Path(__file__).resolve().parents[1]

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


class _RefusingClient:
    """Stands in for a server whose user may not manage access: the second statement is refused."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def command(self, stmt: str) -> None:
        from clickhouse_connect.driver.exceptions import DatabaseError

        if self.sent:
            raise DatabaseError("Code: 497. DB::Exception: bob: Not enough privileges. (ACCESS_DENIED)")
        self.sent.append(stmt)


def test_apply_surfaces_a_refusal_as_a_config_error_naming_the_statement() -> None:
    client = _RefusingClient()
    statements = render_rbac(SINGLE)
    with pytest.raises(ConfigError, match="ACCESS_DENIED") as refused:
        apply(client, statements)  # type: ignore[arg-type]
    assert statements[1] in str(refused.value) and refused.value.context == {"ran": 1}
    assert client.sent == statements[:1]


# --- the same model as a users XML file --------------------------------------------------------------


def test_users_xml_roles_grants_and_desk_filters() -> None:
    text = render_users_xml(
        SINGLE,
        {"alice": ["desk_west", "bi_reader"], "bob": ["desk_east", "desk_west"], "carol": ["etl_writer"]},
    )
    root = ET.fromstring(text)
    grants = {role.tag: role.findtext("grants/query") for role in root.find("roles") or []}
    assert grants == {
        "etl_writer": "GRANT SELECT, INSERT ON lmp.*",
        "bi_reader": "GRANT SELECT ON lmp.*",
        "desk_west": "GRANT SELECT ON lmp.*",
        "desk_east": "GRANT SELECT ON lmp.*",
    }
    users = {user.tag: user for user in root.find("users") or []}
    assert users["alice"].findtext("grants/query") == "GRANT desk_west, bi_reader"
    filters = {t.tag: t.findtext("filter") for t in users["alice"].find("databases/lmp") or []}
    assert filters == dict.fromkeys(
        ["rt_lmp_store", "rt_lmp_hourly_store", "rt_lmp_daily_store"], "iso IN ('CAISO', 'SPP')"
    )
    assert users["bob"].findtext("databases/lmp/rt_lmp_store/filter") == "iso IN ('MISO', 'CAISO', 'SPP')"
    assert users["carol"].find("databases") is None  # no desk: the server gives it ``1`` (every row)


def test_users_xml_filters_the_local_tables_on_a_cluster_and_escapes_values() -> None:
    text = render_users_xml(CLUSTER, {"alice": ["desk_odd"], "nobody": []}, [Desk("desk_odd", ("A<B&'C",))])
    root = ET.fromstring(text)
    assert [u.tag for u in root.find("users") or []] == ["alice"]
    tables = root.find("users/alice/databases/lmp")
    assert tables is not None
    assert [t.tag for t in tables] == ["rt_lmp_local", "rt_lmp_hourly_local", "rt_lmp_daily_local"]
    assert tables.findtext("rt_lmp_local/filter") == "iso IN ('A<B&\\'C')"


@pytest.mark.parametrize(
    ("users", "desks", "bad"),
    [
        ({"alice@corp.example": ["desk_west"]}, DEFAULT_DESKS, "user name 'alice@corp.example'"),
        ({"alice": ["desk west"]}, [Desk("desk west", ("CAISO",))], "role name 'desk west'"),
        ({"alice": ["desk_west"]}, [Desk("desk.west", ("CAISO",))], "role name 'desk.west'"),
    ],
)
def test_users_xml_refuses_names_xml_cannot_hold(
    users: dict[str, list[str]], desks: list[Desk], bad: str
) -> None:
    with pytest.raises(ConfigError, match=bad):
        render_users_xml(SINGLE, users, desks)


# --- enforced by the engine: one chdb per identity over the same rows -----------------------------------

ENGINE = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.config import Settings
from hmco.errors import HmcoError
from hmco.schemas import get_dataset
from hmco.security.clickhouse_rbac import apply, render_rbac
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.windows import Window
from tests.support.chdb import lmp_rows

args = json.load(sys.stdin)
root = Path(args["root"])
settings = Settings.load(home=root / "home", clickhouse={"interface": "chdb", "path": root / "data"})
client = connect_clickhouse(settings, chdb_options={"config-file": args["config"]})
layout = ClickHouseLayout.of("rt_lmp", database="lmp")
out = {"user": client.command("SELECT currentUser()")}


def refusal(call):
    try:
        call()
    except HmcoError as exc:
        return {"type": type(exc).__name__, "message": str(exc)}
    return None


def write():
    start = datetime(2026, 1, 5, tzinfo=UTC)
    rows = pa.concat_tables([lmp_rows(start, 3, ["N1", "N2"], iso=iso) for iso in ("CAISO", "MISO", "SPP")])
    window = Window(start, datetime(2026, 1, 6, tzinfo=UTC))
    ClickHouseSink(client, layout).write(rows, dataset=get_dataset("rt_lmp"), window=window, batch_id="b1")


if args["step"] == "admin":
    ensure_schema(client, layout)
    out["apply"] = refusal(lambda: apply(client, render_rbac(layout)))
else:
    out["write"] = refusal(write)
    reads = {"view": layout.view, "store": layout.store, "hourly": "lmp.rt_lmp_hourly", "daily": "lmp.rt_lmp_daily"}
    out["isos"] = {
        name: client.query(f"SELECT iso, count() FROM {table} GROUP BY iso ORDER BY iso").result_rows
        for name, table in reads.items()
    }
print(json.dumps(out))
"""

#: Authentication of the engine's users: the base ``users.xml`` the rendered ``users.d`` file merges into.
BASE_USERS = """<clickhouse>
  <profiles><default/></profiles>
  <quotas><default/></quotas>
  <users>{users}</users>
</clickhouse>
"""
_USER = (
    "<{0}><password/><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></{0}>"
)


def _identity(directory: Path, roles: list[str] | None) -> Path:
    """A chdb config whose ``default`` user holds ``roles`` (``None``: chdb's own, unrestricted default).

    Two more users (``alice``: west desk, ``bob``: east desk) are in the file so every identity runs with
    row filters present on the tables, as on a shared server.
    """
    directory.mkdir(parents=True)
    config = directory / "config.xml"
    if roles is None:
        config.write_text("<clickhouse/>\n")
        return config
    config.write_text(
        "<clickhouse><user_directories><users_xml><path>users.xml</path></users_xml></user_directories>"
        "</clickhouse>\n"
    )
    names = ["default", "alice", "bob"]
    (directory / "users.xml").write_text(BASE_USERS.format(users="".join(_USER.format(n) for n in names)))
    (directory / "users.d").mkdir()
    users = {"default": roles, "alice": ["desk_west"], "bob": ["desk_east"]}
    (directory / "users.d" / "hmco_rbac.xml").write_text(render_users_xml(SINGLE, users))
    return config


def _engine(root: Path, config: Path, step: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"root": str(root), "config": str(config), "step": step}))
    proc.stdin.close()
    return proc


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(timeout=240) == 0, stderr[-3000:]
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What each identity saw and was refused: the admin creates the schema, ``etl_writer`` loads CAISO,
    MISO and SPP rows, then each reader reads and tries to write them.

    One engine after the other: a chdb data directory is locked by the process that opens it, and a copy
    would not do (its databases link to the original by absolute paths).
    """
    base = tmp_path_factory.mktemp("rbac")
    data = base / "engine"
    results = {"admin": _result(_engine(data, _identity(base / "admin", None), "admin"))}
    for role in ("etl_writer", "desk_west", "desk_east", "bi_reader"):
        results[role] = _result(_engine(data, _identity(base / role, [role]), "read"))
    return results


def _isos(result: dict[str, Any]) -> dict[str, list[str]]:
    return {name: [iso for iso, _ in rows] for name, rows in result["isos"].items()}


def _everywhere(isos: list[str]) -> dict[str, list[str]]:
    """The same ISOs through the view, the store and both rollups."""
    return {name: list(isos) for name in ("view", "store", "hourly", "daily")}


def test_in_process_engine_refuses_the_sql_as_a_typed_error(identities: dict[str, dict[str, Any]]) -> None:
    refused = identities["admin"]["apply"]
    assert refused is not None and refused["type"] == "ConfigError"
    assert "CREATE ROLE IF NOT EXISTS etl_writer" in refused["message"]
    assert "ACCESS_DENIED" in refused["message"] or "ACCESS_STORAGE" in refused["message"]


def test_etl_writer_loads_every_iso(identities: dict[str, dict[str, Any]]) -> None:
    writer = identities["etl_writer"]
    assert writer["user"] == "default" and writer["write"] is None
    assert _isos(writer) == _everywhere(["CAISO", "MISO", "SPP"])
    assert dict(writer["isos"]["view"]) == {"CAISO": 6, "MISO": 6, "SPP": 6}


@pytest.mark.parametrize(
    ("role", "isos"),
    [("desk_west", ["CAISO", "SPP"]), ("desk_east", ["MISO"]), ("bi_reader", ["CAISO", "MISO", "SPP"])],
)
def test_each_reader_sees_only_its_isos_and_cannot_write(
    identities: dict[str, dict[str, Any]], role: str, isos: list[str]
) -> None:
    reader = identities[role]
    assert _isos(reader) == _everywhere(isos)
    assert all(n == 6 for _, n in reader["isos"]["view"])
    refused = reader["write"]
    assert refused is not None and refused["type"] == "SinkError", refused
    assert "ACCESS_DENIED" in refused["message"] and "INSERT" in refused["message"]
    assert "lmp.rt_lmp_store" in refused["message"]
