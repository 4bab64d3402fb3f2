"""The shared HTTP client: retries with backoff, Retry-After, per-host pacing, typed failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hmco.errors import RateLimited, SourceUnavailable
from hmco.sources.http import HostPacer, HttpClient, parse_retry_after
from tests.support.replay import ReplayServer, Reply


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_server_errors_are_retried_until_success(replay: ReplayServer) -> None:
    replay.add("/data", Reply(503, b"busy"), Reply(502, b"bad gateway"), Reply(200, b'{"ok": true}'))
    sleeps = Sleeps()
    client = HttpClient(replay.url, max_attempts=4, backoff=0.5, sleep=sleeps)
    resp = client.get("/data")
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    assert len(replay.requests_to("/data")) == 3
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)


def test_retry_after_seconds_is_honoured(replay: ReplayServer) -> None:
    replay.add("/x", Reply(429, b"slow down", {"Retry-After": "7"}), Reply(200, b"[]"))
    sleeps = Sleeps()
    assert HttpClient(replay.url, sleep=sleeps).get("/x").status_code == 200
    assert sleeps == [7.0]


def test_rate_limit_that_never_clears_raises_rate_limited(replay: ReplayServer) -> None:
    replay.add("/x", Reply(429, b"Too Many Requests", {"Retry-After": "1"}))
    with pytest.raises(RateLimited) as info:
        HttpClient(replay.url, max_attempts=3, sleep=Sleeps()).get("/x")
    assert info.value.retry_after == 1.0 and info.value.transient
    assert len(replay.requests_to("/x")) == 3


def test_custom_throttle_detector_turns_a_200_page_into_a_rate_limit(replay: ReplayServer) -> None:
    replay.add(
        "/x", Reply(200, b"<html>retry after 5 seconds</html>", content_type="text/html"), Reply(200, b"{}")
    )
    client = HttpClient(
        replay.url,
        sleep=Sleeps(),
        rate_limit_detector=lambda r: r.headers["content-type"].startswith("text/html"),
    )
    assert client.get("/x").content == b"{}"


def test_client_errors_are_returned_for_the_source_to_interpret(replay: ReplayServer) -> None:
    replay.add("/x", Reply(400, b'{"error": "bad"}'))
    resp = HttpClient(replay.url, sleep=Sleeps()).get("/x")
    assert resp.status_code == 400
    assert len(replay.requests_to("/x")) == 1


def test_unreachable_host_raises_source_unavailable() -> None:
    with ReplayServer() as server:
        url = server.url
    with pytest.raises(SourceUnavailable, match="cannot reach"):
        HttpClient(url, max_attempts=2, sleep=Sleeps(), timeout=2).get("/x")


def test_pacer_spaces_requests_per_host() -> None:
    now = [100.0]
    sleeps = Sleeps()

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    pacer = HostPacer(5.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait()
    pacer.wait()
    now[0] += 2.0
    pacer.wait()
    assert sleeps == [5.0, 3.0]


def test_clients_of_one_host_share_one_pacer(replay: ReplayServer) -> None:
    a = HttpClient(replay.url, min_interval=0.0)
    b = HttpClient(replay.url, min_interval=2.5)
    assert a.pacer is b.pacer and a.pacer.min_interval == 2.5


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    when = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(when, now=now) == 30.0
    assert parse_retry_after("soon") is None


def test_secret_query_parameters_are_redacted_in_recorded_requests(replay: ReplayServer) -> None:
    replay.add("/v2/data", Reply(200, b"{}"))
    client = HttpClient(replay.url, sleep=Sleeps())
    resp = client.get("/v2/data", params={"api_key": "k-123456789", "frequency": "daily"})
    url, params, _ = client.describe_request(resp)
    assert "k-123456789" not in url and params["api_key"] == "***" and params["frequency"] == "daily"
    assert replay.requests_to("/v2/data")[0].param("api_key") == "k-123456789"  # the API did get it
