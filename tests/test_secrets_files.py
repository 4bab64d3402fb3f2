"""Secrets from mounted files: files beat the environment, rotation needs no restart, nothing leaks.

The rotation tests run a long-lived source (and a pipeline built once, as ``hmco serve`` keeps it)
against the loopback replay server: the API refuses the old key with a 401 after the secret store
rotated the mounted file, and the next request goes out with the new key, with no rebuild.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hmco.compose.spec import build_pipeline, load_spec
from hmco.config import SecretRef, Settings
from hmco.errors import AuthenticationError, ConfigError, PipelineError
from hmco.lake import Lake
from hmco.redaction import redact_text
from hmco.sources.eia import EIA
from hmco.sources.http import HttpOptions
from hmco.sources.synthetic import eia_daily_fuel_json
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply

ROUTE = "/v2/electricity/rto/daily-fuel-type-data/data/"
DAY = Window.day("2024-07-01")
OLD = "eia-old-key-0000aaaa1111"
NEW = "eia-new-key-2222bbbb3333"  # the same length as OLD: an in-place rewrite keeps size and inode


def _mount(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(value + "\n")
    return directory


def _rewrite_unnoticed(path: Path, value: str) -> None:
    """Rewrite a file in place and restore its mtime: only a refused request can reveal the change."""
    st = path.stat()
    with path.open("r+") as f:
        f.write(value + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _eia_replies(replay: ReplayServer, *, valid: str, invalid: str) -> None:
    refused = {"error": {"code": "API_KEY_INVALID", "message": f"An invalid api_key {invalid} was supplied."}}
    replay.add(ROUTE, Reply(401, json.dumps(refused).encode()), match={"api_key": invalid})
    replay.add(ROUTE, Reply(body=eia_daily_fuel_json(DAY, api_key_echo=valid)), match={"api_key": valid})


# --- precedence and layout --------------------------------------------------------------------------


def test_files_beat_the_environment_and_keyword_arguments_beat_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _mount(
        tmp_path / "secrets",
        sources__eia_api_key="eia-from-file-0001",
        SOURCES__FRED_API_KEY="fred-from-file-0002",  # the env-var spelling works too
        HMCO_CATALOG__PASSWORD="pg-from-file-0003",
    )
    monkeypatch.setenv("HMCO_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("HMCO_SOURCES__EIA_API_KEY", "eia-from-env-9999")
    monkeypatch.setenv("HMCO_SOURCES__NOAA_TOKEN", "noaa-from-env-8888")
    settings = Settings.load(home=tmp_path / "hmco", sources={"census_key": "census-kwarg-7777"})
    src = settings.sources
    assert src.eia_api_key and src.eia_api_key.get_secret_value() == "eia-from-file-0001"  # file > env
    assert src.fred_api_key and src.fred_api_key.get_secret_value() == "fred-from-file-0002"
    assert src.noaa_token and src.noaa_token.get_secret_value() == "noaa-from-env-8888"  # env, no file
    assert src.census_key and src.census_key.get_secret_value() == "census-kwarg-7777"
    assert settings.catalog.password and settings.catalog.password.get_secret_value() == "pg-from-file-0003"
    assert settings.secrets_dir == secrets

    pinned = Settings.load(home=tmp_path / "hmco", sources={"eia_api_key": "eia-kwarg-0004"})
    assert pinned.sources.eia_api_key and pinned.sources.eia_api_key.get_secret_value() == "eia-kwarg-0004"
    assert pinned.secret("sources.eia_api_key").get() == "eia-kwarg-0004"  # kwargs are never re-read


def test_profile_file_settings_lose_to_files_and_nested_sections_merge(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(
        f"secrets_dir: {tmp_path / 'secrets'}\ns3: {{endpoint: 'http://minio:9000', secret_access_key: yaml}}\n"
    )
    _mount(tmp_path / "secrets", s3__secret_access_key="s3-from-file-0005", s3__access_key_id="AKIAFILE")
    settings = Settings.load(profile_file=profile, home=tmp_path / "hmco")
    assert settings.s3.endpoint == "http://minio:9000"  # the rest of the section is kept
    assert settings.s3.secret_access_key and settings.s3.secret_access_key.get_secret_value() == (
        "s3-from-file-0005"
    )


def test_kubernetes_mount_layout_hidden_empty_and_unknown_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kubernetes mounts ``key -> ..data/key`` with ``..data -> ..<timestamp>``; the dot-entries are skipped."""
    secrets = tmp_path / "secrets"
    stamp = _mount(
        secrets / "..2026_11_26_12_00_00.1", sources__eia_api_key="eia-k8s-0006", unknown_key="x1x1"
    )
    (secrets / "..data").symlink_to(stamp.name)
    (secrets / "sources__eia_api_key").symlink_to("..data/sources__eia_api_key")
    (secrets / "unknown_key").symlink_to("..data/unknown_key")
    (secrets / "sources__fred_api_key").write_text("\n")  # empty: unset
    with caplog.at_level(logging.WARNING, logger="hmco.config"):
        settings = Settings.load(home=tmp_path / "hmco", secrets_dir=secrets)
    assert settings.sources.eia_api_key and settings.sources.eia_api_key.get_secret_value() == "eia-k8s-0006"
    assert settings.sources.fred_api_key is None
    assert "unknown_key names no hmco setting" in caplog.text and "x1x1" not in caplog.text


