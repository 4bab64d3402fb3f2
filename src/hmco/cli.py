"""The ``hmco`` command: demo, pipelines from UIS specs, tiers, SQL over the lake, upkeep, backups.

Exit codes: 0 success, 1 a run failed (data or quality), 2 bad usage/spec/config — so schedulers can
act on them. A failure prints one line on stderr saying what failed and what to do (``-v`` adds the
traceback). Building the parser imports only the standard library: ``hmco --help`` stays instant, and
each command imports its machinery when it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from hmco.cli_command import command
from hmco.errors import (
    AuthenticationError,
    CommitConflict,
    ConfigError,
    ConnectionFailed,
    HmcoError,
    NoData,
    NotificationError,
    PayloadError,
    QualityGateFailed,
    RateLimited,
    RequestRejected,
    SinkUnavailable,
    SourceUnavailable,
    SpecError,
)

__all__ = ["build_parser", "command", "main"]


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from hmco.config import Settings

    return Settings.load(profile_file=args.profile)


def cmd_demo(args: argparse.Namespace) -> int:
    from hmco.demo import run_demo

    result = run_demo(_settings(args), nodes=args.nodes, clickhouse=args.clickhouse)
    return 0 if all(r.ok for r in result.reports) else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from hmco.compose.spec import load_spec

    status = 0
    for path in args.specs:
        try:
            spec = load_spec(path)
            print(f"ok    {path}: {spec.name} ({spec.source.type} → {spec.dataset_name})")
        except SpecError as exc:
            status = 2
            print(f"error {path}:", file=sys.stderr)
            for line in exc.errors or [str(exc)]:
                print(f"  - {line}", file=sys.stderr)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    from hmco.compose.spec import build_pipeline
    from hmco.errors import PipelineError
    from hmco.windows import market_window

    if args.end and not args.start:
        raise ConfigError("--end needs --start (or give neither to catch up since the watermark)")
    pipeline = build_pipeline(args.spec, settings=_settings(args), gate=False if args.no_gate else None)
    tz = args.tz or pipeline.source.timezone  # dates are market days unless told otherwise
    if args.no_gate:
        print("hmco: WARNING: --no-gate: publishing without the quality gate", file=sys.stderr)
    try:
        if args.start and args.end:
            report = pipeline.run(market_window(args.start, args.end, tz=tz), resume=args.resume)
        else:
            start = market_window(args.start, tz=tz).start if args.start else None
            report = pipeline.run_since_watermark(start=start)
    except (PipelineError, QualityGateFailed) as exc:
        failed = getattr(exc, "report", None)
        if failed is None:
            raise
        print(json.dumps(failed.to_dict(), default=str, indent=2) if args.json else failed)
        raise
    print(json.dumps(report.to_dict(), default=str, indent=2) if args.json else report)
    return 0 if report.ok else 1


def cmd_tiers(args: argparse.Namespace) -> int:
    from hmco.lake import TIERS, Lake

    lake = Lake(_settings(args))
    if args.create:
        created = lake.create_tiers()
        print(f"created namespaces: {', '.join(created) or 'none (all existed)'}")
    for t in TIERS.values():
        print(
            f"{t.name:8} {lake.bucket(t.name):20} {t.namespace:12} keep {t.retention.days:>5} d  {t.description}"
        )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import polars as pl

    from hmco.lake import Lake
    from hmco.query.lake import LakeSQL

    with LakeSQL(Lake(_settings(args))) as engine:
        table = engine.sql(args.query, dialect=args.dialect)
    with pl.Config(tbl_rows=args.limit, tbl_hide_dataframe_shape=True):
        print(pl.from_arrow(table))
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from hmco.lake import Lake
    from hmco.sinks.raw import RawArchive

    settings = _settings(args)
    archive = RawArchive(Lake(settings))
    if args.replay:
        import polars as pl

        from hmco.sources.base import get_source_class

        desc = archive.describe(args.replay)
        cls = get_source_class(desc["source"])
        if desc["dataset"] in cls.datasets:
            table = archive.replay(args.replay, cls(desc["dataset"], settings=settings))
        elif hasattr(cls, "parse_nodes"):  # a node catalogue page (dataset "nodes"), not prices
            catalogue: Any = cls(settings=settings)
            table = catalogue.parse_nodes([archive.get(args.replay)])
        else:
            raise ConfigError(
                f"{args.replay}: {desc['source']} has no dataset {desc['dataset']!r} to replay it with"
            )
        print(f"{args.replay}: {desc['size']:,} bytes fetched {desc['fetched_at']} → {table.num_rows:,} rows")
        with pl.Config(tbl_rows=args.limit, tbl_hide_dataframe_shape=True):
            print(pl.from_arrow(table.slice(0, args.limit)))
        return 0
    for key in archive.keys(args.source, args.dataset):
        print(key)
    return 0


def cmd_freshness(args: argparse.Namespace) -> int:
    """Check datasets against their spec SLAs; exit 1 if any is stale, empty, missing or unreachable."""
    from datetime import UTC, datetime

    from hmco.errors import NotificationError, SchemaError
    from hmco.lake import Lake
    from hmco.quality.freshness import FreshnessReport, catalogue_freshness, lake_freshness
    from hmco.schedule.catalogue import default_catalogue
    from hmco.schemas import get_dataset
    from hmco.windows import as_utc

    settings = _settings(args)
    notifier = None
    if args.notify:
        from hmco.monitoring.notify import WebhookNotifier

        state = settings.home_dir / "alerts" / "freshness-state.json"
        notifier = WebhookNotifier.from_settings(settings.alerts, state_file=state)
        if notifier is None:
            raise ConfigError(
                "--notify needs a webhook: set HMCO_ALERTS__WEBHOOK_URL (or alerts.webhook_url)"
            )
    try:
        now = as_utc(args.now) if args.now else datetime.now(UTC)
    except ValueError:
        raise ConfigError(f"--now {args.now!r} is not an ISO 8601 instant") from None
    jobs = default_catalogue(args.specs).ingestion
    extra: list[str] = []  # datasets asked for that no job feeds: judged by the dataset's own SLA
    if args.datasets:
        fed = {j.name for j in jobs} | {j.dataset for j in jobs}
        extra = [d for d in dict.fromkeys(args.datasets) if d not in fed]
        try:
            for name in extra:
                get_dataset(name)
        except SchemaError as exc:
            raise ConfigError(f"{exc} (or a job name: hmco schedule list)") from None
        jobs = [j for j in jobs if j.name in args.datasets or j.dataset in args.datasets]
    lake = Lake(settings)
    connect = None
    if args.clickhouse:
        from functools import partial

        from hmco.clickhouse import connect_clickhouse

        connect = partial(connect_clickhouse, settings)  # connected inside: a failure is "unreachable"
    report = catalogue_freshness(lake, jobs, now=now, clickhouse=connect, isos=args.iso)
    report = FreshnessReport.of([*report.statuses, *(lake_freshness(lake, d, now=now) for d in extra)])
    print(report)
    for line in report.problems:
        print(f"hmco: freshness: {line}", file=sys.stderr)
    if args.metrics:
        from prometheus_client import CollectorRegistry, write_to_textfile

        registry = CollectorRegistry()
        report.record(registry)
        write_to_textfile(args.metrics, registry)
    if notifier is not None:
        with notifier:
            try:
                sent = notifier.check(report.statuses)
            except NotificationError as exc:
                print(f"hmco: alert not delivered: {exc}", file=sys.stderr)
                return 1
        for n in sent:
            print(f"hmco: posted {n.kind} alert for {n.dataset} ({n.target})", file=sys.stderr)
    return report.exit_code


def cmd_maintain(args: argparse.Namespace) -> int:
    from hmco.lake import Lake
    from hmco.maintenance import ACTIONS, maintain

    report = maintain(  # it checks the action names (ConfigError naming the valid ones)
        Lake(_settings(args)),
        datasets=args.table or None,
        tiers=args.tier or None,
        actions=args.action or ACTIONS,
        dry_run=args.dry_run,
        engine=args.engine,
    )
    print(json.dumps(report.to_dict(), default=str, indent=2) if args.json else report)
    if args.metrics:
        from prometheus_client import CollectorRegistry, write_to_textfile

        from hmco.monitoring.metrics import metrics_for

        registry = CollectorRegistry()
        for action in report.actions:
            metrics_for(registry).record_maintenance(action)
        write_to_textfile(args.metrics, registry)
    return report.exit_code


def cmd_rt(args: argparse.Namespace) -> int:
    from hmco.clickhouse import connect_clickhouse, ensure_schema, layout_from_settings

    settings = _settings(args)
    layout = layout_from_settings(settings)
    if args.action == "ddl":
        print(";\n\n".join(layout.render()) + ";")
        return 0
    if args.action == "rbac":
        from hmco.security.clickhouse_rbac import apply, render_rbac

        statements = render_rbac(layout)
        if args.apply:
            apply(connect_clickhouse(settings), statements)
        print(";\n".join(statements) + ";")
        return 0
    if args.action == "setup":
        created = ensure_schema(connect_clickhouse(settings), layout)
        print(f"ClickHouse schema ready ({len(created)} statement(s) applied)")
        return 0
    return _run_realtime(settings, args)


def _run_realtime(settings, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    import threading

    from hmco.compose.realtime import RealtimeRunner, install_stop_signals
    from hmco.lake import Lake
    from hmco.sinks.clickhouse import ClickHouseSink
    from hmco.sources import realtime_isos
    from hmco.sources.base import get_source_class

    names = realtime_isos() if args.isos is None else args.isos
    sources = [get_source_class(name)(settings=settings) for name in names]
    if not sources:
        raise ConfigError(f"rt run needs at least one source (--isos {' '.join(realtime_isos())})")
    if args.no_gate:
        print(
            "hmco: WARNING: --no-gate: real-time rows are written without the quality gate", file=sys.stderr
        )
    runner = RealtimeRunner(
        sources,
        ClickHouseSink.from_settings(settings),
        lake=Lake(settings),
        lake_copy=args.lake,
        gate=False if args.no_gate else None,
    )
    if args.once:
        reports = runner.run_once(force=True)
        for r in reports:
            state = "ok" if r.ok else f"FAILED: {r.error}"
            print(f"{r.iso}: {r.rows:,} rows in {len(r.windows)} window(s), newest {r.newest}  {state}")
        for iso, lag in sorted(runner.lag().items()):
            print(f"lag {iso}: {lag:,.0f} s")
        return 0 if all(r.ok for r in reports) else 1
    stop = threading.Event()
    install_stop_signals(stop)
    runner.run_forever(stop)
    return 0


# --- backups, restores, DR -------------------------------------------------------------------------

BACKUP_STORES = ("clickhouse", "catalog", "lake")


def _dr_lake(args: argparse.Namespace, primary):  # type: ignore[no-untyped-def]
    """The DR site's lake from ``--dr-profile`` / ``--dr-endpoint`` (default: ``settings.dr``)."""
    from hmco.maintenance.backups import dr_lake

    return dr_lake(primary, profile=args.dr_profile, endpoint=args.dr_endpoint)


