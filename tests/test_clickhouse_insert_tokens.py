"""Deduplication tokens: the processor's fingerprint when given, else a content digest of the rows.

A token must be equal for a retry (so the server drops it) and differ for any other content (so the
server never drops real data): the tests write through the real sink into chdb and count stored rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.clickhouse.dedup import content_digest
from hmco.schemas import TS, get_dataset
from hmco.sinks.base import WriteResult
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.windows import Window
from tests.support.chdb import chdb_settings, lmp_rows, unique_database

RT = get_dataset("rt_lmp")
T0 = datetime(2026, 11, 26, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(days=1))
FP = "3f2a9c0d1e4b5a6f7c8d9e0a1b2c3d4e"


@pytest.fixture
def client():
    return connect_clickhouse(chdb_settings())


@pytest.fixture
def layout(client) -> ClickHouseLayout:
    lay = ClickHouseLayout.of("rt_lmp", database=unique_database("tok"))
    ensure_schema(client, lay)
    return lay


@pytest.fixture
def sink(client, layout) -> ClickHouseSink:
    return ClickHouseSink(client, layout, rollups=False, batch_rows=10)


def stored(client, layout: ClickHouseLayout) -> int:
    return client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]


def send(
    sink: ClickHouseSink, table: pa.Table, fingerprint: str | None = None, bid: str = "b"
) -> WriteResult:
    return sink.write(table, dataset=RT, window=WINDOW, batch_id=bid, fingerprint=fingerprint)


def published(table: pa.Table, at: datetime) -> pa.Table:
    return table.append_column("published_at", pa.array([at] * table.num_rows, TS))


def with_lmp(table: pa.Table, values: list[float]) -> pa.Table:
    return table.set_column(table.schema.get_field_index("lmp"), "lmp", pa.array(values, pa.float64()))


# --- with the processor's fingerprint ------------------------------------------------------------------


def test_fingerprint_names_each_slice_and_its_retry_is_dropped(client, layout, sink) -> None:
    table = published(lmp_rows(T0, 12, ["A", "B"]), T0)
    first = send(sink, table, FP)
    retry = send(sink, table, FP)
    micros = int(T0.timestamp()) * 1_000_000
    assert (
        first.meta["dedup_tokens"]
        == retry.meta["dedup_tokens"]
        == [
            f"rt_lmp:b:fp-{FP}@{micros}-{micros}:{offset}+{rows}"
            for offset, rows in ((0, 10), (10, 10), (20, 4))
        ]
    )
    assert stored(client, layout) == 24


def test_fingerprint_refetched_later_is_a_new_revision_not_a_retry(client, layout, sink) -> None:
    # A -> B -> A with unchanged payload bytes: the rows differ only by published_at (the fetch time)
    a, b = lmp_rows(T0, 3, ["A"], price=10.0), lmp_rows(T0, 3, ["A"], price=50.0)
    send(sink, published(a, T0), FP)
    send(sink, published(b, T0 + timedelta(minutes=5)), "another-fingerprint")
    send(sink, published(a, T0 + timedelta(minutes=10)), FP)
    assert stored(client, layout) == 9
    got = client.query(f"SELECT lmp FROM {layout.view} ORDER BY ts").result_rows
    assert got == [(10.0,), (11.0,), (12.0,)]


def test_another_batch_size_never_reuses_a_slice_token(client, layout) -> None:
    table = published(lmp_rows(T0, 15, ["A", "B"]), T0)  # 30 rows
    ClickHouseSink(client, layout, rollups=False, batch_rows=20).write(
        table, dataset=RT, window=WINDOW, batch_id="b", fingerprint=FP
    )  # slices 0+20, 20+10
    ClickHouseSink(client, layout, rollups=False, batch_rows=10).write(
        table, dataset=RT, window=WINDOW, batch_id="b", fingerprint=FP
    )  # slices 0+10, 10+10, 20+10: only the last is the same rows, and only it is dropped
    assert stored(client, layout) == 30 + 20


def test_fingerprint_spares_hashing_the_rows(sink) -> None:
    result = send(sink, published(lmp_rows(T0, 2, ["A"]), T0), FP)
    assert all(":fp-" in t and ":mm-" not in t for t in result.meta["dedup_tokens"])


# --- without: a digest of the rows as given ------------------------------------------------------------


def test_same_rows_digest_alike_and_their_resend_is_dropped(client, layout, sink) -> None:
    table = lmp_rows(T0, 12, ["A", "B"])
    first = send(sink, table)
    rebuilt = lmp_rows(T0, 12, ["A", "B"])  # equal values, separately built
    assert send(sink, rebuilt).meta["dedup_tokens"] == first.meta["dedup_tokens"]
    assert all(":mm-" in t for t in first.meta["dedup_tokens"])
    assert stored(client, layout) == 24


def test_changes_that_cancel_in_aggregates_still_make_a_new_token(client, layout, sink) -> None:
    table = lmp_rows(T0, 4, ["A"])
    values = table.column("lmp").to_pylist()
    shifted = with_lmp(table, [values[0] + 1, values[1] - 1, *values[2:]])  # same sum, count, min, max
    assert content_digest(shifted) != content_digest(table)
    send(sink, table)
    send(sink, shifted)
    assert stored(client, layout) == 8
    got = client.query(f"SELECT lmp FROM {layout.view} ORDER BY ts").result_rows
    assert [v for (v,) in got] == shifted.column("lmp").to_pylist()


@pytest.mark.parametrize(
    "change",
    [
        lambda t: with_lmp(t, [None, *t.column("lmp").to_pylist()[1:]]),  # a value becomes null
        lambda t: t.set_column(4, "node", pa.array(["A", "A", "A", "B"])),  # one string changes
        lambda t: t.set_column(4, "node", pa.array(["A", "A", "AA", ""])),  # same characters, other split
        lambda t: t.slice(0, 3),  # a row fewer
        lambda t: t.append_column("energy", pa.array([None, None, None, 1.0])),  # a null becomes a value
    ],
    ids=["null", "string", "string-split", "shorter", "new-value"],
)
def test_any_change_of_the_rows_changes_the_digest(change) -> None:
    table = lmp_rows(T0, 4, ["A"])
    assert content_digest(change(table)) != content_digest(table)


def test_digest_of_a_slice_reads_only_its_rows() -> None:
    base = lmp_rows(T0, 8, ["A"])
    other = with_lmp(base, [-1.0, -2.0, *base.column("lmp").to_pylist()[2:6], -7.0, -8.0])
    assert content_digest(base.slice(2, 4)) == content_digest(other.slice(2, 4))
    assert content_digest(base.slice(2, 4)) != content_digest(base.slice(3, 4))


def test_empty_batch_has_no_token(sink) -> None:
    assert send(sink, lmp_rows(T0, 0, ["A"])).meta["dedup_tokens"] == []
