#!/usr/bin/env python3
"""Generate planner/data/vllm_releases.json from each vLLM release's own files on PyPI.

What is read, per release (the latest patch of every minor from 0.8 on, or the ones named with --release):
  * the x86_64 wheel (Python source only, never imported): tool and reasoning parser registries, quantization
    methods, kv-cache dtypes, the gpu_memory_utilization default, the OpenAI-server batch defaults, what the
    KV-cache budget is charged with, and the `vllm serve` flags;
  * the sdist (the source tree at the release tag): docker/Dockerfile and examples/**/*.jinja, i.e. the chat
    templates the vllm/vllm-openai image carries and where.

How it is fetched and verified:
  * the file list, sizes, sha256 digests and upload times come from PyPI's simple index (PEP 691 JSON);
  * a whole wheel already in .cache/vllm-wheels/ (`pip download vllm==X --no-deps --only-binary=:all:
    -d .cache/vllm-wheels`) is read from disk after its sha256 matches the index;
  * otherwise only the members needed are read with HTTP range requests (a few MB instead of 250-500 MB),
    the total size must match the index, and every member read must match the sha256 that the wheel's own
    RECORD lists for it;
  * the sdist is streamed whole and its sha256 must match the index; the Python files read from the wheel must
    be byte-identical to the same files in the sdist (the image is built from that source tree).
Whatever was read is kept in .cache/vllm-wheels/<release>.extract.zip, so a rerun (and the test that compares
the committed file with a rerun) works offline.

Usage:
  scripts/gen_vllm_releases.py                    # every latest patch from 0.8 on; rewrites the data file
  scripts/gen_vllm_releases.py --release 0.34.0   # add or refresh one release, keep the others
  scripts/gen_vllm_releases.py --check            # regenerate the recorded releases; exit 1 with a diff if the
                                                  # committed file differs
  scripts/gen_vllm_releases.py --all-patches      # every final release from 0.8 on, patches included
"""

from __future__ import annotations

import argparse
import ast
import base64
import dataclasses
import datetime as dt
import difflib
import functools
import hashlib
import io
import json
import re
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

# Bump when the extraction changes what it writes, so a reader can tell old data from new.
GENERATOR_VERSION = 2
ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "planner" / "data" / "vllm_releases.json"
CACHE = ROOT / ".cache" / "vllm-wheels"
INDEX_URL = "https://pypi.org/simple/vllm/"
FIRST_MINOR = (0, 8)
HTTP_TIMEOUT_S = 120
# Range reads closer than this are merged into one request: fewer round trips for a few extra bytes.
COALESCE_GAP = 1 << 20
# The central directory of a vLLM wheel is ~0.5-1 MB; one request of this size usually holds all of it.
TAIL_READ = 2 << 20


class GenerationError(Exception):
    """The release's files do not look like anything this generator knows: the message says what to update."""


# --------------------------------------------------------------------------- PyPI index


@dataclasses.dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str
    size: int
    uploaded: str  # ISO 8601, from the index

    def as_source(self) -> dict[str, Any]:
        return {"file": self.filename, "url": self.url, "sha256": self.sha256, "size": self.size,
                "uploaded": self.uploaded}


WHEEL_NAME = re.compile(r"^vllm-(?P<version>[^-]+)(?:-(?P<build>\d+))?-cp\d+-abi3-manylinux[^-]*_x86_64\.whl$")


def http_get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return response.read()


def fetch_index() -> list[IndexFile]:
    raw = http_get(INDEX_URL, {"Accept": "application/vnd.pypi.simple.v1+json"})
    files = []
    for entry in json.loads(raw)["files"]:
        if entry.get("yanked"):
            continue
        files.append(IndexFile(entry["filename"], entry["url"], entry["hashes"]["sha256"], int(entry["size"]),
                               str(entry.get("upload-time", ""))))
    return files


def _final_version(text: str) -> Version | None:
    try:
        version = Version(text)
    except InvalidVersion:
        return None
    return None if version.is_prerelease or version.is_devrelease else version


def wheels_by_version(files: Iterable[IndexFile]) -> dict[Version, IndexFile]:
    """The x86_64 wheel pip would pick for each final release (the highest build tag, e.g. 0.21.0-1)."""
    best: dict[Version, tuple[int, IndexFile]] = {}
    for file in files:
        match = WHEEL_NAME.match(file.filename)
        version = _final_version(match["version"]) if match else None
        if match is None or version is None:
            continue
        build = int(match["build"] or 0)
        if version not in best or build > best[version][0]:
            best[version] = (build, file)
    return {version: file for version, (_, file) in best.items()}


def file_version(filename: str) -> Version | None:
    """The release a file of the index belongs to: vllm-X-....whl (any platform, any build tag) or vllm-X.tar.gz."""
    match = re.match(r"^vllm-(?P<version>[^-]+?)(?:\.tar\.gz|-.+\.whl)$", filename)
    return _final_version(match["version"]) if match else None


def first_upload(files: Iterable[IndexFile], version: Version) -> str:
    """When the release first appeared on PyPI: the earliest upload of any of its files (rebuilds such as
    0.23.0-2 came days later)."""
    return min(file.uploaded for file in files if file_version(file.filename) == version)


def sdist_for(files: Iterable[IndexFile], version: Version) -> IndexFile | None:
    for file in files:
        if file.filename.endswith(".tar.gz") and _final_version(file.filename[len("vllm-"):-len(".tar.gz")]) == version:
            return file
    return None


def latest_patches(versions: Iterable[Version], first: tuple[int, int] = FIRST_MINOR) -> list[Version]:
    """The newest release of each minor series from `first` on (0.8.5.post1 beats 0.8.5, 0.10.2 beats 0.10.1.1)."""
    newest: dict[tuple[int, int], Version] = {}
    for version in versions:
        series = (version.major, version.minor)
        if series >= first and (series not in newest or version > newest[series]):
            newest[series] = version
    return sorted(newest.values())


# --------------------------------------------------------------------------- reading zip members over HTTP


class RangeReader(io.RawIOBase):
    """A read-only, seekable view of a remote file that fetches only the byte ranges asked for."""

    def __init__(self, url: str, size: int) -> None:
        super().__init__()
        self.url, self.size, self.position = url, size, 0
        self.chunks: list[tuple[int, bytes]] = []
        self.requests = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def prefetch(self, start: int, end: int) -> None:
        """Fetch [start, end) in one request and keep it."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            content_range = response.headers.get("Content-Range", "")
            data = response.read()
        total = content_range.rsplit("/", 1)[-1]
        if response.status != 206 or total != str(self.size) or len(data) != end - start:
            raise GenerationError(f"{self.url}: range {start}-{end - 1} came back as {response.status} "
                                  f"{content_range!r} ({len(data)} bytes); the index says {self.size} bytes")
        self.requests += 1
        self.bytes_read += len(data)
        self.chunks.append((start, data))

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.position + size, self.size)
        for start, data in self.chunks:
            if start <= self.position and end <= start + len(data):
                out = data[self.position - start:end - start]
                self.position = end
                return out
        # Not prefetched (a local header read ahead of its data): fetch at least 64 KiB.
        self.prefetch(self.position, max(end, self.position + (64 << 10)))
        return self.read(size)


def record_digests(record_text: str) -> dict[str, str]:
    """path -> sha256 hex, from a wheel's RECORD (`path,sha256=<urlsafe b64>,size`)."""
    digests = {}
    for line in record_text.splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            encoded = parts[1][len("sha256="):]
            digests[parts[0]] = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
    return digests


# --------------------------------------------------------------------------- which members to read

