"""Lazy imports of heavy optional dependencies, with an error that names the exact command to install them.

``import hmco`` stays fast: great_expectations (seconds), chdb, duckdb and trino load on first use. The
command comes from hmco's own metadata (pyproject's dependencies and extras), so it cannot drift: a
module of an extra names ``pip install 'hmco[plot]'``, a module of the base install names its pinned
requirement (``pip install 'duckdb==1.5.5'``).
"""

from __future__ import annotations

import importlib
import os
import re
from types import ModuleType

from hmco.errors import MissingDependency

__all__ = ["import_optional", "install_command"]

#: Import name → distribution name, where the two differ.
_DISTRIBUTIONS = {
    "great_expectations": "great-expectations",
    "clickhouse_connect": "clickhouse-connect",
    "pydolphinscheduler": "apache-dolphinscheduler",
    "yaml": "pyyaml",
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_command(module: str) -> str:
    """The ``pip install …`` command that provides ``module`` for hmco (from hmco's own metadata)."""
    from importlib.metadata import PackageNotFoundError, requires

    top = module.split(".")[0]
    dist = _canonical(_DISTRIBUTIONS.get(top, top))
    try:
        requirements = requires("hmco") or []
    except PackageNotFoundError:  # pragma: no cover - hmco run from a source tree, not installed
        requirements = []
    extras: list[str] = []
    for requirement in requirements:
        name = _NAME.match(requirement)
        if name is None or _canonical(name.group(1)) != dist:
            continue
        extra = _EXTRA.search(requirement)
        if extra is None:  # a base requirement: reinstall it as pinned
            return f"pip install '{requirement.split(';')[0].strip()}'"
        extras.append(extra.group(1))
    chosen = next((e for e in extras if e != "dev"), extras[0] if extras else None)
    return f"pip install 'hmco[{chosen}]'" if chosen else f"pip install '{dist}'"


def import_optional(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming the command that installs it."""
    if module.split(".")[0] == "great_expectations":
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingDependency(
            f"{top} is needed for this feature but is not installed: {install_command(module)} ({exc})"
        ) from None
