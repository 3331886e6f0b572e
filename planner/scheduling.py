"""Will each vLLM pod fit its node? What a node of a pool leaves to our pods, and how many nodes the pods need.

A node's allocatable is its capacity minus the kubelet's reservations (EKS's published formulas: planner/data/eks.yaml)
and the eviction thresholds; the DaemonSets that run on every GPU node (VPC CNI, kube-proxy, Pod Identity agent, EBS
CSI node plugin, the NVIDIA device plugin where the program installs it) take their requests from it first. A replica
whose requests exceed what is left stays Pending forever, and a cluster autoscaler (whose template nodes ignore the
reservations) would keep adding nodes it cannot use: the plan says so before anything is created.

Memory has two figures: EC2's advertised memory minus the reservations is an upper bound (errors), and the same less
Karpenter's 7.5% estimate of what firmware and kernel keep is the conservative one (warnings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner import catalogs
from planner.catalogs import InstanceType
from planner.findings import Finding, error, warning

GIB_PER_GB = 10**9 / 2**30  # EC2 sizes instance store in GB; Kubernetes counts GiB
MIB_PER_GIB = 1024


@dataclass(frozen=True)
class Resources:
    """A pod's requests, or what a node offers: GPUs, CPU millicores, memory MiB, ephemeral disk GiB, pods."""

    gpus: int = 0
    cpuMilli: int = 0
    memoryMiB: int = 0
    diskGiB: float = 0.0
    pods: int = 0

    def plus(self, other: Resources) -> Resources:
        return Resources(self.gpus + other.gpus, self.cpuMilli + other.cpuMilli, self.memoryMiB + other.memoryMiB,
                         self.diskGiB + other.diskGiB, self.pods + other.pods)

    def minus(self, other: Resources) -> Resources:
        return Resources(self.gpus - other.gpus, self.cpuMilli - other.cpuMilli, self.memoryMiB - other.memoryMiB,
                         self.diskGiB - other.diskGiB, self.pods - other.pods)

    def exceeds(self, room: Resources) -> list[str]:
        """The resources of which this asks more than `room` holds, by name."""
        return [name for name in ("gpus", "cpuMilli", "memoryMiB", "diskGiB", "pods") if getattr(self, name) > getattr(room, name)]

    def to_json(self) -> dict[str, float]:
        return {"gpus": self.gpus, "cpuMilli": self.cpuMilli, "memoryMiB": self.memoryMiB,
                "diskGiB": round(self.diskGiB, 1), "pods": self.pods}


@dataclass(frozen=True)
class NodeShape:
    """One node of a pool, as our pods see it."""

    instanceType: str
    amiType: str
    allocatable: Resources  # the kubelet's allocatable (disk: of the volume holding pod data)
    daemonsets: Resources  # what the DaemonSets on every node request
    imageGiB: float  # disk the vLLM image (and, on the root volume, the OS) takes outside any request
    memoryEstimateMiB: int  # allocatable memory by the conservative estimate
    onNvme: bool = True  # pod data (images, emptyDirs) on the instance store; False: on the root volume

    @property
    def free(self) -> Resources:
        """What is left to our pods: allocatable minus the DaemonSets, the disk minus the image."""
        left = self.allocatable.minus(self.daemonsets)
        return Resources(left.gpus, left.cpuMilli, left.memoryMiB, left.diskGiB - self.imageGiB, left.pods)


# --------------------------------------------------------------------------------------------- the node


def kube_reserved_cpu_milli(vcpus: int) -> int:
    total, reserved = vcpus * 1000, 0
    for band in catalogs.eks().cpuReserveRanges:
        end = total if band.end is None else min(band.end, total)
        if end > band.start:
            reserved += (end - band.start) * band.rate // 10000
    return reserved


def eni_max_pods(instance: InstanceType) -> int:
    """The VPC CNI's max pods without prefix delegation (110, the kubelet's default, when the catalog lacks ENIs)."""
    return instance.enis * (instance.ipv4PerEni - 1) + 2 if instance.enis else 110


