"""Trino governance generated from :data:`~hmco.security.access.ACCESS`: access rules and resource groups.

:func:`access_control_rules` is Trino's file-based system access control (``rules.json``): each role's
Trino user reads the namespaces of its ``reads`` tiers and writes (and owns the tables of) its ``writes``
tiers; a user no rule names gets nothing in the lake's catalog. :func:`resource_groups` is the file
resource-group manager's JSON: one ``weighted_fair`` root, a sub-group per declared group, a selector per
role's user. :func:`write_trino_security` writes both with their ``etc/*.properties`` snippets, and
:func:`translate_trino_error` turns Trino's refusals into :class:`~hmco.errors.AccessDenied` and
:class:`~hmco.errors.QueryRejected` naming the user, the action, the object and the role that may do it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmco.errors import AccessDenied, HmcoError, QueryRejected
from hmco.lake.tiers import TIERS
from hmco.security.access import ACCESS, AccessPolicy, Role

__all__ = [
    "ROOT_GROUP",
    "TrinoSecurityFiles",
    "access_control_rules",
    "resource_groups",
    "translate_trino_error",
    "write_trino_security",
]

#: The root resource group every declared group hangs under (``weighted_fair`` by scheduling weight).
ROOT_GROUP = "hmco"
READ = ["SELECT"]
WRITE = ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]
_WRITE_ACTIONS = ("insert", "delete", "update", "create", "drop", "alter", "rename", "comment", "truncate")


def _exact(name: str) -> str:
    """A Java regex matching exactly ``name`` (Trino matches rule patterns against the whole name)."""
    return re.escape(name)


def _schemas(tiers: tuple[str, ...]) -> str:
    return "|".join(_exact(TIERS[t].namespace) for t in tiers)


def _table_rules(role: Role, catalog: str) -> list[dict[str, Any]]:
    """The role's table rules: full privileges on its written tiers, SELECT on the tiers it only reads."""
    rules: list[dict[str, Any]] = []
    read_only = tuple(t for t in role.reads if t not in role.writes)
    for tiers, privileges in ((role.writes, WRITE), (read_only, READ)):
        if tiers:
            rules.append(
                {"user": _exact(role.user), "catalog": _exact(catalog), "schema": _schemas(tiers)}
                | {"privileges": privileges}
            )
    return rules


def access_control_rules(policy: AccessPolicy = ACCESS, catalog: str = "iceberg") -> dict[str, Any]:
    """Trino's file-based system access control rules (``rules.json``) for ``policy`` over ``catalog``.

    Admins get everything; a role that writes gets the catalog ``all``, a reading role ``read-only``.
    No role owns a schema (tiers are created by :meth:`hmco.lake.Lake.create_tiers`, not through Trino);
    every user runs queries and sees or kills only its own, admins any.
    """
    admins = "|".join(_exact(a) for a in policy.admins)
    catalogs: list[dict[str, Any]] = [{"user": admins, "catalog": ".*", "allow": "all"}] if admins else []
    tables: list[dict[str, Any]] = [{"user": admins, "privileges": WRITE}] if admins else []
    for role in policy:
        allow = "all" if role.writes else "read-only"
        catalogs.append({"user": _exact(role.user), "catalog": _exact(catalog), "allow": allow})
        tables += _table_rules(role, catalog)
    admin_only: list[dict[str, Any]] = [{"user": admins}] if admins else []
    return {
        "catalogs": catalogs,
        "schemas": [rule | {"owner": True} for rule in admin_only],
        "tables": tables,
        "procedures": [rule | {"privileges": ["EXECUTE", "GRANT_EXECUTE"]} for rule in admin_only],
        "queries": [rule | {"allow": ["execute", "view", "kill"]} for rule in admin_only]
        + [{"allow": ["execute"]}],
        "system_information": [rule | {"allow": ["read", "write"]} for rule in admin_only],
    }


def resource_groups(policy: AccessPolicy = ACCESS, *, cluster_cores: int | None = None) -> dict[str, Any]:
    """The file resource-group manager's JSON: the declared groups under one ``weighted_fair`` root.

    The root admits the sum of its groups' limits, so each group's own limits decide; when the cluster's
    memory is short, queued queries start in proportion to the groups' scheduling weights. With
    ``cluster_cores`` (the workers' cores in all), a group's ``cpu_share`` becomes its ``hardCpuLimit``
    over ``cpuQuotaPeriod`` (and half of it its ``softCpuLimit``).
    """
    groups = policy.resource_groups
    period = policy.cpu_quota_period.total_seconds()
    sub_groups = []
    for g in groups:
        spec: dict[str, Any] = {
            "name": g.name,
            "softMemoryLimit": g.soft_memory_limit,
            "hardConcurrencyLimit": g.hard_concurrency_limit,
            "maxQueued": g.max_queued,
            "schedulingWeight": g.scheduling_weight,
        }
        if cluster_cores and g.cpu_share is not None:
            hard = g.cpu_share * cluster_cores * period
            spec["hardCpuLimit"] = f"{hard:.0f}s"
            spec["softCpuLimit"] = f"{hard / 2:.0f}s"
        sub_groups.append(spec)
    root = {
        "name": ROOT_GROUP,
        "softMemoryLimit": "100%",
        "hardConcurrencyLimit": sum(g.hard_concurrency_limit for g in groups),
        "maxQueued": sum(g.max_queued for g in groups),
        "schedulingPolicy": "weighted_fair",
        "subGroups": sub_groups,
    }
    selectors: list[dict[str, Any]] = [
        {"user": _exact(role.user), "group": f"{ROOT_GROUP}.{role.resource_group}"} for role in policy
    ]
    selectors.append({"group": f"{ROOT_GROUP}.{policy.default_group}"})
    out: dict[str, Any] = {"rootGroups": [root], "selectors": selectors}
    if cluster_cores and any(g.cpu_share is not None for g in groups):
        out["cpuQuotaPeriod"] = f"{period:.0f}s"
    return out


