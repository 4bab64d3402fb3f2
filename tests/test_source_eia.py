"""EIA API v2 client, end to end against the replay server: fetch -> payloads -> parse -> canonical table."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hmco.config import Settings
from hmco.errors import AuthenticationError, ConfigError, NoData, PayloadError, RequestRejected
from hmco.schemas import get_dataset
from hmco.sources.base import RawPayload, get_source_class
from hmco.sources.eia import EIA, parse_eia
from hmco.sources.http import HttpOptions
from hmco.windows import Window
from tests.support.clock import FakeTime
from tests.support.replay import PAYLOADS, ReplayServer, Reply

FAKE_KEY = "hmco-fake-eia-key-0000"  # the key the fixtures echo; it must never survive into a payload
DAILY = "/v2/electricity/rto/daily-fuel-type-data/data/"
HOURLY = "/v2/electricity/rto/fuel-type-data/data/"
REGION = "/v2/electricity/rto/region-data/data/"
NG_SPOT = "/v2/natural-gas/pri/fut/data/"
OIL_SPOT = "/v2/petroleum/pri/spt/data/"


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def eia_settings(tmp_path: Path) -> Settings:
    return Settings.load(home=tmp_path / "hmco", sources={"eia_api_key": FAKE_KEY})


def make(
    replay: ReplayServer, settings: Settings, fake_time: FakeTime, dataset: str | None = None, **kw: Any
) -> EIA:
    return EIA(
        dataset,
        settings=settings,
        base_url=f"{replay.url}/v2/",
        http=HttpOptions(sleep=fake_time.sleep, clock=fake_time.clock, backoff=0.5),
        **kw,
    )


def run(source: EIA, window: Window) -> tuple[list[RawPayload], pa.Table]:
    payloads = list(source.fetch(window))
    tables = [source.parse(p) for p in payloads]
    return payloads, pa.concat_tables(tables)


def rows_by(table: pa.Table, *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in table.to_pylist()}


# --- datasets, times and values --------------------------------------------------------------------


def test_daily_fuel_rows_are_utc_midnight_of_the_period_with_values(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/daily_fuel_2024-07-01.json"))
    src = make(replay, eia_settings, fake_time, respondents=["CISO", "ERCO"])
    payloads, table = run(src, Window.day("2024-07-01"))

    assert len(payloads) == 1
    assert table.schema.equals(get_dataset("eia_daily_fuel").schema)
    assert table.num_rows == 8
    assert set(table.column("ts").to_pylist()) == {utc(2024, 7, 1)}
    rows = rows_by(table, "region", "series", "timezone")
    assert rows["CISO", "NG", "Eastern"]["value"] == 210344.0
    assert rows["CISO", "NG", "Pacific"]["value"] == 204871.0
    assert rows["CISO", "NG", "Pacific"]["region_name"] == "California Independent System Operator"
    assert rows["ERCO", "WND", "Central"]["series_name"] == "Wind"
    assert rows["ERCO", "WND", "Central"]["units"] == "megawatthours"
    assert rows["CISO", "PS", "Pacific"]["value"] == -412.0


def test_na_value_string_becomes_null(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/daily_fuel_2024-07-01.json"))
    _, table = run(make(replay, eia_settings, fake_time), Window.day("2024-07-01"))
    assert rows_by(table, "region", "series", "timezone")["CISO", "OTH", "Pacific"]["value"] is None


def test_daily_request_sends_key_facets_period_bounds_sort_and_paging_as_query_params(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/daily_fuel_2024-07-01.json"))
    src = make(replay, eia_settings, fake_time, respondents=["CISO", "ERCO"], timezones="Pacific")
    list(src.fetch(Window.day("2024-07-01")))

    (req,) = replay.requests
    assert "x-api-key" not in req.headers
    assert req.param("api_key") == FAKE_KEY
    assert req.param("frequency") == "daily"
    assert req.param("data[0]") == "value"
    assert [v for k, v in req.params if k == "facets[respondent][]"] == ["CISO", "ERCO"]
    assert [v for k, v in req.params if k == "facets[timezone][]"] == ["Pacific"]
    assert (req.param("start"), req.param("end")) == ("2024-07-01", "2024-07-01")
    sort = [(req.param(f"sort[{i}][column]"), req.param(f"sort[{i}][direction]")) for i in range(4)]
    assert sort == [("period", "asc"), ("respondent", "asc"), ("fueltype", "asc"), ("timezone", "asc")]
    assert (req.param("offset"), req.param("length")) == ("0", "5000")


def test_api_key_is_redacted_from_archived_body_url_params_and_description(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/daily_fuel_2024-07-01.json"))
    (payload,) = list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))

    assert FAKE_KEY.encode() in (PAYLOADS / "eia/daily_fuel_2024-07-01.json").read_bytes()  # EIA echoes it
    assert FAKE_KEY.encode() not in payload.body
    assert b'"api_key":"***"' in payload.body
    assert FAKE_KEY not in payload.url
    assert payload.params["api_key"] == "***"
    assert FAKE_KEY not in json.dumps(payload.describe())


def test_hourly_periods_are_utc_hour_ending(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(HOURLY, Reply.file("eia/hourly_fuel_2024-03-10.json"))
    src = make(replay, eia_settings, fake_time, "eia_hourly_fuel", respondents="CISO")
    _, table = run(src, Window.day("2024-03-10"))

    (req,) = replay.requests
    # intervals starting in [03-10 00:00, 03-11 00:00) end at 01:00 .. 00:00 next day
    assert (req.param("start"), req.param("end")) == ("2024-03-10T01", "2024-03-11T00")
    rows = rows_by(table, "ts", "series")
    first = rows[utc(2024, 3, 10, 0), "NG"]
    assert first["interval_end"] == utc(2024, 3, 10, 1)
    assert first["value"] == 5921.0
    last = rows[utc(2024, 3, 10, 23), "SUN"]
    assert last["interval_end"] == utc(2024, 3, 11, 0)
    assert last["value"] == 6877.0
    assert rows[utc(2024, 3, 10, 1), "WAT"]["value"] is None
    assert table.num_rows == 9
    assert min(table.column("ts").to_pylist()) == utc(2024, 3, 10, 0)
    assert max(table.column("ts").to_pylist()) == utc(2024, 3, 10, 23)


def test_case_variant_type_names_fold_to_one_spelling_and_duplicates_sum() -> None:
    table = parse_eia((PAYLOADS / "eia/hourly_fuel_case_variants.json").read_bytes(), "eia_hourly_fuel")

    rows = rows_by(table, "ts", "series")
    assert table.num_rows == 3
    assert rows[utc(2024, 3, 10, 0), "PS"]["value"] == 120.0
    assert rows[utc(2024, 3, 10, 0), "PS"]["series_name"] == "Pumped Storage"
    assert rows[utc(2024, 3, 10, 1), "PS"]["series_name"] == "Pumped Storage"
    assert rows[utc(2024, 3, 10, 1), "PS"]["value"] == -35.0
    assert rows[utc(2024, 3, 10, 1), "NG"]["series_name"] == "Natural Gas"


def test_hourly_region_series_are_eia_930_types(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(REGION, Reply.file("eia/hourly_region_2024-07-01T17.json"))
    src = make(
        replay,
        eia_settings,
        fake_time,
        "eia_hourly_region",
        respondents=["MISO"],
        types=["D", "TI", "NG", "DF"],
    )
    _, table = run(src, Window.of("2024-07-01T17:00", "2024-07-01T18:00"))

    (req,) = replay.requests
    assert (req.param("start"), req.param("end")) == ("2024-07-01T18", "2024-07-01T18")
    assert [v for k, v in req.params if k == "facets[type][]"] == ["D", "TI", "NG", "DF"]
    assert set(table.column("ts").to_pylist()) == {utc(2024, 7, 1, 17)}
    values = {r["series"]: r["value"] for r in table.to_pylist()}
    assert values == {"D": 71234.0, "DF": 70500.0, "NG": 69876.0, "TI": -1358.0}
    assert rows_by(table, "series")[("DF",)]["series_name"] == "Day-ahead demand forecast"


def test_spot_prices_route_by_series_natural_gas_and_petroleum(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(NG_SPOT, Reply.file("eia/spot_natural_gas_2024-07.json"))
    replay.add(OIL_SPOT, Reply.file("eia/spot_petroleum_2024-07.json"))
    src = make(replay, eia_settings, fake_time, "eia_spot_prices", series=["RNGWHHD", "RWTC", "RBRTE"])
    payloads, table = run(src, Window.of("2024-07-01", "2024-07-08"))

    assert [r.path for r in replay.requests] == [NG_SPOT, OIL_SPOT]
    assert [v for k, v in replay.requests[0].params if k == "facets[series][]"] == ["RNGWHHD"]
    assert [v for k, v in replay.requests[1].params if k == "facets[series][]"] == ["RWTC", "RBRTE"]
    assert (replay.requests[1].param("start"), replay.requests[1].param("end")) == (
        "2024-07-01",
        "2024-07-07",
    )
    assert [p.meta["route"] for p in payloads] == ["natural-gas/pri/fut", "petroleum/pri/spt"]
    rows = rows_by(table, "series", "ts")
    assert table.num_rows == 7
    hh = rows["RNGWHHD", utc(2024, 7, 1)]
    assert (hh["value"], hh["units"], hh["area"], hh["area_name"]) == (2.45, "$/MMBTU", "RGC", None)
    assert rows["RNGWHHD", utc(2024, 7, 4)]["value"] is None
    wti = rows["RWTC", utc(2024, 7, 2)]
    assert (wti["value"], wti["area_name"], wti["product"]) == (82.84, "CUSHING", "EPCWTI")
    assert wti["series_name"] == "Cushing, OK WTI Spot Price FOB (Dollars per Barrel)"


def test_spot_route_param_overrides_series_routing(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OIL_SPOT, Reply.file("eia/spot_petroleum_2024-07.json"))
    src = make(
        replay, eia_settings, fake_time, "eia_spot_prices", series=["RNGC1"], route="petroleum/pri/spt"
    )
    list(src.fetch(Window.of("2024-07-01", "2024-07-08")))
    assert [r.path for r in replay.requests] == [OIL_SPOT]


def test_legacy_numeric_values_and_numeric_total_parse() -> None:
    table = parse_eia((PAYLOADS / "eia/legacy_numeric_api_2.0.json").read_bytes(), "eia_hourly_fuel")
    assert table.column("value").to_pylist() == [23456.0, 10234.5, None]
    assert table.column("ts").to_pylist() == [
        utc(2022, 10, 31, 10),
        utc(2022, 10, 31, 10),
        utc(2022, 10, 31, 11),
    ]
    assert table.column("series_name").to_pylist() == ["Natural Gas", "Wind", "Natural Gas"]


def test_parse_eia_is_registered_source_parse(eia_settings: Settings) -> None:
    assert get_source_class("eia") is EIA
    body = (PAYLOADS / "eia/daily_fuel_2024-07-01.json").read_bytes()
    payload = RawPayload(source="eia", dataset="eia_daily_fuel", body=body)
    assert EIA(settings=eia_settings).parse(payload).equals(parse_eia(body, "eia_daily_fuel"))


# --- pagination and pacing -------------------------------------------------------------------------


FUELS = ["COL", "NG", "NUC", "SUN", "WND"]


def hourly_page(offset: int, n: int, total: int) -> bytes:
    """A page of EIA's real hourly fuel-type envelope carrying rows offset..offset+n of a ``total`` result."""
    doc = json.loads((PAYLOADS / "eia/hourly_fuel_2024-03-10.json").read_bytes())
    base = datetime(2024, 1, 1, 1)
    doc["response"]["data"] = [
        {
            "period": (base + timedelta(hours=i // len(FUELS))).strftime("%Y-%m-%dT%H"),
            "respondent": "CISO",
            "respondent-name": "California Independent System Operator",
            "fueltype": FUELS[i % len(FUELS)],
            "type-name": "Natural Gas" if FUELS[i % len(FUELS)] == "NG" else "Other",
            "value": str(i),
            "value-units": "megawatthours",
        }
        for i in range(offset, offset + n)
    ]
    doc["response"]["total"] = str(total)
    doc["response"]["warnings"] = [
        {
            "warning": "incomplete return",
            "description": "The API can only return 5000 rows in JSON format.  Please consider "
            "constraining your request with facet, start, or end, or using offset to paginate results.",
        }
    ]
    doc["request"]["params"]["offset"] = str(offset)
    return json.dumps(doc, separators=(",", ":")).encode()


def add_pages(replay: ReplayServer, total: int, sizes: list[int]) -> None:
    offset = 0
    for n in sizes:
        replay.add(HOURLY, Reply(body=hourly_page(offset, n, total)), match={"offset": str(offset)})
        offset += n


def test_multi_page_result_walks_offsets_by_5000_until_total(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    add_pages(replay, 12_345, [5000, 5000, 2345])
    src = make(replay, eia_settings, fake_time, "eia_hourly_fuel", respondents=["CISO"])
    payloads, table = run(src, Window.of("2024-01-01", "2024-04-01"))

    assert [r.param("offset") for r in replay.requests] == ["0", "5000", "10000"]
    assert [r.param("length") for r in replay.requests] == ["5000", "5000", "5000"]
    assert [p.page for p in payloads] == [0, 1, 2]
    assert [p.meta["rows"] for p in payloads] == [5000, 5000, 2345]
    assert table.num_rows == 12_345
    assert table.column("value").to_pylist() == [float(i) for i in range(12_345)]
    assert table.group_by(["ts", "region", "series"]).aggregate([]).num_rows == 12_345


def test_requests_are_paced_at_most_five_per_second(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    add_pages(replay, 12_345, [5000, 5000, 2345])
    list(
        make(replay, eia_settings, fake_time, "eia_hourly_fuel").fetch(Window.of("2024-01-01", "2024-04-01"))
    )
    assert fake_time.sleeps == pytest.approx([0.2, 0.2])


def test_incomplete_return_warning_is_kept_in_payload_meta(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    add_pages(replay, 7_000, [5000, 2000])
    payloads = list(make(replay, eia_settings, fake_time, "eia_hourly_fuel").fetch(Window.day("2024-01-01")))
    assert payloads[0].meta["total"] == 7_000
    assert payloads[0].meta["warnings"][0]["warning"] == "incomplete return"


def test_result_that_stops_short_of_its_total_raises_payload_error(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(HOURLY, Reply(body=hourly_page(0, 5000, 9_000)), match={"offset": "0"})
    replay.add(HOURLY, Reply(body=hourly_page(5000, 0, 9_000)), match={"offset": "5000"})
    src = make(replay, eia_settings, fake_time, "eia_hourly_fuel")
    with pytest.raises(PayloadError, match="stopped returning rows at offset 5000 of 9000"):
        list(src.fetch(Window.day("2024-01-01")))


def test_rate_limit_429_is_retried_after_retry_after_then_succeeds(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(
        DAILY,
        Reply(
            429, b'{"error":{"code":"OVER_RATE_LIMIT","message":"slow down"}}', headers={"Retry-After": "3"}
        ),
        Reply.file("eia/daily_fuel_2024-07-01.json"),
    )
    _, table = run(make(replay, eia_settings, fake_time), Window.day("2024-07-01"))
    assert len(replay.requests) == 2
    assert fake_time.sleeps == [3.0]
    assert table.num_rows == 8


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "code"),
    [
        ("error_api_key_missing.json", "API_KEY_MISSING"),
        ("error_api_key_invalid.json", "API_KEY_INVALID"),
        ("error_api_key_disabled.json", "API_KEY_DISABLED"),
    ],
)
def test_403_key_errors_raise_authentication_error(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime, fixture: str, code: str
) -> None:
    replay.add(DAILY, Reply.file(f"eia/{fixture}", status=403))
    with pytest.raises(AuthenticationError) as info:
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))
    assert code in str(info.value)
    assert FAKE_KEY not in str(info.value)
    assert len(replay.requests) == 1  # terminal: not retried


def test_suspended_key_error_says_to_slow_down(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/error_api_key_disabled.json", status=403))
    with pytest.raises(AuthenticationError, match="suspended for bursting over 5 requests/s"):
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))


def test_400_body_raises_request_rejected_with_eias_message(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/error_invalid_frequency.json", status=400))
    with pytest.raises(RequestRejected, match="Invalid frequency 'yearly' provided") as info:
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))
    assert info.value.context["url"].startswith(f"{replay.url}/v2/electricity/rto/daily-fuel-type-data/data/")
    assert FAKE_KEY not in str(info.value)


def test_400_body_served_with_http_200_still_raises_request_rejected(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/error_invalid_frequency.json", status=200))
    with pytest.raises(RequestRejected, match="Invalid frequency 'yearly'"):
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))


