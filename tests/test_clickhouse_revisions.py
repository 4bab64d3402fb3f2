"""The newest revision wins by source version (``published_at``), never by arrival order (chdb).

Every scenario goes through the real :class:`ClickHouseSink` and checks what readers see: the ``FINAL``
view ``rt_lmp`` and the hourly/daily rollup views, which must equal a GROUP BY over the FINAL rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.schemas import TS, get_dataset
from hmco.sinks.base import WriteResult
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.windows import Window
from tests.support.chdb import chdb_settings, lmp_rows, unique_database

RT = get_dataset("rt_lmp")
# Yesterday 00:00 UTC: well inside the 400-day TTL whenever the suite runs; 24 intervals span two hours.
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
P1 = datetime(2026, 3, 1, 12, 0, 0, 100, tzinfo=UTC)  # publication times of successive revisions
P2 = P1 + timedelta(minutes=7)
P3 = P2 + timedelta(minutes=7)


@pytest.fixture
def client():
    return connect_clickhouse(chdb_settings())


def make_layout(client, dedup_window: int = 1000) -> ClickHouseLayout:
    layout = ClickHouseLayout.of("rt_lmp", database=unique_database("rev"), dedup_window=dedup_window)
    ensure_schema(client, layout)
    return layout


@pytest.fixture
def layout(client) -> ClickHouseLayout:
    return make_layout(client)


def revision(price: float, published_at: datetime | None, nodes: tuple[str, ...] = ("A", "B")) -> pa.Table:
    """24 five-minute intervals of ``nodes``; lmp = price + interval index, energy = price / 2."""
    table = lmp_rows(T0, 24, list(nodes), price=price)
    table = table.append_column("energy", pa.array([price / 2] * table.num_rows, pa.float64()))
    if published_at is None:
        return table
    return table.append_column("published_at", pa.array([published_at] * table.num_rows, TS))


def send(sink: ClickHouseSink, table: pa.Table, batch_id: str) -> WriteResult:
    return sink.write(table, dataset=RT, window=Window(T0, T0 + timedelta(days=1)), batch_id=batch_id)


def final_rows(client, layout: ClickHouseLayout) -> list[tuple]:
    return client.query(
        f"SELECT node, ts, lmp, energy, published_at, version FROM {layout.view} ORDER BY node, ts"
    ).result_rows


def expected(price: float, published_at: datetime, nodes: tuple[str, ...] = ("A", "B")) -> list[tuple]:
    micros = int(published_at.timestamp()) * 1_000_000 + published_at.microsecond
    naive = published_at.replace(tzinfo=None)
    return [
        (node, (T0 + timedelta(minutes=5 * i)).replace(tzinfo=None), price + i, price / 2, naive, micros)
        for node in nodes
        for i in range(24)
    ]


def raw_count(client, layout: ClickHouseLayout) -> int:
    return client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]


def assert_rollups_exact(client, layout: ClickHouseLayout) -> None:
    """Both stored rollups equal a GROUP BY over the FINAL rows, and cover every FINAL row once."""
    for view, bucket in (("rt_lmp_hourly", "hour"), ("rt_lmp_daily", "day")):
        expr = "toStartOfHour(ts)" if bucket == "hour" else "toDate(ts, 'UTC')"
        direct = client.query(
            f"SELECT iso, node, market, {expr} AS b, round(avg(lmp), 9), min(lmp), max(lmp), "
            "round(sum(lmp), 9), round(avg(energy), 9), toUInt32(count()) "
            f"FROM {layout.view} GROUP BY iso, node, market, b ORDER BY iso, node, market, b"
        ).result_rows
        stored = client.query(
            f"SELECT iso, node, market, {bucket}, round(lmp_avg, 9), lmp_min, lmp_max, round(lmp_sum, 9), "
            f"round(energy_avg, 9), n FROM {layout.qualified(view)} ORDER BY iso, node, market, {bucket}"
        ).result_rows
        assert stored == direct, view
        total = client.query(f"SELECT count() FROM {layout.view}").result_rows[0][0]
        assert sum(row[-1] for row in stored) == total, view


# 1. a stale batch re-sent after the deduplication window --------------------------------------------


def test_stale_resend_after_the_dedup_window_loses_to_the_newer_revision(client) -> None:
    layout = make_layout(client, dedup_window=2)
    sink = ClickHouseSink(client, layout)
    a, b = revision(10.0, P1), revision(50.0, P2)
    send(sink, a, "w1")
    send(sink, b, "w1")  # the same window re-processed: a revision, new bytes, new token
    for i in range(2):  # two more inserts push A's token out of a window of 2
        send(sink, revision(1.0, P1, nodes=(f"X{i}",)), f"other-{i}")
    before = raw_count(client, layout)

    resent = send(sink, a, "w1")  # byte for byte A's batch again

    assert raw_count(client, layout) == before + a.num_rows  # not deduplicated: the window had passed ...
    assert resent.meta["stamped_rows"] == 0
    rows = [r for r in final_rows(client, layout) if r[0] in ("A", "B")]
    assert rows == expected(50.0, P2)  # ... and still B, published later, is what readers see
    assert_rollups_exact(client, layout)


def test_stale_resend_under_another_batch_id_loses_to_the_newer_revision(client, layout) -> None:
    sink = ClickHouseSink(client, layout)
    send(sink, revision(10.0, P1), "w1")
    send(sink, revision(50.0, P2), "w1")
    before = raw_count(client, layout)

    send(sink, revision(10.0, P1), "replay-of-w1")  # another token: the server stores it

    assert raw_count(client, layout) == before + 48
    assert final_rows(client, layout) == expected(50.0, P2)
    assert_rollups_exact(client, layout)


# 2. A -> B -> A inside the deduplication window --------------------------------------------------------


def test_revision_back_to_earlier_values_wins_and_its_exact_retry_adds_nothing(client, layout) -> None:
    sink = ClickHouseSink(client, layout)
    send(sink, revision(10.0, P1), "w1")
    send(sink, revision(50.0, P2), "w1")
    back = revision(10.0, P3)  # A's values, published again after B

    first = send(sink, back, "w1")

    assert raw_count(client, layout) == 3 * 48  # a new revision, not mistaken for A's retry
    assert final_rows(client, layout) == expected(10.0, P3)
    assert_rollups_exact(client, layout)

    retry = send(sink, back, "w1")  # same batch id, same bytes: a retry

    assert retry.meta["dedup_tokens"] == first.meta["dedup_tokens"]
    assert raw_count(client, layout) == 3 * 48
    assert final_rows(client, layout) == expected(10.0, P3)
    assert_rollups_exact(client, layout)


# 3. two writers, the same interval, either order of arrival ------------------------------------------


@pytest.mark.parametrize("newer_first", [False, True], ids=["older-arrives-first", "newer-arrives-first"])
def test_two_writers_the_newer_publication_wins_whatever_the_arrival_order(
    client, layout, newer_first: bool
) -> None:
    west, east = ClickHouseSink(client, layout), ClickHouseSink(client, layout)
    older = (west, revision(10.0, P1), "west-1")
    # The newer writer only covers node B: A keeps the older writer's rows, B takes the newer ones.
    newer = (east, revision(80.0, P2, nodes=("B",)), "east-1")
    for sink, table, batch_id in (newer, older) if newer_first else (older, newer):
        send(sink, table, batch_id)

    assert final_rows(client, layout) == expected(10.0, P1, ("A",)) + expected(80.0, P2, ("B",))
    assert raw_count(client, layout) == 48 + 24
    assert_rollups_exact(client, layout)


# rows without published_at: the writer's clock, strictly increasing, never the server's now() ---------


class SteppedClock:
    """Returns the given instants in turn (then the last one forever)."""

    def __init__(self, *instants: datetime) -> None:
        self._instants: Iterator[datetime] = iter(instants)
        self._last = instants[0]

    def __call__(self) -> datetime:
        self._last = next(self._instants, self._last)
        return self._last


def test_rows_without_published_at_are_stamped_with_the_writers_increasing_clock(client, layout) -> None:
    at = datetime(2031, 5, 6, 7, 8, 9, 10, tzinfo=UTC)  # far from the server's clock: proves who stamped
    clock = SteppedClock(at, at - timedelta(hours=1), at)  # frozen, then stepping backwards
    sink = ClickHouseSink(client, layout, clock=clock)

    first = send(sink, revision(10.0, None), "direct")
    assert first.meta["stamped_rows"] == 48
    assert final_rows(client, layout) == expected(10.0, at)

    send(sink, revision(20.0, None), "direct")  # the clock went back an hour: still a later stamp
    assert final_rows(client, layout) == expected(20.0, at + timedelta(microseconds=1))

    send(sink, revision(30.0, None), "direct")  # the clock stands still: later again
    assert final_rows(client, layout) == expected(30.0, at + timedelta(microseconds=2))
    assert_rollups_exact(client, layout)


def test_exact_retry_of_an_unstamped_batch_is_deduplicated_despite_a_new_stamp(client, layout) -> None:
    at = datetime(2031, 5, 6, tzinfo=UTC)
    sink = ClickHouseSink(client, layout, clock=SteppedClock(at, at + timedelta(minutes=1)))
    table = revision(10.0, None)
    first = send(sink, table, "direct")
    retry = send(sink, table, "direct")  # stamped later, but the token hashes the rows as given
    assert retry.meta["dedup_tokens"] == first.meta["dedup_tokens"]
    assert raw_count(client, layout) == 48
    assert final_rows(client, layout) == expected(10.0, at)


def test_only_missing_published_at_is_stamped(client, layout) -> None:
    at = datetime(2031, 5, 6, tzinfo=UTC)
    sink = ClickHouseSink(client, layout, clock=SteppedClock(at))
    table = revision(10.0, P1)
    column = pa.array([None if node == "B" else P1 for node in table.column("node").to_pylist()], TS)
    result = send(
        sink, table.set_column(table.schema.get_field_index("published_at"), "published_at", column), "m"
    )
    assert result.meta["stamped_rows"] == 24
    got = {(r[0], r[4]) for r in final_rows(client, layout)}
    assert got == {("A", P1.replace(tzinfo=None)), ("B", at.replace(tzinfo=None))}
