"""The HTTP client every source uses: timeouts, retries with backoff and jitter, ``Retry-After``,
and per-host pacing shared by all clients in the process; :class:`HttpOptions`, the one value
that carries those settings from a source's constructor (or a UIS spec) to its client; and
:func:`response_payload`, the one place a response becomes a :class:`~hmco.payload.RawPayload`.

Retries (tenacity) cover timeouts, HTTP 429 and 5xx (``max_attempts``, exponential backoff), and
refused or reset connections, which get a few quick tries within a short budget (``connect_attempts``,
``connect_budget``). A host name that does not resolve is not retried: :class:`HostNotFound` names the
host and the setting to fix. Any other status is returned to the source, which knows how to turn its
body into a typed error. Pacing is per host: two clients of the same API in one process share one
budget, so CAISO's one-request-per-5-s rule holds process-wide.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential_jitter,
)

from hmco.errors import (
    ConfigError,
    ConnectionFailed,
    HostNotFound,
    RateLimited,
    SourceError,
    SourceUnavailable,
    is_transient,
)
from hmco.payload import RawPayload, body_snippet
from hmco.redaction import redact_mapping, redact_url

if TYPE_CHECKING:
    from hmco.config import SecretRef
    from hmco.sources.base import Source
    from hmco.windows import Window

__all__ = [
    "HostPacer",
    "HttpClient",
    "HttpOptions",
    "last_modified",
    "pacer_for",
    "parse_retry_after",
    "response_payload",
]

log = logging.getLogger("hmco.http")

#: Transport failures of the connection itself (refused, reset, no answer to the connect): a few quick
#: retries, not the long backoff of an overloaded server.
_CONNECTION_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass
class HostPacer:
    """Spaces requests to one host at least ``min_interval`` seconds apart (thread-safe)."""

    min_interval: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _mine: threading.local = field(default_factory=threading.local)  # this thread's last slot

    def wait(self, sleep: Callable[[float], None] | None = None) -> float:
        """Block until the next request may go; return how long it waited."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            delay = slot - now
            self._next = slot + self.min_interval
            self._mine.slot = slot
        if delay > 0:
            (sleep or self.sleep)(delay)
        return delay

    def refund(self) -> None:
        """Give back this thread's last slot when its request never reached the host (no connection).

        Only while no later request has been spaced after it, so the host's pacing still holds.
        """
        slot = getattr(self._mine, "slot", None)
        with self._lock:
            if slot is not None and self._next == slot + self.min_interval:
                self._next = slot
            self._mine.slot = None

    def push_back(self, seconds: float) -> None:
        """Delay every later request to this host (after a 429 with ``Retry-After``)."""
        with self._lock:
            self._next = max(self._next, self.clock() + seconds)


