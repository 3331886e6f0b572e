"""The weights mirror (mirror/mirror_weights.py), run for real as the Job runs it, against a local Hub and S3.

The Hub double serves huggingface_hub's own calls (HF_ENDPOINT) and the S3 double boto3's (AWS_ENDPOINT_URL), both
on 127.0.0.1; the script runs in a subprocess with nothing of the developer's environment.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest


from mirror import mirror_weights as mw  # noqa: E402
from hub_double import HubDouble, HubRepo  # noqa: E402
from s3_double import S3Double, StoredObject  # noqa: E402

SCRIPT = Path(mw.__file__)
REPO = "acme/tiny-llama"
COMMIT = "3c8b5a1f0e9d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
BUCKET = "models"
PREFIX = f"{REPO}/{COMMIT}"
DEST = f"s3://{BUCKET}/{PREFIX}"
MANIFEST_KEY = f"{PREFIX}/{mw.MANIFEST_NAME}"
HF_TOKEN = "hf_testTokenThatMustNeverBePrinted0001"
AWS_SECRET = "awsSecretKeyThatMustNeverBePrinted0002"
PART_MIB = 5  # the smallest part: a 12 MiB shard goes up in 3 parts

_random = random.Random(14)
SHARD_1 = _random.randbytes(12 * 1024 * 1024)
SHARD_2 = _random.randbytes(300 * 1024)
INDEX = {"metadata": {"total_size": len(SHARD_1) + len(SHARD_2)},
         "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                        "lm_head.weight": "model-00002-of-00002.safetensors"}}
STREAMED = {  # what vLLM needs from the prefix (and a README: every small file is mirrored)
    "README.md": b"# tiny llama\n",
    "chat_template.jinja": b"{% for m in messages %}{{ m.content }}{% endfor %}",
    "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}).encode(),
    "generation_config.json": b'{"temperature": 0.6}',
    "model-00001-of-00002.safetensors": SHARD_1,
    "model-00002-of-00002.safetensors": SHARD_2,
    "model.safetensors.index.json": json.dumps(INDEX).encode(),
    "tokenizer.json": json.dumps({"model": {"vocab": {f"t{i}": i for i in range(300)}}}).encode(),
    "tokenizer_config.json": b'{"model_max_length": 8192}',
}
NOT_STREAMED = {
    "original/consolidated.00.pth": b"meta" * 100,
    "original/params.json": b'{"dim": 64}',
    "pytorch_model.bin": b"pickle" * 100,
    "consolidated.safetensors": b"mistral-format" * 100,  # not in the index
}


def key(path: str) -> str:
    return f"{PREFIX}/{path}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout.strip().splitlines()[-1])

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class World:
    hub: HubDouble
    s3: S3Double
    tmp: Path

    @property
    def objects(self) -> dict[str, StoredObject]:
        return self.s3.objects[BUCKET]

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp / "home"),
               "TMPDIR": str(self.tmp), "PYTHONDONTWRITEBYTECODE": "1", "HF_ENDPOINT": self.hub.url,
               "AWS_ENDPOINT_URL": self.s3.url, "AWS_ACCESS_KEY_ID": "AKIATESTMIRROR",
               "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
               "AWS_EC2_METADATA_DISABLED": "true"}
        env.update(extra)
        return env

    def run(self, *extra: str, repo: str = REPO, revision: str = COMMIT, dest: str = DEST,
            python: tuple[str, ...] = (sys.executable,), **env: str) -> Result:
        argv = [*python, str(SCRIPT), "--repo", repo, "--revision", revision, "--dest", dest,
                "--part-size-mib", str(PART_MIB), *extra]
        done = subprocess.run(argv, env=self.env(**env), capture_output=True, text=True, timeout=90)
        return Result(done.returncode, done.stdout, done.stderr)


@contextmanager
def running_world(tmp: Path) -> Iterator[World]:
    gated = {"config.json": STREAMED["config.json"], "model.safetensors": b"weights" * 100}
    repos = {REPO: HubRepo(files={**STREAMED, **NOT_STREAMED}, commit=COMMIT),
             "acme/gated": HubRepo(files=gated, commit=COMMIT, token=HF_TOKEN),
             "acme/pickles": HubRepo(files={"config.json": b"{}", "pytorch_model.bin": b"x" * 2000}, commit=COMMIT)}
    # Three keys a page: the mirror must follow ListObjectsV2's continuation tokens.
    with HubDouble(repos) as hub, S3Double(buckets=(BUCKET,), page_size=3) as s3:
        yield World(hub, s3, tmp)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_world(tmp_path) as running:
        yield running


@dataclass(frozen=True)
class Reference:
    """One complete mirror, made once for the tests that only read it or start from it."""

    result: Result
    objects: dict[str, StoredObject]
    writes: list[tuple[str, str]]
    actions: set[str]
    downloads: list[str]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    with running_world(tmp_path_factory.mktemp("reference")) as running:
        result = running.run()
        return Reference(result, dict(running.objects), running.s3.writes(), running.s3.actions(),
                         running.hub.downloads())


def seed(world: World, reference: Reference) -> None:
    world.objects.update(reference.objects)


def mirrored_paths(world: World) -> set[str]:
    return {name[len(PREFIX) + 1:] for name in world.objects if name.startswith(PREFIX + "/")}


def written_paths(world: World) -> set[str]:
    return {name[len(PREFIX) + 1:] for operation, name in world.s3.writes()
            if operation in ("PutObject", "CompleteMultipartUpload")}


# ---------------------------------------------------------------------------------------------------------------------
# A mirror, then a rerun


def test_mirrors_what_vllm_streams_at_the_commit_with_the_manifest_last(reference: Reference) -> None:
    result, objects = reference.result, reference.objects

    assert result.code == 0, result.output
    assert {name[len(PREFIX) + 1:] for name in objects} == set(STREAMED) | {mw.MANIFEST_NAME}
    for path, data in STREAMED.items():
        assert objects[key(path)].body == data, path
        assert objects[key(path)].metadata["sha256"] == sha256(data)
    assert objects[key("model-00001-of-00002.safetensors")].etag.endswith("-3")  # multipart, 5 MiB parts
    assert reference.writes[-1] == ("PutObject", MANIFEST_KEY)
    manifest = json.loads(objects[MANIFEST_KEY].body)
    assert manifest == {
        "format": 1, "tool": "kindo-models mirror_weights", "repo": REPO, "revision": COMMIT,
        "files": [{"path": p, "size": len(STREAMED[p]), "sha256": sha256(STREAMED[p])} for p in sorted(STREAMED)],
        "total_bytes": sum(len(data) for data in STREAMED.values())}
    assert result.summary == {**result.summary, "status": "done", "files": len(STREAMED), "uploaded": len(STREAMED),
                              "skipped": 0, "bytes_uploaded": manifest["total_bytes"],
                              "manifest": f"s3://{BUCKET}/{MANIFEST_KEY}"}
    for path in STREAMED:
        assert f"uploaded {path} " in result.stdout and "/s)" in result.stdout
    assert reference.downloads.count(f"/{REPO}/resolve/{COMMIT}/model.safetensors.index.json") == 1


def test_skips_what_the_streamer_cannot_use_and_says_why(reference: Reference) -> None:
    stdout = reference.result.stdout

    assert not [path for path in reference.downloads if any(path.endswith(p) for p in NOT_STREAMED)]
    assert "skipping original/consolidated.00.pth: original/" in stdout
    assert "skipping original/params.json: original/" in stdout
    assert "skipping pytorch_model.bin: not safetensors" in stdout
    assert "skipping consolidated.safetensors: not in model.safetensors.index.json" in stdout


DOCUMENTED_ACTIONS = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}


def test_the_documented_iam_actions_suffice(reference: Reference) -> None:
    assert reference.actions <= DOCUMENTED_ACTIONS


def test_a_rerun_after_success_downloads_and_uploads_nothing(world: World, reference: Reference) -> None:
    seed(world, reference)

    result = world.run()

    assert result.code == 0, result.output
    assert world.s3.writes() == [] and world.hub.downloads() == []
    assert result.summary["uploaded"] == 0 and result.summary["skipped"] == len(STREAMED)
    assert "manifest unchanged" in result.stdout


def test_a_rerun_after_a_failed_download_uploads_only_the_rest(world: World) -> None:
    work = world.tmp / "work"
    world.hub.corrupt.add("tokenizer.json")  # served with one byte flipped: the sha256 check fails

    failed = world.run("--work-dir", str(work))

    assert failed.code == 1
    assert "tokenizer.json: the download does not match" in failed.summary["reason"]
    assert "sha256" in failed.summary["reason"]
    assert failed.stderr.startswith("mirror: error: tokenizer.json")
    assert MANIFEST_KEY not in world.objects and key("tokenizer.json") not in world.objects
    done_before = {p for p in STREAMED if p < "tokenizer.json"}
    assert mirrored_paths(world) == done_before
    assert failed.summary["uploaded"] == len(done_before)
    assert list(work.iterdir()) == []  # nothing left on the Job's disk

    world.hub.corrupt.clear()
    world.s3.forget_calls()
    resumed = world.run("--work-dir", str(work))

    assert resumed.code == 0, resumed.output
    assert written_paths(world) == {"tokenizer.json", "tokenizer_config.json", mw.MANIFEST_NAME}
    assert world.objects[key("tokenizer.json")].body == STREAMED["tokenizer.json"]
    assert resumed.summary["skipped"] == len(done_before)
    assert list(work.iterdir()) == []


def test_a_refused_multipart_upload_is_aborted_and_the_rerun_completes_it(world: World) -> None:
    shard = key("model-00001-of-00002.safetensors")
    world.s3.deny.add(("UploadPart", shard))

    failed = world.run()

    assert failed.code == 1
    assert "AccessDenied" in failed.summary["reason"] and "model-00001-of-00002.safetensors" in failed.summary["reason"]
    assert world.s3.uploads == {}  # AbortMultipartUpload: no parts left to pay for
    assert ("AbortMultipartUpload", shard) in world.s3.calls
    assert world.s3.actions() <= DOCUMENTED_ACTIONS
    assert shard not in world.objects and MANIFEST_KEY not in world.objects

    world.s3.deny.clear()
    world.s3.forget_calls()
    resumed = world.run()

    assert resumed.code == 0, resumed.output
    assert world.objects[shard].body == SHARD_1
    assert "config.json" not in written_paths(world)  # uploaded by the first run, kept


def test_an_object_changed_since_is_uploaded_again(world: World, reference: Reference) -> None:
    seed(world, reference)
    stale = world.objects[key("config.json")]
    world.objects[key("config.json")] = StoredObject(b'{"architectures": ["Other"]}'.ljust(len(stale.body)),
                                                     {**stale.metadata, "hf-blob-id": "0" * 40}, stale.etag)

    result = world.run()

    assert result.code == 0, result.output
    assert written_paths(world) == {"config.json"}  # same size, other blob id: not trusted; the manifest is unchanged
    assert world.objects[key("config.json")].body == STREAMED["config.json"]


# ---------------------------------------------------------------------------------------------------------------------
# Choices and refusals


def test_include_and_exclude_narrow_the_mirror(world: World) -> None:
    result = world.run("--exclude", "chat_template.jinja", "--exclude", "README*")

    assert result.code == 0, result.output
    assert mirrored_paths(world) == set(STREAMED) - {"chat_template.jinja", "README.md"} | {mw.MANIFEST_NAME}
    manifest_paths = {f["path"] for f in json.loads(world.objects[MANIFEST_KEY].body)["files"]}
    assert "chat_template.jinja" not in manifest_paths and "README.md" not in manifest_paths
    assert "skipping chat_template.jinja: --exclude chat_template.jinja" in result.stdout


@pytest.mark.parametrize("revision", ["main", "v1.0", COMMIT[:7], COMMIT + "0", "refs/pr/1"])
def test_a_revision_that_is_not_a_commit_is_refused_before_any_call(world: World, revision: str) -> None:
    result = world.run(revision=revision)

    assert result.code == 2
    assert f"--revision {revision!r} is not a commit" in result.stderr and "40-hex" in result.stderr
    assert result.summary["status"] == "usage-error"
    assert world.hub.requests == [] and world.s3.calls == []
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "field"), [
    ({"dest": "https://models.example/x"}, "--dest"),
    ({"dest": "s3://models"}, "--dest"),
    ({"dest": "s3://models/"}, "--dest"),
    ({"dest": "s3://Bad_Bucket/x"}, "--dest"),
    ({"dest": "s3://models/a/../b"}, "--dest"),
    ({"repo": "tiny-llama"}, "--repo"),
])
def test_usage_errors_exit_2_and_name_the_field(world: World, args: dict[str, str], field: str) -> None:
    result = world.run(**args)

    assert result.code == 2 and f"error: {field} " in result.stderr
    assert world.hub.requests == [] and world.s3.calls == [] and "Traceback" not in result.output


def test_a_part_size_s3_cannot_take_is_a_usage_error(world: World) -> None:
    result = world.run("--part-size-mib", "4")

    assert result.code == 2 and "--part-size-mib 4" in result.stderr


def test_a_prefix_that_holds_another_revision_is_refused(world: World) -> None:
    other = "f" * 40
    world.objects[MANIFEST_KEY] = StoredObject(json.dumps({"repo": REPO, "revision": other}).encode(), {}, "e")

    result = world.run()

    assert result.code == 1
    assert f"holds a mirror of {REPO}@{other}" in result.summary["reason"]
    assert world.s3.writes() == []


def test_stray_safetensors_under_the_prefix_are_refused(world: World) -> None:
    world.objects[key("extra.safetensors")] = StoredObject(b"x", {}, "e")

    result = world.run()

    assert result.code == 1
    assert "extra.safetensors" in result.summary["reason"] and "would load them" in result.summary["reason"]
    assert world.s3.writes() == []


def test_a_repo_without_safetensors_is_refused(world: World) -> None:
    result = world.run(repo="acme/pickles")

    assert result.code == 1 and "no *.safetensors" in result.summary["reason"]
    assert world.s3.writes() == []


@pytest.mark.parametrize(("repo", "revision", "says"), [
    ("acme/missing", COMMIT, "no such repo"),
    (REPO, "a" * 40, "no such revision"),
])
def test_an_unknown_repo_or_revision_fails_with_the_reason(world: World, repo: str, revision: str, says: str) -> None:
    result = world.run(repo=repo, revision=revision)

    assert result.code == 1 and says in result.summary["reason"] and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------------------------
# Secrets


def test_the_hf_token_reaches_the_hub_and_never_the_output(world: World) -> None:
    result = world.run(repo="acme/gated", HF_TOKEN=HF_TOKEN)

    assert result.code == 0, result.output
    assert "HF token set" in result.stdout
    assert HF_TOKEN not in result.output and AWS_SECRET not in result.output
    assert any(auth == f"Bearer {HF_TOKEN}" for _, path, auth in world.hub.requests if "/resolve/" in path)
    assert not any(HF_TOKEN.encode() in stored.body for stored in world.objects.values())


def test_a_gated_repo_without_a_token_names_the_fix(world: World) -> None:
    result = world.run(repo="acme/gated")

    assert result.code == 1
    assert "gated" in result.summary["reason"] and "HF_TOKEN" in result.summary["reason"]
    assert world.s3.writes() == []


def test_a_token_echoed_back_by_the_hub_is_redacted(world: World) -> None:
    wrong = "hf_wrongTokenEchoedBackByAHostileHub03"
    world.hub.echo_authorization = True  # its error messages quote the Authorization header

    result = world.run(repo="acme/gated", HF_TOKEN=wrong)

    assert result.code == 1
    assert "Bearer [redacted]" in result.output and wrong not in result.output


# ---------------------------------------------------------------------------------------------------------------------
# The script's shape: what the Job's image must hold, and the disk it leaves


def test_without_the_libraries_it_fails_in_one_line(world: World) -> None:
    result = world.run(python=(sys.executable, "-S"))  # -S: no site-packages, so neither library

    assert result.code == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "needs huggingface_hub and boto3" in result.stderr and "Traceback" not in result.output


def test_it_imports_the_standard_library_and_the_two_libraries_only_lazily() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    everywhere = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                  for alias in node.names}
    everywhere |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    assert top_level - {"__future__"} <= set(sys.stdlib_module_names)
    assert everywhere - set(sys.stdlib_module_names) - {"__future__"} == {"huggingface_hub", "boto3", "botocore"}


# ---------------------------------------------------------------------------------------------------------------------
# The decisions, one by one


def test_folder_patterns_and_weight_formats() -> None:
    files = [mw.HubFile(p, 1, "b", None) for p in ("original/x/y.json", "onnx/model.onnx", "a.gguf", "config.json",
                                                   "sub/model.safetensors", "originality.json")]
    chosen = mw.select(files, include=(), exclude=("sub/",))

    assert [f.path for f in chosen.files] == ["config.json", "originality.json"]
    assert dict(chosen.skipped)["sub/model.safetensors"] == "--exclude sub/"


def test_paths_that_leave_the_snapshot_are_found() -> None:
    paths = ["config.json", "a/b.json", "../etc/passwd", "/abs", "a//b", "a/./b", "a\\..\\b", "..."]

    assert mw.unsafe_paths(paths) == ["../etc/passwd", "/abs", "a//b", "a/./b", "a\\..\\b"]


def test_an_index_naming_a_missing_shard_is_refused() -> None:
    selection = mw.Selection((mw.HubFile("a.safetensors", 1, "b", "c" * 64),), ())

    with pytest.raises(mw.MirrorError, match="b.safetensors"):
        mw.keep_indexed_shards(selection, {"a.safetensors", "b.safetensors"})


def test_an_object_counts_as_mirrored_only_with_the_same_size_and_ids() -> None:
    lfs = mw.HubFile("w.safetensors", 10, "p" * 40, "a" * 64)
    plain = mw.HubFile("config.json", 5, "b" * 40, None)

    assert mw.stored_sha256({"ContentLength": 10, "Metadata": {"sha256": "a" * 64}}, lfs) == "a" * 64
    assert mw.stored_sha256({"ContentLength": 9, "Metadata": {"sha256": "a" * 64}}, lfs) is None
    assert mw.stored_sha256({"ContentLength": 10, "Metadata": {"sha256": "d" * 64}}, lfs) is None
    assert mw.stored_sha256({"ContentLength": 10, "ETag": '"x"'}, lfs) is None  # written by another tool
    assert mw.stored_sha256({"ContentLength": 5, "Metadata": {"sha256": "e" * 64, "hf-blob-id": "b" * 40}},
                            plain) == "e" * 64
    assert mw.stored_sha256({"ContentLength": 5, "Metadata": {"sha256": "e" * 64, "hf-blob-id": "c" * 40}},
                            plain) is None


def test_secrets_are_redacted_from_every_line() -> None:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    reporter = mw.Reporter(mw.secret_values({"HF_TOKEN": HF_TOKEN, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}),
                           out=Sink(), err=Sink())  # type: ignore[arg-type]
    reporter.error(f"the Hub said: bad token {HF_TOKEN}")
    reporter.summary({"reason": f"S3: {AWS_SECRET}"})

    text = "".join(lines)
    assert HF_TOKEN not in text and AWS_SECRET not in text and text.count("[redacted]") == 2
