"""Settings and profiles.

Settings come, highest priority first, from keyword arguments, mounted secret files, ``HMCO_*``
environment variables (nested with ``__``: ``HMCO_CATALOG__URI``, ``HMCO_SOURCES__EIA_API_KEY``), a
YAML profile file (``HMCO_PROFILE_FILE`` or ``Settings.load(profile_file=...)``) and the defaults.

Secret files (the Kubernetes / External Secrets / Vault-agent layout: one file per key) live in
``HMCO_SECRETS_DIR`` (default ``/var/run/secrets/hmco``, read when it exists). A file is named like the
environment variable without ``HMCO_``, in either case: ``sources__eia_api_key`` (or
``SOURCES__EIA_API_KEY``) sets ``sources.eia_api_key``; its content, stripped of surrounding
whitespace, is the value. The rule is simple: **a mounted file beats the environment** (the mount is
what the secret store rotates), and an explicit keyword argument beats both. Hidden entries (the
``..data`` links Kubernetes swaps on rotation), empty files and names that are no setting are skipped.
Every value read from a file into a secret field is registered for redaction as it is read.
:meth:`Settings.secret` gives a :class:`SecretRef` that re-reads its file when it changes, so a
long-running process (``hmco serve``, the real-time runner) picks up a rotated key without a restart. The default profile,
``local``, needs no servers: a SQLite catalog and a file warehouse under ``HMCO_HOME`` (``./.hmco``)
and chdb for the real-time store. ``cluster`` points the same code at PostgreSQL/REST catalogs,
S3/MinIO, ClickHouse and Trino. Every secret is a ``SecretStr``: it prints as ``**********``; and
no settings object prints a secret inside a plain value either (``catalog.uri`` may carry
``user:password@``): its repr and str pass every value through the redactor. The values themselves
stay real, for the code that connects with them.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import threading
import types
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hmco.errors import ConfigError
from hmco.names import check_key
from hmco.redaction import redact_mapping, redact_text, register_secret

__all__ = [
    "DEFAULT_SECRETS_DIR",
    "AlertSettings",
    "CatalogSettings",
    "ClickHouseSettings",
    "S3Settings",
    "SecretFilesSource",
    "SecretRef",
    "Settings",
    "SourceCredentials",
    "TrinoSettings",
]

Profile = Literal["local", "cluster"]

log = logging.getLogger("hmco.config")

#: Where secret files are mounted unless ``HMCO_SECRETS_DIR`` says otherwise (read only when it exists).
DEFAULT_SECRETS_DIR = Path("/var/run/secrets/hmco")

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


# --- secret files ---------------------------------------------------------------------------------


def _field_type(model: type[BaseModel], parts: list[str]) -> Any:
    """The annotation of the (nested) field ``parts`` of ``model``, or None when there is no such field."""
    annotation: Any = model
    for part in parts:
        models = [a for a in _members(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        field = next((m.model_fields[part] for m in models if part in m.model_fields), None)
        if field is None:
            return None
        annotation = field.annotation
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types of a union (``X | None`` → ``(X, NoneType)``), or the annotation itself."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _is_secret_field(annotation: Any) -> bool:
    return any(a is SecretStr for a in _members(annotation))


def _secret_file_name(entry: str) -> str | None:
    """The dotted setting a file name stands for (``SOURCES__EIA_API_KEY`` → ``sources.eia_api_key``)."""
    if entry.startswith(".") or not entry.strip():
        return None
    name = entry.lower()
    name = name.removeprefix("hmco_")
    return name.replace("__", ".")


def _read_secret_file(path: Path) -> str | None:
    """The stripped content of a secret file (None when empty).

    Raises:
        ConfigError: the file cannot be read (naming the file, never its content).
    """
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read secret file {path}: {type(exc).__name__}", file=str(path)) from None
    return value or None


def secret_files(directory: Path) -> dict[str, Path]:
    """Setting name → file, for every candidate secret file in ``directory`` (hidden entries skipped)."""
    found: dict[str, Path] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return found
    for path in entries:
        name = _secret_file_name(path.name)
        if name is None or not path.is_file():
            continue
        found.setdefault(name, path)
    return found


class SecretFilesSource(PydanticBaseSettingsSource):
    """Settings from one-file-per-key secret mounts (see the module docstring for the naming rule).

    Values of secret fields are registered for redaction as they are read. A file that names no
    setting is skipped with a warning naming the file (never its content).
    """

    def __init__(self, settings_cls: type[BaseSettings], directory: Path | None) -> None:
        super().__init__(settings_cls)
        self.directory = directory

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # all values come from __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.directory is None:
            return values
        for name, path in secret_files(self.directory).items():
            parts = name.split(".")
            if name == "secrets_dir" or _field_type(self.settings_cls, parts) is None:
                log.warning("secret file %s names no hmco setting; ignored", path.name)
                continue
            value = _read_secret_file(path)
            if value is None:
                continue
            if _is_secret_field(_field_type(self.settings_cls, parts)):
                register_secret(value)
            target = values
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):  # ``s3`` and ``s3__region`` both mounted: the key wins
                    break
            else:
                target[parts[-1]] = value
        return values


def _secrets_dir(init_kwargs: Mapping[str, Any], profile: Mapping[str, Any]) -> tuple[Path | None, bool]:
    """The secrets directory to read and whether it was asked for explicitly (kwarg > env > profile)."""
    for value in (
        init_kwargs.get("secrets_dir"),
        os.environ.get("HMCO_SECRETS_DIR"),
        profile.get("secrets_dir"),
    ):
        if value is not None and str(value) != "":
            path = Path(str(value)).expanduser()
            return path, path != DEFAULT_SECRETS_DIR  # the default (e.g. a dumped settings) may be absent
        if value == "":  # explicitly switched off
            return None, True
    return DEFAULT_SECRETS_DIR, False


def _dotted(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted names of a nested mapping of keyword arguments (``{"sources": {"k": 1}}`` → ``sources.k``)."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        yield name
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{name}.")


class SecretRef:
    """One secret setting as it is *now*: re-read from its mounted file whenever that file changes.

    ``get()`` stats the file (a few microseconds) and re-reads it when its size, mtime or inode changed
    (Kubernetes swaps a symlink on rotation); ``refresh()`` re-reads it unconditionally (after a 401).
    Without a file, or when the setting was a keyword argument, it is the value loaded. Every value read
    is registered for redaction; the repr names the setting, never the value.
    """

    def __init__(self, name: str, value: SecretStr | None, paths: Iterable[Path] = ()) -> None:
        self.name = name
        self.paths = tuple(paths)
        self._loaded = value.get_secret_value() if value is not None else None
        self._value = self._loaded
        self._signature: tuple[str, int, int, int] | None = None
        self._lock = threading.Lock()
        register_secret(self._loaded)

    def _file(self) -> tuple[Path, tuple[str, int, int, int]] | None:
        for path in self.paths:
            try:
                st = path.stat()
            except OSError:
                continue
            return path, (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
        return None

    def get(self) -> str | None:
        """The current value (``None`` when unset or empty)."""
        found = self._file()
        if found is not None and found[1] != self._signature:
            with self._lock:
                self._reread(*found)
        return self._value or None

    def refresh(self) -> bool:
        """Re-read the file now; True when the value changed (worth retrying a refused request)."""
        found = self._file()
        if found is None:
            return False
        with self._lock:
            before = self._value
            self._reread(*found)
            return self._value != before

    def _reread(self, path: Path, signature: tuple[str, int, int, int]) -> None:
        value = _read_secret_file(path)
        register_secret(value)
        if value is not None and value != self._value and self._signature is not None:
            log.info("secret %s changed on disk (%s); using the new value", self.name, path.name)
        self._value = value if value is not None else self._loaded
        self._signature = signature

    def __repr__(self) -> str:
        where = f", file={self.paths[0].name!r}" if self.paths else ""
        return f"SecretRef({self.name!r}{where})"


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
    secrets_dir: Path | None = Field(
        DEFAULT_SECRETS_DIR, description="directory of mounted secret files (one per key); they beat env"
    )

    _pinned: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # Keyword arguments beat secret files, at load and at rotation alike.
        self._pinned = frozenset(_dotted({k: v for k, v in values.items() if not k.startswith("_")}))

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        return _redacted_repr_args(super().__repr_args__())

    @field_validator("secrets_dir", mode="before")
    @classmethod
    def _empty_secrets_dir(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bucket_prefix")
    @classmethod
    def _check_bucket_prefix(cls, value: str) -> str:
        if (value and re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,40}", value) is None) or ".." in value:
            raise ValueError(
                f"must be lower-case letters, digits, '-' or '.' (an S3 bucket prefix), not {value!r}"
            )
        return value

    @field_validator("storage_prefix")
    @classmethod
    def _check_storage_prefix(cls, value: str) -> str:
        if value.strip("/"):
            try:
                check_key(value.strip("/"), "storage_prefix")
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("storage_prefix ")) from None
        return value

    def secret(self, name: str) -> SecretRef:
        """A :class:`SecretRef` to the secret setting ``name`` (``"sources.eia_api_key"``).

        It follows the setting's mounted file in :attr:`secrets_dir` (if it was not a keyword argument),
        so a rotated key is used on the next request without rebuilding anything.

        Raises:
            ConfigError: ``name`` is not a secret setting.
        """
        parts = name.split(".")
        if not _is_secret_field(_field_type(type(self), parts)):
            raise ConfigError(f"{name!r} is not a secret setting")
        value: Any = self
        for part in parts:
            value = getattr(value, part, None) if value is not None else None
        pinned = any(".".join(parts[:i]) in self._pinned for i in range(1, len(parts) + 1))
        paths: list[Path] = []
        if self.secrets_dir is not None and not pinned:
            stem = "__".join(parts)
            paths = [
                self.secrets_dir / n for n in (stem, stem.upper(), f"hmco_{stem}", f"HMCO_{stem.upper()}")
            ]
        return SecretRef(name, value if isinstance(value, SecretStr) else None, paths)

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
        """Precedence, highest first: keyword arguments > secret files > environment > profile > defaults."""
        path = _profile_file.get()
        profile = YamlConfigSettingsSource(settings_cls, yaml_file=path) if path is not None else None
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        directory, explicit = _secrets_dir(init_kwargs, profile() if profile is not None else {})
        if directory is not None and not directory.is_dir():
            if explicit:
                raise ConfigError(f"secrets directory {directory} (HMCO_SECRETS_DIR) does not exist")
            directory = None
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            SecretFilesSource(settings_cls, directory),
            env_settings,
        ]
        if profile is not None:
            sources.append(profile)
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
