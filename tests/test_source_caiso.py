"""CAISO OASIS client, end to end against the replay server (fetch -> RawPayload -> parse -> rt_lmp).

Payloads are OASIS wire-format zips built by ``tests/payloads/caiso/build_fixtures.py``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hmco.compose.spec import load_spec
from hmco.config import Settings
from hmco.errors import (
    ConfigError,
    NoData,
    PayloadError,
    RateLimited,
    RequestRejected,
    SchemaDriftError,
    SourceUnavailable,
)
from hmco.schemas import RT_LMP, get_dataset
from hmco.sources.base import RawPayload, get_source_class
from hmco.sources.caiso import CAISO, MIN_INTERVAL, parse_payload, trade_date_window
from hmco.sources.http import HttpOptions, pacer_for
from hmco.windows import Window
from tests.payloads.caiso import build_fixtures as fixtures
from tests.support.clock import FakeTime as FakeClock
from tests.support.replay import PAYLOADS, Recorded, ReplayServer, Reply

PATH = "/oasisapi/SingleZip"
SAMPLE_NODES = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "DLAP_PGAE-APND", "0096WD_7_N001", "ALAMIT_7_B1-APND"]
SAMPLE_WINDOW = Window.of("2025-07-18T07:00:00Z", "2025-07-18T07:10:00Z")
ERROR_HEADERS = {"Content-Disposition": "inline; filename=INVALID_REQUEST.xml.zip"}
SPEC = Path(__file__).resolve().parent.parent / "src" / "hmco" / "specs" / "caiso.yaml"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=0.0)


def make(
    replay: ReplayServer,
    clock: FakeClock,
    settings: Settings,
    *,
    http: dict[str, Any] | None = None,
    **kwargs: Any,
) -> CAISO:
    kwargs.setdefault("nodes", SAMPLE_NODES)
    options = HttpOptions(sleep=clock.sleep, clock=clock.clock, **(http or {}))
    return CAISO(base_url=f"{replay.url}/oasisapi", settings=settings, http=options, **kwargs)


def fetch_all(source: CAISO, window: Window) -> list[RawPayload]:
    return list(source.fetch(window))


def read_one(source: CAISO, window: Window) -> pa.Table:
    payloads = fetch_all(source, window)
    assert len(payloads) == 1
    return source.parse(payloads[0])


def row(table: pa.Table, node: str, ts: str) -> dict[str, Any]:
    mask = pc.and_(
        pc.equal(table["node"], node), pc.equal(table["ts"], pa.scalar(datetime.fromisoformat(ts)))
    )
    rows = table.filter(mask).to_pylist()
    assert len(rows) == 1
    return rows[0]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def windows_requested(requests: list[Recorded]) -> list[tuple[str | None, str | None]]:
    return [(r.param("startdatetime"), r.param("enddatetime")) for r in requests]


# ------------------------------------------------------------------------------------ happy path


def test_rt_lmp_sample_row_matches_reference_values(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    table = read_one(make(replay, clock, settings), SAMPLE_WINDOW)

    assert table.num_rows == 10
    assert table.schema.equals(RT_LMP.schema)
    assert row(table, "TH_NP15_GEN-APND", "2025-07-18T07:00:00+00:00") == {
        "ts": utc("2025-07-18T07:00:00+00:00"),
        "interval_end": utc("2025-07-18T07:05:00+00:00"),
        "iso": "CAISO",
        "market": "RT5",
        "node": "TH_NP15_GEN-APND",
        "node_type": "Trading Hub",
        "lmp": 50.48609,
        "energy": 48.94640,
        "congestion": -1.68082,
        "loss": 3.22051,
        "ghg": 0.0,
        "published_at": None,  # the parser leaves it unset; the window processor stamps it
    }


def test_rt_lmp_request_carries_pinned_report_parameters(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)

    assert [(r.path, r.params) for r in replay.requests] == [
        (
            PATH,
            [
                ("queryname", "PRC_INTVL_LMP"),
                ("startdatetime", "20250718T07:00-0000"),
                ("enddatetime", "20250718T07:10-0000"),
                ("market_run_id", "RTM"),
                ("version", "3"),
                ("node", ",".join(SAMPLE_NODES)),
                ("resultformat", "6"),
            ],
        )
    ]


def test_payload_records_chunk_window_and_report_meta(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    (payload,) = fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)

    assert payload.body == (PAYLOADS / "caiso/rt_sample.zip").read_bytes()
    assert payload.window == SAMPLE_WINDOW
    assert payload.content_type == "application/x-zip-compressed"
    assert dict(payload.meta) == {
        "market": "RT5",
        "queryname": "PRC_INTVL_LMP",
        "version": 3,
        "market_run_id": "RTM",
        "content_disposition": None,
        "oasis_error": None,
    }


def test_node_type_is_derived_from_node_naming_with_gridstatus_labels(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    table = read_one(make(replay, clock, settings), SAMPLE_WINDOW)

    kinds = dict(zip(table["node"].to_pylist(), table["node_type"].to_pylist(), strict=True))
    assert kinds == {
        "TH_NP15_GEN-APND": "Trading Hub",
        "TH_SP15_GEN-APND": "Trading Hub",
        "DLAP_PGAE-APND": "DLAP",
        "0096WD_7_N001": "Node",
        "ALAMIT_7_B1-APND": "AP Node",
    }


def test_reordered_columns_parse_to_the_same_table(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"), match={"node": "TH_NP15_GEN-APND"})
    replay.add(PATH, Reply.file("caiso/rt_reordered.zip"))
    expected = read_one(make(replay, clock, settings, nodes=["TH_NP15_GEN-APND"]), SAMPLE_WINDOW)
    reordered = read_one(make(replay, clock, settings), SAMPLE_WINDOW)

    assert reordered.num_rows == 10
    assert reordered.equals(expected)


def test_multi_member_zip_is_concatenated(replay: ReplayServer, clock: FakeClock, settings: Settings) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"), match={"node": "TH_NP15_GEN-APND"})
    replay.add(PATH, Reply.file("caiso/rt_multi_member.zip"))
    expected = read_one(make(replay, clock, settings, nodes=["TH_NP15_GEN-APND"]), SAMPLE_WINDOW)
    combined = read_one(make(replay, clock, settings), SAMPLE_WINDOW)

    assert combined.num_rows == 10
    assert combined.equals(expected)


def test_rows_outside_the_requested_window_are_dropped(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    table = read_one(make(replay, clock, settings), Window.of("2025-07-18T07:05:00Z", "2025-07-18T07:10:00Z"))

    assert table.num_rows == 5
    assert set(table["ts"].to_pylist()) == {utc("2025-07-18T07:05:00+00:00")}


def test_rt15_market_reads_prc_report(replay: ReplayServer, clock: FakeClock, settings: Settings) -> None:
    replay.add(PATH, Reply.file("caiso/rt15_sample.zip"), match={"queryname": "PRC_RTPD_LMP"})
    source = make(replay, clock, settings, market="RT15", nodes=SAMPLE_NODES[:2])
    table = read_one(source, Window.of("2025-07-18T07:00:00Z", "2025-07-18T07:30:00Z"))

    assert source.dataset.name == "rt_lmp"
    assert replay.requests[0].param("market_run_id") == "RTPD"
    assert replay.requests[0].param("version") == "3"
    assert table.num_rows == 4
    assert set(table["market"].to_pylist()) == {"RT15"}
    sample = row(table, "TH_SP15_GEN-APND", "2025-07-18T07:15:00+00:00")
    assert sample["interval_end"] == utc("2025-07-18T07:30:00+00:00")
    assert sample["lmp"] == 50.59609


def test_day_ahead_reads_prc_lmp_v12_mw_column(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/da_sample.zip"), match={"queryname": "PRC_LMP", "version": "12"})
    source = make(replay, clock, settings, dataset="da_lmp", nodes=["0096WD_7_N001", "TH_SP15_GEN-APND"])
    table = read_one(source, Window.of("2022-02-01T15:00:00Z", "2022-02-01T17:00:00Z"))

    assert replay.requests[0].param("market_run_id") == "DAM"
    assert table.schema.equals(get_dataset("da_lmp").schema)
    assert table.num_rows == 4
    assert row(table, "0096WD_7_N001", "2022-02-01T15:00:00+00:00") == {
        "ts": utc("2022-02-01T15:00:00+00:00"),
        "interval_end": utc("2022-02-01T16:00:00+00:00"),
        "iso": "CAISO",
        "market": "DAH",
        "node": "0096WD_7_N001",
        "node_type": "Node",
        "lmp": 74.63,
        "energy": 71.2,
        "congestion": 0.0,
        "loss": 3.43,
        "ghg": 0.0,
        "published_at": None,  # the parser leaves it unset; the window processor stamps it
    }


def test_payload_replayed_from_its_description_parses_identically(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    (payload,) = fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)
    replayed = RawPayload.from_description(payload.describe(), payload.body)

    assert parse_payload(replayed).equals(parse_payload(payload))


# ------------------------------------------------------------------------------------------- DST


def assert_contiguous_five_minute_day(table: pa.Table, window: Window, intervals: int) -> None:
    ts = sorted(table["ts"].to_pylist())
    assert table.num_rows == intervals
    assert len(set(ts)) == intervals
    assert ts[0] == window.start
    assert ts[-1] == window.end - timedelta(minutes=5)
    assert {b - a for a, b in itertools.pairwise(ts)} == {timedelta(minutes=5)}
    assert all(
        e - s == timedelta(minutes=5)
        for s, e in zip(ts, sorted(table["interval_end"].to_pylist()), strict=True)
    )


def test_spring_forward_trade_date_has_276_intervals(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_spring_forward.zip"))
    day = trade_date_window("2026-03-08")
    table = read_one(make(replay, clock, settings, nodes=["TH_NP15_GEN-APND"]), day)

    assert day == Window.of("2026-03-08T08:00:00Z", "2026-03-09T07:00:00Z")
    assert windows_requested(replay.requests) == [("20260308T08:00-0000", "20260309T07:00-0000")]
    assert_contiguous_five_minute_day(table, day, 276)


def test_fall_back_trade_date_has_300_intervals(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_fall_back.zip"))
    day = trade_date_window("2026-11-01")
    table = read_one(make(replay, clock, settings, nodes=["TH_NP15_GEN-APND"]), day)

    assert day == Window.of("2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z")
    assert windows_requested(replay.requests) == [("20261101T07:00-0000", "20261102T08:00-0000")]
    assert_contiguous_five_minute_day(table, day, 300)


# -------------------------------------------------------------------------------------- chunking


def test_eleven_nodes_are_requested_ten_at_a_time(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    nodes = [f"NODE{i:02d}_7_N001" for i in range(11)]
    payloads = fetch_all(make(replay, clock, settings, nodes=nodes), SAMPLE_WINDOW)

    assert [r.param("node") for r in replay.requests] == [",".join(nodes[:10]), nodes[10]]
    assert [p.page for p in payloads] == [0, 1]


def test_named_node_windows_are_split_at_31_days(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    fetch_all(make(replay, clock, settings), Window.of("2026-01-01", "2026-02-10"))

    assert windows_requested(replay.requests) == [
        ("20260101T00:00-0000", "20260201T00:00-0000"),
        ("20260201T00:00-0000", "20260210T00:00-0000"),
    ]


def test_all_node_interval_requests_cover_one_hour_each(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    fetch_all(
        make(replay, clock, settings, nodes="ALL"), Window.of("2026-07-20T07:30:00Z", "2026-07-20T09:30:00Z")
    )

    assert windows_requested(replay.requests) == [
        ("20260720T07:30-0000", "20260720T08:00-0000"),
        ("20260720T08:00-0000", "20260720T09:00-0000"),
        ("20260720T09:00-0000", "20260720T09:30-0000"),
    ]
    assert {r.param("grp_type") for r in replay.requests} == {"ALL"}
    assert {r.param("node") for r in replay.requests} == {None}


def test_all_node_day_ahead_requests_cover_one_trade_date_each(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    source = make(replay, clock, settings, dataset="da_lmp", nodes=None, grp_type="ALL_APNODES")
    fetch_all(source, Window.of("2026-03-08T00:00:00Z", "2026-03-10T00:00:00Z"))

    assert windows_requested(replay.requests) == [
        ("20260308T00:00-0000", "20260308T08:00-0000"),
        ("20260308T08:00-0000", "20260309T07:00-0000"),
        ("20260309T07:00-0000", "20260310T00:00-0000"),
    ]
    assert {r.param("grp_type") for r in replay.requests} == {"ALL_APNODES"}


# ---------------------------------------------------------------------------- pacing and throttle


def test_requests_are_paced_five_seconds_apart(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    fetch_all(
        make(replay, clock, settings, nodes="ALL"), Window.of("2026-07-20T07:00:00Z", "2026-07-20T10:00:00Z")
    )

    assert len(replay.requests) == 3
    assert clock.sleeps == [5.0, 5.0]


def test_throttle_page_is_retried_after_five_seconds(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(
        PATH,
        Reply.file("caiso/throttle_429.html", status=429),
        Reply.file("caiso/rt_sample.zip"),
    )
    nodes = [*SAMPLE_NODES, *(f"NODE{i:02d}_7_N001" for i in range(6))]  # 11 nodes: two requests
    source = make(replay, clock, settings, nodes=nodes)
    payloads = fetch_all(source, SAMPLE_WINDOW)

    assert len(replay.requests) == 3
    assert clock.sleeps == [5.0, 5.0]  # the 429 retry, then the pacing before the second chunk
    assert [p.status for p in payloads] == [200, 200]
    assert source.parse(payloads[0]).num_rows == 10


def test_throttle_page_served_with_status_200_is_also_retried(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/throttle_429.html", status=200), Reply.file("caiso/rt_sample.zip"))
    (payload,) = fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)

    assert clock.sleeps == [5.0]
    assert payload.body.startswith(b"PK")


def test_persistent_throttle_raises_rate_limited(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/throttle_429.html", status=429))
    with pytest.raises(RateLimited, match="Acceptable Use Policy Violation"):
        fetch_all(make(replay, clock, settings, http={"max_attempts": 3}), SAMPLE_WINDOW)

    assert len(replay.requests) == 3
    assert clock.sleeps == [5.0, 5.0]


def test_default_client_uses_the_process_wide_host_pacer(replay: ReplayServer, settings: Settings) -> None:
    source = CAISO(base_url=f"{replay.url}/oasisapi", settings=settings)
    host = replay.url.removeprefix("http://")

    assert source._http.pacer is pacer_for(host, MIN_INTERVAL)
    assert source._http.pacer.min_interval == 5.0


# ------------------------------------------------------------------------------------ OASIS errors


def test_no_data_error_zip_is_yielded_and_parses_to_empty_table(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)
    table = source.parse(payload)

    assert payload.meta["oasis_error"] == 1000
    assert table.num_rows == 0
    assert table.schema.equals(RT_LMP.schema)


def test_no_data_raises_when_data_is_required(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip"))
    source = make(replay, clock, settings, require_data=True)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(NoData, match="1000"):
        source.parse(payload)


@pytest.mark.parametrize(
    ("fixture", "code", "fix"),
    [
        ("error_1004_window.xml.zip", 1004, "window is longer than 31 days"),
        ("error_1014_retention.xml.zip", 1014, "beyond OASIS retention"),
        ("error_1017_nodes.xml.zip", 1017, "at most 10"),
    ],
)
def test_rejected_request_errors_raise_with_code_and_fix(
    replay: ReplayServer, clock: FakeClock, settings: Settings, fixture: str, code: int, fix: str
) -> None:
    replay.add(PATH, Reply.file(f"caiso/{fixture}", 200, None, **ERROR_HEADERS))
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(RequestRejected) as info:
        source.parse(payload)
    assert len(replay.requests) == 1  # terminal: not retried
    assert payload.meta["oasis_error"] == code
    assert payload.meta["content_disposition"] == ERROR_HEADERS["Content-Disposition"]
    assert f"CAISO OASIS error {code}" in str(info.value)
    assert fix in str(info.value)
    assert payload.sha256 in str(info.value)


def test_transient_error_is_retried_then_succeeds(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(
        PATH,
        Reply.file("caiso/error_1010_system.xml.zip", 200, None, **ERROR_HEADERS),
        Reply.file("caiso/rt_sample.zip"),
    )
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    assert len(replay.requests) == 2
    assert clock.sleeps == [1.0, 4.0]  # 1 s backoff, then the pacer tops up to 5 s since the last request
    assert source.parse(payload).num_rows == 10


def test_persistent_transient_error_is_yielded_then_raised_as_source_unavailable(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/error_1010_system.xml.zip", 200, None, **ERROR_HEADERS))
    source = make(replay, clock, settings, http={"max_attempts": 2})
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    assert len(replay.requests) == 2
    assert payload.meta["oasis_error"] == 1010
    with pytest.raises(SourceUnavailable, match="1010") as info:
        source.parse(payload)
    assert info.value.transient is True


def test_truncated_zip_raises_payload_error(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    body = (PAYLOADS / "caiso/rt_sample.zip").read_bytes()
    replay.add(PATH, Reply(body=body[:300], content_type="application/x-zip-compressed"))
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(PayloadError, match="corrupt or truncated"):
        source.parse(payload)


def test_corrupted_zip_member_raises_payload_error(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    body = bytearray((PAYLOADS / "caiso/rt_sample.zip").read_bytes())
    body[200] ^= 0xFF  # inside the deflated CSV: bad data or bad CRC
    replay.add(PATH, Reply(body=bytes(body), content_type="application/x-zip-compressed"))
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(PayloadError) as info:
        source.parse(payload)
    assert not isinstance(info.value, SchemaDriftError)


def test_html_page_with_status_200_raises_payload_error(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(
        PATH, Reply(body=b"<html><body>OASIS is down for maintenance</body></html>", content_type="text/html")
    )
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(PayloadError, match=r"not a zip.*maintenance"):
        source.parse(payload)


def test_missing_columns_raise_schema_drift_naming_them(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_missing_columns.zip"))
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(SchemaDriftError, match=r"lacks column\(s\) \['LMP_TYPE', 'VALUE'\]"):
        source.parse(payload)


def test_http_error_status_is_yielded_then_rejected(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply(404, b"Not Found", content_type="text/plain"))
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    assert payload.status == 404
    with pytest.raises(RequestRejected, match="HTTP 404: Not Found"):
        source.parse(payload)


# ------------------------------------------------------------------------- polling and configuration


def test_latest_window_is_the_last_complete_five_minute_intervals(settings: Settings) -> None:
    source = CAISO(settings=settings)

    assert source.latest_window(datetime(2026, 11, 1, 12, 7, 30, tzinfo=UTC)) == Window.of(
        "2026-11-01T11:30:00Z", "2026-11-01T12:00:00Z"
    )
    assert CAISO.window_step == timedelta(hours=1)


def test_latest_day_ahead_window_is_tomorrow_once_published(settings: Settings) -> None:
    source = CAISO("da_lmp", settings=settings)

    assert source.latest_window(datetime(2026, 7, 20, 22, 0, tzinfo=UTC)) == trade_date_window("2026-07-21")
    assert source.latest_window(datetime(2026, 7, 20, 17, 0, tzinfo=UTC)) == trade_date_window("2026-07-20")


def test_scope_is_caiso_market_and_named_nodes(settings: Settings) -> None:
    assert CAISO(nodes=["TH_NP15_GEN-APND"], settings=settings).scope() == {
        "iso": ["CAISO"],
        "market": ["RT5"],
        "node": ["TH_NP15_GEN-APND"],
    }
    assert CAISO("da_lmp", nodes="ALL", settings=settings).scope() == {"iso": ["CAISO"], "market": ["DAH"]}


def test_source_is_registered_as_caiso() -> None:
    assert get_source_class("caiso") is CAISO


def test_market_and_dataset_must_agree(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="market DAH produces da_lmp"):
        CAISO("rt_lmp", market="DAH", settings=settings)
    with pytest.raises(ConfigError, match="unknown market"):
        CAISO(market="RT1", settings=settings)


def test_nodes_and_group_type_are_exclusive(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="either nodes or grp_type"):
        CAISO(nodes=["TH_NP15_GEN-APND"], grp_type="ALL", settings=settings)


def test_example_spec_validates_and_builds_the_client(settings: Settings) -> None:
    spec = load_spec(SPEC)
    cls: Any = get_source_class(spec.source.type)
    source = cls(spec.source.dataset, settings=settings, base_url=spec.source.base_url, **spec.source.params)

    assert isinstance(source, CAISO)
    assert (source.dataset.name, source.market, len(source.nodes)) == ("rt_lmp", "RT5", 6)
    assert (spec.sinks, spec.sla, spec.window) == (
        ["iceberg", "clickhouse"],
        timedelta(minutes=10),
        timedelta(hours=1),
    )


# ------------------------------------------------------------------------- payload edge cases


def serve(replay: ReplayServer, members: dict[str, bytes]) -> None:
    replay.add(PATH, Reply(body=fixtures.zip_bytes(members), content_type="application/x-zip-compressed"))


def sample_rows(starts: list[datetime], nodes: list[str]) -> list[dict[str, str]]:
    return fixtures.long_rows(
        starts, timedelta(minutes=5), nodes, market_run_id="RTM", grp_type="ALL_APNODES"
    )


def test_identical_duplicate_rows_across_members_are_tolerated(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    rows = sample_rows([utc("2025-07-18T07:00:00+00:00")], SAMPLE_NODES)
    csv = fixtures.to_csv(rows, fixtures.INTVL_HEADER)
    serve(replay, {"a.csv": csv, "b.csv": csv})
    table = read_one(make(replay, clock, settings), SAMPLE_WINDOW)

    assert table.num_rows == 5
    assert row(table, "TH_NP15_GEN-APND", "2025-07-18T07:00:00+00:00")["lmp"] == 50.48609


def test_conflicting_duplicate_rows_raise_payload_error(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    rows = sample_rows([utc("2025-07-18T07:00:00+00:00")], SAMPLE_NODES)
    changed = [{**r, "VALUE": "99.00000"} if r["LMP_TYPE"] == "MCC" else r for r in rows]
    serve(
        replay,
        {
            "a.csv": fixtures.to_csv(rows, fixtures.INTVL_HEADER),
            "b.csv": fixtures.to_csv(changed, fixtures.INTVL_HEADER),
        },
    )
    source = make(replay, clock, settings)
    (payload,) = fetch_all(source, SAMPLE_WINDOW)

    with pytest.raises(PayloadError, match="different congestion values"):
        source.parse(payload)


def test_sparse_node_interval_grid_keeps_only_reported_pairs(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    # 120 nodes, each reported in a different interval: a 120 x 120 grid with 120 cells filled.
    start = utc("2026-07-20T07:00:00+00:00")
    nodes = [f"NODE{i:03d}_7_N001" for i in range(120)]
    rows = [
        r for i, node in enumerate(nodes) for r in sample_rows([start + timedelta(minutes=5 * i)], [node])
    ]
    serve(replay, {"sparse.csv": fixtures.to_csv(rows, fixtures.INTVL_HEADER)})
    table = read_one(
        make(replay, clock, settings, nodes=nodes[:1]), Window(start, start + timedelta(hours=10))
    )

    assert table.num_rows == 120
    assert table["node"].to_pylist() == nodes
    assert table["ts"].to_pylist() == [start + timedelta(minutes=5 * i) for i in range(120)]
    assert set(table["lmp"].to_pylist()) == {50.48609}


def test_committed_fixtures_match_their_builder() -> None:
    for name, data in fixtures.build().items():
        assert (PAYLOADS / "caiso" / name).read_bytes() == data, name


# ------------------------------------------------------------------------- publication time

LAST_MODIFIED = "Fri, 18 Jul 2025 07:12:31 GMT"


def test_csv_report_takes_its_publication_time_from_last_modified(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip", **{"Last-Modified": LAST_MODIFIED}))
    (payload,) = fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)

    assert payload.published_at == datetime(2025, 7, 18, 7, 12, 31, tzinfo=UTC)
    assert payload.version_time() == payload.published_at
    assert payload.describe()["published_at"] == "2025-07-18T07:12:31+00:00"


def test_csv_report_without_last_modified_has_no_publication_time(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    replay.add(PATH, Reply.file("caiso/rt_sample.zip"))
    (payload,) = fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)

    assert payload.published_at is None
    assert payload.version_time() == payload.fetched_at


def test_xml_report_time_date_is_its_publication_time_even_with_last_modified(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    headers = {**ERROR_HEADERS, "Last-Modified": LAST_MODIFIED}
    replay.add(PATH, Reply.file("caiso/error_1000_no_data.xml.zip", 200, None, **headers))
    (payload,) = fetch_all(make(replay, clock, settings), SAMPLE_WINDOW)

    # <m:TimeDate>2026-09-14T17:10:55.764Z</m:TimeDate> in the OASISReport's MessageHeader
    assert payload.published_at == datetime(2026, 9, 14, 17, 10, 55, 764000, tzinfo=UTC)


# ------------------------------------------------------------------------------------ node catalogue

APNODE_HEADER = "APNODE_ID,APNODE_TYPE,START_DATE_GMT,END_DATE_GMT"
PNODE_HEADER = "PNODE_ID,PNODE_TYPE,START_DATE_GMT,END_DATE_GMT"
ATL_NOW = datetime(2026, 7, 20, 18, 0, tzinfo=UTC)  # 11:00 PDT: trade date 2026-07-20


def _atl_zip(queryname: str, header: str, rows: list[str]) -> bytes:
    """An OASIS ``resultformat=6`` Atlas listing: one CSV member, named as OASIS names its members."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            f"20260720_20260721_{queryname}_20260720_18_00_01_v1.csv", "\n".join([header, *rows]) + "\n"
        )
    return buf.getvalue()


