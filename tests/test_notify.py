"""The webhook notifier against a real loopback HTTP receiver: payloads, de-duplication, retries, secrecy."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from tenacity import wait_fixed

from hmco.errors import NotificationRejected, NotificationUnavailable, TransientError
from hmco.monitoring.notify import WebhookNotifier
from hmco.quality.freshness import FreshnessStatus, check_freshness, failed_status
from tests.support.webhook import TOKEN, WebhookReceiver

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RUNBOOK = "hmco schedule run noaa-observations-hourly"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _notifier(url: str, clock: Clock, **options: object) -> WebhookNotifier:
    options.setdefault("sleep", lambda _: None)
    return WebhookNotifier(SecretStr(url), clock=clock, wait=wait_fixed(0.25), **options)  # type: ignore[arg-type]


def _status(newest_hour: int | None, *, at: datetime = NOW) -> FreshnessStatus:
    """noaa_observations as the noaa job sees it (sla 20m + lag 40m)."""
    from dataclasses import replace

    newest = datetime(2026, 11, 26, newest_hour, tzinfo=UTC) if newest_hour is not None else None
    status = check_freshness(
        "noaa_observations",
        newest,
        now=at,
        sla=timedelta(minutes=20),
        lag=timedelta(minutes=40),
        target="hub_curated.noaa_observations",
    )
    return replace(status, job="noaa-observations-hourly", runbook=RUNBOOK)


def test_a_breach_posts_the_exact_slack_payload(receiver: WebhookReceiver, clock: Clock) -> None:
    stale = _status(9)  # the 09:00 hour ended at 10:00: 2h old against 1h allowed
    with _notifier(receiver.url, clock, channel="#ops") as notifier:
        [sent] = notifier.check([stale])
    title = ":red_circle: Freshness breach: noaa_observations (hub_curated.noaa_observations) is stale"
    detail = (
        "noaa_observations (hub_curated.noaa_observations) [job noaa-observations-hourly]: stale: 2.0h old "
        "(newest 2026-11-26 09:00:00Z), allowed 1.0h (sla 20m00s + lag 40m00s)"
    )
    assert receiver.received == [
        {
            "text": f"{title}\n{detail}\nRunbook: `{RUNBOOK}`",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{detail}"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*Runbook:* `{RUNBOOK}`"}},
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": "breach · checked 2026-11-26T12:00:00+00:00 · job noaa-observations-hourly",
                        }
                    ],
                },
            ],
            "channel": "#ops",
        }
    ]
    assert receiver.paths == [f"/services/{TOKEN}"]
    assert (sent.kind, sent.outcome, sent.attempts, sent.queued_at, sent.sent_at) == (
        "breach",
        "sent",
        1,
        NOW,
        NOW,
    )


def test_missing_and_unreachable_name_the_reason(receiver: WebhookReceiver, clock: Clock) -> None:
    missing = failed_status(
        "eia_daily_fuel", "missing", "no table hub_curated.eia_daily_fuel in the lake", now=NOW
    )
    down = failed_status("rt_lmp", "unreachable", "cannot open the catalog: Connection refused", now=NOW)
    with _notifier(receiver.url, clock) as notifier:
        notifier.check([missing, down])
    texts = [m["text"] for m in receiver.received]
    assert "eia_daily_fuel is missing" in texts[0]
    assert "missing: no table hub_curated.eia_daily_fuel in the lake" in texts[0]
    assert "rt_lmp is unreachable" in texts[1] and "Connection refused" in texts[1]


def test_a_breach_is_posted_once_then_its_recovery(receiver: WebhookReceiver, clock: Clock) -> None:
    registry = CollectorRegistry()
    with _notifier(receiver.url, clock, registry=registry) as notifier:
        assert [n.kind for n in notifier.check([_status(9)])] == ["breach"]
        clock.now += timedelta(minutes=1)
        assert notifier.check([_status(9, at=clock.now)]) == []  # same breach: nothing new
        assert list(notifier.open_breaches().values()) == [NOW]
        clock.now += timedelta(minutes=25)
        [recovery] = notifier.check([_status(11, at=clock.now)])
        assert notifier.check([_status(11, at=clock.now)]) == []  # fresh and no open breach: quiet
    assert recovery.kind == "recovery"
    assert len(receiver.received) == 2
    text = receiver.received[1]["text"]
    assert text.startswith(":large_green_circle: Freshness recovered after 26m00s: noaa_observations")
    assert "is fresh" in text and f"Runbook: `{RUNBOOK}`" in text
    assert [n.sent_at for n in notifier.history()] == [NOW, NOW + timedelta(minutes=26)]
    assert registry.get_sample_value("hmco_notifications_total", {"kind": "breach", "outcome": "sent"}) == 1
    assert registry.get_sample_value("hmco_notifications_total", {"kind": "recovery", "outcome": "sent"}) == 1


def test_an_open_breach_is_repeated_only_after_remind_every(receiver: WebhookReceiver, clock: Clock) -> None:
    with _notifier(receiver.url, clock, remind_every=timedelta(hours=1)) as notifier:
        notifier.check([_status(9)])
        clock.now += timedelta(minutes=59)
        assert notifier.check([_status(9, at=clock.now)]) == []
        clock.now += timedelta(minutes=1)
        [reminder] = notifier.check([_status(9, at=clock.now)])
    assert reminder.kind == "reminder"
    assert "breach still open since 2026-11-26T12:00:00+00:00" in receiver.received[1]["text"]


def test_a_500_then_200_is_retried_after_the_injected_wait(receiver: WebhookReceiver, clock: Clock) -> None:
    receiver.statuses.extend([500, 503])
    slept: list[float] = []
    with _notifier(receiver.url, clock, sleep=slept.append) as notifier:
        [sent] = notifier.check([_status(9)])
    assert (sent.outcome, sent.attempts) == ("sent", 3)
    assert slept == [0.25, 0.25]
    assert len(receiver.received) == 1 and len(receiver.paths) == 3


def test_a_4xx_is_rejected_without_retries_and_the_breach_stays_unannounced(
    receiver: WebhookReceiver, clock: Clock
) -> None:
    receiver.statuses.append(404)
    registry = CollectorRegistry()
    with _notifier(receiver.url, clock, registry=registry) as notifier:
        with pytest.raises(NotificationRejected, match="HTTP 404") as info:
            notifier.check([_status(9)])
        assert TOKEN not in str(info.value)
        assert notifier.open_breaches() == {}
        [sent] = notifier.check([_status(9)])  # the next check tries again
    assert sent.kind == "breach" and len(receiver.paths) == 2
    assert registry.get_sample_value("hmco_notifications_total", {"kind": "breach", "outcome": "failed"}) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_fails_typed_and_never_shows_the_token(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/services/{TOKEN}"
    slept: list[float] = []
    notifier = _notifier(url, clock, retries=2, sleep=slept.append)
    with caplog.at_level("DEBUG"), pytest.raises(NotificationUnavailable) as info:
        notifier.check([_status(9)])
    error = info.value
    assert isinstance(error, TransientError)
    assert "after 3 attempt(s)" in str(error) and "ConnectError" in str(error)
    assert "s3cr3tW3bh00kT0k3n" not in str(error) and "s3cr3tW3bh00kT0k3n" not in repr(error)
    assert error.__cause__ is None  # httpx's exception (whose request carries the URL) is not chained
    assert "s3cr3tW3bh00kT0k3n" not in caplog.text
    assert slept == [0.25, 0.25]
    [record] = notifier.history()
    assert (record.outcome, record.sent_at, record.attempts) == ("failed", None, 3)
    assert "s3cr3tW3bh00kT0k3n" not in record.error
    assert "s3cr3tW3bh00kT0k3n" not in repr(notifier)


def test_open_breaches_survive_a_restart_through_the_state_file(
    receiver: WebhookReceiver, clock: Clock, tmp_path: Path
) -> None:
    state = tmp_path / "alerts.json"
    with _notifier(receiver.url, clock, state_file=state) as first:
        first.check([_status(9)])
    with _notifier(receiver.url, clock, state_file=state) as second:
        assert second.check([_status(9)]) == []
        assert [n.kind for n in second.check([_status(11)])] == ["recovery"]
    assert len(receiver.received) == 2