def test_404_raises_request_rejected_not_found(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/error_not_found.json", status=404))
    with pytest.raises(RequestRejected, match=r"EIA route not found: Not found\."):
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))


@pytest.mark.parametrize("fixture", ["maintenance.html", "truncated.json"])
def test_html_or_truncated_body_raises_payload_error(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime, fixture: str
) -> None:
    replay.add(DAILY, Reply.file(f"eia/{fixture}"))
    with pytest.raises(PayloadError, match="not JSON") as info:
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))
    assert len(info.value.context["sha256"]) == 64


def test_bare_json_null_body_raises_payload_error_instead_of_crashing(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    # pyarrow.json segfaults on a bare ``null`` document; the client must never hand it one.
    replay.add(DAILY, Reply(body=b"null\n"))
    with pytest.raises(PayloadError, match="not a JSON object: null"):
        list(make(replay, eia_settings, fake_time).fetch(Window.day("2024-07-01")))


@pytest.mark.parametrize(
    "body",
    [b'{"response": {"data": {"period": "2024-07-01"}}}', b'{"response": {"data": [1, 2]}}'],
    ids=["data-object", "data-of-numbers"],
)
def test_response_data_that_is_not_a_list_of_rows_raises_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError, match="not a list of row objects"):
        parse_eia(body, "eia_daily_fuel")


