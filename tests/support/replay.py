"""A real HTTP server on loopback that replays payload files in the sources' wire formats.

Routes match a path (and optionally query parameters); each route holds a queue of responses, so a
test can script "429, then 200" or a multi-page walk. Every request is recorded for assertions.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def file(cls, name: str, status: int = 200, content_type: str | None = None, **headers: str) -> Reply:
        path = PAYLOADS / name
        ctype = content_type or _guess(path.name)
        return cls(status=status, body=path.read_bytes(), headers=headers, content_type=ctype)


def _guess(name: str) -> str:
    if name.endswith(".zip"):
        return "application/x-zip-compressed"
    if name.endswith(".csv"):
        return "text/csv"
    if name.endswith((".html", ".htm")):
        return "text/html"
    if name.endswith(".xml"):
        return "text/xml"
    return "application/json"


@dataclass
class Recorded:
    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        for k, v in self.params:
            if k == name:
                return v
        return None


@dataclass
class _Route:
    path: str
    match: Mapping[str, str]
    replies: list[Reply]
    repeat_last: bool

    def matches(self, path: str, params: list[tuple[str, str]]) -> bool:
        if path != self.path:
            return False
        have = dict(params)
        return all(have.get(k) == v for k, v in self.match.items())


class ReplayServer:
    """``with ReplayServer() as srv: srv.add('/v2/x', Reply(...)); client(base_url=srv.url)``."""

    def __init__(self) -> None:
        self.routes: list[_Route] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_HEAD(self) -> None:
                server._handle(self, "HEAD")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    def add(
        self, path: str, *replies: Reply, match: Mapping[str, str] | None = None, repeat_last: bool = True
    ) -> None:
        """Serve ``replies`` in order on ``path`` (first matching route wins; last reply repeats)."""
        with self._lock:
            self.routes.append(_Route(path, dict(match or {}), list(replies), repeat_last))

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        params = parse_qsl(parts.query, keep_blank_values=True)
        rec = Recorded(method, parts.path, params, {k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            self.requests.append(rec)
            reply = None
            for route in self.routes:
                if route.matches(parts.path, params) and route.replies:
                    reply = route.replies[0]
                    if len(route.replies) > 1 or not route.repeat_last:
                        route.replies.pop(0)
                    break
        if reply is None:
            reply = Reply(404, b'{"error":"no replay route"}')
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(reply.body)

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
