"""The ``hmco`` command: demo, pipelines from UIS specs, tiers, SQL over the lake, archive listing.

Exit codes: 0 success, 1 a run failed (data or quality), 2 bad usage/spec/config — so schedulers can
act on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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
    from pyiceberg.exceptions import NoSuchTableError

    from hmco.lake import Lake
    from hmco.quality.freshness import FreshnessReport, clickhouse_freshness, iceberg_freshness
    from hmco.schemas import DATASETS

    settings = _settings(args)
    lake = Lake(settings)
    statuses = []
    for name in args.datasets or sorted(DATASETS):
        try:
            statuses.append(iceberg_freshness(lake.table(name, create=False), name))
        except NoSuchTableError:
            if args.datasets:
                raise ConfigError(f"dataset {name} has no table in the lake yet") from None
    if args.clickhouse:
        from hmco.clickhouse import connect_clickhouse

        client = connect_clickhouse(settings)
        statuses += [clickhouse_freshness(client, iso=iso) for iso in args.iso]
    report = FreshnessReport.of(statuses)
    print(report)
    if args.metrics:
        from prometheus_client import CollectorRegistry, write_to_textfile

        registry = CollectorRegistry()
        report.record(registry)
        write_to_textfile(args.metrics, registry)
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

    p = sub.add_parser("freshness", help="check datasets against their SLAs (exit 1 if any is stale)")
    p.add_argument("datasets", nargs="*", help="datasets to check (default: every table in the lake)")
    p.add_argument("--clickhouse", action="store_true", help="also check rt_lmp in ClickHouse per ISO")
    p.add_argument("--iso", nargs="*", default=["CAISO", "MISO", "SPP"])
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
