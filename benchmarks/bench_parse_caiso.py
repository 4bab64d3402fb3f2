"""Parse throughput of CAISO OASIS PRC_INTVL_LMP zips: hmco's Arrow parser vs the gridstatus pandas path.

The payload is generated at runtime in the real wire format (v3 header, long form, one row per
interval/node/LMP_TYPE, ``-00:00`` GMT timestamps, deflated zip): by default 3,500 nodes x 288
five-minute intervals = 1,008,000 rt_lmp rows = 5,040,000 long rows. Override the node count with
``HMCO_BENCH_CAISO_NODES`` (e.g. 200 while developing).

Run: ``.venv/bin/pytest benchmarks/bench_parse_caiso.py -p no:cacheprovider --benchmark-only``
"""

from __future__ import annotations

import io
import os
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from hmco.sources.caiso import parse_oasis_lmp

NODES = int(os.environ.get("HMCO_BENCH_CAISO_NODES", "3500"))
INTERVALS = 288  # one day of 5-minute intervals
TYPES = [("MCC", "LMP_CONG_PRC"), ("MCE", "LMP_ENE_PRC"), ("MCL", "LMP_LOSS_PRC"), ("MGHG", "LMP_GHG_PRC"),
         ("LMP", "LMP_PRC")]  # fmt: skip


def _node_names(count: int) -> list[str]:
    hubs = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND", "DLAP_PGAE-APND", "DLAP_SCE-APND"]
    rest = [f"NODE{i:05d}_7_N001" if i % 3 else f"GEN{i:05d}_7_B1-APND" for i in range(count - len(hubs))]
    return (hubs + rest)[:count]


def build_payload(nodes: int = NODES, intervals: int = INTERVALS) -> tuple[bytes, int]:
    """A one-day PRC_INTVL_LMP v3 zip for ``nodes`` nodes; returns (zip bytes, uncompressed CSV bytes)."""
    start = datetime(2026, 7, 20, 7, 0, tzinfo=UTC)  # midnight PDT
    starts = [start + timedelta(minutes=5 * i) for i in range(intervals)]
    fmt = "%Y-%m-%dT%H:%M:%S-00:00"
    per_interval = {
        "INTERVALSTARTTIME_GMT": [s.strftime(fmt) for s in starts],
        "INTERVALENDTIME_GMT": [(s + timedelta(minutes=5)).strftime(fmt) for s in starts],
        "OPR_DT": ["2026-07-20"] * intervals,
        "OPR_HR": [f"{i // 12 + 1:02d}" for i in range(intervals)],
        "OPR_INTERVAL": [str(i % 12 + 1) for i in range(intervals)],
    }
    n_types = len(TYPES)
    rows = intervals * nodes * n_types
    interval_idx = pa.array(np.repeat(np.arange(intervals, dtype=np.int32), nodes * n_types))
    node_idx = pa.array(np.tile(np.repeat(np.arange(nodes, dtype=np.int32), n_types), intervals))
    type_idx = pa.array(np.tile(np.arange(n_types, dtype=np.int32), intervals * nodes))
    names = pa.array(_node_names(nodes)).take(node_idx)
    rng = np.random.default_rng(7)
    cols: dict[str, Any] = {}
    for col in ("INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT", "OPR_DT", "OPR_HR"):
        cols[col] = pa.array(per_interval[col]).take(interval_idx)
    cols.update(
        NODE_ID_XML=names,
        NODE_ID=names,
        NODE=names,
        MARKET_RUN_ID=pa.repeat("RTM", rows),
        LMP_TYPE=pa.array([t for t, _ in TYPES]).take(type_idx),
        XML_DATA_ITEM=pa.array([x for _, x in TYPES]).take(type_idx),
        PNODE_RESMRID=names,
        GRP_TYPE=pa.repeat("ALL_APNODES", rows),
        POS=pa.repeat(0, rows),
        VALUE=pa.array(np.round(rng.normal(45.0, 15.0, rows), 5)),
        OPR_INTERVAL=pa.array(per_interval["OPR_INTERVAL"]).take(interval_idx),
        GROUP=pa.array(np.arange(1, rows + 1)),
    )
    sink = io.BytesIO()
    sink.write((",".join(cols) + "\n").encode())  # OASIS headers are unquoted
    options = pcsv.WriteOptions(include_header=False, quoting_style="none", batch_size=1 << 16)
    pcsv.write_csv(pa.table(cols), sink, options)
    csv = sink.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("20260720_20260721_PRC_INTVL_LMP_RTM_20260721_09_00_00_v3.csv", csv)
    return buf.getvalue(), len(csv)


def parse_like_gridstatus(body: bytes) -> pd.DataFrame:
    """What gridstatus does with an OASIS zip: read every member, concat, parse *_GMT as UTC, pivot."""
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        df = pd.concat([pd.read_csv(zf.open(name)) for name in zf.namelist()])
    for col in ("INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df.pivot_table(
        index=["INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT", "NODE"],
        columns="LMP_TYPE",
        values="VALUE",
        aggfunc="first",
    ).reset_index()


@pytest.fixture(scope="module")
def payload() -> tuple[bytes, int]:
    return build_payload()


def _record(benchmark: Any, body: bytes, csv_size: int, rows: int) -> None:
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        rows=rows,
        long_rows=rows * len(TYPES),
        payload_mb=round(len(body) / 1e6, 1),
        csv_mb=round(csv_size / 1e6, 1),
        rows_per_s=round(rows / seconds),
        long_rows_per_s=round(rows * len(TYPES) / seconds),
        payload_mb_per_s=round(len(body) / 1e6 / seconds, 1),
        csv_mb_per_s=round(csv_size / 1e6 / seconds, 1),
    )


@pytest.mark.benchmark(group="caiso-parse")
def test_parse_caiso_rt_lmp_hmco(benchmark: Any, payload: tuple[bytes, int]) -> None:
    body, csv_size = payload
    table = benchmark.pedantic(parse_oasis_lmp, args=(body,), rounds=3, iterations=1, warmup_rounds=0)
    assert table.num_rows == NODES * INTERVALS
    _record(benchmark, body, csv_size, table.num_rows)


@pytest.mark.benchmark(group="caiso-parse")
def test_parse_caiso_rt_lmp_pandas_gridstatus_baseline(benchmark: Any, payload: tuple[bytes, int]) -> None:
    body, csv_size = payload
    frame = benchmark.pedantic(parse_like_gridstatus, args=(body,), rounds=1, iterations=1, warmup_rounds=0)
    assert len(frame) == NODES * INTERVALS
    _record(benchmark, body, csv_size, len(frame))
