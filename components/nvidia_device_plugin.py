"""NvidiaDevicePlugin: the device plugin DaemonSet that advertises nvidia.com/gpu on AL2023 NVIDIA nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from planner.pools import DevicePluginPlan

CHART = "nvidia-device-plugin"
CHART_REPOSITORY = "https://nvidia.github.io/k8s-device-plugin"
CHART_VERSION = "0.17.1"  # pinned: a chart upgrade is a reviewed change, not a surprise of `pulumi up`


@dataclass
class NvidiaDevicePluginArgs:
    plan: DevicePluginPlan
    namespace: str = "nvidia-device-plugin"


class NvidiaDevicePlugin(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:NvidiaDevicePlugin", name, None, opts)
        plan = args.plan
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=args.namespace,
            create_namespace=True,
            values={
                # The chart's default affinity wants NFD labels; our pools carry their own label instead.
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": plan.poolLabel, "operator": "In", "values": plan.pools}]},
                ]}}},
                "tolerations": plan.tolerations,
                "priorityClassName": "system-node-critical",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release_name": self.release.name, "chart_version": CHART_VERSION})
