"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real server (the local Unleash), for the fault tests.

Requests pass through unchanged (method, path, body, headers) unless a fault is queued for them. Faults that a
proxy or gateway produces WITHOUT forwarding: "html" (a 200 login page, as an SSO proxy answers), "html-404" (the
proxy's own not-found page), "empty" (a 200 with no body), "redirect" (302 to a login page), "429" (with
Retry-After), "502"/"503" (no body), "echo-401" (a 401 whose body repeats the presented token, JSON-escaped with
`\\/`, unicode-escaped, URL-encoded, and as base64 of `user:token`). Faults AFTER forwarding (the server acted):
"drop" (the answer never comes back) and "500" (the server's answer replaced by a 500 with a body).
Loopback only, ephemeral port, one thread per connection.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional
from urllib.parse import quote

import requests

BEFORE = ("html", "html-404", "empty", "redirect", "429", "502", "503", "echo-401")
AFTER = ("drop", "500")
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in with SSO</body></html>"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Fault:
    kind: str
    method: Optional[str]
    path_contains: Optional[str]


@dataclass
class Seen:
    method: str
    path: str
    fault: Optional[str]


@dataclass
class FaultProxy:
    target: str  # e.g. http://127.0.0.1:4242
    retry_after: str = "1"
    seen: list[Seen] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, kind: str, times: int = 1, method: Optional[str] = None, path_contains: Optional[str] = None) -> None:
        if kind not in BEFORE + AFTER:
            raise ValueError(f"unknown fault {kind!r}; one of {BEFORE + AFTER}")
        with self._lock:
            self._faults += [Fault(kind, method, path_contains) for _ in range(times)]

    def pending(self) -> int:
        with self._lock:
            return len(self._faults)

    def take(self, method: str, path: str) -> Optional[str]:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if (fault.method in (None, method)) and (fault.path_contains is None or fault.path_contains in path):
                    del self._faults[i]
                    return fault.kind
        return None

    def writes(self) -> list[Seen]:
        return [s for s in self.seen if s.method in ("POST", "PATCH", "PUT", "DELETE")]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def echo_token_body(authorization: str) -> bytes:
    token = authorization
    escaped = json.dumps(token)[1:-1].replace("/", "\\/")
    unicode_escaped = "".join(f"\\u{ord(c):04x}" for c in token)
    basic = base64.b64encode(f"admin:{token}".encode()).decode()
    return (f'{{"name": "AuthenticationRequired", "message": "invalid token {escaped}", "details": '
            f'[{{"message": "{unicode_escaped}"}}], "url": "{quote(token, safe="")}", "basic": "{basic}"}}').encode()


def _before(kind: str, proxy: FaultProxy, authorization: str) -> tuple[int, dict[str, str], bytes]:
    html = {"Content-Type": "text/html; charset=utf-8"}
    return {
        "html": (200, html, LOGIN_PAGE),
        "html-404": (404, html, b"<html><body><h1>404 Not Found</h1>nginx</body></html>"),
        "empty": (200, {}, b""),
        "redirect": (302, {"Location": "https://sso.example.test/login?next=%2Fapi"}, b""),
        "429": (429, {"Retry-After": proxy.retry_after, "Content-Type": "application/json"},
                b'{"message": "Too many requests"}'),
        "502": (502, {}, b""),
        "503": (503, {}, b""),
        "echo-401": (401, {"Content-Type": "application/json"}, echo_token_body(authorization)),
    }[kind]


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = proxy.take(self.command, self.path)
            proxy.seen.append(Seen(self.command, self.path.split("?")[0], fault))
            if fault in BEFORE:
                return self._answer(*_before(fault, proxy, self.headers.get("Authorization") or ""))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            upstream = requests.request(self.command, proxy.target + self.path, data=body or None, headers=headers,
                                        timeout=30, allow_redirects=False)
            if fault == "drop":
                self.close_connection = True  # the server acted; its answer is lost
                return None
            if fault == "500":
                return self._answer(500, {"Content-Type": "application/json"}, b'{"message": "Internal Server Error"}')
            passed = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return self._answer(upstream.status_code, passed, upstream.content)

        def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


@contextlib.contextmanager
def fault_proxy(target: str, **settings: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(target, **settings)
    try:
        yield proxy
    finally:
        proxy.stop()
