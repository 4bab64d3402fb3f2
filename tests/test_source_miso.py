"""MISO public 5-minute ex-post feeds, end to end against the replay server (reference §6).

``INTERVAL`` is the interval END (MISO's Data Exchange documentation, see ``INTERVAL_MARKS``): the
fixtures' ``08:15:00`` rows are the interval 08:10–08:15 EST, i.e. ``ts`` 13:10Z.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from hmco.errors import AuthenticationError, PayloadError, RequestRejected, SchemaDriftError
from hmco.schemas import get_dataset
from hmco.sources.base import Source, get_source_class
from hmco.sources.http import HttpOptions
from hmco.sources.miso import (
    INTERVAL_MARKS,
    MISO,
    feed_day,
    market_day,
    parse_miso_five_min,
    parse_miso_node_list,
)
from hmco.windows import Window
from tests.support.replay import PAYLOADS, ReplayServer, Reply

FEED = "/api/MarketPricing/GetRealTimeFiveMinExPost/"
REPORTS = "/marketreports/"
NODE_LIST = PAYLOADS / "miso" / "da_expost_lmp_20260727.csv"
JULY_27_AFTERNOON = datetime(2026, 7, 27, 18, 0, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _serve_node_list(replay: ReplayServer, day: date, body: bytes | None = None) -> str:
    """Serve MISO's day-ahead ex-post file (its node list) for ``day``; returns its path."""
    path = f"{REPORTS}{day:%Y%m%d}_da_expost_lmp.csv"
    replay.add(path, Reply(body=NODE_LIST.read_bytes() if body is None else body, content_type="text/csv"))
    return path


def _miso(replay: ReplayServer, settings, now: datetime = JULY_27_AFTERNOON, **kw) -> MISO:  # type: ignore[no-untyped-def]
    """A MISO source on the replay server; the node list of ``now``'s market day is served."""
    _serve_node_list(replay, market_day(now))
    return MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",
        http={"min_interval": 0},
        now=lambda: now,
        **kw,
    )


def _read(source: Source, window: Window) -> pa.Table:
    tables = [source.parse(p) for p in source.fetch(window)]
    return pa.concat_tables(tables)


def _feed_requests(replay: ReplayServer) -> list[str]:
    return [r.path for r in replay.requests if r.path.startswith(FEED)]


def test_registered_under_miso() -> None:
    assert get_source_class("miso") is MISO
    assert MISO.datasets == ("rt_lmp",)


def test_interval_is_read_as_the_interval_end() -> None:
    assert INTERVAL_MARKS == "end"
    body = b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],"data":[["2026-07-27T08:15:00","N1","1","0","0"]]}'
    (row,) = parse_miso_five_min(body).to_pylist()
    assert (row["ts"], row["interval_end"]) == (_utc(2026, 7, 27, 13, 10), _utc(2026, 7, 27, 13, 15))


def test_today_window_reads_rolling_feed_into_canonical_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert table.schema.equals(get_dataset("rt_lmp").schema)
    assert table.num_rows == 9  # stamps 08:05, 08:10, 08:15 EST; 08:00 ends the 07:55 interval (12:55Z)
    assert _feed_requests(replay) == [FEED + "Rolling"]
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {
        "ts": _utc(2026, 7, 27, 13, 0),
        "interval_end": _utc(2026, 7, 27, 13, 5),
        "iso": "MISO",
        "market": "RT5",
        "node": "EES.KRBYVLE.AZ",
        "node_type": "Gennode",
        "lmp": 21.0,
        "energy": pytest.approx(21.15),
        "congestion": 0.1,
        "loss": -0.25,
        "ghg": None,
        "published_at": None,  # the parser leaves it unset; the window processor stamps it
    }


