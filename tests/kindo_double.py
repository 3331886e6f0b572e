"""A test double of Kindo's admin model API, implementing ../shared/reference/kindo-admin-api.md EXACTLY.

No friendlier than the contract: Bearer auth (401 on a missing or wrong key), JSON bodies only, orgId and
userId required in every body (400), `model/new` NOT idempotent (every call registers a new model, and a
repeated litellmModelName is accepted, as LiteLLM accepts it; with `unique_names=True` it is refused instead,
the documented "unique routing key" that Kindo MAY enforce), `delete-with-replacement` answering 404 when
either ID is unknown (the body naming the unknown IDs, or with `not_found_shape="opaque"` naming none: the
contract documents no body), 400 when the replacement is the model itself, and refusing (4xx, body naming the
flag keys) while Unleash flags still reference the model. Which flags reference a model is a pluggable callable
`flags_referencing(model_id) -> list[str]`: an `InMemoryFlags` here, the real Unleash in integration tests.

It answers with the new ID in one configurable shape of the four the contract assumes, records every
request (secrets in bodies redacted, never the Authorization header) so tests can count writes, and
injects faults into the next N requests. Not processed: 401, 500, 502/503/504 without a body, a 200 HTML login
page (a proxy in front of Kindo), a 401 that echoes the presented key in every escaping a server might use.
Processed, then misbehaving: a garbage 2xx body, an empty 2xx body, a 500 with a body, an answer slower than
the client's timeout, a dropped connection (the lost-response cases). Loopback only, ephemeral port, one
thread per connection.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote

MODEL_NEW = "/internal/openapi/admin/model/new"
MODEL_DELETE = "/internal/openapi/admin/model/delete-with-replacement"
PATHS = (MODEL_NEW, MODEL_DELETE)
ID_SHAPES = ("id", "modelId", "model.id", "data.id", "none")  # "none": a 2xx without any ID (a broken answer)
# Faults that answer without processing, and faults that process the request and then misbehave.
UNPROCESSED_FAULTS = ("401", "500", "502", "503", "504", "html", "echo-401")
PROCESSED_FAULTS = ("garbage", "empty", "500-after", "slow", "drop")
NOT_FOUND_SHAPES = ("ids", "opaque")
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in to continue</body></html>"
FAULTS = UNPROCESSED_FAULTS + PROCESSED_FAULTS
MODEL_TYPES = ("CHAT", "INTERNAL")
SECRET_KEY = re.compile(r"(?i)(key|secret|token|password|credential)")
DEFAULT_PROVIDERS = ("Anthropic", "OpenAI", "Azure OpenAI", "Deepgram", "Google", "Self-Hosted")

FlagLookup = Callable[[str], list[str]]


def no_flags(_model_id: str) -> list[str]:
    return []


class InMemoryFlags:
    """A stand-in for Unleash: flag key -> model IDs its variants carry."""

    def __init__(self) -> None:
        self.flags: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def set(self, flag: str, model_ids: list[str]) -> None:
        with self._lock:
            self.flags[flag] = list(model_ids)

    def __call__(self, model_id: str) -> list[str]:
        with self._lock:
            return sorted(flag for flag, ids in self.flags.items() if model_id in ids)


@dataclass
class Recorded:
    method: str
    path: str
    body: Any  # parsed JSON with secret values replaced by "***", or the raw text when not JSON
    status: Optional[int]  # None when the connection was dropped without an answer
    authorized: bool
    fault: Optional[str] = None


@dataclass
class _Fault:
    kind: str
    path: Optional[str]


@dataclass
class _Answer:
    status: int
    body: Any = None  # dict -> JSON; bytes -> raw; None -> no body at all
    content_type: str = "application/json"


def redact_body(value: Any, under_secret: bool = False) -> Any:
    """Request bodies as recorded: every value under a key that names a credential becomes ***."""
    if isinstance(value, dict):
        return {k: redact_body(v, under_secret or bool(SECRET_KEY.search(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_body(v, under_secret) for v in value]
    return "***" if under_secret and value is not None else value


@dataclass
class KindoDouble:
    api_key: str = "test-um-internal-api-key-0123456789"
    id_shape: str = "id"
    flags_referencing: FlagLookup = no_flags
    refusal_status: int = 409
    refusal_shape: str = "list"  # "list": {"message", "flags": [...]}; "message": the keys only inside the text
    slow_seconds: float = 2.0
    success_status: int = 200
    unique_names: bool = False  # refuse a second model with the same litellmModelName
    duplicate_status: int = 409
    not_found_shape: str = "ids"

    models: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    deletions: list[tuple[str, str]] = field(default_factory=list, init=False)  # (deleted, replacement)
    providers: set[str] = field(default_factory=lambda: set(DEFAULT_PROVIDERS), init=False)
    created_providers: list[str] = field(default_factory=list, init=False)  # the documented silent pitfall
    requests: list[Recorded] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.id_shape not in ID_SHAPES:
            raise ValueError(f"id_shape must be one of {ID_SHAPES}")
        if self.not_found_shape not in NOT_FOUND_SHAPES:
            raise ValueError(f"not_found_shape must be one of {NOT_FOUND_SHAPES}")
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self), bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.server_bind()  # the port is ours from now on; connections are refused until listen()
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listen(self) -> "KindoDouble":
        """Accept connections (until then, connecting is refused: the port is bound but not listening)."""
        if self._thread is None:
            self._server.server_activate()
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"kindo-double-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" answers
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    # -- test controls
    def inject(self, kind: str, times: int = 1, path: Optional[str] = None) -> None:
        """The next `times` requests (to `path`, if given) get fault `kind` (one of FAULTS)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._faults.extend(_Fault(kind, path) for _ in range(times))

    def writes(self, path: Optional[str] = None) -> int:
        """How many write (POST) requests reached the double, answered or not."""
        return sum(1 for r in self.requests if r.method == "POST" and (path is None or r.path == path))

    def models_named(self, litellm_model_name: str) -> list[str]:
        with self._lock:
            return [i for i, m in self.models.items() if m.get("litellmModelName") == litellm_model_name]

    def add_model(self, litellm_model_name: str, **fields: Any) -> str:
        """Seed a model directly (as if registered earlier); returns its ID."""
        model_id = str(uuid.uuid4())
        with self._lock:
            self.models[model_id] = {"id": model_id, "litellmModelName": litellm_model_name, **fields}
        return model_id

    # -- request processing (called from handler threads)
    def _take_fault(self, path: str) -> Optional[str]:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path == path:
                    del self._faults[i]
                    return fault.kind
        return None

    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def _process(self, method: str, path: str, headers: Any, raw: bytes) -> _Answer:
        if method != "POST" or path not in PATHS:
            return _Answer(404, {"message": f"Cannot {method} {path}"})
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return _Answer(401, {"message": "Unauthorized"})
        if not (headers.get("Content-Type") or "").split(";")[0].strip().lower() == "application/json":
            return _Answer(400, {"message": "Content-Type must be application/json"})
        try:
            body = json.loads(raw or b"")
        except ValueError:
            return _Answer(400, {"message": "Body is not valid JSON"})
        if not isinstance(body, dict):
            return _Answer(400, {"message": "Body must be a JSON object"})
        missing = [k for k in ("orgId", "userId") if not isinstance(body.get(k), str) or not body[k]]
        if missing:
            return _Answer(400, {"message": f"{' and '.join(missing)} required"})
        return self._new(body) if path == MODEL_NEW else self._delete(body)

    def _new(self, body: dict[str, Any]) -> _Answer:
        for key in ("displayName", "modelProviderDisplayName", "litellmModelName"):
            if not isinstance(body.get(key), str) or not body[key]:
                return _Answer(400, {"message": f"{key} is required"})
        if body.get("type") not in MODEL_TYPES:
            return _Answer(400, {"message": "type must be one of CHAT, INTERNAL"})
        window = body.get("contextWindow")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
            return _Answer(400, {"message": "contextWindow must be an integer"})
        for key in ("metadata", "model_info"):
            if key in body and not isinstance(body[key], dict):
                return _Answer(400, {"message": f"{key} must be an object"})
        params = body.get("litellmParams")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str) or not params["model"]:
            return _Answer(400, {"message": "litellmParams.model is required"})
        model_id = str(uuid.uuid4())
        with self._lock:
            name = body["litellmModelName"]
            if self.unique_names and any(m.get("litellmModelName") == name for m in self.models.values()):
                return _Answer(self.duplicate_status, {"message": f"A model with litellmModelName '{name}' already exists"})
            provider = body["modelProviderDisplayName"]
            if provider not in self.providers:  # documented: a new ModelProvider row, silently
                self.providers.add(provider)
                self.created_providers.append(provider)
            self.models[model_id] = {"id": model_id, **body}
        shape = {"id": {"id": model_id}, "modelId": {"modelId": model_id}, "model.id": {"model": {"id": model_id}},
                 "data.id": {"data": {"id": model_id}}, "none": {"success": True}}[self.id_shape]
        return _Answer(self.success_status, shape)

    def _delete(self, body: dict[str, Any]) -> _Answer:
        deleting, replacement = body.get("deletingModelId"), body.get("replacementModelId")
        for key, value in (("deletingModelId", deleting), ("replacementModelId", replacement)):
            if not isinstance(value, str) or not value:
                return _Answer(400, {"message": f"{key} is required"})
        if deleting == replacement:
            return _Answer(400, {"message": "replacementModelId must be a different model than deletingModelId"})
        with self._lock:
            unknown = [i for i in (deleting, replacement) if i not in self.models]
        if unknown:
            said = f"Model not found: {', '.join(unknown)}" if self.not_found_shape == "ids" else "Model not found"
            return _Answer(404, {"message": said})
        flags = list(self.flags_referencing(deleting))
        if flags:
            text = (f"Model {deleting} is still referenced by Unleash feature flags: {', '.join(flags)}. "
                    "Update these feature flag variants before deleting the model.")
            refusal = {"message": text, "flags": flags} if self.refusal_shape == "list" else {"message": text}
            return _Answer(self.refusal_status, refusal)
        with self._lock:
            if deleting not in self.models or replacement not in self.models:  # raced with another delete
                return _Answer(404, {"message": "Model not found"})
            del self.models[deleting]
            self.deletions.append((deleting, replacement))
        return _Answer(self.success_status, {"success": True})


