"""The runbook's endpoint checks as code: is an OpenAI-compatible endpoint ready for Kindo?

Sources: seeds/ai-model-deployment-guide.txt "Verifying Your Model Before Connecting to Kindo" (steps 1-4) and
"Networking and DNS"; seeds/prepare-ai-models.txt "Verify: Is the endpoint reachable from the cluster?".

Checks, in order (a failed dns, tcp or models check skips the rest: they could only repeat its failure):
  dns             the host name resolves                           else: the name does not resolve
  tcp             a TCP connection to host:port opens              else: refused / timeout / no route
  models          GET /models lists the served model name          else: --served-model-name differs from litellmModelName
  completion      "What is 2 + 2?" finishes with stop and says 4   else: garbled (dtype, weights, VRAM)
  tool-calling    get_weather is called with a location            else: --tool-call-parser missing or wrong
  context-length  a prompt near the max model length is accepted   else: --max-model-len too low or GPU memory too small
  embeddings      /embeddings returns vectors of one dimension

Standalone on purpose: the Python standard library only, nothing of the project. The in-cluster gate ships this
one file in a ConfigMap and runs it as a script on a stock python image (`python endpoint_checker.py --base-url URL
--model NAME ...`, see `main`), so the Job installs nothing and works in clusters without internet egress;
`python -m planner verify` builds the targets from a plan (planner/targets.py) and runs the same functions.
The API key is never printed: Target hides it from repr, and every text a check produces is scrubbed of it,
including whatever a server echoes back.
"""

from __future__ import annotations

import argparse
import difflib
import http.client
import ipaddress
import json
import math
import os
import re
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, TypeVar
from urllib.parse import urlsplit

Status = Literal["pass", "fail", "skip"]
PASS: Status = "pass"
FAIL: Status = "fail"
SKIP: Status = "skip"
CHECKS = ("dns", "tcp", "models", "completion", "tool-calling", "context-length", "embeddings", "transcription")
Kind = Literal["chat", "embeddings", "transcription"]
KINDS: tuple[str, ...] = ("chat", "embeddings", "transcription")
T = TypeVar("T")

# ---------------------------------------------------------------------------------------------- the requests
# Runbook step 2, verbatim.
COMPLETION_PROMPT = "What is 2 + 2? Reply with just the number."
COMPLETION_MAX_TOKENS = 32
# Runbook step 3, verbatim (deployment guide's tool definition).
TOOL_PROMPT = "What is the weather in San Francisco?"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "City name"}},
            "required": ["location"],
        },
    },
}
TOOL_MAX_TOKENS = 256
# A reasoning model (vLLM --reasoning-parser) thinks before it answers: the runbook's 32 tokens end inside its
# reasoning with finish_reason "length" and no answer, failing a healthy server. 2048 lets a short think finish.
REASONING_MAX_TOKENS = 2048
PROMPT_ROOM = 256  # tokens kept for the short prompts of steps 2 and 3 (tool definition and template included)
# "4", "4.", "2 + 2 = 4" or "four"; not "14" or "42".
ANSWER_FOUR = re.compile(r"(?<![\d.])4(?!\d)|\bfour\b", re.IGNORECASE)
# Two inputs of different lengths: an embedding's dimension must not depend on its input.
EMBEDDING_INPUTS = ("Kindo verifies this endpoint.", "The quick brown fox jumps over the lazy dog, twice, before Kindo indexes it.")

# ---------------------------------------------------------------------------------------------- context size
# Runbook step 4's filler sentence (45 characters) and closing instruction.
FILLER_SENTENCE = "The quick brown fox jumps over the lazy dog. "
FILLER_INSTRUCTION = "\n\nSummarize the above text in one sentence."
# Tokens per FILLER_SENTENCE when the server cannot count them (no /tokenize). Published tokenizations, not
# measured here (this project ships no tokenizer, hence the preference for the server's): byte-level BPE
# vocabularies of 100k+ entries (cl100k, o200k of gpt-oss, Llama 3, Qwen 2/3, DeepSeek) give 10, one per word
# plus the period, the trailing space joining the next " The"; 32k SentencePiece vocabularies (Llama 2,
# Mistral 7B) and XLM-R's (BGE-M3) split "fox", "jumps" or "lazy" and give about 12. Sizing with the upper
# bound 13 errs towards sending FEWER tokens than asked: a healthy server is never failed by an overshoot, at
# the price of testing about 10/13 of the target on large vocabularies. The report says which it was, and the
# server's own usage.prompt_tokens, when it sends one, replaces the estimate. The runbook's blind "~4 chars
# per token" (11.25 tokens for this sentence) is neither bound: it overshoots on 12-token vocabularies.
SENTENCE_TOKENS_UPPER = 13
SENTENCE_TOKENS_LOWER = 10
INSTRUCTION_TOKENS_UPPER = 16  # FILLER_INSTRUCTION is 9-11 tokens; BOS/EOS included
# Tokens a chat template adds around one user message (role headers, BOS, gpt-oss's harmony preamble of ~60
# tokens). Neither the estimate nor /tokenize's plain "prompt" mode counts them, so they are kept free.
TEMPLATE_RESERVE = 128
SPECIAL_TOKENS_RESERVE = 8  # an embedding input gets no template, only BOS/CLS and EOS/SEP
CONTEXT_MAX_TOKENS = 16  # only acceptance matters; a long answer would only cost time
MIN_CONTEXT_BUDGET = 64
TOKENIZER_PROBE = 64  # sentences per probe; two probes measure tokens per sentence without BOS/EOS

# A short clip of speech ("Kindo verifies this endpoint.", 1.9 s, 16 kHz mu-law WAV, made locally with espeak-ng by
# scripts/make_transcription_clip.py), shipped beside this file and in the check Job's ConfigMap.
CLIP_NAME = "transcription_clip.wav"
TRANSCRIPTION_LANGUAGE = "en"  # a known language skips Whisper's language-detection pass
MAX_BODY_BYTES = 64 * 1024 * 1024  # /tokenize echoes every token id: ~8 bytes per token of a 1M-token prompt
SNIPPET = 160

# ---------------------------------------------------------------------------------------------- diagnoses
# The runbook's words for each failure, with what to do.
DIAG_DNS = ("Name resolution failed: DNS is not configured for this hostname. Add DNS entries or use an IP "
            "address; verify with nslookup from inside a pod (runbook: Networking and DNS).")