def test_energy_is_lmp_minus_loss_minus_congestion(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 10), _utc(2026, 7, 27, 13, 15)))
    hub = next(r for r in table.to_pylist() if r["node"] == "ARKANSAS.HUB")
    # INTERVAL 08:15 EST (08:10-08:15): LMP 23.50, MLC -0.50, MCC 0.30
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
        table = _read(src, Window(_utc(2026, 7, 27, 4, 0), _utc(2026, 7, 27, 4, 55)))
    assert _feed_requests(replay) == [FEED + "Previous"]
    assert table.num_rows == 6
    # INTERVAL 23:50 and 23:55 EST on 2026-07-26 end the intervals starting 04:45Z and 04:50Z on the 27th
    assert sorted(set(table.column("ts").to_pylist())) == [_utc(2026, 7, 27, 4, 45), _utc(2026, 7, 27, 4, 50)]


def test_window_across_market_midnight_reads_both_feeds(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Previous", Reply.file("miso/previous_20260726.json"))
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        payloads = [p for p in src.fetch(Window.day("2026-07-27")) if "feed" in p.meta]
        table = pa.concat_tables([src.parse(p) for p in payloads])
    assert [p.meta["feed"] for p in payloads] == ["Previous", "Rolling"]
    # yesterday's feed holds stamps up to 23:55 EST: intervals starting before 23:55 EST (04:55Z)
    assert payloads[0].window == Window(_utc(2026, 7, 27), _utc(2026, 7, 27, 4, 55))
    assert payloads[1].window == Window(_utc(2026, 7, 27, 4, 55), _utc(2026, 7, 28))
    assert table.num_rows == 18


# --- both edges of a market day (EST) -------------------------------------------------------------


def test_market_day_plan_reads_its_last_interval_from_the_next_days_feed(settings) -> None:  # type: ignore[no-untyped-def]
    src = MISO(
        settings=settings,
        base_url="http://127.0.0.1:9",
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    july_26 = Window(_utc(2026, 7, 26, 5), _utc(2026, 7, 27, 5))  # 2026-07-26 00:00-24:00 EST
    assert src.plan(july_26) == [
        ("Previous", Window(_utc(2026, 7, 26, 5), _utc(2026, 7, 27, 4, 55))),
        ("Rolling", Window(_utc(2026, 7, 27, 4, 55), _utc(2026, 7, 27, 5))),  # 23:55-24:00 EST
    ]
    july_27 = Window(_utc(2026, 7, 27, 5), _utc(2026, 7, 28, 5))  # today: its last interval is not out
    assert src.plan(july_27) == [("Rolling", Window(_utc(2026, 7, 27, 5), _utc(2026, 7, 28, 4, 55)))]
    src.close()


def test_raw_interval_strings_fall_in_the_market_day_whose_interval_they_end() -> None:
    first_of_day = _utc(2026, 7, 27, 5, 0)  # 00:00 EST
    last_of_day = _utc(2026, 7, 28, 4, 55)  # 23:55 EST
    assert market_day(first_of_day) == date(2026, 7, 27) and feed_day(first_of_day) == date(2026, 7, 27)
    assert market_day(last_of_day) == date(2026, 7, 27) and feed_day(last_of_day) == date(2026, 7, 28)
    rows = parse_miso_five_min(PAYLOADS.joinpath("miso/rolling_20260727_edges.json").read_bytes()).to_pylist()
    by_stamp = {(r["interval_end"], r["node"]): r for r in rows}
    # "2026-07-27T00:00:00", first row of the 27th's feed: 23:55-24:00 EST of the 26th
    midnight = by_stamp[(_utc(2026, 7, 27, 5, 0), "ARKANSAS.HUB")]
    assert midnight["ts"] == _utc(2026, 7, 27, 4, 55)
    assert market_day(midnight["ts"]) == date(2026, 7, 26)
    # "2026-07-27T00:05:00": 00:00-00:05 EST, the first interval of the 27th
    first = by_stamp[(_utc(2026, 7, 27, 5, 5), "ARKANSAS.HUB")]
    assert first["ts"] == _utc(2026, 7, 27, 5, 0)
    assert market_day(first["ts"]) == date(2026, 7, 27)


def test_a_market_day_runs_from_its_0005_stamp_to_the_next_days_midnight_stamp(
    replay: ReplayServer, settings
) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Previous", Reply.file("miso/previous_20260726_edges.json"))
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727_edges.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 26, 5), _utc(2026, 7, 27, 5)))  # market day 2026-07-26
    assert _feed_requests(replay) == [FEED + "Previous", FEED + "Rolling"]
    hub = sorted((r for r in table.to_pylist() if r["node"] == "ARKANSAS.HUB"), key=lambda r: r["ts"])
    assert [(r["ts"], r["interval_end"], r["lmp"]) for r in hub] == [
        (_utc(2026, 7, 26, 5, 0), _utc(2026, 7, 26, 5, 5), 11.0),  # "2026-07-26T00:05:00" -> 00:00-00:05 EST
        (_utc(2026, 7, 26, 16, 55), _utc(2026, 7, 26, 17, 0), 12.0),  # "2026-07-26T12:00:00"
        (_utc(2026, 7, 27, 4, 50), _utc(2026, 7, 27, 4, 55), 13.0),  # "2026-07-26T23:55:00"
        (_utc(2026, 7, 27, 4, 55), _utc(2026, 7, 27, 5, 0), 14.0),  # "2026-07-27T00:00:00" -> 23:55-24:00
    ]
    assert {market_day(r["ts"]) for r in table.to_pylist()} == {date(2026, 7, 26)}
    # "2026-07-26T00:00:00" (the 25th's last interval) and "2026-07-27T00:05:00" (the 27th's first) are out
    assert table.num_rows == 8


