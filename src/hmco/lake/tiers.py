"""The lake's tiers as data: bucket, Iceberg namespace and retention of raw, staged, curated and ml.

These are the platform's retention periods, in one place: the lake creates namespaces from them,
stamps them on tables, and upkeep enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from hmco.errors import ConfigError

__all__ = ["PAYLOAD_PREFIX", "TIERS", "Tier", "TierName", "tier"]

TierName = Literal["raw", "staged", "curated", "ml"]

#: Where the raw tier keeps archived payloads (the only objects an S3 lifecycle rule may expire).
PAYLOAD_PREFIX = "payloads"


@dataclass(frozen=True)
class Tier:
    """A lake tier: its bucket, Iceberg namespace and how long its data is kept."""

    name: TierName
    bucket: str
    namespace: str
    retention: timedelta
    description: str


TIERS: dict[str, Tier] = {
    "raw": Tier("raw", "hmco-raw", "hub_raw", timedelta(days=30), "source payloads, byte for byte"),
    "staged": Tier(
        "staged",
        "hmco-staged",
        "hub_staged",
        timedelta(days=365),
        "gate results, quarantined batches; datasets published at the staged tier",
    ),
    "curated": Tier(
        "curated", "hmco-curated", "hub_curated", timedelta(days=5 * 365), "validated, published"
    ),
    "ml": Tier("ml", "hmco-ml", "hub_ml", timedelta(days=365), "features and training sets"),
}


def tier(name: str) -> Tier:
    """The tier called ``name``; a :class:`~hmco.errors.ConfigError` lists the tiers otherwise."""
    try:
        return TIERS[name]
    except KeyError:
        raise ConfigError(f"unknown tier {name!r}; tiers are {', '.join(TIERS)}") from None
