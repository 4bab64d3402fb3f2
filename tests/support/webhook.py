"""A loopback HTTP receiver standing in for a Slack incoming webhook: records each POST's JSON body."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "T0HMCO/B0HMCO/s3cr3tW3bh00kT0k3n"


class WebhookReceiver:
    """``ThreadingHTTPServer`` on 127.0.0.1, port 0; ``statuses`` queues the codes of the next answers."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses: deque[int] = deque()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = receiver.statuses.popleft() if receiver.statuses else 200
                if code < 300:  # only delivered messages count as received
                    receiver.received.append(json.loads(body))
                receiver.paths.append(self.path)
                answer = b"ok" if code < 300 else b"server_error"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
