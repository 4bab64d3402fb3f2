"""The one-call API (``hmco.lmp`` …) against the loopback replay server and a temporary local lake.

Values and times are compared with what the source's own parser gives for the same payload bytes; the
read-through is checked by counting the requests the replay server saw.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import hmco
from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.sources.caiso import parse_oasis_lmp
from hmco.sources.http import HttpOptions
from hmco.windows import Window, market_window
from tests.support.clock import FakeTime
from tests.support.replay import PAYLOADS, ReplayServer, Reply

OASIS = "/oasisapi/SingleZip"
NP15 = "TH_NP15_GEN-APND"


def _caiso(replay: ReplayServer, **kw: Any) -> dict[str, Any]:
    """Keyword arguments pointing a call at the replay server, with pacing on a fake clock."""
    time = FakeTime()
    return {
        "base_url": f"{replay.url}/oasisapi",
        "params": {"http": HttpOptions(sleep=time.sleep, clock=time.clock)},
        **kw,
    }


def _parsed(name: str, window: Window, nodes: list[str]) -> pa.Table:
    """What the CAISO parser gives for a payload file, limited to ``window`` and ``nodes``."""
    table = parse_oasis_lmp((PAYLOADS / name).read_bytes(), window=window)
    return table.filter(pc.is_in(table["node"], pa.array(nodes)))


# --- market_window ---------------------------------------------------------------------------------


def test_market_day_is_midnight_to_midnight_in_the_market_time_zone() -> None:
    assert market_window("2026-07-27", tz="America/Los_Angeles") == Window.of(
        "2026-07-27T07:00:00Z", "2026-07-28T07:00:00Z"
    )
    assert market_window(date(2026, 7, 27), tz="EST") == Window.of(
        "2026-07-27T05:00:00Z", "2026-07-28T05:00:00Z"
    )


@pytest.mark.parametrize(
    ("day", "tz", "hours"),
    [
        ("2026-11-01", "America/Los_Angeles", 25),
        ("2026-03-08", "America/Los_Angeles", 23),
        ("2026-11-01", "America/Chicago", 25),
        ("2026-03-08", "EST", 24),  # MISO: Eastern Standard Time all year, no DST day
        ("2026-11-01", "EST", 24),
    ],
)
def test_market_day_length_follows_the_zone_dst_rules(day: str, tz: str, hours: int) -> None:
    assert market_window(day, tz=tz).duration == timedelta(hours=hours)


def test_market_window_end_is_exclusive_and_aware_times_are_honoured() -> None:
    assert market_window("2026-11-01", "2026-11-03", tz="America/Chicago").duration == timedelta(hours=49)
    aware = datetime(2026, 7, 27, 12, tzinfo=UTC)
    assert market_window(aware, tz="EST").start == aware
    assert market_window("2026-07-27T08:15", tz="EST").start == datetime(2026, 7, 27, 13, 15, tzinfo=UTC)


def test_market_window_today_is_the_market_calendar_day() -> None:
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("America/Los_Angeles")).date()
    assert market_window("today", tz="America/Los_Angeles") == market_window(today, tz="America/Los_Angeles")
    assert market_window("yesterday", tz="UTC").end == market_window("today", tz="UTC").start


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2026-13-01",), "is not a date"),
        (("2026-11-02", "2026-11-01"), "is not after"),
        (("2026-11-01", None, "Mars/Olympus"), "unknown time zone"),
    ],
)
def test_market_window_rejects_bad_input_with_a_config_error(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        market_window(*args)


# --- CAISO: market days, read-through --------------------------------------------------------------


def test_caiso_fall_back_day_is_300_intervals_equal_to_the_parser(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add(OASIS, Reply.file("caiso/rt_fall_back.zip"))

    frame = hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, **_caiso(replay))

    day = market_window("2026-11-01", tz="America/Los_Angeles")
    expected = _parsed("caiso/rt_fall_back.zip", day, [NP15])
    assert frame.height == expected.num_rows == 300
    assert frame.schema["interval_start"] == pl.Datetime("us", "America/Los_Angeles")
    starts = frame["interval_start"].dt.convert_time_zone("UTC").to_list()
    assert starts == expected["ts"].to_pylist()
    assert frame["lmp"].to_list() == expected["lmp"].to_pylist()
    assert frame["congestion"].to_list() == expected["congestion"].to_pylist()
    first, last = frame.row(0, named=True), frame.row(-1, named=True)
    assert str(first["interval_start"]) == "2026-11-01 00:00:00-07:00"
    assert str(last["interval_end"]) == "2026-11-02 00:00:00-08:00"
    assert frame.columns[:6] == [
        "interval_start",
        "interval_end",
        "iso",
        "market",
        "location",
        "location_type",
    ]


def test_caiso_spring_forward_day_is_276_intervals(replay: ReplayServer, settings: Settings) -> None:
    replay.add(OASIS, Reply.file("caiso/rt_spring_forward.zip"))

    frame = hmco.lmp("caiso", "2026-03-08", nodes=NP15, settings=settings, **_caiso(replay))

    assert frame.height == 276
    local = frame["interval_start"]
    assert local.min().isoformat() == "2026-03-08T00:00:00-08:00"
    assert local.max().isoformat() == "2026-03-08T23:55:00-07:00"


def test_second_call_for_the_same_range_makes_no_request(replay: ReplayServer, settings: Settings) -> None:
    replay.add(OASIS, Reply.file("caiso/rt_fall_back.zip"))
    first = hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, **_caiso(replay))
    asked = len(replay.requests)
    assert asked > 0

    second = hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, **_caiso(replay))

    assert len(replay.requests) == asked
    assert second.equals(first)


# --- MISO: fixed-EST market days, node filter ------------------------------------------------------

FEED = "/api/MarketPricing/GetRealTimeFiveMinExPost/"
MISO_NODES = ("ARKANSAS.HUB", "ALTW.WELLS1", "EES.KRBYVLE.AZ")
JULY_27_1300_EST = datetime(2026, 7, 27, 18, 0, tzinfo=UTC)


def _miso_feed(day: date, until: timedelta = timedelta(days=1)) -> bytes:
    """A feed document in MISO's wire format: every node at every stamp of EST date ``day`` up to ``until``."""
    import json

    rows = []
    for i in range(int(until / timedelta(minutes=5))):
        stamp = datetime(day.year, day.month, day.day) + i * timedelta(minutes=5)
        for n, node in enumerate(MISO_NODES):
            lmp = 20 + n + i / 100
            rows.append(
                [stamp.isoformat(), node, f"{lmp:.2f}", f"{-0.25 * (n + 1):.2f}", f"{i % 3 / 10:.2f}"]
            )
    return json.dumps({"headers": ["INTERVAL", "CPNODE", "LMP", "MLC", "MCC"], "data": rows}).encode()


