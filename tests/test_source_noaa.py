"""NOAA source end to end against the replay server: fetch → payloads → parse → canonical rows.

CDO error bodies are reconstructions (the reference only pins the ``{"status", "message"}`` JSON shape
and says token errors are plain text), see tests/payloads/noaa/README.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hmco.config import Settings
from hmco.errors import AuthenticationError, PayloadError, RateLimited, RequestRejected, SchemaDriftError
from hmco.schemas import get_dataset
from hmco.sources.base import RawPayload
from hmco.sources.http import HttpOptions
from hmco.sources.noaa import NOAA
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply

TOKEN = "fake-noaa-test-token-0001"
AGENT = "hmco-tests (tests@example.invalid)"
OBS_PATH = "/stations/KSUA/observations"


@dataclass
class Timeline:
    """A fake clock for the host pacer; the client's injected ``sleep`` advances it and records each
    wait (pacing and retry back-off alike), so no test sleeps for real."""

    now: float = 0.0
    waits: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def timeline(replay: ReplayServer) -> Timeline:
    return Timeline()


@pytest.fixture
def noaa_settings(tmp_path: Path) -> Settings:
    return Settings.load(home=tmp_path / "hmco", sources={"noaa_token": TOKEN, "user_agent": AGENT})


def cdo(
    replay: ReplayServer,
    settings: Settings,
    timeline: Timeline,
    *,
    http: dict[str, Any] | None = None,
    **kwargs: object,
) -> NOAA:
    kwargs.setdefault("stations", ["GHCND:USW00094728"])
    options = HttpOptions(**{"min_interval": 0.0, **(http or {})}, sleep=timeline.sleep, clock=timeline.clock)
    return NOAA(
        "noaa_ghcnd_daily",
        settings=settings,
        base_url=replay.url,
        http=options,
        **kwargs,  # type: ignore[arg-type]
    )


def obs(replay: ReplayServer, settings: Settings, timeline: Timeline, **kwargs: object) -> NOAA:
    kwargs.setdefault("stations", ["KSUA"])
    return NOAA(
        "noaa_observations",
        settings=settings,
        weather_base_url=replay.url,
        http=HttpOptions(min_interval=0.0, sleep=timeline.sleep, clock=timeline.clock),
        **kwargs,  # type: ignore[arg-type]
    )


def run(source: NOAA, window: Window) -> tuple[list[RawPayload], pa.Table]:
    payloads = list(source.fetch(window))
    tables = [source.parse(p) for p in payloads]
    return payloads, pa.concat_tables(tables) if tables else get_dataset(
        source.dataset.name
    ).schema.empty_table()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def cdo_page(offset: int, count: int, limit: int = 1000) -> bytes:
    """A CDO /data page in the wire format (generated: 1000-row pages are too big to commit)."""
    n = min(limit, count - offset + 1)
    results = [
        {
            "date": f"2024-{1 + (offset + i - 1) // 31 % 12:02d}-{1 + (offset + i - 1) % 28:02d}T00:00:00",
            "datatype": "TMAX",
            "station": f"GHCND:USW{(offset + i - 1) // 336:08d}",
            "attributes": ",,W,",
            "value": round((offset + i) / 10, 1),
        }
        for i in range(n)
    ]
    return json.dumps(
        {"metadata": {"resultset": {"offset": offset, "count": count, "limit": limit}}, "results": results}
    ).encode()


# ---------------------------------------------------------------------------------------------
# CDO v2 /data (GHCN-Daily)
# ---------------------------------------------------------------------------------------------


def test_ghcnd_page_parses_to_exact_rows(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_data_usw00094728_metric.json"))
    _, table = run(cdo(replay, noaa_settings, timeline), Window.of("2024-01-14", "2024-01-16"))

    assert table.schema.equals(get_dataset("noaa_ghcnd_daily").schema)
    rows = table.to_pylist()
    assert len(rows) == 7
    assert rows[0] == {
        "ts": utc(2024, 1, 14),
        "station": "GHCND:USW00094728",
        "datatype": "PRCP",
        "value": 0.0,
        "units": "mm",
        "mflag": None,
        "qflag": None,
        "sflag": "W",
        "obs_time": "2400",
    }
    assert [(r["datatype"], r["value"], r["units"]) for r in rows[1:3]] == [
        ("TMAX", 3.9, "degC"),
        ("TMIN", -6.6, "degC"),
    ]
    assert rows[3]["mflag"] == "T"  # trace precipitation
    assert rows[6]["qflag"] == "I" and rows[6]["ts"] == utc(2024, 1, 15)


def test_ghcnd_request_carries_dataset_stations_datatypes_and_units(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_empty.json"))
    source = cdo(
        replay, noaa_settings, timeline, stations=["USW00094728", "GHCND:USC00200230"], datatypes="tmax,TMIN"
    )
    list(source.fetch(Window.of("2024-01-14", "2024-01-16")))

    (req,) = replay.requests_to("/data")
    assert req.param("datasetid") == "GHCND"
    assert [v for k, v in req.params if k == "stationid"] == ["GHCND:USW00094728", "GHCND:USC00200230"]
    assert [v for k, v in req.params if k == "datatypeid"] == ["TMAX", "TMIN"]
    assert (req.param("startdate"), req.param("enddate")) == ("2024-01-14", "2024-01-15")
    assert (req.param("units"), req.param("limit"), req.param("offset")) == ("metric", "1000", "1")


def test_ghcnd_walks_pages_with_one_based_offsets(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    for offset in (1, 1001, 2001):
        replay.add("/data", Reply(body=cdo_page(offset, 2003)), match={"offset": str(offset)})
    payloads, table = run(cdo(replay, noaa_settings, timeline), Window.of("2024-01-01", "2025-01-01"))

    assert [r.param("offset") for r in replay.requests_to("/data")] == ["1", "1001", "2001"]
    assert [p.page for p in payloads] == [0, 1, 2]
    assert [p.meta["offset"] for p in payloads] == [1, 1001, 2001]
    assert table.num_rows == 2003
    assert table.column("value").to_pylist()[-1] == 200.3


def test_ghcnd_two_year_window_is_one_request_per_year(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(
        "/data", Reply.file("noaa/cdo_data_usw00094728_metric.json"), match={"startdate": "2024-01-01"}
    )
    replay.add("/data", Reply.file("noaa/cdo_empty.json"))
    payloads, table = run(cdo(replay, noaa_settings, timeline), Window.of("2023-01-01", "2025-01-01"))

    spans = [(r.param("startdate"), r.param("enddate")) for r in replay.requests_to("/data")]
    assert spans == [("2023-01-01", "2023-12-31"), ("2024-01-01", "2024-12-31")]
    assert [p.window for p in payloads] == [
        Window.of("2023-01-01", "2024-01-01"),
        Window.of("2024-01-01", "2025-01-01"),
    ]
    assert table.num_rows == 7


def test_ghcnd_window_without_a_whole_day_makes_no_request(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    payloads = list(
        cdo(replay, noaa_settings, timeline).fetch(Window.of("2024-01-14T01:00", "2024-01-14T23:00"))
    )
    assert payloads == [] and replay.requests == []


def test_ghcnd_units_omitted_keeps_raw_tenths(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_data_usc00200230_raw.json"))
    source = cdo(replay, noaa_settings, timeline, stations=["GHCND:USC00200230"], units=None)
    _, table = run(source, Window.of("2013-09-03", "2013-10-01"))

    assert replay.requests_to("/data")[0].param("units") is None
    assert table.column("value").to_pylist() == [0.0, 8.0, 0.0]
    assert set(table.column("units").to_pylist()) == {"tenths_mm"}
    assert table.column("ts").to_pylist() == [utc(2013, 9, 3), utc(2013, 9, 7), utc(2013, 9, 13)]
    assert table.column("obs_time").to_pylist() == ["1800"] * 3


def test_ghcnd_empty_object_is_empty_table(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_empty.json"))
    payloads, table = run(cdo(replay, noaa_settings, timeline), Window.of("2024-01-14", "2024-01-16"))
    assert len(payloads) == 1
    assert table.num_rows == 0 and table.schema.equals(get_dataset("noaa_ghcnd_daily").schema)


def test_ghcnd_http_204_is_empty_table(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply(status=204, body=b""))
    payloads, table = run(cdo(replay, noaa_settings, timeline), Window.of("2024-01-14", "2024-01-16"))
    assert [p.status for p in payloads] == [204]
    assert table.num_rows == 0


def test_ghcnd_missing_token_raises_before_any_request(
    replay: ReplayServer, tmp_path: Path, timeline: Timeline
) -> None:
    settings = Settings.load(home=tmp_path / "hmco")
    with pytest.raises(AuthenticationError, match="HMCO_SOURCES__NOAA_TOKEN"):
        list(cdo(replay, settings, timeline).fetch(Window.of("2024-01-14", "2024-01-16")))
    assert replay.requests == []


def test_ghcnd_token_is_sent_but_stored_redacted(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_data_usw00094728_metric.json"))
    (payload,) = cdo(replay, noaa_settings, timeline).fetch(Window.of("2024-01-14", "2024-01-16"))

    assert replay.requests[0].headers["token"] == TOKEN
    assert payload.headers["token"] == "***"
    assert TOKEN not in json.dumps(payload.describe())
    assert TOKEN.encode() not in payload.body


def test_ghcnd_invalid_token_plain_text_is_authentication_error(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_error_token_invalid.txt", status=400, content_type="text/plain"))
    with pytest.raises(AuthenticationError, match="Token parameter is invalid") as err:
        list(cdo(replay, noaa_settings, timeline).fetch(Window.of("2024-01-14", "2024-01-16")))
    assert TOKEN not in str(err.value)


def test_ghcnd_date_range_error_is_request_rejected(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_error_400_date_range.json", status=400))
    with pytest.raises(RequestRejected, match=r"less than 1 year.*at most one year"):
        list(cdo(replay, noaa_settings, timeline).fetch(Window.of("2024-01-14", "2024-01-16")))


def test_ghcnd_bad_datatype_error_is_request_rejected(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_error_400_bad_datatype.json", status=400))
    with pytest.raises(RequestRejected, match="TMAXX"):
        list(
            cdo(replay, noaa_settings, timeline, datatypes=["TMAXX"]).fetch(
                Window.of("2024-01-14", "2024-01-16")
            )
        )


def test_ghcnd_429_then_success_waits_retry_after(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(
        "/data",
        Reply.file("noaa/cdo_error_429_per_second.json", status=429, **{"Retry-After": "2"}),
        Reply.file("noaa/cdo_data_usw00094728_metric.json"),
    )
    _, table = run(cdo(replay, noaa_settings, timeline), Window.of("2024-01-14", "2024-01-16"))

    assert len(replay.requests_to("/data")) == 2
    assert timeline.waits == [2.0]
    assert table.num_rows == 7


def test_ghcnd_daily_quota_is_rate_limited_until_reset(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_error_429_per_day.json", status=429))
    with pytest.raises(RateLimited, match="10,000 requests/day") as err:
        list(
            cdo(replay, noaa_settings, timeline, http={"max_attempts": 2}).fetch(
                Window.of("2024-01-14", "2024-01-16")
            )
        )
    assert len(replay.requests_to("/data")) == 2
    assert err.value.retry_after is not None and 0 < err.value.retry_after <= 86400


def test_ghcnd_requests_are_paced_five_per_second(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    for offset in (1, 1001, 2001):
        replay.add("/data", Reply(body=cdo_page(offset, 2500)), match={"offset": str(offset)})
    source = cdo(replay, noaa_settings, timeline, http={"min_interval": None})
    list(source.fetch(Window.of("2024-01-01", "2024-02-01")))

    assert source.min_interval == 0.2
    assert timeline.waits == [0.2, 0.2]


def test_ghcnd_truncated_body_is_payload_error(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_truncated.json"))
    source = cdo(replay, noaa_settings, timeline)
    with pytest.raises(PayloadError, match="cannot be decoded"):
        run(source, Window.of("2024-01-14", "2024-01-16"))


def test_ghcnd_archived_payload_replays_to_same_rows(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_data_usc00200230_raw.json"))
    source = cdo(replay, noaa_settings, timeline, units=None)
    (payload,) = source.fetch(Window.of("2013-09-03", "2013-10-01"))
    restored = RawPayload.from_description(json.loads(json.dumps(payload.describe())), payload.body)
    assert source.parse(restored).equals(source.parse(payload))


# ---------------------------------------------------------------------------------------------
# api.weather.gov observations
# ---------------------------------------------------------------------------------------------

OBS_WINDOW = Window.of("2021-11-07T18:00:00", "2021-11-07T21:00:00")


def add_ksua_pages(replay: ReplayServer) -> None:
    replay.add(
        OBS_PATH,
        Reply.file("noaa/obs_ksua_page2.json"),
        match={"cursor": "eyJ0IjoiMjAyMS0xMS0wN1QxOTo1MzowMCswMDowMCJ9"},
    )
    replay.add(
        OBS_PATH,
        Reply.file("noaa/obs_ksua_page3_empty.json"),
        match={"cursor": "eyJ0IjoiMjAyMS0xMS0wN1QxODo1MDowMCswMDowMCJ9"},
    )
    replay.add(OBS_PATH, Reply.file("noaa/obs_ksua_page1.json", content_type="application/geo+json"))


def test_observations_follow_cursor_on_configured_base(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    add_ksua_pages(replay)
    payloads = list(obs(replay, noaa_settings, timeline, page_size=3).fetch(OBS_WINDOW))

    reqs = replay.requests_to(OBS_PATH)
    assert len(reqs) == 3 and len(payloads) == 3  # stops at the empty third page
    assert (reqs[0].param("start"), reqs[0].param("end"), reqs[0].param("limit")) == (
        "2021-11-07T18:00:00Z",
        "2021-11-07T21:00:00Z",
        "3",
    )
    assert reqs[0].param("cursor") is None
    assert [r.param("cursor") for r in reqs[1:]] == [
        "eyJ0IjoiMjAyMS0xMS0wN1QxOTo1MzowMCswMDowMCJ9",
        "eyJ0IjoiMjAyMS0xMS0wN1QxODo1MDowMCswMDowMCJ9",
    ]
    assert all(p.url.startswith(replay.url) for p in payloads)
    assert [p.page for p in payloads] == [0, 1, 2]


def test_observations_parse_to_exact_utc_rows(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    add_ksua_pages(replay)
    _, table = run(obs(replay, noaa_settings, timeline, page_size=3), OBS_WINDOW)

    assert table.schema.equals(get_dataset("noaa_observations").schema)
    # 21:00 is the window's (exclusive) end and is dropped; 14:53-05:00 is 19:53Z
    assert table.column("ts").to_pylist() == [
        utc(2021, 11, 7, 20, 53),
        utc(2021, 11, 7, 19, 53),
        utc(2021, 11, 7, 18, 53),
        utc(2021, 11, 7, 18, 50),
    ]
    last = table.to_pylist()[-1]
    assert last == {
        "ts": utc(2021, 11, 7, 18, 50),
        "station": "KSUA",
        "temperature_c": 21.0,
        "dewpoint_c": 11.0,
        "relative_humidity": 52.5,
        "wind_direction_deg": 340.0,
        "wind_speed_kmh": 22.32,
        "wind_gust_kmh": 38.88,
        "barometric_pressure_pa": 101520.0,
        "sea_level_pressure_pa": None,
        "visibility_m": 16090.0,
        "precipitation_last_hour_mm": None,
        "text_description": "Mostly Clear",
        "raw_message": "KSUA 071850Z 34012G21KT 10SM FEW075 21/11 A2998",
    }


def test_observations_qc_rejected_values_are_null(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(OBS_PATH, Reply.file("noaa/obs_ksua_page2.json"))
    _, table = run(obs(replay, noaa_settings, timeline), OBS_WINDOW)
    row = table.to_pylist()[0]
    assert row["ts"] == utc(2021, 11, 7, 18, 53)
    assert row["temperature_c"] is None  # qualityControl "X"
    assert row["precipitation_last_hour_mm"] == 0.3


def test_observations_legacy_unit_codes_are_converted(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    path = "/stations/KMSP/observations"
    replay.add(path, Reply.file("noaa/obs_kmsp_legacy_units.json"))
    source = obs(replay, noaa_settings, timeline, stations=["KMSP"])
    payloads, table = run(source, Window.of("2019-03-29T15:00", "2019-03-29T17:00"))

    assert len(payloads) == 1  # no pagination member: done
    rows = table.to_pylist()
    assert [r["station"] for r in rows] == ["KMSP", "KMSP"]  # from the station URL (no stationId)
    assert [r["wind_speed_kmh"] for r in rows] == [22.32, 18.36]  # unit:m_s-1 → km/h
    assert [r["wind_gust_kmh"] for r in rows] == [38.88, None]
    assert rows[0]["precipitation_last_hour_mm"] == 2.5  # unit:m → mm
    assert (rows[0]["temperature_c"], rows[0]["dewpoint_c"], rows[0]["relative_humidity"]) == (
        8.3,
        -7.2,
        33.2,
    )
    assert rows[0]["sea_level_pressure_pa"] == 101860.0


def test_observations_unknown_unit_code_is_schema_drift(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(OBS_PATH, Reply.file("noaa/obs_unknown_unit_code.json"))
    with pytest.raises(SchemaDriftError, match=r"windSpeed.*ft_s-1"):
        run(obs(replay, noaa_settings, timeline), OBS_WINDOW)


def test_observations_send_the_configured_user_agent(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(OBS_PATH, Reply.file("noaa/obs_ksua_page3_empty.json"))
    list(obs(replay, noaa_settings, timeline).fetch(OBS_WINDOW))
    assert replay.requests[0].headers["user-agent"] == AGENT
    assert replay.requests[0].headers["accept"] == "application/geo+json"
    assert "token" not in replay.requests[0].headers


def test_observations_without_user_agent_raise_before_any_request(
    replay: ReplayServer, tmp_path: Path, timeline: Timeline
) -> None:
    settings = Settings.load(home=tmp_path / "hmco", sources={"user_agent": " "})
    with pytest.raises(AuthenticationError, match="User-Agent"):
        list(obs(replay, settings, timeline).fetch(OBS_WINDOW))
    assert replay.requests == []


def test_observations_429_then_success_honours_retry_after(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(
        OBS_PATH,
        Reply.file(
            "noaa/problem_429.json",
            status=429,
            content_type="application/problem+json",
            **{"Retry-After": "5"},
        ),
        Reply.file("noaa/obs_kmsp_legacy_units.json"),
    )
    payloads = list(obs(replay, noaa_settings, timeline).fetch(OBS_WINDOW))
    assert len(replay.requests_to(OBS_PATH)) == 2
    assert timeline.waits == [5.0]
    assert [p.status for p in payloads] == [200]


def test_observations_404_problem_is_request_rejected(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(
        OBS_PATH,
        Reply.file("noaa/problem_404_station.json", status=404, content_type="application/problem+json"),
    )
    with pytest.raises(RequestRejected, match="Station KXXX not found") as err:
        list(obs(replay, noaa_settings, timeline).fetch(OBS_WINDOW))
    assert err.value.context["correlation_id"] == "6f2a7c1e"


def test_observations_400_problem_names_the_parameter(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(
        OBS_PATH,
        Reply.file("noaa/problem_400_parameters.json", status=400, content_type="application/problem+json"),
    )
    with pytest.raises(RequestRejected, match=r"start: Does not match format"):
        list(obs(replay, noaa_settings, timeline).fetch(OBS_WINDOW))


def test_observations_403_html_is_authentication_error(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(OBS_PATH, Reply.file("noaa/access_denied_403.html", status=403))
    with pytest.raises(AuthenticationError, match="User-Agent"):
        list(obs(replay, noaa_settings, timeline).fetch(OBS_WINDOW))


def test_observations_empty_collection_is_empty_table(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(OBS_PATH, Reply.file("noaa/obs_ksua_page3_empty.json"))
    payloads, table = run(obs(replay, noaa_settings, timeline), OBS_WINDOW)
    assert len(payloads) == 1
    assert table.num_rows == 0 and table.schema.equals(get_dataset("noaa_observations").schema)


# --- every answer is yielded before it is judged (so the pipeline archives it first) ---------------


def test_ghcnd_error_answer_is_yielded_before_it_is_raised(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add("/data", Reply.file("noaa/cdo_error_400_bad_datatype.json", status=400))
    source = cdo(replay, noaa_settings, timeline, datatypes=["TMAXX"])
    fetch = source.fetch(Window.of("2024-01-14", "2024-01-16"))

    payload = next(fetch)
    assert payload.status == 400
    with pytest.raises(RequestRejected, match="TMAXX"):
        next(fetch)
    with pytest.raises(RequestRejected, match="TMAXX"):
        source.parse(payload)


def test_observations_error_answer_is_yielded_before_it_is_raised(
    replay: ReplayServer, noaa_settings: Settings, timeline: Timeline
) -> None:
    replay.add(
        OBS_PATH,
        Reply.file("noaa/problem_404_station.json", status=404, content_type="application/problem+json"),
    )
    source = obs(replay, noaa_settings, timeline)
    fetch = source.fetch(OBS_WINDOW)

    payload = next(fetch)
    assert payload.status == 404
    with pytest.raises(RequestRejected, match="Station KXXX not found"):
        next(fetch)
    with pytest.raises(RequestRejected, match="Station KXXX not found"):
        source.parse(payload)
