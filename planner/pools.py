"""Decide each GPU pool: how many nodes its servers need, its size, disk, subnets, labels and taint."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from planner import catalogs
from planner.catalogs import InstanceType
from planner.config import Cluster, GpuPool, Images
from planner.findings import Finding, error, has_errors, info, warning
from planner.images import ChartSource, chart_source, image_ref, split_image
from planner.names import GPU_PRESENT_LABEL, GPU_TAINT_KEY, POOL_LABEL, STACK_LABEL, label_value
from planner.scheduling import NodeShape, PoolNode, Resources, node_shape, nodes_needed
from planner.servers import PlannedServer
from planner.storage import decide_cache, node_user_data

# Fields a component renders but a reader of `plan --json` does not need.
RENDER_ONLY = ("config", "subnetIds", "labels", "taints", "tags", "dataDevice", "userData")
# AMI types that ship the NVIDIA device plugin themselves (Bottlerocket's NVIDIA variants do).
SHIPS_DEVICE_PLUGIN = frozenset({"BOTTLEROCKET_x86_64_NVIDIA"})
# The EBS volume that holds container images and pod data, per AMI type: AL2023 boots and stores images on
# /dev/xvda; Bottlerocket keeps its OS on /dev/xvda and images and volumes on its data volume /dev/xvdb.
DATA_DEVICE = {"AL2023_x86_64_NVIDIA": "/dev/xvda", "BOTTLEROCKET_x86_64_NVIDIA": "/dev/xvdb"}
# Cluster Autoscaler: a node carrying this label is a GPU node whose GPUs are not advertised yet (aws_cloud_provider.go
# GPULabel); a managed node group tag of this form advertises a resource of its nodes for scale-from-zero.
AUTOSCALER_GPU_LABEL = "k8s.amazonaws.com/accelerator"
AUTOSCALER_DISK_TAG = "k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage"


@dataclass(frozen=True)
class PoolSettings:
    """What every pool of a stack is decided with."""

    stack: str
    autoscaler: str  # cluster.autoscaler
    subnetIds: list[str] | None  # the cluster's subnets from the stack (None: the live cluster's own)


@dataclass
class PlannedPool:
    name: str
    instanceType: str
    gpu: str | None
    gpusPerNode: int
    minSize: int
    maxSize: int
    desiredSize: int
    desiredSizeOwner: str  # program | cluster-autoscaler | karpenter: who sets the live desired size after creation
    capacityType: str
    amiType: str
    diskSizeGiB: int
    capacityReservationId: str | None
    servers: list[str]
    nodesNeeded: int
    weightsCache: str  # nvme | ebs
    storageClass: str | None  # the class the pool's EBS caches name (None: NVMe)
    allocatable: dict[str, float]  # what one node leaves to our pods (planner/scheduling.py)
    config: GpuPool = field(repr=False)
    # None: the cluster's own subnets (known only to the live cluster). A capacity reservation or block lives in one
    # Availability Zone, so a pool names its own subnets then.
    subnetIds: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)  # node labels
    taints: list[dict[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # AWS tags of the node group, its launch template and instances
    dataDevice: str = "/dev/xvda"  # the volume sized to diskSizeGiB
    userData: str | None = None  # the launch template's user data (NVMe: the node configuration that uses it)
    rolloutGpus: int = 0  # GPUs the largest blue-green server adds while its new generation starts beside the old
    rolloutNodes: int = 0  # nodes the pool needs during that rollout

    @property
    def needsDevicePlugin(self) -> bool:
        return self.amiType not in SHIPS_DEVICE_PLUGIN

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in RENDER_ONLY}


@dataclass(frozen=True)
class DevicePluginPlan:
    """Where the NVIDIA device plugin runs: on the nodes of these pools (by their pool label), tolerating their taint;
    and where its chart and image come from (upstream, or the stack's mirror)."""

    poolLabel: str
    pools: list[str]
    tolerations: list[dict[str, str]]
    chart: ChartSource
    imageRepository: str
    imageTag: str


def device_plugin_plan(pools: list[PlannedPool], images: Images) -> DevicePluginPlan | None:
    """The plugin is installed when a pool's AMI lacks it (None: every pool's AMI ships it)."""
    needing = sorted(p.name for p in pools if p.needsDevicePlugin)
    if not needing:
        return None
    pin = catalogs.eks().devicePlugin
    repository, tag = split_image(image_ref(pin.image, images))
    return DevicePluginPlan(POOL_LABEL, needing, [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                            chart_source(pin.chart, pin.repository, pin.version, images), repository, tag)


def root_disk_gib(pool: GpuPool, cache: str) -> tuple[int, list[Finding]]:
    """The launch template's data volume: the OS and one vLLM image (the weights live on the instance store or on
    their own EBS volume). An NVMe pool's images move to the instance store, so there the stack may go lower."""
    eks = catalogs.eks()
    used = eks.osGiB + eks.vllmImageGiB + eks.writableLayerGiB + eks.ephemeralReserveGiB
    default = int(math.ceil(used / (1 - eks.evictionNodefsPercent / 100) / 10.0) * 10)  # the kubelet keeps 10% free
    if cache == "ebs" and pool.diskSizeGiB is not None and pool.diskSizeGiB < default:
        return pool.diskSizeGiB, [error("pool-disk-too-small", pool.name, f"diskSizeGiB {pool.diskSizeGiB} cannot hold the "
                                        f"operating system, the vLLM image and a container's writable layer ({eks.osGiB} + "
                                        f"{eks.vllmImageGiB} + {eks.writableLayerGiB} GiB, with the kubelet's "
                                        f"{eks.evictionNodefsPercent}% free). Raise it to {default}, or remove it.")]
    return pool.diskSizeGiB or default, []


def pool_node(pool: GpuPool, instance: InstanceType | None, cluster: Cluster | None,
              storage_class: str) -> tuple[PoolNode, list[Finding]]:
    """Where the pool's nodes keep weights, their root volume, and what one node leaves to our pods."""
    cache, findings = decide_cache(pool, instance, cluster)
    disk, disk_findings = root_disk_gib(pool, cache)
    shape = (node_shape(instance, pool.amiType, cache == "nvme", disk, pool.amiType not in SHIPS_DEVICE_PLUGIN)
             if instance else None)
    return PoolNode(cache, storage_class if cache == "ebs" else None, disk, shape), findings + disk_findings


def check_duplicate_pools(pools: list[GpuPool]) -> list[Finding]:
    return [error("pool-duplicate", name, f"two gpuPools are named {name!r}; pool names must be unique.")
            for name, count in Counter(p.name for p in pools).items() if count > 1]


def check_pool_capacity(pool: GpuPool, instance: InstanceType, replicas: list[int], needed: int) -> list[Finding]:
    if not replicas:
        return [info("pool-unused", pool.name, "no self-hosted model is placed on this pool; it still creates a node group.")]
    if needed > pool.maxSize:
        return [error("pool-too-small", pool.name, f"its servers need {needed} {instance.name} node"
                      f"{'s' if needed > 1 else ''} ({sum(replicas)} GPUs in replicas of {', '.join(map(str, sorted(set(replicas))))}), "
                      f"but maxSize is {pool.maxSize}. Raise maxSize to {needed}.")]
    return []


def rollout_headroom(pool: GpuPool, servers: list[PlannedServer], shape: NodeShape | None,
                     steady: list[Resources]) -> tuple[int, int, list[Finding]]:
    """(extra GPUs, nodes) the pool needs while its largest blue-green server runs two generations, and findings:
    an error when maxSize cannot hold even that, a warning when it cannot hold every server rolling at once (a new
    default image changes them all)."""
    rolling = [s for s in servers if s.rollout == "blue-green" and s.replicas]
    if not rolling or shape is None:
        return 0, 0, []
    largest = max(rolling, key=lambda s: (s.gpusPerReplica * s.replicas, s.request.memoryMiB * s.replicas))
    nodes = nodes_needed(steady + [largest.request] * largest.replicas, shape)
    findings: list[Finding] = []
    if nodes > pool.maxSize:
        findings.append(error("pool-rollout-headroom", pool.name, f"a change to {largest.litellmModelName} starts its new "
                              f"generation ({largest.gpusPerReplica * largest.replicas} GPUs) beside the old one until it "
                              f"is verified: the pool then needs {nodes} nodes, but maxSize is {pool.maxSize}. Raise maxSize "
                              f"to {nodes}, or set vllm.rollout: recreate on its models to accept downtime instead."))
    else:
        everything = nodes_needed(steady + [s.request for s in rolling for _ in range(s.replicas)], shape)
        if everything > pool.maxSize and len(rolling) > 1:
            findings.append(warning("pool-rollout-all-at-once", pool.name, f"if every server of the pool changes at once "
                                    f"(a new default vLLM image changes them all), their new generations need {everything} "
                                    f"nodes, above maxSize {pool.maxSize}: the rollout waits for room. Change one model "
                                    f"at a time (vllm.image per model), or raise maxSize to {everything} for the change."))
    return largest.gpusPerReplica * largest.replicas, nodes, findings


def decide_desired_size(pool: GpuPool, needed: int, autoscaler: str, instance: str) -> tuple[int, list[Finding]]:
    """The node group's desired size. Without an autoscaler: what the servers need within min..max, on every up (the
    stack's desiredSize wins, with a warning when it is below the need). With one, the same is only the size at
    creation (Cluster Autoscaler) or minSize (Karpenter, which scales its own nodes, never a node group)."""
    fitted = max(pool.minSize, min(needed, pool.maxSize))
    if autoscaler == "karpenter":
        return pool.minSize, [info("pool-karpenter", pool.name, f"cluster.autoscaler is karpenter: the node group is "
                                   f"created at minSize {pool.minSize} and never resized by this program. Its servers need "
                                   f"{needed} {instance} node{'s' if needed != 1 else ''}: a Karpenter NodePool must offer "
                                   f"{instance} with label {POOL_LABEL}={pool.name} and taint {GPU_TAINT_KEY}=true:NoSchedule "
                                   "(and instanceStorePolicy: RAID0 in its EC2NodeClass for an NVMe weights cache).")]
    if pool.desiredSize is None:
        return fitted, []
    if pool.desiredSize < needed and autoscaler == "none":
        return pool.desiredSize, [warning("pool-desired-below-need", pool.name, f"desiredSize {pool.desiredSize} is below "
                                          f"the {needed} nodes its servers need: {needed - pool.desiredSize} replica(s) "
                                          "stay Pending. Remove desiredSize to size the pool from its servers.")]
    return pool.desiredSize, []


def autoscaler_labels_and_tags(autoscaler: str, instance: InstanceType | None, node: PoolNode) -> tuple[dict[str, str], dict[str, str]]:
    """For the Cluster Autoscaler: the label that tells it a GPU node is coming (so it does not scale twice while the
    device plugin starts) and the node-group tag that advertises the node's disk for scale-from-zero (it reads both
    through eks:DescribeNodegroup)."""
    if autoscaler != "cluster-autoscaler" or instance is None or node.shape is None:
        return {}, {}
    return ({AUTOSCALER_GPU_LABEL: label_value(f"nvidia-{instance.gpu.name.lower()}")},
            {AUTOSCALER_DISK_TAG: f"{int(node.shape.allocatable.diskGiB)}Gi"})


def plan_pool(pool: GpuPool, servers: list[PlannedServer], settings: PoolSettings,
              node: PoolNode) -> tuple[PlannedPool, list[Finding]]:
    instance = catalogs.instances().get(pool.instanceType)
    on_pool = [s for s in servers if s.pool == pool.name]
    replicas = [s.gpusPerReplica for s in on_pool for _ in range(s.replicas)]
    requests = [s.request for s in on_pool for _ in range(s.replicas)]
    nodes = nodes_needed(requests, node.shape) if node.shape and requests else 0
    findings = check_pool_capacity(pool, instance, replicas, nodes) if instance else []
    desired, desired_findings = decide_desired_size(pool, nodes, settings.autoscaler, pool.instanceType)
    rollout_gpus, rollout_nodes, rollout_findings = rollout_headroom(pool, on_pool, node.shape, requests)
    ca_labels, ca_tags = autoscaler_labels_and_tags(settings.autoscaler, instance, node)
    return PlannedPool(
        name=pool.name, instanceType=pool.instanceType, gpu=instance.gpu.name if instance else None,
        gpusPerNode=instance.gpus if instance else 0, minSize=pool.minSize, maxSize=pool.maxSize, desiredSize=desired,
        desiredSizeOwner="program" if settings.autoscaler == "none" else settings.autoscaler,
        capacityType=pool.capacityType, amiType=pool.amiType, diskSizeGiB=node.rootDiskGiB,
        capacityReservationId=pool.capacityReservationId, servers=[s.name for s in on_pool], nodesNeeded=nodes, config=pool,
        weightsCache=node.cache, storageClass=node.storageClass,
        allocatable=node.shape.free.to_json() if node.shape else {},
        subnetIds=pool.subnetIds or settings.subnetIds,
        labels={GPU_PRESENT_LABEL: "true", POOL_LABEL: pool.name, **ca_labels, **pool.labels},
        taints=[{"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}],
        tags={POOL_LABEL: pool.name, "managed-by": "pulumi", STACK_LABEL: settings.stack, **ca_tags},
        dataDevice=DATA_DEVICE[pool.amiType], userData=node_user_data(pool.amiType, node.cache),
        rolloutGpus=rollout_gpus, rolloutNodes=rollout_nodes,
        # A pool too small for its servers says so once: its rollout's headroom is the same fix.
    ), findings + desired_findings + ([] if has_errors(findings) else rollout_findings)
