"""One chdb data directory per test process (chdb cannot open two), shared by every test module.

``chdb_settings()`` returns local-profile settings pointing at that directory; tests isolate themselves
with their own database names (``unique_database()``), never with another directory.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from hmco.config import Settings
from hmco.schemas import TS

_root: Path | None = None


def chdb_dir() -> Path:
    """The process-wide chdb directory (created on first use, removed at exit)."""
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="hmco-chdb-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def chdb_settings(database: str = "default", **clickhouse: object) -> Settings:
    """Local-profile settings using the process-wide chdb directory and ``database``."""
    root = chdb_dir()
    return Settings.load(
        home=root / "home",
        clickhouse={"interface": "chdb", "path": root / "data", "database": database, **clickhouse},
    )


def unique_database(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def lmp_rows(start: datetime, n: int, nodes: list[str], price: float = 10.0, iso: str = "CAISO") -> pa.Table:
    """``n`` 5-minute intervals from ``start`` for each node; lmp = price + interval index."""
    ts = [start + timedelta(minutes=5 * i) for i in range(n) for _ in nodes]
    return pa.table(
        {
            "ts": pa.array(ts, TS),
            "interval_end": pa.array([t + timedelta(minutes=5) for t in ts], TS),
            "iso": [iso] * len(ts),
            "market": ["RT5"] * len(ts),
            "node": nodes * n,
            "lmp": [price + i for i in range(n) for _ in nodes],
        }
    )