APNODES = [
    "TH_NP15_GEN-APND,TH,2009-04-01T07:00:00-00:00,",
    "TH_SP15_GEN-APND,TH,2009-04-01T07:00:00-00:00,",
    "DLAP_PGAE-APND,LAP,2009-04-01T07:00:00-00:00,",
    "SLAP_PGCC-APND,SLAP,2009-04-01T07:00:00-00:00,",
    "ALAMIT_7_B1-APND,AG,2012-01-01T08:00:00-00:00,",
    "TH_NP15_GEN-APND,TH,2009-04-01T07:00:00-00:00,",  # listed twice: kept once
]
PNODES = ["0096WD_7_N001,GEN,2010-01-01T08:00:00-00:00,", "ALAMIT_7_B1,LOAD,2010-01-01T08:00:00-00:00,"]


def _serve_catalogue(replay: ReplayServer, apnode: bytes | None = None, pnode: bytes | None = None) -> None:
    zip_type = "application/x-zip-compressed"
    replay.add(
        PATH,
        Reply(body=apnode or _atl_zip("ATL_APNODE", APNODE_HEADER, APNODES), content_type=zip_type),
        match={"queryname": "ATL_APNODE"},
    )
    replay.add(
        PATH,
        Reply(body=pnode or _atl_zip("ATL_PNODE", PNODE_HEADER, PNODES), content_type=zip_type),
        match={"queryname": "ATL_PNODE"},
    )


