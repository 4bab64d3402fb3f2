"""Lazy imports of heavy optional dependencies, with an error that names the extra to install.

``import hmco`` stays fast: great_expectations (seconds), chdb, duckdb and trino load on first use.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from hmco.errors import MissingDependency

__all__ = ["import_optional"]

_EXTRAS = {
    "chdb": "local",
    "duckdb": "local",
    "great_expectations": None,
    "trino": None,
    "clickhouse_connect": None,
}


def import_optional(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` saying which extra provides it."""
    if module.split(".")[0] == "great_expectations":
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRAS.get(top)
        hint = f"pip install 'hmco[{extra}]'" if extra else "pip install --force-reinstall hmco"
        raise MissingDependency(
            f"{top} is needed for this feature but is not installed: {hint} ({exc})"
        ) from None