WHEEL_MEMBERS = re.compile(
    r"^vllm/("
    r"entrypoints/openai/tool_parsers/[^/]+\.py|tool_parsers/[^/]+\.py|reasoning/[^/]+\.py"
    r"|entrypoints/openai/reasoning_parsers/[^/]+\.py"
    r"|model_executor/layers/quantization/__init__\.py"
    r"|config\.py|config/[^/]+\.py"
    r"|engine/arg_utils\.py|envs\.py|v1/worker/gpu_worker\.py"
    r"|v1/sample/ops/topk_topp_sampler\.py|v1/core/kv_cache_utils\.py|v1/kv_cache_interface\.py"
    r"|entrypoints/cli/serve\.py|entrypoints/(?:[^/]+/)*cli_args\.py"
    r")$"
)
SDIST_MEMBERS = re.compile(r"^(docker/Dockerfile|Dockerfile|examples/.+\.jinja)$")


def wanted_wheel_member(name: str) -> bool:
    return bool(WHEEL_MEMBERS.match(name)) or name.endswith(".dist-info/RECORD") or name.endswith(".dist-info/METADATA")


@dataclasses.dataclass
class Extract:
    """What was read from one release: wheel members, sdist members, and where they came from."""

    version: str
    wheel: dict[str, bytes]
    sdist: dict[str, bytes]
    manifest: dict[str, Any]

    @property
    def sources(self) -> dict[str, str]:
        return {path: data.decode("utf-8") for path, data in self.wheel.items() if path.endswith(".py")}


def extract_path(version: str) -> Path:
    return CACHE / f"vllm-{version}.extract.zip"


def save_extract(extract: Extract) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    target = extract_path(extract.version)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(extract.manifest, indent=1, sort_keys=True))
        for path, data in sorted(extract.wheel.items()):
            archive.writestr(f"wheel/{path}", data)
        for path, data in sorted(extract.sdist.items()):
            archive.writestr(f"sdist/{path}", data)
    partial.replace(target)


def load_extract(version: str) -> Extract | None:
    """A cached extract, re-verified: every wheel member against the RECORD digests it was read with."""
    path = extract_path(version)
    if not path.exists():
        return None
    wheel, sdist = {}, {}
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for name in archive.namelist():
            if name.startswith("wheel/"):
                wheel[name[len("wheel/"):]] = archive.read(name)
            elif name.startswith("sdist/"):
                sdist[name[len("sdist/"):]] = archive.read(name)
    if manifest.get("memberPatterns") != member_patterns() or "firstUpload" not in manifest:
        return None  # read by an older generator (another selection of files, fewer facts): read again
    extract = Extract(version, wheel, sdist, manifest)
    verify_against_record(extract.wheel, f"cached {path.name}")
    return extract


def member_patterns() -> list[str]:
    return [WHEEL_MEMBERS.pattern, SDIST_MEMBERS.pattern]


def verify_against_record(members: dict[str, bytes], what: str) -> None:
    record_name = next((name for name in members if name.endswith(".dist-info/RECORD")), None)
    if record_name is None:
        raise GenerationError(f"{what}: no .dist-info/RECORD among the members read")
    digests = record_digests(members[record_name].decode("utf-8"))
    for name, data in members.items():
        if name == record_name:
            continue
        expected = digests.get(name)
        if expected is None or hashlib.sha256(data).hexdigest() != expected:
            raise GenerationError(f"{what}: {name} does not match the sha256 in the wheel's RECORD; "
                                  f"delete the cached copy and rerun")


def read_wheel(file: IndexFile, timings: dict[str, float]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The wanted members of the wheel: from a whole cached wheel if there is one, else by range reads."""
    started = time.monotonic()
    local = CACHE / file.filename
    if local.exists():
        with local.open("rb") as whole:  # 250-500 MB: hash it in chunks, not in memory
            digest = hashlib.file_digest(whole, "sha256").hexdigest()
        if digest != file.sha256:
            raise GenerationError(f"{local}: sha256 {digest} differs from PyPI's {file.sha256}; delete it and rerun")
        with zipfile.ZipFile(local) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist() if wanted_wheel_member(info.filename)}
        how: dict[str, Any] = {"method": "whole wheel in .cache/vllm-wheels",
                               "verified": "sha256 of the whole wheel matches PyPI's index"}
    else:
        reader = RangeReader(file.url, file.size)
        reader.prefetch(file.size - TAIL_READ, file.size)
        with zipfile.ZipFile(reader) as archive:
            infos = sorted((info for info in archive.infolist() if wanted_wheel_member(info.filename)),
                           key=lambda info: info.header_offset)
            spans: list[list[int]] = []
            for info in infos:
                # local header (30 bytes + name + extra, extra is small) followed by the compressed data
                start, end = info.header_offset, info.header_offset + 30 + len(info.filename.encode()) + 1024 + info.compress_size
                if spans and start - spans[-1][1] < COALESCE_GAP:
                    spans[-1][1] = max(spans[-1][1], end)
                else:
                    spans.append([start, end])
            for start, end in spans:
                reader.prefetch(start, end)
            members = {info.filename: archive.read(info) for info in infos}  # zipfile checks each CRC-32
        verify_against_record(members, file.filename)
        how = {"method": "HTTP range reads", "requests": reader.requests, "bytesRead": reader.bytes_read,
               "verified": "total size matches PyPI's index; every member read matches the sha256 in the wheel's RECORD"}
    timings["wheel"] = timings.get("wheel", 0.0) + time.monotonic() - started
    return members, how


def read_sdist(file: IndexFile, wheel_members: dict[str, bytes],
               timings: dict[str, float]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Dockerfile and example templates from the sdist, streamed and hashed whole; cross-checks the wheel."""
    started = time.monotonic()
    local = CACHE / file.filename
    data = local.read_bytes() if local.exists() else http_get(file.url)
    digest = hashlib.sha256(data).hexdigest()
    if digest != file.sha256:
        raise GenerationError(f"{file.filename}: sha256 {digest} differs from PyPI's {file.sha256}")
    members: dict[str, bytes] = {}
    mismatched: list[str] = []
    wheel_python = {name for name in wheel_members if name.endswith(".py")}
    seen_python: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for info in archive:
            if not info.isfile() or "/" not in info.name:
                continue
            relative = info.name.split("/", 1)[1]  # strip the vllm-X.Y.Z/ prefix
            if SDIST_MEMBERS.match(relative):
                members[relative] = archive.extractfile(info).read()  # type: ignore[union-attr]
            elif relative in wheel_python:
                seen_python.add(relative)
                if archive.extractfile(info).read() != wheel_members[relative]:  # type: ignore[union-attr]
                    mismatched.append(relative)
    missing = sorted(wheel_python - seen_python)
    timings["sdist"] = timings.get("sdist", 0.0) + time.monotonic() - started
    return members, {
        "verified": "sha256 of the whole sdist matches PyPI's index",
        "pythonFilesCompared": len(seen_python),
        "pythonFilesDiffering": sorted(mismatched),
        "pythonFilesMissing": missing,
    }


def fetch_extract(version: Version, files: list[IndexFile], timings: dict[str, float]) -> Extract:
    wheel_file = wheels_by_version(files).get(version)
    sdist_file = sdist_for(files, version)
    if wheel_file is None:
        raise GenerationError(f"vLLM {version}: PyPI has no x86_64 wheel for it")
    wheel, wheel_how = read_wheel(wheel_file, timings)
    manifest: dict[str, Any] = {"wheel": {**wheel_file.as_source(), **wheel_how}, "sdist": None,
                                "memberPatterns": member_patterns(), "firstUpload": first_upload(files, version)}
    sdist: dict[str, bytes] = {}
    if sdist_file is not None:  # 0.15.0 and 0.15.1 were published without one
        sdist, sdist_how = read_sdist(sdist_file, wheel, timings)
        manifest["sdist"] = {**sdist_file.as_source(), **sdist_how}
    return Extract(str(version), wheel, sdist, manifest)


# --------------------------------------------------------------------------- AST helpers

ClassRef = tuple[str, ast.ClassDef]  # (module path, class definition)


@functools.lru_cache(maxsize=256)
def parse(source: str, path: str = "<source>") -> ast.Module:
    """Parsed once per release and file: several extractors read the same big modules (arg_utils, config)."""
    return ast.parse(source, filename=path)


def literal_strings(node: ast.AST) -> list[str]:
    """"a" -> [a]; ["a", "b"] / ("a", "b") -> [a, b]; anything else -> []."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [element.value for element in node.elts if isinstance(element, ast.Constant) and isinstance(element.value, str)]
    return []


def module_assignment(tree: ast.Module, name: str) -> ast.expr | None:
    """The value assigned to a module-level name (plain or annotated assignment)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name and node.value:
            return node.value
    return None


def literal_members(node: ast.expr | None) -> list[str]:
    """The strings of `Literal["a", "b"]` (also `Literal[("a", "b")]`)."""
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", getattr(node.value, "attr", None)) == "Literal":
        inner = node.slice
        if isinstance(inner, ast.Tuple):
            return [value for element in inner.elts for value in literal_strings(element)]
        return literal_strings(inner)
    return []


def find_class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name), None)


