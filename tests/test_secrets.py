"""Secrets never leak: not in logs (text or JSON), not in error messages, not in URLs we record."""

from __future__ import annotations

import io
import json
import logging

from hmco._logging import configure_logging
from hmco.errors import SourceUnavailable
from hmco.security.redaction import redact_bytes, redact_mapping, redact_text, redact_url, register_secret


def test_registered_secret_is_masked_in_text_and_bytes() -> None:
    register_secret("sk-live-abcdef123456")
    assert "sk-live-abcdef123456" not in redact_text("calling with sk-live-abcdef123456 now")
    assert b"sk-live-abcdef123456" not in redact_bytes(b'{"api_key": "sk-live-abcdef123456"}')


def test_secret_parameter_names_are_masked_in_urls_and_mappings() -> None:
    url = redact_url("https://api.eia.gov/v2/x/data/?api_key=ABCDEF0123&frequency=daily")
    assert "ABCDEF0123" not in url and "frequency=daily" in url
    assert redact_mapping({"token": "t0k3n-value", "Accept": "json"}) == {"token": "***", "Accept": "json"}
    assert "hunter2pass" not in redact_url("postgresql://etl:hunter2pass@pg:5432/iceberg")


def test_log_records_are_redacted_in_text_and_json(caplog: object) -> None:
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


def test_errors_do_not_carry_secrets_in_their_context() -> None:
    register_secret("census-key-0011223344")
    err = SourceUnavailable("boom", url=redact_url("https://api.census.gov/data?key=census-key-0011223344"))
    assert "census-key-0011223344" not in str(err)


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
