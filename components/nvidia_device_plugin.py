"""NvidiaDevicePlugin: the device plugin DaemonSet that advertises nvidia.com/gpu on AL2023 NVIDIA nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from planner.pools import DevicePluginPlan

@dataclass
class NvidiaDevicePluginArgs:
    plan: DevicePluginPlan  # pools, toleration, and the pinned chart and image (upstream or mirrored)
    namespace: str = "nvidia-device-plugin"
    repository_opts: Optional[k8s.helm.v3.RepositoryOptsArgs] = None  # OCI registry credentials for a mirrored chart


class NvidiaDevicePlugin(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:NvidiaDevicePlugin", name, None, opts)
        plan = args.plan
        chart = plan.chart
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            chart=chart.chart,
            version=chart.version,
            repository_opts=args.repository_opts or (k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository)
                                                     if chart.repository else None),
            namespace=args.namespace,
            create_namespace=True,
            values={
                "image": {"repository": plan.imageRepository, "tag": plan.imageTag},
                # The chart's default affinity wants NFD labels; our pools carry their own label instead.
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": plan.poolLabel, "operator": "In", "values": plan.pools}]},
                ]}}},
                "tolerations": plan.tolerations,
                "priorityClassName": "system-node-critical",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release_name": self.release.name, "chart_version": chart.version})
