"""Take one store's backup the way the platform schedules it: ClickHouse, the catalog, or the lake.

One call per store, shared by ``hmco backup run`` and the scheduled backup jobs, so a backup taken by
hand and one taken by ``hmco serve`` are the same thing and leave the same records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from hmco.errors import ConfigError

if TYPE_CHECKING:
    from hmco.lake import Lake
    from hmco.maintenance.backup_records import BackupRecord
    from hmco.maintenance.replication import ReplicationReport

__all__ = ["STORES", "dr_lake", "take_backup"]

Store = Literal["clickhouse", "catalog", "lake"]
STORES: tuple[Store, ...] = ("clickhouse", "catalog", "lake")


def dr_lake(primary: Lake, *, profile: str | None = None, endpoint: str | None = None) -> Lake:
    """The DR site's lake: a whole ``profile`` file, or the primary's buckets, prefix and S3 credentials at
    another ``endpoint`` (default: ``settings.dr``), with a SQLite catalog under ``<home>/dr``."""
    from hmco.config import Settings
    from hmco.lake import Lake

    if profile:
        return Lake(Settings.load(profile_file=profile))
    dr = primary.settings.dr
    endpoint = endpoint or (dr.s3.endpoint if dr.s3 is not None else None)
    if not endpoint:
        raise ConfigError(
            "the DR site is not configured: set HMCO_DR__S3__ENDPOINT, or pass --dr-profile FILE or --dr-endpoint URL"
        )
    s3 = dr.s3 if dr.s3 is not None and dr.s3.access_key_id is not None else primary.settings.s3
    catalog = dr.catalog.model_dump() if dr.catalog is not None else {"type": "sqlite"}
    return Lake(
        Settings.load(
            profile="local",
            home=primary.settings.home_dir / "dr",
            catalog=catalog,
            bucket_prefix=primary.settings.bucket_prefix,
            storage_prefix=primary.settings.storage_prefix,
            s3={
                "endpoint": endpoint,
                "access_key_id": s3.access_key_id,
                "secret_access_key": s3.secret_access_key,
                "region": s3.region,
                "path_style": s3.path_style,
            },
        )
    )


def take_backup(
    lake: Lake,
    store: Store,
    *,
    kind: Literal["full", "incremental"] = "full",
    dr: Lake | None = None,
    clickhouse: Any = None,
) -> tuple[list[BackupRecord], ReplicationReport | None]:
    """Back up ``store`` and return the records taken (and, for the lake, the replication report).

    ``catalog``: a database dump (pg_dump, or SQLite's online backup) and a metadata export; ``clickhouse``:
    a full or incremental ``BACKUP`` (``clickhouse`` is a clickhouse-connect client; default: the
    settings'); ``lake``: a verified replication to ``dr`` (default: the configured DR site).
    """
    if store == "catalog":
        from hmco.maintenance.catalog_backup import backup_catalog, export_metadata

        taken = [] if lake.settings.catalog.type == "rest" else [backup_catalog(lake)]
        return [*taken, export_metadata(lake)], None
    if store == "clickhouse":
        from hmco.clickhouse import connect_clickhouse, layout_from_settings
        from hmco.maintenance.clickhouse_backup import ClickHouseBackups

        client = clickhouse if clickhouse is not None else connect_clickhouse(lake.settings)
        backups = ClickHouseBackups.for_lake(client, layout_from_settings(lake.settings), lake)
        return [backups.incremental() if kind == "incremental" else backups.full()], None
    if store == "lake":
        from hmco.maintenance.replication import replicate

        report = replicate(lake, dr if dr is not None else dr_lake(lake), include_backups=True)
        return ([report.record] if report.record is not None else []), report
    raise ConfigError(f"unknown backup store {store!r}; stores are {', '.join(STORES)}")
