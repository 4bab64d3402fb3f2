"""Settings and profiles: local by default, env over profile file, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from hmco.catalog import catalog_properties
from hmco.config import (
    CatalogSettings,
    ClickHouseSettings,
    S3Settings,
    Settings,
    SourceCredentials,
    TrinoSettings,
)
from hmco.errors import ConfigError


def test_local_profile_is_the_default_and_needs_no_servers(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path)
    assert settings.profile == "local"
    assert settings.catalog.type == "sqlite"
    assert settings.clickhouse.interface == "chdb"
    assert settings.chdb_path == (tmp_path / "clickhouse").resolve()


def test_home_comes_from_hmco_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HMCO_HOME", str(tmp_path / "lake"))
    assert Settings.load().home_dir == (tmp_path / "lake").resolve()


def test_environment_overrides_the_profile_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = tmp_path / "cluster.yaml"
    profile.write_text(
        "profile: cluster\n"
        "catalog: {type: sql, uri: 'postgresql+psycopg2://etl@pg:5432/iceberg'}\n"
        "s3: {endpoint: 'http://minio:9000', region: eu-west-1}\n"
        "clickhouse: {interface: http, host: ch-0, cluster: lmp_cluster}\n"
    )
    monkeypatch.setenv("HMCO_S3__REGION", "us-east-2")
    monkeypatch.setenv("HMCO_CATALOG__PASSWORD", "pg-password-from-vault")
    settings = Settings.load(profile_file=profile)
    assert settings.profile == "cluster"
    assert settings.catalog.uri == "postgresql+psycopg2://etl@pg:5432/iceberg"
    assert settings.s3.endpoint == "http://minio:9000"
    assert settings.s3.region == "us-east-2"  # env wins over the file
    assert settings.clickhouse.cluster == "lmp_cluster"
    assert settings.catalog.password is not None
    assert settings.catalog.password.get_secret_value() == "pg-password-from-vault"


def test_profile_file_from_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("log_level: DEBUG\n")
    monkeypatch.setenv("HMCO_PROFILE_FILE", str(profile))
    assert Settings.load().log_level == "DEBUG"


def test_secrets_are_masked_in_repr_str_and_dumps() -> None:
    settings = Settings.load(
        sources={"eia_api_key": "eia-secret-0001", "fred_api_key": "fred-secret-0002"},
        s3={"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3-secret-0003"},
        catalog={"password": "pg-secret-0004"},
    )
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("eia-secret-0001", "fred-secret-0002", "s3-secret-0003", "pg-secret-0004"):
        assert secret not in text
    assert settings.sources.eia_api_key is not None
    assert settings.sources.eia_api_key.get_secret_value() == "eia-secret-0001"


def test_cluster_profile_without_a_server_catalog_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"profile 'cluster' needs catalog\.type"):
        Settings.load(profile="cluster")


def test_invalid_setting_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"clickhouse\.interface"):
        Settings.load(clickhouse={"interface": "carrier-pigeon"})


def test_missing_profile_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(profile_file=tmp_path / "nope.yaml")


def test_a_password_in_the_catalog_uri_is_masked_in_repr_str_and_json_but_kept_for_use() -> None:
    uri = "postgresql+psycopg2://hmco:uri-secret-0005@127.0.0.1:5432/cat"
    settings = Settings.load(profile="cluster", catalog={"type": "sql", "uri": uri})

    for text in (repr(settings), str(settings), repr(settings.catalog), str(settings.catalog)):
        assert "uri-secret-0005" not in text
        assert "postgresql+psycopg2://hmco:***@127.0.0.1:5432/cat" in text
    assert "uri-secret-0005" not in settings.model_dump_json()
    assert settings.catalog.uri == uri
    assert catalog_properties(settings)["uri"] == uri  # pyiceberg gets the real one


@pytest.mark.parametrize(
    ("section", "values"),
    [
        (CatalogSettings, {"type": "rest", "uri": "https://cat:sec-0006@rest/v1?token=sec-0007"}),
        (CatalogSettings, {"properties": {"s3.secret-access-key": "sec-0008", "uri": "x://u:sec-0009@h"}}),
        (S3Settings, {"endpoint": "http://minio:sec-0010@minio:9000", "secret_access_key": "sec-0011"}),
        (ClickHouseSettings, {"host": "ch-0", "password": "sec-0012"}),
        (TrinoSettings, {"host": "trino", "password": "sec-0013"}),
        (SourceCredentials, {"noaa_token": "sec-0014", "miso_subscription_key": "sec-0015"}),
    ],
)
def test_no_settings_section_prints_a_secret(section: type[BaseModel], values: dict[str, object]) -> None:
    obj = section.model_validate(values)
    text = repr(obj) + str(obj)
    assert "sec-00" not in text
    assert "***" in text or "**********" in text


def test_the_dr_site_is_configured_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HMCO_DR__S3__ENDPOINT", "http://127.0.0.1:18333")
    monkeypatch.setenv("HMCO_DR__S3__SECRET_ACCESS_KEY", "dr-secret-value")
    settings = Settings.load(home=tmp_path)
    assert settings.dr.s3 is not None and settings.dr.s3.endpoint == "http://127.0.0.1:18333"
    assert "dr-secret-value" not in repr(settings) and "dr-secret-value" not in str(settings.dr)