# --- node list and location types ----------------------------------------------------------------


def test_every_node_is_typed_from_misos_node_list(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert dict(zip(table["node"].to_pylist(), table["node_type"].to_pylist(), strict=True)) == {
        "EES.KRBYVLE.AZ": "Gennode",
        "ARKANSAS.HUB": "Hub",
        "ALTW.WELLS1": "Gennode",
    }
    assert [r.path for r in replay.requests] == [f"{REPORTS}20260727_da_expost_lmp.csv", FEED + "Rolling"]


def test_node_missing_from_the_list_is_unknown_and_counted(replay: ReplayServer, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    body = (
        b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],"data":['
        b'["2026-07-27T08:15:00","ARKANSAS.HUB","20","0","0"],["2026-07-27T08:15:00","NEWCO.NODE1","21","0","0"],'
        b'["2026-07-27T08:15:00","NEWCO.NODE2","22","0","0"],["2026-07-27T08:15:00","AECI","23","0","0"]]}'
    )
    replay.add(FEED + "Rolling", Reply(body=body))
    with caplog.at_level(logging.WARNING, "hmco.sources.miso"), _miso(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert dict(zip(table["node"].to_pylist(), table["node_type"].to_pylist(), strict=True)) == {
        "ARKANSAS.HUB": "Hub",
        "NEWCO.NODE1": "Unknown",
        "NEWCO.NODE2": "Unknown",
        "AECI": "Interface",
    }
    assert table["node_type"].null_count == 0
    assert "2 of 4 CPNODE(s) are not in MISO's node list" in caplog.text


def test_node_list_is_fetched_once_per_market_day(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        first = list(src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 13, 30))))
        second = list(src.fetch(Window(_utc(2026, 7, 27, 13, 30), _utc(2026, 7, 27, 14, 0))))
    assert [p.meta.get("kind") for p in first] == ["nodes", None]
    assert [p.meta.get("kind") for p in second] == [None]
    assert len([r for r in replay.requests if r.path.startswith(REPORTS)]) == 1
    assert second[0].meta["node_list"] == first[0].sha256


def test_node_list_payload_is_archived_like_any_payload_and_parses_to_no_rows(
    replay: ReplayServer, settings
) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        node_payload, feed_payload = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
        rows = src.parse(node_payload)
    assert (node_payload.source, node_payload.dataset, node_payload.status) == ("miso", "nodes", 200)
    assert node_payload.url.endswith("/marketreports/20260727_da_expost_lmp.csv")
    assert node_payload.body == NODE_LIST.read_bytes()
    assert node_payload.meta["market_day"] == "2026-07-27"
    assert rows.num_rows == 0 and rows.schema.equals(get_dataset("rt_lmp").schema)
    assert feed_payload.meta["node_list"] == node_payload.sha256


def test_replay_types_nodes_from_the_archived_node_list(replay: ReplayServer, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings) as src:
        node_payload, feed_payload = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
        live = src.parse(feed_payload)
    offline = MISO(settings=settings, base_url="http://127.0.0.1:9", node_list=False)
    with caplog.at_level(logging.WARNING, "hmco.sources.miso"):
        without = offline.parse(feed_payload)  # node list not parsed yet: typed by name, and said so
    assert "has not parsed" in caplog.text
    assert set(zip(without["node"].to_pylist(), without["node_type"].to_pylist(), strict=True)) == {
        ("EES.KRBYVLE.AZ", "Unknown"),
        ("ARKANSAS.HUB", "Hub"),
        ("ALTW.WELLS1", "Unknown"),
    }
    offline.parse(node_payload)
    assert offline.parse(feed_payload).to_pylist() == live.to_pylist()
    offline.close()


def test_node_list_not_posted_yet_falls_back_to_the_day_before(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    blob_missing = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code></Error>'
    replay.add(
        f"{REPORTS}20260727_da_expost_lmp.csv", Reply(404, blob_missing, content_type="application/xml")
    )
    _serve_node_list(replay, date(2026, 7, 26))
    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    with src:
        table = src.node_catalogue()
    assert table.column_names == ["location", "location_type", "market_day"]
    assert set(table["market_day"].to_pylist()) == {date(2026, 7, 26)}
    assert [r.path for r in replay.requests] == [
        f"{REPORTS}20260727_da_expost_lmp.csv",
        f"{REPORTS}20260726_da_expost_lmp.csv",
    ]


def test_prices_still_flow_without_a_node_list(replay: ReplayServer, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",  # no node list served: every day answers 404
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    with caplog.at_level(logging.WARNING, "hmco.sources.miso"), src:
        payloads = list(src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))))
        table = pa.concat_tables([src.parse(p) for p in payloads])
    assert [p.meta.get("feed") for p in payloads] == ["Rolling"]
    assert table.num_rows == 9
    assert dict(zip(table["node"].to_pylist(), table["node_type"].to_pylist(), strict=True)) == {
        "EES.KRBYVLE.AZ": "Unknown",
        "ARKANSAS.HUB": "Hub",
        "ALTW.WELLS1": "Unknown",
    }
    assert "MISO node list unavailable" in caplog.text
    assert len([r for r in replay.requests if r.path.startswith(REPORTS)]) == 4  # today + 3 days back