def find_function(scope: ast.Module | ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((node for node in scope.body if isinstance(node, ast.FunctionDef) and node.name == name), None)


def dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # unparse of an odd node is only used in messages
        return type(node).__name__


# --------------------------------------------------------------------------- parser registries


def _module_of(package: str, path: str) -> str:
    return path[len(package) + 1:-len(".py")]


def registered_by_decorator(tree: ast.Module) -> dict[str, str]:
    """name -> class for `@XManager.register_module("a")`, `(["a", "b"])`, `(name=...)` or `()` (class name)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "register_module"):
                continue
            names = [n for arg in decorator.args[:1] for n in literal_strings(arg)]
            names += [n for kw in decorator.keywords if kw.arg == "name" for n in literal_strings(kw.value)]
            if not decorator.args and not any(kw.arg == "name" for kw in decorator.keywords):
                names = [node.name]
            for name in names:
                found[name] = node.name
    return found


def _package_imports(tree: ast.Module, package_dotted: str) -> set[str]:
    """Sibling modules a module imports at top level: `from .x import Y`, `from pkg.x import Y`, `from . import x`."""
    modules = set()
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1 and node.module:
            modules.add(node.module.split(".")[0])
        elif node.level == 1 and not node.module:
            modules.update(alias.name for alias in node.names)
        elif node.level == 0 and node.module and node.module.startswith(package_dotted + "."):
            modules.add(node.module[len(package_dotted) + 1:].split(".")[0])
    return modules


def registry(sources: dict[str, str], package: str, table_name: str) -> dict[str, str]:
    """Parser name -> class, for one registry package (e.g. vllm/tool_parsers).

    Two layouts exist:
      * lazy (0.11 on): `<table_name> = {"name": ("module", "Class"), ...}` in the package __init__, registered by
        register_lazy_module at import;
      * eager (up to 0.10): each module registers its class with a `@Manager.register_module(...)` decorator, and
        only the modules that the package __init__ imports (directly or through each other) are registered.
    Decorated classes in imported modules count in both layouts.
    """
    init_path = f"{package}/__init__.py"
    if init_path not in sources:
        return {}
    package_dotted = package.replace("/", ".")
    init = parse(sources[init_path], init_path)
    names: dict[str, str] = {}
    table = module_assignment(init, table_name)
    if table is not None:
        if not isinstance(table, ast.Dict):
            raise GenerationError(f"{init_path}: {table_name} is not a dict literal")
        for key, value in zip(table.keys, table.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(value, ast.Tuple) and len(value.elts) == 2):
                raise GenerationError(f"{init_path}: unexpected {table_name} entry {dotted(key) if key else '**'}")
            module_names, class_names = (literal_strings(element) for element in value.elts)
            if not module_names or not class_names:
                raise GenerationError(f"{init_path}: {table_name}[{key.value!r}] is not (module, class)")
            if f"{package}/{module_names[0]}.py" not in sources:
                raise GenerationError(f"{init_path}: {key.value!r} points at {module_names[0]}.py, which the wheel lacks")
            names[str(key.value)] = class_names[0]
    imported = _package_imports(init, package_dotted)
    pending = list(imported)
    while pending:
        module = pending.pop()
        path = f"{package}/{module}.py"
        if path not in sources:
            continue
        tree = parse(sources[path], path)
        names.update({name: cls for name, cls in registered_by_decorator(tree).items() if name not in names})
        for nested in _package_imports(tree, package_dotted) - imported:
            imported.add(nested)
            pending.append(nested)
    return dict(sorted(names.items()))


def tool_call_parsers(sources: dict[str, str]) -> dict[str, str]:
    for package in ("vllm/tool_parsers", "vllm/entrypoints/openai/tool_parsers"):
        names = registry(sources, package, "_TOOL_PARSERS_TO_REGISTER")
        if names:
            return names
    raise GenerationError("no tool parser registry found (vllm/tool_parsers or vllm/entrypoints/openai/tool_parsers)")


def reasoning_parsers(sources: dict[str, str]) -> dict[str, str]:
    for package in ("vllm/reasoning", "vllm/entrypoints/openai/reasoning_parsers"):  # the latter up to 0.8.2
        names = registry(sources, package, "_REASONING_PARSERS_TO_REGISTER")
        if names:
            return names
    raise GenerationError("no reasoning parser registry found (vllm/reasoning or vllm/entrypoints/openai/reasoning_parsers)")


# --------------------------------------------------------------------------- quantization, kv cache


QUANT_INIT = "vllm/model_executor/layers/quantization/__init__.py"


def quantization_methods(sources: dict[str, str]) -> tuple[list[str], list[str]]:
    """(QuantizationMethods Literal, DEPRECATED_QUANTIZATION_METHODS), both in source order."""
    tree = parse(sources[QUANT_INIT], QUANT_INIT)
    # A Literal from 0.8.1 on; a plain list `QUANTIZATION_METHODS = [...]` before.
    methods = literal_members(module_assignment(tree, "QuantizationMethods")) or literal_strings(
        module_assignment(tree, "QUANTIZATION_METHODS") or ast.List(elts=[]))
    if not methods:
        raise GenerationError(f"{QUANT_INIT}: neither `QuantizationMethods = Literal[...]` nor a QUANTIZATION_METHODS list")
    deprecated = literal_strings(module_assignment(tree, "DEPRECATED_QUANTIZATION_METHODS") or ast.List(elts=[]))
    return methods, deprecated


def config_modules(sources: dict[str, str]) -> list[str]:
    return sorted(path for path in sources if path == "vllm/config.py" or path.startswith("vllm/config/"))


def kv_cache_dtypes(sources: dict[str, str]) -> list[str]:
    """The CacheDType Literal (vllm/config.py up to 0.9, vllm/config/cache.py after); --kv-cache-dtype's choices."""
    for path in config_modules(sources):
        values = literal_members(module_assignment(parse(sources[path], path), "CacheDType"))
        if values:
            return values
    # Up to 0.8.0: `add_argument('--kv-cache-dtype', choices=[...])` in arg_utils.py
    arg_utils = parse(sources["vllm/engine/arg_utils.py"], "vllm/engine/arg_utils.py")
    for node in ast.walk(arg_utils):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
                and any(literal_strings(arg) == ["--kv-cache-dtype"] for arg in node.args)):
            choices = next((literal_strings(kw.value) for kw in node.keywords if kw.arg == "choices"), [])
            if choices:
                return choices
    raise GenerationError("no `CacheDType = Literal[...]` in vllm/config*, nor --kv-cache-dtype choices in arg_utils.py")


