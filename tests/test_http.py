"""The shared HTTP client: retries with backoff, Retry-After, per-host pacing, typed failures."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

from hmco.errors import ConnectionFailed, HostNotFound, RateLimited, SourceError, SourceUnavailable
from hmco.sources.http import HostPacer, HttpClient, HttpOptions, parse_retry_after
from tests.support.replay import ReplayServer, Reply

#: RFC 6761: names under .invalid never resolve, so the lookup fails without reaching any host.
UNRESOLVABLE = "http://hmco-test.invalid/"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def test_unresolvable_host_fails_at_once_naming_the_host_and_the_setting_to_fix() -> None:
    sleeps = Sleeps()
    with pytest.raises(HostNotFound) as info:
        HttpClient(UNRESOLVABLE, sleep=sleeps).get("/x")
    error = info.value
    assert sleeps == []  # not retried: no backoff was slept
    assert not error.transient and isinstance(error, SourceError)
    assert error.context["host"] == "hmco-test.invalid"
    assert "base_url" in str(error) and "hmco-test.invalid" in str(error)


def test_refused_connection_gets_three_quick_tries_within_two_seconds(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    with caplog.at_level(logging.INFO, "hmco.http"), pytest.raises(ConnectionFailed) as info:
        HttpClient(f"http://127.0.0.1:{closed_port}", sleep=sleeps).get("/x")
    assert info.value.context["attempts"] == 3 and info.value.transient
    assert isinstance(info.value, SourceUnavailable) and "Connection refused" in str(info.value)
    assert len(sleeps) == 2 and sum(sleeps) == pytest.approx(2.0)  # waits double and sum to the budget
    retries = [r for r in caplog.records if r.name == "hmco.http"]
    assert [r.levelno for r in retries] == [logging.INFO, logging.INFO]  # routine, not a warning
    assert "attempt 2/3" in retries[-1].getMessage()


def test_connection_retries_are_configured_from_a_spec_mapping(closed_port: int) -> None:
    sleeps = Sleeps()
    options = HttpOptions.coerce({"connect_attempts": 2, "connect_budget": 0.5, "sleep": sleeps})
    client = options.client(f"http://127.0.0.1:{closed_port}", user_agent="hmco-test")
    with pytest.raises(ConnectionFailed) as info:
        client.get("/x")
    assert info.value.context["attempts"] == 2 and sleeps == [0.5]


def test_refused_connection_does_not_use_up_the_hosts_pacing(closed_port: int) -> None:
    now = [0.0]
    sleeps = Sleeps()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    client = HttpClient(
        f"http://127.0.0.1:{closed_port}", min_interval=5.0, sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(ConnectionFailed):
        client.get("/x")
    assert sum(sleeps) == pytest.approx(2.0)  # only the retry waits: no 5 s pacing between the tries


def test_pacer_refund_frees_a_slot_only_while_no_later_request_is_spaced_after_it() -> None:
    pacer = HostPacer(5.0, clock=lambda: 0.0, sleep=lambda s: None)
    pacer.wait()
    pacer.refund()
    assert pacer.wait() == 0.0  # the refunded slot is free again
    other = threading.Thread(target=pacer.wait)  # another thread takes the next slot (at 5 s)
    other.start()
    other.join()
    pacer.refund()  # this thread's request (slot 0) never connected, but one is spaced after it
    assert pacer.wait() == 10.0


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