def test_missing_api_key_raises_before_any_request(
    replay: ReplayServer, settings: Settings, fake_time: FakeTime
) -> None:
    src = make(replay, settings, fake_time)
    with pytest.raises(AuthenticationError, match="HMCO_SOURCES__EIA_API_KEY"):
        list(src.fetch(Window.day("2024-07-01")))
    assert replay.requests == []


def test_empty_result_is_an_empty_canonical_table_and_a_warning(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    replay.add(DAILY, Reply.file("eia/empty_unknown_facet.json"))
    src = make(replay, eia_settings, fake_time, respondents=["NOPE"])
    with caplog.at_level(logging.WARNING, logger="hmco.sources.eia"):
        payloads, table = run(src, Window.day("2024-07-01"))
    assert len(payloads) == 1
    assert table.num_rows == 0
    assert table.schema.equals(get_dataset("eia_daily_fuel").schema)
    assert any("returned no rows" in r.getMessage() for r in caplog.records)


def test_empty_result_with_require_data_raises_no_data(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/empty_unknown_facet.json"))
    src = make(replay, eia_settings, fake_time, respondents=["NOPE"], require_data=True)
    with pytest.raises(NoData, match="NOPE"):
        list(src.fetch(Window.day("2024-07-01")))


def test_facet_of_another_dataset_is_a_config_error(eia_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="fueltypes"):
        EIA("eia_hourly_region", settings=eia_settings, fueltypes=["NG"])


def test_facet_values_given_as_one_comma_string_are_split(eia_settings: Settings) -> None:
    # UIS YAML may pass `respondents: "PJM, MISO"`; EIA would match no respondent named "PJM,MISO".
    src = EIA("eia_hourly_fuel", settings=eia_settings, respondents="PJM, MISO")
    assert src.facets == {"respondent": ["PJM", "MISO"]}
    assert src.scope() == {"region": ["PJM", "MISO"]}


def test_page_length_over_5000_is_a_config_error(eia_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="page_length"):
        EIA(settings=eia_settings, page_length=10_000)


def test_values_mixing_json_numbers_and_strings_parse() -> None:
    doc = json.loads((PAYLOADS / "eia/legacy_numeric_api_2.0.json").read_bytes())
    doc["response"]["data"][2]["value"] = "NA"  # number, number, string: pyarrow cannot type this column
    table = parse_eia(json.dumps(doc).encode(), "eia_hourly_fuel")
    assert table.column("value").to_pylist() == [23456.0, 10234.5, None]


def test_scope_names_the_facet_slice_in_canonical_columns(eia_settings: Settings) -> None:
    src = EIA(settings=eia_settings, respondents=["CISO"], fueltypes=["NG", "SUN"])
    assert src.scope() == {"region": ["CISO"], "series": ["NG", "SUN"]}


def test_spot_prices_default_to_henry_hub_wti_and_brent(eia_settings: Settings) -> None:
    src = EIA("eia_spot_prices", settings=eia_settings)
    assert src.scope() == {"series": ["RNGWHHD", "RWTC", "RBRTE"]}
    routes = [
        (route, [v for k, v in params if k == "facets[series][]"])
        for route, params in src.requests_for(Window.day("2024-07-01"))
    ]
    assert routes == [("natural-gas/pri/fut", ["RNGWHHD"]), ("petroleum/pri/spt", ["RWTC", "RBRTE"])]


# --- every answer is yielded before it is judged (so the pipeline archives it first) ---------------


@pytest.mark.parametrize("fixture", ["maintenance.html", "truncated.json"])
def test_bad_second_page_is_yielded_before_its_error_is_raised(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime, fixture: str
) -> None:
    bad = (PAYLOADS / f"eia/{fixture}").read_bytes()
    replay.add(HOURLY, Reply(body=hourly_page(0, 5000, 9_000)), match={"offset": "0"})
    replay.add(HOURLY, Reply(body=bad), match={"offset": "5000"})
    src = make(replay, eia_settings, fake_time, "eia_hourly_fuel")
    seen: list[RawPayload] = []

    with pytest.raises(PayloadError, match="not JSON") as info:
        for payload in src.fetch(Window.day("2024-01-01")):
            seen.append(payload)

    assert [p.page for p in seen] == [0, 1]
    assert seen[0].meta["rows"] == 5000
    assert seen[1].body == bad
    assert info.value.context["sha256"] == seen[1].sha256
    with pytest.raises(PayloadError, match="not JSON"):
        src.parse(seen[1])


def test_error_answer_is_yielded_and_parses_to_the_same_typed_error(
    replay: ReplayServer, eia_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(DAILY, Reply.file("eia/error_api_key_invalid.json", status=403))
    src = make(replay, eia_settings, fake_time)
    fetch = src.fetch(Window.day("2024-07-01"))

    payload = next(fetch)
    assert payload.status == 403
    assert FAKE_KEY.encode() not in payload.body
    with pytest.raises(AuthenticationError, match="API_KEY_INVALID"):
        next(fetch)
    with pytest.raises(AuthenticationError, match="API_KEY_INVALID"):
        src.parse(payload)
