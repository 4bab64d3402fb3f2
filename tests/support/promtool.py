"""Prometheus's promtool for the alerting-rule tests: found, never skipped; a clear failure without it.

``scripts/ensure-promtool.sh`` (run by ``make test``) builds it into ``${HMCO_CACHE:-~/.cache/hmco}/bin``.
The tests' conftest drops every ``HMCO_*`` variable, so the path is read from ``PROMTOOL`` too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ENSURE = "scripts/ensure-promtool.sh"


def promtool_path() -> Path | None:
    """``$HMCO_PROMTOOL``/``$PROMTOOL``, else the cache the script builds into, else ``promtool`` on PATH."""
    for var in ("HMCO_PROMTOOL", "PROMTOOL"):
        if os.environ.get(var):
            return Path(os.environ[var])
    cache = Path(os.environ.get("HMCO_CACHE") or Path.home() / ".cache" / "hmco")
    candidate = cache / "bin" / "promtool"
    if candidate.is_file():
        return candidate
    found = shutil.which("promtool")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def promtool() -> Path:
    """The promtool binary; fails (not skips) the test when there is none."""
    path = promtool_path()
    if path is None or not os.access(path, os.X_OK):
        pytest.fail(
            f"promtool not found ({path or 'no $PROMTOOL, nothing in ~/.cache/hmco/bin, none on PATH'}): "
            f"run {ENSURE} (make test runs it) to build it with Go, or set PROMTOOL to a promtool binary",
            pytrace=False,
        )
    return path


def run_promtool(
    promtool: Path, *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``promtool args…``; the caller asserts on ``returncode`` and shows ``stdout``/``stderr``."""
    return subprocess.run(
        [str(promtool), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )
