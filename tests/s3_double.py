"""A local S3 endpoint for tests, on 127.0.0.1 and an ephemeral port (boto3 honours AWS_ENDPOINT_URL).

Path-style requests, the calls the weights mirror makes and S3's rules for them:
ListObjectsV2 (paginated: `page_size`), HeadObject, GetObject, PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload (parts ascending, ETags matching, every part but the last >= 5 MiB: EntityTooSmall),
AbortMultipartUpload, DeleteObject. ETags are S3's: the MD5 of a single PUT, md5(part MD5s)-N for multipart.
The body is checked against the x-amz-content-sha256, Content-MD5 and x-amz-checksum-crc32 headers when sent (botocore
sends header checksums over http; trailers only over https). User metadata (x-amz-meta-*) is kept and returned.

Each call is recorded with the IAM action it needs (s3:ListBucket, s3:GetObject, s3:PutObject,
s3:AbortMultipartUpload, s3:DeleteObject), so a test can check the documented policy suffices. `deny` holds
(operation, key) pairs answered 403 AccessDenied.

    with S3Double(buckets=("models",)) as s3:
        s3.url                       # for AWS_ENDPOINT_URL
        s3.objects["models"][key]    # StoredObject(body, metadata, etag)
        s3.calls                     # [(operation, key)]
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

MIN_PART = 5 * 1024 * 1024
IAM_ACTION = {
    "ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
}
WRITES = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")


@dataclass
class StoredObject:
    body: bytes
    metadata: dict[str, str]
    etag: str


@dataclass
class Upload:
    bucket: str
    key: str
    metadata: dict[str, str]
    parts: dict[int, tuple[bytes, dict[str, str]]] = field(default_factory=dict)  # number -> (bytes, checksums)


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def check_body(headers: Any, data: bytes) -> None:
    declared = headers.get("x-amz-content-sha256", "")
    if len(declared) == 64 and declared != hashlib.sha256(data).hexdigest():
        raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match")
    md5 = headers.get("Content-MD5")
    if md5 and md5 != base64.b64encode(hashlib.md5(data).digest()).decode():
        raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    crc = headers.get("x-amz-checksum-crc32")
    if crc and crc != crc32_b64(data):
        raise S3Error(400, "BadDigest", "The CRC32 you specified did not match the calculated checksum.")


def user_metadata(headers: Any) -> dict[str, str]:
    return {name.lower()[len("x-amz-meta-"):]: value for name, value in headers.items()
            if name.lower().startswith("x-amz-meta-")}


def operation_of(method: str, key: str, query: dict[str, list[str]]) -> str:
    if not key:
        return "ListObjectsV2" if method == "GET" and query.get("list-type") == ["2"] else f"Unsupported{method}Bucket"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "PUT":
        return "UploadPart" if "uploadId" in query else "PutObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return {"GET": "GetObject", "HEAD": "HeadObject"}[method]


class S3Double:
    def __init__(self, buckets: tuple[str, ...] = ("models",), page_size: int = 1000, lifetime: float = 120.0) -> None:
        self.objects: dict[str, dict[str, StoredObject]] = {bucket: {} for bucket in buckets}
        self.uploads: dict[str, Upload] = {}
        self.calls: list[tuple[str, str]] = []
        self.deny: set[tuple[str, str]] = set()
        self.page_size = page_size
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._watchdog = threading.Timer(lifetime, self.stop)
        self._watchdog.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> S3Double:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._watchdog.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> S3Double:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def actions(self) -> set[str]:
        return {IAM_ACTION[operation] for operation, _ in self.calls}

    def writes(self) -> list[tuple[str, str]]:
        return [(operation, key) for operation, key in self.calls if operation in WRITES]

    def forget_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- operations (under the lock)

    def handle(self, operation: str, bucket: str, key: str, query: dict[str, list[str]], headers: Any,
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.calls.append((operation, key))
            if (operation, key) in self.deny:
                raise S3Error(403, "AccessDenied", "Access Denied")
            if bucket not in self.objects:
                raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist")
            method = getattr(self, "_" + operation.lower(), None)
            if method is None:
                raise S3Error(501, "NotImplemented", f"{operation} is not implemented by the double")
            return method(bucket, key, query, headers, body)

    def _listobjectsv2(self, bucket: str, _key: str, query: dict[str, list[str]], _headers: Any,
                       _body: bytes) -> tuple[int, dict[str, str], bytes]:
        prefix = query.get("prefix", [""])[0]
        after = query.get("continuation-token", [""])[0]
        start = base64.urlsafe_b64decode(after.encode()).decode() if after else ""
        keys = sorted(key for key in self.objects[bucket] if key.startswith(prefix) and key > start)
        page, rest = keys[:self.page_size], keys[self.page_size:]
        items = "".join(f"<Contents><Key>{escape(key)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                        f"<ETag>&quot;{self.objects[bucket][key].etag}&quot;</ETag>"
                        f"<Size>{len(self.objects[bucket][key].body)}</Size><StorageClass>STANDARD</StorageClass>"
                        "</Contents>" for key in page)
        following = (f"<NextContinuationToken>{base64.urlsafe_b64encode(page[-1].encode()).decode()}"
                     "</NextContinuationToken>") if rest else ""
        xml = ('<?xml version="1.0" encoding="UTF-8"?>'
               '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
               f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
               f"<MaxKeys>{self.page_size}</MaxKeys><IsTruncated>{'true' if rest else 'false'}</IsTruncated>"
               f"{items}{following}</ListBucketResult>")
        return 200, {"Content-Type": "application/xml"}, xml.encode()

    def _stored(self, bucket: str, key: str) -> StoredObject:
        stored = self.objects[bucket].get(key)
        if stored is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
        return stored

    def _object_headers(self, stored: StoredObject) -> dict[str, str]:
        headers = {"ETag": f'"{stored.etag}"', "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
                   "Content-Type": "binary/octet-stream"}
        headers.update({f"x-amz-meta-{name}": value for name, value in stored.metadata.items()})
        return headers

    def _headobject(self, bucket: str, key: str, *_rest: Any) -> tuple[int, dict[str, str], bytes]:
        stored = self._stored(bucket, key)
        return 200, self._object_headers(stored), stored.body  # the handler sends no body for HEAD

    def _getobject(self, bucket: str, key: str, *_rest: Any) -> tuple[int, dict[str, str], bytes]:
        stored = self._stored(bucket, key)
        return 200, self._object_headers(stored), stored.body

    def _putobject(self, bucket: str, key: str, _query: Any, headers: Any,
                   body: bytes) -> tuple[int, dict[str, str], bytes]:
        check_body(headers, body)
        self.objects[bucket][key] = StoredObject(body, user_metadata(headers), md5_hex(body))
        return 200, {"ETag": f'"{md5_hex(body)}"'}, b""

    def _deleteobject(self, bucket: str, key: str, *_rest: Any) -> tuple[int, dict[str, str], bytes]:
        self.objects[bucket].pop(key, None)
        return 204, {}, b""

    def _createmultipartupload(self, bucket: str, key: str, _query: Any, headers: Any,
                               _body: bytes) -> tuple[int, dict[str, str], bytes]:
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = Upload(bucket, key, user_metadata(headers))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>{bucket}</Bucket>'
               f"<Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
        return 200, {"Content-Type": "application/xml"}, xml.encode()

    def _upload(self, query: dict[str, list[str]], key: str) -> Upload:
        upload = self.uploads.get(query.get("uploadId", [""])[0])
        if upload is None or upload.key != key:
            raise S3Error(404, "NoSuchUpload", "The specified multipart upload does not exist.")
        return upload

    def _uploadpart(self, _bucket: str, key: str, query: dict[str, list[str]], headers: Any,
                    body: bytes) -> tuple[int, dict[str, str], bytes]:
        upload = self._upload(query, key)
        check_body(headers, body)
        checksums = {name: value for name, value in headers.items() if name.lower().startswith("x-amz-checksum-")}
        upload.parts[int(query["partNumber"][0])] = (body, checksums)
        return 200, {"ETag": f'"{md5_hex(body)}"', **checksums}, b""

    def _completemultipartupload(self, bucket: str, key: str, query: dict[str, list[str]], _headers: Any,
                                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        upload = self._upload(query, key)
        listed = [(int(_text(part, "PartNumber")), _text(part, "ETag").strip('"'))
                  for part in ET.fromstring(body) if part.tag.endswith("Part")]
        numbers = [number for number, _ in listed]
        if not listed or numbers != sorted(set(numbers)):
            raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        for index, (number, etag) in enumerate(listed):
            if number not in upload.parts or md5_hex(upload.parts[number][0]) != etag:
                raise S3Error(400, "InvalidPart", f"Part {number} was not uploaded or its ETag does not match.")
            if index < len(listed) - 1 and len(upload.parts[number][0]) < MIN_PART:
                raise S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
        parts = [upload.parts[number][0] for number in numbers]
        etag = md5_hex(b"".join(hashlib.md5(part).digest() for part in parts)) + f"-{len(parts)}"
        self.objects[bucket][key] = StoredObject(b"".join(parts), upload.metadata, etag)
        del self.uploads[query["uploadId"][0]]
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>{bucket}</Bucket>'
               f"<Key>{escape(key)}</Key><ETag>&quot;{etag}&quot;</ETag></CompleteMultipartUploadResult>")
        return 200, {"Content-Type": "application/xml"}, xml.encode()

    def _abortmultipartupload(self, _bucket: str, key: str, query: dict[str, list[str]],
                              *_rest: Any) -> tuple[int, dict[str, str], bytes]:
        self._upload(query, key)
        del self.uploads[query["uploadId"][0]]
        return 204, {}, b""


def _text(element: ET.Element, name: str) -> str:
    for child in element:
        if child.tag.endswith(name):
            return child.text or ""
    return ""


def _handler_for(s3: S3Double) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and Expect: 100-continue, as boto3 uses them

        def log_message(self, *_args: Any) -> None:
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            bucket, _, key = unquote(url.path).lstrip("/").partition("/")
            query = parse_qs(url.query, keep_blank_values=True)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = operation_of(self.command, key, query)
            try:
                status, headers, payload = s3.handle(operation, bucket, key, query, self.headers, body)
            except S3Error as error:
                status, headers = error.status, {"Content-Type": "application/xml"}
                payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{error.code}</Code>'
                           f"<Message>{escape(error.message)}</Message><RequestId>test</RequestId></Error>").encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _serve

    return Handler