def _class_fields(sources: dict[str, str], class_name: str) -> ClassRef | None:
    for path in [*config_modules(sources), "vllm/engine/arg_utils.py"]:
        if path in sources:
            found = find_class(parse(sources[path], path), class_name)
            if found is not None:
                return path, found
    return None


def _field_default(node: ast.expr | None) -> Any:
    """`0.9` or `Field(default=0.92, ...)` -> the number; else None."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("Field", "field"):
        for keyword in node.keywords:
            if keyword.arg == "default" and isinstance(keyword.value, ast.Constant):
                return keyword.value.value
    return None


def gpu_memory_utilization(sources: dict[str, str]) -> float:
    """EngineArgs' default, which is CacheConfig's unless EngineArgs sets its own number."""
    for class_name in ("EngineArgs", "CacheConfig"):
        located = _class_fields(sources, class_name)
        if located is None:
            continue
        for node in located[1].body:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "gpu_memory_utilization":
                value = _field_default(node.value)
                if isinstance(value, (int, float)):
                    return float(value)
    raise GenerationError("gpu_memory_utilization has no literal default in EngineArgs or CacheConfig")


# --------------------------------------------------------------------------- batch defaults


def _batch_defaults_function(tree: ast.Module) -> ast.FunctionDef:
    engine_args = find_class(tree, "EngineArgs")
    if engine_args is not None:
        for name in ("get_batch_defaults", "_set_default_args_v1", "_set_default_args"):
            function = find_function(engine_args, name)
            if function is not None and "default_max_num_batched_tokens" in ast.unparse(function):
                return function
    raise GenerationError("vllm/engine/arg_utils.py: no EngineArgs.get_batch_defaults / _set_default_args_v1")


def _openai_value(node: ast.expr) -> int:
    """The OPENAI_API_SERVER entry of `{UsageContext.X: n, ...}`, or a plain number."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if (key is not None and dotted(key).endswith("OPENAI_API_SERVER") and isinstance(value, ast.Constant)
                    and isinstance(value.value, int)):
                return value.value
    raise GenerationError(f"batch defaults: cannot read an OpenAI-server value from {dotted(node)}")


def _tier_condition(test: ast.expr) -> dict[str, Any]:
    """`device_memory >= 70 * GiB_bytes and "a100" not in device_name and not is_gb10` as data."""
    terms = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    tier: dict[str, Any] = {}
    for term in terms:
        text = dotted(term)
        gib = re.fullmatch(r"device_memory >= (\d+) \* GiB_bytes", text)
        name = re.fullmatch(r"'([^']+)' not in device_name", text)
        # 0.8.0-0.8.2: `"h100" in device_name or "h200" in device_name`, no memory bound
        names_any = re.findall(r"'([^']+)' in device_name", text)
        if gib:
            tier["minGpuGiB"] = int(gib.group(1))
        elif name:
            tier.setdefault("excludeDeviceNameContains", []).append(name.group(1))
        elif names_any and re.fullmatch(r"'[^']+' in device_name( or '[^']+' in device_name)*", text):
            tier["minGpuGiB"] = 0
            tier["deviceNameContainsAny"] = names_any
        elif text == "not is_gb10":
            # GB10 (DGX Spark) is compute capability 12.1 (see the comment next to is_gb10 in arg_utils.py)
            tier.setdefault("excludeComputeCapabilities", []).append("12.1")
        else:
            raise GenerationError(f"batch defaults: unknown tier condition `{text}`; teach _tier_condition about it")
    if "minGpuGiB" not in tier:
        raise GenerationError(f"batch defaults: tier condition `{dotted(test)}` has no device_memory bound")
    return tier


def _tier_values(body: list[ast.stmt]) -> dict[str, int]:
    values = _tier_values_partial(body)
    if "maxNumBatchedTokens" not in values:
        raise GenerationError("batch defaults: a tier does not set default_max_num_batched_tokens")
    return values


def _tier_values_partial(body: list[ast.stmt]) -> dict[str, int]:
    values: dict[str, int] = {}
    for statement in body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == "default_max_num_batched_tokens" and statement.value:
                    values["maxNumBatchedTokens"] = _openai_value(statement.value)
                if isinstance(target, ast.Name) and target.id == "default_max_num_seqs" and statement.value:
                    values["maxNumSeqs"] = _openai_value(statement.value)
    return values


def batch_tiers(sources: dict[str, str]) -> list[dict[str, Any]]:
    """OpenAI-server max_num_batched_tokens / max_num_seqs per GPU tier, first match wins (CUDA platforms).

    Read from the if/elif/else chain on device_memory in EngineArgs.get_batch_defaults (0.11 on) or
    _set_default_args_v1 (0.8-0.10). TPU/CPU/XPU overrides that follow it are not CUDA and are ignored.
    """
    function = _batch_defaults_function(parse(sources["vllm/engine/arg_utils.py"], "arg_utils.py"))
    chain = next((node for node in ast.walk(function) if isinstance(node, ast.If)
                  and re.search(r"\bdevice_(memory|name)\b", dotted(node.test))), None)
    if chain is None:
        raise GenerationError("batch defaults: no `if device_memory ...` chain")
    tiers: list[dict[str, Any]] = []
    node: ast.If | None = chain
    while node is not None:
        tiers.append({**_tier_condition(node.test), **_tier_values(node.body)})
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            node = node.orelse[0]
        else:
            tiers.append({"minGpuGiB": 0, **_tier_values(node.orelse)})
            node = None
    # Up to 0.8.4 max_num_seqs is one number set after the chain, for every tier.
    shared = _tier_values_partial([statement for statement in function.body if statement is not chain])
    for tier in tiers:
        if "maxNumSeqs" not in tier:
            if "maxNumSeqs" not in shared:
                raise GenerationError("batch defaults: no default_max_num_seqs for a tier")
            tier["maxNumSeqs"] = shared["maxNumSeqs"]
    return tiers


# --------------------------------------------------------------------------- memory accounting


