#!/usr/bin/env python3
"""Mirror a Hugging Face model snapshot, at one pinned commit, into S3 for vLLM's Run:ai model streamer.

    python3 /mirror/mirror_weights.py --repo ORG/NAME --revision <40-hex commit> --dest s3://BUCKET/PREFIX \
        [--include PATTERN ...] [--exclude PATTERN ...] [--part-size-mib 64] [--work-dir DIR]

vLLM then serves `s3://BUCKET/PREFIX` with `--load-format runai_streamer`. What it copies, and why:
- The files at exactly that commit (a branch or tag is refused: it can move, and vLLM does not resolve a revision
  for an object-store path, so the mirror is what pins it). Listed once with `HfApi.model_info(files_metadata=True)`.
- What vLLM reads from an object-store path: config, tokenizer, generation config, chat templates, remote code
  (vLLM 0.33.0 vllm/config/model.py `maybe_pull_model_tokenizer_for_runai` pulls every non-weight file of the prefix
  to local disk at each start) and `*.safetensors` with `model.safetensors.index.json` (the streamer reads only
  safetensors: vllm/model_executor/model_loader/runai_streamer_loader.py "Cannot find any safetensors model weights").
- Not copied: `original/` (vLLM's LoadConfig.ignore_patterns default "original/**/*", vllm/config/load.py: Meta's
  consolidated duplicates); other weight formats (*.bin, *.pth, *.pt, *.gguf, *.onnx, ...: never streamed, and the
  ones vLLM does not ignore would be pulled to the pod's disk at every start); and, when the index exists, any
  *.safetensors it does not name (e.g. Mistral's consolidated.safetensors): vLLM's hub loader drops those
  (weight_utils.filter_duplicate_safetensors_files) but the streamer lists every *.safetensors under the prefix.
  --include / --exclude (fnmatch on the path in the repo; "dir/" means everything under dir) narrow it further.

How it behaves:
- One file at a time: download (huggingface_hub, token from HF_TOKEN when set), check it against the Hub's sha256
  (LFS) or git blob id, upload (boto3 managed transfer, multipart above --part-size-mib), check the object, delete
  the local copy. The work dir needs free space for the largest file only.
- Idempotent: each object carries metadata sha256 and hf-blob-id; a file whose object already has the same size and
  ids is skipped without downloading it. A rerun after a crash finishes the job; a rerun after success uploads nothing.
  (Not the ETag: with SSE-KMS it is no MD5, and a multipart ETag depends on the part size.)
- Last, the manifest `<PREFIX>/.kindo-models-mirror.json` (repo, revision, files with size and sha256): its presence
  says the mirror is complete. A prefix whose manifest names another repo or revision is refused, and so is one that
  holds *.safetensors outside the file list (the streamer would load them).
- Output: progress lines (file, size, throughput) on stdout, then one JSON summary line. No secret is printed.
- Exit codes: 0 done, 1 failed (the reason on stderr and in the summary), 2 usage error.

Environment: HF_TOKEN (gated or private repos), HF_ENDPOINT (a Hub mirror), AWS credentials from boto3's default
chain (EKS Pod Identity, IRSA, env keys), AWS_REGION, AWS_ENDPOINT_URL (S3-compatible stores). Unless already set,
HF_HOME goes under the work dir, HF_XET_CHUNK_CACHE_SIZE_BYTES=0 (hf_xet's chunk cache is 10 GB in some builds:
xet-runtime config/groups/chunk_cache.rs) and HF_HUB_DISABLE_PROGRESS_BARS=1, so the disk stays bounded, and
HF_HUB_DISABLE_TELEMETRY=1.

Dependencies: the standard library, plus huggingface_hub and boto3, imported lazily; both are in the
vllm/vllm-openai image (v0.33.0: vLLM requires huggingface_hub>=1.31.0, and transformers 5.16-5.20 require
huggingface-hub>=1.31.0,<3.0; the Dockerfile installs runai-model-streamer[s3,gcs,azure]>=0.15.7, whose -s3 package
requires boto3, unpinned). The API used, present in huggingface_hub 1.31.0 through 2.4.0 and boto3 >= 1.34.41 (the
first with EKS Pod Identity, https://docs.aws.amazon.com/eks/latest/userguide/pod-id-minimum-sdk.html):
huggingface_hub.HfApi(token=...).model_info(repo_id, revision=..., files_metadata=True) (.sha, .siblings with
rfilename/size/blob_id/lfs.sha256), huggingface_hub.hf_hub_download(repo_id, filename, revision=..., local_dir=...,
token=...), huggingface_hub.errors (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError,
HfHubHTTPError); boto3.client("s3") get_paginator("list_objects_v2"), head_object, get_object, put_object,
upload_file(ExtraArgs={"Metadata": ...}, Config=boto3.s3.transfer.TransferConfig(...), Callback=...),
botocore.exceptions (ClientError, BotoCoreError, NoCredentialsError), boto3.exceptions.S3UploadFailedError.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence, TextIO

MANIFEST_NAME = ".kindo-models-mirror.json"
MANIFEST_FORMAT = 1
INDEX_NAME = "model.safetensors.index.json"  # vLLM's SAFE_WEIGHTS_INDEX_NAME
EXIT_DONE, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3 bucket naming rules (length 3-63)

MIB = 1024 * 1024
MIN_PART_MIB = 5  # S3: every part but the last is at least 5 MiB
MAX_PART_MIB = 5 * 1024  # S3: at most 5 GiB per part
DEFAULT_PART_MIB = 64
UPLOAD_THREADS = 8
PROGRESS_EVERY_S = 15.0
DISK_MARGIN = 64 * MIB  # huggingface_hub's own metadata beside the file

# vLLM's LoadConfig.ignore_patterns default ("original/**/*", vllm/config/load.py): Meta's consolidated checkpoints.
IGNORED_DIRS = ("original/",)
# Weight files the streamer never reads (it reads *.safetensors only).
OTHER_WEIGHTS = ("*.bin", "*.pth", "*.pt", "*.ckpt", "*.gguf", "*.h5", "*.msgpack", "*.onnx", "*.onnx_data",
                 "*.ot", "*.tflite", "*.mlmodel", "*.tensors", "*.npz")
SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN")
IAM_FIX = ("the Job's role needs s3:ListBucket (on the bucket, for the prefix), s3:GetObject, s3:PutObject and "
           "s3:AbortMultipartUpload (on PREFIX/*)")
META_SHA256, META_BLOB, META_REVISION = "sha256", "hf-blob-id", "hf-revision"  # S3 user metadata (x-amz-meta-*)


class UsageError(Exception):
    """A bad command line: exit 2."""


class MirrorError(Exception):
    """The mirror cannot be completed: exit 1, with this reason."""


# ---------------------------------------------------------------------------------------------------------------------
# Output


class Reporter:
    """Progress lines on stdout, errors on stderr, every line with any secret value replaced."""

    def __init__(self, secrets: Iterable[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        # Short values would blank out ordinary words; real tokens and keys are long.
        self._secrets = sorted({value for value in secrets if len(value) >= 8}, key=len, reverse=True)
        self._out, self._err = out, err
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def line(self, text: str) -> None:
        self._write(self._out, f"mirror: {text}")

    def warn(self, text: str) -> None:
        self._write(self._err, f"mirror: warning: {text}")

    def error(self, text: str) -> None:
        self._write(self._err, f"mirror: error: {text}")

    def summary(self, document: Mapping[str, Any]) -> None:
        self._write(self._out, json.dumps(document, sort_keys=True))

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            print(self.redact(text), file=stream, flush=True)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    return [environ[name] for name in SECRET_VARIABLES if environ.get(name)]


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def rate(size: int, seconds: float) -> str:
    return f"{human(size / max(seconds, 1e-3))}/s"


class Progress:
    """boto3's transfer callback (called from its threads): a line every PROGRESS_EVERY_S seconds."""

    def __init__(self, reporter: Reporter, label: str, total: int) -> None:
        self._reporter, self._label, self._total = reporter, label, total
        self._done, self._started = 0, time.monotonic()
        self._next = self._started + PROGRESS_EVERY_S
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self._lock:
            self._done += amount
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + PROGRESS_EVERY_S
            done, took = self._done, now - self._started
        percent = 100 * done / max(self._total, 1)
        self._reporter.line(f"{self._label} {human(done)} of {human(self._total)} ({percent:.0f}%), "
                            f"{rate(done, took)}")


