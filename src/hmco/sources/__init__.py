"""Source clients: one module (or package) per source; each yields raw payloads and parses them with
pure functions.

The sources are listed once, in :mod:`hmco.sources.registry`; classes are imported on first access
(``hmco.sources.CAISO``) so ``import hmco.sources`` stays light.
"""

from __future__ import annotations

from hmco.sources.base import RawPayload, Source
from hmco.sources.registry import (
    SourceEntry,
    get_source_class,
    lazy_classes,
    lazy_getattr,
    realtime_isos,
    register_source,
    source_entry,
    source_names,
)

_LAZY = {**lazy_classes(), "HttpOptions": "hmco.sources.http"}

__all__ = [
    *_LAZY,
    "RawPayload",
    "Source",
    "SourceEntry",
    "get_source_class",
    "realtime_isos",
    "register_source",
    "source_entry",
    "source_names",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