def env_default(sources: dict[str, str], name: str) -> str | None:
    """The default string of `os.getenv(name, default)` inside envs.py's environment_variables, or None."""
    tree = parse(sources["vllm/envs.py"], "vllm/envs.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == name:
                    for call in ast.walk(value):
                        if (isinstance(call, ast.Call) and dotted(call.func).endswith("getenv") and len(call.args) == 2
                                and isinstance(call.args[1], ast.Constant)):
                            return str(call.args[1].value)
                    raise GenerationError(f"envs.py: {name} has no os.getenv(name, default) form")
    return None


CUDAGRAPH_ENV = "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS"


def cuda_graphs_in_budget(sources: dict[str, str]) -> bool:
    """True when the CUDA-graph memory estimate is taken from the KV budget by default.

    The estimate exists from 0.18 behind VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS (default "0" in 0.18-0.19, "1"
    after); before, graphs were captured after the KV cache and came out of the (1 - utilization) slack.
    """
    default = env_default(sources, CUDAGRAPH_ENV)
    if default is None:
        return False
    if CUDAGRAPH_ENV not in sources["vllm/v1/worker/gpu_worker.py"]:
        raise GenerationError(f"{CUDAGRAPH_ENV} is defined in envs.py but gpu_worker.py does not use it")
    return default.strip() not in ("0", "", "false", "False")


def memory_snapshot(sources: dict[str, str]) -> str:
    """How the V1 GPU worker measures the memory that is not KV cache (vllm/v1/worker/gpu_worker.py).

    whole-device: 0.8: KV = total * utilization - (torch peak + every non-torch byte on the device), so the CUDA
        context, NCCL and anything else already on the GPU are charged to the budget;
    before-distributed-init: 0.9-0.10: increases are measured from a snapshot taken after the CUDA context but
        BEFORE init_worker_distributed_environment, so NCCL's start-up buffers are charged, the context is not;
    after-distributed-init: 0.11 on: the snapshot follows NCCL init, so neither is charged (they sit in the slack).
    """
    path = "vllm/v1/worker/gpu_worker.py"
    tree = parse(sources[path], path)
    worker = next((node for node in tree.body
                   if isinstance(node, ast.ClassDef) and find_function(node, "determine_available_memory")), None)
    if worker is None:
        raise GenerationError(f"{path}: no worker class with determine_available_memory")
    determine = ast.unparse(find_function(worker, "determine_available_memory"))  # type: ignore[arg-type]
    if "memory_profiling(" in determine:
        init_device = find_function(worker, "init_device")
        if init_device is None:
            raise GenerationError(f"{path}: no init_device")
        calls = [(node.lineno, dotted(node.func)) for node in ast.walk(init_device) if isinstance(node, ast.Call)]
        snapshot = [line for line, name in calls if name.endswith("MemorySnapshot")]
        distributed = [line for line, name in calls if name.endswith("init_worker_distributed_environment")]
        if not snapshot or not distributed:
            raise GenerationError(f"{path}: init_device lacks MemorySnapshot() or init_worker_distributed_environment()")
        return "after-distributed-init" if min(snapshot) > min(distributed) else "before-distributed-init"
    if "non_torch_allocations" in determine and "mem_get_info" in determine:
        return "whole-device"
    raise GenerationError(f"{path}: determine_available_memory matches no known accounting; update memory_snapshot()")


SAMPLER_PATH = "vllm/v1/sample/ops/topk_topp_sampler.py"
FLASHINFER_SAMPLER_ENV = "VLLM_USE_FLASHINFER_SAMPLER"


def env_conditional_default(sources: dict[str, str], name: str) -> Any:
    """The value envs.py gives `name` when it is unset, for the form
    `lambda: (<parse os.environ[name]>) if name in os.environ else <constant>`; None when absent or another form."""
    tree = parse(sources["vllm/envs.py"], "vllm/envs.py")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == name:
                found = next((n for n in ast.walk(value) if isinstance(n, ast.IfExp)), None)
                if found is not None and isinstance(found.orelse, ast.Constant):
                    return found.orelse.value
                return None
    return None


def sampler_implementation(sources: dict[str, str]) -> str:
    """What the V1 sampler's top-k/top-p step runs on a CUDA GPU by default (vllm/v1/sample/ops/topk_topp_sampler.py):
    its memory at the profiling run's dummy sampler pass differs by an order of magnitude between them.

    flashinfer-when-installed: up to 0.11.0, FlashInfer whenever the package imports (`VLLM_USE_FLASHINFER_SAMPLER is
        not False` with the variable unset); the vllm/vllm-openai image ships it, a plain `pip install vllm` may not;
    pytorch-sort: FlashInfer is opt-in (variable unset = None) and the native path sorts the logits (0.11.1 on);
    triton: as pytorch-sort, but the native path runs apply_top_k_top_p_triton for batches of 8 rows or more;
    flashinfer: VLLM_USE_FLASHINFER_SAMPLER defaults to True (FlashInfer where it supports the compute capability).
    """
    if SAMPLER_PATH not in sources:
        raise GenerationError(f"{SAMPLER_PATH} is not in the wheel: update sampler_implementation()")
    text = sources[SAMPLER_PATH]
    if f"{FLASHINFER_SAMPLER_ENV} is not False" in text:
        return "flashinfer-when-installed"
    if env_conditional_default(sources, FLASHINFER_SAMPLER_ENV) is True:
        return "flashinfer"
    if "apply_top_k_top_p_triton" in text:
        return "triton"
    if "def apply_top_k_top_p" in text and ".sort(" in text:
        return "pytorch-sort"
    raise GenerationError(f"{SAMPLER_PATH}: no known top-k/top-p implementation; update sampler_implementation()")


KV_CACHE_UTILS_PATH = "vllm/v1/core/kv_cache_utils.py"
TOKENS_FROM_CONCURRENCY = re.compile(r"int\(\s*max_concurrency\s*\*\s*max_model_len\s*\)")


def kv_cache_tokens_rule(sources: dict[str, str]) -> str:
    """How the `GPU KV cache size: N tokens` start-up line counts (vllm/v1/core/kv_cache_utils.py):

    blocks-per-group: N = num_blocks // number of KV-cache groups * block size (up to 0.20);
    concurrency-times-length: N = int(maximum concurrency * max_model_len), the concurrency line's figure times the
        request length, which counts a sliding-window group's capped blocks per request (0.21 on).
    """
    text = sources.get(KV_CACHE_UTILS_PATH, "")
    if TOKENS_FROM_CONCURRENCY.search(text):
        return "concurrency-times-length"
    if "KV cache size: %s tokens" in text and "num_blocks" in text:
        return "blocks-per-group"
    raise GenerationError(f"{KV_CACHE_UTILS_PATH}: no `KV cache size: %s tokens` report found; update kv_cache_tokens_rule()")


KV_CACHE_INTERFACE_PATH = "vllm/v1/kv_cache_interface.py"


def sliding_window_reserve(sources: dict[str, str]) -> str:
    """What a sliding-window layer reserves per request besides its window (SlidingWindowSpec.max_memory_usage_bytes
    in vllm/v1/kv_cache_interface.py): max-num-batched-tokens (one scheduled batch), or max-in-flight-tokens (every
    batch scheduled but not settled: VllmConfig.max_in_flight_tokens = max_concurrent_batches x
    max_num_batched_tokens, two batches under the default async scheduling). Releases without a SlidingWindowSpec
    (0.8.0-0.8.2) cache sliding-window layers like full attention: none."""
    text = sources.get(KV_CACHE_INTERFACE_PATH, "")
    if "class KVCacheSpec" not in text:
        raise GenerationError(f"{KV_CACHE_INTERFACE_PATH}: no KVCacheSpec; update sliding_window_reserve()")
    if "class SlidingWindowSpec" not in text:
        return "none"
    return "max-in-flight-tokens" if "max_in_flight_tokens" in text else "max-num-batched-tokens"


# --------------------------------------------------------------------------- vllm serve flags


@dataclasses.dataclass
class FlagScan:
    flags: set[str] = dataclasses.field(default_factory=set)
    negatable: set[str] = dataclasses.field(default_factory=set)
    unresolved: list[str] = dataclasses.field(default_factory=list)


class SourceIndex:
    """Classes and functions by module path, for following `X.add_cli_args(parser)` across files."""

    # Where parser-building code and the config classes it reads live (not the parser registries).
    RELEVANT = re.compile(r"^vllm/(config\.py|config/|engine/arg_utils\.py|entrypoints/cli/serve\.py|entrypoints/.*cli_args\.py)")

    def __init__(self, sources: dict[str, str]) -> None:
        self.trees = {path: parse(text, path) for path, text in sources.items() if self.RELEVANT.match(path)}

    @staticmethod
    def module_path(dotted_name: str) -> str:
        return dotted_name.replace(".", "/") + ".py"

    def resolve_class(self, module: str, name: str) -> ClassRef | None:
        tree = self.trees.get(module)
        if tree is None:
            return None
        found = find_class(tree, name)
        if found is not None:
            return module, found
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
                return self.resolve_class(self.module_path(node.module), name)
        return None

    def find_config_class(self, name: str) -> ClassRef | None:
        for path, tree in self.trees.items():
            found = find_class(tree, name)
            if found is not None:
                return path, found
        return None

    def class_fields(self, module: str, cls: ast.ClassDef) -> dict[str, str]:
        """Field name -> annotation text, bases first (dataclass inheritance)."""
        fields: dict[str, str] = {}
        for base in cls.bases:
            resolved = self.resolve_class(module, dotted(base)) if isinstance(base, ast.Name) else None
            if resolved is not None:
                fields.update(self.class_fields(*resolved))
        for node in cls.body:
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and "ClassVar" not in dotted(node.annotation)):
                fields[node.target.id] = dotted(node.annotation)
        return fields

    def method(self, module: str, cls: ast.ClassDef, name: str) -> tuple[str, ast.FunctionDef] | None:
        found = find_function(cls, name)
        if found is not None:
            return module, found
        for base in cls.bases:
            resolved = self.resolve_class(module, dotted(base)) if isinstance(base, ast.Name) else None
            if resolved is not None:
                inherited = self.method(resolved[0], resolved[1], name)
                if inherited is not None:
                    return inherited
        return None


