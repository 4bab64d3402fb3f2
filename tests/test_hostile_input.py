"""Hostile input: traversal in a spec and SQL injection in ISO/node filters are refused or inert.

Injection is proved on real engines: DuckDB (the lake's embedded SQL) and chdb (the real-time store)
run the filter with the hostile text, and the table is still there, with every row, afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.compose.spec import load_spec
from hmco.config import Settings
from hmco.errors import ConfigError, SinkError, SpecError
from hmco.lake import Lake
from hmco.names import check_identifier, check_iso, check_key, check_qualified, check_segment, find_traversal
from hmco.payload import RawPayload
from hmco.quality.freshness import clickhouse_freshness, newest_in_clickhouse
from hmco.query.clickhouse import rt_lmp_rows
from hmco.query.lake import LakeSQL
from hmco.schemas import TS, get_dataset
from hmco.sinks.raw import RawArchive
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.chdb import chdb_settings, unique_database

INJECTIONS = [
    "CAISO' OR '1'='1",
    "CAISO'; DROP TABLE rt_lmp; --",
    "x') OR 1=1 --",
    'CAISO" OR "1"="1',
    "CAISO\n; DROP TABLE rt_lmp",
]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _spec(**source: Any) -> dict[str, Any]:
    return {"name": "hostile", "source": {"type": "synthetic_iso", **source}}


# --- the grammar ------------------------------------------------------------------------------------


def test_identifier_grammar_accepts_plain_names_and_rejects_everything_else() -> None:
    assert check_identifier("rt_lmp") == "rt_lmp"
    assert check_qualified("hub_curated.rt_lmp") == "hub_curated.rt_lmp"
    for bad in ["rt lmp", "rt_lmp;", "1abc", "", "a.b", "rt_lmp\n", "ünïcode", 'x"y', "a`b", None]:
        with pytest.raises(ConfigError, match="plain identifier"):
            check_identifier(bad, "table name")
    for bad in ["a.b.c", "a..b", ".a", "a.", "hub_curated.rt_lmp; DROP TABLE x", "../x"]:
        with pytest.raises(ConfigError, match=r"namespace\.name"):
            check_qualified(bad, "table")


def test_path_grammar_rejects_traversal_absolute_paths_and_separators() -> None:
    assert check_segment("eia_daily_fuel") == "eia_daily_fuel"
    assert check_key("eia/eia_daily_fuel/ab/abcdef") == "eia/eia_daily_fuel/ab/abcdef"
    for bad in ["..", "../etc", "a/b", "a\\b", ".hidden", "", "a..b", "/abs"]:
        with pytest.raises(ConfigError, match="path segment"):
            check_segment(bad, "source")
    for bad in ["../etc/passwd", "/etc/passwd", "a//b", "a/../../b", "a\\..\\b", "a/./b"]:
        with pytest.raises(ConfigError, match="relative key"):
            check_key(bad, "archive key")
    assert find_traversal("acs/acs5") is None
    assert find_traversal("../../x") == "contains a '..' path segment"
    assert find_traversal("C:\\Windows") == "is an absolute path"
    assert find_traversal("a\x00b") == "contains a NUL byte"


def test_iso_grammar_names_the_field_and_the_value() -> None:
    assert check_iso("ISO-NE") == "ISO-NE"
    with pytest.raises(ConfigError, match=r"isos must be an ISO code .* not \"CAISO' OR '1'='1\""):
        check_iso("CAISO' OR '1'='1", "isos")


# --- specs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"params": {"iso": "../../../etc/passwd"}}, "source.params"),
        ({"params": {"iso": "..\\..\\windows\\system32"}}, "source.params"),
        ({"params": {"nodes": ["N1", "N2/../../../admin"]}}, "source.params"),
        ({"params": {"iso": "CAISO\r\nX-Injected: 1"}}, "source.params"),
        ({"params": {"http": {"verify": "../../ca.pem"}}}, "source.params"),
        ({"base_url": "file:///etc/passwd"}, "source.base_url"),
        ({"base_url": "http://127.0.0.1:1/v2/../../admin"}, "source.base_url"),
    ],
)
def test_path_traversal_in_a_spec_is_rejected_naming_the_field(source: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_spec(**source))
    assert [e.split(":")[0] for e in info.value.errors] == [field]
    message = str(info.value)
    assert "escape the path" in message or "http(s) URL" in message or "'..' segments" in message


def test_traversal_in_a_nested_param_is_located_exactly() -> None:
    spec = _spec(params={"iso": "SYNTH", "nodes": 3})
    spec["source"]["params"]["seed"] = 1
    load_spec(spec)  # a normal spec still loads
    with pytest.raises(SpecError, match=r"params\.http\.verify contains a '\.\.' path segment"):
        load_spec(_spec(params={"http": {"verify": "certs/../../../root/.ssh/id_rsa"}}))


def test_an_absolute_ca_bundle_is_still_allowed() -> None:
    spec = {"name": "ok", "source": {"type": "fred", "params": {"http": {"verify": "/etc/ssl/certs/ca.pem"}}}}
    assert load_spec(spec).source.params["http"]["verify"] == "/etc/ssl/certs/ca.pem"


def test_pipeline_names_and_transform_refs_are_checked() -> None:
    with pytest.raises(SpecError, match=r"name: must not contain '\.\.'"):
        load_spec(_spec() | {"name": "a..b"})
    with pytest.raises(SpecError, match="should match pattern"):
        load_spec(_spec() | {"name": "../../etc"})
    for ref in ["../evil:run", "/tmp/x:y", "os:system; rm", "hmco.transforms"]:
        with pytest.raises(
            SpecError, match=r"transforms: transform .* must look like 'package.module:function'"
        ):
            load_spec(_spec() | {"transforms": [ref]})


# --- the lake: names and keys -----------------------------------------------------------------------


def test_lake_refuses_a_table_name_that_is_not_an_identifier(settings: Settings) -> None:
    from dataclasses import replace

    lake = Lake(settings)
    hostile = replace(get_dataset("rt_lmp"), name="../../escape")
    with pytest.raises(ConfigError, match=r"table name must be a plain identifier .* '\.\./\.\./escape'"):
        lake.identifier(hostile)
    with pytest.raises(ConfigError, match="table name must be a plain identifier"):
        lake.table_location(hostile)
    assert lake.identifier("rt_lmp") == "hub_curated.rt_lmp"


def test_raw_archive_refuses_keys_that_leave_the_archive(settings: Settings, tmp_path: Path) -> None:
    archive = RawArchive(Lake(settings))
    window = Window.day("2026-11-26")
    payload = RawPayload(source="../../outside", dataset="rt_lmp", body=b"{}", url="u", window=window)
    with pytest.raises(SinkError, match=r"source must be one path segment .* '\.\./\.\./outside'"):
        archive.put(payload)
    ok = archive.put(RawPayload(source="synthetic", dataset="rt_lmp", body=b"{}", url="u", window=window))
    assert archive.get(ok.key).body == b"{}"
    for key in ["../../../etc/passwd", "/etc/passwd", f"{ok.key}/../../x"]:
        with pytest.raises(SinkError, match="relative key"):
            archive.get(key)
        with pytest.raises(SinkError, match="relative key"):
            archive.describe(key)
    with pytest.raises(SinkError, match="relative key"):
        archive.keys("..")
    assert not list(tmp_path.rglob("outside*"))


def test_hostile_storage_and_bucket_prefixes_are_rejected_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage_prefix"):
        Settings.load(home=tmp_path, storage_prefix="../other-env")
    with pytest.raises(ConfigError, match="bucket_prefix"):
        Settings.load(home=tmp_path, bucket_prefix="Evil/../")
    assert (
        Settings.load(home=tmp_path, storage_prefix="prod/eu", bucket_prefix="dev-").storage_prefix
        == "prod/eu"
    )


# --- SQL on DuckDB (the lake) -----------------------------------------------------------------------


@pytest.fixture
def loaded(settings: Settings) -> Lake:
    lake = Lake(settings)
    source = SyntheticISO(nodes=5, settings=settings)
    Pipeline(source, lake=lake, name="rt", window_step=timedelta(days=1)).run(Window.day("2026-11-26"))
    return lake


def test_lake_select_binds_iso_and_node_values_so_injection_is_inert(loaded: Lake) -> None:
    with LakeSQL(loaded) as sql:
        total = sql.sql("SELECT count(*) AS n FROM hub_curated.rt_lmp").column("n")[0].as_py()
        nodes = (
            sql.sql("SELECT DISTINCT node FROM hub_curated.rt_lmp ORDER BY node").column("node").to_pylist()
        )
        one = sql.select("hub_curated.rt_lmp", where={"iso": "SYNTH", "node": nodes[0]}, columns=["node"])
        assert one.num_rows == total // len(nodes) and set(one.column("node").to_pylist()) == {nodes[0]}
        two = sql.select("hub_curated.rt_lmp", where={"node": nodes[:2]})
        assert two.num_rows == 2 * total // len(nodes)
        for hostile in INJECTIONS:
            assert sql.select("hub_curated.rt_lmp", where={"iso": hostile}).num_rows == 0
            assert (
                sql.select("hub_curated.rt_lmp", where={"node": [nodes[0], hostile]}).num_rows == one.num_rows
            )
        # the table is intact: nothing the hostile text said ran
        assert sql.sql("SELECT count(*) AS n FROM hub_curated.rt_lmp").column("n")[0].as_py() == total


def test_lake_select_rejects_hostile_names(loaded: Lake) -> None:
    with LakeSQL(loaded) as sql:
        with pytest.raises(ConfigError, match="table must be"):
            sql.select("hub_curated.rt_lmp; DROP TABLE hub_curated.rt_lmp")
        with pytest.raises(ConfigError, match="filter column must be a plain identifier"):
            sql.select("hub_curated.rt_lmp", where={"iso = 'x' OR 1=1 --": "x"})
        with pytest.raises(ConfigError, match="column must be a plain identifier"):
            sql.select("hub_curated.rt_lmp", columns=["*, (SELECT 1)"])
        with pytest.raises(ConfigError, match="limit must be a positive whole number"):
            sql.select("hub_curated.rt_lmp", limit="1; DROP TABLE x")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="table name must be a plain identifier"):
            sql.sql('SELECT * FROM hub_curated."rt_lmp"" AS SELECT 1; --"')


# --- SQL on chdb (the real-time store) --------------------------------------------------------------


@pytest.fixture
def clickhouse() -> Any:
    from hmco.clickhouse import connect_clickhouse, ensure_schema, layout_from_settings
    from hmco.sinks.clickhouse import ClickHouseSink

    settings = chdb_settings(unique_database("hostile"))
    client = connect_clickhouse(settings)
    layout = layout_from_settings(settings)
    ensure_schema(client, layout)
    start = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    times = [start + timedelta(minutes=5 * i) for i in range(6)]
    for iso, nodes in (("CAISO", ["N1", "N2"]), ("MISO", ["M1"])):
        ts = [t for t in times for _ in nodes]
        rows = pa.table(
            {
                "ts": pa.array(ts, TS),
                "interval_end": pa.array([t + timedelta(minutes=5) for t in ts], TS),
                "iso": [iso] * len(ts),
                "market": ["RT5"] * len(ts),
                "node": nodes * len(times),
                "lmp": [30.0] * len(ts),
            }
        )
        window = Window(times[0], times[-1] + timedelta(minutes=5))
        ClickHouseSink(client, layout).write(rows, dataset=get_dataset("rt_lmp"), window=window, batch_id=iso)
    return client


def _count(client: Any) -> int:
    return int(client.query("SELECT count() FROM rt_lmp").result_rows[0][0])


def test_rt_filters_bind_values_so_injection_is_inert_on_chdb(clickhouse: Any) -> None:
    total = _count(clickhouse)
    assert total == 18
    assert rt_lmp_rows(clickhouse, isos=["CAISO"]).num_rows == 12
    assert rt_lmp_rows(clickhouse, isos=["CAISO"], nodes=["N1"]).num_rows == 6
    assert rt_lmp_rows(clickhouse, nodes="M1", start=datetime(2026, 11, 26, 11, 10, tzinfo=UTC)).num_rows == 4
    assert rt_lmp_rows(clickhouse, isos=["CAISO", "MISO"], limit=5).num_rows == 5
    for hostile in INJECTIONS:
        assert rt_lmp_rows(clickhouse, nodes=[hostile]).num_rows == 0
        assert rt_lmp_rows(clickhouse, nodes=["N1", hostile]).num_rows == 6
        # freshness filters are bound parameters too: the hostile ISO matches nothing, drops nothing
        assert newest_in_clickhouse(clickhouse, filters={"iso": hostile}) is None
        status = clickhouse_freshness(clickhouse, "rt_lmp", iso=hostile, now=NOW)
        assert status.status == "empty"
    assert _count(clickhouse) == total


def test_rt_filters_reject_hostile_isos_tables_and_limits_with_clear_errors(clickhouse: Any) -> None:
    for hostile in INJECTIONS:
        with pytest.raises(ConfigError, match="isos must be an ISO code"):
            rt_lmp_rows(clickhouse, isos=[hostile])
    with pytest.raises(ConfigError, match=r"table must be name or namespace\.name"):
        rt_lmp_rows(clickhouse, table="rt_lmp; DROP TABLE rt_lmp")
    with pytest.raises(ConfigError, match="limit must be a positive whole number"):
        rt_lmp_rows(clickhouse, limit=0)
    with pytest.raises(ConfigError, match="identifier for the table"):
        newest_in_clickhouse(clickhouse, table="rt_lmp\n")  # a trailing newline no longer slips through
    with pytest.raises(ConfigError, match="identifier for the filter column"):
        newest_in_clickhouse(clickhouse, filters={"iso = '' OR 1": "x"})
    assert _count(clickhouse) == 18
