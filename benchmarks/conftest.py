"""Shared benchmark fixtures: a temporary local lake, and the tests' real servers (PostgreSQL, SeaweedFS).

The servers are the session fixtures of ``tests/conftest.py`` (started once per session, on loopback),
re-exported here so ``bench_*.py`` files can ask for ``postgres``, ``seaweed`` or ``cluster_settings``.
This file only adds fixtures; a benchmark module's own fixture of the same name takes precedence.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # ``tests.*`` helpers are imported by package name
    sys.path.insert(0, str(_REPO))

# tests/conftest.py drops every HMCO_* variable (a developer's profile must not leak into runs); keep the
# benchmark knobs (HMCO_BENCH_*) that bench_*.py modules read at import time.
_knobs = {k: v for k, v in os.environ.items() if k.startswith("HMCO_BENCH")}

from tests.conftest import cluster_settings, postgres, seaweed, settings, trino_lake  # noqa: E402

from hmco.config import Settings  # noqa: E402

os.environ.update(_knobs)

__all__ = ["bench_settings", "cluster_settings", "postgres", "seaweed", "settings", "trino_lake"]


@pytest.fixture
def bench_settings(tmp_path: Path) -> Settings:
    """Local-profile settings (SQLite catalog, file warehouse) under a fresh temporary HMCO_HOME."""
    return Settings.load(home=tmp_path / "hmco")
