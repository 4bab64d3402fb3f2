"""Parse throughput of EIA v2 and FRED JSON: hmco's pyarrow.json parsers vs the pandas path gridstatus uses.

Payloads are generated at runtime in the real wire formats: an EIA ``electricity/rto/fuel-type-data``
hourly response of 500,000 rows (string values, ``"NA"`` gaps, the echoed request) and a FRED
``series/observations`` response of 100,000 observations (FRED's per-request maximum, ``"."`` gaps).
Override the sizes with ``HMCO_BENCH_EIA_ROWS`` / ``HMCO_BENCH_FRED_ROWS`` while developing.

Run: ``.venv/bin/pytest benchmarks/bench_parse_eia_fred.py -p no:cacheprovider --benchmark-only``
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from hmco.sources.eia import parse_eia
from hmco.sources.fred import parse_fred

EIA_ROWS = int(os.environ.get("HMCO_BENCH_EIA_ROWS", "500000"))
FRED_ROWS = int(os.environ.get("HMCO_BENCH_FRED_ROWS", "100000"))

_FUELS = [
    ("COL", "Coal"), ("NG", "Natural Gas"), ("NUC", "Nuclear"), ("OIL", "Petroleum"), ("OTH", "Other"),
    ("SUN", "Solar"), ("WAT", "Hydro"), ("WND", "Wind"), ("PS", "Pumped Storage"), ("BAT", "Battery Storage"),
]  # fmt: skip
_RESPONDENTS = [(f"BA{i:02d}", f"Balancing Authority {i:02d}, Inc.") for i in range(50)]


def eia_hourly_body(rows: int = EIA_ROWS) -> bytes:
    """An EIA v2 hourly fuel-type response with ``rows`` rows (50 BAs x 10 fuels per hour)."""
    per_hour = len(_RESPONDENTS) * len(_FUELS)
    start = datetime(2024, 1, 1, 1)
    periods = [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(rows // per_hour + 1)]
    data = []
    for i in range(rows):
        code, name = _RESPONDENTS[(i // len(_FUELS)) % len(_RESPONDENTS)]
        fuel, fuel_name = _FUELS[i % len(_FUELS)]
        data.append(
            {
                "period": periods[i // per_hour],
                "respondent": code,
                "respondent-name": name,
                "fueltype": fuel,
                "type-name": fuel_name,
                "value": "NA" if i % 97 == 0 else str((i * 7919) % 20011),
                "value-units": "megawatthours",
            }
        )
    doc = {
        "response": {
            "total": str(rows),
            "dateFormat": 'YYYY-MM-DD"T"HH24',
            "frequency": "hourly",
            "data": data,
            "description": "Hourly net generation by balancing authority and energy source.",
        },
        "request": {
            "command": "/v2/electricity/rto/fuel-type-data/data/",
            "params": {
                "api_key": "***",
                "frequency": "hourly",
                "data": ["value"],
                "offset": "0",
                "length": "5000",
            },
        },
        "apiVersion": "2.1.10",
        "ExcelAddInVersion": "2.1.0",
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def fred_body(rows: int = FRED_ROWS) -> bytes:
    """A FRED observations response of ``rows`` daily observations of one series."""
    first = date(1750, 1, 1)
    observations = [
        {
            "realtime_start": "2024-07-10",
            "realtime_end": "2024-07-10",
            "date": (first + timedelta(days=i)).isoformat(),
            "value": "." if i % 50 == 0 else f"{50 + (i * 31) % 5000 / 100:.2f}",
        }
        for i in range(rows)
    ]
    doc = {
        "realtime_start": "2024-07-10",
        "realtime_end": "2024-07-10",
        "observation_start": "1600-01-01",
        "observation_end": "9999-12-31",
        "units": "lin",
        "output_type": 1,
        "file_type": "json",
        "order_by": "observation_date",
        "sort_order": "asc",
        "count": rows,
        "offset": 0,
        "limit": 100000,
        "observations": observations,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def eia_like_gridstatus(body: bytes) -> pd.DataFrame:
    """gridstatus: DataFrame from ``response.data``, period -> UTC interval end/start, values numeric."""
    df = pd.DataFrame(json.loads(body)["response"]["data"])
    df["Interval End"] = pd.to_datetime(df["period"], utc=True)
    df["Interval Start"] = df["Interval End"] - pd.Timedelta("1h")
    df["value"] = pd.to_numeric(df["value"].replace({"NA": None}), errors="coerce")
    df["type-name"] = df["type-name"].str.lower()
    return df


def fred_like_fredapi(body: bytes) -> pd.DataFrame:
    """The usual pandas path: DataFrame from ``observations``, dates parsed, ``"."`` -> NaN."""
    df = pd.DataFrame(json.loads(body)["observations"])
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df["realtime_start"] = pd.to_datetime(df["realtime_start"])
    df["realtime_end"] = pd.to_datetime(df["realtime_end"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


@pytest.fixture(scope="module")
def eia_payload() -> bytes:
    return eia_hourly_body()


@pytest.fixture(scope="module")
def fred_payload() -> bytes:
    return fred_body()


def _record(benchmark: Any, body: bytes, rows: int) -> None:
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        rows=rows,
        payload_mb=round(len(body) / 1e6, 1),
        rows_per_s=round(rows / seconds),
        mb_per_s=round(len(body) / 1e6 / seconds, 1),
    )


@pytest.mark.benchmark(group="eia-parse")
def test_parse_eia_hourly_fuel_hmco(benchmark: Any, eia_payload: bytes) -> None:
    table = benchmark.pedantic(
        parse_eia, args=(eia_payload, "eia_hourly_fuel"), rounds=3, iterations=1, warmup_rounds=1
    )
    assert table.num_rows == EIA_ROWS
    assert table.column("value").null_count == len(range(0, EIA_ROWS, 97))
    _record(benchmark, eia_payload, table.num_rows)


@pytest.mark.benchmark(group="eia-parse")
def test_parse_eia_hourly_fuel_pandas_gridstatus_baseline(benchmark: Any, eia_payload: bytes) -> None:
    frame = benchmark.pedantic(
        eia_like_gridstatus, args=(eia_payload,), rounds=1, iterations=1, warmup_rounds=0
    )
    assert len(frame) == EIA_ROWS
    _record(benchmark, eia_payload, len(frame))


@pytest.mark.benchmark(group="fred-parse")
def test_parse_fred_observations_hmco(benchmark: Any, fred_payload: bytes) -> None:
    table = benchmark.pedantic(
        parse_fred, args=(fred_payload, "DCOILWTICO"), rounds=5, iterations=1, warmup_rounds=1
    )
    assert table.num_rows == FRED_ROWS
    _record(benchmark, fred_payload, table.num_rows)


@pytest.mark.benchmark(group="fred-parse")
def test_parse_fred_observations_pandas_baseline(benchmark: Any, fred_payload: bytes) -> None:
    frame = benchmark.pedantic(
        fred_like_fredapi, args=(fred_payload,), rounds=3, iterations=1, warmup_rounds=0
    )
    assert len(frame) == FRED_ROWS
    _record(benchmark, fred_payload, len(frame))
