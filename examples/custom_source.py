"""Write your own source: a desk's end-of-day hub marks, exported as CSV files, into the lake.

A source has two halves. ``fetch(window)`` does the I/O and yields :class:`~hmco.RawPayload` s (the bytes
exactly as read, so the pipeline can archive them before anything else); ``parse(payload)`` is a pure,
vectorized function from those bytes to an Arrow table of the dataset's canonical schema. Here the data
is a dataset hmco does not ship, so it is declared with :func:`hmco.schemas.register_dataset` first, and
the source is registered with ``@register_source`` so a UIS spec can name it (``type: desk_marks_csv``).

The example writes five business days of marks files, loads three days through a ``Pipeline`` built in
Python, then days 3-5 through a pipeline built from a spec dict (day 3 again: it is replaced, not
duplicated), and checks the curated table with SQL.

Run: ``python examples/custom_source.py`` (the lake goes under ``$HMCO_HOME`` or a temp dir).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

import hmco
from hmco.compose.spec import build_pipeline
from hmco.errors import PayloadError
from hmco.quality import build_gate
from hmco.query.lake import LakeSQL
from hmco.schemas import TS, Dataset, PartitionField, conform, register_dataset
from hmco.sources.base import RawPayload, Source, register_source

# --- 1. the dataset: schema, key, layout, service level, value rules ---------------------------------

DESK_HUB_MARKS = register_dataset(
    Dataset(
        name="desk_hub_marks",
        description="End-of-day forward marks of the power desk ($/MWh), one row per hub, delivery month and day.",
        schema=pa.schema(
            [
                pa.field("ts", TS, nullable=False),  # the mark date, 00:00 UTC
                pa.field("hub", pa.string(), nullable=False),
                pa.field("delivery_month", pa.date32(), nullable=False),
                pa.field("price", pa.float64(), nullable=False),
                pa.field("trader", pa.string()),
            ]
        ),
        primary_key=("hub", "delivery_month", "ts"),
        partition_by=(PartitionField("ts", "month", "ts_month"),),
        sort_by=("hub", "delivery_month", "ts"),
        frequency=timedelta(days=1),
        sla=timedelta(hours=26),
        series_key=("hub", "delivery_month"),
        value_ranges={"price": (-500.0, 5000.0)},
    )
)

# --- 2. the source: fetch reads files (I/O), parse is a pure function of the bytes -------------------

#: The risk system's export: one file per mark date, ``marks_YYYY-MM-DD.csv``.
CSV_COLUMNS = {"MarkDate": pa.string(), "Hub": pa.string(), "DeliveryMonth": pa.string(), "Price": pa.float64(),
               "Trader": pa.string()}  # fmt: skip


def parse_marks_csv(body: bytes, where: str = "") -> pa.Table:
    """Parse one marks export into ``desk_hub_marks`` rows (vectorized: pyarrow.csv + pyarrow.compute)."""
    try:
        raw = pcsv.read_csv(
            pa.BufferReader(body),
            convert_options=pcsv.ConvertOptions(column_types=CSV_COLUMNS, include_columns=list(CSV_COLUMNS)),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise PayloadError(
            f"desk marks file is not the expected CSV (header {', '.join(CSV_COLUMNS)}): {exc}; "
            "check the export settings of the risk system",
            file=where,
        ) from None
    table = pa.table(
        {
            "ts": pc.strptime(raw["MarkDate"], format="%Y-%m-%d", unit="us").cast(TS),
            "hub": pc.utf8_trim_whitespace(raw["Hub"]),
            "delivery_month": pc.strptime(
                pc.binary_join_element_wise(raw["DeliveryMonth"], "01", "-"), format="%Y-%m-%d", unit="s"
            ).cast(pa.date32()),
            "price": raw["Price"],
            "trader": raw["Trader"],
        }
    )
    return conform(table, DESK_HUB_MARKS)


@register_source
class DeskMarksCSV(Source):
    """End-of-day hub marks from the files a risk system drops in a directory.

    Args:
        directory: where ``marks_YYYY-MM-DD.csv`` files appear.
    """

    name: ClassVar[str] = "desk_marks_csv"
    datasets: ClassVar[tuple[str, ...]] = ("desk_hub_marks",)
    window_step: timedelta = timedelta(days=1)
    publication_lag: timedelta = timedelta(hours=20)

    def __init__(
        self, dataset: str | None = None, *, settings: hmco.Settings | None = None, directory: str
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.directory = Path(directory)

    def fetch(self, window: hmco.Window) -> Iterator[RawPayload]:
        for day in window.split(timedelta(days=1)):
            path = self.directory / f"marks_{day.start:%Y-%m-%d}.csv"
            if not path.exists():  # no marks on weekends and holidays: an empty window, not an error
                continue
            yield RawPayload(
                source=self.name,
                dataset=self.dataset.name,
                body=path.read_bytes(),
                url=path.as_uri(),
                content_type="text/csv",
                window=day,
            )

    def parse(self, payload: RawPayload) -> pa.Table:
        return parse_marks_csv(payload.body, where=payload.url)


# --- 3. use it ---------------------------------------------------------------------------------------

HUBS = ["PJM WH RT Peak", "ERCOT North 345 Peak", "SP15 EZ Gen Peak", "Mid-C Peak"]
MONTHS = 6
DAYS = [date(2026, 11, 23) + timedelta(days=i) for i in range(5)]  # Monday .. Friday


def write_exports(directory: Path) -> None:
    """Five business days of marks files, the way the risk system writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    for d_i, day in enumerate(DAYS):
        lines = ["MarkDate,Hub,DeliveryMonth,Price,Trader"]
        for h_i, hub in enumerate(HUBS):
            for m in range(MONTHS):
                year, month = divmod(day.month + m, 12)
                delivery = f"{day.year + year}-{month + 1:02d}"
                price = 45.0 + 8.0 * h_i + 4.0 * np.cos(m / 12 * 2 * np.pi) + 0.35 * d_i
                lines.append(f"{day:%Y-%m-%d},{hub},{delivery},{price:.2f},trader{h_i % 2 + 1}")
        (directory / f"marks_{day:%Y-%m-%d}.csv").write_text("\n".join(lines) + "\n")


