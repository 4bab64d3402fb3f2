"""HttpOptions: the one value carrying timeout, retries and pacing from a constructor or a UIS spec to
a source's HTTP client (src/hmco/sources/http.py), and ``last_modified``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hmco.compose.spec import build_pipeline, load_spec
from hmco.config import Settings
from hmco.errors import ConfigError, SourceUnavailable, SpecError
from hmco.lake import Lake
from hmco.sources import get_source_class
from hmco.sources.http import HttpOptions, last_modified
from hmco.windows import Window
from tests.support.clock import FakeTime
from tests.support.replay import ReplayServer, Reply

#: every HTTP source, with the parameters it needs to be built
HTTP_SOURCES: dict[str, dict[str, Any]] = {
    "eia": {},
    "fred": {"series_ids": ["DCOILWTICO"]},
    "noaa": {"stations": ["KSUA"]},
    "census": {},
    "caiso": {},
    "miso": {},
    "spp": {},
}
#: the source defaults that unset options fall back to (seconds)
DEFAULT_PACING = {
    "eia": 0.2,
    "fred": 0.5,
    "noaa": 0.25,
    "census": 1.0,
    "caiso": 5.0,
    "miso": 60.0,
    "spp": 0.5,
}
DEFAULT_TIMEOUT = {
    "eia": 60.0,
    "fred": 60.0,
    "noaa": 60.0,
    "census": 120.0,
    "caiso": 120.0,
    "miso": 120.0,
    "spp": 60.0,
}


def test_a_mapping_becomes_options() -> None:
    options = HttpOptions.coerce({"timeout": 30, "max_attempts": 3})
    assert options == HttpOptions(timeout=30, max_attempts=3)


def test_none_gives_the_defaults_and_options_pass_through() -> None:
    given = HttpOptions(backoff=0.5)
    assert HttpOptions.coerce(None) == HttpOptions()
    assert HttpOptions.coerce(given) is given


def test_an_unknown_key_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no option\(s\) \['retries'\].*'max_attempts'"):
        HttpOptions.coerce({"retries": 3})


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "invalid"),
        ({"min_interval": -1}, "min_interval"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"backoff": -1}, "backoff"),
    ],
)
def test_a_value_out_of_range_is_a_config_error(value: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        HttpOptions.coerce(value)


def test_options_are_a_frozen_value() -> None:
    options = HttpOptions(timeout=30)
    with pytest.raises(AttributeError):
        options.timeout = 5  # type: ignore[misc]
    assert options == HttpOptions(timeout=30) and hash(options) == hash(HttpOptions(timeout=30))


def test_with_defaults_fills_only_what_is_unset() -> None:
    assert HttpOptions().with_defaults(timeout=120.0, min_interval=5.0) == HttpOptions(
        timeout=120.0, min_interval=5.0
    )
    assert HttpOptions(timeout=30, min_interval=0).with_defaults(
        timeout=120.0, min_interval=5.0
    ) == HttpOptions(timeout=30, min_interval=0)


def test_client_carries_retries_and_injected_time(replay: ReplayServer) -> None:
    replay.add("/x", Reply(503, b"busy"), Reply(200, b"ok"))
    time = FakeTime()
    client = HttpOptions(max_attempts=2, backoff=0.0, sleep=time.sleep, clock=time.clock).client(
        replay.url, user_agent="hmco-test"
    )
    with client:
        assert client.get("x").content == b"ok"
    assert len(replay.requests) == 2
    assert replay.requests[0].headers["user-agent"] == "hmco-test"


@pytest.mark.parametrize("name", sorted(HTTP_SOURCES))
def test_every_http_source_takes_http_options_as_a_spec_mapping(name: str, settings: Settings) -> None:
    spec = load_spec(
        {
            "name": f"{name}-http",
            "source": {
                "type": name,
                "base_url": "http://127.0.0.1:9/api/",
                "params": {**HTTP_SOURCES[name], "http": {"timeout": 30, "max_attempts": 3}},
            },
        }
    )
    source = get_source_class(name)(settings=settings, base_url=spec.source.base_url, **spec.source.params)
    try:
        options = source.http_options  # type: ignore[attr-defined]
        assert (options.timeout, options.max_attempts) == (30, 3)
        assert options.min_interval == DEFAULT_PACING[name]  # unset: the source's own pacing
    finally:
        source.close()


@pytest.mark.parametrize("name", sorted(HTTP_SOURCES))
def test_every_http_source_keeps_its_defaults_without_options(name: str, settings: Settings) -> None:
    source = get_source_class(name)(settings=settings, **HTTP_SOURCES[name])
    try:
        options = source.http_options  # type: ignore[attr-defined]
        assert (options.timeout, options.min_interval) == (DEFAULT_TIMEOUT[name], DEFAULT_PACING[name])
        assert (options.max_attempts, options.backoff) == (5, 1.0)
    finally:
        source.close()


def test_spec_http_mapping_and_base_url_reach_the_client(replay: ReplayServer, settings: Settings) -> None:
    replay.add("/file-browser-api/download/rtbm-lmp-by-location", Reply(503, b"busy"))
    spec = {
        "name": "spp-http",
        "source": {
            "type": "spp",
            "base_url": f"{replay.url}/file-browser-api",
            "params": {"http": {"max_attempts": 2, "backoff": 0, "min_interval": 0}},
        },
    }
    pipeline = build_pipeline(spec, lake=Lake(settings))
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        list(pipeline.source.fetch(Window.of("2026-07-27T21:20:00Z", "2026-07-27T21:25:00Z")))
    assert len(replay.requests) == 2  # max_attempts from the spec's mapping


def test_spec_naming_an_old_http_keyword_is_rejected_pointing_at_http() -> None:
    with pytest.raises(SpecError, match=r"no parameter\(s\) \['min_interval'\].*'http'"):
        load_spec({"name": "spp-old", "source": {"type": "spp", "params": {"min_interval": 0.5}}})


@pytest.mark.parametrize(
    "value",
    ["Mon, 27 Jul 2026 21:27:13 GMT", "Mon, 27 Jul 2026 21:27:13 -0000", "Mon, 27 Jul 2026 16:27:13 -0500"],
)
def test_last_modified_is_an_aware_utc_datetime(value: str) -> None:
    when = last_modified({"last-modified": value})
    assert when == datetime(2026, 7, 27, 21, 27, 13, tzinfo=UTC)
    assert when is not None and when.utcoffset() is not None and when.tzinfo == UTC


@pytest.mark.parametrize("headers", [{}, {"Last-Modified": ""}, {"Last-Modified": "yesterday"}])
def test_last_modified_absent_or_unreadable_is_none(headers: dict[str, str]) -> None:
    assert last_modified(headers) is None