def test_node_catalogue_lists_every_node_once_with_its_type(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    with _miso(replay, settings) as src:
        table = src.node_catalogue()
    assert table.to_pydict() == {
        "location": ["AECI", "AECI.ALTW", "ALTW.WELLS1", "ARKANSAS.HUB", "EES.KRBYVLE.AZ", "INDIANA.HUB"],
        "location_type": ["Interface", "Loadzone", "Gennode", "Hub", "Gennode", "Hub"],
        "market_day": [date(2026, 7, 27)] * 6,
    }


def test_node_list_with_crlf_and_bom_parses_the_same() -> None:
    plain = NODE_LIST.read_bytes()
    windows_style = b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n")
    assert parse_miso_node_list(windows_style).to_pylist() == parse_miso_node_list(plain).to_pylist()


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (b"<!DOCTYPE html><html><body>Site maintenance</body></html>", PayloadError, "HTML page or XML"),
        (b"", PayloadError, "empty"),
        (
            b"Day Ahead Market ExPost LMPs\n07/27/2026\n\n,,,All Hours-Ending are EST\nNode,Kind,Value,HE 1\nA,Hub,LMP,1\n",
            SchemaDriftError,
            "no 'Type' column",
        ),
        (b"Day Ahead Market ExPost LMPs\n07/27/2026\n\nno header here\n", SchemaDriftError, "no header line"),
        (
            b"Day Ahead Market ExPost LMPs\n07/27/2026\n\n,,,note\nNode,Type,Value,HE 1\n",
            PayloadError,
            "no nodes",
        ),
    ],
    ids=["html", "empty", "header-drift", "no-header", "no-rows"],
)
def test_malformed_node_list_is_a_typed_error(
    replay: ReplayServer, settings, body: bytes, error: type, match: str
) -> None:  # type: ignore[no-untyped-def]
    _serve_node_list(replay, date(2026, 7, 27), body)
    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    with src, pytest.raises(error, match=match) as info:
        src.node_catalogue()
    assert "20260727_da_expost_lmp.csv" in str(info.value)