def _miso(replay: ReplayServer, now: datetime = JULY_27_1300_EST, **kw: Any) -> dict[str, Any]:
    time = FakeTime()
    http = HttpOptions(sleep=time.sleep, clock=time.clock)
    return {"base_url": f"{replay.url}/api", "params": {"http": http, "now": lambda: now}, **kw}


def _serve_miso_feeds(replay: ReplayServer) -> dict[str, bytes]:
    bodies = {
        "Previous": _miso_feed(date(2026, 7, 26)),
        "Rolling": _miso_feed(date(2026, 7, 27), until=timedelta(hours=13)),
    }
    for feed, body in bodies.items():
        replay.add(FEED + feed, Reply(body=body))
    return bodies


def test_miso_market_day_is_a_fixed_est_day_equal_to_the_parser(
    replay: ReplayServer, settings: Settings
) -> None:
    from hmco.sources.miso import parse_miso_five_min

    bodies = _serve_miso_feeds(replay)

    frame = hmco.lmp("MISO", "2026-07-26", settings=settings, **_miso(replay))

    day = Window.of("2026-07-26T05:00:00Z", "2026-07-27T05:00:00Z")
    parsed = pa.concat_tables([parse_miso_five_min(b, window=day) for b in bodies.values()])
    assert frame.height == parsed.num_rows == 288 * len(MISO_NODES)
    assert frame.schema["interval_start"] == pl.Datetime("us", "EST")
    got = {
        (r["location"], r["interval_start"].astimezone(UTC), r["lmp"], r["loss"])
        for r in frame.iter_rows(named=True)
    }
    want = {(r["node"], r["ts"], r["lmp"], r["loss"]) for r in parsed.to_pylist()}
    assert got == want
    est = frame["interval_start"].dt.strftime("%Y-%m-%d %H:%M")
    assert (est.min(), est.max()) == ("2026-07-26 00:00", "2026-07-26 23:55")


