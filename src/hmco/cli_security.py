"""``hmco security …``: the lake's bucket policies, generated from ``hmco.security.access.ACCESS``.

::

    hmco security apply --dry-run           # the documents: per role (MinIO users) and per bucket
    hmco security apply                     # PutBucketPolicy on every tier bucket (the admin's keys)
    hmco security report [--json]           # what is in force, read back, and any drift from ACCESS
    hmco security trino --out etc/security  # Trino's access rules and resource groups, from the same ACCESS
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parsers"]


def _lake(args: argparse.Namespace) -> Any:
    from hmco.config import Settings
    from hmco.lake import Lake

    return Lake(Settings.load(profile_file=getattr(args, "profile", None)))


def cmd_security(args: argparse.Namespace) -> int:
    from hmco.errors import ConfigError
    from hmco.security.buckets import apply_bucket_policies, bucket_policy_report, role_policies

    if args.action == "trino":
        from dataclasses import astuple

        from hmco.security.trino import write_trino_security

        files = write_trino_security(
            args.out,
            catalog=args.catalog,
            refresh_period=args.refresh_period,
            cluster_cores=args.cluster_cores,
        )
        for path in astuple(files):
            print(path)
        return 0
    lake = _lake(args)
    if args.action == "apply":
        put = apply_bucket_policies(lake, account=args.account, dry_run=args.dry_run)
        documents = {"roles": role_policies(lake), "buckets": put}
        if args.json:
            print(json.dumps(documents, indent=2))
            return 0
        verb = "would put" if args.dry_run else "put"
        for role, doc in documents["roles"].items():
            print(f"# role {role} (identity policy: MinIO `mc admin policy create hmco-{role} FILE`)")
            print(json.dumps(doc, indent=2))
        for bucket, doc in put.items():
            print(f"# bucket {bucket}: {verb} (PutBucketPolicy)")
            print(json.dumps(doc, indent=2))
        return 0
    if args.action == "report":
        report = bucket_policy_report(lake, account=args.account)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report)
        return 0 if report.ok else 1
    raise ConfigError(f"unknown security action {args.action!r}")


def _account_option(p: argparse.ArgumentParser) -> None:
    from hmco.security.buckets import DEFAULT_ACCOUNT

    p.add_argument(
        "--account",
        default=DEFAULT_ACCOUNT,
        help=f"account of the role users' ARNs in Principal (default {DEFAULT_ACCOUNT}, SeaweedFS's)",
    )


def add_parsers(sub: Any) -> None:
    """Add ``security`` (``apply``, ``report``) to the ``hmco`` command."""

    p = sub.add_parser(
        "security",
        help="who may do what: bucket policies (apply, report) and Trino's access rules (trino), from one ACCESS",
        description="Example: hmco security apply --dry-run   |   hmco security report --json",
    )
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser(
        "apply", help="put each tier bucket's policy with the admin's keys (this storage prefix's statements)"
    )
    q.add_argument(
        "--dry-run", action="store_true", help="print the documents that would be put; put nothing"
    )
    q.add_argument("--json", action="store_true", help="print the documents as one JSON object")
    _account_option(q)
    q = actions.add_parser(
        "report", help="read every tier bucket's policy back; exit 1 if it differs from ACCESS"
    )
    q.add_argument("--json", action="store_true", help="the report (and the policies in force) as JSON")
    _account_option(q)
    q = actions.add_parser(
        "trino", help="write Trino's file-based access rules and resource groups generated from ACCESS"
    )
    q.add_argument(
        "--out", required=True, help="directory for rules.json, resource-groups.json and etc/ snippets"
    )
    q.add_argument("--catalog", default="iceberg", help="the Trino catalog holding the hub_* schemas")
    q.add_argument(
        "--refresh-period", help="let Trino re-read the rules this often without a restart, e.g. 10s"
    )
    q.add_argument(
        "--cluster-cores",
        type=int,
        help="the Trino workers' cores in all: turns each group's CPU share into Trino CPU limits",
    )
    p.set_defaults(func=cmd_security)
