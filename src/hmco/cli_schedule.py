"""``hmco serve`` and ``hmco schedule …``: run the job catalogue, and export it to other schedulers.

::

    hmco serve                              # every job on its schedule + real-time poller + /metrics
    hmco serve --once                       # run what is due now, then exit (cron, Kubernetes CronJob)
    hmco schedule list                      # the catalogue: jobs, cron, time zone, SLA, next fire
    hmco schedule show eia-daily-fuel       # a shipped spec, to copy into an overrides directory
    hmco schedule run eia-daily-fuel        # run one job now, under its lease (DolphinScheduler tasks)
    hmco schedule export --dolphinscheduler --out workflows/
    hmco schedule rules --out hmco-rules.yaml        # Prometheus alerting rules
    hmco schedule dashboard --out hmco-dashboard.json  # Grafana dashboard
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hmco.errors import ConfigError
from hmco.windows import format_duration

if TYPE_CHECKING:
    from hmco.schedule import Catalogue, JobResult, JobRunner

__all__ = ["METRICS_PORT", "add_parsers"]

#: ``hmco serve``'s /metrics port: ``hmco.schedule.serve.DEFAULT_METRICS_PORT``, spelled here so that
#: building the parser imports nothing heavy (tests/test_cli_help.py holds the two together).
METRICS_PORT = 9477


def _catalogue(args: argparse.Namespace, settings: Any = None) -> Catalogue:
    from hmco.schedule import default_catalogue

    dr = settings is not None and settings.dr.s3 is not None and bool(settings.dr.s3.endpoint)
    catalogue = default_catalogue(
        args.specs,
        timezone=args.timezone,
        replication=dr or getattr(args, "replication", False),
        pipelines=getattr(args, "pipeline", None),
    )
    jobs = getattr(args, "job", None)
    return catalogue.only(jobs) if jobs else catalogue


def _now(args: argparse.Namespace) -> datetime | None:
    from hmco.lake.state import parse_instant

    return parse_instant(args.now) if getattr(args, "now", None) else None


def _runner(args: argparse.Namespace, settings: Any, catalogue: Catalogue) -> JobRunner:
    from hmco.lake import Lake
    from hmco.monitoring.notify import WebhookNotifier
    from hmco.schedule import JobRunner

    if args.no_gate:
        print(
            "hmco: WARNING: --no-gate: scheduled ingestion publishes WITHOUT the quality gate",
            file=sys.stderr,
        )
    notifier = WebhookNotifier.from_settings(
        settings.alerts, state_file=settings.home_dir / "alerts" / "freshness-state.json"
    )
    return JobRunner(catalogue, Lake(settings), notifier=notifier, gate=False if args.no_gate else None)


def _print_results(results: list[JobResult], as_json: bool) -> int:
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for result in results:
            print(result)
        if not results:
            print("nothing due")
    return 0 if all(r.ok for r in results) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from hmco.config import Settings
    from hmco.schedule import Serve

    settings = Settings.load(profile_file=args.profile)
    catalogue = _catalogue(args, settings)
    runner = _runner(args, settings, catalogue)
    if args.once:
        serve = Serve(runner, metrics_port=None)
        return _print_results(serve.once(_now(args)), args.json)
    if args.now:
        raise ConfigError("--now only applies to --once (a long-running serve follows the clock)")
    port = METRICS_PORT if args.metrics_port is None else args.metrics_port
    serve = Serve(runner, metrics_port=port, metrics_addr=args.metrics_addr, max_workers=args.workers)
    serve.on_result = lambda r: print(r, flush=True)
    serve.install_signal_handlers()
    serve.start()
    print(f"hmco serve: {len(catalogue)} job(s); metrics at {serve.metrics_url or '(off)'}", flush=True)
    try:
        serve.stop_event.wait()
    finally:
        serve.shutdown()
    print("hmco serve: stopped", flush=True)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from hmco.config import Settings

    action = args.action
    if action == "list":
        catalogue = _catalogue(args)
        at = _now(args) or datetime.now(UTC)
        rows = [
            {
                "job": j.name,
                "kind": j.kind,
                "cron": j.cron.expression,
                "timezone": j.cron.timezone,
                "sla": format_duration(j.sla, exact=True) if j.sla else "",
                "next": j.cron.next_fire(at).astimezone(UTC).isoformat(timespec="minutes"),
                "command": " ".join(j.command),
            }
            for j in catalogue
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'job':32} {'kind':11} {'cron':14} {'timezone':18} {'sla':10} next (UTC)")
            for r in rows:
                print(
                    f"{r['job']:32} {r['kind']:11} {r['cron']:14} {r['timezone']:18} {r['sla']:10} {r['next']}"
                )
        return 0
    if action == "show":
        import yaml

        from hmco.schedule import shipped_specs

        specs = shipped_specs()
        if args.name not in specs:
            raise ConfigError(f"no shipped spec named {args.name!r}; shipped: {', '.join(specs)}")
        print(yaml.safe_dump(specs[args.name], sort_keys=False), end="")
        return 0
    if action == "run":
        settings = Settings.load(profile_file=args.profile)
        runner = _runner(args, settings, _catalogue(args, settings))
        job = runner.catalogue.get(args.name)
        now = _now(args)
        result = runner.run(job, fire=runner.due(job, now), now=now)
        return _print_results([result], args.json)
    if action == "export":
        from hmco.schedule.dolphinscheduler import export_workflows, write_workflows

        if not args.dolphinscheduler:
            raise ConfigError("say which scheduler to export to: --dolphinscheduler")
        workflows = export_workflows(
            _catalogue(args), project=args.project, command_prefix=args.command_prefix
        )
        paths = write_workflows(workflows, Path(args.out), fmt=args.format)
        for path in paths:
            print(path)
        return 0
    if action == "rules":
        from hmco.monitoring.alerts import write_alert_rules

        path = write_alert_rules(Path(args.out), _catalogue(args))
        print(path)
        return 0
    if action == "dashboard":
        from hmco.monitoring.dashboard import write_dashboard

        path = write_dashboard(Path(args.out), _catalogue(args))
        print(path)
        return 0
    raise ConfigError(f"unknown schedule action {action!r}")


def _catalogue_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--specs", metavar="DIR", help="directory of spec overrides, merged over the shipped ones by name"
    )
    p.add_argument(
        "--timezone",
        default="UTC",
        help="time zone of the upkeep and backup times (default UTC; e.g. America/Chicago)",
    )
    p.add_argument(
        "--replication",
        action="store_true",
        help="include the lake's replication to the DR site (on if configured)",
    )
    p.add_argument(
        "--pipeline",
        action="append",
        help="keep only this ingestion pipeline in the catalogue (repeatable): the freshness watch, the rules "
        "and the dashboard then cover only these; upkeep and backups stay",
    )


def add_parsers(sub: Any) -> None:
    """Add ``serve`` and ``schedule`` to the ``hmco`` command (importing nothing beyond the standard library)."""
    from hmco.cli_command import command

    p = command(
        sub,
        "serve",
        help="run every scheduled job, the real-time poller and Prometheus /metrics (the one-machine scheduler)",
        examples=[
            "hmco serve --metrics-port 9477  # every job on its schedule until SIGTERM",
            "hmco serve --once --job eia-daily-fuel  # what is due now, then exit (cron, Kubernetes CronJob)",
            "hmco serve --specs overrides/ --metrics-addr 0.0.0.0  # with spec overrides, scraped from outside",
        ],
    )
    _catalogue_options(p)
    p.add_argument(
        "--once", action="store_true", help="run everything due now, then exit (for cron or Kubernetes)"
    )
    p.add_argument("--now", help="with --once: act as if it were this instant (ISO 8601)")
    p.add_argument("--job", action="append", help="only this job (repeatable; default: the whole catalogue)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help=f"port of /metrics (default: {METRICS_PORT}; 0: any free port)",
    )
    p.add_argument(
        "--metrics-addr", default="127.0.0.1", help="address /metrics binds (0.0.0.0 for a scraper)"
    )
    p.add_argument("--workers", type=int, default=4, help="jobs that may run at the same time (default: 4)")
    p.add_argument(
        "--no-gate", action="store_true", help="publish WITHOUT the quality gate (warns on every run)"
    )
    p.add_argument("--json", action="store_true", help="with --once: results as JSON")
    p.set_defaults(func=cmd_serve)

    p = command(
        sub,
        "schedule",
        help="the job catalogue: list, show a spec, run one job, export to DolphinScheduler, alert rules, dashboard",
        examples=[
            "hmco schedule list  # jobs, cron, time zone, SLA and next fire",
            "hmco schedule run eia-daily-fuel  # one job now, under its lease",
            "hmco schedule export --dolphinscheduler --out workflows/",
        ],
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    q = command(
        actions,
        "list",
        help="every job with its cron, time zone, SLA and next fire",
        examples=[
            "hmco schedule list",
            "hmco schedule list --specs overrides/ --json  # with overrides, as JSON",
        ],
    )
    _catalogue_options(q)
    q.add_argument("--now", help="compute next fires from this instant (ISO 8601)")
    q.add_argument("--json", action="store_true", help="print the jobs as JSON")
    q = command(
        actions,
        "show",
        help="print a shipped spec (copy it into --specs DIR to override it)",
        examples=[
            "hmco schedule show eia-daily-fuel > overrides/eia.yaml  # then edit and pass --specs overrides"
        ],
    )
    q.add_argument("name", help="pipeline name, e.g. eia-daily-fuel")
    q = command(
        actions,
        "run",
        help="run one job now under its lease (exit 1 if it failed)",
        examples=[
            "hmco schedule run eia-daily-fuel  # what a DolphinScheduler task runs",
            "hmco schedule run iceberg-expire-snapshots --now 2026-11-29T02:00Z  # as if it were that instant",
        ],
    )
    _catalogue_options(q)
    q.add_argument("name", help="job name (hmco schedule list)")
    q.add_argument("--now", help="act as if it were this instant (ISO 8601)")
    q.add_argument("--no-gate", action="store_true", help="publish WITHOUT the quality gate (warns)")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q = command(
        actions,
        "export",
        help="write the catalogue as another scheduler's workflows",
        examples=[
            "hmco schedule export --dolphinscheduler --out workflows/  # then: pydolphinscheduler yaml -f FILE",
            "hmco schedule export --dolphinscheduler --out wf/ --command-prefix 'source /opt/hmco/bin/activate &&'",
        ],
    )
    _catalogue_options(q)
    q.add_argument(
        "--dolphinscheduler", action="store_true", help="DolphinScheduler workflows (official Python API)"
    )
    q.add_argument("--out", required=True, help="directory to write one file per workflow into")
    q.add_argument(
        "--format",
        choices=["yaml", "json"],
        default="yaml",
        help="yaml (for `pydolphinscheduler yaml -f`) or json (default: yaml)",
    )
    q.add_argument("--project", default="hmco", help="DolphinScheduler project (default: hmco)")
    q.add_argument(
        "--command-prefix", help="prepended to each task command, e.g. 'source /opt/hmco/bin/activate &&'"
    )
    q = command(
        actions,
        "rules",
        help="write Prometheus alerting rules generated from the catalogue",
        examples=["hmco schedule rules --out /etc/prometheus/rules/hmco-rules.yaml"],
    )
    _catalogue_options(q)
    q.add_argument("--out", required=True, help="rules file to write (YAML)")
    q = command(
        actions,
        "dashboard",
        help="write the Grafana dashboard (JSON model) generated from the catalogue",
        examples=["hmco schedule dashboard --out hmco-dashboard.json  # import it in Grafana"],
    )
    _catalogue_options(q)
    q.add_argument("--out", required=True, help="dashboard file to write (JSON)")
    p.set_defaults(func=cmd_schedule)
