"""``hmco security …``: the lake's bucket policies and Trino's rules, generated from ``hmco.security.access.ACCESS``.

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

__all__ = ["DEFAULT_ACCOUNT", "add_parsers"]

#: ``hmco.security.buckets.DEFAULT_ACCOUNT``, spelled here so that building the parser imports nothing
#: heavy (tests/test_cli_help.py holds the two together).
DEFAULT_ACCOUNT = "000000000000"


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
    account = args.account or DEFAULT_ACCOUNT
    if args.action == "apply":
        put = apply_bucket_policies(lake, account=account, dry_run=args.dry_run)
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
        report = bucket_policy_report(lake, account=account)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report)
        return 0 if report.ok else 1
    raise ConfigError(f"unknown security action {args.action!r}")


def _account_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--account",
        help=f"account of the role users' ARNs in Principal (default {DEFAULT_ACCOUNT}, SeaweedFS's)",
    )


def add_parsers(sub: Any) -> None:
    """Add ``security`` (``apply``, ``report``, ``trino``) to the ``hmco`` command."""
    from hmco.cli_command import command

    p = command(
        sub,
        "security",
        help="who may do what: bucket policies (apply, report) and Trino's access rules (trino), from one ACCESS",
        examples=[
            "hmco security apply --dry-run  # the policy documents, put nowhere",
            "hmco security report --json  # what is in force, and any drift (exit 1)",
            "hmco security trino --out etc/security",
        ],
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    q = command(
        actions,
        "apply",
        help="put each tier bucket's policy with the admin's keys (this storage prefix's statements)",
        examples=[
            "hmco security apply --dry-run  # print the documents; put nothing",
            "hmco --profile cluster.yaml security apply  # PutBucketPolicy on every tier bucket",
        ],
    )
    q.add_argument(
        "--dry-run", action="store_true", help="print the documents that would be put; put nothing"
    )
    q.add_argument("--json", action="store_true", help="print the documents as one JSON object")
    _account_option(q)
    q = command(
        actions,
        "report",
        help="read every tier bucket's policy back; exit 1 if it differs from ACCESS",
        examples=["hmco security report", "hmco security report --json > policies.json"],
    )
    q.add_argument("--json", action="store_true", help="the report (and the policies in force) as JSON")
    _account_option(q)
    q = command(
        actions,
        "trino",
        help="write Trino's file-based access rules and resource groups generated from ACCESS",
        examples=[
            "hmco security trino --out etc/security --refresh-period 10s",
            "hmco security trino --out etc/security --cluster-cores 64  # with CPU limits per group",
        ],
    )
    q.add_argument(
        "--out", required=True, help="directory for rules.json, resource-groups.json and etc/ snippets"
    )
    q.add_argument(
        "--catalog", default="iceberg", help="the Trino catalog holding the hub_* schemas (default: iceberg)"
    )
    q.add_argument(
        "--refresh-period", help="let Trino re-read the rules this often without a restart, e.g. 10s"
    )
    q.add_argument(
        "--cluster-cores",
        type=int,
        help="the Trino workers' cores in all: turns each group's CPU share into Trino CPU limits",
    )
    p.set_defaults(func=cmd_security)