# ---------------------------------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True)
class Options:
    repo: str
    revision: str
    bucket: str
    prefix: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    part_size: int
    work_dir: Path | None

    @property
    def dest(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}"

    @property
    def manifest_key(self) -> str:
        return self.key(MANIFEST_NAME)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit 2 with the usage; we add the summary line
        raise UsageError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mirror_weights.py", description="Mirror a Hugging Face snapshot at a pinned commit "
                     "into S3 for vLLM's Run:ai model streamer (--load-format runai_streamer).")
    parser.add_argument("--repo", required=True, help="ORG/NAME on the Hugging Face Hub")
    parser.add_argument("--revision", required=True, help="the full 40-hex commit to mirror (not a branch or tag)")
    parser.add_argument("--dest", required=True, help="s3://BUCKET/PREFIX, one prefix per model revision")
    parser.add_argument("--include", action="append", default=[], metavar="PATTERN",
                        help="mirror only paths matching one of these fnmatch patterns (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="also skip paths matching this fnmatch pattern (repeatable)")
    parser.add_argument("--part-size-mib", type=int, default=DEFAULT_PART_MIB,
                        help=f"multipart part size and threshold ({MIN_PART_MIB}-{MAX_PART_MIB}, "
                             f"default {DEFAULT_PART_MIB})")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where one file at a time is downloaded (default: the system temp dir)")
    return parser


def parse_options(argv: Sequence[str]) -> Options:
    raw = _parser().parse_args(list(argv))
    bucket, prefix = parse_dest(raw.dest)
    return Options(repo=parse_repo(raw.repo), revision=parse_revision(raw.revision), bucket=bucket, prefix=prefix,
                   include=tuple(raw.include), exclude=tuple(raw.exclude),
                   part_size=parse_part_size(raw.part_size_mib) * MIB, work_dir=raw.work_dir)


def parse_repo(value: str) -> str:
    if not REPO_ID.fullmatch(value) or ".." in value:
        raise UsageError(f"--repo {value!r} is not a Hub model id: pass ORG/NAME as on the Hub, "
                         "e.g. meta-llama/Llama-3.1-8B-Instruct")
    return value


def parse_revision(value: str) -> str:
    if not COMMIT.fullmatch(value.lower()):
        raise UsageError(f"--revision {value!r} is not a commit: pass the full 40-hex commit hash (a branch or tag "
                         "can move, so a mirror of it is not reproducible); find it with "
                         "`git ls-remote https://huggingface.co/ORG/NAME refs/heads/main`")
    return value.lower()


def parse_dest(value: str) -> tuple[str, str]:
    fix = ("pass s3://BUCKET/PREFIX with one prefix per model revision, "
           "e.g. s3://my-models/meta-llama/Llama-3.1-8B/<commit>")
    if not value.startswith("s3://"):
        raise UsageError(f"--dest {value!r} is not an s3:// URL: {fix}")
    bucket, _, prefix = value[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    if not BUCKET.fullmatch(bucket):
        raise UsageError(f"--dest {value!r}: {bucket!r} is not a valid S3 bucket name: {fix}")
    parts = prefix.split("/")
    if not prefix or any(part in ("", ".", "..") for part in parts):
        raise UsageError(f"--dest {value!r} has no usable prefix (the streamer loads every *.safetensors under it): "
                         f"{fix}")
    return bucket, prefix


def parse_part_size(mib: int) -> int:
    if not MIN_PART_MIB <= mib <= MAX_PART_MIB:
        raise UsageError(f"--part-size-mib {mib} is outside S3's part sizes: pass {MIN_PART_MIB} to {MAX_PART_MIB}")
    return mib


# ---------------------------------------------------------------------------------------------------------------------
# What to mirror (pure)


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    blob_id: str | None  # git blob id (of the LFS pointer for LFS files)
    lfs_sha256: str | None  # sha256 of the content, for LFS files


@dataclass(frozen=True)
class Selection:
    files: tuple[HubFile, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, why)


def matches(path: str, pattern: str) -> bool:
    """fnmatch on the path in the repo; a pattern ending in "/" means everything under that folder."""
    return fnmatch.fnmatchcase(path, pattern + "*" if pattern.endswith("/") else pattern)


def skip_reason(path: str, include: Sequence[str], exclude: Sequence[str]) -> str | None:
    if include and not any(matches(path, pattern) for pattern in include):
        return "not matched by --include"
    for pattern in exclude:
        if matches(path, pattern):
            return f"--exclude {pattern}"
    if any(matches(path, folder) for folder in IGNORED_DIRS):
        return "original/ (vLLM ignores it by default)"
    if any(matches(path.rsplit("/", 1)[-1], pattern) for pattern in OTHER_WEIGHTS):
        return "not safetensors (the streamer reads only *.safetensors)"
    return None


def select(files: Sequence[HubFile], include: Sequence[str], exclude: Sequence[str]) -> Selection:
    kept: list[HubFile] = []
    skipped: list[tuple[str, str]] = []
    for file in sorted(files, key=lambda f: f.path):
        reason = skip_reason(file.path, include, exclude)
        if reason is None:
            kept.append(file)
        else:
            skipped.append((file.path, reason))
    return Selection(tuple(kept), tuple(skipped))


def unsafe_paths(paths: Iterable[str]) -> list[str]:
    """Paths that would leave the work dir or the prefix (absolute, "..", empty parts): a real Hub lists none."""
    return [path for path in paths
            if path.startswith("/") or "\\" in path or any(part in ("", ".", "..") for part in path.split("/"))]


def shards_of_index(text: str) -> set[str]:
    try:
        weight_map = json.loads(text)["weight_map"]
    except (ValueError, KeyError, TypeError) as error:
        raise MirrorError(f"{INDEX_NAME} is not a safetensors index ({error}): mirror a revision with a valid index, "
                          f"or --exclude {INDEX_NAME}") from None
    if not isinstance(weight_map, dict) or not all(isinstance(shard, str) for shard in weight_map.values()):
        raise MirrorError(f"{INDEX_NAME}: its weight_map is not a map of tensor names to files")
    return set(weight_map.values())


def keep_indexed_shards(selection: Selection, shards: set[str]) -> Selection:
    """Drop the *.safetensors the index does not name, as vLLM's filter_duplicate_safetensors_files does."""
    present = {file.path for file in selection.files if file.path.endswith(".safetensors")}
    missing = sorted(shards - present)
    if missing:
        raise MirrorError(f"{INDEX_NAME} names shards that this revision (after --include/--exclude) lacks: "
                          f"{', '.join(missing[:5])}; vLLM would fail on them")
    kept = tuple(f for f in selection.files if not f.path.endswith(".safetensors") or f.path in shards)
    dropped = tuple((f.path, f"not in {INDEX_NAME} (the streamer would load it twice)")
                    for f in selection.files if f not in kept)
    return Selection(kept, selection.skipped + dropped)


def check_servable(selection: Selection, repo: str, revision: str) -> None:
    paths = [file.path for file in selection.files]
    if not any(path.endswith(".safetensors") for path in paths):
        raise MirrorError(f"{repo}@{revision}: nothing to stream: no *.safetensors among the files to mirror (the "
                          "Run:ai streamer reads only safetensors; pick a revision or repo that has them)")
    if "config.json" not in paths:
        raise MirrorError(f"{repo}@{revision}: no config.json among the files to mirror (vLLM needs it beside the "
                          "weights); check --include/--exclude")


def manifest_bytes(options: Options, entries: Sequence[tuple[HubFile, str]]) -> bytes:
    files = [{"path": file.path, "size": file.size, "sha256": sha256} for file, sha256 in entries]
    document = {"format": MANIFEST_FORMAT, "tool": "kindo-models mirror_weights", "repo": options.repo,
                "revision": options.revision, "files": files, "total_bytes": sum(f.size for f, _ in entries)}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


# ---------------------------------------------------------------------------------------------------------------------
# Checks on bytes and objects


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    git_blob_id: str


def digest_file(path: Path) -> Digests:
    size = path.stat().st_size
    sha256, git = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())  # git's blob id: sha1 of header + bytes
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(8 * MIB), b""):
            sha256.update(chunk)
            git.update(chunk)
    return Digests(size, sha256.hexdigest(), git.hexdigest())


