"""Census source end to end against the replay server: fetch → payloads → parse → long-form rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from hmco.config import Settings
from hmco.errors import AuthenticationError, NoData, PayloadError, RequestRejected, SchemaDriftError
from hmco.schemas import get_dataset
from hmco.sources.base import RawPayload
from hmco.sources.census import Census
from hmco.sources.http import HttpOptions
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply

KEY = "fake-census-test-key-0001"
ACS_PATH = "/2023/acs/acs5"
MARTS_PATH = "/timeseries/eits/marts"
V2023 = Window.of("2023-01-01", "2024-01-01")


def census(replay: ReplayServer, settings: Settings, dataset: str = "census_acs", **kwargs: object) -> Census:
    if dataset == "census_acs":
        kwargs.setdefault("variables", ["B01001_001E", "B19013_001E", "B19013_001M"])
    http = HttpOptions(min_interval=0.0, sleep=lambda s: None)
    return Census(dataset, settings=settings, base_url=replay.url, http=http, **kwargs)  # type: ignore[arg-type]


def run(source: Census, window: Window) -> tuple[list[RawPayload], pa.Table]:
    payloads = list(source.fetch(window))
    tables = [source.parse(p) for p in payloads]
    return payloads, pa.concat_tables(tables) if tables else get_dataset(
        source.dataset.name
    ).schema.empty_table()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def row(table: pa.Table, geo_id: str, variable: str) -> dict[str, object]:
    (found,) = [r for r in table.to_pylist() if r["geo_id"] == geo_id and r["variable"] == variable]
    return found


@pytest.fixture
def keyed(tmp_path: Path) -> Settings:
    return Settings.load(home=tmp_path / "hmco", sources={"census_key": KEY})


# ---------------------------------------------------------------------------------------------
# ACS
# ---------------------------------------------------------------------------------------------


def test_acs_rows_are_long_form_with_exact_values(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_state.json"))
    payloads, table = run(census(replay, settings), V2023)

    assert table.schema.equals(get_dataset("census_acs").schema)
    assert table.num_rows == 12  # 4 states × 3 variables
    assert row(table, "28", "B01001_001E") == {
        "ts": utc(2023, 1, 1),
        "dataset": "acs/acs5",
        "vintage": 2023,
        "geo_level": "state",
        "geo_id": "28",
        "name": "Mississippi",
        "variable": "B01001_001E",
        "value": 2940452.0,
        "value_text": None,
    }
    assert row(table, "29", "B19013_001M")["value"] == 368.0
    assert [p.window for p in payloads] == [V2023]


def test_acs_annotation_sentinels_are_null_with_text_kept(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_state.json"))
    _, table = run(census(replay, settings), V2023)

    pr_moe = row(table, "72", "B19013_001M")
    assert (pr_moe["value"], pr_moe["value_text"]) == (None, "-555555555")
    dc_moe = row(table, "11", "B19013_001M")
    assert (dc_moe["value"], dc_moe["value_text"]) == (None, "-666666666")
    dc_null = row(table, "11", "B19013_001E")  # JSON null cell
    assert (dc_null["value"], dc_null["value_text"]) == (None, None)


def test_acs_request_names_vintage_survey_and_predicates(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_county_in_state.json"))
    source = census(
        replay, settings, variables=["B01001_001E", "B25077_001E"], geography="county:*", within="state:06"
    )
    list(source.fetch(V2023))

    (req,) = replay.requests_to(ACS_PATH)
    assert req.param("get") == "NAME,B01001_001E,B25077_001E"
    assert (req.param("for"), req.param("in")) == ("county:*", "state:06")
    assert req.param("key") is None  # no key configured: none sent


def test_acs_county_geo_id_joins_the_geography_hierarchy(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_county_in_state.json"))
    source = census(
        replay, settings, variables=["B01001_001E", "B25077_001E"], geography="county:*", within="state:06"
    )
    _, table = run(source, V2023)

    assert sorted(set(table.column("geo_id").to_pylist())) == ["06003", "06037", "06091"]
    assert set(table.column("geo_level").to_pylist()) == {"county"}
    assert row(table, "06037", "B25077_001E")["value"] == 768300.0
    sierra = row(table, "06091", "B25077_001E")
    assert (sierra["value"], sierra["value_text"], sierra["name"]) == (
        None,
        "(X)",
        "Sierra County, California",
    )


def wide_body(variables: list[str]) -> bytes:
    header = ["NAME", *variables, "state"]
    rows = [
        [name, *[str(geo * 1000 + int(v[7:10])) for v in variables], code]
        for geo, (name, code) in enumerate([("Mississippi", "28"), ("Missouri", "29")], start=1)
    ]
    return ("[" + ",\n".join(json.dumps(r) for r in [header, *rows]) + "]").encode()


def test_acs_more_than_50_variables_are_split_and_merged(replay: ReplayServer, settings: Settings) -> None:
    variables = [f"B99999_{i:03d}E" for i in range(1, 121)]
    chunks = [variables[0:49], variables[49:98], variables[98:120]]
    for chunk in chunks:
        replay.add(ACS_PATH, Reply(body=wide_body(chunk)), match={"get": ",".join(["NAME", *chunk])})
    payloads, table = run(census(replay, settings, variables=variables), V2023)

    gets = [r.param("get") or "" for r in replay.requests_to(ACS_PATH)]
    assert [len(g.split(",")) for g in gets] == [50, 50, 23]  # NAME rides along in every chunk
    assert all(g.startswith("NAME,") for g in gets)
    assert [p.page for p in payloads] == [0, 1, 2]
    assert table.num_rows == 240  # 120 variables × 2 states
    assert sorted(set(table.column("variable").to_pylist())) == variables
    assert row(table, "29", "B99999_120E")["value"] == 2120.0
    assert row(table, "28", "B99999_050E") == {
        "ts": utc(2023, 1, 1),
        "dataset": "acs/acs5",
        "vintage": 2023,
        "geo_level": "state",
        "geo_id": "28",
        "name": "Mississippi",
        "variable": "B99999_050E",
        "value": 1050.0,
        "value_text": None,
    }


def test_acs_window_fetches_vintages_whose_first_of_january_it_holds(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_state.json"))
    replay.add("/2024/acs/acs5", Reply(status=204))
    list(census(replay, settings).fetch(Window.of("2022-06-01", "2024-06-01")))
    assert [r.path for r in replay.requests] == ["/2023/acs/acs5", "/2024/acs/acs5"]


def test_acs_vintages_parameter_restricts_fetches(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_state.json"))
    list(census(replay, settings, vintages=[2023]).fetch(Window.of("2022-06-01", "2025-06-01")))
    assert [r.path for r in replay.requests] == ["/2023/acs/acs5"]


def test_acs_latest_window_is_the_latest_released_vintage(settings: Settings) -> None:
    source = Census("census_acs", settings=settings, variables=["B01001_001E"])
    assert source.latest_window(utc(2024, 12, 20)) == Window.of("2023-01-01", "2024-01-01")
    assert source.latest_window(utc(2024, 11, 20)) == Window.of("2022-01-01", "2023-01-01")


# ---------------------------------------------------------------------------------------------
# key handling and errors
# ---------------------------------------------------------------------------------------------


def test_key_is_sent_but_redacted_in_stored_metadata(replay: ReplayServer, keyed: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/acs5_2023_state.json"))
    (payload,) = census(replay, keyed).fetch(V2023)

    assert replay.requests[0].param("key") == KEY
    assert payload.params["key"] == "***"
    assert KEY not in payload.url
    assert KEY not in json.dumps(payload.describe())


def test_unknown_variable_is_request_rejected_naming_it(replay: ReplayServer, settings: Settings) -> None:
    replay.add(
        ACS_PATH,
        Reply.file("census/error_unknown_variable.txt", status=400, content_type="text/plain;charset=utf-8"),
    )
    with pytest.raises(RequestRejected, match="variable 'XYZ'") as err:
        list(census(replay, settings, variables=["XYZ"]).fetch(V2023))
    assert err.value.context["variable"] == "XYZ"


def test_unavailable_resource_is_request_rejected(replay: ReplayServer, settings: Settings) -> None:
    replay.add(
        ACS_PATH, Reply.file("census/error_resource_not_available.txt", status=400, content_type="text/plain")
    )
    with pytest.raises(RequestRejected, match="requested resource is not available"):
        list(census(replay, settings).fetch(V2023))


def test_invalid_key_html_on_200_is_authentication_error(replay: ReplayServer, keyed: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/invalid_key.html"))
    with pytest.raises(AuthenticationError, match="HMCO_SOURCES__CENSUS_KEY") as err:
        list(census(replay, keyed).fetch(V2023))
    assert KEY not in str(err.value)


def test_invalid_key_redirect_is_authentication_error(replay: ReplayServer, keyed: Settings) -> None:
    replay.add(
        ACS_PATH, Reply(status=302, headers={"Location": "https://api.census.gov/data/invalid_key.html"})
    )
    with pytest.raises(AuthenticationError, match="Invalid Key"):
        list(census(replay, keyed).fetch(V2023))


def test_other_html_on_200_is_payload_error(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/html_maintenance.html"))
    with pytest.raises(PayloadError, match="HTML page"):
        list(census(replay, settings).fetch(V2023))


def test_http_204_is_empty_table(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply(status=204))
    payloads, table = run(census(replay, settings), V2023)
    assert [p.status for p in payloads] == [204]
    assert table.num_rows == 0 and table.schema.equals(get_dataset("census_acs").schema)


def test_http_204_with_require_data_is_no_data(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply(status=204))
    with pytest.raises(NoData, match="HTTP 204"):
        list(census(replay, settings, require_data=True).fetch(V2023))


def test_truncated_json_is_payload_error(replay: ReplayServer, settings: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/truncated.json"))
    with pytest.raises(PayloadError, match="truncated"):
        run(census(replay, settings), V2023)


def test_acs_data_row_that_is_not_an_array_is_schema_drift(replay: ReplayServer, settings: Settings) -> None:
    body = b'[["NAME","B01001_001E","state"],["Alabama","5108468","01"],5]'
    replay.add(ACS_PATH, Reply(body=body))
    with pytest.raises(SchemaDriftError, match="data row that is not an array"):
        run(census(replay, settings, variables=["B01001_001E"]), V2023)


# ---------------------------------------------------------------------------------------------
# timeseries
# ---------------------------------------------------------------------------------------------


def test_timeseries_with_repeated_predicates_and_suppressed_cells(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add(MARTS_PATH, Reply.file("census/eits_marts_2024.json"))
    source = census(replay, settings, "census_timeseries", predicates={"category_code": "44X72"})
    _, table = run(source, Window.of("2024-01-01", "2024-04-01"))

    (req,) = replay.requests_to(MARTS_PATH)
    assert (
        req.param("get") == "cell_value,data_type_code,time_slot_id,error_data,category_code,seasonally_adj"
    )
    assert (req.param("time"), req.param("for"), req.param("category_code")) == (
        "from 2024-01 to 2024-03",
        "us:*",
        "44X72",
    )
    assert table.schema.equals(get_dataset("census_timeseries").schema)
    assert table.to_pylist()[0] == {
        "ts": utc(2024, 1, 1),
        "program": "eits/marts",
        "time": "2024-01",
        "category_code": "44X72",
        "data_type_code": "SM",
        "seasonally_adj": "yes",
        "geo_id": "1",
        "value": 709345.0,
        "value_text": None,
        "error_data": "no",
    }
    assert table.column("ts").to_pylist() == [
        utc(2024, 1, 1),
        utc(2024, 2, 1),
        utc(2024, 3, 1),
        utc(2024, 1, 1),
    ]
    suppressed = table.to_pylist()[2]
    assert (suppressed["value"], suppressed["value_text"]) == (None, "(S)")
    assert table.to_pylist()[3]["data_type_code"] == "E_SM"


def test_timeseries_quarterly_time_strings_start_the_quarter(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add("/timeseries/eits/qss", Reply.file("census/eits_qss_quarterly.json"))
    source = census(replay, settings, "census_timeseries", program="eits/qss", frequency="quarterly")
    _, table = run(source, Window.of("2025-01-01", "2025-07-01"))

    assert replay.requests[0].param("time") == "from 2025-Q1 to 2025-Q2"
    assert table.column("ts").to_pylist() == [utc(2025, 1, 1), utc(2025, 4, 1), utc(2025, 4, 1)]
    assert table.column("time").to_pylist() == ["2025-Q1", "2025-Q2", "2025-Q2"]


def test_timeseries_annual_time_strings_start_the_year(replay: ReplayServer, settings: Settings) -> None:
    replay.add("/timeseries/eits/annual", Reply.file("census/timeseries_annual.json"))
    source = census(replay, settings, "census_timeseries", program="eits/annual", frequency="annual")
    _, table = run(source, Window.of("2023-01-01", "2025-01-01"))

    assert replay.requests[0].param("time") == "from 2023 to 2024"
    assert table.column("ts").to_pylist() == [utc(2023, 1, 1), utc(2024, 1, 1)]
    assert table.column("value").to_pylist() == [7245911.0, 7402318.0]


def test_timeseries_impossible_month_is_schema_drift(replay: ReplayServer, settings: Settings) -> None:
    body = (
        b'[["cell_value","data_type_code","time_slot_id","error_data","category_code","seasonally_adj",'
        b'"time","us"],["709345","SM","0","no","44X72","yes","2024-13","1"]]'
    )
    replay.add(MARTS_PATH, Reply(body=body))
    with pytest.raises(SchemaDriftError, match="impossible month"):
        run(census(replay, settings, "census_timeseries"), Window.of("2024-01-01", "2024-02-01"))


def test_timeseries_window_without_a_period_start_makes_no_request(
    replay: ReplayServer, settings: Settings
) -> None:
    source = census(replay, settings, "census_timeseries")
    assert list(source.fetch(Window.of("2024-01-02", "2024-01-31"))) == []
    assert replay.requests == []


def test_timeseries_latest_window_is_last_published_month(settings: Settings) -> None:
    source = Census("census_timeseries", settings=settings)
    assert source.latest_window(utc(2026, 11, 20)) == Window.of("2026-10-01", "2026-11-01")
    assert source.latest_window(utc(2026, 1, 10)) == Window.of("2025-11-01", "2025-12-01")


def test_error_answer_is_yielded_before_it_is_raised(replay: ReplayServer, keyed: Settings) -> None:
    replay.add(ACS_PATH, Reply.file("census/invalid_key.html"))
    source = census(replay, keyed)
    fetch = source.fetch(V2023)

    payload = next(fetch)  # the Invalid Key page, for the raw archive
    assert b"Invalid Key" in payload.body
    with pytest.raises(AuthenticationError, match="HMCO_SOURCES__CENSUS_KEY"):
        next(fetch)
    with pytest.raises(AuthenticationError, match="HMCO_SOURCES__CENSUS_KEY"):
        source.parse(payload)


def test_invalid_key_redirect_parses_to_authentication_error_from_the_archived_location(
    replay: ReplayServer, keyed: Settings
) -> None:
    location = "https://api.census.gov/data/invalid_key.html"
    replay.add(ACS_PATH, Reply(status=302, headers={"Location": location}))
    source = census(replay, keyed)
    payload = next(iter(source.fetch(V2023)))

    assert payload.meta["location"] == location
    with pytest.raises(AuthenticationError, match="Invalid Key"):
        source.parse(payload)
