"""Bucket policies as code: S3 policy documents per role, generated from :data:`~hmco.security.access.ACCESS`.

Two forms of the same grants, in standard S3/IAM policy JSON:

* :func:`role_policies`: one identity policy per role (no ``Principal``): what MinIO attaches to a user
  (``mc admin policy create hmco-etl-writer etl-writer.json`` then ``mc admin policy attach``).
* :func:`bucket_policies`: one resource policy per tier bucket, naming each role's user as ``Principal``:
  what :func:`apply_bucket_policies` puts with ``PutBucketPolicy`` (SeaweedFS enforces these, keyed on
  ``arn:aws:iam::<account>:user/<role>``; its default account is ``000000000000``).

Grants are scoped to the lake's storage prefix (objects ``<bucket>/<prefix>/*``, listing with an
``s3:prefix`` condition), so environments sharing buckets keep their own statements: applying replaces
only this prefix's ``Hmco…`` statements. No role gets bucket or policy administration
(``s3:PutBucketPolicy``, ``s3:DeleteBucket`` …). A refusal by the server becomes
:class:`~hmco.errors.AccessDenied` naming the role, the action and the object (:func:`as_access_denied`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.errors import AccessDenied, ConfigError
from hmco.lake.tiers import TIERS
from hmco.security.access import ACCESS, AccessPolicy, Role

if TYPE_CHECKING:
    from hmco.config import S3Settings
    from hmco.lake import Lake

__all__ = [
    "DEFAULT_ACCOUNT",
    "LIST_ACTIONS",
    "READ_ACTIONS",
    "WRITE_ACTIONS",
    "BucketReport",
    "PolicyReport",
    "apply_bucket_policies",
    "as_access_denied",
    "bucket_policies",
    "bucket_policy_report",
    "principal_arn",
    "refusals",
    "role_policies",
    "role_policy",
    "s3_client",
]

log = get_logger("hmco.security.buckets")

VERSION = "2012-10-17"
#: The account of principals' ARNs: SeaweedFS's default IAM account (``arn:aws:iam::000000000000:user/x``).
DEFAULT_ACCOUNT = "000000000000"
#: Object actions of a tier a role reads / writes, and the bucket action of listing it.
READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
LIST_ACTIONS = ("s3:ListBucket",)
#: What the report checks in force per role and tier (the action, on an object or on the bucket).
_PROBES = {
    "read": "s3:GetObject",
    "write": "s3:PutObject",
    "delete": "s3:DeleteObject",
    "list": "s3:ListBucket",
}


def principal_arn(role: Role, account: str = DEFAULT_ACCOUNT) -> str:
    """The ARN of the S3 user holding ``role``'s keys (the user is named as the role)."""
    return f"arn:aws:iam::{account}:user/{role.name}"


def _prefix(lake: Lake) -> str:
    return lake.settings.storage_prefix.strip("/")


def _scope(prefix: str) -> str:
    """The Sid suffix of this storage prefix (Sids are alphanumeric): ``InBucket`` or ``InP<hash>``."""
    return "InBucket" if not prefix else "InP" + hashlib.sha256(prefix.encode()).hexdigest()[:16]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-") if part)


def _statements(
    role: Role, tier: str, bucket: str, prefix: str, principal: str | None
) -> list[dict[str, Any]]:
    """The statements granting ``role`` its access to one tier's bucket (read, write, list)."""
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    sid = f"Hmco{{}}{_camel(role.name)}{_camel(tier)}{_scope(prefix)}"
    who: dict[str, Any] = {"Principal": {"AWS": [principal]}} if principal else {}
    out: list[dict[str, Any]] = []
    if tier in role.reads:
        listing: dict[str, Any] = {
            "Sid": sid.format("List"),
            "Effect": "Allow",
            **who,
            "Action": list(LIST_ACTIONS),
            "Resource": [f"arn:aws:s3:::{bucket}"],
        }
        if prefix:
            listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
        out.append(listing)
        out.append(
            {
                "Sid": sid.format("Read"),
                "Effect": "Allow",
                **who,
                "Action": list(READ_ACTIONS),
                "Resource": [objects],
            }
        )
    if tier in role.writes:
        out.append(
            {
                "Sid": sid.format("Write"),
                "Effect": "Allow",
                **who,
                "Action": list(WRITE_ACTIONS),
                "Resource": [objects],
            }
        )
    return out


def role_policy(role: Role, lake: Lake) -> dict[str, Any]:
    """``role``'s identity policy (no Principal) over every tier it reads or writes."""
    statements = [
        s for name in TIERS for s in _statements(role, name, lake.bucket(name), _prefix(lake), principal=None)
    ]
    return {"Version": VERSION, "Statement": statements}


def role_policies(lake: Lake, access: AccessPolicy = ACCESS) -> dict[str, dict[str, Any]]:
    """Every role's identity policy, by role name (MinIO: ``mc admin policy create``)."""
    return {role.name: role_policy(role, lake) for role in access}


