"""Decide each GPU pool: how many nodes its servers need, its size, disk, subnets, labels and taint."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from planner import catalogs
from planner.catalogs import InstanceType
from planner.config import Cluster, GpuPool
from planner.findings import Finding, error, info
from planner.names import GPU_PRESENT_LABEL, GPU_TAINT_KEY, POOL_LABEL, PROJECT
from planner.servers import PlannedServer

# Fields a component renders but a reader of `plan --json` does not need.
RENDER_ONLY = ("config", "subnetIds", "labels", "taints", "tags", "dataDevice")
# AMI types that ship the NVIDIA device plugin themselves (Bottlerocket's NVIDIA variants do).
SHIPS_DEVICE_PLUGIN = frozenset({"BOTTLEROCKET_x86_64_NVIDIA"})
# The EBS volume that holds container images and pod data, per AMI type: AL2023 boots and stores images on
# /dev/xvda; Bottlerocket keeps its OS on /dev/xvda and images and volumes on its data volume /dev/xvdb.
DATA_DEVICE = {"AL2023_x86_64_NVIDIA": "/dev/xvda", "BOTTLEROCKET_x86_64_NVIDIA": "/dev/xvdb"}


@dataclass
class PlannedPool:
    name: str
    instanceType: str
    gpu: str | None
    gpusPerNode: int
    minSize: int
    maxSize: int
    desiredSize: int
    capacityType: str
    amiType: str
    diskSizeGiB: int
    capacityReservationId: str | None
    servers: list[str]
    nodesNeeded: int
    config: GpuPool = field(repr=False)
    # None: the cluster's own subnets (known only to the live cluster). A capacity reservation or block lives in one
    # Availability Zone, so a pool names its own subnets then.
    subnetIds: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)  # node labels
    taints: list[dict[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # AWS tags of the node group, its launch template and instances
    dataDevice: str = "/dev/xvda"  # the volume sized to diskSizeGiB

    @property
    def needsDevicePlugin(self) -> bool:
        return self.amiType not in SHIPS_DEVICE_PLUGIN

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in RENDER_ONLY}


@dataclass(frozen=True)
class DevicePluginPlan:
    """Where the NVIDIA device plugin runs: on the nodes of these pools (by their pool label), tolerating their taint."""

    poolLabel: str
    pools: list[str]
    tolerations: list[dict[str, str]]


def device_plugin_plan(pools: list[PlannedPool]) -> DevicePluginPlan | None:
    """The plugin is installed when a pool's AMI lacks it (None: every pool's AMI ships it)."""
    needing = sorted(p.name for p in pools if p.needsDevicePlugin)
    if not needing:
        return None
    return DevicePluginPlan(POOL_LABEL, needing, [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}])


def disk_gib_for(weights_gib: float) -> int:
    """Root volume for a node that downloads these weights: OS and images (~60 GiB for the vLLM image and
    the AL2023 NVIDIA AMI) plus the weights twice (Hugging Face cache download + safetensors load)."""
    return int(math.ceil((60 + 2 * weights_gib) / 10.0) * 10)


def nodes_needed(gpus_per_replica: list[int], gpus_per_node: int) -> int:
    """First-fit decreasing: a replica's GPUs must sit on one node."""
    free: list[int] = []
    for need in sorted(gpus_per_replica, reverse=True):
        for index, left in enumerate(free):
            if left >= need:
                free[index] -= need
                break
        else:
            free.append(gpus_per_node - need)
    return len(free)


def check_duplicate_pools(pools: list[GpuPool]) -> list[Finding]:
    return [error("pool-duplicate", name, f"two gpuPools are named {name!r}; pool names must be unique.")
            for name, count in Counter(p.name for p in pools).items() if count > 1]


def check_pool_capacity(pool: GpuPool, instance: InstanceType, replicas: list[int]) -> list[Finding]:
    if not replicas:
        return [info("pool-unused", pool.name, "no self-hosted model is placed on this pool; it still creates a node group.")]
    needed = nodes_needed(replicas, instance.gpus)
    if needed > pool.maxSize:
        return [error("pool-too-small", pool.name, f"its servers need {needed} {instance.name} node"
                      f"{'s' if needed > 1 else ''} ({sum(replicas)} GPUs in replicas of {', '.join(map(str, sorted(set(replicas))))}), "
                      f"but maxSize is {pool.maxSize}. Raise maxSize to {needed}.")]
    return []


def decide_disk(pool: GpuPool, servers: list[PlannedServer]) -> tuple[int, list[Finding]]:
    """The root volume: the stack's size if it holds the pool's largest weights twice, else sized from them."""
    biggest = max((s.weightsGiB for s in servers), default=0.0)
    needed = disk_gib_for(biggest)
    findings = []
    if pool.diskSizeGiB is not None and pool.diskSizeGiB < needed:
        findings.append(error("pool-disk-too-small", pool.name, f"diskSizeGiB {pool.diskSizeGiB} cannot hold the image and "
                              f"{biggest:.0f} GiB of weights (needs {needed}). Raise it, or remove it to size it "
                              "from the weights."))
    return max(pool.diskSizeGiB or 0, needed), findings


def plan_pool(pool: GpuPool, servers: list[PlannedServer], cluster: Cluster | None,
              stack: str) -> tuple[PlannedPool, list[Finding]]:
    instance = catalogs.instances().get(pool.instanceType)
    on_pool = [s for s in servers if s.pool == pool.name]
    replicas = [s.gpusPerReplica for s in on_pool for _ in range(s.replicas)]
    nodes = nodes_needed(replicas, instance.gpus) if instance and replicas else 0
    findings = check_pool_capacity(pool, instance, replicas) if instance else []
    disk, disk_findings = decide_disk(pool, on_pool)
    return PlannedPool(
        name=pool.name, instanceType=pool.instanceType, gpu=instance.gpu.name if instance else None,
        gpusPerNode=instance.gpus if instance else 0, minSize=pool.minSize, maxSize=pool.maxSize,
        desiredSize=pool.desiredSize if pool.desiredSize is not None else max(pool.minSize, min(nodes, pool.maxSize)),
        capacityType=pool.capacityType, amiType=pool.amiType, diskSizeGiB=disk,
        capacityReservationId=pool.capacityReservationId, servers=[s.name for s in on_pool], nodesNeeded=nodes, config=pool,
        subnetIds=pool.subnetIds or (cluster.subnetIds if cluster else None),
        labels={GPU_PRESENT_LABEL: "true", POOL_LABEL: pool.name, **pool.labels},
        taints=[{"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}],
        tags={POOL_LABEL: pool.name, "managed-by": "pulumi", f"{PROJECT}/stack": stack}, dataDevice=DATA_DEVICE[pool.amiType],
    ), findings + disk_findings
