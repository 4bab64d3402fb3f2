"""A SeaweedFS of its own for the bucket-policy tests: the admin keys plus one user per role, with no actions.

The role users hold keys but no identity actions, so whatever they may do comes from the bucket policies
hmco puts (SeaweedFS evaluates them for authenticated users whose ARN is the policy's Principal). Its own
server, because those policies replace the tier buckets' policies, which the shared server must not get.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hmco.config import S3Settings
from hmco.security.access import ACCESS
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS, _wait, free_port


@dataclass
class RoleSeaweedFS(SeaweedFS):
    """`weed mini` whose S3 identities are the admin and a key pair per role of ``ACCESS``."""

    role_keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    def start(self) -> RoleSeaweedFS:
        weed = Path(sys.executable).parent / "weed"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        self.role_keys = {
            r.name: (f"hmco-{r.user}-{secrets.token_hex(4)}", secrets.token_urlsafe(24)) for r in ACCESS
        }
        identities = [
            {
                "name": "admin",
                "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ] + [
            {"name": name, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": []}
            for name, (key, secret) in self.role_keys.items()
        ]
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": identities}))
        self.s3_port = free_port()
        args = [
            str(weed),
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-master.telemetry.url=http://127.0.0.1:1/",
            f"-master.port={free_port()}",
            f"-volume.port={free_port()}",
            f"-filer.port={free_port()}",
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            f"-s3.config={config}",
            "-s3.port.lance=0",
            f"-admin.port={free_port()}",
            "-admin.ui=false",
            "-webdav=false",
        ]
        log = open(self.root / "weed.log", "wb")  # noqa: SIM115  (kept open for the server's lifetime)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        _wait(self._s3_ready, f"SeaweedFS S3 on :{self.s3_port} (log: {self.root / 'weed.log'})", timeout=90)
        return self

    def admin_s3(self) -> S3Settings:
        """The storage administrator's S3 settings (the keys that apply policies)."""
        return S3Settings(endpoint=self.endpoint, access_key_id=S3_KEY, secret_access_key=S3_SECRET)

    def role_s3(self, role: str) -> S3Settings:
        """S3 settings holding ``role``'s own keys."""
        key, secret = self.role_keys[role]
        return S3Settings(endpoint=self.endpoint, access_key_id=key, secret_access_key=secret)
