"""ClickHouse access control as code: roles, grants and per-desk row policies for the real-time tables.

Roles: ``etl_writer`` (SELECT + INSERT), ``bi_reader`` (SELECT, every row) and one role per desk that
only sees its ISOs (``desk_west``: CAISO, SPP; ``desk_east``: MISO) through a permissive row policy
``USING iso IN (...)``. Once a table has any row policy, users without one see no rows, so every table
also gets ``all_rows`` (``USING 1``) for everyone *except* the desk roles (lakehouse.md §4.4). Policies go
on the tables that hold rows (the ``_local`` ones on a cluster, which the Distributed tables read; that
needs the cluster's inter-server ``<secret>`` so shards see the initial user). Row policies only
restrict readonly users, so desk users should be ``readonly = 1`` (settings profile).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hmco.clickhouse.ddl import ClickHouseLayout

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["DEFAULT_DESKS", "Desk", "apply", "render_rbac", "render_role_assignments"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WRITER = "etl_writer"
READER = "bi_reader"


@dataclass(frozen=True)
class Desk:
    """A trading desk: a role that sees only the rows of ``isos``."""

    role: str
    isos: tuple[str, ...]


DEFAULT_DESKS = (Desk("desk_west", ("CAISO", "SPP")), Desk("desk_east", ("MISO",)))


def render_rbac(layout: ClickHouseLayout, desks: Sequence[Desk] = DEFAULT_DESKS) -> list[str]:
    """Every statement (idempotent: IF NOT EXISTS / GRANT), ``ON CLUSTER`` when the layout has a cluster."""
    on = _on_cluster(layout)
    db = _name(layout.database)
    roles = [WRITER, READER, *(d.role for d in desks)]
    out = [f"CREATE ROLE IF NOT EXISTS {_name(role)}{on}" for role in roles]
    out.append(f"GRANT{on} SELECT, INSERT ON {db}.* TO {WRITER}")
    out.append(f"GRANT{on} SELECT ON {db}.* TO {READER}")
    out += [f"GRANT{on} SELECT ON {db}.* TO {_name(d.role)}" for d in desks]
    desk_roles = ", ".join(_name(d.role) for d in desks)
    for table in layout.row_tables():
        for desk in desks:
            isos = ", ".join(_quote(iso) for iso in desk.isos)
            out.append(
                f"CREATE ROW POLICY IF NOT EXISTS {_name(desk.role + '_rows')}{on} ON {table} "
                f"FOR SELECT USING iso IN ({isos}) AS PERMISSIVE TO {_name(desk.role)}"
            )
        except_clause = f" EXCEPT {desk_roles}" if desks else ""
        out.append(
            f"CREATE ROW POLICY IF NOT EXISTS all_rows{on} ON {table} "
            f"FOR SELECT USING 1 AS PERMISSIVE TO ALL{except_clause}"
        )
    return out


def render_role_assignments(layout: ClickHouseLayout, users: Mapping[str, Iterable[str]]) -> list[str]:
    """``GRANT <role> TO <user>`` for each user's roles (users themselves are managed by the platform)."""
    on = _on_cluster(layout)
    return [
        f"GRANT{on} {', '.join(_name(r) for r in roles)} TO {_name(user)}"
        for user, roles in sorted(users.items())
        if roles
    ]


def apply(client: Client, statements: Iterable[str]) -> list[str]:
    """Run the statements on a server (needs an admin with access management); returns what ran."""
    ran = []
    for stmt in statements:
        client.command(stmt)
        ran.append(stmt)
    return ran


def _on_cluster(layout: ClickHouseLayout) -> str:
    return f" ON CLUSTER {_name(layout.cluster)}" if layout.cluster else ""


def _name(name: str) -> str:
    """A role, user, policy, database or cluster name: bare when plain, else backquoted and escaped."""
    if _PLAIN.match(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