def download_mismatch(file: HubFile, got: Digests) -> str | None:
    if got.size != file.size:
        return f"size {got.size}, the Hub says {file.size}"
    if file.lfs_sha256 and got.sha256 != file.lfs_sha256:
        return f"sha256 {got.sha256}, the Hub says {file.lfs_sha256}"
    if not file.lfs_sha256 and file.blob_id and got.git_blob_id != file.blob_id:
        return f"git blob id {got.git_blob_id}, the Hub says {file.blob_id}"
    return None


def stored_sha256(head: Mapping[str, Any], file: HubFile) -> str | None:
    """The object's sha256 when it already holds this file (same size and ids), else None."""
    metadata = {key.lower(): value for key, value in (head.get("Metadata") or {}).items()}
    sha256 = metadata.get(META_SHA256, "")
    if head.get("ContentLength") != file.size or not SHA256_HEX.fullmatch(sha256):
        return None
    if file.lfs_sha256:
        return sha256 if sha256 == file.lfs_sha256 else None
    return sha256 if file.blob_id and metadata.get(META_BLOB) == file.blob_id else None


# ---------------------------------------------------------------------------------------------------------------------
# The libraries (lazy: --help and usage errors need neither)


@dataclass(frozen=True)
class Libraries:
    hub: ModuleType
    hub_errors: ModuleType
    boto3: ModuleType
    botocore_exceptions: ModuleType
    boto3_exceptions: ModuleType
    transfer: ModuleType
    botocore_config: ModuleType


