"""Decide how operators see the vLLM servers serve: a PodMonitor per server and one Grafana dashboard.

Every vLLM pod serves Prometheus metrics on its API port (named PORT_NAME) at /metrics, without the API key
(planner/data/vllm_metrics.yaml cites vLLM's auth middleware). With `observability.podMonitor`, each server gets a
PodMonitor (monitoring.coreos.com/v1, the Prometheus Operator's) that scrapes exactly its pods and labels their series
with the Kindo model they serve. The Kindo model ID exists only once the KindoModel is registered, after the server is
up and checked: it goes into the PodMonitor's relabelings, never into the pod template (a label there would restart
the pods for nothing), so the component fills it in at deploy time (PlannedPodMonitor.model_id_relabeling).

Field names follow prometheus-operator's PodMonitor CRD (v0.91.0, example/prometheus-operator-crd/
monitoring.coreos.com_podmonitors.yaml at 00749296a6ed0225f09f8bd9849d764f1280d766; the same fields at v0.93.0,
pkg/apis/monitoring/v1/podmonitor_types.go). The dashboard is data (planner/data/dashboards/vllm-models.json), shipped
in a ConfigMap labelled for Grafana's dashboard sidecar.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from planner import catalogs
from planner.catalogs import Version, format_version, parse_version
from planner.config import Observability
from planner.findings import Finding, error, info, warning
from planner.names import PORT_NAME, PROJECT, labels
from planner.servers import PlannedServer

# The Prometheus Operator's PodMonitor CRD: without it in the cluster, creating a PodMonitor fails (the preflight checks).
POD_MONITOR_CRD = "podmonitors.monitoring.coreos.com"
# Target labels every scraped series of a server gets (Prometheus label names: letters, digits, underscores).
MODEL_ID_LABEL = "kindo_model_id"  # the Kindo model ID (KindoModel.modelId)
LITELLM_NAME_LABEL = "litellm_model_name"  # the routing name; vLLM's own `model_name` label carries the same value
# The pods' project labels a PodMonitor copies onto their series when the pods carry them (the operator sanitises the
# name: `kindo-models/model` becomes `kindo_models_model`).
POD_TARGET_LABEL_KEYS = ("model", "generation")
# Grafana's dashboard sidecar loads ConfigMaps labelled so (kube-prometheus-stack values.yaml: grafana.sidecar.
# dashboards.label grafana_dashboard, labelValue "1"; the grafana chart alone accepts any value of that label).
SIDECAR_LABEL = {"grafana_dashboard": "1"}
DASHBOARD = "vllm-models"  # planner/data/dashboards/<DASHBOARD>.json
DASHBOARD_NAME = f"{PROJECT}-vllm-dashboard"  # the ConfigMap
# kube-prometheus-stack's Prometheus selects PodMonitors by `release: <Helm release>` by default
# (prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues: true, charts/kube-prometheus-stack/values.yaml;
# templates/prometheus/prometheus.yaml renders podMonitorSelector.matchLabels.release).
KUBE_PROMETHEUS_STACK_SELECTOR = "release"
# Prometheus's --query.lookback-delta default: an instant query finds no sample older than this, so a longer scrape
# interval leaves every gauge panel with gaps.
LOOKBACK_DELTA_SECONDS = 300
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


@dataclass(frozen=True)
class PlannedPodMonitor:
    """One server's PodMonitor: its pods by their selector, their named port, and the labels their series get."""

    name: str
    namespace: str
    litellmModelName: str
    labels: dict[str, str]  # the server's labels and observability.podMonitorLabels
    selector: dict[str, str]  # the server's pod selector (the Deployment's spec.selector.matchLabels)
    port: str  # the container port's NAME
    path: str
    interval: str
    podTargetLabels: list[str]

    def static_relabelings(self) -> list[dict[str, str]]:
        """Target labels known to the plan: a `replace` without source labels writes `replacement` as it is."""
        return [relabel(LITELLM_NAME_LABEL, self.litellmModelName)]

    def model_id_relabeling(self, model_id: str) -> dict[str, str]:
        """The Kindo model ID as a target label, once the KindoModel has it."""
        return relabel(MODEL_ID_LABEL, model_id)

    def spec(self, model_id_relabeling: Any) -> dict[str, Any]:
        """The PodMonitor's spec; `model_id_relabeling` is model_id_relabeling()'s value (a deploy-time Output)."""
        return {
            "selector": {"matchLabels": dict(self.selector)},
            "podTargetLabels": list(self.podTargetLabels),
            "podMetricsEndpoints": [{"port": self.port, "path": self.path, "interval": self.interval,
                                     "relabelings": [*self.static_relabelings(), model_id_relabeling]}],
        }


@dataclass(frozen=True)
class PlannedDashboard:
    name: str  # the ConfigMap
    namespace: str
    labels: dict[str, str]
    fileName: str  # its data key: the file the sidecar writes for Grafana
    json: str


@dataclass
class ObservabilityPlan:
    podMonitors: dict[str, PlannedPodMonitor] = field(default_factory=dict)  # by litellmModelName
    dashboard: PlannedDashboard | None = None


