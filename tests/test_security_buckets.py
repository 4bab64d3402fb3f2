"""Bucket policies as code, enforced by a real SeaweedFS: each role, with its own keys, tried from both sides.

Every allowed action succeeds; every denied one fails with the server's own refusal (a botocore
``AccessDenied``, s3fs's PermissionError, pyarrow's OSError), which hmco turns into
:class:`~hmco.errors.AccessDenied` naming the role, the action and the object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from hmco.config import Settings
from hmco.errors import AccessDenied, ConfigError
from hmco.lake import Lake
from hmco.lake.tiers import TIERS
from hmco.security.access import ACCESS
from hmco.security.buckets import (
    DEFAULT_ACCOUNT,
    apply_bucket_policies,
    bucket_policies,
    bucket_policy_report,
    principal_arn,
    refusals,
    role_policies,
    s3_client,
)
from tests.support.seaweed_iam import RoleSeaweedFS

_n = itertools.count()
ALLOWED_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}
ADMIN_ACTIONS = {"s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:DeleteBucket", "s3:CreateBucket", "s3:*"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleSeaweedFS]:
    """SeaweedFS with the admin and one key pair per role (no identity actions: policies decide)."""
    weed = RoleSeaweedFS(tmp_path_factory.mktemp("seaweed-roles")).start()
    yield weed
    weed.stop()


def _lake(tmp_path: Path, s3: Any, bucket_prefix: str, storage_prefix: str = "env") -> Lake:
    return Lake(
        Settings.load(
            home=tmp_path / "hmco",
            bucket_prefix=bucket_prefix,
            storage_prefix=storage_prefix,
            s3=s3.model_dump(),
        )
    )


@pytest.fixture
def lake(tmp_path: Path, server: RoleSeaweedFS) -> Lake:
    """An admin's lake on fresh tier buckets (a bucket prefix of its own), with one object per tier."""
    lake = _lake(tmp_path, server.admin_s3(), f"t{next(_n)}-")
    admin = s3_client(lake.settings.s3)
    for name in TIERS:
        admin.create_bucket(Bucket=lake.bucket(name))
        admin.put_object(Bucket=lake.bucket(name), Key="env/seed.parquet", Body=b"seed")
    return lake


def _client(server: RoleSeaweedFS, role: str) -> Any:
    return s3_client(server.role_s3(role))


# --- the documents -----------------------------------------------------------------------------------


