"""A local OpenAI-compatible server (vLLM's dialect) for tests, on 127.0.0.1 and an ephemeral port.

It answers like a healthy vLLM server or, per `Behaviour`, with one of the faults the runbook names: a wrong
served model name, no tool-call parser (tool calls come back as text), a context smaller than configured
(vLLM's 400), slowness, trickling bytes, garbage bodies, JSON of the wrong shape, a required API key.

Its "tokenizer" counts words and punctuation marks (`\\w+|[^\\w\\s]`), so the runbook's filler sentence is
10 tokens, as in the large BPE vocabularies; a chat request adds `template_tokens` for the chat template.

    with OpenAIDouble(MODES["healthy"]) as server:
        server.base_url   # http://127.0.0.1:PORT/v1
        server.requests   # [(method, path, json body or None)] as received

Threads serve requests (daemon threads); stop() wakes every sleeping or trickling handler, and a watchdog stops
the server by itself after `lifetime` seconds, so a test that forgets it never leaves it running.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field, replace
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


@dataclass(frozen=True)
class Behaviour:
    served: tuple[str, ...] = ("test-model",)
    max_context: int = 4096  # what the server really holds (vLLM's max_model_len)
    tool_parser: bool = True  # False: tool calls come back as plain text, as without --tool-call-parser
    auto_tool_choice: bool = True  # False: tool_choice "auto" is refused with vLLM's 400
    tool_name: str = "get_weather"  # what the parsed tool call names
    tool_arguments: str = '{"location": "San Francisco"}'  # its arguments, as the JSON string OpenAI sends
    tokenize: bool = True  # serve POST /tokenize
    embedding_dim: int = 8
    answer: str = "4"
    finish_reason: str = "stop"
    template_tokens: int = 8  # tokens the "chat template" adds to a chat prompt
    report_usage: bool = True
    delay: float = 0.0  # seconds before answering anything
    trickle: float = 0.0  # seconds between bytes of every body (each read is quick, the whole is slow)
    garbage: tuple[str, ...] = ()  # paths answered 200 with HTML ("*" = every path); it echoes the auth header
    wrong_shape: tuple[str, ...] = ()  # paths answered 200 with JSON of the wrong shape ("*" = every path)
    api_key: str | None = None  # required bearer key, if any
    # POST /v1/audio/transcriptions: the transcript a speech-to-text model returns; None: no such route (a chat or
    # embedding model on recent vLLM answers 404 Not Found there).
    transcript: str | None = None
    transcription_error: tuple[int, str] | None = None  # answered instead, e.g. (500, "Please install vllm[audio] ...")


MODES: dict[str, Behaviour] = {
    "healthy": Behaviour(),
    "wrong-name": Behaviour(served=("some-other-model",)),
    "no-tool-parser": Behaviour(tool_parser=False),
    "small-context": Behaviour(max_context=2048),
    "slow": Behaviour(delay=5.0),
    "trickle": Behaviour(trickle=0.05),
    "garbage": Behaviour(garbage=("*",)),
    "wrong-shape": Behaviour(wrong_shape=("*",)),
    "whisper": Behaviour(served=("test-whisper",), max_context=448, tokenize=False,
                         transcript=" Kindo verifies this endpoint."),
}


def vllm_error(status: int, message: str, kind: str = "BadRequestError") -> tuple[int, dict[str, Any]]:
    # vLLM's ErrorResponse body.
    return status, {"object": "error", "message": message, "type": kind, "param": None, "code": status}


def embedding(text: str, dim: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dim)]


@dataclass
class OpenAIDouble:
    behaviour: Behaviour = field(default_factory=Behaviour)
    lifetime: float = 30.0
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set(self, **changes: Any) -> None:
        """Change the behaviour of a running server."""
        self.behaviour = replace(self.behaviour, **changes)

    def start(self) -> OpenAIDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
                pass

            def do_GET(self) -> None:
                double._handle(self, "GET")

            def do_POST(self) -> None:
                double._handle(self, "POST")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True,
                                   name="openai-double")
        serving.start()
        watchdog = threading.Timer(self.lifetime, self.stop)
        watchdog.daemon = True
        watchdog.start()
        self._threads = [serving, watchdog]
        return self

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()  # wakes delayed and trickling handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        timer = self._threads[1] if len(self._threads) > 1 else None
        if isinstance(timer, threading.Timer) and timer is not threading.current_thread():
            timer.cancel()

    def __enter__(self) -> OpenAIDouble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ requests

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        b = self.behaviour
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        try:
            body = form_fields(content_type, raw) if content_type.startswith("multipart/") else (json.loads(raw) if raw else None)
        except ValueError:
            body = None
        path = handler.path.split("?", 1)[0]
        self.requests.append((method, path, body))
        if b.delay and self.stopping.wait(b.delay):
            return  # stopped while "slow": drop the connection unanswered
        auth = handler.headers.get("Authorization", "")
        if b.garbage and ("*" in b.garbage or path in b.garbage):
            # An HTML error page from something in between, echoing the request's headers (keys included).
            page = f"<html><body><h1>502 Bad Gateway</h1><pre>{method} {path}\nAuthorization: {auth}</pre></body></html>"
            self._send(handler, 200, page.encode(), "text/html")
            return
        if b.api_key is not None and auth != f"Bearer {b.api_key}":
            self._json(handler, 401, {"error": "Unauthorized"})
            return
        if b.wrong_shape and ("*" in b.wrong_shape or path in b.wrong_shape):
            self._json(handler, 200, {"result": "ok", "models": list(b.served)})
            return
        route = {("GET", "/v1/models"): self._models, ("POST", "/v1/chat/completions"): self._chat,
                 ("POST", "/v1/embeddings"): self._embeddings, ("POST", "/tokenize"): self._tokenize,
                 ("POST", "/v1/audio/transcriptions"): self._transcription}.get((method, path))
        if route is None or (path == "/tokenize" and not b.tokenize) or (
                path.endswith("/transcriptions") and b.transcript is None and b.transcription_error is None):
            status, out = 404, {"detail": "Not Found"}  # FastAPI's 404, as vLLM answers an unknown path
        else:
            status, out = route(body if isinstance(body, dict) else {})
        self._json(handler, status, out)

    def _models(self, _: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data = [{"id": name, "object": "model", "owned_by": "vllm", "root": name, "max_model_len": self.behaviour.max_context}
                for name in self.behaviour.served]
        return 200, {"object": "list", "data": data}

    def _unknown_model(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if body.get("model") not in self.behaviour.served:
            return vllm_error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        return None

    def _chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        b = self.behaviour
        if (missing := self._unknown_model(body)) is not None:
            return missing
        messages = body.get("messages") or []
        prompt = b.template_tokens + sum(count_tokens(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        max_tokens = int(body.get("max_tokens") or 16)
        if prompt + max_tokens > b.max_context:
            return vllm_error(400, f"This model's maximum context length is {b.max_context} tokens. However, you "
                                   f"requested {prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in "
                                   "the completion). Please reduce the length of the messages or completion.")
        message: dict[str, Any] = {"role": "assistant", "content": b.answer}
        finish = b.finish_reason
        if body.get("tools") and body.get("tool_choice") == "auto":
            if not b.auto_tool_choice:
                return vllm_error(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                                       "to be set")
            call = {"name": b.tool_name, "arguments": b.tool_arguments}
            if b.tool_parser:
                message = {"role": "assistant", "content": None,
                           "tool_calls": [{"id": "chatcmpl-tool-1", "type": "function", "function": call}]}
                finish = "tool_calls"
            else:  # the model's raw tool-call syntax, unparsed: what a missing or wrong parser gives
                message = {"role": "assistant", "content": f"<tool_call>\n{json.dumps(call)}\n</tool_call>"}
        out: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                               "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        if b.report_usage:
            out["usage"] = {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}
        return 200, out

    def _embeddings(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        b = self.behaviour
        if (missing := self._unknown_model(body)) is not None:
            return missing
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        longest = max((count_tokens(t) + 2 for t in texts), default=0)  # + CLS and SEP
        if longest > b.max_context:
            return vllm_error(400, f"This model's maximum context length is {b.max_context} tokens. However, you "
                                   f"requested {longest} tokens in the input for embedding generation. Please reduce "
                                   "the length of the input.")
        data = [{"object": "embedding", "index": i, "embedding": embedding(t, b.embedding_dim)} for i, t in enumerate(texts)]
        tokens = sum(count_tokens(t) + 2 for t in texts)
        return 200, {"object": "list", "model": body.get("model"), "data": data,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _tokenize(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (missing := self._unknown_model(body)) is not None:
            return missing
        count = count_tokens(str(body.get("prompt", ""))) + 1  # + BOS, as add_special_tokens does
        return 200, {"count": count, "max_model_len": self.behaviour.max_context, "tokens": list(range(count))}

    def _transcription(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        b = self.behaviour
        if b.transcription_error is not None:
            return vllm_error(*b.transcription_error)
        if (missing := self._unknown_model(body)) is not None:
            return missing
        if not body.get("file"):
            return vllm_error(400, "Field required: file")
        return 200, {"text": b.transcript, "usage": {"type": "duration", "seconds": 2}}

    # ------------------------------------------------------------------------------------------ writing

    def _json(self, handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        self._send(handler, status, json.dumps(body).encode(), "application/json")

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if not self.behaviour.trickle:
                handler.wfile.write(payload)
                return
            for byte in payload:
                if self.stopping.wait(self.behaviour.trickle):
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test): nothing to answer


def form_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body as {name: text, or the file's bytes}, as FastAPI's Form() and File() read it."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        fields[str(name)] = data if part.get_filename() else data.decode()
    return fields


def closed_port() -> int:
    """A local port with nothing listening: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
