"""Trino resource groups under load: ETL throughput with BI saturated, and the seed's EIA query's latency.

The server is the governed test Trino (``tests/support/trino_governed.py``) running
:data:`hmco.security.access.ACCESS` verbatim (``etl`` 10 running, ``bi`` 20 running / 200 queued), over a
lake of ten days of ``eia_daily_fuel`` on PostgreSQL + SeaweedFS.

- ETL throughput: ``ETL_WORKERS`` clients as ``etl`` run the seed's EIA query back to back for
  ``SECONDS``; queries completed per minute alone, then with ``bi`` saturated by ``BI_SATURATE`` BI clients
  in a closed loop (20 run, the rest queue) running ``LOAD``, a CPU-bound analyst query over the curated
  table (a few seconds each when idle).
- EIA latency: the seed's EIA query as ``bi`` idle, and under a 20-query BI load (20 BI clients in a
  closed loop: the group is full, so the EIA query waits for a slot), and as ``etl`` under that same load.

Opt-in (starts a Trino server, ~3 min): ``HMCO_BENCH_TRINO=1 .venv/bin/pytest
benchmarks/bench_trino_governance.py -p no:cacheprovider --benchmark-only -s``.
Knobs: ``HMCO_BENCH_GOV_SECONDS=30``, ``HMCO_BENCH_GOV_LOAD_K=6`` (load query size).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.servers import Postgres, SeaweedFS
from tests.support.trino_governed import GovernedTrino, governed_trino

from hmco.demo import EIA_QUERY
from hmco.errors import QueryRejected
from hmco.query.trino import TrinoSQL
from hmco.security.access import ACCESS

TRINO = os.environ.get("HMCO_BENCH_TRINO", "") == "1"
pytestmark = pytest.mark.skipif(not TRINO, reason="starts a Trino server: set HMCO_BENCH_TRINO=1")

SECONDS = float(os.environ.get("HMCO_BENCH_GOV_SECONDS", "30"))
LOAD_K = int(os.environ.get("HMCO_BENCH_GOV_LOAD_K", "6"))
ETL_WORKERS = 2
BI_LIMIT = ACCESS.group("bi").hard_concurrency_limit
BI_SATURATE = BI_LIMIT + 5
LOAD = f"""SELECT region, sum(value * x) AS s FROM hub_curated.eia_daily_fuel
CROSS JOIN UNNEST(sequence(1, 10000)) AS a(x) CROSS JOIN UNNEST(sequence(1, {LOAD_K})) AS b(y)
WHERE (x + y) % 7 <> 0 GROUP BY region"""
RESULTS: dict[str, Any] = {}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


@pytest.fixture(scope="module")
def governed(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, seaweed: SeaweedFS
) -> Iterator[GovernedTrino]:
    RESULTS["loadavg_before"] = loadavg()
    with governed_trino(tmp_path_factory.mktemp("bench-gov"), postgres, seaweed, ACCESS) as gov:
        RESULTS["startup_s"] = round(gov.server.startup_seconds, 1)
        with TrinoSQL(gov.as_user("bi")) as bi:
            began = time.monotonic()
            bi.sql(LOAD)
            RESULTS["load_query_idle_s"] = round(time.monotonic() - began, 2)
        yield gov
    RESULTS["loadavg_after"] = loadavg()
    print("\nRESULTS", RESULTS)


def live_bi(admin: TrinoSQL) -> list[dict[str, Any]]:
    return admin.sql(
        "SELECT query_id, state FROM system.runtime.queries "
        "WHERE \"user\" = 'bi' AND state NOT IN ('FINISHED', 'FAILED')"
    ).to_pylist()


@contextlib.contextmanager
def bi_load(gov: GovernedTrino, clients: int) -> Iterator[dict[str, int]]:
    """``clients`` BI clients each running ``LOAD`` back to back; yields once the group runs its limit."""
    stop = threading.Event()
    counts = {"done": 0, "rejected": 0}

    def client() -> None:
        with TrinoSQL(gov.as_user("bi")) as bi:
            while not stop.is_set():
                try:
                    bi.sql(LOAD)
                    counts["done"] += 1
                except QueryRejected:
                    counts["rejected"] += 1
                except Exception:
                    continue

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    with TrinoSQL(gov.settings) as admin:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # each answer from the server decides; the deadline bounds
            if sum(q["state"] == "RUNNING" for q in live_bi(admin)) >= min(clients, BI_LIMIT):
                break
        try:
            yield counts
        finally:
            stop.set()
            while any(t.is_alive() for t in threads):
                for q in live_bi(admin):
                    with contextlib.suppress(Exception):
                        admin.sql(f"CALL system.runtime.kill_query(query_id => '{q['query_id']}')")
                for t in threads:
                    t.join(0.5)


def etl_per_minute(gov: GovernedTrino) -> float:
    """ETL_WORKERS clients as ``etl`` run the EIA query back to back for SECONDS: completed per minute."""
    done = [0] * ETL_WORKERS
    began = time.monotonic()
    until = began + SECONDS

    def worker(i: int) -> None:
        with TrinoSQL(gov.as_user("etl")) as etl:
            while time.monotonic() < until:
                assert etl.sql(EIA_QUERY).num_rows > 0
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(ETL_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - began) * 60


@pytest.mark.parametrize("bi", ["alone", "bi_saturated"])
def test_etl_queries_per_minute(benchmark: Any, governed: GovernedTrino, bi: str) -> None:
    with bi_load(governed, BI_SATURATE) if bi == "bi_saturated" else contextlib.nullcontext() as counts:
        rate = benchmark.pedantic(etl_per_minute, args=(governed,), rounds=1, iterations=1)
        with TrinoSQL(governed.settings) as admin:
            queued = sum(q["state"] == "QUEUED" for q in live_bi(admin))
    benchmark.extra_info.update(etl_per_min=round(rate, 1), bi_queued_at_end=queued, bi=counts)
    RESULTS[f"etl_per_min_{bi}"] = round(rate, 1)
    RESULTS[f"bi_{bi}"] = {"queued_at_end": queued, **(counts or {})}


@pytest.mark.parametrize(("load", "user"), [("idle", "bi"), ("bi_load_20", "bi"), ("bi_load_20", "etl")])
def test_eia_latency(benchmark: Any, governed: GovernedTrino, load: str, user: str) -> None:
    rounds = 5 if load == "idle" else 3
    with (
        bi_load(governed, BI_LIMIT) if load != "idle" else contextlib.nullcontext(),
        TrinoSQL(governed.as_user(user)) as sql,
    ):
        result = benchmark.pedantic(lambda: sql.sql(EIA_QUERY), rounds=rounds, iterations=1, warmup_rounds=1)
    assert result.num_rows > 0
    stats = benchmark.stats.stats
    RESULTS[f"eia_{load}_as_{user}"] = {"mean_s": round(stats.mean, 2), "min_s": round(stats.min, 2)}
