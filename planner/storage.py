"""Decide where each pool's nodes keep the weights they download, and the storage class the EBS caches use.

Every GPU instance type in the catalog has local NVMe instance store (planner/data/instances.yaml): faster than EBS
and zone-free, so it is the default weights cache. The node configuration joins its disks as RAID0 and moves the
kubelet's and containerd's directories onto it (AL2023: nodeadm `localStorage: RAID0` in the launch template's MIME
user data; Bottlerocket: its `ephemeral-storage` bootstrap commands), so a pod's emptyDir lives on NVMe.
Where a pool keeps its cache on EBS instead, each replica's volume lives in one Availability Zone: the pool must
stay in one zone (its subnets; the preflight checks they share it), so a pod never waits for a volume elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from planner.catalogs import InstanceType
from planner.config import Cluster, GpuPool
from planner.findings import Finding, error
from planner.names import MANAGED_BY, PROJECT, STACK_LABEL

CacheKind = Literal["nvme", "ebs"]
OWN_STORAGE_CLASS = f"{PROJECT}-gp3"
EBS_PROVISIONER = "ebs.csi.aws.com"
# gp3 parameters of the ebs.csi.aws.com driver (docs/parameters.md @ v1.64.0). Encrypted with the account's default
# EBS key. A weights cache is read sequentially at startup: 500 MiB/s (gp3 allows up to 1,000; the default 125 would
# make a 140 GB first read take ~18 minutes instead of ~5).
GP3_PARAMETERS = {"type": "gp3", "encrypted": "true", "throughput": "500", "iops": "3000", "csi.storage.k8s.io/fstype": "ext4"}
# Bind where the pod lands (its node's zone), never before.
BINDING_MODE = "WaitForFirstConsumer"

AL2023_RAID0 = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    localStorage:
      strategy: RAID0

--//--
"""
BOTTLEROCKET_EPHEMERAL = """[settings.bootstrap-commands.k8s-ephemeral-storage]
commands = [
  ["apiclient", "ephemeral-storage", "init"],
  ["apiclient", "ephemeral-storage", "bind", "--dirs", "/var/lib/containerd", "/var/lib/kubelet", "/var/log/pods"],
]
essential = true
mode = "always"
"""
NVME_USER_DATA = {"AL2023_x86_64_NVIDIA": AL2023_RAID0, "BOTTLEROCKET_x86_64_NVIDIA": BOTTLEROCKET_EPHEMERAL}


@dataclass(frozen=True)
class StorageClassPlan:
    """The class every EBS weights cache names: the stack's own (`cluster.storageClass`) or the program's gp3 class."""

    name: str
    ours: bool  # True: the program creates it (and ensures the EBS CSI add-on)
    provisioner: str = EBS_PROVISIONER
    parameters: dict[str, str] = field(default_factory=lambda: dict(GP3_PARAMETERS))
    bindingMode: str = BINDING_MODE
    labels: dict[str, str] = field(default_factory=dict)


def decide_cache(pool: GpuPool, instance: InstanceType | None, cluster: Cluster | None) -> tuple[CacheKind, list[Finding]]:
    """nvme where the instance has instance store (or the stack says so), else ebs; ebs needs the pool's subnets."""
    has_nvme = instance is not None and instance.nvmeGB > 0
    if pool.weightsCache == "nvme" and instance is not None and not has_nvme:
        return "ebs", [error("pool-no-instance-store", pool.name, f"weightsCache nvme: {instance.name} has no local NVMe "
                             "instance store. Set weightsCache: ebs, or an instance type with instance store (g5, g6, "
                             "g6e, p4d, p5 and newer all have it).")]
    kind: CacheKind = pool.weightsCache or ("nvme" if has_nvme or instance is None else "ebs")
    if kind == "ebs" and not (pool.subnetIds or (cluster.subnetIds if cluster else None)):
        return kind, [error("pool-ebs-zone", pool.name, "its weights cache is on EBS, and an EBS volume lives in one "
                            "Availability Zone: a replica scheduled to a node in another zone could never attach it. "
                            "Set the pool's subnetIds to subnets of one zone (the preflight checks they share it), or "
                            "weightsCache: nvme.")]
    return kind, []


def node_user_data(ami_type: str, cache: CacheKind) -> str | None:
    """The launch template's user data that puts the kubelet's and containerd's directories on the instance store."""
    return NVME_USER_DATA[ami_type] if cache == "nvme" else None


def storage_class_plan(cluster: Cluster | None, stack: str) -> StorageClassPlan:
    if cluster is not None and cluster.storageClass:
        return StorageClassPlan(name=cluster.storageClass, ours=False, parameters={})
    return StorageClassPlan(name=OWN_STORAGE_CLASS, ours=True,
                            labels={**MANAGED_BY, STACK_LABEL: stack})
