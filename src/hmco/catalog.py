"""Catalog factory: SQLite (embedded), SQL on PostgreSQL, or an Iceberg REST catalog.

The catalog is chosen by configuration only (``settings.catalog.type``); the returned object is a
plain pyiceberg ``Catalog``, so everything pyiceberg offers stays available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.redaction import redact_text, redact_url, register_secret

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

__all__ = ["catalog_properties", "load_catalog"]

FSSPEC_IO = "pyiceberg.io.fsspec.FsspecFileIO"


def catalog_properties(settings: Settings) -> dict[str, str]:
    """The pyiceberg properties (``uri``, ``warehouse``, ``s3.*`` …) the settings describe."""
    cfg = settings.catalog
    props: dict[str, str] = {}
    if settings.uses_object_store:
        props.update(settings.s3.pyiceberg_properties())
        # FsspecFileIO (s3fs) appends ~2x faster than PyArrowFileIO against MinIO/SeaweedFS (measured).
        props.setdefault("py-io-impl", FSSPEC_IO)
    if cfg.type == "sqlite":
        home = settings.home_dir
        home.mkdir(parents=True, exist_ok=True)
        props["uri"] = f"sqlite:///{home / 'catalog.db'}"
        props["warehouse"] = cfg.warehouse or (home / "warehouse").as_uri()
    elif cfg.type == "sql":
        props["uri"] = _sql_uri(cfg.uri or "", cfg.password.get_secret_value() if cfg.password else None)
        props["warehouse"] = cfg.warehouse or "s3://hmco-curated"
        props.setdefault("pool_pre_ping", "true")
    else:
        props["uri"] = cfg.uri or ""
        if cfg.warehouse:
            props["warehouse"] = cfg.warehouse
        if cfg.credential:
            props["credential"] = cfg.credential.get_secret_value()
        if cfg.token:
            props["token"] = cfg.token.get_secret_value()
    props.update(cfg.properties)
    for secret in (cfg.password, cfg.credential, cfg.token, settings.s3.secret_access_key):
        if secret is not None:
            register_secret(secret.get_secret_value())
    for password in _uri_passwords(cfg.uri):
        register_secret(password)
    return props


def _uri_passwords(uri: str | None) -> set[str]:
    """The password a URI carries in its userinfo, as written and decoded (SQLAlchemy decodes ``%40``)."""
    if not uri:
        return set()
    try:
        password = urlsplit(uri).password
    except ValueError:  # e.g. an unbalanced ``[`` in the host: redaction still masks the userinfo
        return set()
    return {password, unquote(password)} if password else set()


def _sql_uri(uri: str, password: str | None) -> str:
    if not password:
        return uri
    from sqlalchemy.engine import make_url

    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def _sql_catalog(name: str, props: dict[str, str]) -> Catalog:
    """A SqlCatalog; opening one creates its tables, which races when processes start on a new lake."""
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import DatabaseError

    for attempt in range(3):
        try:
            return SqlCatalog(name, **props)
        except DatabaseError:  # e.g. "table iceberg_tables already exists": the other process won
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def load_catalog(settings: Settings | None = None) -> Catalog:
    """Open the catalog the settings describe (creating the embedded SQLite one on first use)."""
    settings = settings or Settings.load()
    props = catalog_properties(settings)
    name = settings.catalog.name
    try:
        if settings.catalog.type in ("sqlite", "sql"):
            return _sql_catalog(name, props)
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(name, **props)
    except Exception as exc:  # connection refused, bad URL, auth …
        raise ConfigError(
            f"cannot open the {settings.catalog.type} Iceberg catalog: {redact_text(str(exc))}",
            uri=redact_url(props.get("uri", "")),
        ) from None