_pacers: dict[str, HostPacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(host: str, min_interval: float) -> HostPacer:
    """The process-wide pacer of ``host``; the strictest interval asked for wins."""
    with _pacers_lock:
        pacer = _pacers.get(host)
        if pacer is None:
            pacer = _pacers[host] = HostPacer(min_interval)
        elif min_interval > pacer.min_interval:
            pacer.min_interval = min_interval
        return pacer


def _name_not_resolved(exc: BaseException) -> bool:
    """Whether a transport error comes from a failed name lookup (``socket.gaierror`` in its chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def last_modified(headers: Mapping[str, str]) -> datetime | None:
    """The ``Last-Modified`` time of a response as an aware UTC datetime (``None`` if absent or bad).

    A source's publication time of a file when its payload states none (see ``RawPayload.published_at``).
    """
    value = next((v for k, v in headers.items() if k.lower() == "last-modified"), None)
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: an HTTP-date is GMT (``-0000`` parses as naive)
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


class HttpClient:
    """A paced, retrying GET client bound to one base URL.

    Args:
        base_url: root of the API (configurable for mirrors, proxies and tests).
        min_interval: seconds between requests to this host, process-wide.
        max_attempts: total tries for retryable failures.
        backoff: initial backoff in seconds (exponential, with jitter, capped at ``max_backoff``).
        connect_attempts: total tries when the connection is refused or reset (within ``max_attempts``).
        connect_budget: seconds of waiting, in all, between those tries (doubling waits that sum to it).
        timeout: per-request timeout (seconds or an ``httpx.Timeout``).
        headers: sent with every request (secret values are redacted in anything recorded).
        rate_limit_detector: optional ``(response) -> bool`` for throttles that are not HTTP 429.
        throttle_wait: seconds to wait after a throttle that names no ``Retry-After``.
        pacer: a private pacer instead of the process-wide one of the host.
        sleep, clock: injected time; with either, the client paces on its own clock (no real waiting).
    """

    def __init__(
        self,
        base_url: str,
        *,
        min_interval: float = 0.0,
        max_attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        connect_attempts: int = 3,
        connect_budget: float = 2.0,
        timeout: float | httpx.Timeout = 60.0,
        headers: Mapping[str, str] | None = None,
        user_agent: str = "hmco",
        rate_limit_detector: Callable[[httpx.Response], bool] | None = None,
        throttle_wait: float | None = None,
        pacer: HostPacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.host = urlsplit(self.base_url).netloc
        # Injected time (tests, simulations) gets private pacers on that clock; real time shares them.
        self._injected_time = clock is not None or sleep is not time.sleep
        self._clock = clock or time.monotonic
        if pacer is None and self._injected_time:
            pacer = HostPacer(min_interval, clock=self._clock, sleep=sleep)
        self.pacer = pacer or pacer_for(self.host, min_interval)
        self._sub_pacers: dict[str, HostPacer] = {}
        self.throttle_wait = throttle_wait
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.connect_attempts = connect_attempts
        self.connect_budget = connect_budget
        self._sleep = sleep
        self._rate_limit_detector = rate_limit_detector
        all_headers = {"User-Agent": user_agent, **(headers or {})}
        self._client = httpx.Client(
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=10.0),
            headers=all_headers,
            follow_redirects=False,
            verify=verify,
        )

    def sub_pacer(self, key: str, min_interval: float) -> HostPacer:
        """The pacer of one separately limited part of the host (a feed, a file tree), e.g. MISO's feeds.

        Process-wide ``pacer_for(f"{host}#{key}")`` in real time; with injected time a private pacer on
        the client's clock and sleep, kept per key. The strictest interval asked for wins.
        """
        if not self._injected_time:
            return pacer_for(f"{self.host}#{key}", min_interval)
        pacer = self._sub_pacers.get(key)
        if pacer is None:
            pacer = self._sub_pacers[key] = HostPacer(min_interval, clock=self._clock, sleep=self._sleep)
        elif min_interval > pacer.min_interval:
            pacer.min_interval = min_interval
        return pacer

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else urljoin(self.base_url, path.lstrip("/"))

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET with pacing and retries; returns the final response (any non-retryable status).

        Raises:
            HostNotFound: the host name does not resolve (at once, not retried).
            ConnectionFailed: the connection was refused or reset through ``connect_attempts`` tries.
            RateLimited: still throttled after ``max_attempts``.
            SourceUnavailable: timeouts or 5xx after ``max_attempts``.
        """
        url = self.url(path)
        attempts = 0
        refused = 0

        def attempt() -> httpx.Response:
            nonlocal attempts, refused
            attempts += 1
            self.pacer.wait(self._sleep)
            try:
                resp = self._client.get(url, params=params, headers=headers)
            except httpx.TransportError as exc:
                if not isinstance(exc, _CONNECTION_ERRORS):
                    raise self._transport_error(exc, url, attempts=attempts) from None
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    self.pacer.refund()  # the request never reached the host: its slot is not used up
                refused += 1
                raise self._transport_error(exc, url, attempts=refused) from None
            if resp.status_code == 429 or (self._rate_limit_detector and self._rate_limit_detector(resp)):
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None and attempts >= self.max_attempts:
                    # Out of retries: make every other caller of this host respect the server's wait.
                    # (While retrying, this client's own backoff already waits ``retry_after``.)
                    self.pacer.push_back(retry_after)
                raise RateLimited(
                    f"{self.host} throttled the request (HTTP {resp.status_code}): {body_snippet(resp.content)}",
                    retry_after=retry_after,
                    url=redact_url(str(resp.request.url)),
                )
            if resp.status_code >= 500:
                raise SourceUnavailable(
                    f"{self.host} answered HTTP {resp.status_code}: {body_snippet(resp.content)}",
                    url=redact_url(str(resp.request.url)),
                )
            return resp

        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(attempt)

    def get_with_secret(
        self,
        path: str,
        params: list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        secret: SecretRef,
        param: str | None = None,
        header: str | None = None,
    ) -> httpx.Response:
        """:meth:`get` with the secret's *current* value as query ``param`` or ``header``.

        The value is read from ``secret`` for every request, so a rotated key file is used at once; and
        if the server refuses it (401/403) while the file holds a newer value, the request is sent
        once more with that value. The caller judges whatever answer comes back.
        """
        if (param is None) == (header is None):
            raise ValueError("give exactly one of param or header")

        def send(value: str | None) -> httpx.Response:
            if param is not None:
                return self.get(path, [(param, value or ""), *(params or [])], headers)
            return self.get(path, params, {**(headers or {}), str(header): value or ""})

        resp = send(secret.get())
        if resp.status_code in (401, 403) and secret.refresh():
            log.warning(
                "%s refused the %s (HTTP %d); retrying with its rotated value",
                self.host,
                secret.name,
                resp.status_code,
            )
            resp = send(secret.get())
        return resp

    def _transport_error(self, exc: httpx.TransportError, url: str, *, attempts: int) -> SourceError:
        """The typed error of a request that got no answer: DNS, the connection, or a timeout."""
        host = urlsplit(url).hostname or self.host
        if _name_not_resolved(exc):
            return HostNotFound(
                f"cannot resolve the host name {host!r} ({exc}): check the source's base_url (a UIS spec's "
                f"source.base_url) for a typo, or this machine's DNS and proxy settings",
                host=host,
                url=redact_url(url),
            )
        message = f"cannot reach {self.host}: {type(exc).__name__}: {exc}"
        if isinstance(exc, _CONNECTION_ERRORS):
            return ConnectionFailed(message, url=redact_url(url), attempts=attempts)
        return SourceUnavailable(message, url=redact_url(url))

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ConnectionFailed) and exc.context["attempts"] >= self.connect_attempts:
            return True
        return state.attempt_number >= self.max_attempts

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ConnectionFailed):
            # Waits double and sum to connect_budget over the connect_attempts tries.
            first = self.connect_budget / max(1, 2 ** (self.connect_attempts - 1) - 1)
            return first * 2 ** (exc.context["attempts"] - 1)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff * 5)
        if isinstance(exc, RateLimited) and self.throttle_wait is not None:
            return self.throttle_wait  # a throttle page without Retry-After (CAISO: "retry after 5 seconds")
        return wait_exponential_jitter(initial=self.backoff, max=self.max_backoff, jitter=self.backoff)(state)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        # A refused connection's quick retries are routine; long waits (throttles, 5xx) are worth a warning.
        log.log(
            logging.INFO if isinstance(exc, ConnectionFailed) else logging.WARNING,
            "retrying %s after %s (attempt %d/%d, waiting %.1fs)",
            self.host,
            exc,
            exc.context["attempts"] if isinstance(exc, ConnectionFailed) else state.attempt_number,
            self.connect_attempts if isinstance(exc, ConnectionFailed) else self.max_attempts,
            wait,
        )

    @staticmethod
    def describe_request(resp: httpx.Response) -> tuple[str, dict[str, str], dict[str, str]]:
        """Redacted URL, query params and request headers of a response, for ``RawPayload``."""
        req = resp.request
        return (
            redact_url(str(req.url)),
            redact_mapping(list(req.url.params.multi_items())),
            redact_mapping(
                {k: v for k, v in req.headers.items() if k.lower() not in ("accept-encoding", "connection")}
            ),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def response_payload(
    source: Source,
    resp: httpx.Response,
    *,
    window: Window,
    page: int,
    meta: Mapping[str, Any],
    body: bytes | None = None,
    published_at: datetime | None = None,
) -> RawPayload:
    """The :class:`RawPayload` of one answer to ``source``: the one place a source client builds it.

    The request is recorded redacted (:meth:`HttpClient.describe_request`), with the status and
    ``content-type`` of the response.

    Args:
        source: the source fetching; the payload carries its ``name`` and dataset name.
        resp: the final response of the request.
        window, page, meta: what the payload covers and the source-specific facts its parser needs.
        body: the bytes to keep, when they are not ``resp.content`` as sent (redacted of an echoed
            secret, emptied for a missing-file marker).
        published_at: the source's publication time of the bytes, where it states one.
    """
    url, params, headers = HttpClient.describe_request(resp)
    return RawPayload(
        source=source.name,
        dataset=source.dataset.name,
        body=resp.content if body is None else body,
        url=url,
        params=params,
        headers=headers,
        status=resp.status_code,
        content_type=resp.headers.get("content-type"),
        window=window,
        page=page,
        meta=meta,
        published_at=published_at,
    )


@dataclass(frozen=True)
class HttpOptions:
    """How a source talks HTTP: timeout, retries and pacing in one small value (like ``httpx.Timeout``).

    Every HTTP source takes ``http: HttpOptions | None``; a UIS spec passes the same as a mapping
    (``params: {http: {timeout: 30, max_attempts: 3}}``). ``None`` for ``timeout`` or
    ``min_interval`` means the source's own default (its documented pacing, its usual timeout).

    Args:
        timeout: seconds per request (connecting gets at most 10 s of it).
        min_interval: seconds between requests, process-wide, to the host (or, for MISO and SPP, to
            one feed or file tree).
        max_attempts: total tries of a retryable failure (connection error, timeout, 429, 5xx).
        backoff: first retry wait in seconds (exponential with jitter, capped at ``max_backoff``).
        max_backoff: longest wait between two retries, in seconds.
        connect_attempts: total tries when the host refuses or resets the connection (a host name that
            does not resolve is never retried).
        connect_budget: seconds of waiting, in all, between those tries.
        verify: TLS verification: ``True``, ``False`` or the path of a CA bundle.
        sleep, clock: injected time (tests, simulations); injecting either gives the client private
            pacers on that clock, so nothing really waits.
    """

    timeout: float | None = None
    min_interval: float | None = None
    max_attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    connect_attempts: int = 3
    connect_budget: float = 2.0
    verify: bool | str = True
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"http.timeout must be a positive number of seconds, not {self.timeout!r}")
        if self.min_interval is not None and not self.min_interval >= 0:
            raise ConfigError(f"http.min_interval must be ≥ 0 seconds, not {self.min_interval!r}")
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ConfigError(f"http.max_attempts must be a whole number ≥ 1, not {self.max_attempts!r}")
        if (
            isinstance(self.connect_attempts, bool)
            or not isinstance(self.connect_attempts, int)
            or self.connect_attempts < 1
        ):
            raise ConfigError(
                f"http.connect_attempts must be a whole number ≥ 1, not {self.connect_attempts!r}"
            )
        if not self.connect_budget >= 0:
            raise ConfigError(f"http.connect_budget must be ≥ 0 seconds, not {self.connect_budget!r}")
        if not self.backoff >= 0 or not self.max_backoff >= 0:
            raise ConfigError(
                f"http.backoff and http.max_backoff must be ≥ 0 seconds, not {self.backoff!r}/{self.max_backoff!r}"
            )

    @classmethod
    def coerce(cls, value: HttpOptions | Mapping[str, Any] | None) -> HttpOptions:
        """``None`` → defaults; a mapping (from YAML) → options, its keys checked; options as they are.

        Raises:
            ConfigError: an unknown key (named, with the known ones) or a value out of range.
        """
        if value is None:
            return cls()
        if isinstance(value, HttpOptions):
            return value
        if isinstance(value, Mapping):
            known = [f.name for f in fields(cls)]
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                raise ConfigError(f"http has no option(s) {unknown}; it accepts {known}")
            try:
                return cls(**{str(k): v for k, v in value.items()})
            except TypeError as exc:  # a comparison with a non-number, e.g. timeout: "soon"
                raise ConfigError(f"http options {dict(value)!r} are invalid: {exc}") from None
        raise ConfigError(f"http must be HttpOptions or a mapping of its fields, not {type(value).__name__}")

    def with_defaults(self, *, timeout: float, min_interval: float) -> HttpOptions:
        """These options with a source's defaults filled in where they are unset."""
        return replace(
            self,
            timeout=timeout if self.timeout is None else self.timeout,
            min_interval=min_interval if self.min_interval is None else self.min_interval,
        )

    @property
    def injected_time(self) -> bool:
        """Whether time is injected (``sleep`` or ``clock`` given): pacers are then private."""
        return self.clock is not None or self.sleep is not time.sleep

    def client(
        self,
        base_url: str,
        *,
        user_agent: str,
        headers: Mapping[str, str] | None = None,
        host_interval: float | None = None,
        rate_limit_detector: Callable[[httpx.Response], bool] | None = None,
        client_class: type[HttpClient] = HttpClient,
    ) -> HttpClient:
        """The paced, retrying client these options describe: the one place a source builds it.

        Args:
            base_url: root of the API.
            user_agent: the ``User-Agent`` header (settings: ``HMCO_SOURCES__USER_AGENT``).
            headers: further headers sent with every request (tokens are redacted where recorded).
            host_interval: pace the host at this interval instead of ``min_interval`` (sources that
                pace per feed or file tree with :meth:`HttpClient.sub_pacer` pass ``0``).
            rate_limit_detector: ``(response) -> bool`` for throttles that are not HTTP 429.
            client_class: an :class:`HttpClient` subclass with source-specific retry waits.
        """
        interval = host_interval if host_interval is not None else (self.min_interval or 0.0)
        return client_class(
            base_url,
            min_interval=interval,
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            connect_attempts=self.connect_attempts,
            connect_budget=self.connect_budget,
            timeout=60.0 if self.timeout is None else self.timeout,
            headers=headers,
            user_agent=user_agent,
            rate_limit_detector=rate_limit_detector,
            sleep=self.sleep,
            clock=self.clock,
            verify=self.verify,
        )