def kubelet_max_pods(instance: InstanceType) -> int:
    """What a managed node group writes into the kubelet: the ENI max pods, capped at 110 or 250 by vCPUs."""
    eks = catalogs.eks()
    cap = eks.maxPodsCapSmall if instance.vcpus <= eks.maxPodsCapVcpus else eks.maxPodsCapLarge
    return min(eni_max_pods(instance), cap)


def kube_reserved_memory_mib(instance: InstanceType, ami_type: str) -> int:
    """nodeadm (AL2023) reserves from its own uncapped ENI max pods; Bottlerocket from the configured max pods."""
    eks = catalogs.eks()
    pods = kubelet_max_pods(instance) if ami_type.startswith("BOTTLEROCKET") else eni_max_pods(instance)
    return eks.memoryReservePerPodMiB * pods + eks.memoryReserveBaseMiB


def allocatable_disk_gib(capacity_gib: float) -> float:
    """Ephemeral storage allocatable: capacity minus kube-reserved and the nodefs eviction threshold."""
    eks = catalogs.eks()
    return capacity_gib - eks.ephemeralReserveGiB - capacity_gib * eks.evictionNodefsPercent / 100


def daemonset_requests(device_plugin: bool) -> Resources:
    wanted = {"always", "ebsCsi"} | ({"devicePlugin"} if device_plugin else set())
    chosen = [d for d in catalogs.eks().daemonsets if d.when in wanted]
    return Resources(0, sum(d.cpuMilli for d in chosen), sum(d.memoryMiB for d in chosen), 0.0, len(chosen))


def node_disk(instance: InstanceType, ami_type: str, on_nvme: bool, root_gib: int) -> tuple[float, float]:
    """(capacity GiB of the volume holding pod data, GiB the image and OS take on it outside any request)."""
    eks = catalogs.eks()
    if on_nvme:
        return instance.nvmeGB * GIB_PER_GB, float(eks.vllmImageGiB)
    # AL2023 keeps the OS on the same root volume; Bottlerocket's data volume holds only images and pod data.
    return float(root_gib), float(eks.vllmImageGiB + (eks.osGiB if ami_type.startswith("AL2023") else 0))


def node_shape(instance: InstanceType, ami_type: str, on_nvme: bool, root_gib: int, device_plugin: bool) -> NodeShape:
    eks = catalogs.eks()
    memory = instance.memoryGiB * MIB_PER_GIB
    reserved_memory = kube_reserved_memory_mib(instance, ami_type) + eks.evictionMemoryMiB
    capacity_disk, image = node_disk(instance, ami_type, on_nvme, root_gib)
    allocatable = Resources(instance.gpus, instance.vcpus * 1000 - kube_reserved_cpu_milli(instance.vcpus),
                            memory - reserved_memory, allocatable_disk_gib(capacity_disk), kubelet_max_pods(instance))
    estimate = memory - math.ceil(memory * eks.memoryOverheadEstimate) - reserved_memory
    return NodeShape(instance.name, ami_type, allocatable, daemonset_requests(device_plugin), image, estimate, on_nvme)


# --------------------------------------------------------------------------------------------- the pods


def replica_request(gpus: int, cpu_cores: int, memory_gib: int, disk_gib: int) -> Resources:
    return Resources(gpus, cpu_cores * 1000, memory_gib * MIB_PER_GIB, float(disk_gib), 1)