def test_nodes_filter_returns_only_those_nodes_and_other_nodes_come_from_the_lake(
    replay: ReplayServer, settings: Settings
) -> None:
    _serve_miso_feeds(replay)
    hub = hmco.lmp("MISO", "2026-07-26", nodes=["ARKANSAS.HUB"], settings=settings, **_miso(replay))
    asked = len(replay.requests)

    wells = hmco.lmp("MISO", "2026-07-26", nodes="ALTW.WELLS1", settings=settings, **_miso(replay))

    assert hub["location"].unique().to_list() == ["ARKANSAS.HUB"] and hub.height == 288
    assert wells["location"].unique().to_list() == ["ALTW.WELLS1"] and wells.height == 288
    assert len(replay.requests) == asked  # MISO feeds hold every node: the first call stored them all


def test_open_day_is_fetched_up_to_what_the_iso_has_published_then_topped_up(
    replay: ReplayServer, settings: Settings
) -> None:
    _serve_miso_feeds(replay)
    early = hmco.lmp(
        "MISO", "2026-07-27", settings=settings, **_miso(replay, now=datetime(2026, 7, 27, 15, tzinfo=UTC))
    )
    # 10:00 EST less MISO's 5-minute publication lag: intervals starting before 09:55
    assert early["interval_start"].max().isoformat() == "2026-07-27T09:50:00-05:00"
    asked = len(replay.requests)

    later = hmco.lmp("MISO", "2026-07-27", settings=settings, **_miso(replay, now=JULY_27_1300_EST))

    assert len(replay.requests) > asked  # the newly published intervals were fetched, not read as complete
    assert later["interval_start"].max().isoformat() == "2026-07-27T12:50:00-05:00"
    assert later.height == len(MISO_NODES) * (12 * 12 + 11)


# --- series: FRED end to end -----------------------------------------------------------------------

OBS = "/fred/series/observations"
FAKE_FRED_KEY = "fakefredkey0000000000000000test0"


def _fred_settings(settings: Settings) -> Settings:
    return Settings.load(
        home=settings.home,
        clickhouse=settings.clickhouse.model_dump(),
        sources={"fred_api_key": FAKE_FRED_KEY},
    )


def _fred(replay: ReplayServer) -> dict[str, Any]:
    time = FakeTime()
    return {
        "base_url": f"{replay.url}/fred/",
        "params": {"http": HttpOptions(sleep=time.sleep, clock=time.clock)},
    }


def test_fred_series_is_read_through_the_lake(replay: ReplayServer, settings: Settings) -> None:
    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"))
    keyed = _fred_settings(settings)

    frame = hmco.fred("DCOILWTICO", "2024-07-01", "2024-07-08", settings=keyed, **_fred(replay))
    again = hmco.fred(["dcoilwtico"], "2024-07-02", "2024-07-05", settings=keyed, **_fred(replay))

    assert [r.param("series_id") for r in replay.requests] == ["DCOILWTICO"]  # one request, then the lake
    assert frame["value"].to_list() == [83.38, 82.84, 83.88, None, 83.16]
    assert frame["ts"].dt.date().to_list() == [date(2024, 7, d) for d in range(1, 6)]
    assert again["value"].to_list() == [82.84, 83.88, None]


def test_windows_the_shipped_pipeline_committed_serve_a_call_for_part_of_its_selection(
    replay: ReplayServer, settings: Settings
) -> None:
    from hmco.frames.reader import shipped_spec

    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"))
    keyed = _fred_settings(settings)
    spec = shipped_spec("fred")
    assert spec is not None
    spec["source"]["base_url"] = f"{replay.url}/fred/"
    spec["source"]["params"]["http"] = _fred(replay)["params"]["http"]
    hmco.build_pipeline(spec, lake=Lake(keyed)).run(Window.of("2024-07-01", "2024-07-08"))
    asked = len(replay.requests)
    assert asked == 4 * 7  # the scheduled job: four series, one window a day

    frame = hmco.fred("DHHNGSP", "2024-07-01", "2024-07-08", settings=keyed, **_fred(replay))

    assert len(replay.requests) == asked
    assert frame["series_id"].unique().to_list() == ["DHHNGSP"] and frame.height == 5


# --- output and errors -----------------------------------------------------------------------------


def test_pandas_true_returns_a_pandas_frame_with_tz_aware_times(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add(OASIS, Reply.file("caiso/rt_fall_back.zip"))

    frame = hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, pandas=True, **_caiso(replay))

    import pandas as pd

    assert isinstance(frame, pd.DataFrame) and len(frame) == 300
    assert str(frame["interval_start"].dt.tz) == "America/Los_Angeles"
    assert frame["interval_start"].iloc[0] == pd.Timestamp("2026-11-01 00:00", tz="America/Los_Angeles")


