"""Each kind of source inside the spine: UIS spec → pipeline → raw archive → gate → curated, on loopback."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import yaml

from hmco.config import Settings
from hmco.lake import Lake
from hmco.sinks.raw import RawArchive
from hmco.spec import build_pipeline, load_spec
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply

SPECS = Path(__file__).resolve().parents[1] / "examples" / "specs"
FAKE_EIA_KEY = "hmco-fake-eia-key-0000"


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
