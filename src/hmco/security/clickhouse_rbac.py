"""ClickHouse access control as code: roles, grants and per-desk row policies for the real-time tables.

Roles: ``etl_writer`` (SELECT + INSERT), ``bi_reader`` (SELECT, every row) and one role per desk that
only sees its ISOs (``desk_west``: CAISO, SPP; ``desk_east``: MISO) through a permissive row policy
``USING iso IN (...)``. Once a table has any row policy, users without one see no rows, so every table
also gets ``all_rows`` (``USING 1``) for everyone *except* the desk roles (lakehouse.md §4.4). Policies go
on the tables that hold rows (the ``_local`` ones on a cluster, which the Distributed tables read; that
needs the cluster's inter-server ``<secret>`` so shards see the initial user). Row policies filter every
user's SELECTs, but they only make sense for users who cannot change the tables (ClickHouse's docs), so
desk roles get SELECT only and desk users should also be ``readonly = 1`` (settings profile).

Two renderings of the same model:

- :func:`render_rbac` / :func:`render_role_assignments`: SQL for a server with SQL-driven access control
  (run by :func:`apply` as a user with access management);
- :func:`render_users_xml`: a ``users.d/`` file for a server whose access is managed in XML. ClickHouse
  has no per-role row filter in XML, so each user gets the filter of its desk roles (re-render when a
  user's roles change); users of the server without a filter get ``1`` on those tables (ClickHouse's
  rule for XML filters), the XML counterpart of ``all_rows``.

The in-process engine (chdb) has only the read-only ``users_xml`` access storage and always runs as its
``default`` user, so there the SQL is parse-checked only, while the XML file is enforced for real.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hmco._dependencies import import_optional
from hmco.clickhouse.ddl import ClickHouseLayout
from hmco.errors import ConfigError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["DEFAULT_DESKS", "Desk", "apply", "render_rbac", "render_role_assignments", "render_users_xml"]

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
    privileges = _privileges(desks)
    out = [f"CREATE ROLE IF NOT EXISTS {_name(role)}{on}" for role, _ in privileges]
    out += [f"GRANT{on} {grant} ON {db}.* TO {_name(role)}" for role, grant in privileges]
    desk_roles = ", ".join(_name(d.role) for d in desks)
    for table in layout.row_tables():
        for desk in desks:
            out.append(
                f"CREATE ROW POLICY IF NOT EXISTS {_name(desk.role + '_rows')}{on} ON {table} "
                f"FOR SELECT USING {_condition(desk.isos)} AS PERMISSIVE TO {_name(desk.role)}"
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


def render_users_xml(
    layout: ClickHouseLayout, users: Mapping[str, Iterable[str]], desks: Sequence[Desk] = DEFAULT_DESKS
) -> str:
    """The roles, grants and desk row filters as a ``users.d/`` file, for access managed in XML.

    Put it next to ``users.xml`` (every node of a cluster) as ``users.d/hmco_rbac.xml``: ClickHouse merges
    it into ``users.xml``, which keeps each user's password, networks and profile. Roles and their grants
    are the same as :func:`render_rbac`'s; each user in ``users`` is granted its roles, and a user with
    desk roles gets the row filter ``iso IN (<its desks' ISOs>)`` on every table holding rows (users
    without roles are left out). XML names cannot be quoted, so every name must be plain
    (``[A-Za-z_][A-Za-z0-9_]*``).

    Raises:
        ConfigError: a role, user, database or table name is not plain.
    """
    db, tables = _xml_tables(layout)
    privileges = _privileges(desks)
    desk_of = {d.role: d for d in desks}
    lines = ["<clickhouse>", "  <roles>"]
    for role, grant in privileges:
        _xml_name(role, "role")
        lines.append(f"    <{role}><grants><query>GRANT {grant} ON {db}.*</query></grants></{role}>")
    lines += ["  </roles>", "  <users>"]
    for user, user_roles in sorted((u, list(dict.fromkeys(r))) for u, r in users.items()):
        if not user_roles:
            continue
        _xml_name(user, "user")
        for role in user_roles:
            _xml_name(role, "role")
        lines += [f"    <{user}>", f"      <grants><query>GRANT {', '.join(user_roles)}</query></grants>"]
        user_desks = [desk_of[r] for r in user_roles if r in desk_of]
        if user_desks:
            condition = _xml(_condition(tuple(dict.fromkeys(i for d in user_desks for i in d.isos))))
            lines += ["      <databases>", f"        <{db}>"]
            lines += [f"          <{t}><filter>{condition}</filter></{t}>" for t in tables]
            lines += [f"        </{db}>", "      </databases>"]
        lines.append(f"    </{user}>")
    lines += ["  </users>", "</clickhouse>", ""]
    return "\n".join(lines)


def apply(client: Client, statements: Iterable[str]) -> list[str]:
    """Run the statements on a server (needs an admin with access management); returns what ran.

    Raises:
        ConfigError: the server refused a statement (the user lacks access management, or the server has
            no writable access storage); the message carries the server's answer and what already ran.
    """
    errors = import_optional("clickhouse_connect.driver.exceptions")
    ran: list[str] = []
    for stmt in statements:
        try:
            client.command(stmt)
        except errors.DatabaseError as exc:
            raise ConfigError(
                f"ClickHouse refused {stmt!r}: {str(exc).strip()}; applying access control needs a user with "
                "access management and a server with a writable access storage (user_directories)",
                ran=len(ran),
            ) from exc
        ran.append(stmt)
    return ran


def _privileges(desks: Sequence[Desk]) -> list[tuple[str, str]]:
    """(role, privileges on the layout's database) of every role, writer and reader first."""
    return [(WRITER, "SELECT, INSERT"), (READER, "SELECT"), *((d.role, "SELECT") for d in desks)]


def _condition(isos: Sequence[str]) -> str:
    """The row filter of a desk: its ISOs, or no row at all for a desk without any."""
    return f"iso IN ({', '.join(_quote(iso) for iso in isos)})" if isos else "0"


def _on_cluster(layout: ClickHouseLayout) -> str:
    return f" ON CLUSTER {_name(layout.cluster)}" if layout.cluster else ""


def _name(name: str) -> str:
    """A role, user, policy, database or cluster name: bare when plain, else backquoted and escaped."""
    if _PLAIN.fullmatch(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _xml_tables(layout: ClickHouseLayout) -> tuple[str, list[str]]:
    """The database and the unqualified tables holding rows, checked to be usable as XML element names."""
    db = _xml_name(layout.database, "database")
    return db, [_xml_name(qualified.split(".", 1)[1], "table") for qualified in layout.row_tables()]


def _xml_name(name: str, kind: str) -> str:
    """``name`` if it can be an element of ClickHouse's XML config (dots would split the config path)."""
    if not _PLAIN.fullmatch(name):
        raise ConfigError(
            f"the {kind} name {name!r} cannot be written in a users XML file (only [A-Za-z_][A-Za-z0-9_]* "
            "names can); manage it with SQL (render_rbac / render_role_assignments) instead"
        )
    return name


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
