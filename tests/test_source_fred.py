"""FRED client, end to end against the replay server: fetch -> payloads -> parse -> canonical table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hmco.config import Settings
from hmco.errors import AuthenticationError, ConfigError, NoData, PayloadError, RateLimited, RequestRejected
from hmco.schemas import get_dataset
from hmco.sources.base import RawPayload, get_source_class
from hmco.sources.fred import FRED, parse_fred
from hmco.sources.http import HttpOptions
from hmco.windows import Window
from tests.support.clock import FakeTime
from tests.support.replay import PAYLOADS, ReplayServer, Reply

FAKE_KEY = "fakefredkey0000000000000000test0"  # 32 lower-case alphanumerics, like a FRED key; not real
OBS = "/fred/series/observations"
JULY = Window.of("2024-07-01", "2024-07-08")


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fred_settings(tmp_path: Path) -> Settings:
    return Settings.load(home=tmp_path / "hmco", sources={"fred_api_key": FAKE_KEY})


def make(replay: ReplayServer, settings: Settings, fake_time: FakeTime, **kw: Any) -> FRED:
    kw.setdefault("series_ids", ["DCOILWTICO"])
    return FRED(
        settings=settings,
        base_url=f"{replay.url}/fred/",
        http=HttpOptions(sleep=fake_time.sleep, clock=fake_time.clock, max_attempts=3),
        **kw,
    )


def run(source: FRED, window: Window) -> tuple[list[RawPayload], pa.Table]:
    payloads = list(source.fetch(window))
    return payloads, pa.concat_tables([source.parse(p) for p in payloads])


def test_observations_parse_to_utc_midnight_with_values_and_vintage(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"))
    _, table = run(make(replay, fred_settings, fake_time), JULY)

    assert table.schema.equals(get_dataset("fred_observations").schema)
    assert table.column("ts").to_pylist() == [utc(2024, 7, d) for d in (1, 2, 3, 4, 5)]
    assert table.column("series_id").to_pylist() == ["DCOILWTICO"] * 5
    assert table.column("value").to_pylist()[:3] == [83.38, 82.84, 83.88]
    assert table.column("realtime_start").to_pylist() == [date(2024, 7, 10)] * 5
    assert table.column("realtime_end").to_pylist() == [date(2024, 7, 10)] * 5


def test_dot_missing_value_becomes_null(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"))
    _, table = run(make(replay, fred_settings, fake_time), JULY)
    values = dict(zip(table.column("ts").to_pylist(), table.column("value").to_pylist(), strict=True))
    assert values[utc(2024, 7, 4)] is None
    assert values[utc(2024, 7, 5)] == 83.16


def test_request_sends_key_json_and_window_as_query_params(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"))
    list(make(replay, fred_settings, fake_time).fetch(JULY))

    (req,) = replay.requests
    assert req.param("api_key") == FAKE_KEY
    assert req.param("series_id") == "DCOILWTICO"
    assert req.param("file_type") == "json"
    assert (req.param("observation_start"), req.param("observation_end")) == ("2024-07-01", "2024-07-07")
    assert (req.param("limit"), req.param("offset")) == ("100000", "0")
    assert req.param("realtime_start") is None


def test_api_key_is_redacted_from_archived_url_params_and_description(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"))
    (payload,) = list(make(replay, fred_settings, fake_time).fetch(JULY))
    assert FAKE_KEY not in payload.url
    assert payload.params["api_key"] == "***"
    assert FAKE_KEY.encode() not in payload.body
    assert FAKE_KEY not in json.dumps(payload.describe())


def test_many_series_make_one_request_sequence_each(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/dcoilwtico_2024-07-01.json"), match={"series_id": "DCOILWTICO"})
    replay.add(OBS, Reply.file("fred/dhhngsp_2024-07-01.json"), match={"series_id": "DHHNGSP"})
    src = make(replay, fred_settings, fake_time, series_ids=["DCOILWTICO", "DHHNGSP"])
    payloads, table = run(src, JULY)

    assert [r.param("series_id") for r in replay.requests] == ["DCOILWTICO", "DHHNGSP"]
    assert [p.meta["series_id"] for p in payloads] == ["DCOILWTICO", "DHHNGSP"]
    assert table.num_rows == 10
    by_key = {(r["series_id"], r["ts"]): r["value"] for r in table.to_pylist()}
    assert by_key["DHHNGSP", utc(2024, 7, 1)] == 2.45
    assert by_key["DCOILWTICO", utc(2024, 7, 1)] == 83.38
    assert by_key["DHHNGSP", utc(2024, 7, 4)] is None


def test_series_larger_than_limit_is_paged_by_offset(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    for off in (0, 2, 4):
        replay.add(OBS, Reply.file(f"fred/gnpca_offset{off}.json"), match={"offset": str(off)})
    src = make(replay, fred_settings, fake_time, series_ids=["GNPCA"], limit=2)
    payloads, table = run(src, Window.of("2019-01-01", "2024-01-01"))

    assert [r.param("offset") for r in replay.requests] == ["0", "2", "4"]
    assert [r.param("limit") for r in replay.requests] == ["2", "2", "2"]
    assert [p.page for p in payloads] == [0, 1, 2]
    assert table.num_rows == 5
    assert table.column("ts").to_pylist() == [utc(y, 1, 1) for y in range(2019, 2024)]
    assert table.column("value").to_pylist()[-1] == 22376.611


def test_requests_are_paced_at_120_per_minute(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    for off in (0, 2, 4):
        replay.add(OBS, Reply.file(f"fred/gnpca_offset{off}.json"), match={"offset": str(off)})
    list(
        make(replay, fred_settings, fake_time, series_ids="GNPCA", limit=2).fetch(
            Window.of("2019-01-01", "2024-01-01")
        )
    )
    assert fake_time.sleeps == pytest.approx([0.5, 0.5])


def test_vintage_params_are_sent_and_realtime_columns_kept(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/gnpca_vintages.json"))
    src = make(
        replay,
        fred_settings,
        fake_time,
        series_ids=["GNPCA"],
        realtime_start="2021-01-01",
        realtime_end="9999-12-31",
    )
    _, table = run(src, Window.of("2020-01-01", "2021-01-01"))

    (req,) = replay.requests
    assert (req.param("realtime_start"), req.param("realtime_end")) == ("2021-01-01", "9999-12-31")
    assert table.column("realtime_start").to_pylist() == [date(2021, 3, 25), date(2021, 7, 29)]
    assert table.column("realtime_end").to_pylist() == [date(2021, 7, 28), date(9999, 12, 31)]
    assert table.column("value").to_pylist() == [18384.687, 18422.630]
    assert table.group_by(["series_id", "ts", "realtime_start"]).aggregate([]).num_rows == 2


def test_vintage_dates_list_is_sent_comma_separated(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/gnpca_vintages.json"))
    src = make(
        replay, fred_settings, fake_time, series_ids=["GNPCA"], vintage_dates=["2021-03-25", "2021-07-29"]
    )
    list(src.fetch(Window.of("2020-01-01", "2021-01-01")))
    assert replay.requests[0].param("vintage_dates") == "2021-03-25,2021-07-29"


def test_rate_limit_429_is_retried_after_retry_after_then_succeeds(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(
        OBS,
        Reply.file("fred/error_rate_limited.json", status=429, **{"Retry-After": "20"}),
        Reply.file("fred/dcoilwtico_2024-07-01.json"),
    )
    _, table = run(make(replay, fred_settings, fake_time), JULY)
    assert len(replay.requests) == 2
    assert fake_time.sleeps == [20.0]
    assert table.num_rows == 5


def test_rate_limit_that_persists_raises_rate_limited(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/error_rate_limited.json", status=429, **{"Retry-After": "1"}))
    with pytest.raises(RateLimited):
        list(make(replay, fred_settings, fake_time).fetch(JULY))
    assert len(replay.requests) == 3


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("error_bad_series_id.json", "Invalid value for variable series_id"),
        ("error_series_not_exist.json", "The series does not exist"),
    ],
)
def test_bad_series_raises_request_rejected_with_freds_message(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime, fixture: str, message: str
) -> None:
    replay.add(OBS, Reply.file(f"fred/{fixture}", status=400))
    with pytest.raises(RequestRejected, match=message) as info:
        list(make(replay, fred_settings, fake_time, series_ids=["NOSUCHSERIES"]).fetch(JULY))
    assert info.value.context["series_id"] == "NOSUCHSERIES"
    assert FAKE_KEY not in str(info.value)


def test_unregistered_api_key_raises_authentication_error(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/error_api_key_not_registered.json", status=400))
    with pytest.raises(AuthenticationError, match="api_key is not registered") as info:
        list(make(replay, fred_settings, fake_time).fetch(JULY))
    assert FAKE_KEY not in str(info.value)


def test_missing_api_key_raises_before_any_request(
    replay: ReplayServer, settings: Settings, fake_time: FakeTime
) -> None:
    with pytest.raises(AuthenticationError, match="HMCO_SOURCES__FRED_API_KEY"):
        list(make(replay, settings, fake_time).fetch(JULY))
    assert replay.requests == []


def test_xml_body_raises_payload_error(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/default_xml.xml"))
    with pytest.raises(PayloadError, match="not JSON"):
        list(make(replay, fred_settings, fake_time).fetch(JULY))


def test_bare_json_null_body_raises_payload_error_instead_of_crashing(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    # pyarrow.json segfaults on a bare ``null`` document; the client must never hand it one.
    replay.add(OBS, Reply(body=b"null"))
    with pytest.raises(PayloadError, match="not a JSON object: null"):
        list(make(replay, fred_settings, fake_time).fetch(JULY))


def test_empty_observations_are_an_empty_canonical_table(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/empty.json"))
    payloads, table = run(make(replay, fred_settings, fake_time), Window.day("2024-07-06"))
    assert len(payloads) == 1
    assert table.num_rows == 0
    assert table.schema.equals(get_dataset("fred_observations").schema)


def test_empty_observations_with_require_data_raise_no_data(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/empty.json"))
    with pytest.raises(NoData, match="DCOILWTICO"):
        list(make(replay, fred_settings, fake_time, require_data=True).fetch(Window.day("2024-07-06")))


def test_parse_uses_series_id_from_payload_meta(fred_settings: Settings) -> None:
    assert get_source_class("fred") is FRED
    body = (PAYLOADS / "fred/dhhngsp_2024-07-01.json").read_bytes()
    payload = RawPayload(source="fred", dataset="fred_observations", body=body, meta={"series_id": "DHHNGSP"})
    table = FRED(settings=fred_settings, series_ids=["DHHNGSP"]).parse(payload)
    assert table.equals(parse_fred(body, "DHHNGSP"))
    assert set(table.column("series_id").to_pylist()) == {"DHHNGSP"}


def test_series_ids_are_required_and_validated(fred_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="at least one series id"):
        FRED(settings=fred_settings)
    with pytest.raises(ConfigError, match="25 alphanumeric"):
        FRED(settings=fred_settings, series_ids=["BAD SERIES"])


# --- every answer is yielded before it is judged (so the pipeline archives it first) ---------------


def test_bad_second_page_is_yielded_before_its_error_is_raised(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    truncated = (PAYLOADS / "fred/gnpca_offset2.json").read_bytes()[:120]
    replay.add(OBS, Reply.file("fred/gnpca_offset0.json"), match={"offset": "0"})
    replay.add(OBS, Reply(body=truncated), match={"offset": "2"})
    src = make(replay, fred_settings, fake_time, series_ids=["GNPCA"], limit=2)
    seen: list[RawPayload] = []

    with pytest.raises(PayloadError, match="not JSON") as info:
        for payload in src.fetch(Window.of("2019-01-01", "2024-01-01")):
            seen.append(payload)

    assert [p.page for p in seen] == [0, 1]
    assert seen[1].body == truncated
    assert info.value.context["sha256"] == seen[1].sha256
    assert seen[1].meta == {"series_id": "GNPCA", "offset": 2, "limit": 2}  # no rows: it could not be read
    with pytest.raises(PayloadError, match="not JSON"):
        src.parse(seen[1])


def test_error_answer_is_yielded_and_parses_to_the_same_typed_error(
    replay: ReplayServer, fred_settings: Settings, fake_time: FakeTime
) -> None:
    replay.add(OBS, Reply.file("fred/error_bad_series_id.json", status=400))
    src = make(replay, fred_settings, fake_time, series_ids=["NOSUCHSERIES"])
    fetch = src.fetch(JULY)

    payload = next(fetch)
    assert payload.status == 400
    with pytest.raises(RequestRejected, match="Invalid value for variable series_id"):
        next(fetch)
    with pytest.raises(RequestRejected, match="Invalid value for variable series_id") as info:
        src.parse(payload)
    assert info.value.context["series_id"] == "NOSUCHSERIES"