def test_refused_node_list_is_an_authentication_error(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(
        f"{REPORTS}20260727_da_expost_lmp.csv",
        Reply(403, b"AuthorizationFailure", content_type="application/xml"),
    )
    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    with src, pytest.raises(AuthenticationError, match="HTTP 403"):
        src.node_catalogue()


def test_node_list_never_posted_is_no_data(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    from hmco.errors import NoData

    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",
        http={"min_interval": 0},
        now=lambda: JULY_27_AFTERNOON,
    )
    with src, pytest.raises(NoData, match="2026-07-27 or the 3 days before"):
        src.node_catalogue()


def test_custom_base_url_without_reports_url_reads_no_node_list(settings) -> None:  # type: ignore[no-untyped-def]
    for kw, expected in (
        ({"base_url": "http://127.0.0.1:9/api"}, False),
        ({}, True),
        ({"base_url": "https://public-api.misoenergy.org/api/"}, True),
        ({"base_url": "http://127.0.0.1:9/api", "reports_url": "http://127.0.0.1:9/r"}, True),
    ):
        with MISO(settings=settings, **kw) as src:
            assert src.node_list is expected, kw


# --- feeds -------------------------------------------------------------------------------------


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
    # INTERVAL 01:55, 02:00, 02:05, 03:00, 08:15 EST end intervals starting 5 min earlier; +5 h, no DST jump
    assert stamps == [
        _utc(2026, 3, 8, 6, 50),
        _utc(2026, 3, 8, 6, 55),
        _utc(2026, 3, 8, 7, 0),
        _utc(2026, 3, 8, 7, 55),
        _utc(2026, 3, 8, 13, 10),
    ]
    assert table.num_rows == 15


def test_summer_interval_also_maps_to_utc_minus_five() -> None:
    body = b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],'
    body += b'"data":[["2026-07-27T08:15:00","N1","1","0","0"]]}'
    table = parse_miso_five_min(body)
    assert table.column("interval_end").to_pylist() == [_utc(2026, 7, 27, 13, 15)]


def test_headers_are_mapped_by_name_in_any_order_and_case(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727_reordered.json"))
    replay.add(FEED + "Previous", Reply.file("miso/rolling_20260727.json"))
    window = Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))
    with _miso(replay, settings) as src:
        reordered = _read(src, window)
    with _miso(replay, settings, feed="previous") as src:
        canonical = _read(src, window)
    assert reordered.num_rows == 9
    assert reordered.to_pylist() == canonical.to_pylist()


def test_pretty_printed_feed_parses_like_compact() -> None:
    import json

    compact = PAYLOADS.joinpath("miso/rolling_20260727.json").read_bytes()
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
    with _miso(replay, settings, node_list=False) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
        with pytest.raises(PayloadError, match="HTML page") as info:
            src.parse(payload)
    assert payload.sha256 in str(info.value)


def test_api_error_object_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="envelope"):
        parse_miso_five_min(PAYLOADS.joinpath("miso/error_message.json").read_bytes())


def test_missing_price_header_is_schema_drift() -> None:
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
        table = _read(src, Window(_utc(2026, 7, 27, 12, 55), _utc(2026, 7, 27, 14, 0)))
    assert table.column("node").to_pylist() == ["ARKANSAS.HUB"] * 4