def _shortfall(resource: str, request: Resources, shape: NodeShape, fix: str) -> str:
    free = shape.free
    what = {
        "gpus": f"{request.gpus} GPUs per replica; a {shape.instanceType} node has {free.gpus}",
        "cpuMilli": f"{request.cpuMilli / 1000:g} CPU cores per replica; a {shape.instanceType} node leaves {free.cpuMilli}m "
                    f"to pods ({shape.allocatable.cpuMilli}m allocatable after the kubelet's reservation, "
                    f"{shape.daemonsets.cpuMilli}m of DaemonSets)",
        "memoryMiB": f"{request.memoryMiB} MiB of memory per replica; a {shape.instanceType} node leaves at most "
                     f"{free.memoryMiB} MiB to pods ({shape.allocatable.memoryMiB} MiB allocatable after the kubelet's "
                     f"reservation and eviction threshold, {shape.daemonsets.memoryMiB} MiB of DaemonSets)",
        "diskGiB": f"{request.diskGiB:.0f} GiB of node disk per replica; a {shape.instanceType} node leaves "
                   f"{free.diskGiB:.0f} GiB to pods ({shape.allocatable.diskGiB:.0f} GiB allocatable, "
                   f"{shape.imageGiB:.0f} GiB for the image{' and OS' if shape.imageGiB > catalogs.eks().vllmImageGiB else ''})",
        "pods": f"a pod slot; a {shape.instanceType} node's {shape.allocatable.pods} pods are taken by its DaemonSets",
    }[resource]
    return f"the vLLM pod requests {what}. {fix}"


FIXES = {
    "gpus": "Lower vllm.tensorParallelSize, or use an instance type with more GPUs.",
    "cpuMilli": "Use a larger instance type of the family (more vCPUs per GPU).",
    "memoryMiB": "Use a larger instance type of the family (more memory per GPU).",
    "diskGiB": "Set the pool's weightsCache: ebs (a volume per replica), or use an instance type with more local NVMe.",
    "pods": "Use a larger instance type (more ENIs, more pods).",
}
ROOT_DISK_FIX = "Raise the pool's diskSizeGiB (its root volume holds the image and the containers' writable layers)."
CODES = {"gpus": "pod-gpus-do-not-fit", "cpuMilli": "pod-cpu-does-not-fit", "memoryMiB": "pod-memory-does-not-fit",
         "diskGiB": "pod-disk-does-not-fit", "pods": "pod-slots-do-not-fit"}


def check_replica_fits(subject: str, request: Resources, shape: NodeShape, shm_gib: int) -> list[Finding]:
    """Each resource of one replica against an empty node of its pool; /dev/shm against the pod's memory."""
    fixes = FIXES if shape.onNvme else {**FIXES, "diskGiB": ROOT_DISK_FIX}
    findings = [error(CODES[name], subject, _shortfall(name, request, shape, fixes[name]))
                for name in request.exceeds(shape.free)]
    estimate_left = shape.memoryEstimateMiB - shape.daemonsets.memoryMiB
    if "memoryMiB" not in request.exceeds(shape.free) and request.memoryMiB > estimate_left:
        findings.append(warning("pod-memory-tight", subject, f"the vLLM pod requests {request.memoryMiB} MiB of memory; "
                                f"a {shape.instanceType} node likely leaves {estimate_left} MiB (EC2's figure less the "
                                "7.5% the kernel and firmware usually keep): it may not schedule. Check "
                                "`kubectl get node -o jsonpath='{.status.allocatable.memory}'` on a node of the pool."))
    if shm_gib * MIB_PER_GIB >= request.memoryMiB:
        findings.append(error("pod-shm-above-memory", subject, f"/dev/shm of {shm_gib} GiB is charged to the pod's memory "
                              f"({request.memoryMiB} MiB) and leaves vLLM nothing. Lower it below the memory request."))
    return findings


def nodes_needed(requests: list[Resources], shape: NodeShape) -> int:
    """First-fit decreasing over every resource (GPUs first): a replica sits whole on one node. A replica larger than
    an empty node still counts one node (check_replica_fits reports it)."""
    room: list[Resources] = []
    for request in sorted(requests, key=lambda r: (r.gpus, r.memoryMiB, r.diskGiB), reverse=True):
        for index, left in enumerate(room):
            if not request.exceeds(left):
                room[index] = left.minus(request)
                break
        else:
            room.append(shape.free.minus(request))
    return len(room)


@dataclass(frozen=True)
class PoolNode:
    """What a pool's nodes are, decided before its servers: where they keep weights and what they leave to pods."""

    cache: str  # nvme | ebs (planner/storage.py CacheKind)
    storageClass: str | None  # the class an ebs cache's claims name
    rootDiskGiB: int  # the launch template's data volume
    shape: NodeShape | None  # None: the instance type is not in the catalog