DIAG_DNS_IN_CLUSTER = ("{host} is an in-cluster Service name: it resolves only inside the cluster. Run the check from "
                       "a pod (the in-cluster gate does), or `kubectl port-forward -n {namespace} svc/{service} {port}` "
                       "and pass --base-url http://127.0.0.1:{port}/v1.")
DIAG_REFUSED = ("Connection refused: the inference server is not running or the port is wrong. Verify the server is "
                "up: curl <host>:<port>/v1/models (runbook: Common DNS Issues).")
DIAG_CONNECT_TIMEOUT = ("No answer to the connection: a firewall, security group or NetworkPolicy drops the traffic "
                        "between the cluster and the endpoint (runbook: works from your laptop, fails from Kindo: split "
                        "DNS or firewall rules).")
DIAG_UNREACHABLE = "No route to the host: the cluster's network cannot reach it (subnet routes, VPC peering, firewall)."
DIAG_SERVED_NAME = ("--served-model-name differs from litellmModelName: the server serves {served}; Kindo asks for "
                    "{model!r} and LiteLLM gets a 404. Keep both strings identical.")
DIAG_GARBLED = ("The answer is garbled or wrong: the model may be misconfigured (wrong dtype, corrupted weights, or "
                "insufficient VRAM), or its chat template is wrong (runbook step 2).")
DIAG_LENGTH = ("The answer did not finish within max_tokens {max_tokens}: a reasoning model needs its reasoning parser "
               "(--reasoning-parser) and a larger budget; any other model that rambles is misconfigured (wrong chat "
               "template, dtype or weights; runbook step 2).")
DIAG_TOOL_PARSER = ("--tool-call-parser missing or wrong: the model does not return a tool call the server parses. Set "
                    "--tool-call-parser for this model family together with --enable-auto-tool-choice (runbook step 3); "
                    "agents cannot use tools otherwise.")
DIAG_CONTEXT = ("--max-model-len too low or GPU memory too small (runbook step 4): raise --max-model-len to the "
                "contextWindow Kindo is told, or give the server more GPU memory (a larger GPU, tensor parallelism, "
                "fp8 KV cache); else lower contextWindow to what the server holds.")
DIAG_NOT_TRANSCRIPTION = ("No speech-to-text behind this name: vLLM answers {path} only for a transcription model "
                          "(a chat or embedding model gets 404 Not Found in recent releases, 400 'does not support "
                          "Transcriptions API' in older ones). Serve a Whisper model (e.g. openai/whisper-large-v3-turbo) "
                          "for this entry, or route AUDIO_TRANSCRIPTION to one.")
DIAG_AUDIO_LIBRARIES = ("The server cannot decode audio: its image lacks vLLM's audio extra (`vllm[audio]`; the stock "
                        "vllm/vllm-openai image has shipped without it, vllm-project/vllm#13912). Use an image built "
                        "with it.")
DIAG_EMPTY_TRANSCRIPT = ("The model returned no text for a clip of clear speech: the weights behind this name are not "
                         "a working speech-to-text model (wrong checkpoint, or corrupted weights).")
DIAG_EMBEDDINGS = ("The server does not return embeddings for this model: serve it as an embedding (pooling) model "
                   "and register it with metadataType Embeddings only if it is one.")
DIAG_AUTH = ("The server rejected the API key (HTTP {status}): pass the server's key with --api-key or the VLLM_API_KEY "
             "environment variable (the model's ${{ENV}} reference for a cloud provider).")
DIAG_READ_TIMEOUT = ("No complete answer within {seconds:g} s: the server is overloaded or the network unstable "
                     "(runbook: intermittent timeouts: check GPU utilization, scale replicas); a long prefill may need a "
                     "larger --timeout.")
DIAG_TLS = ("TLS failed: the certificate must be trusted by the cluster, or apiBase must use the right scheme "
            "(runbook: TLS configured if required).")
DIAG_NOT_OPENAI = ("The answer is not the OpenAI API's: the base URL must be the server's /v1 (http://host:8000/v1) on "
                   "an OpenAI-compatible server, with nothing in between that rewrites answers.")
DIAG_NOT_FOUND = ("No {path} at {base}: the base URL must end with the API's /v1 (http://host:8000/v1) on an "
                  "OpenAI-compatible server.")
DIAG_SERVER_ERROR = "The server failed (HTTP {status}): read the inference server's log (kubectl logs) for the cause."
DIAG_REDIRECT = "The server redirects to {location}: use that URL (scheme and path) as the base URL / apiBase."
DIAG_CONNECTION = "The connection failed: {reason}. Check that the server is up and reachable from here."
DIAG_REFUSED_REQUEST = ("The server refused the runbook's request (HTTP {status}): its message says why; an outdated "
                        "vLLM lacks parsers and fixes (runbook: use vLLM 0.6+, 0.8+ for Llama 4).")


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class CheckResult:
    check: str  # one of CHECKS
    status: Status
    detail: str  # what was observed
    diagnosis: str = ""  # on failure: the runbook's likely cause and what to do
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "diagnosis": self.diagnosis,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Target:
    """One endpoint to check. `apiKey` is never shown (repr=False) and never leaves in a report."""

    model: str  # the name the server is asked for (vLLM's --served-model-name)
    baseUrl: str  # OpenAI-compatible base, ending with /v1
    apiKey: str | None = field(default=None, repr=False)
    keySource: str = "none"  # where the key came from, for the report: "--api-key", "$VLLM_API_KEY", ...
    kind: Kind = "chat"
    toolCalling: bool = False
    maxModelLen: int | None = None  # None: the server's own max_model_len from /models, if it reports one
    reasoning: bool = False
    skipContext: str | None = None  # why the context-length check is not run, if it is not
    name: str | None = None  # litellmModelName when it differs from `model` (a cloud model's prefix)

    @property
    def label(self) -> str:
        return self.name or self.model