def test_a_missing_explicit_secrets_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secrets directory .*nowhere .*does not exist"):
        Settings.load(home=tmp_path, secrets_dir=tmp_path / "nowhere")
    assert Settings.load(home=tmp_path, secrets_dir="").secrets_dir is None  # switched off


def test_file_secrets_are_registered_for_redaction_and_never_printed(tmp_path: Path) -> None:
    secret = "vault-delivered-value-4242"
    _mount(tmp_path / "s", alerts__webhook_url=f"https://hooks.example.com/T/{secret}")
    settings = Settings.load(home=tmp_path, secrets_dir=tmp_path / "s")
    assert secret not in redact_text(f"posting to https://hooks.example.com/T/{secret} failed")
    assert secret not in repr(settings) + str(settings) + settings.model_dump_json()
    ref = settings.secret("alerts.webhook_url")
    assert secret not in repr(ref) and "alerts.webhook_url" in repr(ref)
    with pytest.raises(ConfigError, match="not a secret setting"):
        settings.secret("log_level")


# --- rotation ---------------------------------------------------------------------------------------


def test_secret_ref_follows_the_file_and_a_kubernetes_symlink_swap(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    first = _mount(secrets / "..v1", sources__eia_api_key=OLD)
    (secrets / "..data").symlink_to(first.name)
    (secrets / "sources__eia_api_key").symlink_to("..data/sources__eia_api_key")
    ref = Settings.load(home=tmp_path, secrets_dir=secrets).secret("sources.eia_api_key")
    assert isinstance(ref, SecretRef) and ref.get() == OLD

    second = _mount(secrets / "..v2", sources__eia_api_key=NEW)  # what kubelet does: new dir, swap link
    (secrets / "..data.tmp").symlink_to(second.name)
    os.replace(secrets / "..data.tmp", secrets / "..data")
    assert ref.get() == NEW
    assert NEW not in redact_text(f"key {NEW}")  # the rotated value is registered as it is read


def test_long_lived_source_retries_a_401_once_with_the_rotated_key(
    replay: ReplayServer, tmp_path: Path
) -> None:
    secrets = _mount(tmp_path / "secrets", sources__eia_api_key=OLD)
    settings = Settings.load(home=tmp_path / "hmco", secrets_dir=secrets)
    source = EIA(settings=settings, base_url=f"{replay.url}/v2/", http=HttpOptions(sleep=lambda s: None))
    _eia_replies(replay, valid=OLD, invalid=NEW)
    assert sum(1 for _ in source.fetch(DAY)) == 1

    # The store rotates: the API now refuses OLD; the file holds NEW but looks unchanged (same stat).
    replay.routes.clear()
    _eia_replies(replay, valid=NEW, invalid=OLD)
    _rewrite_unnoticed(secrets / "sources__eia_api_key", NEW)
    payloads = list(source.fetch(DAY))  # the same source object: no restart, no rebuild

    assert [r.param("api_key") for r in replay.requests_to(ROUTE)] == [OLD, OLD, NEW]
    assert [r.status for r in payloads] == [200]
    assert OLD.encode() not in payloads[0].body and NEW.encode() not in payloads[0].body
    assert NEW not in payloads[0].url and "api_key=***" in payloads[0].url


def test_a_refused_key_without_a_newer_file_fails_once_without_leaking(
    replay: ReplayServer, tmp_path: Path
) -> None:
    secrets = _mount(tmp_path / "secrets", sources__eia_api_key=OLD)
    settings = Settings.load(home=tmp_path / "hmco", secrets_dir=secrets)
    source = EIA(settings=settings, base_url=f"{replay.url}/v2/", http=HttpOptions(sleep=lambda s: None))
    _eia_replies(replay, valid=NEW, invalid=OLD)
    with pytest.raises(AuthenticationError) as info:
        list(source.fetch(DAY))
    assert len(replay.requests_to(ROUTE)) == 1  # nothing new on disk: no pointless retry
    assert OLD not in str(info.value) and all(OLD not in str(v) for v in info.value.context.values())


def test_pipeline_built_once_picks_up_the_rotated_key_and_nothing_leaks(
    replay: ReplayServer, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``hmco serve`` does: build the pipeline once, run it on every tick; the key rotates between."""
    secrets = _mount(tmp_path / "secrets", sources__eia_api_key=OLD)
    settings = Settings.load(
        home=settings.home, clickhouse=settings.clickhouse.model_dump(), secrets_dir=secrets
    )
    spec = load_spec(
        {
            "name": "eia-fuel",
            "source": {"type": "eia", "base_url": f"{replay.url}/v2/", "params": {"http": {}}},
        }
    )
    registry = CollectorRegistry()
    lake = Lake(settings)
    pipeline = build_pipeline(spec, lake=lake, registry=registry)
    _eia_replies(replay, valid=OLD, invalid=NEW)
    caplog.set_level(logging.DEBUG)
    first = pipeline.run(DAY)
    assert first.ok

    replay.routes.clear()
    _eia_replies(replay, valid=NEW, invalid=OLD)
    (secrets / "sources__eia_api_key.tmp").write_text(NEW + "\n")  # an atomic replace: a new inode
    os.replace(secrets / "sources__eia_api_key.tmp", secrets / "sources__eia_api_key")
    second = pipeline.run(DAY)
    assert second.ok and second.rows == first.rows
    assert [r.param("api_key") for r in replay.requests_to(ROUTE)] == [OLD, NEW]  # no 401 round trip

    # A key the API refuses with nothing newer on disk: the run fails, naming no key anywhere.
    replay.routes.clear()
    _eia_replies(replay, valid="unused-valid-key-555555", invalid=NEW)
    with pytest.raises(PipelineError) as info:
        pipeline.run(DAY)

    leaks: dict[str, Any] = {
        "logs": caplog.text + "".join(r.getMessage() for r in caplog.records),
        "error": f"{info.value} {info.value.report} {info.value.context}",
        "reports": f"{first} {second} {first!r} {second!r}",
        "metrics": generate_latest(registry).decode(),
        "archive": b"".join(p.read_bytes() for p in Path(settings.home_dir).rglob("*") if p.is_file()),
    }
    for where, text in leaks.items():
        for key in (OLD, NEW):
            needle: Any = key.encode() if isinstance(text, bytes) else key
            assert needle not in text, f"{key} leaked into the {where}"
    assert "hmco_" in leaks["metrics"]
