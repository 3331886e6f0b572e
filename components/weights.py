"""Weights from S3: the identity a pod reads (or writes) the prefix with, and the one-time mirror Job.

planner/weights.py decides the S3 access, the prefix and the Job; this renders them. Pods get AWS credentials through
EKS Pod Identity: a ServiceAccount, an IAM role trusted by pods.eks.amazonaws.com with the plan's policy, and the
association between the two, created before the pods (the agent's webhook injects credentials at pod creation).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from planner.weights import MirrorPlan, S3Access

MIRROR_SCRIPT = Path(__file__).resolve().parent.parent / "mirror" / "mirror_weights.py"
MIRROR_MOUNT = "/mirror"
WORK_MOUNT = "/work"
HF_TOKEN_KEY = "HF_TOKEN"


@dataclass
class PodIdentity:
    """How pods of this stack assume IAM roles (planner/preflight.py LivePlan: trust policy and tags)."""

    cluster_name: str
    trust_policy: str
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the Pod Identity agent, when the program adds it


@dataclass
class S3Identity:
    service_account: k8s.core.v1.ServiceAccount
    association: aws.eks.PodIdentityAssociation


def s3_identity(owner: pulumi.Resource, name: str, k8s_name: str, namespace: pulumi.Input[str], labels: dict[str, str],
                access: S3Access, identity: PodIdentity, purpose: str) -> S3Identity:
    """A ServiceAccount whose pods may do `access` on the weights prefix, and nothing else."""
    child = pulumi.ResourceOptions(parent=owner)
    role = aws.iam.Role(f"{name}-role", name_prefix="kindo-models-weights-", assume_role_policy=identity.trust_policy,
                        description=f"{purpose} (EKS Pod Identity; s3://{access.bucket}/{access.prefix})"[:1000],
                        tags=identity.tags, opts=child)
    policy = aws.iam.RolePolicy(f"{name}-s3", role=role.id, policy=access.policy, opts=child)
    account = k8s.core.v1.ServiceAccount(f"{name}-service-account", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=k8s_name, namespace=namespace, labels=labels), opts=child)
    association = aws.eks.PodIdentityAssociation(
        f"{name}-identity", cluster_name=identity.cluster_name, namespace=namespace,
        service_account=account.metadata.name, role_arn=role.arn, tags=identity.tags,
        opts=pulumi.ResourceOptions(parent=owner, depends_on=[policy, *identity.depends_on]))
    return S3Identity(account, association)


@dataclass
class WeightsMirrorArgs:
    mirror: MirrorPlan
    image: str  # the server's vLLM image: it has huggingface_hub and boto3 (mirror/README.md)
    namespace: pulumi.Input[str]
    identity: PodIdentity
    huggingface_token: Optional[pulumi.Input[str]] = None  # gated or private repositories


class WeightsMirror(pulumi.ComponentResource):
    """The Job that copies one Hugging Face commit to the S3 prefix (mirror/mirror_weights.py): idempotent, so a new
    Job for the same revision (or a retry) uploads only what is missing. Pulumi waits for it to succeed, and the
    server that reads the prefix waits for the Job."""

    job: k8s.batch.v1.Job

    def __init__(self, name: str, args: WeightsMirrorArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:WeightsMirror", name, None, opts)
        mirror = args.mirror
        child = pulumi.ResourceOptions(parent=self)
        script = MIRROR_SCRIPT.read_text(encoding="utf-8")
        digest = hashlib.sha256(script.encode()).hexdigest()[:10]
        config_map = k8s.core.v1.ConfigMap(f"{name}-script", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{mirror.name}-{digest}", namespace=args.namespace, labels=mirror.labels),
            data={MIRROR_SCRIPT.name: script}, opts=child)
        writer = s3_identity(self, name, mirror.name, args.namespace, mirror.labels, mirror.access, args.identity,
                             f"kindo-models weights mirror of {mirror.repo}")
        env = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in sorted(mirror.env.items())]
        if args.huggingface_token is not None:
            token = k8s.core.v1.Secret(f"{name}-hf-token", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{mirror.name}-hf", namespace=args.namespace, labels=mirror.labels),
                type="Opaque", string_data={HF_TOKEN_KEY: pulumi.Output.secret(args.huggingface_token)}, opts=child)
            env.append(k8s.core.v1.EnvVarArgs(name=HF_TOKEN_KEY, value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=token.metadata.name, key=HF_TOKEN_KEY))))
        work = f"{mirror.workGiB}Gi"
        container = k8s.core.v1.ContainerArgs(
            name="mirror", image=args.image, command=["python3", f"{MIRROR_MOUNT}/{MIRROR_SCRIPT.name}"], args=mirror.args,
            env=env,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "2", "memory": "1Gi", "ephemeral-storage": work}, limits={"memory": "2Gi"}),
            security_context=k8s.core.v1.SecurityContextArgs(allow_privilege_escalation=False),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="script", mount_path=MIRROR_MOUNT, read_only=True),
                           k8s.core.v1.VolumeMountArgs(name="work", mount_path=WORK_MOUNT)],
        )
        timeout = f"{mirror.deadlineSeconds // 60 + 5}m"
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=mirror.name, namespace=args.namespace, labels=mirror.labels),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=3,  # a retry resumes where the last attempt stopped
                active_deadline_seconds=mirror.deadlineSeconds,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=mirror.labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        service_account_name=writer.service_account.metadata.name,
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(name="script", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                name=config_map.metadata.name)),
                            k8s.core.v1.VolumeArgs(name="work", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=work)),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[writer.association],
                                        custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        self.register_outputs({"job": self.job.metadata.name, "dest": mirror.dest})