def _is_boolean_annotation(annotation: str) -> bool:
    # get_kwargs gives every field whose type contains bool a BooleanOptionalAction (--x / --no-x), except
    # `bool | str | None`-style fields that take an optional value.
    return bool(re.search(r"\bbool\b", annotation)) and not re.search(r"\bstr\b", annotation)


def _kwargs_sources(function: ast.FunctionDef, index: SourceIndex, module: str,
                    cls_binding: ClassRef | None) -> dict[str, ClassRef]:
    """Local names bound to `get_kwargs(SomeConfig)` (or `get_kwargs(cls)`) -> that class."""
    bound: dict[str, ClassRef] = {}
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and dotted(node.value.func).endswith(("get_kwargs", "_compute_kwargs"))):
            if not node.value.args or not isinstance(node.targets[0], ast.Name):
                continue
            argument = dotted(node.value.args[0])
            resolved = (cls_binding if argument == "cls"
                        else index.resolve_class(module, argument) or index.find_config_class(argument))
            if resolved is not None:
                bound[node.targets[0].id] = resolved
    return bound


def _scan_parser_function(index: SourceIndex, module: str, function: ast.FunctionDef, cls_binding: ClassRef | None,
                          scan: FlagScan, visited: set[tuple[str, str, str]]) -> None:
    key = (module, function.name, cls_binding[1].name if cls_binding else "")
    if key in visited:
        return
    visited.add(key)
    kwargs_of = _kwargs_sources(function, index, module, cls_binding)
    loops = {id(call): loop for loop in ast.walk(function) if isinstance(loop, ast.For)
             for call in ast.walk(loop) if isinstance(call, ast.Call)}
    for node in ast.walk(function):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "add_argument":
            _scan_add_argument(index, node, kwargs_of, loops.get(id(node)), scan)
        elif node.func.attr == "add_cli_args":
            owner = dotted(node.func.value)
            resolved = cls_binding if owner == "cls" else index.resolve_class(module, owner)
            if resolved is None:
                scan.unresolved.append(f"{module}: {dotted(node)}")
                continue
            method = index.method(resolved[0], resolved[1], "add_cli_args")
            if method is None:
                scan.unresolved.append(f"{module}: {owner} has no add_cli_args")
                continue
            _scan_parser_function(index, method[0], method[1], resolved, scan, visited)


def _scan_add_argument(index: SourceIndex, call: ast.Call, kwargs_of: dict[str, ClassRef],
                       loop: ast.For | None, scan: FlagScan) -> None:
    names = [arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    options = [name for name in names if name.startswith("-")]
    dynamic = [arg for arg in call.args if isinstance(arg, ast.JoinedStr)]
    action = next((dotted(kw.value) for kw in call.keywords if kw.arg == "action"), "")
    spread = next((kw.value for kw in call.keywords if kw.arg is None), None)
    if dynamic:
        # `for key, value in frontend_kwargs.items(): add_argument(f"--{key.replace('_', '-')}", **value)`
        iterated = dotted(loop.iter) if loop is not None else ""
        source = next((kwargs_of[name] for name in kwargs_of if iterated == f"{name}.items()"), None)
        if source is None or "replace('_', '-')" not in dotted(dynamic[0]):
            scan.unresolved.append(f"add_argument({dotted(dynamic[0])}) over {iterated or 'no loop'}")
            return
        for field, annotation in index.class_fields(*source).items():
            flag = "--" + field.replace("_", "-")
            scan.flags.add(flag)
            if _is_boolean_annotation(annotation):
                scan.negatable.add(flag)
        return
    if not options:
        return  # a positional argument such as model_tag
    scan.flags.update(options)
    long_options = [option for option in options if option.startswith("--")]
    if action.endswith("BooleanOptionalAction"):
        scan.negatable.update(long_options)
    elif spread is not None:
        # `**cache_kwargs["field"]`, or `**{**cache_kwargs["field"], "default": None}` (0.2x)
        if isinstance(spread, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "action" for k in spread.keys):
            return  # the action is overridden inline; not a BooleanOptionalAction from get_kwargs
        subscripts = [(node.value.id, node.slice) for node in ast.walk(spread) if isinstance(node, ast.Subscript)
                      and isinstance(node.value, ast.Name) and node.value.id in kwargs_of]
        if not subscripts:
            return
        kwargs_name, key = subscripts[0]
        field = str(key.value) if isinstance(key, ast.Constant) else dotted(key)
        annotation = index.class_fields(*kwargs_of[kwargs_name]).get(field, "")
        if not annotation:
            scan.unresolved.append(f"{options[0]}: field {field!r} not found in {kwargs_of[kwargs_name][1].name}")
        elif _is_boolean_annotation(annotation) and not action:
            scan.negatable.update(long_options)


def serve_flags(sources: dict[str, str]) -> FlagScan:
    """Option strings of `vllm serve`: ServeSubcommand.subparser_init, make_arg_parser, FrontendArgs, EngineArgs.

    Literal `add_argument("--x", ...)` calls are taken as they are; FrontendArgs' loop over its dataclass fields
    (0.11 on) becomes one `--field-name` per field. `negatable` lists the flags that also accept `--no-<flag>`
    (BooleanOptionalAction, given by get_kwargs to boolean config fields).
    """
    index = SourceIndex(sources)
    serve_path = "vllm/entrypoints/cli/serve.py"
    serve_tree = index.trees.get(serve_path)
    if serve_tree is None:
        raise GenerationError(f"{serve_path} is missing")
    scan, visited = FlagScan(), set[tuple[str, str, str]]()
    scan.flags.update({"-h", "--help"})  # argparse adds them to every parser
    subcommand = next((node for node in serve_tree.body
                       if isinstance(node, ast.ClassDef) and find_function(node, "subparser_init")), None)
    if subcommand is None:
        raise GenerationError(f"{serve_path}: no class with subparser_init")
    _scan_parser_function(index, serve_path, find_function(subcommand, "subparser_init"), None, scan, visited)  # type: ignore[arg-type]
    source_module = next((SourceIndex.module_path(node.module) for node in serve_tree.body
                          if isinstance(node, ast.ImportFrom) and node.module
                          and any(alias.name == "make_arg_parser" for alias in node.names)), None)
    if source_module is None or source_module not in index.trees:
        raise GenerationError(f"{serve_path}: cannot find the module make_arg_parser comes from ({source_module})")
    make_arg_parser = find_function(index.trees[source_module], "make_arg_parser")
    if make_arg_parser is None:
        raise GenerationError(f"{source_module}: no make_arg_parser")
    _scan_parser_function(index, source_module, make_arg_parser, None, scan, visited)
    return scan


# --------------------------------------------------------------------------- chat templates in the image


def dockerfile_examples_dir(dockerfile: str, target: str = "vllm-openai") -> str | None:
    """Where the `target` stage's image has the repository's examples/ directory (None if it is not copied).

    Follows the FROM chain from `target` to its first stage, tracking WORKDIR, and resolves `COPY examples <dest>`.
    """
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] | None = None
    lines = re.sub(r"\\\n", " ", dockerfile).splitlines()
    heredoc_end: str | None = None
    for line in lines:
        if heredoc_end is not None:  # inside `RUN <<EOF ... EOF`: script lines, not instructions
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        words = line.strip().split()
        heredoc = re.search(r"<<-?\s*['\"]?([A-Za-z_]\w*)['\"]?", line)
        if words and words[0].upper() in ("RUN", "COPY") and heredoc:
            heredoc_end = heredoc.group(1)
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else f"#{len(stages)}"
            current = []
            stages[name] = (words[1], current)
        elif current is not None and instruction in ("WORKDIR", "COPY"):
            current.append((instruction, " ".join(words[1:])))
    chain: list[str] = []
    stage: str | None = target
    while stage in stages and stage not in chain:
        chain.append(stage)
        stage = stages[stage][0]
    if target not in stages:
        raise GenerationError(f"Dockerfile: no stage named {target}")
    workdir, found = "/", None
    for stage_name in reversed(chain):
        for instruction, argument in stages[stage_name][1]:
            parts = [part for part in argument.split() if not part.startswith("--")]
            if instruction == "WORKDIR":
                workdir = argument if argument.startswith("/") else f"{workdir.rstrip('/')}/{argument}"
            elif instruction == "COPY" and "--from" not in argument and len(parts) == 2 and parts[0].rstrip("/") == "examples":
                destination = parts[1].rstrip("/")
                found = destination if destination.startswith("/") else f"{workdir.rstrip('/')}/{destination}"
    return found


