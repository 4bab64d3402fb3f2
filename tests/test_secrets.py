"""Secrets never leak: not in logs (text or JSON), not in error messages, not in URLs we record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hmco._logging import configure_logging
from hmco.config import SecretRef, Settings
from hmco.errors import AuthenticationError, SourceUnavailable
from hmco.redaction import redact_bytes, redact_mapping, redact_text, redact_url, register_secret
from hmco.sources.eia import EIA
from hmco.sources.http import HttpClient, HttpOptions
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply


@pytest.fixture
def hmco_logger() -> Iterator[logging.Logger]:
    """The ``hmco`` logger, its level and handlers restored after ``configure_logging`` changed them."""
    logger = logging.getLogger("hmco")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_registered_secret_is_masked_in_text_and_bytes() -> None:
    register_secret("sk-live-abcdef123456")
    assert "sk-live-abcdef123456" not in redact_text("calling with sk-live-abcdef123456 now")
    assert b"sk-live-abcdef123456" not in redact_bytes(b'{"api_key": "sk-live-abcdef123456"}')


def test_secret_parameter_names_are_masked_in_urls_and_mappings() -> None:
    url = redact_url("https://api.eia.gov/v2/x/data/?api_key=ABCDEF0123&frequency=daily")
    assert "ABCDEF0123" not in url and "frequency=daily" in url
    assert redact_mapping({"token": "t0k3n-value", "Accept": "json"}) == {"token": "***", "Accept": "json"}
    assert "hunter2pass" not in redact_url("postgresql://etl:hunter2pass@pg:5432/iceberg")


def test_log_records_are_redacted_in_text_and_json(hmco_logger: logging.Logger) -> None:
    register_secret("fred-key-9f8e7d6c5b4a")
    for as_json in (False, True):
        handler = configure_logging("INFO", json=as_json)
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("hmco.test").warning("request failed: api_key=%s", "fred-key-9f8e7d6c5b4a")
        out = stream.getvalue()
        assert "fred-key-9f8e7d6c5b4a" not in out
        assert "request failed" in out
        if as_json:
            assert json.loads(out.strip().splitlines()[-1])["level"] == "warning"


def test_http_errors_carry_neither_the_key_sent_nor_the_key_echoed(replay: ReplayServer) -> None:
    key = "never-registered-key-5566778899"  # masked by its parameter name alone
    echo = {"error": "internal error", "request": {"params": {"api_key": key}}}
    replay.add("/v1/data", Reply(500, json.dumps(echo).encode()))
    client = HttpClient(replay.url, max_attempts=2, sleep=lambda s: None)

    with pytest.raises(SourceUnavailable) as info:
        client.get("v1/data", [("api_key", key), ("frequency", "daily")])

    assert replay.requests[0].param("api_key") == key  # the real key went out
    err = info.value
    assert key not in str(err)
    assert all(key not in str(value) for value in err.context.values())
    assert "api_key=***" in err.context["url"] and "frequency=daily" in err.context["url"]
    assert '"api_key": "***"' in str(err)  # the echoed body is quoted, masked


def test_source_errors_do_not_carry_the_configured_key(replay: ReplayServer, tmp_path: Path) -> None:
    key = "eia-configured-key-2468013579"
    echo = {
        "error": {"code": "API_KEY_INVALID", "message": f"An invalid api_key {key} was supplied."},
        "request": {"params": {"api_key": key, "frequency": "daily"}},
    }
    replay.add("/v2/electricity/rto/daily-fuel-type-data/data/", Reply(403, json.dumps(echo).encode()))
    settings = Settings.load(home=tmp_path / "hmco", sources={"eia_api_key": key})
    source = EIA(settings=settings, base_url=f"{replay.url}/v2/", http=HttpOptions(sleep=lambda s: None))

    with pytest.raises(AuthenticationError) as info:
        list(source.fetch(Window.day("2024-07-01")))

    assert replay.requests[0].param("api_key") == key
    err = info.value
    assert "invalid api_key" in str(err)
    assert key not in str(err)
    assert all(key not in str(value) for value in err.context.values())
    assert "api_key=***" in err.context["url"]


def test_url_userinfo_passwords_are_masked_in_text_and_urls() -> None:
    uri = "postgresql+psycopg2://hmco:s3cret-pw@127.0.0.1:5432/cat"
    assert redact_text(f"cannot open {uri}: refused") == (
        "cannot open postgresql+psycopg2://hmco:***@127.0.0.1:5432/cat: refused"
    )
    assert redact_url(uri) == "postgresql+psycopg2://hmco:***@127.0.0.1:5432/cat"
    assert redact_text("uri='redis://:p@ss:word@cache:6379/0'") == "uri='redis://:***@cache:6379/0'"
    assert redact_text("https://api.example.com:8443/v1/a@b") == "https://api.example.com:8443/v1/a@b"
    assert redact_url("postgresql://etl:hunter2@[::1/db") == "postgresql://etl:***@[::1/db"  # unparsable


def test_bearer_tokens_and_json_or_repr_secret_fields_are_masked_in_text() -> None:
    assert redact_text("Authorization: Bearer eyJhbGciOi.payload") == "Authorization: Bearer ***"
    assert redact_text('{"token": "noaa-tok-77aa", "limit": 5}') == '{"token": "***", "limit": 5}'
    assert redact_text("{'api_key': 'eia-abc-123'}") == "{'api_key': '***'}"
    assert redact_text('password="two words"') == 'password="***"'


def test_prefixed_and_url_encoded_secret_names_are_masked_but_lookalikes_are_not() -> None:
    assert redact_text("refresh_token=r1 db_password=p2 secret_key=s3") == (
        "refresh_token=*** db_password=*** secret_key=***"
    )
    assert redact_text("next=%2Fv2%3Fapi_key%3Deia-abc-123&x=1") == "next=%2Fv2%3Fapi_key%3D***&x=1"
    assert redact_text("monkey=banana access_key_id=AKIA0001") == "monkey=banana access_key_id=AKIA0001"
    assert redact_mapping({"X-Auth-Token": "t-1", "Proxy-Authorization": "Basic zz", "Accept": "json"}) == {
        "X-Auth-Token": "***",
        "Proxy-Authorization": "***",
        "Accept": "json",
    }


def test_header_secrets_from_files_are_sent_rotated_and_recorded_masked(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """The file-read path of a header token (NOAA CDO's ``token``): refused once, re-read, re-sent."""
    old, new = "noaa-file-token-old-0001", "noaa-file-token-new-0002"
    key_file = tmp_path / "secrets" / "sources__noaa_token"
    key_file.parent.mkdir()
    key_file.write_text(old)
    ref = Settings.load(home=tmp_path / "hmco", secrets_dir=key_file.parent).secret("sources.noaa_token")
    assert isinstance(ref, SecretRef)
    replay.add(
        "/cdo/data", Reply(401, b'{"status": "401", "message": "Token parameter is invalid"}'), match={}
    )
    client = HttpClient(replay.url, max_attempts=1, sleep=lambda s: None)
    assert client.get_with_secret("cdo/data", [("limit", "1")], secret=ref, header="token").status_code == 401
    assert len(replay.requests) == 1  # nothing newer on disk: not retried

    replay.routes.clear()
    replay.add("/cdo/data", Reply(200, b"{}"))
    key_file.write_text(new)
    resp = client.get_with_secret("cdo/data", [("limit", "1")], secret=ref, header="token")
    assert resp.status_code == 200 and replay.requests[-1].headers["token"] == new
    _, _, headers = HttpClient.describe_request(resp)
    assert headers["token"] == "***"
    assert old not in redact_text(f"{old} {new}") and new not in redact_text(f"{old} {new}")