def test_role_documents_are_standard_s3_policies(tmp_path: Path) -> None:
    lake = _lake(
        tmp_path, Settings.load(home=tmp_path).s3.model_copy(update={"endpoint": "http://x"}), "dev-"
    )
    docs = role_policies(lake)
    assert set(docs) == {"etl-writer", "bi-reader", "ml"}
    json.loads(json.dumps(docs))  # plain JSON
    for role in ACCESS:
        doc = docs[role.name]
        assert doc["Version"] == "2012-10-17"
        granted: dict[str, set[str]] = {}
        for s in doc["Statement"]:
            assert re.fullmatch(r"[A-Za-z0-9]+", s["Sid"]), s["Sid"]
            assert s["Effect"] == "Allow" and "Principal" not in s
            assert set(s["Action"]) <= ALLOWED_ACTIONS and not set(s["Action"]) & ADMIN_ACTIONS
            for resource in s["Resource"]:
                bucket, _, rest = resource.removeprefix("arn:aws:s3:::").partition("/")
                assert rest in ("", "env/*")
                if not rest:
                    assert s["Action"] == ["s3:ListBucket"]
                    assert s["Condition"] == {"StringLike": {"s3:prefix": ["env", "env/*"]}}
                granted.setdefault(bucket, set()).update(s["Action"])
        expected = {
            f"dev-{TIERS[t].bucket}": {"s3:GetObject", "s3:ListBucket"}
            | (
                {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
                if t in role.writes
                else set()
            )
            for t in role.reads
        }
        assert granted == expected
    bi = {a for s in docs["bi-reader"]["Statement"] for a in s["Action"]}
    assert bi == {"s3:GetObject", "s3:ListBucket"}
    assert {r for s in docs["bi-reader"]["Statement"] for r in s["Resource"]} == {
        "arn:aws:s3:::dev-hmco-curated",
        "arn:aws:s3:::dev-hmco-curated/env/*",
    }


def test_bucket_documents_name_each_role_as_principal(tmp_path: Path) -> None:
    s3 = Settings.load(home=tmp_path).s3.model_copy(update={"endpoint": "http://x"})
    docs = bucket_policies(_lake(tmp_path, s3, "", storage_prefix=""))
    assert set(docs) == {t.bucket for t in TIERS.values()}
    raw = docs["hmco-raw"]["Statement"]
    assert {p for s in raw for p in s["Principal"]["AWS"]} == {"arn:aws:iam::000000000000:user/etl-writer"}
    assert {r for s in raw for r in s["Resource"]} == {"arn:aws:s3:::hmco-raw", "arn:aws:s3:::hmco-raw/*"}
    assert all("Condition" not in s for s in raw)  # no storage prefix: the whole bucket
    curated = {p for s in docs["hmco-curated"]["Statement"] for p in s["Principal"]["AWS"]}
    assert curated == {principal_arn(r) for r in ACCESS}
    ml_writers = {
        p
        for s in docs["hmco-ml"]["Statement"]
        if "s3:PutObject" in s["Action"]
        for p in s["Principal"]["AWS"]
    }
    assert ml_writers == {principal_arn(ACCESS.role("etl-writer")), principal_arn(ACCESS.role("ml"))}


def test_a_local_lake_has_no_bucket_policies(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="S3"):
        apply_bucket_policies(Lake(Settings.load(home=tmp_path)))


# --- applied and read back ----------------------------------------------------------------------------


def test_dry_run_puts_nothing_and_apply_is_reported_in_force(lake: Lake) -> None:
    planned = apply_bucket_policies(lake, dry_run=True)
    report = bucket_policy_report(lake)
    assert all(b.in_force is None for b in report.buckets) and not report.ok

    put = apply_bucket_policies(lake)
    assert put == planned
    report = bucket_policy_report(lake)
    assert report.ok, str(report)
    for b in report.buckets:
        assert [s["Sid"] for s in b.in_force["Statement"]] == [s["Sid"] for s in put[b.bucket]["Statement"]]
        for role in ACCESS:
            want = (["read", "list"] if b.tier in role.reads else []) + (
                ["write", "delete"] if b.tier in role.writes else []
            )
            assert sorted(b.grants[role.name]) == sorted(want), (b.tier, role.name)
    assert report.to_dict()["ok"] is True
    assert "bi-reader    read, list" in str(report)


def test_apply_keeps_other_prefixes_and_is_idempotent(
    lake: Lake, tmp_path: Path, server: RoleSeaweedFS
) -> None:
    apply_bucket_policies(lake)
    other = _lake(tmp_path / "other", server.admin_s3(), lake.settings.bucket_prefix, storage_prefix="env2")
    apply_bucket_policies(other)
    apply_bucket_policies(other)  # again: same statements, replaced, not added
    assert bucket_policy_report(lake).ok and bucket_policy_report(other).ok
    counts = {b: len(d["Statement"]) for b, d in bucket_policies(lake).items()}
    for b in bucket_policy_report(lake).buckets:
        assert len(b.in_force["Statement"]) == 2 * counts[b.bucket]


def test_report_shows_drift_from_access(lake: Lake) -> None:
    put = apply_bucket_policies(lake)
    curated = lake.bucket("curated")
    doc = put[curated]
    statements = [
        s
        for s in doc["Statement"]
        if s["Sid"] != next(s["Sid"] for s in doc["Statement"] if s["Sid"].startswith("HmcoReadBiReader"))
    ]
    extra = dict(statements[0], Sid=statements[0]["Sid"].replace("List", "Extra"))
    s3_client(lake.settings.s3).put_bucket_policy(
        Bucket=curated, Policy=json.dumps({"Version": "2012-10-17", "Statement": [*statements, extra]})
    )
    report = bucket_policy_report(lake)
    assert not report.ok
    b = next(b for b in report.buckets if b.tier == "curated")
    assert b.missing == [s for s in (x["Sid"] for x in doc["Statement"]) if s.startswith("HmcoReadBiReader")]
    assert b.unexpected == [extra["Sid"]]
    assert b.grants["bi-reader"] == ["list"]  # what the server holds now: no read


# --- enforced: each role with its own keys --------------------------------------------------------------


def _try(role: str, action: str, bucket: str, key: str | None, call: Callable[[], Any]) -> str:
    """``ok``, or ``denied`` when the server refused (and hmco raised AccessDenied naming it all)."""
    try:
        with refusals(role, action, bucket, key):
            call()
    except AccessDenied as exc:
        assert (exc.role, exc.action) == (role, action)
        assert exc.resource == (f"s3://{bucket}/{key}" if key else f"s3://{bucket}")
        assert role in str(exc) and action in str(exc) and "hmco security apply" in str(exc)
        cause = exc.__cause__
        assert isinstance(cause, ClientError)
        assert cause.response["Error"]["Code"] in ("AccessDenied", "403")  # the server's own refusal
        assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        return "denied"
    return "ok"


def _checks(c: Any, b: str, key: str) -> dict[str, tuple[str, str | None, Callable[[], Any]]]:
    """What a role tries on one tier bucket: the S3 action, the key it names, and the call."""
    seed = "env/seed.parquet"
    return {
        "read": ("s3:GetObject", seed, lambda: c.get_object(Bucket=b, Key=seed)),
        "head": ("s3:GetObject", seed, lambda: c.head_object(Bucket=b, Key=seed)),
        "list": ("s3:ListBucket", None, lambda: c.list_objects_v2(Bucket=b, Prefix="env/")),
        "write": ("s3:PutObject", key, lambda: c.put_object(Bucket=b, Key=key, Body=b"x")),
        "delete": ("s3:DeleteObject", seed, lambda: c.delete_object(Bucket=b, Key=seed)),
        # Outside this lake's storage prefix nobody lists or writes, whatever the tier.
        "list-all": ("s3:ListBucket", None, lambda: c.list_objects_v2(Bucket=b)),
        "write-elsewhere": (
            "s3:PutObject",
            "other/x",
            lambda: c.put_object(Bucket=b, Key="other/x", Body=b"x"),
        ),
    }


def test_without_policies_the_role_keys_may_do_nothing(lake: Lake, server: RoleSeaweedFS) -> None:
    """The control: role users have no identity actions, so every grant below comes from the policies."""
    for role in ACCESS:
        c = _client(server, role.name)
        for name in role.writes:
            for what, (action, k, call) in _checks(c, lake.bucket(name), "env/x").items():
                assert _try(role.name, action, lake.bucket(name), k, call) == "denied", (
                    role.name,
                    name,
                    what,
                )


@pytest.mark.parametrize("role", [r.name for r in ACCESS])
def test_each_role_may_do_exactly_what_access_declares(lake: Lake, server: RoleSeaweedFS, role: str) -> None:
    apply_bucket_policies(lake)
    c, declared = _client(server, role), ACCESS.role(role)
    seen, expected = {}, {}
    for name in TIERS:
        b = lake.bucket(name)
        for what, (action, k, call) in _checks(c, b, f"env/{role}-{name}.parquet").items():
            seen[(name, what)] = _try(role, action, b, k, call)
            may = name in (declared.writes if what in ("write", "delete") else declared.reads)
            expected[(name, what)] = "ok" if may and what not in ("list-all", "write-elsewhere") else "denied"
    assert seen == expected


@pytest.mark.parametrize("role", [r.name for r in ACCESS])
def test_no_role_administers_buckets_or_policies(lake: Lake, server: RoleSeaweedFS, role: str) -> None:
    apply_bucket_policies(lake)
    c = _client(server, role)
    bucket = lake.bucket("ml")  # a bucket every role but bi-reader writes
    policy = json.dumps(bucket_policies(lake)[bucket])
    admin_calls: dict[str, Callable[[], Any]] = {
        "s3:PutBucketPolicy": lambda: c.put_bucket_policy(Bucket=bucket, Policy=policy),
        "s3:DeleteBucketPolicy": lambda: c.delete_bucket_policy(Bucket=bucket),
        "s3:GetBucketPolicy": lambda: c.get_bucket_policy(Bucket=bucket),
        "s3:DeleteBucket": lambda: c.delete_bucket(Bucket=bucket),
        "s3:CreateBucket": lambda: c.create_bucket(Bucket=f"{lake.settings.bucket_prefix}{role}-new"),
    }
    for action, call in admin_calls.items():
        assert _try(role, action, bucket, None, call) == "denied", action
    assert bucket_policy_report(lake).ok  # and the policies in force are untouched


def test_s3fs_and_pyarrow_refusals_become_access_denied(
    lake: Lake, server: RoleSeaweedFS, tmp_path: Path
) -> None:
    import s3fs

    apply_bucket_policies(lake)
    bi = server.role_s3("bi-reader")
    curated, staged = lake.bucket("curated"), lake.bucket("staged")
    fs = s3fs.S3FileSystem(
        key=bi.access_key_id.get_secret_value(),
        secret=bi.secret_access_key.get_secret_value(),
        client_kwargs={"endpoint_url": server.endpoint, "region_name": "us-east-1"},
        skip_instance_cache=True,
    )
    assert fs.cat(f"{curated}/env/seed.parquet") == b"seed"  # allowed: read curated
    with (
        pytest.raises(AccessDenied, match="bi-reader") as denied,
        refusals("bi-reader", "s3:PutObject", curated, "env/y"),
    ):
        fs.pipe(f"{curated}/env/y", b"y")
    assert isinstance(denied.value.__cause__, PermissionError)

    bi_lake = _lake(tmp_path / "bi", bi, lake.settings.bucket_prefix)  # hmco's own filesystem, bi's keys
    pafs, path = bi_lake.filesystem(bi_lake.storage_location("curated"))
    with pafs.open_input_stream(f"{path}/seed.parquet") as f:
        assert f.read() == b"seed"
    with (
        pytest.raises(AccessDenied, match="s3:GetObject") as denied,
        refusals("bi-reader", "s3:GetObject", staged, "env/seed.parquet"),
    ):
        spath = bi_lake.filesystem(bi_lake.storage_location("staged"))[1]
        with pafs.open_input_stream(f"{spath}/seed.parquet") as f:
            f.read()
    assert isinstance(denied.value.__cause__, OSError)


def test_other_errors_pass_through(lake: Lake, server: RoleSeaweedFS) -> None:
    apply_bucket_policies(lake)
    c, bucket = _client(server, "etl-writer"), lake.bucket("raw")
    with (
        pytest.raises(ClientError, match="NoSuchKey"),
        refusals("etl-writer", "s3:GetObject", bucket, "env/k"),
    ):
        c.get_object(Bucket=bucket, Key="env/k")
    # A bucket the role may not see is refused, not reported missing: the server gives nothing away.
    assert (
        _try(
            "etl-writer",
            "s3:GetObject",
            "nope-bucket",
            "k",
            lambda: c.get_object(Bucket="nope-bucket", Key="k"),
        )
        == "denied"
    )


# --- the command ---------------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    from hmco.cli_security import add_parsers

    parser = argparse.ArgumentParser(prog="hmco")
    parser.add_argument("--profile")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_apply_and_report(
    lake: Lake, server: RoleSeaweedFS, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = lake.settings.s3
    monkeypatch.setenv("HMCO_HOME", str(lake.settings.home_dir))
    monkeypatch.setenv("HMCO_BUCKET_PREFIX", lake.settings.bucket_prefix)
    monkeypatch.setenv("HMCO_STORAGE_PREFIX", lake.settings.storage_prefix)
    monkeypatch.setenv("HMCO_S3__ENDPOINT", server.endpoint)
    monkeypatch.setenv("HMCO_S3__ACCESS_KEY_ID", s3.access_key_id.get_secret_value())
    monkeypatch.setenv("HMCO_S3__SECRET_ACCESS_KEY", s3.secret_access_key.get_secret_value())

    assert _run(["security", "report"]) == 1  # nothing applied yet
    capsys.readouterr()
    assert _run(["security", "apply", "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out
    docs = json.loads(out)
    assert set(docs["roles"]) == {"etl-writer", "bi-reader", "ml"}
    assert set(docs["buckets"]) == {lake.bucket(t) for t in TIERS}
    assert s3.secret_access_key.get_secret_value() not in out
    assert _run(["security", "report"]) == 1  # a dry run put nothing
    assert _run(["security", "apply"]) == 0
    capsys.readouterr()
    assert _run(["security", "report", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {b["tier"] for b in report["buckets"]} == set(TIERS)
    assert DEFAULT_ACCOUNT in json.dumps(report)
