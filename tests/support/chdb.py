"""One chdb data directory per test process (chdb cannot open two), shared by every test module.

``chdb_settings()`` returns local-profile settings pointing at that directory; tests isolate themselves
with their own database names (``unique_database()``), never with another directory.

chdb reads its config once, when the process first opens the engine, so ``chdb_dir()`` opens it right
away with a config file, whichever test comes first: it allows ``BACKUP … TO File(…)`` under
``chdb_home()`` (the local backups of lakes whose ``HMCO_HOME`` is there, as ``chdb_settings()``'s is).
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
    """The process-wide chdb directory (created on first use, removed at exit); the engine is opened."""
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="hmco-chdb-"))
        atexit.register(shutil.rmtree, _root, True)
        _open_engine(_root)
    return _root


def chdb_home() -> Path:
    """An ``HMCO_HOME`` parent whose lakes' local backups the engine may write (``File`` backups)."""
    return chdb_dir() / "home"


def _open_engine(root: Path) -> None:
    """Open the process's chdb engine with the backup config, before any test opens it without."""
    from hmco.clickhouse import connect_clickhouse
    from hmco.maintenance.clickhouse_backup import chdb_backup_config

    (root / "home").mkdir()
    config = root / "config.xml"
    config.write_text(chdb_backup_config(root / "home"))
    settings = Settings.load(home=root / "home", clickhouse={"interface": "chdb", "path": root / "data"})
    connect_clickhouse(settings, chdb_options={"config-file": str(config)})


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
