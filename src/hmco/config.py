"""Settings and profiles.

Settings come, highest priority first, from keyword arguments, ``HMCO_*`` environment variables
(nested with ``__``: ``HMCO_CATALOG__URI``, ``HMCO_SOURCES__EIA_API_KEY``), a YAML profile file
(``HMCO_PROFILE_FILE`` or ``Settings.load(profile_file=...)``) and the defaults. The default profile,
``local``, needs no servers: a SQLite catalog and a file warehouse under ``HMCO_HOME`` (``./.hmco``)
and chdb for the real-time store. ``cluster`` points the same code at PostgreSQL/REST catalogs,
S3/MinIO, ClickHouse and Trino. Every secret is a ``SecretStr``: it prints as ``**********``; and
no settings object prints a secret inside a plain value either (``catalog.uri`` may carry
``user:password@``): its repr and str pass every value through the redactor. The values themselves
stay real, for the code that connects with them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_serializer, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hmco.errors import ConfigError
from hmco.redaction import redact_mapping, redact_text

__all__ = [
    "AlertSettings",
    "CatalogSettings",
    "ClickHouseSettings",
    "S3Settings",
    "Settings",
    "SourceCredentials",
    "TrinoSettings",
]

Profile = Literal["local", "cluster"]

_profile_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("hmco_profile_file", default=None)


def _redacted_repr_args(args: Iterable[tuple[str | None, Any]]) -> Iterator[tuple[str | None, Any]]:
    """Field values as a repr may show them: strings and mappings redacted, ``SecretStr`` and nested
    settings as they are (they print themselves masked)."""
    for name, value in args:
        if isinstance(value, str):
            value = redact_text(value)
        elif isinstance(value, Mapping):
            value = redact_mapping(value)
        yield name, value


class _Section(BaseModel):
    """A group of settings whose repr and str never show a secret."""

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        return _redacted_repr_args(super().__repr_args__())


class S3Settings(_Section):
    """Object storage (MinIO in production, any S3 endpoint in tests)."""

    endpoint: str | None = Field(None, description="e.g. http://minio:9000; None means AWS defaults")
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    region: str = "us-east-1"
    path_style: bool = True

    def pyiceberg_properties(self) -> dict[str, str]:
        """FileIO properties in pyiceberg's ``s3.*`` vocabulary."""
        props: dict[str, str] = {"s3.region": self.region}
        if self.endpoint:
            props["s3.endpoint"] = self.endpoint
        if self.access_key_id:
            props["s3.access-key-id"] = self.access_key_id.get_secret_value()
        if self.secret_access_key:
            props["s3.secret-access-key"] = self.secret_access_key.get_secret_value()
        if self.session_token:
            props["s3.session-token"] = self.session_token.get_secret_value()
        props["s3.force-virtual-addressing"] = str(not self.path_style).lower()
        return props


class CatalogSettings(_Section):
    """Iceberg catalog: ``sqlite`` (embedded), ``sql`` (PostgreSQL) or ``rest``."""

    type: Literal["sqlite", "sql", "rest"] = "sqlite"
    name: str = "hmco"
    uri: str | None = Field(None, description="SQLAlchemy URL (sql) or REST endpoint (rest)")
    password: SecretStr | None = Field(None, description="database password, kept out of `uri`")
    credential: SecretStr | None = Field(None, description="REST OAuth2 client credential `id:secret`")
    token: SecretStr | None = Field(None, description="REST bearer token")
    warehouse: str | None = Field(None, description="warehouse root; per-tier buckets are derived")
    properties: dict[str, str] = Field(default_factory=dict, description="extra pyiceberg properties")

    @field_serializer("uri", when_used="json")
    def _redact_uri(self, uri: str | None) -> str | None:
        """JSON dumps mask a password in the URI, as they mask every ``SecretStr``."""
        return redact_text(uri) if uri else uri


class ClickHouseSettings(_Section):
    """Real-time store. ``chdb`` runs the engine in process; ``http`` talks to a server or cluster."""

    interface: Literal["chdb", "http", "https"] = "chdb"
    host: str = "127.0.0.1"
    port: int = 8123
    username: str = "default"
    password: SecretStr | None = None
    database: str = "default"
    cluster: str | None = Field(None, description="cluster name for ON CLUSTER DDL (3×2 in production)")
    path: Path | None = Field(None, description="chdb data directory; default HMCO_HOME/clickhouse")
    compress: bool | str = "lz4"
    retention_days: int = 400


class TrinoSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    user: str = "hmco"
    catalog: str = "iceberg"
    http_scheme: Literal["http", "https"] = "http"
    password: SecretStr | None = None


class SourceCredentials(_Section):
    """API keys of the sources; all optional until the source that needs one is used."""

    eia_api_key: SecretStr | None = None
    fred_api_key: SecretStr | None = None
    noaa_token: SecretStr | None = None
    census_key: SecretStr | None = None
    miso_subscription_key: SecretStr | None = None
    user_agent: str = "hmco (data-eng@254carbon.com)"


class AlertSettings(_Section):
    """Where breach and recovery alerts go: a Slack-compatible incoming webhook (``HMCO_ALERTS__WEBHOOK_URL``).

    The URL is a secret (a Slack webhook URL carries its token in the path); without it no alert is sent.
    """

    webhook_url: SecretStr | None = Field(None, description="incoming-webhook URL (its path is a token)")
    channel: str | None = Field(None, description="channel override sent in the payload (e.g. #ops)")
    timeout: float = Field(10.0, gt=0, description="seconds per POST")
    retries: int = Field(3, ge=0, le=10, description="retries of a POST that failed to connect or got 5xx")
    remind_every: timedelta | None = Field(
        None, description="repeat an open breach this often (default never)"
    )


class DRSettings(_Section):
    """The disaster-recovery site: another S3 endpoint holding the same bucket names, and its catalog.

    ``HMCO_DR__S3__ENDPOINT`` (and ``HMCO_DR__S3__ACCESS_KEY_ID`` …) name it; without its own keys the
    primary's are used. Its catalog defaults to a SQLite file under ``HMCO_HOME/dr``.
    """

    s3: S3Settings | None = None
    catalog: CatalogSettings | None = None


class Settings(BaseSettings):
    """All of hmco's configuration; ``Settings.load()`` is the usual entry point."""

    model_config = SettingsConfigDict(
        env_prefix="HMCO_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    profile: Profile = "local"
    home: Path = Field(Path(".hmco"), description="root of the embedded lake (local profile)")
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    trino: TrinoSettings = Field(default_factory=TrinoSettings)
    sources: SourceCredentials = Field(default_factory=SourceCredentials)
    dr: DRSettings = Field(default_factory=DRSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    bucket_prefix: str = Field("", description="prefix of the tier bucket names (e.g. per environment)")
    storage_prefix: str = Field(
        "", description="key prefix inside every tier bucket (environments sharing buckets)"
    )
    log_level: str = "INFO"
    log_json: bool = False

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        return _redacted_repr_args(super().__repr_args__())

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.profile == "cluster" and self.catalog.type == "sqlite":
            raise ValueError("profile 'cluster' needs catalog.type 'sql' (PostgreSQL) or 'rest'")
        if self.catalog.type in ("sql", "rest") and not self.catalog.uri:
            raise ValueError(f"catalog.type {self.catalog.type!r} needs catalog.uri")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _profile_file.get()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)

    @classmethod
    def load(cls, profile_file: str | Path | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides, environment, an optional YAML profile and defaults.

        Raises:
            ConfigError: naming every invalid field.
        """
        import os

        path = profile_file or os.environ.get("HMCO_PROFILE_FILE")
        resolved = Path(path) if path else None
        if resolved is not None and not resolved.is_file():
            raise ConfigError(f"profile file {resolved} does not exist")
        token = _profile_file.set(resolved)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid hmco settings: {problems}", profile_file=resolved) from None
        finally:
            _profile_file.reset(token)

    @property
    def uses_object_store(self) -> bool:
        """True when the lake lives in S3/MinIO (an endpoint or keys, or a server catalog), not on disk."""
        return bool(self.s3.endpoint or self.s3.access_key_id) or self.catalog.type != "sqlite"

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def chdb_path(self) -> Path:
        return (self.clickhouse.path or self.home_dir / "clickhouse").expanduser().resolve()
