"""VllmServer: one self-hosted model on vLLM: Secret, model cache, Deployment and Service, as the plan decided."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from checker.endpoint_checker import VLLM_KEY_ENV
from components.weights import PodIdentity, S3Identity, s3_identity
from planner.names import PORT_NAME
from planner.servers import PlannedServer

CACHE_MOUNT = "/models-cache"
HF_TOKEN_ENV = "HF_TOKEN"  # the Hugging Face libraries read HF_TOKEN and cache under HF_HOME


@dataclass
class VllmServerArgs:
    server: PlannedServer
    namespace: pulumi.Input[str]
    huggingface_token: Optional[pulumi.Input[str]] = None  # secret Output from stack config
    plan_input: dict[str, Any] = field(default_factory=dict)  # planner.policy_input: what a policy pack checks
    identity: Optional[PodIdentity] = None  # how pods assume IAM roles (needed when the weights come from S3)
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # e.g. the Job that mirrors the weights


def secret_env(name: str, secret: pulumi.Input[str], key: str) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(name=name, value_from=k8s.core.v1.EnvVarSourceArgs(
        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)))


class VllmServer(pulumi.ComponentResource):
    url: pulumi.Output[str]
    api_key: pulumi.Output[str]
    secret: k8s.core.v1.Secret
    service: k8s.core.v1.Service
    deployment: k8s.apps.v1.Deployment

    def __init__(self, name: str, args: VllmServerArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:VllmServer", name, args.plan_input or None, opts)
        server = args.server
        # The key Kindo (through LiteLLM) must send; generated once and kept in state as a secret.
        self._api_key = random.RandomPassword(f"{name}-api-key", length=48, special=False,
                                              opts=pulumi.ResourceOptions(parent=self))
        self.secret = self._secret(name, args)
        self.reader = self._reader(name, args)
        cache = self._cache_volume(name, args)
        self.deployment = self._deployment(name, args, self._container(args), cache)
        # Named as the plan says (with the generation in blue-green), so the in-cluster URL is the plan's `url`.
        # Pulumi awaits a Service until its selector has ready pods: it waits as long as the Deployment.
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=server.name, namespace=args.namespace, labels=server.labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=self.deployment.spec.selector.match_labels,
                ports=[k8s.core.v1.ServicePortArgs(name=PORT_NAME, port=server.port, target_port=PORT_NAME)],
            ),
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=self._ready_timeouts(server)),
        )
        self.url = self.service.metadata.name.apply(lambda _: server.url)
        self.api_key = self._api_key.result
        self.register_outputs({**args.plan_input, "url": self.url, "api_key": self.api_key,
                               "deployment": self.deployment.metadata.name})

    @staticmethod
    def _ready_timeouts(server: PlannedServer) -> pulumi.CustomTimeouts:
        # Pulumi would otherwise wait the default 10 minutes for readiness; a cold start can take longer.
        timeout = f"{server.startupBudgetSeconds // 60 + 10}m"
        return pulumi.CustomTimeouts(create=timeout, update=timeout)

    @staticmethod
    def _needs_token(args: VllmServerArgs) -> bool:
        weights = args.server.weights
        return args.huggingface_token is not None and (weights is None or weights.needsHuggingFaceToken)

    def _reader(self, name: str, args: VllmServerArgs) -> Optional[S3Identity]:
        """Weights from S3: the pods' ServiceAccount may read the prefix (and nothing else)."""
        weights = args.server.weights
        if weights is None or weights.access is None or args.identity is None:
            return None
        return s3_identity(self, name, args.server.name, args.namespace, args.server.labels, weights.access,
                           args.identity, f"kindo-models vLLM server {args.server.name} reads its weights")

    def _secret(self, name: str, args: VllmServerArgs) -> k8s.core.v1.Secret:
        data: dict[str, pulumi.Input[str]] = {VLLM_KEY_ENV: self._api_key.result}
        if self._needs_token(args):
            data[HF_TOKEN_ENV] = pulumi.Output.secret(args.huggingface_token)
        return k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{args.server.name}-vllm", namespace=args.namespace,
                                                labels=args.server.labels),
            type="Opaque",
            string_data=data,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _cache_volume(self, name: str, args: VllmServerArgs) -> k8s.core.v1.VolumeArgs:
        """NVMe pools: an emptyDir on the node's instance store (the node configuration moved the kubelet's directory
        there), sized and requested as ephemeral storage. EBS pools: one replica keeps its weights across restarts on a
        PersistentVolumeClaim; several replicas run on different nodes, where a ReadWriteOnce claim cannot follow them,
        so each pod gets its own claim (a generic ephemeral volume). Claims name the plan's storage class."""
        server = args.server
        if server.weightsCache == "nvme":
            return k8s.core.v1.VolumeArgs(name="cache", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                size_limit=f"{server.cacheVolumeGiB}Gi"))
        claim_spec = k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=server.storageClass,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": f"{server.cacheVolumeGiB}Gi"}),
        )
        if server.replicas > 1:
            return k8s.core.v1.VolumeArgs(name="cache", ephemeral=k8s.core.v1.EphemeralVolumeSourceArgs(
                volume_claim_template=k8s.core.v1.PersistentVolumeClaimTemplateArgs(spec=claim_spec)))
        self.cache = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-cache",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{server.name}-cache", namespace=args.namespace, labels=server.labels),
            spec=claim_spec,
            # The claim binds when the pod lands on a node (WaitForFirstConsumer), in that node's zone.
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(create="60m")),
        )
        return k8s.core.v1.VolumeArgs(name="cache", persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
            claim_name=self.cache.metadata.name))

    def _container(self, args: VllmServerArgs) -> k8s.core.v1.ContainerArgs:
        server = args.server
        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port=server.port)
        env = [k8s.core.v1.EnvVarArgs(name="HF_HOME", value=CACHE_MOUNT),
               *(k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in sorted(server.env.items())),
               secret_env(VLLM_KEY_ENV, self.secret.metadata.name, VLLM_KEY_ENV)]
        if self._needs_token(args):
            env.append(secret_env(HF_TOKEN_ENV, self.secret.metadata.name, HF_TOKEN_ENV))
        gpus = str(server.gpusPerReplica)
        return k8s.core.v1.ContainerArgs(
            name="vllm",
            image=server.image,
            command=["vllm", "serve"],
            args=server.args,
            ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=server.port)],
            env=env,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": str(server.cpuRequest), "memory": f"{server.memoryRequestGiB}Gi", "nvidia.com/gpu": gpus,
                          "ephemeral-storage": f"{server.diskRequestGiB}Gi"},
                limits={"memory": f"{server.memoryRequestGiB}Gi", "nvidia.com/gpu": gpus},
            ),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="cache", mount_path=CACHE_MOUNT),
                           k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm")],
            # Download + load + CUDA graphs may take long; the startup probe allows it, then liveness takes over.
            startup_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=10, timeout_seconds=5,
                                                failure_threshold=max(1, server.startupBudgetSeconds // 10)),
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=10, timeout_seconds=5, failure_threshold=3),
            liveness_probe=k8s.core.v1.ProbeArgs(http_get=health, period_seconds=20, timeout_seconds=10, failure_threshold=3),
        )

    def _deployment(self, name: str, args: VllmServerArgs, container: k8s.core.v1.ContainerArgs,
                    cache: k8s.core.v1.VolumeArgs) -> k8s.apps.v1.Deployment:
        server = args.server
        # GPUs are scarce: replace pods in place instead of surging a replica that may never schedule, and a single
        # replica's ReadWriteOnce cache cannot be shared with its successor.
        strategy = (k8s.apps.v1.DeploymentStrategyArgs(type="Recreate") if server.replicas <= 1 else
                    k8s.apps.v1.DeploymentStrategyArgs(type="RollingUpdate", rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=0, max_unavailable=1)))
        shm = k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
            medium="Memory", size_limit=f"{server.shmGiB}Gi"))
        # The pods start once the weights are where they read them, with credentials to read them.
        waits = [*args.depends_on, *([self.reader.association] if self.reader else [])]
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=server.name, namespace=args.namespace, labels=server.labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=server.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=server.selector),
                strategy=strategy,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=server.labels, annotations=server.podAnnotations or None),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        service_account_name=self.reader.service_account.metadata.name if self.reader else None,
                        node_selector=server.nodeSelector,
                        tolerations=[k8s.core.v1.TolerationArgs(**t) for t in server.tolerations],
                        volumes=[cache, shm],
                        termination_grace_period_seconds=60,
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits, custom_timeouts=self._ready_timeouts(server)),
        )
