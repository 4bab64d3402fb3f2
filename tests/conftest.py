"""Shared fixtures. Servers (PostgreSQL, SeaweedFS) are started by the test run itself, on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
# Never read a developer's own profile or keys into the tests.
for _key in [k for k in os.environ if k.startswith("HMCO_")]:
    del os.environ[_key]

from hmco.config import Settings  # noqa: E402
from tests.support.replay import ReplayServer  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Local-profile settings: the lake under a fresh temporary HMCO_HOME, ClickHouse (chdb) in a fresh
    database of the process-wide chdb directory (chdb can open only one directory per process)."""
    from tests.support.chdb import chdb_dir, unique_database

    return Settings.load(
        home=tmp_path / "hmco", clickhouse={"path": chdb_dir() / "data", "database": unique_database("s")}
    )


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A loopback HTTP server replaying payload files; add routes with ``replay.add(...)``."""
    with ReplayServer() as server:
        yield server


# --- real servers, started once per test session -------------------------------------------------

from tests.support.servers import S3_KEY, S3_SECRET, Postgres, SeaweedFS  # noqa: E402

# The Trino server (session-scoped, ~2 GB): registered here once, so every module shares one server.
from tests.support.trino_fixtures import trino_lake  # noqa: E402, F401


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """Debian's PostgreSQL server, initdb'd in a temp dir, on a free loopback port."""
    server = Postgres(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """SeaweedFS `weed mini`: a real S3 server (and Iceberg REST catalog) on loopback."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_dr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A second SeaweedFS: the DR site (its own S3 endpoint and REST catalog, other free ports).

    ``hmco-curated`` is also one of its S3 Tables buckets, so its REST catalog can hold the curated
    tier's tables at their replicated locations (SeaweedFS confines a table to its table bucket).
    """
    from pyiceberg.catalog.rest import RestCatalog

    from tests.support.servers import _wait

    server = SeaweedFS(
        tmp_path_factory.mktemp("seaweed-dr"), table_bucket="iceberg-tables,hmco-curated"
    ).start()

    def curated_table_bucket() -> bool:  # created just after start: a plain bucket must not take the name
        catalog = RestCatalog(
            "dr-probe",
            uri=server.rest_uri,
            credential=f"{S3_KEY}:{S3_SECRET}",
            warehouse="s3://hmco-curated/",
            **{"s3.endpoint": server.endpoint, "s3.region": "us-east-1"},
        )
        catalog.list_namespaces()
        return True

    _wait(curated_table_bucket, "the DR site's hmco-curated table bucket")
    yield server
    server.stop()


_counter = iter(range(1_000_000))


@pytest.fixture
def cluster_settings(tmp_path: Path, postgres: Postgres, seaweed: SeaweedFS) -> Settings:
    """`cluster` profile: SQL catalog on PostgreSQL (fresh database) + S3 on SeaweedFS (fresh buckets)."""
    n = next(_counter)
    uri = postgres.create_database(f"catalog_{os.getpid()}_{n}")
    return Settings.load(
        profile="cluster",
        home=tmp_path / "hmco",
        storage_prefix=f"t{os.getpid()}-{n}",  # shared buckets: SeaweedFS gives each bucket its own volumes
        catalog={"type": "sql", "uri": uri},
        s3={"endpoint": seaweed.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
    )


@pytest.fixture(params=["local", "postgres+s3"])
def lake(request: pytest.FixtureRequest, settings: Settings):  # type: ignore[no-untyped-def]
    """A lake with its tiers created, on the embedded default and on PostgreSQL + SeaweedFS."""
    from hmco.lake import Lake

    chosen = settings if request.param == "local" else request.getfixturevalue("cluster_settings")
    lake = Lake(chosen)
    lake.create_tiers()
    return lake
