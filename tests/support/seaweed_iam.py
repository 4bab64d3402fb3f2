"""A SeaweedFS of its own for the bucket-policy tests: the admin keys plus one user per role, with no actions.

The role users hold keys but no identity actions, so whatever they may do comes from the bucket policies
hmco puts (SeaweedFS evaluates them for authenticated users whose ARN is the policy's Principal). Its own
server, because those policies replace the tier buckets' policies, which the shared server must not get.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from hmco.config import S3Settings
from hmco.security.access import ACCESS
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS


@dataclass
class RoleSeaweedFS(SeaweedFS):
    """`weed mini` whose S3 identities are the admin and a key pair per role of ``ACCESS``."""

    role_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    iceberg: bool = False

    def _identities(self) -> list[dict[str, object]]:
        """The admin, and one key pair per role with no actions: every permission comes from bucket policies."""
        self.role_keys = {
            r.name: (f"hmco-{r.user}-{secrets.token_hex(4)}", secrets.token_urlsafe(24)) for r in ACCESS
        }
        return super()._identities() + [
            {"name": name, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": []}
            for name, (key, secret) in self.role_keys.items()
        ]

    def admin_s3(self) -> S3Settings:
        """The storage administrator's S3 settings (the keys that apply policies)."""
        return S3Settings(endpoint=self.endpoint, access_key_id=S3_KEY, secret_access_key=S3_SECRET)

    def role_s3(self, role: str) -> S3Settings:
        """S3 settings holding ``role``'s own keys."""
        key, secret = self.role_keys[role]
        return S3Settings(endpoint=self.endpoint, access_key_id=key, secret_access_key=secret)