def _clickhouse_backups(settings):  # type: ignore[no-untyped-def]
    from hmco.clickhouse import connect_clickhouse, layout_from_settings
    from hmco.lake import Lake
    from hmco.maintenance.clickhouse_backup import ClickHouseBackups

    return ClickHouseBackups.for_lake(
        connect_clickhouse(settings), layout_from_settings(settings), Lake(settings)
    )


def cmd_backup(args: argparse.Namespace) -> int:
    from hmco.lake import Lake
    from hmco.maintenance.backup_records import BackupCatalog

    settings = _settings(args)
    lake = Lake(settings)
    if args.action == "status":
        return _backup_status(args, BackupCatalog(lake))
    from hmco.maintenance.backups import take_backup

    stores: tuple[Any, ...] = BACKUP_STORES if args.store == "all" else (args.store,)
    taken = []
    for store in stores:
        configured = bool(args.dr_profile or args.dr_endpoint or (settings.dr.s3 and settings.dr.s3.endpoint))
        if store == "lake" and args.store == "all" and not configured:
            print(
                "lake        skipped: no DR site configured (--dr-profile / --dr-endpoint)", file=sys.stderr
            )
            continue
        dr = _dr_lake(args, lake) if store == "lake" else None
        records, replication = take_backup(lake, store, kind=args.kind, dr=dr)
        if replication is not None:
            print(replication)
        taken += records
    for record in taken:
        print(
            f"{record.store:11} {record.kind:15} {record.id}  {record.size:,} bytes  "
            f"restore point {record.restore_point:%Y-%m-%d %H:%M:%S}Z  {record.location}"
        )
    return 0


