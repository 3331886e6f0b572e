r"""A small JSON-over-HTTP client shared by the dynamic providers (Kindo admin API, Unleash admin API).

Every call needs the same things, done the same way, so they live here:
- a (connect, read) timeout, always;
- retries that know when repeating is safe. Idempotent calls retry on 5xx, 429 and transport errors, with
  exponential backoff bounded in attempts and in total time. Non-idempotent calls (Kindo `model/new`)
  retry ONLY when the request provably never reached the application: the connection could not be
  opened, or a 502/503/504 came back WITHOUT a body (a proxy answering for a server that never saw the
  request; see reference/kindo-admin-api.md). Never after a read timeout or a dropped connection: the
  server may have acted, and a repeat would act twice;
- errors that name the method, the path (never the full URL), the status and the server's own message,
  and never a secret: every text that leaves this module goes through `redact`, which knows every escaping a
  server may echo a secret in (JSON `\/` and `\uXXXX`, URL encoding, HTML entities, base64);
- a 2xx answer is the API's own JSON or nothing: an HTML page or other text with a 2xx status (a login or SSO
  proxy in front of the API answers like that) is an error of kind "not-json" that names the likely cause, so a
  caller never reads it as "gone" or "done". Calls whose API answers with an empty body say so (`empty_ok`).
"""

from __future__ import annotations

import base64
import functools
import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

REDACTED = "[REDACTED]"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Statuses a proxy or load balancer sends for an upstream that did not answer. With an EMPTY body they mean
# the application never saw the request (the contract's assumption for Kindo), so even a create may repeat.
UNPROCESSED_STATUSES = frozenset({502, 503, 504})
SNIPPET_CHARS = 300
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=:-]{4,}")

# Indirection so tests can make backoff instant (monkeypatch dynamic_providers.http._sleep).
_sleep = time.sleep


# --------------------------------------------------------------------------------------------- redaction
_HTML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
BASE64_CORE_MIN = 8  # shorter base64 fragments are too common in ordinary text to scrub


def _hex(value: int, digits: int) -> str:
    """A regex for `value` in hex, either case (servers write both %2F and %2f)."""
    text = f"{value:0{digits}x}"
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in text)


def _char_pattern(char: str) -> str:
    """Every way one character of a secret may be written in text a server sends back."""
    code = ord(char)
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
    forms = [
        re.escape(char),
        r"\\+" + re.escape(char),  # backslash-escaped, once or repeatedly: JSON's optional \/ and worse
        "".join(r"\\+u" + _hex(unit, 4) for unit in units),  # JSON / JavaScript unicode escapes
        "".join("%(?:25)*" + _hex(byte, 2) for byte in char.encode()),  # URL encoding, also double-encoded
        f"&#0*{code};", f"&#[xX]0*{_hex(code, 1)};",  # HTML numeric entities
    ]
    if char in _HTML_NAMED:
        forms.append(re.escape(_HTML_NAMED[char]))
    if char == " ":
        forms.append(r"\+")  # form encoding
    return "(?:" + "|".join(forms) + ")"


@functools.lru_cache(maxsize=256)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    return re.compile("".join(_char_pattern(c) for c in secret))