@dataclass(frozen=True)
class Skip:
    """A planned model that is not checked, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Options:
    connectTimeout: float = 5.0  # DNS lookup and TCP connect, each
    readTimeout: float = 60.0  # a whole HTTP answer (a 100k-token prefill takes seconds to tens of seconds)
    contextFraction: float = 0.9  # of the max model length, for the context-length request
    contextMaxTokens: int = CONTEXT_MAX_TOKENS
    clip: str | None = None  # the transcription check's audio file (default: the clip shipped beside the checker)

    def __post_init__(self) -> None:
        if not self.connectTimeout > 0 or not self.readTimeout > 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        if not 0 < self.contextFraction <= 1:
            raise ValueError(f"contextFraction must be in (0, 1], got {self.contextFraction}")
        if self.contextMaxTokens < 1:
            raise ValueError("contextMaxTokens must be at least 1")


@dataclass
class Report:
    """All checks of one model. `ok`: nothing failed (skips are fine)."""

    name: str
    model: str | None = None
    baseUrl: str | None = None
    keySource: str = "none"
    results: list[CheckResult] = field(default_factory=list)
    skipped: str | None = None  # why the whole model was not checked

    @property
    def ok(self) -> bool:
        return all(r.status != FAIL for r in self.results)

    def result(self, check: str) -> CheckResult:
        return next(r for r in self.results if r.check == check)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.name, "servedModel": self.model, "baseUrl": self.baseUrl, "keySource": self.keySource,
                "ok": self.ok, "skipped": self.skipped, "checks": [r.to_json() for r in self.results]}


@dataclass
class Summary:
    reports: list[Report]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.reports for c in r.results if c.status == status)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "passed": self.count(PASS), "failed": self.count(FAIL), "skipped": self.count(SKIP),
                "models": [r.to_json() for r in self.reports]}


# ---------------------------------------------------------------------------------------------- small helpers


def scrub(text: str, secret: str | None) -> str:
    """Text without the key, and without any bearer token a server echoed back."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"(?i)(bearer\s+)[^\s\"',}]+", r"\1***", text)


def shorten(text: str, limit: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def quoted(text: str, limit: int = 80) -> str:
    return repr(shorten(text, limit))


def split_base_url(base_url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; ValueError naming what is wrong."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base URL {base_url!r} is not an http(s) URL with a host, e.g. http://my-model:8000/v1")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"base URL {base_url!r} has an invalid port: {exc}") from None
    return parts.scheme, parts.hostname, port


