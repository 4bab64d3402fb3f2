"""The lake: four tiers (raw, staged, curated, ml), each a bucket and an Iceberg namespace.

Tier retention is data (:data:`~hmco.lake.tiers.TIERS`): the raw tier's payload archive gets an S3
lifecycle rule (:meth:`Lake.lifecycle_rules`); the tiers holding Iceberg tables never do — their
retention runs inside Iceberg (:mod:`hmco.maintenance.retention`). Tables are created from the canonical schemas on first use, with the
dataset's partitioning, sort order, identifier (primary-key) fields and hmco's table properties.
Creation is safe under races between processes, and never starts a second metadata chain where a
table's metadata already exists (a lost catalog): such a table is found and re-registered.
hmco's own state (watermarks, committed windows, gate results, quarantine) is :attr:`Lake.state`.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.catalog import load_catalog
from hmco.config import S3Settings, Settings
from hmco.errors import ConfigError, LakeStateError, SchemaError
from hmco.lake.state import WATERMARK_PREFIX, Interval, LakeState
from hmco.lake.tiers import PAYLOAD_PREFIX, TIERS, Tier, TierName, tier
from hmco.names import check_identifier
from hmco.schemas import Dataset, get_dataset

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

__all__ = [
    "TABLE_PROPERTIES",
    "TIERS",
    "WATERMARK_PREFIX",
    "Lake",
    "LakeState",
    "Tier",
    "TierName",
    "s3_client",
    "tier",
]


def s3_client(s3: S3Settings, *, max_attempts: int | None = None) -> Any:
    """A botocore S3 client for ``s3`` (endpoint, keys, region, addressing): the one place hmco builds one.

    ``max_attempts`` bounds botocore's retries (its default when None).
    """
    import botocore.session
    from botocore.config import Config

    retries = {"retries": {"max_attempts": max_attempts}} if max_attempts is not None else {}
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s3.endpoint or None,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        aws_secret_access_key=s3.secret_access_key.get_secret_value() if s3.secret_access_key else None,
        aws_session_token=s3.session_token.get_secret_value() if s3.session_token else None,
        config=Config(s3={"addressing_style": "path" if s3.path_style else "virtual"}, **retries),
    )


log = get_logger("hmco.lake")

#: The bucket of backups and their records (beside the four tier buckets, never one of them).
BACKUP_BUCKET = "hmco-backups"

_METADATA_FILE = re.compile(r"^(\d+)-[0-9a-fA-F-]+\.metadata\.json$")

#: Table properties every hmco table gets (see reference: metadata cleanup, merged manifests, retries).
TABLE_PROPERTIES: dict[str, str] = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    "commit.manifest-merge.enabled": "true",
    # pyiceberg must hand a conflict over instead of re-applying a stale transaction: hmco's sinks
    # retry themselves, re-planning the window's delete and re-reading the state the commit carries.
    "commit.retry.num-retries": "0",
    # The target is measured in Arrow bytes; Parquet files come out 3-10x smaller.
    "write.target-file-size-bytes": str(1024 * 1024 * 1024),
}


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
        self.state = LakeState(self)

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

    def backup_location(self) -> str:
        """Where backups and their records live: ``s3://<prefix>hmco-backups[/<storage prefix>]`` on S3,
        ``<HMCO_HOME>/backups`` locally. Never inside a tier, so tier upkeep never touches it."""
        if self.is_local:
            return (self.settings.home_dir / "backups").as_uri()
        prefix = self.settings.storage_prefix.strip("/")
        return f"s3://{self.settings.bucket_prefix}{BACKUP_BUCKET}" + (f"/{prefix}" if prefix else "")

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
        created: list[str] = []
        for t in TIERS.values():
            location = self.tier_location(t.name)
            if create_buckets and not self.is_local:
                self._s3fs.create_dir(self.bucket(t.name), recursive=False)
            elif location is not None and location.startswith("file://"):
                fs, path = self.filesystem(location)
                fs.create_dir(path, recursive=True)
            if self._ensure_namespace(t):
                created.append(t.namespace)
        return created

    def lifecycle_rules(self, archive_prefix: str = PAYLOAD_PREFIX) -> dict[str, dict[str, Any]]:
        """The S3 lifecycle configuration of the raw tier's bucket: payloads expire after raw's retention.

        Only the raw tier gets a rule, scoped to its payload archive (``<storage prefix>/payloads/``):
        the other tiers hold Iceberg tables, whose files live as long as a snapshot references them,
        whatever their age, so object expiry there would break live tables (their retention runs
        inside Iceberg: :func:`hmco.maintenance.retention.apply_retention`). Nothing is rendered when
        the raw bucket is also another tier's bucket.
        """
        raw = tier("raw")
        bucket = self.bucket(raw.name)
        if any(self.bucket(t.name) == bucket for t in TIERS.values() if t.name != raw.name):
            return {}
        storage = self.settings.storage_prefix.strip("/")
        prefix = "/".join(p for p in (storage, archive_prefix.strip("/")) if p) + "/"
        rule_id = f"hmco-{raw.name}-retention" + (f"-{storage}" if storage else "")
        return {
            bucket: {
                "Rules": [
                    {
                        "ID": rule_id[:255],
                        "Status": "Enabled",
                        "Filter": {"Prefix": prefix},
                        "Expiration": {"Days": raw.retention.days},
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    }
                ]
            }
        }

    def apply_lifecycle_rules(self, bucket: str | None = None) -> dict[str, Any]:
        """Put :meth:`lifecycle_rules` on ``bucket`` (default: the raw bucket); returns the configuration put.

        Rules of other prefixes (other environments sharing the bucket) are kept; this lake's rule is
        replaced. Object expiry is refused on any bucket that holds Iceberg tables.

        Raises:
            LakeStateError: ``bucket`` is a staged/curated/ml bucket, or holds the catalog's warehouse
                or any table this lake's catalog knows (expiry would delete files live snapshots read).
            ConfigError: the lake is on local files (nothing to put a rule on: sweep the archive).
        """
        target = bucket or self.bucket("raw")
        why = "expiring objects by age deletes data and metadata files that live snapshots still reference"
        for t in TIERS.values():
            if t.name != "raw" and self.bucket(t.name) == target:
                raise LakeStateError(
                    f"refusing an object-expiry rule on bucket {target!r}: it holds the Iceberg tables of "
                    f"the {t.name} tier and {why}; {t.name} retention runs inside Iceberg (apply_retention)"
                )
        if self.is_local:
            raise ConfigError(
                "the lake is on local files: there is no bucket for a lifecycle rule; "
                "sweep the raw archive instead (hmco.maintenance.retention.sweep_raw)"
            )
        rules = self.lifecycle_rules().get(target)
        if rules is None:
            raise LakeStateError(f"no lifecycle rule applies to bucket {target!r}: only the raw tier has one")
        warehouse = self.settings.catalog.warehouse or ""
        holders = [f"the catalog's warehouse {warehouse}"] if warehouse.startswith(f"s3://{target}") else []
        for ns in self.catalog.list_namespaces():
            for ident in self.catalog.list_tables(ns):
                location = self.catalog.load_table(ident).location()
                if location.split("://", 1)[-1].split("/", 1)[0] == target:
                    holders.append(f"table {'.'.join(ident)} at {location}")
        if holders:
            raise LakeStateError(
                f"refusing an object-expiry rule on bucket {target!r}: it holds Iceberg data "
                f"({'; '.join(holders[:5])}) and {why}"
            )
        from botocore.exceptions import ClientError

        client = s3_client(self.settings.s3)
        try:
            existing = client.get_bucket_lifecycle_configuration(Bucket=target).get("Rules", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            existing = []
        ours = {r["ID"] for r in rules["Rules"]}
        config = {"Rules": [r for r in existing if r.get("ID") not in ours] + rules["Rules"]}
        client.put_bucket_lifecycle_configuration(Bucket=target, LifecycleConfiguration=config)
        log.info("lifecycle rule %s put on bucket %s", ", ".join(sorted(ours)), target)
        return rules

    # --- tables ----------------------------------------------------------------------------------

    def identifier(self, dataset: Dataset | str, tier_name: str | None = None) -> str:
        """``<namespace>.<table>`` of a dataset in a tier; both names checked as plain identifiers.

        Raises:
            ConfigError: a dataset or namespace name that is no plain identifier (``a.b``, ``../x``).
        """
        ds = get_dataset(dataset)
        namespace = check_identifier(tier(tier_name or ds.tier).namespace, "namespace")
        return f"{namespace}.{check_identifier(ds.name, 'table name')}"

    def table(self, dataset: Dataset | str, tier_name: str | None = None, *, create: bool = True) -> Table:
        """The Iceberg table of ``dataset`` in a tier (default: the dataset's own tier), created if missing.

        A table the catalog does not know but whose metadata exists at its location (the catalog was
        lost or restored from an older dump) is re-registered from its newest metadata file, never
        created a second time beside it. Creation is safe when several processes race on a new lake.
        """
        from pyiceberg.exceptions import NoSuchTableError

        ds = get_dataset(dataset)
        ident = self.identifier(ds, tier_name)
        try:
            return self.catalog.load_table(ident)
        except NoSuchTableError:
            pass
        location = self.table_location(ds, tier_name)
        metadata = self._newest_metadata(location) if location else None
        if metadata is None and not create:
            raise NoSuchTableError(f"Table does not exist: {ident}")
        self._ensure_namespace(tier(tier_name or ds.tier))
        if metadata is not None:
            return self.register_table(ds, tier_name, metadata)
        try:
            return self._create_table(ds, ident)
        except Exception:  # a concurrent process created it first (typed or a raw database error)
            try:
                return self.catalog.load_table(ident)
            except NoSuchTableError:
                pass
            raise

    def table_location(self, dataset: Dataset | str, tier_name: str | None = None) -> str | None:
        """Where a table's data and metadata live (None where a REST catalog assigns it)."""
        ds = get_dataset(dataset)
        tier_loc = self.tier_location(tier_name or ds.tier)
        name = check_identifier(ds.name, "table name")  # never a path: no '/', '..' or '.'
        return f"{tier_loc}/{name}" if tier_loc is not None else None

    def register_table(
        self, dataset: Dataset | str, tier_name: str | None = None, metadata_location: str | None = None
    ) -> Table:
        """Register a table's existing metadata with the catalog (after a lost or restored catalog).

        Without ``metadata_location`` the newest ``*.metadata.json`` under the table's location is used.
        """
        from pyiceberg.exceptions import TableAlreadyExistsError

        ds = get_dataset(dataset)
        ident = self.identifier(ds, tier_name)
        location = self.table_location(ds, tier_name)
        metadata_location = metadata_location or (self._newest_metadata(location) if location else None)
        if metadata_location is None:
            raise LakeStateError(f"no Iceberg metadata found for {ident} under {location}")
        self._ensure_namespace(tier(tier_name or ds.tier))
        try:
            tbl = self.catalog.register_table(ident, metadata_location)
        except TableAlreadyExistsError:
            return self.catalog.load_table(ident)
        except Exception as exc:  # a concurrent process registered it first, or the catalog refused
            try:
                return self.catalog.load_table(ident)
            except Exception:
                raise LakeStateError(
                    f"{ident} has metadata at {metadata_location} that the catalog does not know, and "
                    f"re-registering it failed: {exc}; register it by hand with "
                    f"Lake.register_table({ds.name!r}, {tier_name!r}, {metadata_location!r})"
                ) from exc
        log.warning(
            "%s was missing from the catalog but its metadata exists; re-registered %s (history kept)",
            ident,
            metadata_location,
        )
        return tbl

    def _newest_metadata(self, location: str) -> str | None:
        """The newest ``<location>/metadata/NNNNN-<uuid>.metadata.json`` (highest version, then newest)."""
        import pyarrow.fs as pafs

        fs, base = self.filesystem(f"{location}/metadata")
        try:
            infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        except OSError:
            return None
        found = []
        for info in infos:
            m = _METADATA_FILE.match(info.base_name)
            if info.type == pafs.FileType.File and m:
                found.append((int(m.group(1)), info.mtime_ns or 0, info.base_name))
        if not found:
            return None
        return f"{location}/metadata/{max(found)[2]}"

    def _ensure_namespace(self, t: Tier) -> bool:
        """Create a tier's namespace if missing (True if this call created it); races are safe."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchNamespaceError

        props = {
            "hmco.tier": t.name,
            "hmco.bucket": t.bucket,
            "hmco.retention-days": str(t.retention.days),
            "comment": t.description,
        }
        if (loc := self.tier_location(t.name)) is not None:
            props["location"] = loc
        try:
            self.catalog.create_namespace(t.namespace, properties=props)
            return True
        except NamespaceAlreadyExistsError:
            return False
        except Exception:  # e.g. a raw IntegrityError: another process inserted the row first
            try:
                self.catalog.load_namespace_properties(t.namespace)
            except NoSuchNamespaceError:
                raise
            return False

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
        location = self.table_location(ds, ident.split(".")[0].removeprefix("hub_"))
        props = {**TABLE_PROPERTIES, "hmco.dataset": ds.name, "comment": ds.description}
        return self.catalog.create_table(
            ident, schema=schema, location=location, partition_spec=spec, sort_order=order, properties=props
        )

    def watermark(
        self, dataset: Dataset | str, pipeline: str, tier_name: str | None = None
    ) -> datetime | None:
        """A pipeline's watermark in a table (see :class:`~hmco.lake.state.LakeState`)."""
        return self.state.watermark(dataset, pipeline, tier_name)

    def committed_windows(
        self, dataset: Dataset | str, pipeline: str, tier_name: str | None = None
    ) -> list[Interval]:
        """The spans a pipeline committed to a table, merged (see :class:`~hmco.lake.state.LakeState`)."""
        return self.state.committed_windows(dataset, pipeline, tier_name)

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
