"""Shared fixtures. Servers (PostgreSQL, SeaweedFS) are started by the test run itself, on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
# Never read a developer's own profile or keys into the tests.
for _key in [k for k in os.environ if k.startswith("HMCO_")]:
    del os.environ[_key]

from hmco.config import Settings  # noqa: E402
from tests.support.replay import ReplayServer  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Local-profile settings with the lake under a fresh temporary HMCO_HOME."""
    return Settings.load(home=tmp_path / "hmco")


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A loopback HTTP server replaying payload files; add routes with ``replay.add(...)``."""
    with ReplayServer() as server:
        yield server