def _backup_status(args: argparse.Namespace, catalog) -> int:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from hmco.windows import as_utc

    now = as_utc(args.now) if args.now else None
    statuses = catalog.status(args.only or BACKUP_STORES, now=now, rpo=timedelta(minutes=args.rpo_minutes))
    for status in statuses:
        print(status)
    if args.metrics:
        from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

        registry = CollectorRegistry()
        age = Gauge(
            "hmco_backup_age_seconds",
            "Age of the newest restorable backup of a store (+Inf when there is none)",
            ["store"],
            registry=registry,
        )
        ok = Gauge(
            "hmco_backup_ok",
            "1 when the store's newest backup is within the RPO",
            ["store"],
            registry=registry,
        )
        for status in statuses:
            age.labels(status.store).set(float("inf") if status.age is None else status.age.total_seconds())
            ok.labels(status.store).set(1 if status.ok else 0)
        write_to_textfile(args.metrics, registry)
    return 0 if all(s.ok for s in statuses) else 1


def cmd_restore(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.store == "catalog":
        from hmco.lake import Lake
        from hmco.maintenance.catalog_backup import restore_catalog_dump

        lake = Lake(settings)
        target = args.target
        if target is None:
            if settings.catalog.type == "sql":
                target = settings.catalog.uri
            elif settings.catalog.type == "sqlite":
                from hmco.maintenance.drill import sqlite_catalog_file

                target = sqlite_catalog_file(lake)
            else:
                raise ConfigError("a REST catalog is restored with an import of a metadata export")
        print(
            restore_catalog_dump(
                lake, args.backup, target, password=settings.catalog.password, force=args.force
            )
        )
        return 0
    import dataclasses

    backups = _clickhouse_backups(settings)
    if args.table:
        report = backups.restore_table(args.table, args.backup, as_table=args.as_table, force=args.force)
    else:
        into = dataclasses.replace(backups.layout, database=args.database) if args.database else None
        report = backups.restore(args.backup, into=into, force=args.force)
    print(f"restored ClickHouse backup {report.backup_id} ({' <- '.join(report.chain)}): {report.rows}")
    return 0


def cmd_dr(args: argparse.Namespace) -> int:
    from hmco.clickhouse import connect_clickhouse, layout_from_settings
    from hmco.lake import Lake
    from hmco.maintenance.drill import run_drill

    if not args.yes:
        raise ConfigError(
            "the drill DROPS the catalog database, the ClickHouse database and a tier's objects before it "
            "restores them: run it on a drill environment and confirm with --yes"
        )
    settings = _settings(args)
    lake = Lake(settings)
    report = run_drill(
        lake,
        _dr_lake(args, lake),
        connect_clickhouse(settings),
        layout_from_settings(settings),
        tier=args.tier,
        say=(lambda line: print(line, file=sys.stderr)) if not args.json else (lambda _: None),
    )
    print(report.to_json() if args.json else report)
    return report.exit_code


# --- the parser: help and an example on every command and argument -------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hmco")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _add_dr_site(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dr-profile", help="YAML profile of the DR site (same buckets, another S3 endpoint)")
    p.add_argument("--dr-endpoint", help="the DR site's S3 endpoint (the primary's buckets and credentials)")


def _add_backup_parsers(sub: Any) -> None:
    p = command(
        sub,
        "backup",
        help="take backups, or show the newest restorable point per store",
        examples=[
            "hmco backup run  # back up ClickHouse, the catalog and (with a DR site) the lake",
            "hmco backup status --rpo-minutes 30  # exit 1 if a store's newest backup is older than the RPO",
        ],
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    run = command(
        actions,
        "run",
        help="back up ClickHouse, the catalog, the lake (to the DR site) or all",
        examples=[
            "hmco backup run  # every store; the lake only when a DR site is configured",
            "hmco backup run clickhouse --kind incremental  # the daily incremental ClickHouse backup",
            "hmco backup run lake --dr-endpoint http://dr-s3:8333  # replicate the lake to the DR site",
        ],
    )
    run.add_argument(
        "store",
        nargs="?",
        choices=[*BACKUP_STORES, "all"],
        default="all",
        help="what to back up (default: %(default)s)",
    )
    run.add_argument(
        "--kind",
        choices=["full", "incremental"],
        default="full",
        help="ClickHouse backup kind: full, or incremental on the newest backup (default: %(default)s)",
    )
    _add_dr_site(run)
    run.set_defaults(func=cmd_backup)
    status = command(
        actions,
        "status",
        help="newest restorable point per store vs the RPO (exit 1 if red)",
        examples=[
            "hmco backup status  # every store, against a 30-minute RPO",
            "hmco backup status --store catalog --metrics /var/lib/node_exporter/hmco_backup.prom",
        ],
    )
    status.add_argument(
        "--store",
        dest="only",
        action="append",
        choices=BACKUP_STORES,
        help="only this store (repeatable; default: all)",
    )
    status.add_argument(
        "--rpo-minutes",
        type=float,
        default=30.0,
        help="recovery point objective: a newest backup older than this is red (default: %(default)s)",
    )
    status.add_argument("--now", help="check as of this instant (ISO 8601; default now)")
    status.add_argument(
        "--metrics", help="write Prometheus gauges to this textfile (node-exporter collector)"
    )
    status.set_defaults(func=cmd_backup)

    p = command(
        sub,
        "restore",
        help="restore the catalog or ClickHouse from a recorded backup",
        examples=[
            "hmco restore catalog --backup catalog-full-20261101T0200 --force",
            "hmco restore clickhouse --backup clickhouse-full-20261101T0200 --database hmco_restored",
            "hmco restore clickhouse --backup clickhouse-full-20261101T0200 --table rt_lmp --as-table rt_lmp_back",
        ],
    )
    p.add_argument("store", choices=["catalog", "clickhouse"], help="which store to restore")
    p.add_argument("--backup", required=True, help="the backup id (see `hmco backup status` / the records)")
    p.add_argument("--force", action="store_true", help="replace a non-empty target")
    p.add_argument("--target", help="catalog: database URL or SQLite file (default: the configured catalog)")
    p.add_argument("--database", help="clickhouse: restore the store into this database")
    p.add_argument("--table", help="clickhouse: restore only this table of the backup")
    p.add_argument("--as-table", help="clickhouse --table: restore it under this name ([db.]name)")
    p.set_defaults(func=cmd_restore)

    p = command(
        sub,
        "dr",
        help="disaster recovery: the drill (destroys, restores and times the recovery)",
        examples=["hmco dr drill --dr-endpoint http://dr-s3:8333 --yes  # on a drill environment only"],
    )
    p.add_argument("action", choices=["drill"], help="drill: destroy, restore, verify and time it vs the RTO")
    _add_dr_site(p)
    p.add_argument(
        "--tier",
        default="curated",
        help="the tier whose objects are destroyed and restored (default: %(default)s)",
    )
    p.add_argument("--yes", action="store_true", help="confirm: the drill destroys before it restores")
    p.add_argument("--json", action="store_true", help="print the drill's report as JSON")
    p.set_defaults(func=cmd_dr)


def build_parser() -> argparse.ArgumentParser:
    """The ``hmco`` parser; building it imports nothing but the standard library and this package's CLI."""
    parser = argparse.ArgumentParser(
        prog="hmco",
        description="HMCo energy-market lakehouse: run ingestion pipelines, query the lake, keep it healthy.",
        epilog="examples:\n"
        "  hmco demo                                   # a day of synthetic LMPs into the embedded lake\n"
        "  hmco run src/hmco/specs/caiso.yaml --start 2026-11-01 --end 2026-11-08\n"
        "  hmco sql 'SELECT count(*) FROM hub_curated.rt_lmp'\n"
        "  hmco <command> --help                       # every command's options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hmco {_version()}")
    parser.add_argument("--profile", help="YAML profile file (else HMCO_PROFILE_FILE / HMCO_* variables)")
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="log level on stderr: DEBUG, INFO, WARNING or ERROR (default: WARNING; INFO with -v)",
    )
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="on failure, print the traceback too; log at INFO"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    p = command(
        sub,
        "demo",
        help="run the end-to-end demo on the embedded lake",
        examples=[
            "hmco demo  # synthetic LMPs and an EIA sample into HMCO_HOME (default ~/.hmco), then the seed's queries",
            "hmco demo --nodes 100 --no-clickhouse  # smaller, and without the chdb real-time store",
        ],
    )
    p.add_argument("--nodes", type=int, default=3000, help="synthetic pricing nodes (default: %(default)s)")
    p.add_argument("--no-clickhouse", dest="clickhouse", action="store_false", help="skip the chdb step")
    p.set_defaults(func=cmd_demo)

    p = command(
        sub,
        "validate",
        help="validate UIS pipeline specs (exit 2 if any is invalid)",
        examples=["hmco validate src/hmco/specs/*.yaml  # each bad field is named with its file"],
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="UIS pipeline spec files (YAML)")
    p.set_defaults(func=cmd_validate)

    p = command(
        sub,
        "run",
        help="run a pipeline spec for a window, or since its watermark",
        description="Run a pipeline spec for [--start, --end), window by window, or catch up since its "
        "watermark.\n\nDates are market days in the source's own time zone (CAISO: America/Los_Angeles, "
        "MISO: EST,\nSPP: America/Chicago): --start 2026-11-01 for CAISO starts at midnight Pacific. "
        "Pass --tz UTC\nfor UTC days; an ISO datetime with an offset is taken as given.",
        examples=[
            "hmco run src/hmco/specs/caiso.yaml --start 2026-11-01 --end 2026-11-08  # a week of CAISO market days",
            "hmco run caiso.yaml --start 2026-11-01T00:00 --end 2026-11-02T00:00 --tz UTC  # one UTC day",
            "hmco run eia.yaml --start 2026-01-01 --end 2026-07-01 --resume  # skip windows already committed",
            "hmco run eia.yaml  # catch up from the watermark to the newest complete window",
        ],
    )
    p.add_argument("spec", help="UIS pipeline spec file (YAML)")
    p.add_argument(
        "--start",
        help="first market day (YYYY-MM-DD, today, yesterday) or instant (ISO 8601) to run; without --end: "
        "catch up from the watermark, or from --start when there is none",
    )
    p.add_argument("--end", help="end of the run, exclusive: a market day or instant (needs --start)")
    p.add_argument(
        "--tz",
        metavar="ZONE",
        help="IANA time zone of --start/--end dates and naive times (default: the source's market time "
        "zone; UTC for the old behaviour)",
    )
    p.add_argument("--resume", action="store_true", help="skip windows already committed")
    p.add_argument("--no-gate", action="store_true", help="publish WITHOUT the quality gate (warns)")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON")
    p.set_defaults(func=cmd_run)

    p = command(
        sub,
        "tiers",
        help="list (and create) the lake tiers",
        examples=[
            "hmco tiers  # raw, staged, curated, ml: bucket, namespace, retention",
            "hmco tiers --create",
        ],
    )
    p.add_argument("--create", action="store_true", help="create the tiers' namespaces that do not exist yet")
    p.set_defaults(func=cmd_tiers)

    p = command(
        sub,
        "sql",
        help="run Trino-dialect SQL over the lake (DuckDB)",
        examples=[
            "hmco sql 'SELECT iso, node, avg(lmp) FROM hub_curated.rt_lmp GROUP BY iso, node' --limit 20",
            "hmco sql 'SELECT * FROM hub_curated.eia_daily_fuel LIMIT 5' --dialect duckdb",
        ],
    )
    p.add_argument("query", help="the SQL query (tables as namespace.table, e.g. hub_curated.rt_lmp)")
    p.add_argument(
        "--dialect", default="trino", help="SQL dialect of the query (sqlglot name; default: %(default)s)"
    )
    p.add_argument("--limit", type=int, default=50, help="rows to print (default: %(default)s)")
    p.set_defaults(func=cmd_sql)

    p = command(
        sub,
        "freshness",
        help="check datasets against their spec SLAs (exit 1 if any is stale, empty, missing or unreachable)",
        examples=[
            "hmco freshness  # every ingestion job's dataset",
            "hmco freshness rt_lmp --clickhouse --iso CAISO MISO  # the lake and the real-time store",
            "hmco freshness --notify --metrics /var/lib/node_exporter/hmco.prom  # for cron",
        ],
    )
    p.add_argument(
        "datasets",
        nargs="*",
        help="datasets or job names to check (default: the dataset of every ingestion job in the catalogue)",
    )
    p.add_argument(
        "--specs", metavar="DIR", help="directory of spec overrides merged over the shipped ones (by name)"
    )
    p.add_argument(
        "--clickhouse", action="store_true", help="also check each real-time job's ISO in ClickHouse (rt_lmp)"
    )
    p.add_argument(
        "--iso", nargs="*", help="with --clickhouse: only these ISO codes (default: every real-time job's)"
    )
    p.add_argument("--now", help="check as of this instant (ISO 8601, UTC unless an offset is given)")
    p.add_argument(
        "--notify",
        action="store_true",
        help="post breaches and recoveries to the webhook in HMCO_ALERTS__WEBHOOK_URL (once per transition)",
    )
    p.add_argument("--metrics", help="write Prometheus metrics to this textfile (node-exporter collector)")
    p.set_defaults(func=cmd_freshness)

    p = command(
        sub,
        "rt",
        help="the real-time store: DDL, setup, RBAC, and the ISO poller",
        examples=[
            "hmco rt ddl  # print the ClickHouse DDL",
            "hmco rt setup  # create the real-time schema",
            "hmco rt run --once --isos caiso miso  # one poll (for schedulers)",
            "hmco rt run --lake  # poll forever; also publish to the lake",
        ],
    )
    p.add_argument(
        "action",
        choices=["ddl", "setup", "rbac", "run"],
        help="ddl: print the schema; setup: create it; rbac: roles and row policies; run: poll the ISOs",
    )
    p.add_argument("--apply", action="store_true", help="rbac: apply the statements on the server")
    p.add_argument(
        "--isos", nargs="*", metavar="SOURCE", help="run: sources to poll (default: every real-time ISO)"
    )
    p.add_argument("--once", action="store_true", help="run: one poll (for schedulers), then exit")
    p.add_argument(
        "--lake", action="store_true", help="run: also publish rt_lmp to the lake (staged → gate → curated)"
    )
    p.add_argument("--no-gate", action="store_true", help="run: write WITHOUT the quality gate (warns)")
    p.set_defaults(func=cmd_rt)

    p = command(
        sub,
        "maintain",
        help="Iceberg upkeep and tier retention (exit 1 if an action failed)",
        examples=[
            "hmco maintain --dry-run  # what the weekly upkeep would change",
            "hmco maintain --table rt_lmp --action expire_snapshots --action compact",
            "hmco maintain --engine trino --json  # on Trino's Iceberg procedures",
        ],
    )
    p.add_argument(
        "--table", action="append", help="dataset whose tables to maintain (repeatable; default all)"
    )
    p.add_argument("--tier", action="append", help="tier to maintain (repeatable; default all)")
    p.add_argument(
        "--action",
        action="append",
        help="action to run (repeatable; default all, in weekly order): expire_snapshots, rewrite_manifests, "
        "compact, retention, remove_orphan_files",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    p.add_argument(
        "--engine",
        choices=["local", "trino"],
        default="local",
        help="run on pyiceberg (local) or Trino's procedures (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--metrics", help="write Prometheus metrics to this textfile (node-exporter collector)")
    p.set_defaults(func=cmd_maintain)

    p = command(
        sub,
        "archive",
        help="list archived raw payloads, or replay one through its parser",
        examples=[
            "hmco archive --source caiso --dataset rt_lmp  # the archived payloads' keys",
            "hmco archive --replay KEY --limit 5  # parse one again and show its rows",
        ],
    )
    p.add_argument("--source", help="only this source's payloads (e.g. caiso)")
    p.add_argument("--dataset", help="only this dataset's payloads (e.g. rt_lmp)")
    p.add_argument("--replay", metavar="KEY", help="parse an archived payload again and show the rows")
    p.add_argument("--limit", type=int, default=10, help="rows to show with --replay (default: %(default)s)")
    p.set_defaults(func=cmd_archive)

    _add_backup_parsers(sub)
    from hmco import cli_schedule, cli_security

    cli_schedule.add_parsers(sub)
    cli_security.add_parsers(sub)
    return parser


# --- failures: one line, saying what failed and what to do ------------------------------------------

#: What to do about a failure, by the class of its cause (the most specific class that is listed wins).
#: Errors whose message already says what to do (HostNotFound, MissingDependency …) are not listed.
NEXT_STEPS: dict[type[HmcoError], str] = {
    ConnectionFailed: "check that the source is up and that its base_url (a spec's source.base_url) points "
    "at it, then run again",
    RateLimited: "the source is throttling: wait, or space requests out (spec params.http.min_interval), "
    "then run again",
    SourceUnavailable: "the source is down or overloaded: run again later",
    AuthenticationError: "check the source's key (HMCO_SOURCES__<SOURCE>_API_KEY, _TOKEN or _KEY, or its "
    "secret file)",
    RequestRejected: "check the spec's source.params and the window asked for",
    NoData: "the source has nothing for this window: pick another window",
    PayloadError: "the raw payload is archived (hmco archive --source SOURCE lists it): report it with "
    "the source and window",
    QualityGateFailed: "nothing was published and the batch is kept for inspection: fix the data or the "
    "spec's checks, then run again",
    SinkUnavailable: "the store stayed unreachable: check it is up, then run again",
    CommitConflict: "another writer committed first: run again",
    SpecError: "fix the spec (hmco validate SPEC names every bad field)",
    NotificationError: "check the webhook (HMCO_ALERTS__WEBHOOK_URL)",
}

# A run keeps the windows it committed: say how to go on from them.
_RESUMABLE = (SourceUnavailable, RateLimited, SinkUnavailable, CommitConflict, NoData)


def _cause(exc: HmcoError) -> HmcoError:
    """The error behind a failed run (its first failed window's), else ``exc`` itself."""
    report = getattr(exc, "report", None)
    for outcome in getattr(report, "windows", None) or ():
        if outcome.status == "failed" and outcome.exception is not None:
            return outcome.exception
    return exc


def next_step(exc: HmcoError, command: str | None = None) -> str:
    """What a person should do about ``exc`` (empty when its message says it already)."""
    cause = _cause(exc)
    step = next((NEXT_STEPS[k] for k in type(cause).__mro__ if k in NEXT_STEPS), "")
    if command == "run" and isinstance(cause, _RESUMABLE):
        step += " with --resume (committed windows are kept)"
    if isinstance(cause, SpecError) and "file" in cause.context:
        step = step.replace("SPEC", str(cause.context["file"]))
    return step


def error_line(exc: BaseException, command: str | None = None) -> str:
    """The one line a failed command prints: what failed, and what to do."""
    if isinstance(exc, ConfigError):
        what = str(exc)  # bad usage, spec, settings or a missing extra: the message says what to fix
    elif isinstance(exc, QualityGateFailed):
        what = f"quality gate failed: {exc}"
    elif isinstance(exc, HmcoError):
        what = f"{type(exc).__name__}: {exc}"
    else:
        return _one_line(
            f"hmco: unexpected {type(exc).__name__}: {exc} — rerun with --verbose for the traceback, and "
            "report it"
        )
    step = next_step(exc, command)
    return _one_line(f"hmco: {what}" + (f" — {step}" if step else ""))


def _one_line(text: str) -> str:
    """``text`` on one line: a multi-line message (a YAML parser's, a server's) joined with ``; ``."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


class _ReportedByTheCommand(logging.Filter):
    """Drops hmco's ERROR records: a one-shot command reports its failure itself, once, at the end."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _long_running(args: argparse.Namespace) -> bool:
    """``serve`` and ``rt run`` without ``--once`` log their failures as they go: nothing reports them later."""
    if args.command == "serve":
        return not args.once
    return args.command == "rt" and args.action == "run" and not args.once


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hmco`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    from hmco._logging import configure_logging

    handler = configure_logging(args.log_level or ("INFO" if verbose else "WARNING"), json=args.log_json)
    if not (verbose or args.log_json or _long_running(args)):  # JSON logs go to shippers: keep them whole
        handler.addFilter(_ReportedByTheCommand())
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("hmco: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        print(error_line(exc, args.command), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