def main(home: Path) -> int:
    """Load the marks twice (Python API, then a spec) under ``home``; 0 when the lake ends exact."""
    settings = hmco.Settings.load(home=home)
    lake = hmco.Lake(settings)
    lake.create_tiers()
    exports = home / "exports"
    write_exports(exports)
    print(f"wrote {len(DAYS)} marks files to {exports} ({len(HUBS)} hubs x {MONTHS} delivery months each)")

    # a) in Python: source + default quality gate + Pipeline
    source = DeskMarksCSV(settings=settings, directory=str(exports))
    python_run = hmco.Pipeline(
        source, lake=lake, name="desk-marks-python", gate=build_gate(source.dataset, None)
    )
    report = python_run.run(hmco.Window.of(DAYS[0], DAYS[3]))
    print("Python pipeline:\n  " + str(report).replace("\n", "\n  "))

    # b) from a UIS spec (the same shape as a YAML file), with a quality override
    spec = {
        "name": "desk-marks",
        "source": {"type": "desk_marks_csv", "params": {"directory": str(exports)}},
        "schedule": "30 22 * * 1-5",
        "sla": "26h",
        "window": "1d",
        "checks": {"price": {"min": 0, "max": 1000}, "allowed": {"hub": HUBS}},
    }
    spec_run = build_pipeline(spec, lake=lake)
    report2 = spec_run.run(hmco.Window.of(DAYS[2], DAYS[-1] + timedelta(days=1)))
    print(
        f"spec pipeline {spec_run.name!r} (source {spec_run.source.name}):\n  "
        + str(report2).replace("\n", "\n  ")
    )

    query = """
    SELECT count(*) AS row_count, count(DISTINCT (hub, delivery_month, ts)) AS distinct_keys,
           count(DISTINCT ts) AS mark_days, round(avg(price), 3) AS avg_price
    FROM hub_curated.desk_hub_marks
    """
    with LakeSQL(lake) as sql:
        counts = sql.sql(query).to_pylist()[0]
        latest = sql.sql(
            "SELECT hub, price FROM hub_curated.desk_hub_marks "
            "WHERE ts = TIMESTAMP '2026-11-27 00:00:00 UTC' AND delivery_month = DATE '2026-12-01' ORDER BY hub"
        ).to_pylist()
    expected = len(DAYS) * len(HUBS) * MONTHS
    print(f"curated desk_hub_marks: {counts} (expected {expected} rows)")
    print("December marks on 2026-11-27:")
    for row in latest:
        print(f"  {row['hub']:<22} {row['price']:8.2f}")

    ok = (
        report.ok
        and report.rows == 3 * len(HUBS) * MONTHS
        and report2.ok
        and report2.rows == 3 * len(HUBS) * MONTHS
        and counts["row_count"] == expected
        and counts["distinct_keys"] == expected
        and counts["mark_days"] == len(DAYS)
        and len(latest) == len(HUBS)
    )
    print("custom_source OK" if ok else "custom_source FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    env_home = os.environ.get("HMCO_HOME")
    if env_home:
        sys.exit(main(Path(env_home)))
    with tempfile.TemporaryDirectory(prefix="hmco-custom-") as tmp:
        sys.exit(main(Path(tmp) / "hmco"))