def in_cluster_service(host: str) -> tuple[str, str] | None:
    """(service, namespace) when the host is a Kubernetes Service name that resolves only inside a cluster."""
    match = re.match(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?\.?$", host)
    return (match.group(1), match.group(2)) if match else None


def bounded(fn: Callable[[], T], seconds: float) -> tuple[Literal["ok", "error", "timeout"], T | BaseException | None]:
    """Run fn in a daemon thread for at most `seconds`: getaddrinfo (also inside a connect) takes no timeout, and
    a server that trickles bytes never trips a per-read timeout. An abandoned call ends with its own socket."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as a result
            box["error"] = exc

    worker = threading.Thread(target=run, name="verify-bounded", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        return "timeout", None
    if "error" in box:
        return "error", box["error"]
    return "ok", box.get("value")


# ---------------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    status: int | None = None  # None: no HTTP answer; `error` says why
    body: Any = None  # parsed JSON, None when the body is not JSON
    text: str = ""  # the body's first characters, for messages
    error: str | None = None
    kind: Literal["timeout", "tls", "connection", "too-large"] | None = None
    location: str | None = None  # of a redirect
    seconds: float = 0.0
    limit: float = 0.0  # the time bound that a timeout exceeded

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Client:
    """Time-bounded JSON requests to one OpenAI-compatible server, with the bearer key (http.client: one connection
    per request, no redirects followed, TLS verified against the system's CA store)."""

    def __init__(self, target: Target, options: Options) -> None:
        self.base = target.baseUrl.rstrip("/")
        # vLLM serves /tokenize at the server root, beside /v1.
        self.root = self.base[: -len("/v1")] if self.base.endswith("/v1") else self.base
        self.key = target.apiKey
        self.options = options

    @property
    def total(self) -> float:
        return self.options.connectTimeout + self.options.readTimeout

    def get(self, path: str) -> Reply:
        return self.request("GET", self.base + path)

    def post(self, path: str, body: dict[str, Any], root: bool = False) -> Reply:
        return self.request("POST", (self.root if root else self.base) + path, json.dumps(body).encode(),
                            "application/json")

    def post_form(self, path: str, fields: dict[str, str], file_field: str, filename: str, content: bytes) -> Reply:
        """A multipart/form-data POST (OpenAI's audio endpoints take the file this way)."""
        payload, content_type = multipart(fields, file_field, filename, content)
        return self.request("POST", self.base + path, payload, content_type)

    def request(self, method: str, url: str, payload: bytes | None = None, content_type: str = "") -> Reply:
        start = time.monotonic()
        # The worker bounds itself too (timeouts per read, a deadline between chunks); the thread is the hard bound.
        outcome, value = bounded(lambda: self._send(method, url, payload, content_type, start), self.total + 0.25)
        if outcome == "ok" and isinstance(value, Reply):
            return value
        seconds = time.monotonic() - start
        if outcome == "timeout":
            return Reply(error=f"no complete answer within {self.total:g} s", kind="timeout", seconds=seconds,
                         limit=self.total)
        return Reply(error=f"{type(value).__name__}: {value}", kind="connection", seconds=seconds)

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        timeout = self.options.connectTimeout
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        return conn, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _send(self, method: str, url: str, payload: bytes | None, content_type: str, start: float) -> Reply:
        headers = {"Accept": "application/json", "User-Agent": "kindo-models-endpoint-checker"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if payload is not None:
            headers["Content-Type"] = content_type
        conn, path = self._connection(url)
        try:
            try:
                conn.connect()
            except ssl.SSLError as exc:
                return Reply(error=f"TLS: {shorten(str(exc))}", kind="tls", seconds=time.monotonic() - start)
            except (socket.timeout, TimeoutError):
                return Reply(error=f"no connection within {self.options.connectTimeout:g} s", kind="timeout",
                             seconds=time.monotonic() - start, limit=self.options.connectTimeout)
            assert conn.sock is not None
            conn.sock.settimeout(self.options.readTimeout)
            return self._exchange(conn, method, path, payload, headers, start)
        except ssl.SSLError as exc:
            return Reply(error=f"TLS: {shorten(str(exc))}", kind="tls", seconds=time.monotonic() - start)
        except (socket.timeout, TimeoutError):
            return Reply(error=f"no answer within {self.options.readTimeout:g} s", kind="timeout",
                         seconds=time.monotonic() - start, limit=self.options.readTimeout)
        except (OSError, http.client.HTTPException) as exc:
            return Reply(error=connection_reason(exc), kind="connection", seconds=time.monotonic() - start)
        finally:
            conn.close()

    def _exchange(self, conn: http.client.HTTPConnection, method: str, path: str, payload: bytes | None,
                  headers: dict[str, str], start: float) -> Reply:
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = resp.read(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return Reply(resp.status, error=f"the answer is larger than {MAX_BODY_BYTES // 2**20} MiB",
                             kind="too-large", seconds=time.monotonic() - start)
            if time.monotonic() - start > self.total:
                return Reply(resp.status, error=f"no complete answer within {self.total:g} s",
                             kind="timeout", seconds=time.monotonic() - start, limit=self.total)
            chunks.append(chunk)
        raw = b"".join(chunks)
        if self.key:
            # Before anything is cut or parsed: a snippet cut inside an echoed key would leak its prefix.
            raw = raw.replace(self.key.encode(), b"***")
        text = scrub(raw[:2000].decode("utf-8", "replace"), self.key)
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Reply(resp.status, parsed, text, location=resp.getheader("Location"), seconds=time.monotonic() - start)


def multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request with text fields and one file."""
    boundary = f"kindo-models-{os.urandom(12).hex()}"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def connection_reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for needle, reason in (("refused", "connection refused"), ("Name or service not known", "the name does not resolve"),
                           ("nodename nor servname", "the name does not resolve"), ("No route", "no route to host"),
                           ("reset by peer", "connection reset by the server"),
                           ("RemoteDisconnected", "the server closed the connection without an answer"),
                           ("IncompleteRead", "the server ended the answer early")):
        if needle in text:
            return reason
    return shorten(text)


def error_message(reply: Reply) -> str:
    """The error text of an OpenAI-style ({"error": {"message"}}) or vLLM-style ({"message"}) error body."""
    body = reply.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        for value in (err, body.get("message"), body.get("detail")):
            if isinstance(value, str):
                return value
    return reply.text


def failure(reply: Reply, base: str, path: str) -> tuple[str, str]:
    """(detail, diagnosis) of an answer that is no success, for the failures every request shares."""
    if reply.status is None:
        if reply.kind == "timeout":
            return reply.error or "timeout", DIAG_READ_TIMEOUT.format(seconds=reply.limit)
        if reply.kind == "tls":
            return reply.error or "TLS failed", DIAG_TLS
        reason = reply.error or "the connection failed"
        if "refused" in reason:
            return reason, DIAG_REFUSED
        return reason, DIAG_CONNECTION.format(reason=reason)
    message = shorten(error_message(reply))
    detail = f"HTTP {reply.status}" + (f": {message}" if message else "")
    if reply.kind == "too-large":
        return f"HTTP {reply.status}: {reply.error}", DIAG_NOT_OPENAI
    if reply.kind == "timeout":
        return f"HTTP {reply.status}, then {reply.error}", DIAG_READ_TIMEOUT.format(seconds=reply.limit)
    if reply.status in (401, 403):
        return detail, DIAG_AUTH.format(status=reply.status)
    if 300 <= reply.status < 400:
        return f"HTTP {reply.status} to {reply.location}", DIAG_REDIRECT.format(location=reply.location)
    if reply.status == 404:
        return detail, DIAG_NOT_FOUND.format(path=path, base=base)
    if reply.status >= 500:
        return detail, DIAG_SERVER_ERROR.format(status=reply.status)
    if context_limit(reply) is not None:
        return detail, DIAG_CONTEXT  # even a short request does not fit: the server holds less than asked
    return detail, DIAG_REFUSED_REQUEST.format(status=reply.status)


def not_json(reply: Reply, what: str) -> tuple[str, str]:
    """(detail, diagnosis) of a 2xx answer whose body is not JSON or not the expected shape."""
    if reply.body is None:
        return f"HTTP {reply.status} with a body that is not JSON: {quoted(reply.text)}", DIAG_NOT_OPENAI
    return f"HTTP {reply.status} with JSON of the wrong shape ({what}): {quoted(reply.text)}", DIAG_NOT_OPENAI


def choice_of(body: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(choices[0], choices[0].message) of a chat completion, None when the shape is wrong."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    return (choices[0], message) if isinstance(message, dict) else None


def content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# ---------------------------------------------------------------------------------------------- network checks


def check_dns(host: str, port: int, timeout: float) -> tuple[CheckResult, list[tuple[Any, ...]]]:
    """The host resolves (time-bounded: getaddrinfo itself takes no timeout)."""
    start = time.monotonic()
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    outcome, value = bounded(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    seconds = time.monotonic() - start
    if outcome == "ok" and isinstance(value, list) and value:
        addresses = sorted({info[4][0] for info in value})
        detail = f"{host} is an IP address" if literal else f"{host} resolves to {', '.join(addresses[:4])}"
        return CheckResult("dns", PASS, detail, seconds=seconds), value
    if outcome == "timeout":
        detail = f"the DNS lookup of {host} did not finish within {timeout:g} s"
    elif isinstance(value, socket.gaierror) and value.errno == getattr(socket, "EAI_AGAIN", -3):
        detail = f"no DNS server answered for {host} (temporary failure in name resolution)"
    else:
        detail = f"the name {host} does not resolve ({value})"
    diagnosis = DIAG_DNS
    service = in_cluster_service(host)
    if service:
        diagnosis += " " + DIAG_DNS_IN_CLUSTER.format(host=host, service=service[0], namespace=service[1], port=port)
    return CheckResult("dns", FAIL, detail, diagnosis, seconds), []


def check_tcp(host: str, port: int, addresses: Sequence[tuple[Any, ...]], timeout: float) -> CheckResult:
    """A TCP connection opens to one of the addresses, all attempts together within `timeout`."""
    start = time.monotonic()
    errors: list[tuple[str, str]] = []  # (kind, text)
    for family, socktype, proto, _, sockaddr in dict.fromkeys((a[0], a[1], a[2], a[3], a[4]) for a in addresses):
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0:
            errors.append(("timeout", f"{sockaddr[0]}: not tried, {timeout:g} s spent"))
            break
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(remaining)
            try:
                sock.connect(sockaddr)
            except ConnectionRefusedError:
                errors.append(("refused", f"{sockaddr[0]}:{port} refused the connection"))
                continue
            except (socket.timeout, TimeoutError):
                errors.append(("timeout", f"{sockaddr[0]}:{port} did not answer within {timeout:g} s"))
                continue
            except OSError as exc:
                errors.append(("unreachable", f"{sockaddr[0]}:{port}: {exc.strerror or exc}"))
                continue
        return CheckResult("tcp", PASS, f"connected to {sockaddr[0]}:{port}", seconds=time.monotonic() - start)
    kinds = [k for k, _ in errors]
    # One verdict: refused says the most (a host answered), then timeout (something drops packets).
    kind = "refused" if "refused" in kinds else "timeout" if "timeout" in kinds else "unreachable"
    headline = {"refused": "connection refused", "timeout": "connection timed out", "unreachable": "no route"}[kind]
    diagnosis = {"refused": DIAG_REFUSED, "timeout": DIAG_CONNECT_TIMEOUT, "unreachable": DIAG_UNREACHABLE}[kind]
    detail = f"{headline}: " + "; ".join(text for _, text in errors) if errors else f"{host} has no address to connect to"
    return CheckResult("tcp", FAIL, detail, diagnosis, time.monotonic() - start)


# ---------------------------------------------------------------------------------------------- HTTP checks


def check_models(client: Client, target: Target) -> tuple[CheckResult, dict[str, Any] | None]:
    """Runbook step 1: GET /models lists the served model name. Returns the model's entry too (max_model_len)."""
    reply = client.get("/models")
    if not reply.ok:
        detail, diagnosis = failure(reply, client.base, "/models")
        return CheckResult("models", FAIL, detail, diagnosis, reply.seconds), None
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        detail, diagnosis = not_json(reply, "no data[].id")
        return CheckResult("models", FAIL, detail, diagnosis, reply.seconds), None
    ids = [m["id"] for m in data]
    entry = next((m for m in data if m["id"] == target.model), None)
    if entry is None:
        shown = ", ".join(repr(i) for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        close = difflib.get_close_matches(target.model, ids, n=1)
        detail = f"{target.model!r} is not listed; the server serves {shown or 'no model'}"
        if close:
            detail += f" (closest: {close[0]!r})"
        diagnosis = DIAG_SERVED_NAME.format(served=shown or "no model", model=target.model)
        return CheckResult("models", FAIL, detail, diagnosis, reply.seconds), None
    max_len = entry.get("max_model_len")
    detail = f"lists {target.model!r}" + (f" (max_model_len {max_len:,})" if isinstance(max_len, int) else "")
    return CheckResult("models", PASS, detail, seconds=reply.seconds), entry


def chat_body(target: Target, prompt: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": target.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, **extra}


def answer_tokens(target: Target, runbook: int, max_len: int | None) -> int:
    """max_tokens of steps 2 and 3: the runbook's; for a reasoning model room to think, within the context (vLLM
    refuses a request whose prompt + max_tokens exceed its max model length)."""
    if not target.reasoning:
        return runbook
    room = max_len - PROMPT_ROOM if max_len else REASONING_MAX_TOKENS
    return max(runbook, min(REASONING_MAX_TOKENS, room))


def check_completion(client: Client, target: Target, max_len: int | None = None) -> CheckResult:
    """Runbook step 2: a coherent answer ("4") with finish_reason "stop"."""
    max_tokens = answer_tokens(target, COMPLETION_MAX_TOKENS, max_len)
    reply = client.post("/chat/completions", chat_body(target, COMPLETION_PROMPT, max_tokens))
    if not reply.ok:
        detail, diagnosis = failure(reply, client.base, "/chat/completions")
        return CheckResult("completion", FAIL, detail, diagnosis, reply.seconds)
    parts = choice_of(reply.body)
    if parts is None:
        detail, diagnosis = not_json(reply, "no choices[0].message")
        return CheckResult("completion", FAIL, detail, diagnosis, reply.seconds)
    choice, message = parts
    answer = content_text(message.get("content")).strip()
    finish = choice.get("finish_reason")
    said = f"answered {quoted(answer)}, finish_reason {finish!r}"
    if finish == "stop" and ANSWER_FOUR.search(answer):
        return CheckResult("completion", PASS, said, seconds=reply.seconds)
    if finish == "length":
        return CheckResult("completion", FAIL, f"{said} after max_tokens {max_tokens}",
                           DIAG_LENGTH.format(max_tokens=max_tokens), reply.seconds)
    if not ANSWER_FOUR.search(answer):
        return CheckResult("completion", FAIL, f"{said}: no 4 in the answer", DIAG_GARBLED, reply.seconds)
    return CheckResult("completion", FAIL, f"{said}: expected 'stop'", DIAG_GARBLED, reply.seconds)


def tool_arguments(raw: Any) -> dict[str, Any] | None:
    """A tool call's arguments: a JSON string (OpenAI) or an object (some servers)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def check_tool_calling(client: Client, target: Target, max_len: int | None = None) -> CheckResult:
    """Runbook step 3: a tool_calls entry for get_weather with a location; plain text means no (or a wrong) parser."""
    max_tokens = answer_tokens(target, TOOL_MAX_TOKENS, max_len)
    body = chat_body(target, TOOL_PROMPT, max_tokens, tools=[WEATHER_TOOL], tool_choice="auto")
    body.pop("temperature")  # the runbook's request leaves it to the server
    reply = client.post("/chat/completions", body)
    if not reply.ok:
        detail, diagnosis = failure(reply, client.base, "/chat/completions")
        if reply.status == 400 and "tool" in error_message(reply).lower() and context_limit(reply) is None:
            # vLLM without --enable-auto-tool-choice / --tool-call-parser refuses tool_choice "auto" with a 400.
            diagnosis = DIAG_TOOL_PARSER
        return CheckResult("tool-calling", FAIL, detail, diagnosis, reply.seconds)
    parts = choice_of(reply.body)
    if parts is None:
        detail, diagnosis = not_json(reply, "no choices[0].message")
        return CheckResult("tool-calling", FAIL, detail, diagnosis, reply.seconds)
    _, message = parts
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        functions = [c.get("function") if isinstance(c, dict) else None for c in calls]
        functions = [f if isinstance(f, dict) else {} for f in functions]
        weather = next((f for f in functions if f.get("name") == "get_weather"), None)
        if weather is None:
            names = ", ".join(str(f.get("name")) for f in functions)
            return CheckResult("tool-calling", FAIL, f"called {names}, not get_weather", DIAG_TOOL_PARSER, reply.seconds)
        args = tool_arguments(weather.get("arguments"))
        location = args.get("location") if args else None
        if isinstance(location, str) and location.strip():
            return CheckResult("tool-calling", PASS, f"called get_weather(location={location!r})", seconds=reply.seconds)
        # Arguments that are not JSON with a location: the parser cut or mangled the model's call syntax.
        return CheckResult("tool-calling", FAIL, "called get_weather without a location: arguments "
                           f"{quoted(str(weather.get('arguments')))}", DIAG_TOOL_PARSER, reply.seconds)
    text = content_text(message.get("content")).strip()
    unparsed = "get_weather" in text or "<tool_call>" in text
    detail = (f"plain text instead of tool_calls: {quoted(text)}"
              + (" (the text holds a tool call the server did not parse)" if unparsed else ""))
    return CheckResult("tool-calling", FAIL, detail, DIAG_TOOL_PARSER, reply.seconds)


# ---------------------------------------------------------------------------------------------- context length


@dataclass(frozen=True)
class Filler:
    text: str
    sentences: int
    tokensLow: int  # the prompt holds at least this many tokens (content only) ...
    tokensHigh: int  # ... and at most this many; equal when the server counted them
    method: Literal["tokenizer", "estimate"]
    note: str = ""  # why the estimate was used

    def describe(self) -> str:
        if self.method == "tokenizer":
            return f"{self.tokensHigh:,} tokens counted by the server's /tokenize"
        why = f" ({self.note})" if self.note else ""
        return f"{self.tokensLow:,}-{self.tokensHigh:,} tokens estimated{why}"


def filler_text(sentences: int) -> str:
    return FILLER_SENTENCE * sentences + FILLER_INSTRUCTION


def context_budget(max_model_len: int, fraction: float, max_tokens: int, reserve: int = TEMPLATE_RESERVE) -> int:
    """Content tokens to send: `fraction` of the max model length, always leaving the template's reserve and
    the answer's max_tokens free, so that a healthy server can never reject it."""
    return min(int(max_model_len * fraction), max_model_len - max_tokens - reserve)


def estimated_filler(budget: int, note: str = "") -> Filler:
    """The conservative estimate: sized for the upper bound of tokens per sentence."""
    sentences = max(1, (budget - INSTRUCTION_TOKENS_UPPER) // SENTENCE_TOKENS_UPPER)
    return Filler(filler_text(sentences), sentences, sentences * SENTENCE_TOKENS_LOWER,
                  sentences * SENTENCE_TOKENS_UPPER + INSTRUCTION_TOKENS_UPPER, "estimate", note)


def counted_filler(budget: int, count: Callable[[str], int | None]) -> Filler | None:
    """Sized with the server's tokenizer: two probes give tokens per sentence (their difference cancels BOS and
    the instruction); then the whole prompt is counted and moved towards the budget with the rate that count
    shows, a few times, keeping the largest that fits. None if counting fails or not one sentence fits."""
    small = count(filler_text(TOKENIZER_PROBE))
    large = count(filler_text(2 * TOKENIZER_PROBE)) if small is not None else None
    if small is None or large is None or large <= small:
        return None
    per_sentence = (large - small) / TOKENIZER_PROBE
    fixed = small - per_sentence * TOKENIZER_PROBE
    sentences = int((budget - fixed) // per_sentence)
    best: Filler | None = None
    tried: set[int] = set()
    for _ in range(4):  # the first count is within a few tokens; merges across sentence borders shift it a little
        if sentences < 1 or sentences in tried:
            break
        tried.add(sentences)
        text = filler_text(sentences)
        exact = count(text)
        if exact is None:
            return None
        if exact <= budget and (best is None or exact > best.tokensHigh):
            best = Filler(text, sentences, exact, exact, "tokenizer")
        gap = budget - exact
        if 0 <= gap < per_sentence:
            break  # not another whole sentence fits
        # The rate over the whole prompt is far more precise than the 64-sentence probe's.
        per_sentence = max((exact - fixed) / sentences, 1e-3)
        step = math.floor(gap / per_sentence) if gap > 0 else -math.ceil(-gap / per_sentence)
        sentences += step if step else -1
    return best


class Tokenizer:
    """The server's POST /tokenize (vLLM), remembering why it failed."""

    def __init__(self, client: Client, target: Target) -> None:
        self.client, self.target, self.why = client, target, ""

    def count(self, text: str) -> int | None:
        reply = self.client.post("/tokenize", {"model": self.target.model, "prompt": text}, root=True)
        count = reply.body.get("count") if reply.ok and isinstance(reply.body, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return count
        self.why = f"no /tokenize: {reply.error or f'HTTP {reply.status}'}" if not reply.ok else "/tokenize gave no count"
        return None


def context_limit(reply: Reply) -> int | None:
    """The limit a context-length error names ("This model's maximum context length is N tokens")."""
    match = re.search(r"maximum context length is (\d+)", error_message(reply))
    return int(match.group(1)) if match else None


def check_context(client: Client, target: Target, options: Options, server_max: int | None) -> CheckResult:
    """Runbook step 4: a prompt near the max model length is accepted."""
    if target.skipContext:
        return CheckResult("context-length", SKIP, target.skipContext)
    max_len = target.maxModelLen or server_max
    if not max_len:
        return CheckResult("context-length", SKIP, "no max model length known: neither configured nor reported by "
                           "/models (pass --max-model-len)")
    chat = target.kind == "chat"
    max_tokens = options.contextMaxTokens if chat else 0
    budget = context_budget(max_len, options.contextFraction, max_tokens,
                            TEMPLATE_RESERVE if chat else SPECIAL_TOKENS_RESERVE)
    if budget < MIN_CONTEXT_BUDGET:
        return CheckResult("context-length", SKIP, f"max model length {max_len:,} is too small for a context test")
    start = time.monotonic()
    tokenizer = Tokenizer(client, target)
    filler = (counted_filler(budget, tokenizer.count)
              or estimated_filler(budget, tokenizer.why or "the server's token counts were inconsistent"))
    if chat:
        reply = client.post("/chat/completions", chat_body(target, filler.text, max_tokens))
        accepted = reply.ok and choice_of(reply.body) is not None
    else:
        reply = client.post("/embeddings", {"model": target.model, "input": filler.text})
        data = reply.body.get("data") if reply.ok and isinstance(reply.body, dict) else None
        accepted = isinstance(data, list) and bool(data)
    seconds = time.monotonic() - start
    sent = f"sent {filler.describe()}, {options.contextFraction:.0%} of max model length {max_len:,}"
    if accepted:
        usage = reply.body.get("usage") if isinstance(reply.body, dict) else None
        counted = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        detail = f"accepted: {sent}"
        if isinstance(counted, int) and not isinstance(counted, bool):
            detail += f"; the server counted {counted:,} prompt tokens ({counted / max_len:.0%})"
        return CheckResult("context-length", PASS, detail, seconds=seconds)
    if reply.ok:
        detail, diagnosis = not_json(reply, "no choices[0].message" if chat else "no data[]")
        return CheckResult("context-length", FAIL, f"{sent}: {detail}", diagnosis, seconds)
    detail, diagnosis = failure(reply, client.base, "/chat/completions" if chat else "/embeddings")
    limit = context_limit(reply)
    if limit is not None or reply.status in (400, 413, 422) or (reply.status or 0) >= 500:
        diagnosis = DIAG_CONTEXT  # the runbook's reading of any rejection of a long prompt, OOM included
    if limit is not None and limit < max_len:
        detail += f" (the server holds {limit:,} tokens, below the configured {max_len:,})"
    return CheckResult("context-length", FAIL, f"{sent}: {detail}", diagnosis, seconds)


# ---------------------------------------------------------------------------------------------- embeddings


def check_embeddings(client: Client, target: Target) -> CheckResult:
    """Two inputs of different lengths give two vectors of the same dimension, > 0, of finite numbers."""
    reply = client.post("/embeddings", {"model": target.model, "input": list(EMBEDDING_INPUTS)})
    if not reply.ok:
        detail, diagnosis = failure(reply, client.base, "/embeddings")
        if reply.status in (400, 404):  # /models listed the name, so this is the wrong kind of model or server
            diagnosis = DIAG_EMBEDDINGS
        return CheckResult("embeddings", FAIL, detail, diagnosis, reply.seconds)
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    vectors = [d.get("embedding") for d in data if isinstance(d, dict)] if isinstance(data, list) else []
    numeric = [v for v in vectors if isinstance(v, list)
               and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)]
    if len(numeric) != len(EMBEDDING_INPUTS) or len(vectors) != len(EMBEDDING_INPUTS):
        detail, diagnosis = not_json(reply, f"expected {len(EMBEDDING_INPUTS)} data[].embedding lists of numbers")
        return CheckResult("embeddings", FAIL, detail, diagnosis, reply.seconds)
    dims = [len(v) for v in numeric]
    if dims[0] == 0 or len(set(dims)) != 1:
        return CheckResult("embeddings", FAIL, f"vector dimensions {dims}: expected one dimension above 0",
                           DIAG_EMBEDDINGS, reply.seconds)
    return CheckResult("embeddings", PASS, f"{len(dims)} vectors of dimension {dims[0]}", seconds=reply.seconds)


def clip_bytes(path: str | None = None) -> bytes:
    """The speech clip the transcription check sends: the one shipped beside this file, or `path`."""
    return Path(path).read_bytes() if path else Path(__file__).with_name(CLIP_NAME).read_bytes()


def transcription_failure(reply: Reply, client: Client, path: str) -> tuple[str, str]:
    detail, diagnosis = failure(reply, client.base, path)
    message = error_message(reply).lower()
    if reply.status == 404 and "does not exist" in message:
        return detail, diagnosis  # the served name: /models said so already, the generic text names the fix
    if reply.status == 404 or "does not support transcription" in message:
        return detail, DIAG_NOT_TRANSCRIPTION.format(path=path)
    if any(word in message for word in ("vllm[audio]", "audio", "soundfile", "librosa", "torchcodec")):
        return detail, DIAG_AUDIO_LIBRARIES
    return detail, diagnosis


def check_transcription(client: Client, target: Target, clip: bytes) -> CheckResult:
    """A short clip of speech comes back as a non-empty transcript (OpenAI's /audio/transcriptions, multipart)."""
    path = "/audio/transcriptions"
    fields = {"model": target.model, "language": TRANSCRIPTION_LANGUAGE, "response_format": "json", "temperature": "0"}
    reply = client.post_form(path, fields, "file", CLIP_NAME, clip)
    if not reply.ok:
        detail, diagnosis = transcription_failure(reply, client, path)
        return CheckResult("transcription", FAIL, detail, diagnosis, reply.seconds)
    text = reply.body.get("text") if isinstance(reply.body, dict) else None
    if not isinstance(text, str):
        detail, diagnosis = not_json(reply, "expected {\"text\": ...}")
        return CheckResult("transcription", FAIL, detail, diagnosis, reply.seconds)
    if not text.strip():
        return CheckResult("transcription", FAIL, "the transcript of a 1.9 s clip of speech is empty",
                           DIAG_EMPTY_TRANSCRIPT, reply.seconds)
    return CheckResult("transcription", PASS, f"transcript {quoted(text)}", seconds=reply.seconds)


# ---------------------------------------------------------------------------------------------- running


def skipped_after(checks: Sequence[str], reason: str) -> list[CheckResult]:
    return [CheckResult(c, SKIP, reason) for c in checks]


def guarded(check: str, fn: Callable[[], CheckResult]) -> CheckResult:
    """A bug or an unexpected answer becomes a failed check with its reason, never a traceback."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported as the check's failure
        return CheckResult(check, FAIL, f"the check itself failed: {type(exc).__name__}: {shorten(str(exc))}",
                           DIAG_NOT_OPENAI)


def kind_checks(client: Client, target: Target, options: Options, server_max: int | None,
                max_len: int | None) -> list[CheckResult]:
    """completion, tool-calling, context-length, embeddings and transcription: each run where the kind answers it."""
    kind = target.kind
    chat, embeddings, transcription = kind == "chat", kind == "embeddings", kind == "transcription"
    model = {"embeddings": "an embedding model", "transcription": "a transcription model"}.get(kind, "a chat model")
    results = [guarded("completion", lambda: check_completion(client, target, max_len)) if chat
               else CheckResult("completion", SKIP, f"{model} answers no chat")]
    if not chat:
        results.append(CheckResult("tool-calling", SKIP, f"{model} calls no tools"))
    elif target.toolCalling:
        results.append(guarded("tool-calling", lambda: check_tool_calling(client, target, max_len)))
    else:
        results.append(CheckResult("tool-calling", SKIP, "not routed to tool calling"))
    results.append(CheckResult("context-length", SKIP, f"{model} takes audio, not a prompt") if transcription
                   else guarded("context-length", lambda: check_context(client, target, options, server_max)))
    results.append(guarded("embeddings", lambda: check_embeddings(client, target)) if embeddings
                   else CheckResult("embeddings", SKIP, model))
    results.append(guarded("transcription", lambda: check_transcription(client, target, clip_bytes(options.clip)))
                   if transcription else CheckResult("transcription", SKIP, f"{model} transcribes no audio"))
    return results


def verify(target: Target, options: Options | None = None) -> Report:
    """Run every check that applies to the target, in the runbook's order."""
    options = options or Options()
    report = Report(target.label, target.model, target.baseUrl, target.keySource)
    results = report.results
    try:
        _, host, port = split_base_url(target.baseUrl)
    except ValueError as exc:
        results.append(CheckResult("dns", FAIL, str(exc), "Set apiBase (or --base-url) to the server's OpenAI base URL."))
        results += skipped_after(CHECKS[1:], "the base URL is invalid")
        return scrubbed(report, target.apiKey)
    dns, addresses = check_dns(host, port, options.connectTimeout)
    results.append(dns)
    if dns.status == FAIL:
        results += skipped_after(CHECKS[1:], "DNS failed")
        return scrubbed(report, target.apiKey)
    tcp = guarded("tcp", lambda: check_tcp(host, port, addresses, options.connectTimeout))
    results.append(tcp)
    if tcp.status == FAIL:
        results += skipped_after(CHECKS[2:], "the TCP connection failed")
        return scrubbed(report, target.apiKey)
    client = Client(target, options)
    entry: dict[str, Any] | None = None

    def models() -> CheckResult:
        nonlocal entry
        result, entry = check_models(client, target)
        return result

    listed = guarded("models", models)
    results.append(listed)
    if listed.status == FAIL:
        results += skipped_after(CHECKS[3:], "/models failed")
        return scrubbed(report, target.apiKey)
    server_max = entry.get("max_model_len") if entry else None
    server_max = server_max if isinstance(server_max, int) and not isinstance(server_max, bool) else None
    # The smaller of the configured and the served length bounds what a request may ask for.
    max_len = min((n for n in (target.maxModelLen, server_max) if n), default=None)
    results += kind_checks(client, target, options, server_max, max_len)
    return scrubbed(report, target.apiKey)


def scrubbed(report: Report, secret: str | None) -> Report:
    report.results = [CheckResult(r.check, r.status, scrub(r.detail, secret), scrub(r.diagnosis, secret), r.seconds)
                      for r in report.results]
    return report


def run_all(targets: Sequence[Target | Skip], options: Options | None = None) -> Summary:
    reports = []
    for target in targets:
        if isinstance(target, Skip):
            reports.append(Report(target.name, skipped=target.reason))
        else:
            reports.append(verify(target, options))
    return Summary(reports)


# ---------------------------------------------------------------------------------------------- as a script

VLLM_KEY_ENV = "VLLM_API_KEY"


def script_args(target: Target, options: Options, key_env: str = VLLM_KEY_ENV) -> list[str]:
    """The arguments of `python endpoint_checker.py` for a target, the key left to the environment variable `key_env`."""
    args = ["--base-url", target.baseUrl, "--model", target.model, "--kind", target.kind,
            "--timeout", f"{options.readTimeout:g}", "--connect-timeout", f"{options.connectTimeout:g}",
            "--context-fraction", f"{options.contextFraction:g}", "--api-key-env", key_env]
    if target.toolCalling:
        args.append("--tool-calling")
    if target.reasoning:
        args.append("--reasoning")
    if target.maxModelLen:
        args += ["--max-model-len", str(target.maxModelLen)]
    if target.skipContext:
        args += ["--skip-context", target.skipContext]
    if target.name:
        args += ["--name", target.name]
    return args



def main(argv: Sequence[str] | None = None) -> int:
    """`python endpoint_checker.py --base-url URL --model NAME ...`: one JSON report; exit 0 ok, 1 failed, 2 usage."""
    parser = argparse.ArgumentParser(prog="endpoint_checker.py", description="The runbook's endpoint checks for one model.")
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible base, e.g. http://my-model:8000/v1")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--name", help="the litellmModelName, when it differs from --model")
    parser.add_argument("--kind", choices=KINDS, default="chat")
    parser.add_argument("--clip", help=f"audio file for the transcription check (default: {CLIP_NAME} beside this file)")
    parser.add_argument("--tool-calling", action="store_true")
    parser.add_argument("--reasoning", action="store_true", help="the server runs a reasoning parser")
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--skip-context", help="skip the context-length check, with this reason")
    parser.add_argument("--api-key-env", default=VLLM_KEY_ENV, help="environment variable holding the key")
    parser.add_argument("--timeout", type=float, default=Options.readTimeout)
    parser.add_argument("--connect-timeout", type=float, default=Options.connectTimeout)
    parser.add_argument("--context-fraction", type=float, default=Options.contextFraction)
    args = parser.parse_args(argv)
    try:
        split_base_url(args.base_url)
        options = Options(args.connect_timeout, args.timeout, args.context_fraction, clip=args.clip)
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    key = os.environ.get(args.api_key_env) or None
    target = Target(model=args.model, baseUrl=args.base_url, apiKey=key,
                    keySource=f"${args.api_key_env}" if key else "none", kind=args.kind, toolCalling=args.tool_calling,
                    maxModelLen=args.max_model_len, reasoning=args.reasoning, skipContext=args.skip_context,
                    name=args.name)
    report = verify(target, options)
    print(json.dumps(report.to_json()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