def test_nodes_param_given_as_one_string_filters_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    # UIS YAML may pass `nodes: ARKANSAS.HUB`; it is one node, not a list of characters.
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings, nodes="ARKANSAS.HUB") as src:
        table = _read(src, Window(_utc(2026, 7, 27, 12, 55), _utc(2026, 7, 27, 14, 0)))
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
        ("Previous", Window(_utc(2026, 7, 26, 5), _utc(2026, 7, 27, 4, 55))),
        ("Rolling", Window(_utc(2026, 7, 27, 4, 55), _utc(2026, 7, 28, 4, 55))),
    ]
    src.close()


def test_feed_with_a_nested_array_after_data_still_parses() -> None:
    body = (
        b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],'
        b'"data":[["2026-07-27T08:15:00","ARKANSAS.HUB","23.5","-0.5","0.3"]],"notes":[["x"]]}'
    )
    (row,) = parse_miso_five_min(body).to_pylist()
    assert (row["ts"], row["node"], row["lmp"], row["loss"]) == (
        _utc(2026, 7, 27, 13, 10),
        "ARKANSAS.HUB",
        23.5,
        -0.5,
    )


def test_each_feed_is_paced_to_one_request_a_minute(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    replay.add(FEED + "Previous", Reply.file("miso/previous_20260726.json"))
    _serve_node_list(replay, date(2026, 7, 27))
    waits: list[float] = []
    clock = [1000.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    src = MISO(
        settings=settings,
        base_url=f"{replay.url}/api",
        reports_url=f"{replay.url}{REPORTS}",
        now=lambda: JULY_27_AFTERNOON,
        http=HttpOptions(sleep=sleep, clock=lambda: clock[0]),
    )
    with src:
        list(src.fetch(Window.day("2026-07-27")))  # node list, Previous then Rolling: no wait
        clock[0] += 10.0
        list(src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0))))  # Rolling again
    assert waits == [50.0]
    assert _feed_requests(replay) == [FEED + "Previous", FEED + "Rolling", FEED + "Rolling"]


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


def test_latest_window_just_after_midnight_is_served_by_the_new_days_feed(settings) -> None:  # type: ignore[no-untyped-def]
    now = _utc(2026, 7, 28, 5, 6)  # 00:06 EST: the 27th's last interval (stamp 28th 00:00) is just out
    src = MISO(settings=settings, base_url="http://127.0.0.1:9", http={"min_interval": 0}, now=lambda: now)
    window = src.latest_window(now)
    assert window == Window(_utc(2026, 7, 28, 4, 55), _utc(2026, 7, 28, 5, 0))
    assert src.plan(window) == [("Rolling", window)]
    src.close()


def test_payload_records_feed_and_interval_convention(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings, node_list=False) as src:
        (payload,) = src.fetch(
            Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 13, 0) + timedelta(hours=1))
        )
    assert payload.meta["feed"] == "Rolling"
    assert payload.meta["interval_marks"] == "end"
    assert payload.url.endswith("/api/MarketPricing/GetRealTimeFiveMinExPost/Rolling")
    assert b'"2026-07-27T08:15:00"' in payload.body  # the raw INTERVAL is archived as MISO sent it


def test_payload_archived_under_the_start_reading_is_reparsed_as_end(
    replay: ReplayServer, settings, caplog
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings, node_list=False) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
        old = replace(payload, meta={**payload.meta, "interval_marks": "start"})
        with caplog.at_level(logging.WARNING, "hmco.sources.miso"):
            assert src.parse(old).to_pylist() == src.parse(payload).to_pylist()
    assert "interval start" in caplog.text


def test_error_answer_is_yielded_before_it_is_raised(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply(404, b'{"Message":"No HTTP resource was found"}'))
    with _miso(replay, settings, node_list=False) as src:
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
    with _miso(replay, settings, node_list=False) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert payload.published_at == _utc(2026, 7, 27, 13, 21, 4)


def test_without_last_modified_there_is_no_publication_time(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(FEED + "Rolling", Reply.file("miso/rolling_20260727.json"))
    with _miso(replay, settings, node_list=False) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 13, 0), _utc(2026, 7, 27, 14, 0)))
    assert payload.published_at is None
