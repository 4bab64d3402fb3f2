"""Who may do what, declared once: the platform's roles over the lake's tiers, and Trino's resource groups.

The bucket policies (:mod:`hmco.security.buckets`), Trino's file-based access control and resource
groups (:mod:`hmco.security.trino`) are generated from :data:`ACCESS`, so one place says it:

==============  =========  ==========================  ======================  ===============
role            Trino user reads (tiers)                writes (tiers)          resource group
==============  =========  ==========================  ======================  ===============
``etl-writer``  ``etl``    raw, staged, curated, ml    raw, staged, curated,   ``etl``
                                                       ml
``bi-reader``   ``bi``     curated                     —                       ``bi``
``ml``          ``ml``     curated, ml                 ml                      ``ml``
==============  =========  ==========================  ======================  ===============

No role administers buckets or their policies: that stays with the storage administrator who applies
these documents. Resource groups keep analysts' concurrency from starving ETL: ETL has its own slots and
the highest scheduling weight; BI queues beyond its limit instead of taking ETL's. Resource groups admit
queries, they do not split the CPU of running ones: ``cpu_share`` caps what BI, ML and ad-hoc use over
the quota period (given the cluster's cores), so their queries queue instead of crowding ETL out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from hmco.errors import ConfigError

__all__ = ["ACCESS", "AccessPolicy", "ResourceGroup", "Role"]

TIER_NAMES = ("raw", "staged", "curated", "ml")


@dataclass(frozen=True)
class Role:
    """A platform role: its Trino user, the tiers it reads and writes, and its Trino resource group."""

    name: str
    user: str
    reads: tuple[str, ...]
    writes: tuple[str, ...] = ()
    resource_group: str = "adhoc"
    description: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.reads + self.writes) - set(TIER_NAMES))
        if unknown:
            raise ConfigError(
                f"role {self.name}: unknown tier(s) {unknown}; tiers are {', '.join(TIER_NAMES)}"
            )
        if not set(self.writes) <= set(self.reads):
            raise ConfigError(f"role {self.name}: a role must read every tier it writes")


@dataclass(frozen=True)
class ResourceGroup:
    """A Trino resource group: concurrency, queue and memory limits, and its share of the cluster."""

    name: str
    hard_concurrency_limit: int
    max_queued: int
    soft_memory_limit: str  # a share of the cluster's memory, "40%"
    scheduling_weight: int = 1
    description: str = ""
    #: The most of the cluster's CPU the group may use over the quota period (Trino's ``hardCpuLimit``;
    #: past half of it, the group starts new queries more slowly). None: no CPU limit.
    cpu_share: float | None = None


@dataclass(frozen=True)
class AccessPolicy:
    """The roles and resource groups of the platform (see the module's table)."""

    roles: tuple[Role, ...]
    resource_groups: tuple[ResourceGroup, ...]
    #: Queries from users of no role land here (the most constrained group).
    default_group: str = "adhoc"
    admins: tuple[str, ...] = field(default=("admin",))
    #: The window Trino's CPU limits are measured over (``cpuQuotaPeriod``).
    cpu_quota_period: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        groups = {g.name for g in self.resource_groups}
        for role in self.roles:
            if role.resource_group not in groups:
                raise ConfigError(f"role {role.name}: no resource group {role.resource_group!r}")
        if self.default_group not in groups:
            raise ConfigError(f"the default resource group {self.default_group!r} is not declared")

    def __iter__(self) -> Iterator[Role]:
        return iter(self.roles)

    def role(self, name: str) -> Role:
        for role in self.roles:
            if name in (role.name, role.user):
                return role
        raise ConfigError(f"no role {name!r}; roles are {', '.join(r.name for r in self.roles)}")

    def group(self, name: str) -> ResourceGroup:
        for group in self.resource_groups:
            if group.name == name:
                return group
        raise ConfigError(f"no resource group {name!r}")


ACCESS = AccessPolicy(
    roles=(
        Role(
            "etl-writer",
            "etl",
            reads=TIER_NAMES,
            writes=TIER_NAMES,
            resource_group="etl",
            description="ingestion and upkeep: writes every tier",
        ),
        Role(
            "bi-reader", "bi", reads=("curated",), resource_group="bi", description="dashboards and analysts"
        ),
        Role(
            "ml", "ml", reads=("curated", "ml"), writes=("ml",), resource_group="ml", description="features"
        ),
    ),
    resource_groups=(
        ResourceGroup("etl", 10, 100, "50%", scheduling_weight=10, description="ingestion never waits on BI"),
        ResourceGroup(
            "bi",
            20,
            200,
            "30%",
            scheduling_weight=3,
            description="analyst queries queue past 20",
            cpu_share=0.4,
        ),
        ResourceGroup("ml", 5, 50, "20%", scheduling_weight=2, description="feature builds", cpu_share=0.2),
        ResourceGroup("adhoc", 2, 20, "10%", scheduling_weight=1, description="anyone else", cpu_share=0.1),
    ),
)