def test_tz_argument_reads_dates_and_shows_times_in_that_zone(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add(OASIS, Reply.file("caiso/rt_fall_back.zip"))  # holds the Pacific trade date only

    frame = hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], tz="UTC", settings=settings, **_caiso(replay))

    assert replay.requests[0].param("startdatetime") == "20261101T00:00-0000"  # the UTC day was asked for
    assert frame.schema["interval_start"] == pl.Datetime("us", "UTC")
    assert frame["interval_start"].min().isoformat() == "2026-11-01T07:00:00+00:00"
    assert frame.height == 17 * 12  # 07:00-24:00 UTC: the part of the UTC day the payload holds


def test_unknown_iso_names_the_known_ones(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown ISO 'ERCOTT'; known ISOs: CAISO, MISO, SPP"):
        hmco.lmp("ERCOTT", "2026-11-01", settings=settings)


def test_unknown_market_names_the_markets_of_that_iso(settings: Settings) -> None:
    with pytest.raises(
        ConfigError, match=r"MISO has no market 'day_ahead_hourly'; choose one of \['real_time_5_min'\]"
    ):
        hmco.lmp("MISO", "2026-07-26", market="day_ahead_hourly", settings=settings)


def _with_lmp(name: str, node: str, value: str) -> bytes:
    """An OASIS zip from ``name`` whose LMP rows of ``node`` carry ``value`` (same wire format)."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(PAYLOADS / name) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            lines = src.read(info).decode().splitlines()
            header = lines[0].split(",")
            at = {c: header.index(c) for c in ("NODE", "LMP_TYPE", "VALUE")}
            for i, line in enumerate(lines[1:], 1):
                cells = line.split(",")
                if cells[at["NODE"]] == node and cells[at["LMP_TYPE"]] == "LMP":
                    cells[at["VALUE"]] = value
                    lines[i] = ",".join(cells)
            dst.writestr(info, "\n".join(lines) + "\n")
    return out.getvalue()


def test_gate_failure_names_the_window_and_where_the_batch_is_kept(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add(
        OASIS,
        Reply(
            body=_with_lmp("caiso/rt_fall_back.zip", NP15, "99999.0"),
            content_type="application/x-zip-compressed",
        ),
    )

    with pytest.raises(hmco.QualityGateFailed) as info:
        hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, **_caiso(replay))

    message = str(info.value)
    assert "rt_lmp window [2026-11-01T07:00:00+00:00, 2026-11-02T00:00:00+00:00)" in message
    assert "nothing was published" in message and "_quarantine/rt_lmp/" in message


def test_a_window_that_failed_its_gate_is_fetched_again_by_the_next_call(
    replay: ReplayServer, settings: Settings
) -> None:
    bad = _with_lmp("caiso/rt_fall_back.zip", NP15, "99999.0")
    replay.add(OASIS, Reply(body=bad, content_type="application/x-zip-compressed"))
    with pytest.raises(hmco.QualityGateFailed):
        hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, **_caiso(replay))
    replay.routes.clear()  # CAISO now serves good prices
    replay.add(OASIS, Reply.file("caiso/rt_fall_back.zip"))

    frame = hmco.lmp("CAISO", "2026-11-01", nodes=[NP15], settings=settings, **_caiso(replay))

    assert frame.height == 300 and frame["lmp"].max() < 1000


# --- series: a selection outside the shipped one never replaces other selections' rows --------------


def _observations(station: str) -> bytes:
    """api.weather.gov observations of ``station`` (the KSUA page re-labelled, one page, no cursor)."""
    import json

    doc = json.loads((PAYLOADS / "noaa/obs_ksua_page2.json").read_bytes())
    doc.pop("pagination", None)
    for feature in doc["features"]:
        feature["properties"]["stationId"] = station
        feature["properties"]["station"] = f"https://api.weather.gov/stations/{station}"
    return json.dumps(doc).encode()


def test_noaa_stations_outside_the_shipped_list_keep_each_others_rows(
    replay: ReplayServer, settings: Settings
) -> None:
    for station in ("KSUA", "KBOS"):
        replay.add(f"/stations/{station}/observations", Reply(body=_observations(station)))
    time = FakeTime()
    kw: dict[str, Any] = {
        "settings": settings,
        "base_url": replay.url,
        "params": {"http": HttpOptions(sleep=time.sleep, clock=time.clock)},
    }
    ksua = hmco.noaa("KSUA", "2021-11-07", **kw)
    boston = hmco.noaa(["kbos"], "2021-11-07", **kw)
    asked = len(replay.requests)

    again = hmco.noaa("KSUA", "2021-11-07", **kw)

    assert ksua.height == boston.height == 2
    assert boston["station"].unique().to_list() == ["KBOS"]
    assert len(replay.requests) == asked
    assert again.equals(ksua)  # storing KBOS's window did not replace KSUA's rows


# --- node catalogues -------------------------------------------------------------------------------


def test_nodes_come_from_the_iso_node_list_and_are_kept_in_the_lake(
    replay: ReplayServer, settings: Settings
) -> None:
    node_list = "/marketreports/20260727_da_expost_lmp.csv"
    replay.add(node_list, Reply.file("miso/da_expost_lmp_20260727.csv", content_type="text/csv"))
    kw: dict[str, Any] = {
        "settings": settings,
        "base_url": f"{replay.url}/api",
        "params": {
            "reports_url": f"{replay.url}/marketreports",
            "http": {"min_interval": 0},
            "now": lambda: JULY_27_1300_EST,
            "as_of": JULY_27_1300_EST,
        },
    }

    hubs = hmco.nodes("MISO", kind="hub", **kw)
    everything = hmco.nodes("miso", **kw)

    assert hubs["location"].to_list() == ["ARKANSAS.HUB", "INDIANA.HUB"]
    assert set(hubs["location_type"]) == {"Hub"}
    assert everything.columns[:2] == ["location", "location_type"] and everything.height > hubs.height
    assert len(replay.requests_to(node_list)) == 1  # the second call read the archived list


def test_eia_route_names_and_facets_select_what_is_fetched_and_returned(
    replay: ReplayServer, settings: Settings
) -> None:
    path = "/v2/electricity/rto/daily-fuel-type-data/data/"
    replay.add(path, Reply.file("eia/daily_fuel_2024-07-01.json"))
    keyed = Settings.load(
        home=settings.home,
        clickhouse=settings.clickhouse.model_dump(),
        sources={"eia_api_key": "hmco-fake-eia-key-0000"},
    )
    time = FakeTime()
    kw: dict[str, Any] = {
        "settings": keyed,
        "base_url": f"{replay.url}/v2/",
        "params": {"http": HttpOptions(sleep=time.sleep, clock=time.clock)},
    }

    mix = hmco.eia("daily_fuel", "2024-07-01", respondents=["CISO", "ERCO"], **kw)
    again = hmco.eia("electricity/rto/daily-fuel-type-data", "2024-07-01", respondents="ciso,erco", **kw)

    (request,) = replay.requests_to(path)
    assert sorted(v for k, v in request.params if k == "facets[respondent][]") == ["CISO", "ERCO"]
    assert mix.height == 8 and set(mix["region"]) == {"CISO", "ERCO"}
    assert again.equals(mix)


def test_refresh_fetches_the_range_again(replay: ReplayServer, settings: Settings) -> None:
    replay.add(OASIS, Reply.file("caiso/rt_spring_forward.zip"))
    hmco.lmp("CAISO", "2026-03-08", nodes=[NP15], settings=settings, **_caiso(replay))
    asked = len(replay.requests)

    frame = hmco.lmp("CAISO", "2026-03-08", nodes=[NP15], settings=settings, refresh=True, **_caiso(replay))

    assert len(replay.requests) == 2 * asked and frame.height == 276


def test_caiso_day_ahead_market_reads_da_lmp(replay: ReplayServer, settings: Settings) -> None:
    replay.add(OASIS, Reply.file("caiso/da_sample.zip"))

    frame = hmco.lmp(
        "CAISO",
        "2022-02-01",
        market="day_ahead_hourly",
        nodes="0096WD_7_N001",
        settings=settings,
        **_caiso(replay),
    )

    assert {r.param("market_run_id") for r in replay.requests} == {"DAM"}
    assert frame["market"].unique().to_list() == ["DAH"]
    first = frame.row(0, named=True)
    assert (first["interval_start"].isoformat(), first["lmp"]) == ("2022-02-01T07:00:00-08:00", 74.63)
    assert frame["interval_end"][0] - frame["interval_start"][0] == timedelta(hours=1)
