"""A local Hugging Face Hub for tests, on 127.0.0.1 and an ephemeral port (huggingface_hub honours HF_ENDPOINT).

It serves what huggingface_hub (read at 2.4.0 and 1.31.0) calls to list and download a snapshot at a revision:
- GET /api/models/ORG/NAME/revision/REV?blobs=true: HfApi.model_info(files_metadata=True): the commit (`sha`) and the
  files (`siblings`: rfilename, size, blobId, lfs {size, sha256, pointerSize}).
- HEAD /ORG/NAME/resolve/REV/PATH: hf_hub_download's metadata call. A plain file answers 200 with ETag (its git blob
  id), X-Repo-Commit and Content-Length; an LFS file answers 302 to a "CDN" URL with X-Linked-Etag (its sha256) and
  X-Linked-Size, as the Hub does. The "CDN" is a second server, named localhost (another host: huggingface_hub
  follows a HEAD redirect only within the Hub and reads the metadata off the 302 itself).
- GET on either URL: the bytes (Range: bytes=N- for resumed downloads).
Errors carry the Hub's X-Error-Code (RepoNotFound, RevisionNotFound, GatedRepo, EntryNotFound), which
huggingface_hub turns into its typed errors. A gated repo lists its files to anyone but serves them only with its
token. Faults: `corrupt` paths are served with their first byte flipped (same size); `echo_authorization` makes
error messages quote the Authorization header, as a hostile or buggy endpoint might.

    with HubDouble({"org/name": HubRepo(files={...})}) as hub:
        hub.url         # for HF_ENDPOINT
        hub.requests    # [(method, path, authorization header or "")] as received
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_FROM_BYTES = 1024  # the Hub stores large files (and every *.safetensors) in LFS


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha256 = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(".safetensors") or len(data) >= LFS_FROM_BYTES


@dataclass
class HubRepo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit; "main" -> commit when empty
    token: str | None = None  # a gated repo: files only with "Authorization: Bearer <token>"

    def resolve(self, revision: str) -> str | None:
        branches = self.branches or {"main": self.commit}
        commit = branches.get(revision, revision)
        return commit if commit == self.commit else None

    def sibling(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        if not is_lfs(path, data):
            return {"rfilename": path, "size": len(data), "blobId": git_blob_id(data)}
        pointer = lfs_pointer(data)
        return {"rfilename": path, "size": len(data), "blobId": git_blob_id(pointer),
                "lfs": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": len(pointer)}}


class HubDouble:
    def __init__(self, repos: dict[str, HubRepo], lifetime: float = 120.0) -> None:
        self.repos = repos
        self.corrupt: set[str] = set()
        self.echo_authorization = False  # a hostile Hub: error messages quote the Authorization header sent
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self)) for _ in ("hub", "cdn")]
        for server in self._servers:
            server.daemon_threads = True
        self._threads = [threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
                         for server in self._servers]
        self._watchdog = threading.Timer(lifetime, self.stop)
        self._watchdog.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        # Another host name for the same 127.0.0.1: huggingface_hub 1.x follows a HEAD redirect to the same host name
        # whatever the port (2.x compares origins), and the Hub's CDN is another host.
        return f"http://localhost:{self._servers[1].server_address[1]}"

    def start(self) -> HubDouble:
        for thread in self._threads:
            thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._watchdog.cancel()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def record(self, method: str, path: str, authorization: str) -> None:
        with self._lock:
            self.requests.append((method, path, authorization))

    def downloads(self) -> list[str]:
        """The file paths fetched with GET (resolve or CDN), in order."""
        with self._lock:
            return [path for method, path, _ in self.requests if method == "GET" and "/api/" not in path]

    def content(self, path: str, data: bytes) -> bytes:
        return bytes([data[0] ^ 0xFF]) + data[1:] if path in self.corrupt and data else data


API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)")
RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
CDN = re.compile(r"/cdn/(?P<repo>[^/]+/[^/]+)/(?P<path>.+)")


def _handler_for(hub: HubDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.record(self.command, path, self.headers.get("Authorization", ""))
            for pattern, route in ((API, self._info), (RESOLVE, self._resolve), (CDN, self._cdn)):
                match = pattern.fullmatch(path)
                if match:
                    route(match, body)
                    return
            self._error(404, "EntryNotFound", f"no route {path}", body)

        def _repo(self, match: re.Match[str], body: bool) -> HubRepo | None:
            repo = hub.repos.get(match["repo"])
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found", body)
            return repo

        def _commit(self, repo: HubRepo, revision: str, body: bool) -> str | None:
            commit = repo.resolve(revision)
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
            return commit

        def _allowed(self, repo: HubRepo, body: bool) -> bool:
            if repo.token is None or self.headers.get("Authorization") == f"Bearer {repo.token}":
                return True
            self._error(401 if not self.headers.get("Authorization") else 403, "GatedRepo",
                        "Access to model is restricted. You must have access to it and be authenticated.", body)
            return False

        def _info(self, match: re.Match[str], body: bool) -> None:
            repo = self._repo(match, body)
            commit = repo and self._commit(repo, match["rev"], body)
            if repo is None or commit is None:
                return
            document = {"_id": "0" * 24, "id": match["repo"], "modelId": match["repo"], "sha": commit,
                        "private": False, "gated": "manual" if repo.token else False, "disabled": False,
                        "tags": [], "siblings": [repo.sibling(path) for path in sorted(repo.files)]}
            self._send(200, {"Content-Type": "application/json"}, json.dumps(document).encode(), body)

        def _resolve(self, match: re.Match[str], body: bool) -> None:
            repo = self._repo(match, body)
            commit = repo and self._commit(repo, match["rev"], body)
            if repo is None or commit is None or not self._allowed(repo, body):
                return
            path = match["path"]
            if path not in repo.files:
                self._error(404, "EntryNotFound", f"{path} does not exist at {commit}", body)
                return
            data = repo.files[path]
            if is_lfs(path, data):
                headers = {"Location": f"{hub.cdn_url}/cdn/{match['repo']}/{path}", "X-Repo-Commit": commit,
                           "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data)),
                           "ETag": f'"{git_blob_id(lfs_pointer(data))}"'}
                self._send(302, headers, b"", body)
                return
            self._bytes(path, data, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_id(data)}"'}, body)

        def _cdn(self, match: re.Match[str], body: bool) -> None:
            repo = hub.repos.get(match["repo"])
            if repo is None or match["path"] not in repo.files:
                self._send(404, {}, b"", body)
                return
            data = repo.files[match["path"]]
            self._bytes(match["path"], data, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, body)

        def _bytes(self, path: str, data: bytes, headers: dict[str, str], body: bool) -> None:
            served = hub.content(path, data)
            start = 0
            ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if ranged and body:
                start = min(int(ranged[1]), len(served))
                headers["Content-Range"] = f"bytes {start}-{len(served) - 1}/{len(served)}"
            headers.update({"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})
            self._send(206 if ranged and body else 200, headers, served[start:], body, length=len(served) - start)

        def _error(self, status: int, code: str, message: str, body: bool) -> None:
            if hub.echo_authorization:
                message += f" (you sent: {self.headers.get('Authorization', 'nothing')})"
            payload = json.dumps({"error": message}).encode()
            self._send(status, {"X-Error-Code": code, "X-Error-Message": message,
                                "Content-Type": "application/json"}, payload, body)

        def _send(self, status: int, headers: dict[str, str], payload: bytes, body: bool,
                  length: int | None = None) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload) if length is None else length))
            self.end_headers()
            if body:
                self.wfile.write(payload)

    return Handler