def bounded_hub_environment(work_dir: Path) -> None:
    # Read by huggingface_hub at import: set them first. An operator's own values win.
    os.environ.setdefault("HF_HOME", str(work_dir / "hf-home"))
    os.environ.setdefault("HF_XET_CHUNK_CACHE_SIZE_BYTES", "0")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Telemetry off: huggingface_hub 2.x would otherwise also fetch {HF_ENDPOINT}/api/agent-harnesses.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def load_libraries() -> Libraries:
    try:
        import boto3
        import boto3.exceptions
        import boto3.s3.transfer
        import botocore.config
        import botocore.exceptions
        import huggingface_hub
        import huggingface_hub.errors
    except ImportError as error:
        raise MirrorError(f"needs huggingface_hub and boto3 (both in the vllm/vllm-openai image); cannot import "
                          f"{error.name or error}: run it with the image's python3 or pip install them") from None
    return Libraries(huggingface_hub, huggingface_hub.errors, boto3, botocore.exceptions, boto3.exceptions,
                     boto3.s3.transfer, botocore.config)


def describe_failure(error: BaseException, libraries: Libraries | None) -> str:
    """One line for an error from the Hub, S3 or the network, naming what to fix where we know it."""
    if libraries is not None:
        hub, s3 = libraries.hub_errors, libraries.botocore_exceptions
        if isinstance(error, hub.GatedRepoError):
            return ("the repo is gated: set HF_TOKEN to a token of an account that accepted the model's license "
                    f"({first_line(error)})")
        if isinstance(error, hub.RevisionNotFoundError):
            return f"the Hub has no such revision in the repo ({first_line(error)})"
        if isinstance(error, hub.RepositoryNotFoundError):
            return ("the Hub has no such repo, or it is private and HF_TOKEN is unset or has no access "
                    f"({first_line(error)})")
        if isinstance(error, s3.NoCredentialsError):
            return ("no AWS credentials: give the Job's service account an IAM role (EKS Pod Identity or IRSA) with "
                    "s3:ListBucket, s3:GetObject, s3:PutObject, s3:AbortMultipartUpload on the prefix")
        if isinstance(error, s3.ClientError):
            return s3_refusal(error)
    return f"{type(error).__name__}: {first_line(error)}"


