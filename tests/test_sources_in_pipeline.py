"""Each kind of source inside the spine: UIS spec → pipeline → raw archive → gate → curated, on loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from hmco.compose.pipeline import Pipeline
from hmco.compose.spec import build_pipeline, load_spec
from hmco.config import Settings
from hmco.errors import HmcoError, PayloadError, PipelineError
from hmco.lake import Lake
from hmco.payload import body_sha256
from hmco.sinks.raw import RawArchive
from hmco.sources.eia import EIA
from hmco.sources.fred import FRED
from hmco.sources.http import HttpOptions
from hmco.sources.spp import SPP
from hmco.windows import Window
from tests.support.clock import FakeTime
from tests.support.replay import PAYLOADS, ReplayServer, Reply

SPECS = Path(__file__).resolve().parents[1] / "src" / "hmco" / "specs"
FAKE_EIA_KEY = "hmco-fake-eia-key-0000"
FAKE_FRED_KEY = "fakefredkey0000000000000000test0"
#: what a proxy in front of an API answers during maintenance: HTTP 200, an HTML page (synthetic)
GATEWAY_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\n"
    b"<body><h1>Down for maintenance</h1><p>Please try again later.</p></body></html>\n"
)


def _spec(name: str, **source: object) -> dict:  # type: ignore[type-arg]
    data = yaml.safe_load((SPECS / name).read_text())
    data["source"].update(source)
    return data


def test_eia_spec_lands_daily_fuel_in_curated_with_the_key_stripped(
    replay: ReplayServer, settings: Settings
) -> None:
    replay.add("/v2/electricity/rto/daily-fuel-type-data/data/", Reply.file("eia/daily_fuel_2024-07-01.json"))
    settings = Settings.load(
        home=settings.home,
        clickhouse=settings.clickhouse.model_dump(),
        sources={"eia_api_key": FAKE_EIA_KEY},
    )
    spec = load_spec(
        _spec("eia.yaml", base_url=f"{replay.url}/v2/", params={"respondents": ["CISO", "ERCO"]})
    )
    lake = Lake(settings)
    report = build_pipeline(spec, lake=lake).run(Window.day("2024-07-01"))
    assert report.ok and report.rows == 8
    curated = lake.table("eia_daily_fuel").scan().to_arrow()
    assert curated.num_rows == 8
    assert pc.min(curated["value"]).as_py() == -412.0  # pumped storage: negative generation passes the gate
    archive = RawArchive(lake)
    (payload,) = list(archive.payloads("eia", "eia_daily_fuel"))
    assert FAKE_EIA_KEY.encode() not in payload.body and FAKE_EIA_KEY not in payload.url
    assert (
        replay.requests_to("/v2/electricity/rto/daily-fuel-type-data/data/")[0].param("api_key")
        == FAKE_EIA_KEY
    )


def test_caiso_spec_lands_rt_lmp_in_curated(replay: ReplayServer, settings: Settings) -> None:
    replay.add("/oasisapi/SingleZip", Reply.file("caiso/rt_sample.zip"))
    nodes = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "DLAP_PGAE-APND", "0096WD_7_N001", "ALAMIT_7_B1-APND"]
    spec = _spec("caiso.yaml", base_url=f"{replay.url}/oasisapi", params={"market": "RT5", "nodes": nodes})
    spec["sinks"] = ["iceberg"]
    lake = Lake(settings)
    pipeline = build_pipeline(spec, lake=lake)
    report = pipeline.run(Window.of("2025-07-18T07:00:00Z", "2025-07-18T07:10:00Z"))
    assert report.ok and report.rows == 10
    rows = {
        (r["node"], r["ts"].isoformat()): r["lmp"] for r in lake.table("rt_lmp").scan().to_arrow().to_pylist()
    }
    assert rows[("TH_NP15_GEN-APND", "2025-07-18T07:00:00+00:00")] == 50.48609
    assert pipeline.watermark is not None and pipeline.watermark.isoformat() == "2025-07-18T07:10:00+00:00"


def test_spp_spec_runs_with_clickhouse_as_a_second_sink(replay: ReplayServer, settings: Settings) -> None:
    path = "/file-browser-api/download/rtbm-lmp-by-location"
    replay.add(path, Reply.file("spp/RTBM-LMP-SL-202607271625.csv", content_type="text/csv"))
    spec = _spec("spp.yaml", base_url=f"{replay.url}/file-browser-api")
    spec["source"]["params"] = {}
    lake = Lake(settings)
    pipeline = build_pipeline(spec, lake=lake)
    window = Window.of("2026-07-27T21:20:00Z", "2026-07-27T21:25:00Z")
    report = pipeline.run(window)
    assert report.ok and report.rows > 0
    from hmco.clickhouse import connect_clickhouse

    n = connect_clickhouse(settings).query("SELECT count() FROM rt_lmp WHERE iso = 'SPP'").result_rows[0][0]
    assert n == report.rows == lake.table("rt_lmp").scan().to_arrow().num_rows


# --- paginated sources: every page reaches the raw archive, a bad one too ------------------------


def _keyed(settings: Settings, **keys: str) -> Settings:
    return Settings.load(home=settings.home, clickhouse=settings.clickhouse.model_dump(), sources=keys)


def _window_error(exc: PipelineError) -> HmcoError:
    """The error that failed the run's window (the run raises PipelineError carrying the report)."""
    outcome = exc.report.windows[-1]
    assert outcome.status == "failed" and outcome.exception is not None
    return outcome.exception


