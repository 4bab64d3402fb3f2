"""The ``hmco`` command: demo, pipelines from UIS specs, tiers, SQL over the lake, archive listing.

Exit codes: 0 success, 1 a run failed (data or quality), 2 bad usage/spec/config — so schedulers can
act on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from hmco._logging import configure_logging
from hmco.errors import ConfigError, HmcoError, QualityGateFailed, SpecError

__all__ = ["main"]


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
    from hmco.windows import Window

    if args.end and not args.start:
        raise ConfigError("--end needs --start (or give neither to catch up since the watermark)")
    pipeline = build_pipeline(args.spec, settings=_settings(args), gate=False if args.no_gate else None)
    if args.no_gate:
        print("hmco: WARNING: --no-gate: publishing without the quality gate", file=sys.stderr)
    try:
        if args.start and args.end:
            report = pipeline.run(Window.of(args.start, args.end), resume=args.resume)
        else:
            report = pipeline.run_since_watermark(start=args.start)
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
        source = get_source_class(desc["source"])(desc["dataset"], settings=settings)
        table = archive.replay(args.replay, source)
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

    report = maintain(
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
    from hmco.sources.base import get_source_class

    sources = [get_source_class(name)(settings=settings) for name in args.isos]
    if not sources:
        from hmco.sources import realtime_isos

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


def _add_dr_site(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dr-profile", help="YAML profile of the DR site (same buckets, another S3 endpoint)")
    p.add_argument("--dr-endpoint", help="the DR site's S3 endpoint (the primary's buckets and credentials)")


def _add_backup_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("backup", help="take backups, or show the newest restorable point per store")
    actions = p.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="back up ClickHouse, the catalog, the lake (to the DR site) or all")
    run.add_argument("store", nargs="?", choices=[*BACKUP_STORES, "all"], default="all")
    run.add_argument("--kind", choices=["full", "incremental"], default="full", help="ClickHouse backup kind")
    _add_dr_site(run)
    run.set_defaults(func=cmd_backup)
    status = actions.add_parser("status", help="newest restorable point per store vs the RPO (exit 1 if red)")
    status.add_argument("--store", dest="only", action="append", choices=BACKUP_STORES, help="(repeatable)")
    status.add_argument("--rpo-minutes", type=float, default=30.0)
    status.add_argument("--now", help="check as of this instant (ISO 8601; default now)")
    status.add_argument(
        "--metrics", help="write Prometheus gauges to this textfile (node-exporter collector)"
    )
    status.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore the catalog or ClickHouse from a recorded backup")
    p.add_argument("store", choices=["catalog", "clickhouse"])
    p.add_argument("--backup", required=True, help="the backup id (see `hmco backup status` / the records)")
    p.add_argument("--force", action="store_true", help="replace a non-empty target")
    p.add_argument("--target", help="catalog: database URL or SQLite file (default: the configured catalog)")
    p.add_argument("--database", help="clickhouse: restore the store into this database")
    p.add_argument("--table", help="clickhouse: restore only this table of the backup")
    p.add_argument("--as-table", help="clickhouse --table: restore it under this name ([db.]name)")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("dr", help="disaster recovery: the drill")
    p.add_argument("action", choices=["drill"])
    _add_dr_site(p)
    p.add_argument("--tier", default="curated", help="the tier whose objects are destroyed and restored")
    p.add_argument("--yes", action="store_true", help="confirm: the drill destroys before it restores")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmco", description="HMCo energy-market lakehouse SDK")
    parser.add_argument("--profile", help="YAML profile file (else HMCO_PROFILE_FILE / HMCO_* variables)")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the end-to-end demo on the embedded lake")
    p.add_argument("--nodes", type=int, default=3000)
    p.add_argument("--no-clickhouse", dest="clickhouse", action="store_false", help="skip the chdb step")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("validate", help="validate UIS pipeline specs")
    p.add_argument("specs", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a pipeline spec for a window, or since its watermark")
    p.add_argument("spec")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--resume", action="store_true", help="skip windows already committed")
    p.add_argument("--no-gate", action="store_true", help="publish WITHOUT the quality gate (warns)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tiers", help="list (and create) the lake tiers")
    p.add_argument("--create", action="store_true")
    p.set_defaults(func=cmd_tiers)

    p = sub.add_parser("sql", help="run Trino-dialect SQL over the lake (DuckDB)")
    p.add_argument("query")
    p.add_argument("--dialect", default="trino")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser(
        "freshness",
        help="check datasets against their spec SLAs (exit 1 if any is stale, empty, missing or unreachable)",
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

    from hmco.sources import realtime_isos

    p = sub.add_parser("rt", help="the real-time store: DDL, setup, RBAC, and the ISO poller")
    p.add_argument("action", choices=["ddl", "setup", "rbac", "run"])
    p.add_argument("--apply", action="store_true", help="rbac: apply the statements on the server")
    p.add_argument("--isos", nargs="*", default=list(realtime_isos()), help="run: sources to poll")
    p.add_argument("--once", action="store_true", help="run: one poll (for schedulers), then exit")
    p.add_argument(
        "--lake", action="store_true", help="run: also publish rt_lmp to the lake (staged → gate → curated)"
    )
    p.add_argument("--no-gate", action="store_true", help="run: write WITHOUT the quality gate (warns)")
    p.set_defaults(func=cmd_rt)

    from hmco.maintenance import ACTIONS

    p = sub.add_parser("maintain", help="Iceberg upkeep and tier retention (exit 1 if an action failed)")
    p.add_argument(
        "--table", action="append", help="dataset whose tables to maintain (repeatable; default all)"
    )
    p.add_argument("--tier", action="append", help="tier to maintain (repeatable; default all)")
    p.add_argument(
        "--action", action="append", choices=ACTIONS, help="action to run (repeatable; default all)"
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    p.add_argument("--engine", choices=["local", "trino"], default="local", help="run on pyiceberg or Trino")
    p.add_argument("--json", action="store_true")
    p.add_argument("--metrics", help="write Prometheus metrics to this textfile (node-exporter collector)")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("archive", help="list archived raw payloads, or replay one through its parser")
    p.add_argument("--source")
    p.add_argument("--dataset")
    p.add_argument("--replay", metavar="KEY", help="parse an archived payload again and show the rows")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_archive)

    _add_backup_parsers(sub)
    from hmco import cli_schedule, cli_security

    cli_schedule.add_parsers(sub)
    cli_security.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        return int(args.func(args))
    except (SpecError, ConfigError) as exc:
        print(f"hmco: {exc}", file=sys.stderr)
        return 2
    except QualityGateFailed as exc:
        print(f"hmco: quality gate failed: {exc}", file=sys.stderr)
        return 1
    except HmcoError as exc:
        print(f"hmco: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
