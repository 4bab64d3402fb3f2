"""Query helpers returning Arrow/polars: ``LakeSQL`` (DuckDB over the lake, Trino dialect),
``TrinoSQL`` (a Trino cluster) and ``clickhouse`` (the real-time store).

Submodules load on first access so ``import hmco.query`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "rt_lmp_rows": "hmco.query.clickhouse",
    "rt_query": "hmco.query.clickhouse",
    "rt_query_polars": "hmco.query.clickhouse",
    "top_nodes_last_hour": "hmco.query.clickhouse",
    "LakeSQL": "hmco.query.lake",
    "TrinoSQL": "hmco.query.trino",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hmco.query' has no attribute {name!r}")
