"""Parse throughput of the NOAA and Census parsers vs a straightforward pandas baseline, same run.

Payloads are generated at runtime in the wire formats: CDO ``/data`` pages of 1,000 rows, one large
api.weather.gov observation collection, and a wide ACS table (all counties × 49 variables, melted to
long form). ``HMCO_BENCH_SCALE`` multiplies the sizes (default 1). Run:

    .venv/bin/pytest benchmarks/bench_parse_noaa_census.py -q -p no:cacheprovider --benchmark-only
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from hmco.sources.census import parse_acs
from hmco.sources.noaa import parse_ghcnd_daily, parse_observations

SCALE = float(os.environ.get("HMCO_BENCH_SCALE", "1"))
CDO_PAGES = max(1, int(40 * SCALE))
OBS_FEATURES = max(10, int(5000 * SCALE))
ACS_GEOS = max(10, int(3221 * SCALE))
ACS_VARS = 49


def cdo_pages() -> list[bytes]:
    rng = random.Random(7)
    pages = []
    for p in range(CDO_PAGES):
        results = [
            {
                "date": f"2024-{1 + (i // 28) % 12:02d}-{1 + i % 28:02d}T00:00:00",
                "datatype": rng.choice(("TMAX", "TMIN", "PRCP", "SNOW", "AWND")),
                "station": f"GHCND:USW{p * 1000 + i:08d}",
                "attributes": rng.choice((",,W,2400", "T,,7,1800", ",,W,", ",I,W,")),
                "value": round(rng.uniform(-30, 40), 1),
            }
            for i in range(1000)
        ]
        doc = {"metadata": {"resultset": {"offset": p * 1000 + 1, "count": CDO_PAGES * 1000, "limit": 1000}}}
        pages.append(json.dumps({**doc, "results": results}).encode())
    return pages


def obs_collection() -> bytes:
    rng = random.Random(11)

    def q(unit: str, value: float | None, qc: str = "V") -> dict[str, Any]:
        return {"unitCode": unit, "value": value, "qualityControl": qc}

    features = []
    for i in range(OBS_FEATURES):
        legacy = i % 5 == 0  # a fifth of the rows carry 2019-era unit codes
        w, speed = ("unit", "unit:m_s-1") if legacy else ("wmoUnit", "wmoUnit:km_h-1")
        ts = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:53:00+00:00"
        props = {
            "@id": f"https://api.weather.gov/stations/KSUA/observations/{ts}",
            "station": "https://api.weather.gov/stations/KSUA",
            "stationId": "KSUA",
            "timestamp": ts,
            "rawMessage": "KSUA 071850Z 34012G21KT 10SM FEW075 21/11 A2998",
            "textDescription": "Mostly Clear",
            "presentWeather": [],
            "temperature": q(f"{w}:degC", round(rng.uniform(-10, 35), 1)),
            "dewpoint": q(f"{w}:degC", round(rng.uniform(-15, 25), 1)),
            "windDirection": q(f"{w}:degree_(angle)", rng.choice((None, 340.0))),
            "windSpeed": q(speed, round(rng.uniform(0, 40), 2)),
            "windGust": q(speed, None, "Z"),
            "barometricPressure": q(f"{w}:Pa", 101520.0),
            "seaLevelPressure": q(f"{w}:Pa", 101510.0),
            "visibility": q(f"{w}:m", 16090.0, "C"),
            "precipitationLastHour": q(f"{w}:mm", None, "Z"),
            "relativeHumidity": q(f"{w}:percent", round(rng.uniform(10, 100), 2)),
        }
        features.append(
            {
                "id": props["@id"],
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [-80.2, 27.1]},
                "properties": props,
            }
        )
    return json.dumps(
        {"type": "FeatureCollection", "features": features, "pagination": {"next": "x"}}
    ).encode()


def acs_table() -> bytes:
    rng = random.Random(5)
    variables = [f"B19{i:03d}_001E" for i in range(ACS_VARS)]
    rows: list[list[Any]] = [["NAME", *variables, "state", "county"]]
    for g in range(ACS_GEOS):
        cells = [str(rng.randint(0, 10_000_000)) if rng.random() > 0.02 else "-666666666" for _ in variables]
        rows.append([f"County {g}, State", *cells, f"{g // 100:02d}", f"{g % 1000:03d}"])
    return ("[" + ",\n".join(json.dumps(r) for r in rows) + "]").encode()


# ---- pandas baselines: the obvious json.loads + DataFrame code for the same output -----------------


def pandas_cdo(pages: list[bytes]) -> int:
    frames = []
    for body in pages:
        df = pd.DataFrame(json.loads(body)["results"])
        df["ts"] = pd.to_datetime(df["date"].str.slice(0, 10), utc=True)
        flags = (df["attributes"].fillna("") + ",,,").str.split(",", expand=True).iloc[:, :4]
        df[["mflag", "qflag", "sflag", "obs_time"]] = flags.replace("", None)
        frames.append(df.drop(columns=["date", "attributes"]))
    return len(pd.concat(frames))


_FACTORS = {"m_s-1": 3.6, "km_h-1": 1.0}


def pandas_obs(body: bytes) -> int:
    df = pd.json_normalize([f["properties"] for f in json.loads(body)["features"]])
    df["ts"] = pd.to_datetime(df["timestamp"], utc=True)
    for prop in (
        "temperature",
        "dewpoint",
        "windDirection",
        "windSpeed",
        "windGust",
        "barometricPressure",
        "seaLevelPressure",
        "visibility",
        "precipitationLastHour",
        "relativeHumidity",
    ):
        unit = df[f"{prop}.unitCode"].str.replace(r"^[^:]*:", "", regex=True)
        factor = unit.map(_FACTORS).fillna(1.0)
        df[prop] = pd.to_numeric(df[f"{prop}.value"], errors="coerce") * factor
    return len(df)


def pandas_acs(body: bytes) -> int:
    doc = json.loads(body)
    df = pd.DataFrame(doc[1:], columns=doc[0])
    df["geo_id"] = df["state"] + df["county"]
    long = df.drop(columns=["state", "county"]).melt(id_vars=["NAME", "geo_id"], var_name="variable")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long.loc[long["value"] < -100_000_000, "value"] = None
    return len(long)


# ---- benchmarks ------------------------------------------------------------------------------------


def _record(benchmark: Any, rows: int, size: int) -> None:
    best = benchmark.stats.stats.min
    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["mb"] = round(size / 1e6, 2)
    benchmark.extra_info["rows_per_s"] = round(rows / best)
    benchmark.extra_info["mb_per_s"] = round(size / best / 1e6, 1)


def _run(benchmark: Any, fn: Callable[[], int], size: int) -> None:
    rows = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    _record(benchmark, rows, size)


@pytest.mark.parametrize("impl", ["hmco", "pandas"])
def test_parse_cdo_pages(benchmark: Any, impl: str) -> None:
    pages = cdo_pages()
    size = sum(len(p) for p in pages)
    benchmark.group = f"noaa_ghcnd_daily {CDO_PAGES}×1000 rows"

    def hmco() -> int:
        return sum(parse_ghcnd_daily(p).num_rows for p in pages)

    _run(benchmark, hmco if impl == "hmco" else (lambda: pandas_cdo(pages)), size)
    assert benchmark.extra_info["rows"] == CDO_PAGES * 1000


@pytest.mark.parametrize("impl", ["hmco", "pandas"])
def test_parse_weather_collection(benchmark: Any, impl: str) -> None:
    body = obs_collection()
    benchmark.group = f"noaa_observations {OBS_FEATURES} features"

    def hmco() -> int:
        return int(parse_observations(body).num_rows)

    _run(benchmark, hmco if impl == "hmco" else (lambda: pandas_obs(body)), len(body))
    assert benchmark.extra_info["rows"] == OBS_FEATURES


@pytest.mark.parametrize("impl", ["hmco", "pandas"])
def test_parse_wide_acs_table(benchmark: Any, impl: str) -> None:
    body = acs_table()
    benchmark.group = f"census_acs {ACS_GEOS} geos × {ACS_VARS} vars"
    requested = ["NAME", *[f"B19{i:03d}_001E" for i in range(ACS_VARS)]]

    def hmco() -> int:
        table: pa.Table = parse_acs(body, vintage=2023, requested=requested, geo_level="county")
        return int(table.num_rows)

    _run(benchmark, hmco if impl == "hmco" else (lambda: pandas_acs(body)), len(body))
    assert benchmark.extra_info["rows"] == ACS_GEOS * ACS_VARS