def base64_cores(secret: str) -> list[str]:
    """The parts of base64 text that encode `secret` wherever it sits in the encoded bytes (alone, or inside
    `user:secret` as HTTP Basic auth writes it): one core per byte offset modulo 3, standard and URL-safe."""
    data = secret.encode()
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        first_group = -(-offset // 3)  # the first 3-byte group made of secret bytes only
        last_group = (offset + len(data)) // 3  # groups before this one are complete
        core = encoded[4 * first_group: 4 * last_group]
        if len(core) >= BASE64_CORE_MIN:
            cores.update({core, core.replace("+", "-").replace("/", "_")})
    return sorted(cores, key=len, reverse=True)


def redact(text: str, secrets: Iterable[Optional[str]]) -> str:
    """`text` with every known secret (in any escaping or encoding) and anything after `Bearer ` replaced."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = _secret_pattern(secret).sub(REDACTED, text)
        for core in base64_cores(secret):
            text = text.replace(core, REDACTED)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def redact_value(value: Any, secrets: Iterable[Optional[str]]) -> Any:
    """A JSON-like value with `redact` applied to every string in it (keys included)."""
    known = [s for s in secrets if s]
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, Mapping):
        return {redact(str(k), known): redact_value(v, known) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, known) for v in value]
    return value


def shorten(text: str, limit: int = SNIPPET_CHARS) -> str:
    """One line, at most `limit` characters: enough to recognize a server's message in an error."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Timeout:
    """Seconds to open a connection, and to wait for each read of the answer."""

    connect: float = 5.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts AND by total seconds (waits included)."""

    attempts: int = 4
    first_wait: float = 0.5
    max_wait: float = 8.0
    budget: float = 60.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): half to full of the doubled base."""
        base = min(self.max_wait, self.first_wait * (2 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)


# --------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class HttpResponse:
    """A 2xx answer, already read and redacted. Deliberately not requests.Response: that one keeps the
    prepared request, Authorization header included, and would carry the token wherever it travels."""

    status: int
    text: str
    data: Any  # parsed JSON, or None when the body is not JSON
    content_type: str = ""
    location: str = ""  # where a redirect points (scheme and host only)

    def snippet(self) -> str:
        return shorten(self.text) if self.text.strip() else "(empty body)"

    @property
    def is_json(self) -> bool:
        return self.data is not None

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


class HttpError(Exception):
    """A call that did not succeed. `str()` is the message; its first line says what failed and how.

    kind: "status" (the server answered non-2xx), "not-json" (a 2xx whose body is not the API's JSON: a proxy or
    login page, most likely), "refused" (no connection could be opened), "connect-timeout", "read-timeout",
    "dropped" (connection lost before a full answer), "tls", "config".
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        kind: str,
        status: Optional[int] = None,
        server_message: str = "",
        data: Any = None,
        attempts: int = 1,
        uncertain_attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.kind = kind
        self.status = status
        self.server_message = server_message
        self.data = data
        self.attempts = attempts
        self.uncertain_attempts = uncertain_attempts

    @property
    def maybe_processed(self) -> bool:
        """True when some attempt may have reached the server's application without us seeing the answer."""
        return self.uncertain_attempts > 0

    @property
    def from_api(self) -> bool:
        """True when the answer is the API's own JSON error (not a proxy's page, not a transport failure)."""
        return self.kind == "status" and self.data is not None

    def names(self, value: str) -> bool:
        """True when the API's own error body mentions `value` (e.g. which model ID it does not know)."""
        return self.from_api and bool(value) and value in json.dumps(self.data)


def server_message(data: Any, text: str) -> str:
    """The server's own words: JSON `message`, `error` or `detail`, else a short snippet of the body."""
    if isinstance(data, Mapping):
        for key in ("message", "error", "detail", "details", "errors"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return shorten(value)
            if isinstance(value, Mapping):
                inner = server_message(value, "")
                if inner:
                    return inner
            if isinstance(value, list) and value:
                return shorten(json.dumps(value))
    return shorten(text) if text.strip() else "(empty body)"


# ------------------------------------------------------------------------------------ transport errors
# Kinds after which the request certainly never reached the server: safe to repeat even a create.
NOT_SENT = frozenset({"refused", "connect-timeout"})
# Kinds after which the server may have acted without our seeing the answer.
UNCERTAIN = frozenset({"read-timeout", "dropped"})


def _transport_kind(exc: requests.RequestException) -> str:
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return "config"
    if isinstance(exc, requests.exceptions.ConnectTimeout):  # before ConnectionError: it is both
        return "connect-timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read-timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        # urllib3 reports "could not open the connection" (refused, unreachable, DNS) as NewConnectionError
        # inside MaxRetryError; anything else (RemoteDisconnected, reset mid-answer) came after sending.
        if isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError):
            return "refused"
        return "dropped"
    return "dropped"  # ChunkedEncodingError and the like: the answer broke off, the request was sent


def _connect_reason(exc: requests.RequestException) -> str:
    """'Connection refused' / 'Name or service not known', without object reprs or URLs."""
    text = str(exc.args[0].reason) if exc.args and isinstance(exc.args[0], MaxRetryError) else str(exc)
    marker = "Failed to establish a new connection: "
    text = text.split(marker, 1)[1] if marker in text else text
    return shorten(re.sub(r"\[Errno -?\d+\]\s*", "", text).rstrip(")"), 120)


# --------------------------------------------------------------------------------------------- client
class JsonClient:
    """JSON requests against one base URL with one set of headers. Not pickled into providers: build one
    per provider call, from the connection read in `configure()` or from the environment."""

    def __init__(
        self,
        service: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        secrets: Iterable[Optional[str]] = (),
        timeout: Timeout = Timeout(),
        retry: RetryPolicy = RetryPolicy(),
        hints: Optional[Mapping[int, str]] = None,
    ) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{service} URL is not an http(s) URL with a host: set a base URL like "
                             f"https://api.example.com (got {shorten(redact(base_url or '', secrets), 80)!r})")
        self.service = service
        self.host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._base = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "kindo-models", **headers}
        self._secrets = [s for s in secrets if s] + _header_secrets(headers)
        self.timeout = timeout
        self.retry = retry
        self.hints = dict(hints or {})
        self._session: Optional[requests.Session] = None

    def __repr__(self) -> str:  # never the headers
        return f"JsonClient({self.service!r}, host={self.host!r})"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> "JsonClient":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- public calls
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: Optional[bool] = None,
        secrets: Iterable[Optional[str]] = (),
        empty_ok: bool = False,
    ) -> HttpResponse:
        """Send, retrying where safe; return the 2xx JSON answer or raise HttpError.

        `idempotent` defaults from the method (GET/HEAD/PUT/DELETE/OPTIONS). `secrets` adds values to
        scrub from errors for this call (e.g. API keys inside the body that a server might echo). `empty_ok`:
        this call's API answers success with an empty body; any other non-JSON 2xx is still an error."""
        method = method.upper()
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        known = [*self._secrets, *(s for s in secrets if s)]
        payload = None if body is None else json.dumps(body, allow_nan=False).encode()
        started = time.monotonic()
        uncertain = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._send(method, path, payload, fresh=not idempotent)
            except requests.RequestException as exc:
                kind = _transport_kind(exc)
                uncertain += kind in UNCERTAIN
                retry = kind in NOT_SENT or (idempotent and kind in UNCERTAIN)
                if retry and self._backoff(attempt, started, None):
                    continue
                raise self._transport_error(method, path, kind, exc, attempt, uncertain, idempotent, known) from None
            response = _read(answer, known)
            if 200 <= response.status < 300:
                if response.is_json or (empty_ok and response.is_empty):
                    return response
                uncertain += not idempotent  # a processed request may hide behind a broken answer
                raise self._not_json_error(method, path, response, attempt, uncertain, known)
            if self._status_retryable(response, idempotent) and self._backoff(
                    attempt, started, answer.headers.get("Retry-After")):
                continue
            raise self._status_error(method, path, response, attempt, uncertain, known)

    def post(self, path: str, body: Any, *, idempotent: bool = False,
             secrets: Iterable[Optional[str]] = (), empty_ok: bool = False) -> HttpResponse:
        return self.request("POST", path, body, idempotent=idempotent, secrets=secrets, empty_ok=empty_ok)

    def get(self, path: str) -> HttpResponse:
        return self.request("GET", path)

    # -- internals
    def _send(self, method: str, path: str, payload: Optional[bytes], fresh: bool) -> requests.Response:
        # A non-idempotent call gets a brand-new connection: on a pooled keep-alive connection that the
        # server closed meanwhile, the failure looks exactly like a lost answer, and could not be retried.
        if fresh:
            with requests.Session() as session:
                return self._send_with(session, method, path, payload)
        if self._session is None:
            self._session = requests.Session()
        return self._send_with(self._session, method, path, payload)

    def _send_with(self, session: requests.Session, method: str, path: str,
                   payload: Optional[bytes]) -> requests.Response:
        answer = session.request(method, self._base + path, data=payload, headers=self._headers,
                                 timeout=self.timeout.as_tuple(), allow_redirects=False)
        answer.content  # read it all now, inside the timeout, so the connection can be released
        answer.close()
        return answer

    @staticmethod
    def _status_retryable(response: HttpResponse, idempotent: bool) -> bool:
        if idempotent:
            return response.status >= 500 or response.status == 429
        return response.status in UNPROCESSED_STATUSES and not response.text.strip()

    def _backoff(self, attempt: int, started: float, retry_after: Optional[str]) -> bool:
        """Wait before the next attempt; False when attempts or the time budget are spent."""
        if attempt >= self.retry.attempts:
            return False
        wait = self.retry.wait(attempt)
        if retry_after and retry_after.strip().isdigit():
            wait = max(wait, min(float(retry_after), self.retry.max_wait))
        if time.monotonic() - started + wait > self.retry.budget:
            return False
        _sleep(wait)
        return True

    def _not_json_error(self, method: str, path: str, response: HttpResponse, attempts: int,
                        uncertain: int, known: list[str]) -> HttpError:
        what = "an empty body" if response.is_empty else f"a {_body_kind(response)} that is not JSON"
        message = (f"{self.service} {method} {path} failed: HTTP {response.status} with {what}, not the "
                   f"{self.service} API's JSON. Something in front of the API answered instead, most likely a proxy "
                   f"or a login (SSO) page: point the URL at the API itself, or let this machine through that proxy."
                   f"\nThe answer began: {response.snippet()}")
        return HttpError(redact(message, known), method=method, path=path, kind="not-json", status=response.status,
                         server_message=response.snippet(), attempts=attempts, uncertain_attempts=uncertain)

    def _status_error(self, method: str, path: str, response: HttpResponse, attempts: int,
                      uncertain: int, known: list[str]) -> HttpError:
        said = server_message(response.data, response.text)
        hint = self.hints.get(response.status, "")
        if 300 <= response.status < 400:
            hint = (f"The API redirected to {response.location or 'another address'}: a login (SSO) proxy in front "
                    "of the API, most likely; point the URL at the API itself.")
        elif not response.is_json and not response.is_empty and not hint:
            hint = (f"The answer is a {_body_kind(response)}, not the {self.service} API's JSON: check that the URL "
                    "points at the API itself and not at a proxy in front of it.")
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        message = f"{self.service} {method} {path} failed: HTTP {response.status}{tries}: {said}"
        if hint:
            message += f". {hint}"
        return HttpError(redact(message, known), method=method, path=path, kind="status",
                         status=response.status, server_message=said, data=response.data,
                         attempts=attempts, uncertain_attempts=uncertain)

    def _transport_error(self, method: str, path: str, kind: str, exc: requests.RequestException,
                         attempts: int, uncertain: int, idempotent: bool, known: list[str]) -> HttpError:
        what = {
            "refused": f"cannot connect to {self.host} ({_connect_reason(exc)})",
            "connect-timeout": f"no connection to {self.host} within {self.timeout.connect:g}s",
            "read-timeout": f"no answer from {self.host} within {self.timeout.read:g}s (read timeout)",
            "dropped": f"{self.host} closed the connection before a complete answer",
            "tls": f"TLS handshake with {self.host} failed ({shorten(str(exc), 120)})",
            "config": "the base URL is not usable",
        }[kind]
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        if kind in NOT_SENT:
            advice = "Check the API URL and that the server is reachable from this machine."
        elif kind in UNCERTAIN and not idempotent:
            advice = ("The server may have processed the request anyway; it was NOT repeated, because "
                      "repeating this call is not safe.")
        elif kind in UNCERTAIN:
            advice = "The server is slow or unreachable: retry later, or raise the read timeout."
        else:
            advice = "Check the API URL and its certificate."
        message = f"{self.service} {method} {path} failed: {what}{tries}. {advice}"
        return HttpError(redact(message, known), method=method, path=path, kind=kind,
                         attempts=attempts, uncertain_attempts=uncertain)


def _header_secrets(headers: Mapping[str, str]) -> list[str]:
    """Credentials in headers, with and without their scheme word (`Bearer xyz` -> also `xyz`)."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in ("authorization", "x-api-key", "api-key", "x-auth-token") and value:
            found.append(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.isalpha():
                found.append(credential)
    return found


def _body_kind(response: HttpResponse) -> str:
    """'HTML page' / 'text/plain body': what a non-JSON answer looks like, for error messages."""
    if "html" in response.content_type or response.text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        return "HTML page"
    return f"{response.content_type or 'untyped'} body"


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else ""


def _read(answer: requests.Response, secrets: list[str]) -> HttpResponse:
    text = redact(answer.content.decode(answer.encoding or "utf-8", errors="replace"), secrets)
    try:
        data = redact_value(json.loads(answer.content), secrets) if answer.content.strip() else None
    except ValueError:
        data = None
    content_type = (answer.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return HttpResponse(status=answer.status_code, text=text, data=data, content_type=content_type,
                        location=redact(_origin(answer.headers.get("Location", "")), secrets))
