"""Where a server's weights come from, and what that decides: the model path and loader flags of `vllm serve`, the
pod's environment, whether it needs the Hugging Face token, the S3 access of its identity, the one-time mirror Job,
and the startup probe's budget.

- Hugging Face (default): vLLM downloads the snapshot at every cold start; `vllm.revision` pins the commit
  (`--revision`, which vLLM 0.33 resolves once at start, vllm/config/model.py).
- S3 (`vllm.weights: s3://bucket/prefix`): a Job mirrors the snapshot at `vllm.revision` once, to
  `prefix/<revision>` (mirror/mirror_weights.py), and vLLM streams it with the Run:ai model streamer (`--load-format runai_streamer`, an s3:// model path; since vLLM
  0.7.0, vllm-project/vllm#10192). The prefix holds config, tokenizer and safetensors; vLLM pins no revision for an
  object-store path, so the mirror does. The pod needs no Hugging Face token and makes no Hub call (HF_HUB_OFFLINE),
  its identity may read the prefix only, and AWS_REGION is set because EKS Pod Identity injects no region.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Literal

from planner import catalogs
from planner.config import VllmSpec
from planner.findings import Finding, error, info
from planner.names import labels

Source = Literal["huggingface", "s3"]


@dataclass(frozen=True)
class S3Access:
    """What an identity may do on the weights prefix (IAM actions from the streamer's and the mirror's calls:
    list_objects_v2 with the prefix, GETs, and for the mirror PUTs and multipart aborts)."""

    bucket: str
    prefix: str
    actions: tuple[str, ...]

    @property
    def policy(self) -> str:
        objects = [a for a in self.actions if a != "s3:ListBucket"]
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{self.bucket}",
             "Condition": {"StringLike": {"s3:prefix": [self.prefix, f"{self.prefix}/*"]}}},
            {"Effect": "Allow", "Action": objects, "Resource": f"arn:aws:s3:::{self.bucket}/{self.prefix}/*"},
        ]})


@dataclass(frozen=True)
class MirrorPlan:
    """The one-time Job that copies the Hub snapshot at `revision` to `dest` (mirror/mirror_weights.py)."""

    name: str  # Kubernetes name: one Job per model revision
    repo: str
    revision: str
    dest: str
    args: list[str]
    workGiB: int  # the Job's scratch disk: one file at a time
    access: S3Access
    deadlineSeconds: int  # how long Pulumi waits for the Job (download and upload of every file)
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # plain environment of the Job's container


@dataclass(frozen=True)
class WeightsPlan:
    source: Source
    modelPath: str  # what `vllm serve` is given first: the Hub id, or the s3:// prefix
    revision: str | None
    startupSeconds: int  # the startup probe's budget: vLLM's own start plus reading the weights from the source
    loaderArgs: tuple[str, ...] = ()  # --revision, or --load-format and the streamer's settings
    env: dict[str, str] = field(default_factory=dict)
    needsHuggingFaceToken: bool = True
    access: S3Access | None = None  # the server's identity: read the prefix
    mirror: MirrorPlan | None = None


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.rstrip("/")


def startup_budget(weights_gib: float, source: Source) -> int:
    """Seconds the startup probe allows: vLLM's own start plus reading the weights from where they come."""
    cold = catalogs.coldstart()
    return int(cold.baseSeconds + cold.secondsPerGiB[source] * weights_gib)


def streamer_config(memory_gib: int) -> str:
    cold = catalogs.coldstart()
    limit = int(memory_gib * cold.streamerMemoryShare * 1024**3)
    return json.dumps({"concurrency": cold.streamerConcurrency, "memory_limit": limit}, separators=(",", ":"))


def hub_weights(spec: VllmSpec, weights_gib: float, subject: str) -> tuple[WeightsPlan, list[Finding]]:
    findings = [] if spec.revision else [info("vllm-revision-unpinned", subject, f"{spec.model} is not pinned to a commit: "
                                             "each cold start downloads the repository's main branch as it is then, so "
                                             "two replicas (or a restart) can serve different weights. Set vllm.revision "
                                             "to the 40-hex commit from its Hugging Face page for reproducible rollouts.")]
    args = ("--revision", spec.revision) if spec.revision else ()
    return WeightsPlan("huggingface", spec.model, spec.revision, startup_budget(weights_gib, "huggingface"), args), findings


def s3_weights(spec: VllmSpec, server_name: str, memory_gib: int, weights_gib: float, region: str | None,
               subject: str) -> tuple[WeightsPlan | None, list[Finding]]:
    assert spec.weights is not None
    missing = [what for what, ok in (("vllm.revision (the commit the mirror copies)", spec.revision),
                                     ("aws:region (the bucket's region; EKS Pod Identity sets none)", region)) if not ok]
    if missing:
        return None, [error("weights-incomplete", subject, f"vllm.weights {spec.weights} needs {' and '.join(missing)}: "
                            "the mirror Job copies one pinned commit of the Hub repository there, and the streamer reads "
                            "it in the stack's region. Set them, or remove vllm.weights to load from Hugging Face.")]
    assert spec.revision is not None and region is not None
    bucket, prefix = split_s3(spec.weights)
    # One prefix per revision: a new revision is mirrored beside the old one, which its running servers (and their
    # restarts) keep reading until the new generation replaces them.
    dest = f"s3://{bucket}/{prefix}/{spec.revision}" if prefix else f"s3://{bucket}/{spec.revision}"
    read = S3Access(bucket, prefix, ("s3:ListBucket", "s3:GetObject"))
    write = S3Access(bucket, prefix, ("s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"))
    name = f"mirror-{server_name[:40].rstrip('-')}-{spec.revision[:8]}"
    mirror = MirrorPlan(
        name=name, labels=labels("weights-mirror", name, model=subject), env={"AWS_REGION": region}, repo=spec.model,
        revision=spec.revision, dest=dest,
        args=["--repo", spec.model, "--revision", spec.revision, "--dest", dest, "--work-dir", "/work"],
        # Hub snapshots are sharded (transformers' default max_shard_size is 5 GB): one shard at a time, plus margin.
        workGiB=int(math.ceil(min(weights_gib, 20.0))) + 2, access=write,
        deadlineSeconds=startup_budget(weights_gib, "huggingface") + int(catalogs.coldstart().mirrorUploadSecondsPerGiB
                                                                         * weights_gib))
    return WeightsPlan(
        "s3", dest, spec.revision, startup_budget(weights_gib, "s3"),
        loaderArgs=("--load-format", "runai_streamer", "--model-loader-extra-config", streamer_config(memory_gib)),
        env={"AWS_REGION": region, "HF_HUB_OFFLINE": "1"}, needsHuggingFaceToken=False, access=read, mirror=mirror,
    ), []


def decide_weights(spec: VllmSpec, server_name: str, memory_gib: int, weights_gib: float, region: str | None,
                   subject: str) -> tuple[WeightsPlan, list[Finding]]:
    """Hugging Face unless vllm.weights names an S3 prefix (and that plan is complete)."""
    if spec.weights is None:
        return hub_weights(spec, weights_gib, subject)
    plan, findings = s3_weights(spec, server_name, memory_gib, weights_gib, region, subject)
    return (plan, findings) if plan is not None else (hub_weights(spec, weights_gib, subject)[0], findings)
