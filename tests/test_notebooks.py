"""The notebooks in examples/ run, top to bottom, against the loopback replay server.

Each notebook is executed by nbclient in a kernel of this venv's interpreter, with its endpoints (set
in its first cells from environment variables) pointed at a ReplayServer serving the sources' real wire
formats and its lake in a temporary HMCO_HOME. A run passes when no cell raised, every plot was drawn
(an ``image/png`` output), and the numbers the notebook prints are the ones in the lake.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nbformat
import pyarrow.compute as pc
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from hmco.config import Settings
from hmco.frames.reader import shipped_spec
from hmco.lake import Lake
from hmco.sources.caiso import CAISO
from hmco.sources.eia import EIA
from hmco.windows import Window, in_window, market_window
from tests.payloads.caiso import build_fixtures as oasis
from tests.support.replay import ReplayServer, Reply

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KERNEL = "hmco-examples"
PACIFIC = ZoneInfo("America/Los_Angeles")
CAISO_HUBS = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND"]
CAISO_PATH = "/oasisapi/SingleZip"


# --- running a notebook -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec that starts ipykernel on this very interpreter (the venv's), not whatever is on PATH."""
    root = tmp_path_factory.mktemp("kernels")
    (root / KERNEL).mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hmco (test venv)",
        "language": "python",
    }
    (root / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)])