def s3_refusal(error: Any) -> str:
    details = error.response.get("Error", {})
    code, operation = details.get("Code", "?"), getattr(error, "operation_name", "?")
    hint = ""
    if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        hint = "; " + IAM_FIX
    return f"S3 refused {operation}: {code} {details.get('Message', '')}".rstrip() + hint


def first_line(error: BaseException, limit: int = 400) -> str:
    """The error's message on one line (huggingface_hub puts the Hub's own message on its later lines)."""
    text = " ".join(str(error).split())
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return text or type(error).__name__


# ---------------------------------------------------------------------------------------------------------------------
# The mirror


@dataclass
class Counts:
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0


class Mirror:
    def __init__(self, options: Options, libraries: Libraries, reporter: Reporter, work_dir: Path,
                 token: str | None) -> None:
        self.options, self.lib, self.reporter, self.work_dir = options, libraries, reporter, work_dir
        self.token: str | bool = token or False  # False: no token from a file either
        self.download_dir = work_dir / "download"
        config = libraries.botocore_config.Config(retries={"mode": "standard", "max_attempts": 8},
                                                  user_agent_extra="kindo-models-mirror")
        self.s3 = libraries.boto3.client("s3", config=config)
        self.transfer_config = libraries.transfer.TransferConfig(
            multipart_threshold=options.part_size, multipart_chunksize=options.part_size,
            max_concurrency=UPLOAD_THREADS)
        self.counts = Counts()
        self.prefetched: dict[str, tuple[Path, Digests]] = {}  # path -> (local copy, digests) fetched while planning

    # -- Hub

    def list_snapshot(self) -> list[HubFile]:
        api = self.lib.hub.HfApi(token=self.token)
        info = api.model_info(self.options.repo, revision=self.options.revision, files_metadata=True)
        if info.sha != self.options.revision:
            raise MirrorError(f"the Hub resolved revision {self.options.revision} to {info.sha}: pass the commit "
                              "itself")
        files = [HubFile(s.rfilename, s.size, s.blob_id, s.lfs.sha256 if s.lfs else None) for s in info.siblings or []]
        unsized = [file.path for file in files if file.size is None]
        if unsized:
            raise MirrorError(f"the Hub gave no size for {', '.join(unsized[:3])}: cannot check the mirror")
        unsafe = unsafe_paths(file.path for file in files)
        if unsafe:
            raise MirrorError(f"the Hub listed paths that leave the snapshot: {', '.join(unsafe[:3])}; not mirrored")
        return files

    def download(self, file: HubFile) -> Path:
        free = shutil.disk_usage(self.work_dir).free
        if free < file.size + DISK_MARGIN:
            raise MirrorError(f"{file.path} needs {human(file.size + DISK_MARGIN)} free in {self.work_dir}, which has "
                              f"{human(free)}: give the Job ephemeral storage (an emptyDir) of at least the largest "
                              "file plus 64 MiB")
        started = time.monotonic()
        local = Path(self.lib.hub.hf_hub_download(self.options.repo, file.path, revision=self.options.revision,
                                                  local_dir=str(self.download_dir), token=self.token))
        took = time.monotonic() - started
        self.reporter.line(f"downloaded {file.path} {human(file.size)} in {took:.1f} s ({rate(file.size, took)})")
        return local

    def fetch_verified(self, file: HubFile) -> tuple[Path, Digests]:
        local = self.download(file)
        digests = digest_file(local)
        mismatch = download_mismatch(file, digests)
        if mismatch:
            raise MirrorError(f"{file.path}: the download does not match the Hub's listing at "
                              f"{self.options.revision} ({mismatch}); nothing of it was uploaded: rerun the Job")
        return local, digests

    # -- S3

    def list_prefix(self) -> dict[str, int]:
        objects: dict[str, int] = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.options.bucket,
                                                                  Prefix=self.options.prefix + "/")
        for page in pages:
            objects.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        return objects

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.s3.head_object(Bucket=self.options.bucket, Key=key)
        except self.lib.botocore_exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read_object(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.options.bucket, Key=key)["Body"].read()

    def upload(self, file: HubFile, local: Path, digests: Digests) -> None:
        key = self.options.key(file.path)
        metadata = {META_SHA256: digests.sha256, META_BLOB: file.blob_id or "", META_REVISION: self.options.revision}
        started = time.monotonic()
        try:
            self.s3.upload_file(str(local), self.options.bucket, key, ExtraArgs={"Metadata": metadata},
                                Config=self.transfer_config,
                                Callback=Progress(self.reporter, f"uploading {file.path}", file.size))
        except self.lib.boto3_exceptions.S3UploadFailedError as error:
            fix = (IAM_FIX if "AccessDenied" in str(error) else
                   "rerun the Job: the files already uploaded are kept, the unfinished multipart upload was aborted")
            raise MirrorError(f"upload of {file.path} to s3://{self.options.bucket}/{key} failed: {first_line(error)}"
                              f"; {fix}") from None
        took = time.monotonic() - started
        head = self.head(key)
        if head is None or stored_sha256(head, file) != digests.sha256:
            raise MirrorError(f"s3://{self.options.bucket}/{key} does not hold what was uploaded (size or sha256 "
                              "metadata differ): check the bucket for other writers, then rerun the Job")
        self.reporter.line(f"uploaded {file.path} {human(file.size)} in {took:.1f} s ({rate(file.size, took)})")

    # -- steps

    def previous_manifest(self, existing: Mapping[str, int]) -> bytes | None:
        """The manifest already at the prefix (None if none); refuses one that describes another mirror."""
        if self.options.manifest_key not in existing:
            return None
        previous = self.read_object(self.options.manifest_key)
        try:
            named = json.loads(previous)
            mirror_of = (named.get("repo"), named.get("revision"))
        except (ValueError, AttributeError):
            mirror_of = (None, None)
        if mirror_of != (self.options.repo, self.options.revision):
            raise MirrorError(f"{self.options.dest} holds a mirror of {mirror_of[0]}@{mirror_of[1]}: mirror each "
                              "model revision to its own prefix (e.g. .../ORG/NAME/<commit>)")
        return previous

    def check_strays(self, existing: Mapping[str, int], selection: Selection) -> None:
        """Refuses *.safetensors under the prefix that are not in this mirror: the streamer would load them."""
        planned = {self.options.key(file.path) for file in selection.files} | {self.options.manifest_key}
        strays = sorted(set(existing) - planned)
        stray_weights = [key for key in strays if key.endswith(".safetensors")]
        if stray_weights:
            raise MirrorError(f"{self.options.dest} holds *.safetensors that are not part of this mirror (the streamer "
                              f"would load them): {', '.join(stray_weights[:5])}; delete them or use an empty prefix")
        for key in strays[:20]:
            self.reporter.warn(f"s3://{self.options.bucket}/{key} is not part of this mirror (vLLM pulls every "
                               "non-weight file of the prefix at start)")

    def index_shards(self, selection: Selection, existing: Mapping[str, int]) -> set[str] | None:
        index = next((file for file in selection.files if file.path == INDEX_NAME), None)
        if index is None:
            return None
        key = self.options.key(INDEX_NAME)
        head = self.head(key) if existing.get(key) == index.size else None
        if head is not None and stored_sha256(head, index):
            return shards_of_index(self.read_object(key).decode("utf-8"))  # already mirrored: no Hub download
        try:
            local, digests = self.fetch_verified(index)
            kept = self.work_dir / "prefetched" / INDEX_NAME  # uploaded with the others: downloaded once
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(local), str(kept))
        finally:
            shutil.rmtree(self.download_dir, ignore_errors=True)
        self.prefetched[INDEX_NAME] = (kept, digests)
        return shards_of_index(kept.read_text(encoding="utf-8"))

    def plan(self, existing: Mapping[str, int]) -> Selection:
        listed = self.list_snapshot()
        selection = select(listed, self.options.include, self.options.exclude)
        shards = self.index_shards(selection, existing)
        if shards is not None:
            selection = keep_indexed_shards(selection, shards)
        check_servable(selection, self.options.repo, self.options.revision)
        for path, reason in selection.skipped:
            self.reporter.line(f"skipping {path}: {reason}")
        largest = max(file.size for file in selection.files)
        self.reporter.line(f"plan: {len(selection.files)} files, {human(sum(f.size for f in selection.files))}, "
                           f"the largest {human(largest)} (the work dir needs that much free)")
        return selection

    def mirror_file(self, file: HubFile, existing: Mapping[str, int]) -> str:
        key = self.options.key(file.path)
        head = self.head(key) if existing.get(key) == file.size else None
        already = stored_sha256(head, file) if head is not None else None
        if already:
            self.counts.skipped += 1
            self.reporter.line(f"already there: {file.path} {human(file.size)} (same size and hashes)")
            return already
        try:
            local, digests = self.prefetched.pop(file.path, None) or self.fetch_verified(file)
            self.upload(file, local, digests)
            local.unlink()
        finally:
            shutil.rmtree(self.download_dir, ignore_errors=True)
        self.counts.uploaded += 1
        self.counts.bytes_uploaded += file.size
        return digests.sha256

    def run(self) -> dict[str, Any]:
        existing = self.list_prefix()
        previous_manifest = self.previous_manifest(existing)
        selection = self.plan(existing)
        self.check_strays(existing, selection)
        entries = [(file, self.mirror_file(file, existing)) for file in selection.files]
        manifest = manifest_bytes(self.options, entries)
        manifest_url = f"s3://{self.options.bucket}/{self.options.manifest_key}"
        if manifest == previous_manifest:
            self.reporter.line(f"manifest unchanged: {manifest_url}")
        else:
            self.s3.put_object(Bucket=self.options.bucket, Key=self.options.manifest_key, Body=manifest,
                               ContentType="application/json")
            self.reporter.line(f"wrote the manifest last: {manifest_url}")
        return {"files": len(entries), "uploaded": self.counts.uploaded, "skipped": self.counts.skipped,
                "bytes_total": sum(file.size for file, _ in entries), "bytes_uploaded": self.counts.bytes_uploaded,
                "manifest": manifest_url}


