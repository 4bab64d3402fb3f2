"""Freshness alerts to a Slack-compatible incoming webhook: one when a breach opens, one when it recovers.

:class:`WebhookNotifier` keeps the open breaches (in memory, and in an optional JSON state file so that
one-shot runs such as ``hmco freshness --notify`` share them): a check that finds the same breach again
posts nothing (unless ``remind_every`` has passed), a check that finds it fresh again posts the recovery.
Each message names the dataset and target, the breach (age against SLA + lag, or missing/empty/
unreachable with the reason) and the runbook command.

The webhook URL is a secret (a Slack URL carries its token in the path): it is registered with
:mod:`hmco.redaction`, never logged, and errors name only its scheme and host. Connection errors, 429 and
5xx are retried (tenacity, bounded); every post counts in ``hmco_notifications_total{kind,outcome}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from hmco._logging import get_logger
from hmco.errors import ConfigError, NotificationError, NotificationRejected, NotificationUnavailable
from hmco.monitoring.metrics import metrics_for
from hmco.redaction import REDACTED, redact_text, register_secret
from hmco.windows import format_duration

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from hmco.config import AlertSettings

__all__ = ["Alertable", "Notification", "WebhookNotifier"]

log = get_logger("hmco.monitoring.notify")

Kind = Literal["breach", "reminder", "recovery"]
Outcome = Literal["sent", "failed"]


class Alertable(Protocol):
    """A freshness verdict, by shape (:class:`hmco.quality.FreshnessStatus` is one).

    ``job`` and ``runbook`` are read when present (``getattr``): they name what to run on a breach.
    """

    @property
    def dataset(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str: ...


@dataclass(frozen=True)
class Notification:
    """One alert the notifier tried to post: what, to whom, when (``queued_at``/``sent_at``), how it went."""

    kind: Kind
    key: str
    dataset: str
    target: str
    payload: dict[str, Any]
    queued_at: datetime
    sent_at: datetime | None
    attempts: int
    outcome: Outcome
    error: str = ""

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


@dataclass
class _Open:
    """A breach that has been announced and not yet recovered."""

    since: datetime
    last_sent: datetime
    status: str


class _Retry(Exception):
    """A post worth retrying (connection error, timeout, 429, 5xx); ``reason`` is already redacted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebhookNotifier:
    """Posts breach and recovery alerts for freshness verdicts to a Slack-compatible webhook.

    Args:
        url: the incoming-webhook URL (a secret).
        channel: a channel override put in the payload (Slack's legacy webhooks honour it).
        timeout: seconds per POST.
        retries: retries after a connection error, timeout, 429 or 5xx (so ``retries + 1`` attempts).
        remind_every: repeat an open breach this often (default: announce it once).
        clock: the time used for de-duplication and the timestamps of :meth:`history`.
        wait, sleep: tenacity's wait strategy between attempts, and the sleep it calls (inject in tests).
        registry: where ``hmco_notifications_total`` is counted (default: prometheus_client's).
        state_file: a JSON file keeping the open breaches across processes (default: memory only).
        transport: an httpx transport (tests, proxies).
    """

    url: SecretStr
    channel: str | None = None
    timeout: float = 10.0
    retries: int = 3
    remind_every: timedelta | None = None
    clock: Callable[[], datetime] = _utcnow
    wait: wait_base | None = None
    sleep: Callable[[float], None] = time.sleep
    registry: CollectorRegistry | None = None
    state_file: Path | None = None
    transport: httpx.BaseTransport | None = None
    _open: dict[str, _Open] = field(default_factory=dict, init=False, repr=False)
    _history: list[Notification] = field(default_factory=list, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        raw = self.url.get_secret_value()
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("the alert webhook URL (HMCO_ALERTS__WEBHOOK_URL) must be an http(s) URL")
        register_secret(raw)
        if len(parts.path.strip("/")) >= 8:
            register_secret(parts.path)  # the token part, wherever it is echoed on its own
        if self.state_file is not None:
            self._open = _load_state(self.state_file)

    @classmethod
    def from_settings(cls, alerts: AlertSettings, **options: Any) -> WebhookNotifier | None:
        """A notifier for ``settings.alerts``, or None when no webhook URL is configured."""
        if alerts.webhook_url is None:
            return None
        options.setdefault("remind_every", alerts.remind_every)
        return cls(
            alerts.webhook_url,
            channel=alerts.channel,
            timeout=alerts.timeout,
            retries=alerts.retries,
            **options,
        )

    @property
    def where(self) -> str:
        """The webhook as errors and logs may name it: scheme and host, the token-bearing path masked."""
        parts = urlsplit(self.url.get_secret_value())
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/{REDACTED}"

    # --- the de-duplicating entry point ---------------------------------------------------------

    def check(self, statuses: Iterable[Alertable], *, raise_on_failure: bool = True) -> list[Notification]:
        """Post what changed: a breach that opened (or is due a reminder), a breach that recovered.

        A verdict seen again unchanged posts nothing. A failed post leaves the state as it was, so the
        next check tries again; with ``raise_on_failure`` the first failure is raised after every post
        was tried. Returns the notifications tried, in order.
        """
        tried: list[Notification] = []
        errors: list[NotificationError] = []
        with self._lock:
            for status in statuses:
                key = _key(status)
                now = self.clock()
                opened = self._open.get(key)
                kind: Kind | None = None
                if not status.ok and opened is None:
                    kind = "breach"
                elif not status.ok and opened is not None and self._due(opened, now):
                    kind = "reminder"
                elif status.ok and opened is not None:
                    kind = "recovery"
                if kind is None:
                    continue
                try:
                    sent = self.post(kind, self.payload(kind, status, opened, now), status=status)
                except NotificationError as exc:
                    errors.append(exc)
                    tried.append(self._history[-1])
                    continue
                tried.append(sent)
                if kind == "recovery":
                    del self._open[key]
                elif opened is None:
                    self._open[key] = _Open(since=now, last_sent=now, status=status.status)
                else:
                    opened.last_sent, opened.status = now, status.status
            if self.state_file is not None and any(n.outcome == "sent" for n in tried):
                _save_state(self.state_file, self._open)
        if errors and raise_on_failure:
            raise errors[0]
        return tried

    def open_breaches(self) -> dict[str, datetime]:
        """The breaches announced and not yet recovered: key → when it opened."""
        with self._lock:
            return {k: v.since for k, v in self._open.items()}

    def history(self) -> tuple[Notification, ...]:
        """Every notification tried so far, with its timestamps and outcome (for measurement)."""
        with self._lock:
            return tuple(self._history)

    def _due(self, opened: _Open, now: datetime) -> bool:
        return self.remind_every is not None and now - opened.last_sent >= self.remind_every

    # --- messages -------------------------------------------------------------------------------

    def payload(self, kind: Kind, status: Alertable, opened: _Open | None, now: datetime) -> dict[str, Any]:
        """The Slack-compatible body (``text`` fallback plus ``blocks``) of one alert."""
        label = status.dataset + (f" ({status.target})" if status.target else "")
        runbook = str(getattr(status, "runbook", "") or "")
        job = str(getattr(status, "job", "") or "")
        if kind == "recovery":
            lasted = f" after {format_duration(now - opened.since)}" if opened is not None else ""
            title = f":large_green_circle: Freshness recovered{lasted}: {label} is {status.status}"
        elif kind == "reminder" and opened is not None:
            title = f":red_circle: Freshness breach still open since {_iso(opened.since)}: {label} is {status.status}"
        else:
            title = f":red_circle: Freshness breach: {label} is {status.status}"
        detail = status.message
        text = f"{title}\n{detail}" + (f"\nRunbook: `{runbook}`" if runbook else "")
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{detail}"}},
        ]
        if runbook:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Runbook:* `{runbook}`"}})
        context = f"{kind} · checked {_iso(now)}" + (f" · job {job}" if job else "")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        body: dict[str, Any] = {"text": text, "blocks": blocks}
        if self.channel:
            body["channel"] = self.channel
        return body

    # --- delivery -------------------------------------------------------------------------------

    def post(self, kind: Kind, payload: dict[str, Any], *, status: Alertable | None = None) -> Notification:
        """POST one payload, retrying connection errors, 429 and 5xx; raise a typed error if it fails.

        Raises:
            NotificationUnavailable: the webhook stayed unreachable (or 5xx/429) through every retry.
            NotificationRejected: the webhook refused the message (another 4xx).
        """
        queued = self.clock()
        attempts = 0
        dataset = status.dataset if status is not None else ""
        target = status.target if status is not None else ""

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            self._post_once(payload)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self.wait if self.wait is not None else wait_exponential_jitter(initial=1, max=30),
            sleep=self.sleep,
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )
        error: NotificationError | None = None
        try:
            retrying(attempt)
        except _Retry as exc:
            error = NotificationUnavailable(
                f"could not post the {kind} alert for {dataset or 'a dataset'} after {attempts} attempt(s): "
                f"{exc.reason}",
                webhook=self.where,
            )
        except NotificationError as exc:
            error = exc
        outcome: Outcome = "failed" if error is not None else "sent"
        record = Notification(
            kind=kind,
            key=_key(status) if status is not None else "",
            dataset=dataset,
            target=target,
            payload=payload,
            queued_at=queued,
            sent_at=self.clock() if error is None else None,
            attempts=attempts,
            outcome=outcome,
            error=str(error) if error is not None else "",
        )
        with self._lock:
            self._history.append(record)
        metrics_for(self.registry).notifications.labels(
            kind="recovery" if kind == "recovery" else "breach", outcome=outcome
        ).inc()
        if error is not None:
            log.warning("alert not delivered: %s", error)
            raise error
        log.info("posted %s alert for %s to %s", kind, dataset or "-", self.where)
        return record

    def _post_once(self, payload: dict[str, Any]) -> None:
        try:
            response = self._http.post(self.url.get_secret_value(), json=payload)
        except httpx.TransportError as exc:  # connect, read, write, timeout, protocol
            raise _Retry(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        if response.status_code < 300:
            return
        body = self._scrub(response.text.strip()[:200])
        reason = f"HTTP {response.status_code}" + (f" {body}" if body else "")
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(reason)
        raise NotificationRejected(f"the webhook refused the alert: {reason}", webhook=self.where)

    def _scrub(self, text: str) -> str:
        return redact_text(text.replace(self.url.get_secret_value(), self.where))

    @property
    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, transport=self.transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> WebhookNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key(status: Alertable) -> str:
    """What one breach is about: the job (when known), the dataset and the target."""
    return f"{getattr(status, 'job', '') or ''}|{status.dataset}|{status.target}"


def _load_state(path: Path) -> dict[str, _Open]:
    try:
        raw = json.loads(path.read_text())
        return {
            k: _Open(datetime.fromisoformat(v["since"]), datetime.fromisoformat(v["last_sent"]), v["status"])
            for k, v in raw.items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable alert state %s: %s", path, exc)
        return {}


def _save_state(path: Path, state: dict[str, _Open]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        k: {"since": _iso(v.since), "last_sent": _iso(v.last_sent), "status": v.status}
        for k, v in state.items()
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
