"""Session fixtures for the Trino tests: one Trino server over one hmco lake (PostgreSQL + SeaweedFS).

``cluster_settings`` makes a catalog database per test; Trino's catalog is fixed at startup, so the
Trino session gets its own database and settings (built the way ``cluster_settings`` builds them).
Import the fixtures into a test module: ``from tests.support.trino_fixtures import trino_lake``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hmco.config import Settings
from hmco.lake import Lake
from tests.support.servers import S3_KEY, S3_SECRET, Postgres, SeaweedFS
from tests.support.trino import TrinoServer, jdbc_catalog, s3_properties

__all__ = ["TrinoLake", "trino_lake"]


@dataclass
class TrinoLake:
    """A running Trino whose ``iceberg`` catalog is this lake's catalog; ``settings.trino`` points at it."""

    server: TrinoServer
    settings: Settings
    lake: Lake


@pytest.fixture(scope="session")
def trino_lake(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, seaweed: SeaweedFS
) -> Iterator[TrinoLake]:
    """A lake (tiers created) on a fresh PostgreSQL catalog database + SeaweedFS, and Trino over it."""
    root = tmp_path_factory.mktemp("trino")
    database = f"trino_catalog_{os.getpid()}"
    uri = postgres.create_database(database)
    settings = Settings.load(
        profile="cluster",
        home=root / "hmco",
        storage_prefix=f"trino{os.getpid()}",
        catalog={"type": "sql", "uri": uri},
        s3={"endpoint": seaweed.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
    )
    lake = Lake(settings)
    lake.create_tiers()  # pyiceberg creates the catalog tables Trino's JDBC catalog reads
    catalog = {
        **jdbc_catalog(
            host="127.0.0.1",
            port=postgres.port,
            database=database,
            catalog_name=settings.catalog.name,
            warehouse=f"s3://{lake.bucket('curated')}",
        ),
        **s3_properties(
            endpoint=seaweed.endpoint, access_key=S3_KEY, secret_key=S3_SECRET, region=settings.s3.region
        ),
    }
    server = TrinoServer(root / "server", {"iceberg": catalog}).start()
    try:
        trino_settings = settings.model_copy(
            update={"trino": settings.trino.model_copy(update={"port": server.port, "catalog": "iceberg"})}
        )
        yield TrinoLake(server=server, settings=trino_settings, lake=lake)
    finally:
        server.stop()