def chat_templates(sdist: dict[str, bytes]) -> dict[str, Any] | None:
    """None when PyPI has no sdist for the release: its examples/ and Dockerfile cannot be read from PyPI."""
    if not sdist:
        return None
    dockerfile_path = "docker/Dockerfile" if "docker/Dockerfile" in sdist else "Dockerfile"
    if dockerfile_path not in sdist:
        raise GenerationError("the sdist has no docker/Dockerfile or Dockerfile")
    directory = dockerfile_examples_dir(sdist[dockerfile_path].decode("utf-8"))
    files = sorted(path[len("examples/"):] for path in sdist if path.startswith("examples/") and path.endswith(".jinja"))
    return {"imageDirectory": directory, "dockerfile": dockerfile_path, "files": files}


# --------------------------------------------------------------------------- one release entry


SOURCE_KEYS = ("file", "url", "sha256", "size", "uploaded")


def release_entry(extract: Extract) -> dict[str, Any]:
    sources = extract.sources
    metadata = next((data for name, data in extract.wheel.items() if name.endswith(".dist-info/METADATA")), b"")
    declared = re.search(rb"^Version: (\S+)", metadata, re.M)
    if declared is None or Version(declared.group(1).decode()) != Version(extract.version):
        raise GenerationError(f"{extract.manifest['wheel']['file']}: METADATA says {declared and declared.group(1)!r}, "
                              f"expected {extract.version}")
    methods, deprecated = quantization_methods(sources)
    flags = serve_flags(sources)
    # Every release since 0.8 has well over 100 flags: far fewer means the parser code moved and was missed.
    if "--model" not in flags.flags or "--tool-call-parser" not in flags.flags or len(flags.flags) < 100:
        raise GenerationError(f"serve flags: only {len(flags.flags)} found, or no --model / --tool-call-parser")
    snapshot = memory_snapshot(sources)
    wheel, sdist = extract.manifest["wheel"], extract.manifest["sdist"]
    return {
        "released": extract.manifest["firstUpload"][:10],
        "gpuMemoryUtilization": gpu_memory_utilization(sources),
        "batchTiers": batch_tiers(sources),
        "cudaGraphsInBudget": cuda_graphs_in_budget(sources),
        "memorySnapshot": snapshot,
        "nonTorchInBudget": snapshot == "whole-device",
        "ncclInitInBudget": snapshot != "after-distributed-init",
        "samplerImplementation": sampler_implementation(sources),
        "kvCacheTokens": kv_cache_tokens_rule(sources),
        "slidingWindowReserve": sliding_window_reserve(sources),
        "toolCallParsers": tool_call_parsers(sources),
        "reasoningParsers": reasoning_parsers(sources),
        "quantizationMethods": methods,
        "deprecatedQuantizationMethods": deprecated,
        "kvCacheDtypes": kv_cache_dtypes(sources),
        "chatTemplates": chat_templates(extract.sdist),
        "serveFlags": sorted(flags.flags),
        "negatableFlags": sorted(flags.negatable),
        "unresolvedFlagSources": flags.unresolved,
        "source": {
            # How each file was checked (range reads vs a whole cached wheel) is in the cached extract's manifest,
            # not here: the data must not depend on which way it was read.
            "wheel": {key: wheel[key] for key in SOURCE_KEYS},
            "sdist": None if sdist is None else {key: sdist[key] for key in SOURCE_KEYS},
            # The image is built from the source tree, PyPI's wheel by vLLM's CI: the files read must be the same.
            "wheelMatchesSdist": None if sdist is None else not sdist["pythonFilesDiffering"] and not sdist["pythonFilesMissing"],
            "pythonFilesCompared": None if sdist is None else sdist["pythonFilesCompared"],
        },
    }


# --------------------------------------------------------------------------- the data file

