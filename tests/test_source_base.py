"""The helpers every source shares (src/hmco/sources/base.py) and HttpClient.sub_pacer."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from pydantic import SecretStr

from hmco.redaction import REDACTED, register_secret
from hmco.schemas import TS
from hmco.sources.base import (
    RawPayload,
    body_sha256,
    body_snippet,
    in_window,
    is_json_object,
    secret_value,
)
from hmco.sources.http import HttpClient, pacer_for
from hmco.windows import Window

T0 = datetime(2026, 7, 27, 13, 0, tzinfo=UTC)
T1 = datetime(2026, 7, 27, 14, 0, tzinfo=UTC)
BEFORE = datetime(2026, 7, 27, 12, 59, 59, 999999, tzinfo=UTC)
LAST = datetime(2026, 7, 27, 13, 59, 59, 999999, tzinfo=UTC)


def test_in_window_includes_start_and_excludes_end() -> None:
    ts = pa.array([BEFORE, T0, LAST, T1], TS)
    assert in_window(ts, Window(T0, T1)).to_pylist() == [False, True, True, False]


def test_in_window_gives_null_for_a_null_timestamp_so_filter_drops_it() -> None:
    table = pa.table({"ts": pa.chunked_array([pa.array([T0, None], TS)])})
    mask = in_window(table["ts"], Window(T0, T1))
    assert mask.to_pylist() == [True, None]
    assert table.filter(mask).num_rows == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"null", False),
        (b"[{}]", False),
        (b" {", True),
        (b'\n\t{"response": {}}', True),
        (b"<html>", False),
        (b"", False),
    ],
)
def test_is_json_object_accepts_only_a_leading_brace(body: bytes, expected: bool) -> None:
    assert is_json_object(body) is expected


def test_body_snippet_redacts_a_registered_secret() -> None:
    register_secret("snippet-test-key-7f3a")
    snippet = body_snippet(b'{"error": "bad key snippet-test-key-7f3a"}')
    assert snippet == f'{{"error": "bad key {REDACTED}"}}'


def test_body_snippet_masks_a_secret_cut_by_the_limit() -> None:
    register_secret("snippet-cut-key-91bc")
    assert body_snippet(b"key was snippet-cut-key-91bc", limit=12) == "key was ***"


def test_body_snippet_truncates_to_one_line_of_limit_characters() -> None:
    assert body_snippet(b"  first line\r\n  second line and more", limit=20) == "first line second li"


def test_body_snippet_accepts_text_and_names_an_empty_body() -> None:
    assert body_snippet("a\n\nb") == "a b"
    assert body_snippet(b" \n ") == "<empty body>"


def test_body_sha256_is_the_hex_digest_payloads_are_named_by() -> None:
    empty_digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert body_sha256(b"") == empty_digest
    assert RawPayload(source="s", dataset="d", body=b"").sha256 == empty_digest


def test_secret_value_registers_the_secret_and_maps_empty_to_none() -> None:
    assert secret_value(None) is None
    assert secret_value(SecretStr("")) is None
    assert secret_value(SecretStr("secret-value-test-55d1")) == "secret-value-test-55d1"
    assert body_snippet("token secret-value-test-55d1") == f"token {REDACTED}"


def test_sub_pacer_with_injected_time_is_private_and_kept_per_key() -> None:
    waits: list[float] = []
    now = [100.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    with HttpClient("http://sub-pacer.test/", sleep=sleep, clock=lambda: now[0]) as client:
        feed = client.sub_pacer("feed", 60.0)
        assert client.sub_pacer("feed", 60.0) is feed
        assert feed is not pacer_for("sub-pacer.test#feed", 60.0)
        other = client.sub_pacer("other", 60.0)
        feed.wait()
        other.wait()  # a different key: no wait
        now[0] += 10.0
        client.sub_pacer("feed", 60.0).wait()
    assert waits == [50.0]


def test_sub_pacer_in_real_time_is_the_process_wide_pacer_of_host_and_key() -> None:
    with HttpClient("http://sub-pacer-real.test/") as client:
        assert client.sub_pacer("files", 0.5) is pacer_for("sub-pacer-real.test#files", 0.5)