def _handler_for(double: KindoDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the load balancer in front of a real Kindo

        def log_message(self, *_args: Any) -> None:  # quiet tests
            pass

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                recorded_body: Any = redact_body(json.loads(raw)) if raw else None
            except ValueError:
                recorded_body = raw.decode(errors="replace")[:200]
            authorized = self.headers.get("Authorization") == f"Bearer {double.api_key}"
            fault = double._take_fault(path)

            if fault in UNPROCESSED_FAULTS:
                answer = _unprocessed(fault, self.headers.get("Authorization") or "")
            else:
                answer = double._process(self.command, path, self.headers, raw)
                if fault == "garbage":
                    answer = _Answer(200, b"<html><body>upstream said: \x00\xff oops</body></html>", "text/html")
                elif fault == "empty":
                    answer = _Answer(200, b"")
                elif fault == "500-after":
                    answer = _Answer(500, {"message": "Internal server error"})
            if fault == "drop":
                double._record(Recorded(self.command, path, recorded_body, None, authorized, fault))
                self.close_connection = True  # processed, and no answer at all: the lost response
                return
            double._record(Recorded(self.command, path, recorded_body, answer.status, authorized, fault))
            if fault == "slow":
                double._stopping.wait(double.slow_seconds)
            self._answer(answer)

        def _answer(self, answer: _Answer) -> None:
            if answer.body is None:
                payload = b""
            elif isinstance(answer.body, bytes):
                payload = answer.body
            else:
                payload = json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                if payload:
                    self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up (timeout): nothing to do

        do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


def _unprocessed(fault: str, authorization: str) -> _Answer:
    """The answer of a fault that never reaches the API's logic."""
    if fault == "401":
        return _Answer(401, {"message": "Unauthorized"})
    if fault == "500":
        return _Answer(500, {"message": "Internal server error"})
    if fault == "html":
        return _Answer(200, LOGIN_PAGE, "text/html; charset=utf-8")
    if fault == "echo-401":
        return _Answer(401, echo_key_body(authorization.partition(" ")[2]))
    return _Answer(int(fault))  # 502/503/504 without a body


def echo_key_body(key: str) -> bytes:
    """A 401 body that repeats the presented key in every escaping seen from real servers: JSON with `/` escaped
    as `\\/` (PHP, some Java), all-unicode escapes, URL encoding, and base64 of `user:key` (HTTP Basic)."""
    escaped = json.dumps(key)[1:-1].replace("/", "\\/")
    unicode_escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    basic = base64.b64encode(f"admin:{key}".encode()).decode()
    text = (f'{{"message": "Invalid API key {escaped}", "detail": "key={unicode_escaped}", '
            f'"hint": "{quote(key, safe="")}", "basic": "{basic}"}}')
    return text.encode()


@contextlib.contextmanager
def running_double(**settings: Any) -> Iterator[KindoDouble]:
    """A listening double for the duration of the block; stopped (port released) afterwards."""
    double = KindoDouble(**settings).listen()
    try:
        yield double
    finally:
        double.stop()