@dataclass(frozen=True)
class TrinoSecurityFiles:
    """The files :func:`write_trino_security` wrote; copy the two ``.properties`` into Trino's ``etc/``."""

    rules: Path
    resource_groups: Path
    access_control_properties: Path
    resource_groups_properties: Path


def write_trino_security(
    directory: str | Path,
    policy: AccessPolicy = ACCESS,
    *,
    catalog: str = "iceberg",
    refresh_period: str | None = None,
    cluster_cores: int | None = None,
) -> TrinoSecurityFiles:
    """Write ``rules.json``, ``resource-groups.json`` and the ``etc/`` snippets pointing at them.

    ``access-control.properties`` and ``resource-groups.properties`` name the JSON files by absolute path;
    ``refresh_period`` (e.g. ``"10s"``) makes Trino re-read the rules without a restart; ``cluster_cores``
    turns the groups' CPU shares into CPU limits (:func:`resource_groups`).
    """
    out = Path(directory).resolve()
    out.mkdir(parents=True, exist_ok=True)
    files = TrinoSecurityFiles(
        out / "rules.json",
        out / "resource-groups.json",
        out / "access-control.properties",
        out / "resource-groups.properties",
    )
    files.rules.write_text(json.dumps(access_control_rules(policy, catalog), indent=2) + "\n")
    groups = resource_groups(policy, cluster_cores=cluster_cores)
    files.resource_groups.write_text(json.dumps(groups, indent=2) + "\n")
    access = f"access-control.name=file\nsecurity.config-file={files.rules}\n"
    if refresh_period:
        access += f"security.refresh-period={refresh_period}\n"
    files.access_control_properties.write_text(access)
    files.resource_groups_properties.write_text(
        f"resource-groups.configuration-manager=file\nresource-groups.config-file={files.resource_groups}\n"
    )
    return files


# --- Trino's refusals as hmco errors ---------------------------------------------------------------------
_DENIED = re.compile(
    r"Cannot (?P<action>.+?) (?:columns \[.*?\] in )?(?:table or view|table|view|schema|catalog) "
    r"(?P<object>\S+?)(?:[:;,]|$| )"
)
_QUEUE = re.compile(r'"(?P<group>[^"]+)"')


def _may(policy: AccessPolicy, action: str, obj: str) -> str:
    """Which roles the declaration lets do ``action`` on ``obj`` (a hint for the error message)."""
    parts = obj.strip('"').split(".")
    namespace = parts[1] if len(parts) >= 2 else ""
    tier = next((t.name for t in TIERS.values() if t.namespace == namespace), None)
    writes = action.split()[0] in _WRITE_ACTIONS
    if tier is None:
        roles = [r for r in policy if not writes or r.writes] if len(parts) == 1 else []
        where = f"catalog {parts[0]}" if len(parts) == 1 else obj
    else:
        roles = [r for r in policy if tier in (r.writes if writes else r.reads)]
        where = namespace
    verb = "write" if writes else "read"
    names = ", ".join(f"{r.name} (Trino user {r.user!r})" for r in roles)
    admins = ", ".join(repr(a) for a in policy.admins) or "none"
    return f"Roles that may {verb} {where}: {names or 'none'}; admins: {admins}"


def translate_trino_error(exc: Exception, *, user: str, policy: AccessPolicy = ACCESS) -> HmcoError | None:
    """Trino's ``PERMISSION_DENIED`` / ``QUERY_QUEUE_FULL`` as a typed hmco error, or None for any other.

    ``exc`` is a :class:`trino.exceptions.TrinoQueryError` (read through ``error_name`` and ``message``).
    """
    name = getattr(exc, "error_name", None)
    message = str(getattr(exc, "message", exc))
    if name == "PERMISSION_DENIED":
        found = _DENIED.search(message)
        action = found.group("action") if found else "run this query"
        obj = found.group("object").rstrip(".") if found else "?"
        role = next((r.name for r in policy if r.user == user), None)
        return AccessDenied(
            f"Trino refused user {user!r} ({f'role {role}' if role else 'no declared role'}) to {action} "
            f"{obj}: {message}. "
            f"{_may(policy, action, obj)}; connect as one of them, or change the declaration "
            "(hmco.security.access.ACCESS) and regenerate the rules (hmco.security.trino.write_trino_security)",
            role=role or user,
            action=action,
            resource=obj,
        )
    if name == "QUERY_QUEUE_FULL":
        found = _QUEUE.search(message)
        group = found.group("group") if found else "?"
        limits = ""
        declared = group.removeprefix(f"{ROOT_GROUP}.")
        if any(g.name == declared for g in policy.resource_groups):
            g = policy.group(declared)
            limits = f" (declared: {g.hard_concurrency_limit} running, {g.max_queued} queued at most)"
        return QueryRejected(
            f"Trino rejected the query of user {user!r}: {message}. Resource group {group}{limits} is "
            "full; retry when its queries finish, or raise its limits in hmco.security.access.ACCESS",
            user=user,
            group=group,
        )
    return None