def _assert_bad_page_is_archived_and_named(lake: Lake, source: str, bad: bytes, error: HmcoError) -> None:
    archive = RawArchive(lake)
    keys = archive.keys(source)
    assert len(keys) == 2  # the good first page and the bad second one
    assert any(body_sha256(bad) in key for key in keys)
    named = error.context.get("archived_key") or error.context.get("last_archived_key")
    assert named is not None, error.context
    replayed = archive.get(named)
    assert replayed.body == bad
    assert replayed.page == 1
    if "sha256" in error.context:
        assert error.context["sha256"] == replayed.sha256  # the hash the error names can be replayed


def _truncated(name: str) -> bytes:
    body = (PAYLOADS / name).read_bytes()
    return body[: len(body) // 2]


@pytest.mark.parametrize(
    "bad", [GATEWAY_PAGE, _truncated("fred/gnpca_offset2.json")], ids=["html-page", "truncated-json"]
)
def test_fred_bad_second_page_is_archived_before_the_run_fails(
    replay: ReplayServer, settings: Settings, bad: bytes
) -> None:
    obs = "/fred/series/observations"
    replay.add(obs, Reply.file("fred/gnpca_offset0.json"), match={"offset": "0"})
    ctype = "text/html" if bad.startswith(b"<") else "application/json"
    replay.add(obs, Reply(body=bad, content_type=ctype), match={"offset": "2"})
    keyed = _keyed(settings, fred_api_key=FAKE_FRED_KEY)
    lake = Lake(keyed)
    time = FakeTime()
    source = FRED(
        settings=keyed,
        base_url=f"{replay.url}/fred/",
        http=HttpOptions(sleep=time.sleep, clock=time.clock),
        series_ids=["GNPCA"],
        limit=2,
    )
    pipeline = Pipeline(source, lake=lake, gate=False, window_step=timedelta(days=3 * 366))

    with pytest.raises(PipelineError) as info:
        pipeline.run(Window.of("2019-01-01", "2022-01-01"))

    error = _window_error(info.value)
    assert isinstance(error, PayloadError)
    assert "not JSON" in str(error)
    _assert_bad_page_is_archived_and_named(lake, "fred", bad, error)
    assert [r.param("offset") for r in replay.requests] == ["0", "2"]


def _eia_first_of_two_pages() -> bytes:
    """EIA's real hourly envelope with its 9 rows, announcing 18: a second page must follow."""
    doc = json.loads((PAYLOADS / "eia/hourly_fuel_2024-03-10.json").read_bytes())
    doc["response"]["total"] = "18"
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("bad", "ctype"),
    [
        ((PAYLOADS / "eia/maintenance.html").read_bytes(), "text/html"),
        ((PAYLOADS / "eia/truncated.json").read_bytes(), "application/json"),
    ],
    ids=["html-page", "truncated-json"],
)
def test_eia_bad_second_page_is_archived_before_the_run_fails(
    replay: ReplayServer, settings: Settings, bad: bytes, ctype: str
) -> None:
    path = "/v2/electricity/rto/fuel-type-data/data/"
    replay.add(path, Reply(body=_eia_first_of_two_pages()), match={"offset": "0"})
    replay.add(path, Reply(body=bad, content_type=ctype), match={"offset": "9"})
    keyed = _keyed(settings, eia_api_key=FAKE_EIA_KEY)
    lake = Lake(keyed)
    time = FakeTime()
    source = EIA(
        "eia_hourly_fuel",
        settings=keyed,
        base_url=f"{replay.url}/v2/",
        http=HttpOptions(sleep=time.sleep, clock=time.clock),
        respondents=["CISO"],
    )
    pipeline = Pipeline(source, lake=lake, gate=False)

    with pytest.raises(PipelineError) as info:
        pipeline.run(Window.day("2024-03-10"))

    error = _window_error(info.value)
    assert isinstance(error, PayloadError)
    assert "not JSON" in str(error)
    _assert_bad_page_is_archived_and_named(lake, "eia", bad, error)
    assert [r.param("offset") for r in replay.requests] == ["0", "9"]


# --- real-time ISOs: the source's publication time orders revisions -------------------------------


def test_spp_last_modified_lands_as_published_at_of_the_rows(
    replay: ReplayServer, settings: Settings
) -> None:
    path = "/2026/07/By_Interval/27/RTBM-LMP-SL-202607271625.csv"
    served = Reply.file(
        "spp/RTBM-LMP-SL-202607271625.csv", **{"Last-Modified": "Mon, 27 Jul 2026 21:27:13 GMT"}
    )
    replay.add("/file-browser-api/download/rtbm-lmp-by-location", served, match={"path": path})
    source = SPP(settings=settings, base_url=f"{replay.url}/file-browser-api", http={"min_interval": 0})
    lake = Lake(settings)

    report = Pipeline(source, lake=lake).run(Window.of("2026-07-27T21:20:00Z", "2026-07-27T21:25:00Z"))

    assert report.ok and report.rows == 4
    rows = lake.table("rt_lmp").scan().to_arrow()
    assert set(rows["published_at"].to_pylist()) == {datetime(2026, 7, 27, 21, 27, 13, tzinfo=UTC)}
