"""MISO public 5-minute ex-post feeds, end to end against the replay server (reference §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from hmco.errors import AuthenticationError, PayloadError, RequestRejected, SchemaDriftError
from hmco.schemas import get_dataset
from hmco.sources.base import Source, get_source_class
from hmco.sources.http import HttpOptions
from hmco.sources.miso import INTERVAL_MARKS, MISO, parse_miso_five_min
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply

FEED = "/api/MarketPricing/GetRealTimeFiveMinExPost/"
JULY_27_AFTERNOON = datetime(2026, 7, 27, 18, 0, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _miso(replay: ReplayServer, settings, now: datetime = JULY_27_AFTERNOON, **kw) -> MISO:  # type: ignore[no-untyped-def]
    return MISO(
        settings=settings, base_url=f"{replay.url}/api", http={"min_interval": 0}, now=lambda: now, **kw
    )


def _read(source: Source, window: Window) -> pa.Table:
    tables = [source.parse(p) for p in source.fetch(window)]
    return pa.concat_tables(tables)


def test_registered_under_miso() -> None:
    assert get_source_class("miso") is MISO
    assert MISO.datasets == ("rt_lmp",)


def test_interval_is_documented_as_start() -> None:
    assert INTERVAL_MARKS == "start"


def test_today_window_reads_rolling_feed_into_canonical_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert table.schema.equals(get_dataset("rt_lmp").schema)
    assert table.num_rows == 12
    assert [r.path for r in replay.requests] == [FEED + "Rolling"]
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {
        "ts": _utc(2026, 7, 27, 13, 0),
        "interval_end": _utc(2026, 7, 27, 13, 5),
        "iso": "MISO",
        "market": "RT5",
        "node": "EES.KRBYVLE.AZ",
        "node_type": None,
        "lmp": 20.0,
        "energy": pytest.approx(20.25),
        "congestion": 0.0,
        "loss": -0.25,
        "ghg": None,
        "published_at": None,  # the parser leaves it unset; the window processor stamps it
    }


def test_energy_is_lmp_minus_loss_minus_congestion(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 15), _utc(2026, 7, 27, 13, 20)))
    hub = next(r for r in table.to_pylist() if r["node"] == "ARKANSAS.HUB")
    # LMP 23.50, MLC -0.50, MCC 0.30 at 08:15 EST
    assert (hub["lmp"], hub["loss"], hub["congestion"]) == (23.5, -0.5, pytest.approx(0.3))
    assert hub["energy"] == pytest.approx(23.7)
    assert hub["node_type"] == "Hub"


def test_rows_outside_the_window_are_dropped(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 5), _utc(2026, 7, 27, 13, 15)))
    assert table.num_rows == 6
    assert sorted(set(table.column("ts").to_pylist())) == [
        _utc(2026, 7, 27, 13, 5),
        _utc(2026, 7, 27, 13, 10),
    ]


def test_yesterday_window_reads_previous_feed(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Previous", Reply.file("miso/previous_20260726.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 4, 0), _utc(2026, 7, 27, 5, 0)))
    assert [r.path for r in replay.requests] == [FEED + "Previous"]
    assert table.num_rows == 6
    # 23:50 EST on 2026-07-26 is 04:50Z on the 27th
    assert sorted(set(table.column("ts").to_pylist())) == [_utc(2026, 7, 27, 4, 50), _utc(2026, 7, 27, 4, 55)]


def test_window_across_market_midnight_reads_both_feeds(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Previous", Reply.file("miso/previous_20260726.json"))
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        payloads = list(src.fetch(Window.day("2026-07-27")))
        table = pa.concat_tables([src.parse(p) for p in payloads])
    assert [p.meta["feed"] for p in payloads] == ["Previous", "Rolling"]
    assert payloads[0].window == Window(_utc(2026, 7, 27), _utc(2026, 7, 27, 5))
    assert payloads[1].window == Window(_utc(2026, 7, 27, 5), _utc(2026, 7, 28))
    assert table.num_rows == 18


def test_older_window_is_rejected_naming_data_exchange(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    with _miso(replay, settings) as src, pytest.raises(RequestRejected) as info:
        list(src.fetch(Window.day("2026-07-20")))
    assert "today" in str(info.value) and "yesterday" in str(info.value)
    assert "Data Exchange" in str(info.value)
    assert replay.requests == []


def test_fixed_est_on_us_dst_change_day(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260308.json"))
    with _miso(replay, settings, now=_utc(2026, 3, 8, 18, 0)) as src:
        table = _read(src, Window(_utc(2026, 3, 8, 5), _utc(2026, 3, 9, 5)))  # the EST market day
    stamps = sorted(set(table.column("ts").to_pylist()))
    # 01:55, 02:00, 02:05, 03:00, 08:15 EST = +5 h, no DST jump
    assert stamps == [
        _utc(2026, 3, 8, 6, 55),
        _utc(2026, 3, 8, 7, 0),
        _utc(2026, 3, 8, 7, 5),
        _utc(2026, 3, 8, 8, 0),
        _utc(2026, 3, 8, 13, 15),
    ]
    assert table.num_rows == 15


def test_summer_interval_also_maps_to_utc_minus_five() -> None:
    body = b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],'
    body += b'"data":[["2026-07-27T08:15:00","N1","1","0","0"]]}'
    table = parse_miso_five_min(body)
    assert table.column("ts").to_pylist() == [_utc(2026, 7, 27, 13, 15)]


def test_headers_are_mapped_by_name_in_any_order_and_case(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727_reordered.json"))
    replay.add(FEED + "Previous", Reply.file("miso/rolling_20260727.json"))
    window = Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))
    with _miso(replay, settings) as src:
        reordered = _read(src, window)
    with _miso(replay, settings, feed="previous") as src:
        canonical = _read(src, window)
    assert reordered.num_rows == 12
    assert reordered.to_pylist() == canonical.to_pylist()


def test_pretty_printed_feed_parses_like_compact() -> None:
    from tests.support.replay import PAYLOADS

    compact = PAYLOADS.joinpath("miso/rolling_20260727.json").read_bytes()
    import json

    pretty = json.dumps(json.loads(compact), indent=1).encode()
    assert parse_miso_five_min(pretty).to_pylist() == parse_miso_five_min(compact).to_pylist()


def test_empty_feed_gives_empty_canonical_table(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_empty.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert table.num_rows == 0
    assert table.schema.equals(get_dataset("rt_lmp").schema)


def test_html_page_is_a_payload_error(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/maintenance.html"))
    with _miso(replay, settings) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
        with pytest.raises(PayloadError, match="HTML page") as info:
            src.parse(payload)
    assert payload.sha256 in str(info.value)


def test_api_error_object_is_a_payload_error() -> None:
    from tests.support.replay import PAYLOADS

    with pytest.raises(PayloadError, match="envelope"):
        parse_miso_five_min(PAYLOADS.joinpath("miso/error_message.json").read_bytes())


def test_missing_price_header_is_schema_drift() -> None:
    from tests.support.replay import PAYLOADS

    with pytest.raises(SchemaDriftError, match=r"\['LMP', 'MLC', 'MCC'\]"):
        parse_miso_five_min(PAYLOADS.joinpath("miso/header_drift.json").read_bytes())


def test_http_404_is_rejected_with_status(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply(404, b'{"Message":"No HTTP resource was found"}'))
    with _miso(replay, settings) as src, pytest.raises(RequestRejected, match="HTTP 404"):
        list(src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))))


def test_http_403_is_an_authentication_error(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply(403, b"Forbidden", content_type="text/plain"))
    with _miso(replay, settings) as src, pytest.raises(AuthenticationError, match="HTTP 403"):
        list(src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))))


def test_nodes_param_filters_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings, nodes=["ARKANSAS.HUB"]) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert table.column("node").to_pylist() == ["ARKANSAS.HUB"] * 4


def test_nodes_param_given_as_one_string_filters_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    # UIS YAML may pass `nodes: ARKANSAS.HUB`; it is one node, not a list of characters.
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings, nodes="ARKANSAS.HUB") as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert table.column("node").to_pylist() == ["ARKANSAS.HUB"] * 4


def test_window_from_yesterday_past_today_plans_previous_and_rolling(settings) -> None:  # type: ignore[no-untyped-def]
    src = MISO(
        settings=settings,
        base_url="http://127.0.0.1:9",
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    # 2026-07-26 00:00 EST .. 2026-07-28 01:00 EST: three market days, the last one still ahead
    window = Window(_utc(2026, 7, 26, 5), _utc(2026, 7, 28, 6))
    assert src.plan(window) == [
        ("Previous", Window(_utc(2026, 7, 26, 5), _utc(2026, 7, 27, 5))),
        ("Rolling", Window(_utc(2026, 7, 27, 5), _utc(2026, 7, 28, 5))),
    ]
    src.close()


def test_feed_with_a_nested_array_after_data_still_parses() -> None:
    body = (
        b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],'
        b'"data":[["2026-07-27T08:15:00","ARKANSAS.HUB","23.5","-0.5","0.3"]],"notes":[["x"]]}'
    )
    (row,) = parse_miso_five_min(body).to_pylist()
    assert (row["ts"], row["node"], row["lmp"], row["loss"]) == (
        _utc(2026, 7, 27, 13, 15),
        "ARKANSAS.HUB",
        23.5,
        -0.5,
    )


def test_each_feed_is_paced_to_one_request_a_minute(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    replay.add(FEED + "Previous", Reply.file("miso/previous_20260726.json"))
    waits: list[float] = []
    clock = [1000.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        now=lambda: JULY_27_AFTERNOON,
        http=HttpOptions(sleep=sleep, clock=lambda: clock[0]),
    )
    with src:
        list(src.fetch(Window.day("2026-07-27")))  # Previous then Rolling: different feeds, no wait
        clock[0] += 10.0
        list(src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))))  # Rolling again
    assert waits == [50.0]
    assert len(replay.requests) == 3


def test_latest_window_is_the_newest_posted_interval(settings) -> None:  # type: ignore[no-untyped-def]
    src = MISO(settings=settings, base_url="http://127.0.0.1:9", http={"min_interval": 0})
    window = src.latest_window(_utc(2026, 7, 27, 13, 32, 10))
    assert window == Window(_utc(2026, 7, 27, 13, 20), _utc(2026, 7, 27, 13, 25))
    src.close()


def test_latest_window_is_served_by_rolling_feed(settings) -> None:  # type: ignore[no-untyped-def]
    now = _utc(2026, 7, 27, 13, 32, 10)
    src = MISO(settings=settings, base_url="http://127.0.0.1:9", http={"min_interval": 0}, now=lambda: now)
    window = src.latest_window(now)
    assert src.plan(window) == [("Rolling", window)]
    src.close()


def test_payload_records_feed_and_interval_convention(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        (payload,) = src.fetch(
            Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 13, 0) + timedelta(hours=1))
        )
    assert payload.meta["feed"] == "Rolling"
    assert payload.meta["interval_marks"] == "start"
    assert payload.url.endswith("/api/MarketPricing/GetRealTimeFiveMinExPost/Rolling")
    assert b'"2026-07-27T08:15:00"' in payload.body


def test_error_answer_is_yielded_before_it_is_raised(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply(404, b'{"Message":"No HTTP resource was found"}'))
    with _miso(replay, settings) as src:
        fetch = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
        payload = next(fetch)
        assert (payload.status, payload.body) == (404, b'{"Message":"No HTTP resource was found"}')
        with pytest.raises(RequestRejected, match="HTTP 404"):
            next(fetch)
        with pytest.raises(RequestRejected, match="HTTP 404"):
            src.parse(payload)


def test_last_modified_is_the_payloads_publication_time(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    served = Reply.file("miso/rolling_20260727.json", **{"Last-Modified": "Mon, 27 Jul 2026 13:21:04 GMT"})
    replay.add(FEED + "Rolling", served)
    with _miso(replay, settings) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert payload.published_at == _utc(2026, 7, 27, 13, 21, 4)


def test_without_last_modified_there_is_no_publication_time(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert payload.published_at is None
