"""The lake: four tiers (raw, staged, curated, ml), each a bucket and an Iceberg namespace.

Tier retention is data here (:data:`TIERS`), rendered as S3 lifecycle rules by
:meth:`Lake.lifecycle_rules`. Tables are created from the canonical schemas on first use, with the
dataset's partitioning, sort order, identifier (primary-key) fields and hmco's table properties.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from hmco.catalog import load_catalog
from hmco.config import Settings
from hmco.errors import ConfigError, SchemaError
from hmco.schemas import Dataset, get_dataset

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

__all__ = ["TABLE_PROPERTIES", "TIERS", "WATERMARK_PREFIX", "Lake", "Tier"]

TierName = Literal["raw", "staged", "curated", "ml"]


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
    "staged": Tier("staged", "hmco-staged", "hub_staged", timedelta(days=365), "parsed, not yet validated"),
    "curated": Tier(
        "curated", "hmco-curated", "hub_curated", timedelta(days=5 * 365), "validated, published"
    ),
    "ml": Tier("ml", "hmco-ml", "hub_ml", timedelta(days=365), "features and training sets"),
}

#: Table properties every hmco table gets (see reference: metadata cleanup, merged manifests, retries).
TABLE_PROPERTIES: dict[str, str] = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    "commit.manifest-merge.enabled": "true",
    "commit.retry.num-retries": "8",
    "commit.retry.min-wait-ms": "50",
    "commit.retry.max-wait-ms": "5000",
    # The target is measured in Arrow bytes; Parquet files come out 3-10x smaller.
    "write.target-file-size-bytes": str(1024 * 1024 * 1024),
}

WATERMARK_PREFIX = "hmco.watermark."


def tier(name: str) -> Tier:
    try:
        return TIERS[name]
    except KeyError:
        raise ConfigError(f"unknown tier {name!r}; tiers are {', '.join(TIERS)}") from None


class Lake:
    """Entry point to the lake: tiers, tables, object storage.

    Args:
        settings: hmco settings (``Settings.load()`` if omitted).
        catalog: an already-open pyiceberg catalog to use instead of building one.
    """

    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None) -> None:
        self.settings = settings or Settings.load()
        self._catalog = catalog
        self._lock = threading.Lock()
        self._tables: dict[str, Table] = {}

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            with self._lock:
                if self._catalog is None:
                    self._catalog = load_catalog(self.settings)
        return self._catalog

    # --- locations -------------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return not self.settings.uses_object_store

    def tier_location(self, name: str) -> str | None:
        """Where a tier's data lives: a file URI (local), ``s3://<bucket>`` (cluster), or None (REST-managed)."""
        t = tier(name)
        if self.settings.catalog.type == "rest":
            return None
        if self.is_local:
            return (self.settings.home_dir / "warehouse" / t.bucket).as_uri()
        return self._s3_root(name)

    def _s3_root(self, name: str) -> str:
        prefix = self.settings.storage_prefix.strip("/")
        return f"s3://{self.bucket(name)}" + (f"/{prefix}" if prefix else "")

    def bucket(self, name: str) -> str:
        """The bucket of a tier (``hmco-raw`` …, with the configured prefix)."""
        return self.settings.bucket_prefix + tier(name).bucket

    def storage_location(self, name: str) -> str:
        """A location for non-Iceberg files of a tier (raw payloads, quality results)."""
        loc = self.tier_location(name)
        return loc if loc is not None else self._s3_root(name)

    @cached_property
    def _s3fs(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        s3 = self.settings.s3
        endpoint = s3.endpoint or None
        scheme = "https"
        if endpoint and "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
        return pafs.S3FileSystem(
            access_key=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
            secret_key=s3.secret_access_key.get_secret_value() if s3.secret_access_key else None,
            session_token=s3.session_token.get_secret_value() if s3.session_token else None,
            region=s3.region,
            endpoint_override=endpoint,
            scheme=scheme,
            force_virtual_addressing=not s3.path_style,
            allow_bucket_creation=True,
        )

    def filesystem(self, uri: str) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and path for a ``file://`` or ``s3://`` URI."""
        import pyarrow.fs as pafs

        if uri.startswith("s3://"):
            return self._s3fs, uri[len("s3://") :]
        if uri.startswith("file://"):
            from urllib.parse import unquote, urlsplit

            return pafs.LocalFileSystem(), unquote(urlsplit(uri).path)
        return pafs.LocalFileSystem(), uri

    # --- tiers -----------------------------------------------------------------------------------

    def create_tiers(self, *, create_buckets: bool = True) -> list[str]:
        """Create every tier's namespace (and bucket, on S3) if missing; safe to call repeatedly."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError

        created: list[str] = []
        for t in TIERS.values():
            location = self.tier_location(t.name)
            if create_buckets and not self.is_local:
                self._s3fs.create_dir(self.bucket(t.name), recursive=False)
            elif location is not None and location.startswith("file://"):
                fs, path = self.filesystem(location)
                fs.create_dir(path, recursive=True)
            props = {
                "hmco.tier": t.name,
                "hmco.bucket": t.bucket,
                "hmco.retention-days": str(t.retention.days),
                "comment": t.description,
            }
            if location is not None:
                props["location"] = location
            try:
                self.catalog.create_namespace(t.namespace, properties=props)
                created.append(t.namespace)
            except NamespaceAlreadyExistsError:
                pass
        return created

    def lifecycle_rules(self) -> dict[str, dict[str, Any]]:
        """S3 lifecycle configurations, one per tier bucket, expiring objects after the tier's retention."""
        return {
            self.bucket(t.name): {
                "Rules": [
                    {
                        "ID": f"hmco-{t.name}-retention",
                        "Status": "Enabled",
                        "Filter": {"Prefix": self.settings.storage_prefix.strip("/")},
                        "Expiration": {"Days": t.retention.days},
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    }
                ]
            }
            for t in TIERS.values()
        }

    # --- tables ----------------------------------------------------------------------------------

    def identifier(self, dataset: Dataset | str, tier_name: str | None = None) -> str:
        ds = get_dataset(dataset)
        return f"{tier(tier_name or ds.tier).namespace}.{ds.name}"

    def table(self, dataset: Dataset | str, tier_name: str | None = None, *, create: bool = True) -> Table:
        """The Iceberg table of ``dataset`` in a tier (default: the dataset's own tier), created if missing."""
        from pyiceberg.exceptions import (
            NamespaceAlreadyExistsError,
            NoSuchTableError,
            TableAlreadyExistsError,
        )

        ds = get_dataset(dataset)
        ident = self.identifier(ds, tier_name)
        try:
            return self.catalog.load_table(ident)
        except NoSuchTableError:
            if not create:
                raise
        namespace = ident.split(".")[0]
        try:
            t = tier(tier_name or ds.tier)
            props = {"hmco.tier": t.name, "hmco.retention-days": str(t.retention.days)}
            if (loc := self.tier_location(t.name)) is not None:
                props["location"] = loc
            self.catalog.create_namespace(namespace, properties=props)
        except NamespaceAlreadyExistsError:
            pass
        try:
            return self._create_table(ds, ident)
        except TableAlreadyExistsError:  # a concurrent writer created it first
            return self.catalog.load_table(ident)

    def _create_table(self, ds: Dataset, ident: str) -> Table:
        from pyiceberg.catalog import Catalog
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.schema import Schema, assign_fresh_schema_ids
        from pyiceberg.table.sorting import SortField, SortOrder
        from pyiceberg.transforms import (
            DayTransform,
            HourTransform,
            IdentityTransform,
            MonthTransform,
            YearTransform,
        )

        transforms = {
            "identity": IdentityTransform,
            "hour": HourTransform,
            "day": DayTransform,
            "month": MonthTransform,
            "year": YearTransform,
        }
        converted = assign_fresh_schema_ids(Catalog._convert_schema_if_needed(ds.schema))
        schema = Schema(
            *converted.fields,
            identifier_field_ids=[converted.find_field(c).field_id for c in ds.primary_key],
        )
        spec = PartitionSpec(
            *[
                PartitionField(
                    source_id=schema.find_field(pf.source).field_id,
                    field_id=1000 + i,
                    transform=transforms[pf.transform](),
                    name=pf.field_name,
                )
                for i, pf in enumerate(ds.partition_by)
            ]
        )
        order = SortOrder(
            *[
                SortField(source_id=schema.find_field(c).field_id, transform=IdentityTransform())
                for c in ds.sort_by
            ]
        )
        location = None
        tier_loc = self.tier_location(ident.split(".")[0].removeprefix("hub_"))
        if tier_loc is not None:
            location = f"{tier_loc}/{ds.name}"
        props = {**TABLE_PROPERTIES, "hmco.dataset": ds.name, "comment": ds.description}
        return self.catalog.create_table(
            ident, schema=schema, location=location, partition_spec=spec, sort_order=order, properties=props
        )

    def watermark(
        self, dataset: Dataset | str, pipeline: str, tier_name: str | None = None
    ) -> datetime | None:
        """The last window end a pipeline committed to a table (stored atomically with the data)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            tbl = self.table(dataset, tier_name, create=False)
        except NoSuchTableError:
            return None
        value = tbl.properties.get(WATERMARK_PREFIX + pipeline)
        return datetime.fromisoformat(value) if value else None

    def committed_windows(
        self, dataset: Dataset | str, pipeline: str, tier_name: str | None = None
    ) -> set[tuple[datetime, datetime]]:
        """The windows a pipeline committed to a table, read from the snapshot log (``hmco.window``).

        Exact per window, unlike the watermark: a backfill of older history after live running knows
        which of its windows are already in. Windows whose snapshots were expired are not listed.
        """
        from pyiceberg.exceptions import NoSuchTableError

        try:
            tbl = self.table(dataset, tier_name, create=False)
        except NoSuchTableError:
            return set()
        done: set[tuple[datetime, datetime]] = set()
        for snap in tbl.snapshots():
            props = snap.summary.additional_properties if snap.summary else {}
            if props.get("hmco.pipeline") == pipeline and "/" in props.get("hmco.window", ""):
                start, end = props["hmco.window"].split("/", 1)
                done.add((datetime.fromisoformat(start), datetime.fromisoformat(end)))
        return done

    def drop_table(
        self, dataset: Dataset | str, tier_name: str | None = None, *, purge: bool = False
    ) -> None:
        ident = self.identifier(dataset, tier_name)
        if purge:
            self.catalog.purge_table(ident)
        else:
            self.catalog.drop_table(ident)

    def scan(
        self, dataset: Dataset | str, tier_name: str | None = None, row_filter: str | None = None
    ) -> Any:
        """A pyiceberg scan of a table (``.to_arrow()``, ``.to_polars()``, ``.to_duckdb()``)."""
        tbl = self.table(dataset, tier_name, create=False)
        return tbl.scan(row_filter=row_filter) if row_filter else tbl.scan()

    def check_dataset(self, dataset: Dataset | str) -> Dataset:
        try:
            return get_dataset(dataset)
        except SchemaError as exc:
            raise ConfigError(str(exc)) from None

    def __repr__(self) -> str:
        return f"Lake(profile={self.settings.profile!r}, catalog={self.settings.catalog.type!r})"