HEADER = """\
# generated by scripts/gen_vllm_releases.py; do not edit (rerun it: --release X.Y.Z adds one release).
# Each release is read from its own PyPI files, named with their sha256 under `source`: the x86_64 wheel's Python
# source (never imported) and the sdist (docker/Dockerfile and examples/ at the release tag).
# Shape, per release:
#   released                 date the release first appeared on PyPI (its earliest file upload, UTC)
#   gpuMemoryUtilization     default of --gpu-memory-utilization (EngineArgs / CacheConfig)
#   batchTiers               OpenAI-server defaults (EngineArgs.get_batch_defaults, _set_default_args_v1 before
#                            0.11): the FIRST tier whose minGpuGiB <= the GPU's total memory (GiB, as the CUDA
#                            driver reports it) and whose exclusions do not match applies. excludeDeviceNameContains
#                            is a substring of the lower-case CUDA device name ("a100" -> A100-40GB and A100-80GB);
#                            excludeComputeCapabilities lists compute capabilities (12.1 is GB10, DGX Spark).
#   cudaGraphsInBudget       the CUDA-graph memory estimate is taken from the KV budget by default
#                            (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS; 0.18 on)
#   memorySnapshot           whole-device | before-distributed-init | after-distributed-init: when the V1 worker takes
#                            the snapshot that non-KV memory is measured from (vllm/v1/worker/gpu_worker.py)
#   nonTorchInBudget         CUDA context and all other non-torch memory on the GPU is charged to the budget
#   ncclInitInBudget         NCCL's start-up buffers are charged to the budget
#   samplerImplementation    top-k/top-p of the V1 sampler on CUDA by default (v1/sample/ops/topk_topp_sampler.py):
#                            flashinfer-when-installed | pytorch-sort | triton | flashinfer; the profiling run's dummy
#                            sampler pass costs memory per logit by implementation (planner/sizing.py)
#   kvCacheTokens            how `GPU KV cache size: N tokens` counts (v1/core/kv_cache_utils.py): blocks-per-group
#                            (num_blocks // groups * block size) | concurrency-times-length (int(concurrency *
#                            max_model_len))
#   slidingWindowReserve     what a sliding-window layer holds per request besides its window (v1/kv_cache_interface.py):
#                            max-num-batched-tokens | max-in-flight-tokens (every unsettled batch: two under the
#                            default async scheduling) | none (no sliding-window spec: cached as full attention)
#   toolCallParsers          --tool-call-parser name -> class (names mapping to one class are aliases)
#   reasoningParsers         --reasoning-parser name -> class
#   quantizationMethods      --quantization choices (QuantizationMethods); deprecatedQuantizationMethods are refused
#                            at start-up unless --allow-deprecated-quantization is given (ModelConfig, 0.14 on)
#   kvCacheDtypes            --kv-cache-dtype choices (CacheDType)
#   chatTemplates            examples/**/*.jinja of the source tree, and imageDirectory, where the vllm/vllm-openai
#                            image has examples/ (Dockerfile `COPY examples examples` under its WORKDIR), so a
#                            template's path in the image is imageDirectory + "/" + file
#   serveFlags               option strings `vllm serve` defines; negatableFlags also take --no-<name>.
#                            vLLM's parser also accepts underscores for dashes (--max_model_len) and, for JSON
#                            config flags, dotted keys (--compilation-config.mode); unresolvedFlagSources lists
#                            add_argument calls the generator could not read (empty means the list is complete)
"""


def render(releases: dict[str, dict[str, Any]], generated_on: str) -> str:
    """JSON, because the planner reads it on every run: 2 ms where the same data as YAML takes 110 ms."""
    ordered = dict(sorted(releases.items(), key=lambda item: Version(item[0])))
    document = {"_about": [line[2:] for line in HEADER.splitlines()],
                "generator": {"script": "scripts/gen_vllm_releases.py", "version": GENERATOR_VERSION,
                              "generatedOn": generated_on, "index": INDEX_URL},
                "releases": ordered}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def load_committed(path: Path = OUTPUT) -> dict[str, Any]:
    if not path.exists():
        return {"releases": {}}
    return json.loads(path.read_text()) or {"releases": {}}


def diff_text(old: dict[str, Any], new: dict[str, Any], label: str) -> str:
    # one item per line, so the diff names exactly the parser, flag or number that changed
    before = yaml.safe_dump(old, sort_keys=False, default_flow_style=False).splitlines()
    after = yaml.safe_dump(new, sort_keys=False, default_flow_style=False).splitlines()
    return "\n".join(difflib.unified_diff(before, after, f"committed {label}", f"regenerated {label}", lineterm=""))


# --------------------------------------------------------------------------- command line


def obtain(version: Version, index: list[IndexFile] | None, timings: dict[str, float], refresh: bool) -> Extract:
    """The cached extract of a release, or a fresh one from PyPI (which is then cached)."""
    if not refresh:
        cached = load_extract(str(version))
        if cached is not None:
            return cached
    if index is None:
        raise GenerationError(f"vLLM {version} is not cached in {CACHE} and PyPI was not asked (offline)")
    extract = fetch_extract(version, index, timings)
    save_extract(extract)
    return extract


def select_releases(args: argparse.Namespace, recorded: list[str], index: list[IndexFile] | None) -> list[Version]:
    """--release X: those; --check / --offline: the releases the file records; else what PyPI has."""
    if args.release:
        return [Version(v) for v in args.release]
    if args.check or args.offline:
        return [Version(v) for v in recorded]
    assert index is not None
    available = wheels_by_version(index)
    if args.all_patches:
        return sorted(v for v in available if (v.major, v.minor) >= FIRST_MINOR)
    return latest_patches(available)


def check(committed: dict[str, Any], regenerated: dict[str, dict[str, Any]], index: list[IndexFile] | None) -> int:
    differing = [v for v in regenerated if committed["releases"].get(v) != regenerated[v]]
    for name in differing:
        print(diff_text(committed["releases"].get(name) or {}, regenerated[name], name))
    if index is not None:
        newer = [str(v) for v in latest_patches(wheels_by_version(index)) if str(v) not in committed["releases"]]
        if newer:
            print(f"note: PyPI has releases the file does not record: {', '.join(newer)} (add them with --release)",
                  file=sys.stderr)
    print(f"checked {len(regenerated)} releases: {f'{len(differing)} differ' if differing else 'all match'}", file=sys.stderr)
    return 1 if differing else 0


def main(argv: list[str] | None = None) -> int:
    global CACHE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", action="append", default=[], metavar="X.Y.Z",
                        help="add or refresh this release only (repeatable); the others in the file are kept")
    parser.add_argument("--all-patches", action="store_true",
                        help="record every final release from 0.8 on, not only the latest patch of each minor")
    parser.add_argument("--check", action="store_true",
                        help="regenerate the releases the file records and exit 1 with a diff if it differs")
    parser.add_argument("--offline", action="store_true", help="use only extracts cached in .cache/vllm-wheels")
    parser.add_argument("--refresh", action="store_true", help="ignore cached extracts and read PyPI again")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where extracts (and whole wheels) are kept")
    args = parser.parse_args(argv)
    CACHE = args.cache

    started = time.monotonic()
    timings: dict[str, float] = {}
    committed = load_committed(args.output)
    recorded = list(committed.get("releases") or {})
    try:
        index = None if args.offline else fetch_index()
    except OSError as error:
        print(f"cannot read PyPI's index {INDEX_URL} ({error}); --offline regenerates from {CACHE}", file=sys.stderr)
        return 2
    wanted = select_releases(args, recorded, index)
    if not wanted:
        print(f"nothing to do: {args.output} records no release; name one with --release", file=sys.stderr)
        return 2

    regenerated: dict[str, dict[str, Any]] = {}
    for version in wanted:
        release_started = time.monotonic()
        try:
            regenerated[str(version)] = release_entry(obtain(version, index, timings, args.refresh))
        except (GenerationError, OSError) as error:
            print(f"vLLM {version}: {error}", file=sys.stderr)
            return 2
        print(f"vLLM {version}: {time.monotonic() - release_started:.2f} s", file=sys.stderr)

    if args.check:
        return check(committed, regenerated, index)

    releases = {**(committed.get("releases") or {}), **regenerated} if args.release else regenerated
    unchanged = releases == (committed.get("releases") or {})
    # The date says when the data last changed, so a rerun that finds nothing new leaves the file as it is.
    generated_on = (committed.get("generator") or {}).get("generatedOn") if unchanged else None
    args.output.write_text(render(releases, generated_on or dt.date.today().isoformat()))
    print(f"wrote {args.output} ({len(releases)} releases{', unchanged' if unchanged else ''}) in "
          f"{time.monotonic() - started:.1f} s; wheel reads {timings.get('wheel', 0):.1f} s, "
          f"sdist reads {timings.get('sdist', 0):.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
