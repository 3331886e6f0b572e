"""ModelMonitoring: a PodMonitor per vLLM server and the Grafana dashboard ConfigMap, as the plan decided.

A PodMonitor takes its server's Kindo model ID from the KindoModel's `modelId` Output, so Pulumi creates it after the
model is registered and updates it (never the pods) when the model is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from planner.observability import ObservabilityPlan, PlannedDashboard, PlannedPodMonitor

POD_MONITOR_API_VERSION = "monitoring.coreos.com/v1"


@dataclass
class ModelMonitoringArgs:
    plan: ObservabilityPlan
    namespace: pulumi.Input[str]
    # each self-hosted model's Kindo model ID (KindoModel.modelId), by litellmModelName
    model_ids: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)


class ModelMonitoring(pulumi.ComponentResource):
    pod_monitors: dict[str, k8s.apiextensions.CustomResource]
    dashboard: Optional[k8s.core.v1.ConfigMap]

    def __init__(self, name: str, args: ModelMonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:ModelMonitoring", name, None, opts)
        self.pod_monitors = {
            model: self._pod_monitor(monitor, args.namespace, args.model_ids[model])
            for model, monitor in args.plan.podMonitors.items()
        }
        dashboard = args.plan.dashboard
        self.dashboard = self._dashboard(dashboard, args.namespace) if dashboard is not None else None
        self.register_outputs({"podMonitors": {model: monitor.name for model, monitor in args.plan.podMonitors.items()},
                               "dashboard": dashboard.name if dashboard is not None else None})

    def _pod_monitor(self, monitor: PlannedPodMonitor, namespace: pulumi.Input[str],
                     model_id: pulumi.Output[str]) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            f"{monitor.name}-pod-monitor",
            api_version=POD_MONITOR_API_VERSION,
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=monitor.name, namespace=namespace, labels=monitor.labels),
            spec=monitor.spec(model_id.apply(monitor.model_id_relabeling)),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _dashboard(self, dashboard: PlannedDashboard, namespace: pulumi.Input[str]) -> k8s.core.v1.ConfigMap:
        return k8s.core.v1.ConfigMap(
            "vllm-dashboard",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=dashboard.name, namespace=namespace, labels=dashboard.labels),
            data={dashboard.fileName: dashboard.json},
            opts=pulumi.ResourceOptions(parent=self),
        )