def relabel(target: str, value: str) -> dict[str, str]:
    # Prometheus expands `$1`/`${name}` in a replacement; `$$` is a literal `$`.
    return {"action": "replace", "targetLabel": target, "replacement": value.replace("$", "$$")}


def duration_seconds(text: str) -> float:
    """A Prometheus duration (validated by planner/config.py) in seconds."""
    return sum(int(number) * _SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def pod_monitor(server: PlannedServer, settings: Observability) -> PlannedPodMonitor:
    targets = [f"{PROJECT}/{key}" for key in POD_TARGET_LABEL_KEYS if f"{PROJECT}/{key}" in server.labels]
    return PlannedPodMonitor(
        name=server.name, namespace=server.namespace, litellmModelName=server.litellmModelName,
        labels={**server.labels, **settings.podMonitorLabels}, selector=dict(server.selector), port=PORT_NAME,
        path=catalogs.vllm_metrics().path, interval=settings.scrapeInterval, podTargetLabels=targets)


def plan_dashboard(namespace: str) -> PlannedDashboard:
    # Parsed and written again: a file that is not JSON fails here, at plan time, not in Grafana.
    text = json.dumps(json.loads(catalogs.dashboard(DASHBOARD)), indent=2)
    return PlannedDashboard(name=DASHBOARD_NAME, namespace=namespace,
                            labels={**labels("grafana-dashboard", DASHBOARD_NAME), **SIDECAR_LABEL},
                            fileName=f"{PROJECT}-vllm.json", json=text)


def check_pod_monitor_labels(settings: Observability, servers: list[PlannedServer]) -> list[Finding]:
    """podMonitorLabels may not take over a label the program sets (a selector key, the manager, a project label)."""
    ours = sorted({key for server in servers for key in server.labels} & set(settings.podMonitorLabels))
    return [error("observability-label-reserved", "observability", f"observability.podMonitorLabels sets {key} "
                  f"({settings.podMonitorLabels[key]!r}), a label the program sets on every object it renders: "
                  "remove it, or use the key your Prometheus selects PodMonitors by (e.g. release).") for key in ours]


def check_switches(settings: Observability) -> list[Finding]:
    """How to turn scraping on; which labels a Prometheus selects by; a scrape interval Prometheus cannot graph."""
    findings: list[Finding] = []
    if not settings.podMonitor:
        findings.append(info("observability-pod-monitor-off", "observability", "No PodMonitor: the vLLM pods serve "
                             f"/metrics on their `{PORT_NAME}` port without a key, but nothing tells Prometheus. On a "
                             "cluster with the Prometheus Operator set observability.podMonitor: true (and "
                             "observability.podMonitorLabels to the labels your Prometheus selects PodMonitors by)."))
    elif not settings.podMonitorLabels:
        findings.append(warning("observability-pod-monitor-unselected", "observability", "observability.podMonitor is "
                                "true without podMonitorLabels: kube-prometheus-stack's Prometheus selects only "
                                "PodMonitors labelled `release: <its Helm release>` (podMonitorSelectorNilUsesHelmValues: "
                                "true, its default), so it would ignore these. Set observability.podMonitorLabels: "
                                "{release: kube-prometheus-stack} (your release's name), or {} on purpose if your "
                                "Prometheus selects every PodMonitor."))
    if duration_seconds(settings.scrapeInterval) >= LOOKBACK_DELTA_SECONDS:
        findings.append(warning("observability-scrape-interval-long", "observability", f"observability.scrapeInterval "
                                f"{settings.scrapeInterval} is not shorter than Prometheus's default lookback delta "
                                "(5m): instant queries miss samples and the dashboard's panels show gaps. Use 15s-1m."))
    return findings


def check_dashboard_releases(versions: Mapping[str, Version | None]) -> list[Finding]:
    """The dashboard names metrics read in the checked vLLM releases; a server outside them may leave panels empty."""
    checked = sorted(v for v in (parse_version(r) for r in catalogs.vllm_metrics().checkedReleases) if v is not None)
    low, high = checked[0], checked[-1]
    return [info("dashboard-metrics-unchecked", name, f"vLLM {format_version(version)} is outside the releases the "
                 f"dashboard's metric names were read in ({format_version(low)} to {format_version(high)}; "
                 "planner/data/vllm_metrics.yaml): a panel may stay empty for this model (e.g. KV cache usage was "
                 "vllm:gpu_cache_usage_perc before 0.9.2).")
            for name, version in versions.items() if version is not None and not low <= version[:len(low)] <= high]


def plan_observability(settings: Observability, servers: list[PlannedServer], versions: Mapping[str, Version | None],
                       namespace: str) -> tuple[ObservabilityPlan, list[Finding]]:
    """versions: each server's vLLM release by litellmModelName (None: its image tag is no version)."""
    if not servers:
        return ObservabilityPlan(), []
    findings = check_switches(settings)
    monitors: dict[str, PlannedPodMonitor] = {}
    if settings.podMonitor:
        findings += check_pod_monitor_labels(settings, servers)
        monitors = {server.litellmModelName: pod_monitor(server, settings) for server in servers}
    dashboard = plan_dashboard(namespace) if settings.dashboard else None
    if dashboard is not None:
        findings += check_dashboard_releases(versions)
    return ObservabilityPlan(monitors, dashboard), findings
