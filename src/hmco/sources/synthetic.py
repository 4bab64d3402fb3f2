"""Synthetic sources for the demo, benchmarks and tests: no network, deterministic, realistic.

:class:`SyntheticISO` produces 5-minute LMPs for N nodes: a daily load shape, weather-like
drift, node-specific congestion and losses, occasional scarcity spikes and midday negative prices.
Values are a pure function of (seed, node, interval), so any window is reproducible on its own and
re-running a window yields the same rows. :class:`SyntheticEIADailyFuel` emits EIA API v2 JSON
(the real wire format) and is parsed by the real EIA parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import ClassVar

import numpy as np
import pyarrow as pa

from hmco.config import Settings
from hmco.schemas import TS, conform
from hmco.sources.base import RawPayload, Source
from hmco.windows import Window, floor_time, parse_duration

__all__ = ["SyntheticEIADailyFuel", "SyntheticISO", "synthetic_lmp"]

_STEP = np.int64(300_000_000)  # 5 minutes in microseconds
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _hash_unit(x: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random numbers in [0, 1) from integer keys (splitmix64 finaliser)."""
    z = x.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def synthetic_lmp(
    window: Window,
    nodes: int = 1000,
    *,
    seed: int = 7,
    iso: str = "SYNTH",
    utc_offset_hours: float = -8.0,
    base_price: float = 38.0,
) -> pa.Table:
    """A canonical ``rt_lmp`` table: every node × every 5-minute interval starting in ``window``."""
    start = floor_time(window.start, timedelta(minutes=5))
    first = np.int64(int(start.timestamp()) * 1_000_000)
    end_us = np.int64(int(window.end.timestamp()) * 1_000_000)
    intervals = np.arange(first, end_us, _STEP, dtype=np.int64)
    k, n = len(intervals), nodes
    idx = intervals // _STEP  # absolute interval number: values depend on it, not on the window

    hours = ((intervals / 3.6e9) + utc_offset_hours) % 24.0
    day = idx / 288.0
    shape = (
        0.75
        + 0.25 * np.sin((hours - 10.0) / 24.0 * 2 * np.pi)
        + 0.18 * np.exp(-(((hours - 19.0) / 1.6) ** 2))
    )
    drift = 0.12 * np.sin(day / 3.1 * 2 * np.pi) + 0.07 * np.sin(day / 0.77 * 2 * np.pi + 1.3)
    noise = (_hash_unit(idx, seed) - 0.5) * 0.12
    solar_dip = -0.55 * np.exp(-(((hours - 12.5) / 1.8) ** 2)) * (_hash_unit(idx // 288, seed + 1) > 0.55)
    spike = np.where(_hash_unit(idx, seed + 2) > 0.997, 6.0 + 20.0 * _hash_unit(idx, seed + 3), 0.0)
    system = base_price * (shape + drift + noise + solar_dip + spike)  # (k,)

    node_ids = np.arange(n, dtype=np.int64)
    loss_factor = 0.005 + 0.04 * _hash_unit(node_ids, seed + 4)  # (n,)
    congestion_beta = (_hash_unit(node_ids, seed + 5) - 0.5) * 2.0
    congestion_level = 4.0 * np.sin(day / 1.7 * 2 * np.pi) * (1.0 + shape) + 25.0 * (
        _hash_unit(idx // 12, seed + 6) > 0.985
    )  # (k,) hourly events

    energy = np.repeat(system, n).reshape(k, n)
    congestion = congestion_level[:, None] * congestion_beta[None, :]
    loss = energy * loss_factor[None, :]
    jitter = (
        _hash_unit((idx[:, None] * 1_000_003 + node_ids[None, :]).ravel(), seed + 7).reshape(k, n) - 0.5
    ) * 0.4
    lmp = energy + congestion + loss + jitter

    names = pa.array([f"{iso}_{'HUB' if i < 5 else 'NODE'}_{i:05d}" for i in range(n)], pa.string())
    types = pa.array(["Hub" if i < 5 else "Node" for i in range(n)], pa.string())
    node_idx = pa.array(np.tile(node_ids.astype(np.int32), k))
    ts = np.repeat(intervals, n)
    table = pa.table(
        {
            "ts": pa.array(ts, TS),
            "interval_end": pa.array(ts + _STEP, TS),
            "iso": pa.DictionaryArray.from_arrays(pa.array(np.zeros(k * n, np.int8)), pa.array([iso])).cast(
                pa.string()
            ),
            "market": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(k * n, np.int8)), pa.array(["RT5"])
            ).cast(pa.string()),
            "node": pa.DictionaryArray.from_arrays(node_idx, names).cast(pa.string()),
            "node_type": pa.DictionaryArray.from_arrays(node_idx, types).cast(pa.string()),
            "lmp": np.round(lmp.ravel(), 5),
            "energy": np.round(energy.ravel(), 5),
            "congestion": np.round(congestion.ravel(), 5),
            "loss": np.round(loss.ravel(), 5),
        }
    )
    return conform(table, "rt_lmp")


class SyntheticISO(Source):
    """A deterministic ISO feed of 5-minute LMPs (dataset ``rt_lmp``) — no network.

    Args:
        nodes: number of pricing nodes.
        seed: RNG seed; the same seed gives the same prices for the same interval.
        iso: the ``iso`` value of every row (``SYNTH`` by default).
    """

    name: ClassVar[str] = "synthetic_iso"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp",)
    window_step: timedelta = timedelta(hours=6)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        nodes: int = 1000,
        seed: int = 7,
        iso: str = "SYNTH",
        chunk: str | timedelta = "1h",
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.nodes = int(nodes)
        self.seed = int(seed)
        self.iso = iso
        self.chunk = parse_duration(chunk)

    def scope(self) -> dict[str, list[str]]:
        return {"iso": [self.iso]}

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        for page, part in enumerate(window.split(self.chunk)):
            table = synthetic_lmp(part, self.nodes, seed=self.seed, iso=self.iso)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(
                sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")
            ) as w:
                w.write_table(table)
            yield RawPayload(
                source=self.name,
                dataset=self.dataset.name,
                body=sink.getvalue().to_pybytes(),
                url=f"synthetic://{self.iso}?nodes={self.nodes}&seed={self.seed}",
                params={"start": part.start.isoformat(), "end": part.end.isoformat()},
                content_type=ARROW_STREAM,
                window=part,
                page=page,
            )

    def parse(self, payload: RawPayload) -> pa.Table:
        return conform(pa.ipc.open_stream(payload.body).read_all(), self.dataset)


_REGIONS = {
    "CISO": ("California Independent System Operator", "Pacific", 1.0),
    "ERCO": ("Electric Reliability Council of Texas, Inc.", "Central", 1.3),
    "MISO": ("Midcontinent Independent System Operator, Inc.", "Eastern", 1.9),
    "PJM": ("PJM Interconnection, LLC", "Eastern", 2.2),
    "SWPP": ("Southwest Power Pool", "Central", 0.8),
    "NYIS": ("New York Independent System Operator", "Eastern", 0.45),
    "ISNE": ("ISO New England", "Eastern", 0.35),
}
_FUELS = {
    "NG": ("Natural Gas", 0.40),
    "COL": ("Coal", 0.16),
    "NUC": ("Nuclear", 0.19),
    "WND": ("Wind", 0.11),
    "SUN": ("Solar", 0.06),
    "WAT": ("Hydro", 0.05),
    "OTH": ("Other", 0.02),
    "OIL": ("Petroleum", 0.01),
}


def eia_daily_fuel_json(window: Window, *, seed: int = 11, api_key_echo: str = "***") -> bytes:
    """EIA API v2 ``electricity/rto/daily-fuel-type-data`` JSON for every day in ``window``."""
    days = [w.start.date() for w in window.split(timedelta(days=1))]
    rows = []
    regions = list(_REGIONS.items())
    fuels = list(_FUELS.items())
    keys = np.arange(len(days) * len(regions) * len(fuels), dtype=np.int64)
    day_no = np.array([d.toordinal() for d in days], dtype=np.int64)
    noise = _hash_unit(
        np.repeat(day_no, len(regions) * len(fuels)) * 131 + keys % (len(regions) * len(fuels)), seed
    )
    i = 0
    for d in days:
        for code, (rname, tz, scale) in regions:
            for fcode, (fname, share) in fuels:
                value = 1_000_000 * scale * share * (0.85 + 0.3 * noise[i])
                rows.append(
                    {
                        "period": d.isoformat(),
                        "respondent": code,
                        "respondent-name": rname,
                        "fueltype": fcode,
                        "type-name": fname,
                        "timezone": tz,
                        "timezone-description": tz,
                        "value": f"{value:.0f}",
                        "value-units": "megawatthours",
                    }
                )
                i += 1
    envelope = {
        "response": {
            "total": str(len(rows)),
            "dateFormat": "YYYY-MM-DD",
            "frequency": "daily",
            "data": rows,
            "description": "Daily net generation by balancing authority and energy source. Source: Form EIA-930",
        },
        "request": {
            "command": "/v2/electricity/rto/daily-fuel-type-data/data/",
            "params": {
                "frequency": "daily",
                "data": ["value"],
                "start": days[0].isoformat(),
                "end": days[-1].isoformat(),
                "api_key": api_key_echo,
            },
        },
        "apiVersion": "2.1.10",
        "ExcelAddInVersion": "2.1.0",
    }
    return json.dumps(envelope).encode()


class SyntheticEIADailyFuel(Source):
    """EIA daily fuel-type generation in EIA's real JSON format, generated locally (dataset ``eia_daily_fuel``)."""

    name: ClassVar[str] = "synthetic_eia_daily_fuel"
    datasets: ClassVar[tuple[str, ...]] = ("eia_daily_fuel",)
    window_step: timedelta = timedelta(days=7)

    def __init__(
        self, dataset: str | None = None, *, settings: Settings | None = None, seed: int = 11
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.seed = int(seed)

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        yield RawPayload(
            source=self.name,
            dataset=self.dataset.name,
            body=eia_daily_fuel_json(window, seed=self.seed),
            url="synthetic://eia/v2/electricity/rto/daily-fuel-type-data/data/",
            params={"frequency": "daily", "start": window.start.date().isoformat()},
            content_type="application/json",
            window=window,
        )

    def parse(self, payload: RawPayload) -> pa.Table:
        from hmco.sources.eia.parser import parse_eia

        return parse_eia(payload.body, self.dataset.name)