def kernel_env(home: Path, **endpoints: str) -> dict[str, str]:
    """The kernel's environment: no HMCO_* of the caller, a fresh lake, loopback endpoints, inline plots."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HMCO_", "MPLBACKEND"))}
    env.update(
        {
            "HMCO_HOME": str(home),
            "GX_ANALYTICS_ENABLED": "false",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            **endpoints,
        }
    )
    return env


def run_notebook(name: str, kernels: KernelSpecManager, env: dict[str, str], cwd: Path) -> Any:
    """Execute ``examples/name`` and return the executed notebook (cells keep every output)."""
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(
        nb,
        km=km,
        kernel_name=KERNEL,
        timeout=240,
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env)
    return nb


def outputs(nb: Any) -> Iterator[dict[str, Any]]:
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.outputs


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def assert_ran_cleanly(nb: Any) -> None:
    errors = [o for o in outputs(nb) if o.output_type == "error"]
    assert not errors, ANSI.sub("", "\n".join("\n".join(e.traceback) for e in errors))
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "a code cell did not run"


def images(nb: Any) -> list[str]:
    return [o.data["image/png"] for o in outputs(nb) if "image/png" in o.get("data", {})]


def printed(nb: Any) -> str:
    return "".join(o.text for o in outputs(nb) if o.output_type == "stream" and o.name == "stdout")


# --- CAISO OASIS payloads: a week of plausible hub prices, in OASIS's real zip format ---------------


def hub_price(node_index: int, start: datetime) -> dict[str, float]:
    """A November weekday shape: morning and evening peaks, a solar trough at noon, hub spreads."""
    local = start.astimezone(PACIFIC)
    hour = local.hour + local.minute / 60
    day = local.toordinal()
    energy = (
        42.0
        + 9.0 * math.exp(-(((hour - 7.5) / 1.3) ** 2))
        + 24.0 * math.exp(-(((hour - 18.5) / 1.8) ** 2))
        - 17.0 * math.exp(-(((hour - 12.5) / 2.4) ** 2))
        + 3.0 * math.sin(day * 2.1)
        + random.Random(int(start.timestamp())).gauss(0, 1.2)  # the system's noise, shared by the hubs
    )
    congestion = (1.8, -0.6, 0.4)[node_index % 3] * (1 + 0.5 * math.sin(hour / 3))
    congestion += random.Random(int(start.timestamp()) * 7 + node_index).gauss(0, 0.3)
    loss = (0.9, -0.4, 0.2)[node_index % 3]
    ghg = 0.0
    values = {"MCE": energy, "MCC": congestion, "MCL": loss, "MGHG": ghg}
    values = {k: round(v, 5) for k, v in values.items()}
    values["LMP"] = round(sum(values.values()), 5)
    return values


def oasis_zip(chunk: Window, nodes: list[str]) -> bytes:
    """The PRC_INTVL_LMP v3 zip OASIS answers for ``chunk``: every 5-minute interval of every node."""
    starts = oasis.five_minute_starts(chunk.start, chunk.end)
    rows = oasis.long_rows(
        starts,
        timedelta(minutes=5),
        nodes,
        market_run_id="RTM",
        grp_type="ALL_APNODES",
        value_of=lambda n, i: hub_price(n, starts[i]),
    )
    day = chunk.start.astimezone(PACIFIC).strftime("%Y%m%d")
    member = f"{day}_{day}_PRC_INTVL_LMP_RTM_{day}_08_05_12_v3.csv"
    return oasis.zip_bytes({member: oasis.to_csv(rows, oasis.INTVL_HEADER)})


def serve_oasis(replay: ReplayServer, windows: list[Window], nodes: list[str]) -> None:
    """One route per request the CAISO client plans for ``windows``, answering exactly what it asks."""
    planner = CAISO(nodes=nodes, market="RT5")
    try:
        for window in windows:
            for chunk, params in planner.requests_for(window):
                asked = dict(params)
                match = {k: asked[k] for k in ("startdatetime", "enddatetime", "node", "queryname")}
                replay.add(
                    CAISO_PATH,
                    Reply(body=oasis_zip(chunk, nodes), content_type="application/x-zip-compressed"),
                    match=match,
                )
    finally:
        planner.close()


# --- EIA API v2 payloads: EIA-930 hourly net generation by fuel, in EIA's JSON envelope -----------

EIA_ROUTE = "electricity/rto/fuel-type-data"
EIA_KEY = "hmco-fake-eia-key-0000"
#: EIA-930 fuel codes and names of a late-October CISO week.
FUELS = {
    "GEO": "Geothermal",
    "NG": "Natural Gas",
    "NUC": "Nuclear",
    "SUN": "Solar",
    "WAT": "Hydro",
    "WND": "Wind",
}


def ciso_generation(hour_end: datetime) -> dict[str, int]:
    """Plausible MWh per fuel for the hour ending ``hour_end``: solar by day, gas filling the evening."""
    local = (hour_end - timedelta(minutes=30)).astimezone(PACIFIC)
    hour = local.hour + 0.5
    noise = random.Random(int(hour_end.timestamp()))
    load = 21500 + 3500 * math.exp(-(((hour - 19) / 2.5) ** 2)) - 2500 * math.exp(-(((hour - 3.5) / 3) ** 2))
    solar = max(0.0, 12500 * math.sin(math.pi * (hour - 7) / 11)) if 7 < hour < 18 else 0.0
    wind = 1400 + 900 * math.sin(local.toordinal() * 1.3 + hour / 5) + noise.gauss(0, 80)
    fixed = {
        "NUC": 2240.0,
        "GEO": 760.0 + noise.gauss(0, 10),
        "WAT": 1500 + 700 * math.exp(-(((hour - 19) / 3) ** 2)),
    }
    gas = max(2600.0, load - solar - wind - sum(fixed.values()))
    values = {**fixed, "SUN": solar, "WND": wind, "NG": gas}
    return {k: round(v) for k, v in values.items()}


def eia_hourly_fuel(params: list[tuple[str, str]]) -> bytes:
    """EIA's answer to one request: every hour-ending ``period`` from ``start`` to ``end``, sorted as asked."""
    asked = dict(params)
    first = datetime.strptime(asked["start"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    last = datetime.strptime(asked["end"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    rows = []
    hour_end = first
    while hour_end <= last:
        for code, value in sorted(ciso_generation(hour_end).items()):
            rows.append(
                {
                    "period": hour_end.strftime("%Y-%m-%dT%H"),
                    "respondent": "CISO",
                    "respondent-name": "California Independent System Operator",
                    "fueltype": code,
                    "type-name": FUELS[code],
                    "value": str(value),
                    "value-units": "megawatthours",
                }
            )
        hour_end += timedelta(hours=1)
    request = {"command": f"/v2/{EIA_ROUTE}/data/", "params": {"api_key": EIA_KEY, **asked}}
    response = {
        "total": str(len(rows)),
        "dateFormat": 'YYYY-MM-DD"T"HH24',
        "frequency": "hourly",
        "data": rows,
    }
    return json.dumps({"response": response, "request": request, "apiVersion": "2.1.10"}).encode()


def serve_eia(replay: ReplayServer, windows: list[Window]) -> None:
    """One route per request the EIA client plans for ``windows`` (CISO hourly fuel)."""
    planner = EIA(
        "eia_hourly_fuel", respondents=["CISO"], settings=Settings.load(sources={"eia_api_key": EIA_KEY})
    )
    try:
        for window in windows:
            for route, params in planner.requests_for(window):
                match = {k: v for k, v in params if k in ("start", "end", "frequency")}
                replay.add(f"/v2/{route}/data/", Reply(body=eia_hourly_fuel(params)), match=match)
    finally:
        planner.close()


# --- the notebooks ----------------------------------------------------------------------------------


def test_backfill_notebook_loads_a_week_resumes_and_plots_the_daily_shape(
    replay: ReplayServer, kernels: KernelSpecManager, tmp_path: Path
) -> None:
    week = market_window("2026-11-02", "2026-11-09", tz="America/Los_Angeles")
    days = list(week.split(timedelta(days=1)))  # the pipeline's window_step, aligned as Pipeline.run splits
    serve_oasis(replay, days, CAISO_HUBS)
    home = tmp_path / "hmco"
    env = kernel_env(home, HMCO_EXAMPLE_CAISO_URL=f"{replay.url}/oasisapi")

    nb = run_notebook("backfill_and_query.ipynb", kernels, env, tmp_path)

    assert_ran_cleanly(nb)
    assert len(images(nb)) == 1
    text = printed(nb)
    requests = replay.requests_to(CAISO_PATH)
    assert len(requests) == len(days)  # the second run sent none: every window was skipped
    assert f"{len(days)} window(s) ({len(days)} ok)" in text
    assert f"{len(days)} window(s) ({len(days)} skipped)" in text

    curated = Lake(Settings.load(home=home)).table("rt_lmp").scan().to_arrow()
    assert curated.num_rows == 7 * 288 * len(CAISO_HUBS)
    assert f"rows in the lake: {curated.num_rows}" in text
    for node in CAISO_HUBS:
        lmp = curated.filter(pc.equal(curated["node"], node))["lmp"]
        shown = re.search(rf"{node}: average (-?[\d.]+) \$/MWh over (\d+) intervals", text)
        assert shown is not None, text
        assert float(shown.group(1)) == round(pc.mean(lmp).as_py(), 2)
        assert int(shown.group(2)) == len(lmp) == 7 * 288


def test_prices_notebook_reads_a_week_through_the_lake_and_plots_each_hub(
    replay: ReplayServer, kernels: KernelSpecManager, tmp_path: Path
) -> None:
    week = market_window("2026-10-26", "2026-11-02", tz="America/Los_Angeles")
    # hmco.lmp fetches the hubs through the shipped caiso-rt-lmp pipeline (its six nodes), a UTC day a window
    shipped = shipped_spec("caiso", "rt_lmp")
    assert shipped is not None
    nodes = list(shipped["source"]["params"]["nodes"])
    days = list(week.split(timedelta(days=1)))
    serve_oasis(replay, days, nodes)
    home = tmp_path / "hmco"
    env = kernel_env(home, HMCO_EXAMPLE_CAISO_URL=f"{replay.url}/oasisapi")

    nb = run_notebook("prices_for_a_week.ipynb", kernels, env, tmp_path)

    assert_ran_cleanly(nb)
    assert len(images(nb)) == 1
    assert len(replay.requests_to(CAISO_PATH)) == len(days)  # the second call made no request
    text = printed(nb)
    hours = 7 * 24 + 1  # the fall-back night of 1 November has an extra hour
    assert f"{hours * 12 * len(CAISO_HUBS)} rows, {len(CAISO_HUBS)} hubs" in text
    assert f"second call: {hours * 12 * len(CAISO_HUBS)} rows from the lake" in text

    curated = Lake(Settings.load(home=home)).table("rt_lmp").scan().to_arrow()
    np15 = curated.filter(pc.equal(curated["node"], CAISO_HUBS[0]))
    for day in ("2026-10-26", "2026-11-01"):
        inside = np15.filter(in_window(np15["ts"], market_window(day, tz="America/Los_Angeles")))
        shown = re.search(rf"{day} {CAISO_HUBS[0]}: average (-?[\d.]+) \$/MWh over (\d+) intervals", text)
        assert shown is not None, text
        assert float(shown.group(1)) == round(pc.mean(inside["lmp"]).as_py(), 2)
        assert int(shown.group(2)) == inside.num_rows == (300 if day == "2026-11-01" else 288)


def test_eia_notebook_stacks_a_week_of_hourly_generation_by_fuel(
    replay: ReplayServer, kernels: KernelSpecManager, tmp_path: Path
) -> None:
    week = market_window("2026-10-26", "2026-11-02", tz="America/Los_Angeles")
    days = list(week.split(timedelta(days=1)))  # hmco.eia commits hourly EIA data a UTC day a window
    serve_eia(replay, days)
    home = tmp_path / "hmco"
    env = kernel_env(home, HMCO_EXAMPLE_EIA_URL=f"{replay.url}/v2/", HMCO_SOURCES__EIA_API_KEY=EIA_KEY)

    nb = run_notebook("eia_fuel_mix.ipynb", kernels, env, tmp_path)

    assert_ran_cleanly(nb)
    assert len(images(nb)) == 1
    assert len(replay.requests_to(f"/v2/{EIA_ROUTE}/data/")) == len(days)
    text = printed(nb)
    hours = 7 * 24 + 1
    assert f"{hours * len(FUELS)} rows: {len(FUELS)} fuels over {hours} hours" in text

    curated = Lake(Settings.load(home=home)).table("eia_hourly_fuel").scan().to_arrow()
    assert curated.num_rows == hours * len(FUELS)
    for code, name in (("SUN", "Solar"), ("NG", "Natural Gas")):
        values = curated.filter(pc.equal(curated["series"], code))["value"]
        shown = re.search(rf"{name}: ([\d.]+) GWh", text)
        assert shown is not None, text
        assert float(shown.group(1)) == round(pc.sum(values).as_py() / 1000, 1)


def test_notebooks_are_committed_without_outputs() -> None:
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear its outputs"