def bucket_policies(
    lake: Lake, access: AccessPolicy = ACCESS, account: str = DEFAULT_ACCOUNT
) -> dict[str, dict[str, Any]]:
    """Each tier bucket's policy (this storage prefix's statements), naming each role's user as Principal."""
    out: dict[str, dict[str, Any]] = {}
    for name in TIERS:
        bucket = lake.bucket(name)
        doc = out.setdefault(bucket, {"Version": VERSION, "Statement": []})
        for role in access:
            doc["Statement"] += _statements(role, name, bucket, _prefix(lake), principal_arn(role, account))
    return out


# --- the server ------------------------------------------------------------------------------------


def s3_client(s3: S3Settings) -> Any:
    """A botocore S3 client for ``s3`` whose refusals come back at once (two attempts at most)."""
    from hmco.lake import s3_client as lake_s3_client

    return lake_s3_client(s3, max_attempts=2)


def _require_s3(lake: Lake) -> None:
    if lake.is_local:
        raise ConfigError(
            "bucket policies need a lake on S3/MinIO (set s3.endpoint and keys); this lake is local"
        )


def _read_policy(client: Any, bucket: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        text = client.get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucketPolicy":
            return None
        raise as_access_denied(exc, None, "s3:GetBucketPolicy", bucket) or exc from exc
    policy: dict[str, Any] = json.loads(text)
    return policy


def _ours(statement: Mapping[str, Any], scope: str) -> bool:
    sid = str(statement.get("Sid", ""))
    return sid.startswith("Hmco") and sid.endswith(scope)


def apply_bucket_policies(
    lake: Lake,
    access: AccessPolicy = ACCESS,
    *,
    account: str = DEFAULT_ACCOUNT,
    client: Any = None,
    dry_run: bool = False,
) -> dict[str, dict[str, Any]]:
    """Put each tier bucket's policy (``PutBucketPolicy``, with the lake's admin keys); returns what was put.

    Statements of other storage prefixes and of other origins are kept; this prefix's are replaced.
    With ``dry_run`` nothing is put: the merged documents that would be are returned.
    """
    _require_s3(lake)
    client = client or s3_client(lake.settings.s3)
    scope = _scope(_prefix(lake))
    put: dict[str, dict[str, Any]] = {}
    for bucket, doc in bucket_policies(lake, access, account).items():
        current = _read_policy(client, bucket) or {"Version": VERSION, "Statement": []}
        kept = [s for s in _as_list(current.get("Statement")) if not _ours(s, scope)]
        merged = {"Version": current.get("Version", VERSION), "Statement": kept + doc["Statement"]}
        put[bucket] = merged
        if dry_run:
            continue
        from botocore.exceptions import ClientError

        try:
            client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(merged))
        except ClientError as exc:
            raise as_access_denied(exc, None, "s3:PutBucketPolicy", bucket) or exc from exc
        log.info("bucket policy put on %s: %d statement(s) of this lake", bucket, len(doc["Statement"]))
    return put


# --- what is in force ------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _normalise(statement: Mapping[str, Any]) -> dict[str, Any]:
    """A statement with every list sorted and single values as lists (servers collapse 1-lists to strings)."""

    def norm(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: norm(v) for k, v in sorted(value.items())}
        if isinstance(value, list | tuple):
            return sorted(str(v) for v in value)
        return value

    out = {k: norm(v) for k, v in statement.items()}
    for key in ("Action", "Resource"):
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    principal = out.get("Principal")
    if isinstance(principal, dict) and isinstance(principal.get("AWS"), str):
        out["Principal"] = {**principal, "AWS": [principal["AWS"]]}
    return out


def _matches(statement: Mapping[str, Any], principal: str, action: str, resource: str) -> bool:
    who = statement.get("Principal")
    principals = ["*"] if who == "*" else _as_list(who.get("AWS")) if isinstance(who, Mapping) else []
    return (
        any(p in ("*", principal) for p in principals)
        and any(fnmatch.fnmatchcase(action, a) for a in _as_list(statement.get("Action")))
        and any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement.get("Resource")))
    )


def _grants(policy: Mapping[str, Any] | None, principal: str, bucket: str, prefix: str) -> list[str]:
    """Which of read/write/delete/list ``principal`` holds on this prefix of ``bucket`` (Deny wins)."""
    statements = _as_list((policy or {}).get("Statement"))
    sample = f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}x"
    out = []
    for what, action in _PROBES.items():
        resource = f"arn:aws:s3:::{bucket}" if what == "list" else sample
        hits = [s for s in statements if _matches(s, principal, action, resource)]
        if any(s.get("Effect") == "Allow" for s in hits) and not any(s.get("Effect") == "Deny" for s in hits):
            out.append(what)
    return out


@dataclass
class BucketReport:
    """One tier bucket: the policy in force (read back), and how this lake's statements differ from ACCESS."""

    tier: str
    bucket: str
    in_force: dict[str, Any] | None
    #: role -> what it holds on this lake's prefix (read, write, delete, list), per the policy in force.
    grants: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # Sids declared but absent or altered on the server
    unexpected: list[str] = field(default_factory=list)  # this prefix's Hmco Sids not declared

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