def test_node_catalogue_lists_apnodes_and_pnodes_with_gridstatus_types(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    _serve_catalogue(replay)
    with make(replay, clock, settings) as source:
        table = source.parse_nodes(list(source.fetch_nodes(ATL_NOW)))

    assert table.column_names[:4] == ["location", "location_type", "oasis_type", "catalogue"]
    assert {"start_date_gmt", "end_date_gmt"} <= set(table.column_names)
    listed = {r["location"]: (r["location_type"], r["oasis_type"], r["catalogue"]) for r in table.to_pylist()}
    assert listed == {
        "0096WD_7_N001": ("Node", "GEN", "ATL_PNODE"),
        "ALAMIT_7_B1": ("Node", "LOAD", "ATL_PNODE"),
        "ALAMIT_7_B1-APND": ("AP Node", "AG", "ATL_APNODE"),
        "DLAP_PGAE-APND": ("DLAP", "LAP", "ATL_APNODE"),
        "SLAP_PGCC-APND": ("AP Node", "SLAP", "ATL_APNODE"),
        "TH_NP15_GEN-APND": ("Trading Hub", "TH", "ATL_APNODE"),
        "TH_SP15_GEN-APND": ("Trading Hub", "TH", "ATL_APNODE"),
    }
    assert table["location"].to_pylist() == sorted(listed)


def test_node_catalogue_requests_are_atlas_queries_paced_like_any_oasis_request(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    _serve_catalogue(replay)
    with make(replay, clock, settings) as source:
        payloads = list(source.fetch_nodes(ATL_NOW))

    assert [r.params for r in replay.requests] == [
        [
            ("queryname", "ATL_APNODE"),
            ("startdatetime", "20260720T07:00-0000"),
            ("enddatetime", "20260721T07:00-0000"),
            ("version", "1"),
            ("APnode_type", "ALL"),
            ("resultformat", "6"),
        ],
        [
            ("queryname", "ATL_PNODE"),
            ("startdatetime", "20260720T07:00-0000"),
            ("enddatetime", "20260721T07:00-0000"),
            ("version", "1"),
            ("Pnode_type", "ALL"),
            ("resultformat", "6"),
        ],
    ]
    assert clock.sleeps == [5.0]
    assert [(p.dataset, p.meta["kind"], p.meta["part_name"]) for p in payloads] == [
        ("nodes", "nodes", "ATL_APNODE"),
        ("nodes", "nodes", "ATL_PNODE"),
    ]
    assert len({p.meta["fetch_id"] for p in payloads}) == 1


def test_catalogue_payload_parses_to_no_price_rows(
    replay: ReplayServer, clock: FakeClock, settings: Settings
) -> None:
    _serve_catalogue(replay)
    with make(replay, clock, settings) as source:
        apnodes, _ = source.fetch_nodes(ATL_NOW)
        rows = source.parse(apnodes)
    assert rows.num_rows == 0 and rows.schema.equals(RT_LMP.schema)


@pytest.mark.parametrize(
    ("apnode", "error", "match"),
    [
        ((PAYLOADS / "caiso/error_1000_no_data.xml.zip").read_bytes(), NoData, "1000"),
        ((PAYLOADS / "caiso/error_1004_window.xml.zip").read_bytes(), RequestRejected, "1004"),
        (
            (PAYLOADS / "caiso/throttle_429.html").read_bytes().replace(b"Acceptable", b"Gateway"),
            PayloadError,
            "not a zip",
        ),
        (_atl_zip("ATL_APNODE", "NAME,KIND", ["TH_NP15_GEN-APND,TH"]), SchemaDriftError, "APNODE_ID"),
        (_atl_zip("ATL_APNODE", APNODE_HEADER, []), PayloadError, "no locations"),
        (b"PK\x03\x04truncated", PayloadError, "corrupt or truncated"),
    ],
    ids=["no-data", "rejected", "html", "header-drift", "empty", "corrupt"],
)
def test_malformed_catalogue_is_a_typed_error(
    replay: ReplayServer, clock: FakeClock, settings: Settings, apnode: bytes, error: type, match: str
) -> None:
    _serve_catalogue(replay, apnode=apnode)
    with make(replay, clock, settings) as source:
        payloads = list(source.fetch_nodes(ATL_NOW))
        with pytest.raises(error, match=match) as info:
            source.parse_nodes(payloads)
    assert info.value.context["sha256"] == payloads[0].sha256  # names the archived payload it choked on
