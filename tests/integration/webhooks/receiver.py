"""A webhook receiver the test runs on loopback (an HTTP server in a thread), verifying signatures the way the
README tells receivers to, answering what the test scripts (a status per request, or never)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """The README's verification snippet, written out without the platform's code."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) <= tolerance_s and hmac.compare_digest(expected, parts["v1"])


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float
    headers: dict[str, str]
    body: bytes
    verified: bool

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers ``codes`` in turn (then ``then``); ``hang`` holds every request until the test ends."""

    secret: str = ""
    codes: list[int] = field(default_factory=list)
    then: int = 200
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    answered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig = self.headers.get("CRM-Signature", "")
                with receiver._lock:
                    receiver.received.append(Received(time.monotonic(), dict(self.headers), body,
                                                      bool(sig) and verify(receiver.secret, body, sig)))
                    code = receiver.codes.pop(0) if receiver.codes else receiver.then
                    receiver.in_flight += 1
                if receiver.hang:
                    receiver._release.wait()
                    with receiver._lock:
                        receiver.in_flight -= 1
                    return
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with receiver._lock:
                    receiver.in_flight -= 1
                    receiver.answered += 1

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def wait_for(predicate, *, timeout_s: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