@dataclass
class PolicyReport:
    """What is in force on every tier bucket, and whether it is exactly what ACCESS declares."""

    storage_prefix: str
    buckets: list[BucketReport]

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.buckets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "storage_prefix": self.storage_prefix,
            "buckets": [
                {
                    "tier": b.tier,
                    "bucket": b.bucket,
                    "ok": b.ok,
                    "grants": b.grants,
                    "missing": b.missing,
                    "unexpected": b.unexpected,
                    "policy": b.in_force,
                }
                for b in self.buckets
            ],
        }

    def __str__(self) -> str:
        lines = [
            f"bucket policies (storage prefix {self.storage_prefix or '(none)'}): "
            + ("OK" if self.ok else "DRIFT from ACCESS")
        ]
        for b in self.buckets:
            lines.append(f"  {b.tier:8} {b.bucket}: {'in force' if b.in_force else 'NO POLICY'}")
            for role, what in b.grants.items():
                lines.append(f"    {role:12} {', '.join(what) or '-'}")
            lines += [f"    missing    {sid}" for sid in b.missing]
            lines += [f"    unexpected {sid}" for sid in b.unexpected]
        return "\n".join(lines)


def bucket_policy_report(
    lake: Lake, access: AccessPolicy = ACCESS, *, account: str = DEFAULT_ACCOUNT, client: Any = None
) -> PolicyReport:
    """Read every tier bucket's policy back from the server; compare this prefix's statements with ACCESS."""
    _require_s3(lake)
    client = client or s3_client(lake.settings.s3)
    prefix, scope = _prefix(lake), _scope(_prefix(lake))
    declared = bucket_policies(lake, access, account)
    reports = []
    for name in TIERS:
        bucket = lake.bucket(name)
        in_force = _read_policy(client, bucket)
        found = {
            str(s.get("Sid")): _normalise(s)
            for s in _as_list((in_force or {}).get("Statement"))
            if _ours(s, scope) and tier_of(s) == name
        }
        want = {s["Sid"]: _normalise(s) for s in declared[bucket]["Statement"] if tier_of(s) == name}
        reports.append(
            BucketReport(
                tier=name,
                bucket=bucket,
                in_force=in_force,
                grants={r.name: _grants(in_force, principal_arn(r, account), bucket, prefix) for r in access},
                missing=sorted(sid for sid, s in want.items() if found.get(sid) != s),
                unexpected=sorted(sid for sid in found if sid not in want),
            )
        )
    return PolicyReport(storage_prefix=prefix, buckets=reports)


def tier_of(statement: Mapping[str, Any]) -> str | None:
    """The tier an ``Hmco…`` statement grants on, from its Sid (``HmcoRead<Role><Tier>In…``)."""
    sid = str(statement.get("Sid", "")).rsplit("In", 1)[0]
    return next((t for t in TIERS if sid.endswith(_camel(t))), None)


# --- the server's refusal --------------------------------------------------------------------------


def _is_refusal(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return error.get("Code") in ("AccessDenied", "403", "Forbidden")  # HEAD refusals carry no code
    if isinstance(exc, PermissionError):  # s3fs maps AccessDenied to PermissionError
        return True
    text = str(exc)  # pyarrow.fs raises OSError naming the S3 error
    return isinstance(exc, OSError) and ("AccessDenied" in text or "ACCESS_DENIED" in text)


def as_access_denied(
    exc: BaseException, role: Role | str | None, action: str, bucket: str, key: str | None = None
) -> AccessDenied | None:
    """:class:`~hmco.errors.AccessDenied` for the server's refusal ``exc`` (None if ``exc`` is no refusal)."""
    if not _is_refusal(exc):
        return None
    name = role.name if isinstance(role, Role) else role
    resource = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    who = f"role {name}" if name else "these keys"
    hint = "use the keys of a role that may, or the storage administrator's keys"
    if name:
        try:
            declared = ACCESS.role(name)
            hint = (
                f"{name} reads {', '.join(declared.reads) or 'nothing'} and writes "
                f"{', '.join(declared.writes) or 'nothing'} (hmco.security.access.ACCESS); {hint}; "
                "if ACCESS should allow it, change it and run `hmco security apply`"
            )
        except ConfigError:
            pass
    message = f"the storage server refused {who} {action} on {resource} (AccessDenied): {hint}"
    return AccessDenied(message, role=name, action=action, resource=resource)


@contextlib.contextmanager
def refusals(role: Role | str | None, action: str, bucket: str, key: str | None = None) -> Iterator[None]:
    """Turn the server's refusal of the enclosed S3 call into :class:`~hmco.errors.AccessDenied`."""
    try:
        yield
    except Exception as exc:
        denied = as_access_denied(exc, role, action, bucket, key)
        if denied is None:
            raise
        raise denied from exc
