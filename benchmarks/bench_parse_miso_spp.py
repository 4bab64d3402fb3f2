"""Parse throughput of the MISO and SPP real-time LMP parsers against a gridstatus-style pandas baseline.

Payloads are generated at run time in the wire formats: a MISO ``Rolling`` feed of 4,000 CPNODEs ×
288 intervals (1,152,000 rows, compact JSON as the feed serves it) and an SPP ``RTBM-LMP-DAILY-SL``
file of 3,600 settlement locations × 288 intervals (1,036,800 rows). The baseline parses the same
bytes the way gridstatus does (``pd.DataFrame(json["data"], columns=json["headers"])`` +
``to_datetime``; ``pd.read_csv`` + ``to_datetime``) plus the float conversion of the price columns.

Run: ``.venv/bin/pytest benchmarks/bench_parse_miso_spp.py -p no:cacheprovider --benchmark-only``
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from hmco.sources.miso import parse_miso_five_min
from hmco.sources.spp import CENTRAL, parse_spp_rtbm_lmp

MISO_NODES = 4000
SPP_LOCATIONS = 3600
INTERVALS = 288
ROUNDS = 3


def _miso_rolling() -> bytes:
    nodes = [f"AREA{i % 40:02d}.NODE{i:05d}" for i in range(MISO_NODES)]
    parts = []
    for k in range(INTERVALS):
        h, m = divmod(k * 5, 60)
        stamp = f"2026-07-27T{h:02d}:{m:02d}:00"
        lmp, mlc, mcc = f"{20 + k * 0.05:.2f}", f"{-0.01 * (k % 7):.2f}", f"{0.02 * (k % 11):.2f}"
        parts.append(",".join(f'["{stamp}","{n}","{lmp}","{mlc}","{mcc}"]' for n in nodes))
    headers = json.dumps(["INTERVAL", "CPNODE", "LMP", "MLC", "MCC"], separators=(",", ":"))
    return f'{{"headers":{headers},"data":[{",".join(parts)}]}}'.encode()


def _spp_daily() -> bytes:
    locations = [
        f"SL_{i:05d}" if i > 1 else ("SPPNORTH_HUB", "SPPSOUTH_HUB")[i] for i in range(SPP_LOCATIONS)
    ]
    start = datetime(2026, 7, 27, tzinfo=CENTRAL).astimezone(UTC)
    lines = ["Interval, GMT Interval, Settlement Location Name, PNODE Name, LMP, MLC, MCC, MEC"]
    for k in range(INTERVALS):
        end = start + timedelta(minutes=5 * (k + 1))
        local = end.astimezone(CENTRAL).strftime("%m/%d/%Y %H:%M:%S")
        gmt = end.strftime("%m/%d/%Y %H:%M:%S")
        mec = 20 + k * 0.05
        row = f"{mec + 0.3:.4f},-0.1000,0.4000,{mec:.4f}"
        lines.extend(f"{local},{gmt},{sl},{sl}_P,{row}" for sl in locations)
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def miso_body() -> bytes:
    return _miso_rolling()


@pytest.fixture(scope="module")
def spp_body() -> bytes:
    return _spp_daily()


def _pandas_miso(body: bytes) -> pd.DataFrame:
    doc = json.loads(body)
    df = pd.DataFrame(doc["data"], columns=doc["headers"])
    df["INTERVAL"] = pd.to_datetime(df["INTERVAL"]).dt.tz_localize("EST")
    df[["LMP", "MLC", "MCC"]] = df[["LMP", "MLC", "MCC"]].astype(float)
    return df


def _pandas_spp(body: bytes) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(body))
    df.columns = df.columns.str.strip()
    df["GMT Interval"] = pd.to_datetime(df["GMT Interval"], utc=True, format="%m/%d/%Y %H:%M:%S")
    return df


def _run(benchmark: Any, parse: Callable[[bytes], Any], body: bytes, rows: int) -> None:
    result = benchmark.pedantic(parse, args=(body,), rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert len(result) == rows
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        rows=rows,
        mb=round(len(body) / 1e6, 2),
        rows_per_s=round(rows / mean),
        mb_per_s=round(len(body) / 1e6 / mean, 1),
    )


def test_miso_rolling_parse_hmco(benchmark: Any, miso_body: bytes) -> None:
    _run(benchmark, parse_miso_five_min, miso_body, MISO_NODES * INTERVALS)


def test_miso_rolling_parse_pandas_baseline(benchmark: Any, miso_body: bytes) -> None:
    _run(benchmark, _pandas_miso, miso_body, MISO_NODES * INTERVALS)


def test_spp_daily_parse_hmco(benchmark: Any, spp_body: bytes) -> None:
    _run(benchmark, parse_spp_rtbm_lmp, spp_body, SPP_LOCATIONS * INTERVALS)


def test_spp_daily_parse_pandas_baseline(benchmark: Any, spp_body: bytes) -> None:
    _run(benchmark, _pandas_spp, spp_body, SPP_LOCATIONS * INTERVALS)