# ---------------------------------------------------------------------------------------------------------------------
# Entry point


def make_work_dir(parent: Path | None) -> Path:
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="kindo-mirror-", dir=str(parent) if parent else None))


def run(options: Options, reporter: Reporter, summary: dict[str, Any]) -> None:
    """Mirror, filling `summary` (with the counts so far when it fails)."""
    work_dir = make_work_dir(options.work_dir)
    libraries: Libraries | None = None
    mirror: Mirror | None = None
    try:
        bounded_hub_environment(work_dir)
        libraries = load_libraries()
        reporter.line(f"{options.repo}@{options.revision} -> {options.dest} (huggingface_hub "
                      f"{libraries.hub.__version__}, boto3 {libraries.boto3.__version__}, "
                      f"HF token {'set' if os.environ.get('HF_TOKEN') else 'unset'})")
        mirror = Mirror(options, libraries, reporter, work_dir, os.environ.get("HF_TOKEN") or None)
        summary.update(mirror.run())
    except MirrorError:
        raise
    except Exception as error:  # the Hub, S3 or the network: one line, not a traceback
        raise MirrorError(describe_failure(error, libraries)) from None
    finally:
        if mirror is not None and "uploaded" not in summary:
            summary.update(uploaded=mirror.counts.uploaded, skipped=mirror.counts.skipped,
                           bytes_uploaded=mirror.counts.bytes_uploaded)
        shutil.rmtree(work_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    reporter = Reporter(secret_values(os.environ))
    started = time.monotonic()
    summary: dict[str, Any] = {"status": "failed"}
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
        summary.update(repo=options.repo, revision=options.revision, dest=options.dest)
        run(options, reporter, summary)
        summary["status"] = "done"
        code = EXIT_DONE
    except UsageError as error:
        reporter.error(str(error))
        summary.update(status="usage-error", reason=str(error))
        code = EXIT_USAGE
    except MirrorError as error:
        reporter.error(str(error))
        summary.update(reason=str(error))
        code = EXIT_FAILED
    except KeyboardInterrupt:
        summary.update(reason="interrupted")
        code = EXIT_FAILED
    summary["seconds"] = round(time.monotonic() - started, 2)
    reporter.summary(summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
