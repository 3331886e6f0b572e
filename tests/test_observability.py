"""Operators can see the models serve (issue 14 item 4): the `observability` config, the plan's PodMonitors and
dashboard, what the program renders under Pulumi's mocks, and the dashboard's PromQL against vLLM's metric names."""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from planner import catalogs
from planner.config import load_settings, parse_settings
from planner.names import PORT_NAME
from planner.observability import (
    DASHBOARD, LITELLM_NAME_LABEL, MODEL_ID_LABEL, SIDECAR_LABEL, PlannedPodMonitor, duration_seconds, relabel,
)
from planner.plan import Plan, make_plan
from tests.pulumi_harness import ROOT, LiveCluster, Run, find_values, named, run_program, stack_config
from tests.test_program import unwrap

EKS_KUBERNETES = "1.34"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
KUBE_PROMETHEUS_STACK = {"release": "kube-prometheus-stack"}
SCHEMA = yaml.safe_load((Path(__file__).parent / "schemas" / "podmonitor-v1.yaml").read_text())
# The PodMetricsEndpoint fields that carry credentials (the CRD's authorization, basicAuth, bearerTokenSecret, oauth2)
# or client certificates (tlsConfig): vLLM's /metrics needs none.
CREDENTIAL_FIELDS = ("authorization", "basicAuth", "bearerTokenSecret", "oauth2", "tlsConfig")
PROMETHEUS_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Prometheus 2.x (3.x accepts any UTF-8)


def dev_config(observability: dict[str, Any] | None) -> dict[str, Any]:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    if observability is not None:
        config["kindo-models:observability"] = observability
    return config


def dev_plan(observability: dict[str, Any] | None = None, **changes: Any) -> Plan:
    settings, findings = load_settings(ROOT / "Pulumi.dev.yaml")
    raw = copy.deepcopy(settings.raw)
    if observability is not None:
        raw["observability"] = observability
    raw.update(changes)
    settings, findings = parse_settings(raw, "dev", settings.region)
    return make_plan(settings, findings)


CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/podmonitors.monitoring.coreos.com"


def with_prometheus_operator() -> LiveCluster:
    """A cluster where the Prometheus Operator (kube-prometheus-stack) installed its PodMonitor CRD."""
    live = LiveCluster()
    live.add(CRD_PATH, named("podmonitors.monitoring.coreos.com", spec={"group": "monitoring.coreos.com"}))
    return live


@lru_cache(maxsize=None)
def run_with(observability: str) -> Run:
    """The dev stack under mocks with `observability` (JSON, for the cache's key) on a cluster with the operator."""
    result = run_program(dev_config(json.loads(observability)), "dev", live=with_prometheus_operator())
    assert result.error is None, result.error
    return result


def monitored() -> Run:
    return run_with(json.dumps({"podMonitor": True, "podMonitorLabels": KUBE_PROMETHEUS_STACK}))


def of_type(result: Run, typ: str) -> dict[str, dict[str, Any]]:
    return {r.name: unwrap(r.inputs) for r in result.mocks.of_type(typ)}


def codes(plan: Plan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for finding in plan.findings:
        out.setdefault(finding.code, []).append(finding.message)
    return out


# ------------------------------------------------------------------------------------------------ config


def test_observability_defaults_no_pod_monitor_a_dashboard_and_15s() -> None:
    settings, findings = parse_settings({}, "dev")
    assert not findings or all(f.subject != "observability" for f in findings)
    assert (settings.observability.podMonitor, settings.observability.podMonitorLabels,
            settings.observability.dashboard, settings.observability.scrapeInterval) == (False, {}, True, "15s")


@pytest.mark.parametrize("observability,named", [
    ({"scrapeInterval": "15 s"}, ["observability.scrapeInterval", "'15 s'", "e.g. 15s"]),
    ({"scrapeInterval": "0s"}, ["observability.scrapeInterval", "'0s'", "above zero"]),
    ({"scrapeInterval": "1m15"}, ["observability.scrapeInterval", "'1m15'"]),
    ({"podMonitorLabels": {"team prometheus": "x"}}, ["observability.podMonitorLabels", "'team prometheus'",
                                                      "label key"]),
    ({"podMonitorLabels": {"release": "kube prometheus"}}, ["observability.podMonitorLabels", "'kube prometheus'",
                                                            "e.g. kube-prometheus-stack"]),
    ({"podMonitors": True}, ["observability.podMonitors", "Did you mean `podMonitor`?"]),
    ({"podMonitor": "sometimes"}, ["observability.podMonitor", "'sometimes'"]),
])
def test_a_bad_observability_value_names_the_field_the_value_and_the_fix(observability: dict[str, Any],
                                                                       named: list[str]) -> None:
    _, findings = parse_settings({"observability": observability}, "dev")
    lines = [f.line for f in findings if f.severity == "error" and f.subject == "observability"]
    assert len(lines) == 1, lines
    for part in named:
        assert part in lines[0], (part, lines[0])


def test_scrape_intervals_in_every_unit_are_read_as_prometheus_does() -> None:
    assert [duration_seconds(d) for d in ("15s", "1m", "1m30s", "2h", "1d", "500ms")] == [15, 60, 90, 7200, 86400, 0.5]
    for good in ("15s", "1m30s", "500ms", "1h"):
        settings, findings = parse_settings({"observability": {"scrapeInterval": good}}, "dev")
        assert settings.observability.scrapeInterval == good and not [f for f in findings if f.subject == "observability"]


# ------------------------------------------------------------------------------------------------ the plan


def test_without_pod_monitor_the_plan_says_how_to_turn_it_on_and_plans_none() -> None:
    plan = dev_plan()
    assert plan.ok and plan.servers and plan.observability.podMonitors == {}
    (message,) = codes(plan)["observability-pod-monitor-off"]
    assert "observability.podMonitor: true" in message and "podMonitorLabels" in message
    assert f"`{PORT_NAME}` port without a key" in message


def test_pod_monitor_without_labels_warns_about_kube_prometheus_stacks_release_selector() -> None:
    plan = dev_plan({"podMonitor": True})
    (message,) = codes(plan)["observability-pod-monitor-unselected"]
    assert "release: <its Helm release>" in message and "podMonitorSelectorNilUsesHelmValues" in message
    assert "{release: kube-prometheus-stack}" in message
    assert "observability-pod-monitor-unselected" not in codes(dev_plan({"podMonitor": True,
                                                                           "podMonitorLabels": KUBE_PROMETHEUS_STACK}))


def test_each_server_gets_one_pod_monitor_on_its_selector_port_name_and_project_labels() -> None:
    plan = dev_plan({"podMonitor": True, "podMonitorLabels": KUBE_PROMETHEUS_STACK, "scrapeInterval": "30s"})
    assert plan.ok and set(plan.observability.podMonitors) == {s.litellmModelName for s in plan.servers}
    for server in plan.servers:
        monitor = plan.observability.podMonitors[server.litellmModelName]
        assert monitor.selector == server.selector and monitor.port == PORT_NAME and monitor.path == "/metrics"
        assert monitor.interval == "30s" and monitor.namespace == server.namespace
        assert monitor.labels == {**server.labels, **KUBE_PROMETHEUS_STACK}
        # Only the pod labels the server has: the model label now, the generation label when servers carry one.
        assert monitor.podTargetLabels == [k for k in ("kindo-models/model", "kindo-models/generation") if k in server.labels]
        assert "kindo-models/model" in monitor.podTargetLabels
        assert monitor.static_relabelings() == [relabel(LITELLM_NAME_LABEL, server.litellmModelName)]


def test_pod_monitor_labels_may_not_take_over_the_programs_labels() -> None:
    plan = dev_plan({"podMonitor": True, "podMonitorLabels": {"app.kubernetes.io/name": "prometheus", **KUBE_PROMETHEUS_STACK}})
    assert not plan.ok
    (message,) = codes(plan)["observability-label-reserved"]
    assert "app.kubernetes.io/name ('prometheus')" in message and "remove it" in message


def test_a_scrape_interval_past_prometheus_lookback_warns() -> None:
    assert "observability-scrape-interval-long" not in codes(dev_plan({"scrapeInterval": "1m"}))
    (message,) = codes(dev_plan({"scrapeInterval": "5m"}))["observability-scrape-interval-long"]
    assert "5m" in message and "lookback delta" in message


def test_a_stack_without_servers_plans_no_monitoring_and_says_nothing_about_it() -> None:
    settings, _ = load_settings(ROOT / "Pulumi.dev.yaml")
    raw = copy.deepcopy(settings.raw)
    raw["models"] = [m for m in raw["models"] if "vllm" not in m]
    raw["observability"] = {"podMonitor": True}
    plan = make_plan(*parse_settings(raw, "dev", settings.region))
    assert plan.servers == [] and plan.observability.podMonitors == {} and plan.observability.dashboard is None
    assert not [f for f in plan.findings if f.subject == "observability"]


def test_servers_on_a_vllm_release_outside_the_checked_ones_are_told_panels_may_stay_empty() -> None:
    old = dev_plan(vllm={"image": "vllm/vllm-openai:v0.10.1"})
    unchecked = {f.subject for f in old.findings if f.code == "dashboard-metrics-unchecked"}
    assert unchecked == {s.litellmModelName for s in old.servers if s.image.endswith(":v0.10.1")} and unchecked
    assert "vllm:gpu_cache_usage_perc before 0.9.2" in codes(old)["dashboard-metrics-unchecked"][0]
    current = dev_plan(vllm={"image": "vllm/vllm-openai:v0.33.0"})
    assert "dashboard-metrics-unchecked" not in codes(current)
    assert "dashboard-metrics-unchecked" not in codes(dev_plan({"dashboard": False}, vllm={"image": "vllm/vllm-openai:v0.10.1"}))


def test_a_model_id_with_a_dollar_reaches_prometheus_literally() -> None:
    monitor = dev_plan({"podMonitor": True}).observability.podMonitors["qwen3-8b"]
    assert isinstance(monitor, PlannedPodMonitor)
    # Prometheus expands $1 and ${name} in a replacement; $$ is a literal $.
    assert monitor.model_id_relabeling("id$1") == {"action": "replace", "targetLabel": MODEL_ID_LABEL,
                                                   "replacement": "id$$1"}


# ------------------------------------------------------------------------------------------------ the dashboard


def dashboard() -> dict[str, Any]:
    return json.loads(catalogs.dashboard(DASHBOARD))


def expressions(board: dict[str, Any]) -> dict[str, list[str]]:
    """Each panel's PromQL, by panel title."""
    return {panel["title"]: [t["expr"] for t in panel["targets"]] for panel in board["panels"]}


VECTOR_SELECTOR = re.compile(r"(vllm:[a-z_:]+)(\{[^}]*\})?")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def metric_problems(expr: str) -> list[str]:
    """What is wrong with one expression: a metric not in every checked vLLM release, or a selector without the
    model_name filter."""
    names = catalogs.vllm_metrics().in_every_release()
    problems = []
    for metric, matchers in VECTOR_SELECTOR.findall(expr):
        base = metric if metric in names else HISTOGRAM_SERIES.sub("", metric)
        if base not in names or (base != metric and catalogs.vllm_metrics().metrics[base].type != "histogram"):
            problems.append(f"{metric} is not a metric of every checked vLLM release")
        if 'model_name=~"$model_name"' not in matchers:
            problems.append(f"{metric} is not filtered by model_name")
    return problems


# Each panel the issue asks for: the metric its PromQL must read, and how.
REQUIRED_PANELS = {
    "requests running": r"vllm:num_requests_running\{",
    "requests waiting": r"vllm:num_requests_waiting\{",
    "time to first token p50": r"histogram_quantile\(0\.5, .*vllm:time_to_first_token_seconds_bucket\{",
    "time to first token p95": r"histogram_quantile\(0\.95, .*vllm:time_to_first_token_seconds_bucket\{",
    "tokens per second": r"rate\(vllm:generation_tokens_total\{.*\[\$__rate_interval\]\)",
    "KV cache usage": r"vllm:kv_cache_usage_perc\{",
    "preemptions": r"rate\(vllm:num_preemptions_total\{.*\[\$__rate_interval\]\)",
}


def test_the_dashboard_covers_every_panel_the_issue_asks_for() -> None:
    every = [expr for exprs in expressions(dashboard()).values() for expr in exprs]
    missing = [name for name, pattern in REQUIRED_PANELS.items() if not any(re.search(pattern, e) for e in every)]
    assert not missing, missing


def test_every_dashboard_query_names_a_metric_of_every_checked_vllm_release_filtered_by_model_name() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["panels"]
    problems = {title: metric_problems(e) for title, exprs in expressions(board).items() for e in exprs}
    assert not {t: p for t, p in problems.items() if p}, problems
    assert all(VECTOR_SELECTOR.search(e) for exprs in expressions(board).values() for e in exprs)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["model_name"]["definition"] == "label_values(vllm:num_requests_running, model_name)"
    # Every panel and query reads the data source the user picks, never a fixed one.
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


@pytest.mark.parametrize("expr,problem", [
    ('max by (model_name) (vllm:gpu_cache_usage_perc{model_name=~"$model_name"})', "not a metric of every"),
    ('histogram_quantile(0.5, sum by (le) (rate(vllm:time_per_output_token_seconds_bucket{model_name=~"$model_name"}[5m])))',
     "not a metric of every"),
    ('sum(vllm:num_requests_waiting_by_reason{model_name=~"$model_name"})', "not a metric of every"),
    ('sum(vllm:num_requests_running_bucket{model_name=~"$model_name"})', "not a metric of every"),
    ("sum(vllm:num_requests_running)", "not filtered by model_name"),
])
def test_the_metric_check_refuses_deprecated_newer_and_unfiltered_queries(expr: str, problem: str) -> None:
    assert any(problem in p for p in metric_problems(expr)), metric_problems(expr)


def test_the_metric_names_cite_vllms_source() -> None:
    text = (catalogs.DATA / "vllm_metrics.yaml").read_text()
    assert "vllm/v1/metrics/loggers.py" in text and "github.com/vllm-project/vllm" in text
    data = catalogs.vllm_metrics()
    assert data.path == "/metrics" and data.authRequired is False and "model_name" in data.labels


# ------------------------------------------------------------------------------------------------ the program


def test_every_server_has_exactly_one_pod_monitor_matching_its_pods() -> None:
    result = monitored()
    monitors = of_type(result, POD_MONITOR)
    deployments = of_type(result, DEPLOYMENT)
    servers = dev_plan().servers
    assert len(monitors) == len(servers) == len(deployments) >= 2
    for server in servers:
        (monitor,) = [m for m in monitors.values() if m["metadata"]["name"] == server.name]
        deployment = deployments[f"{server.name}-deployment"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod = deployment["spec"]["template"]
        assert monitor["spec"]["selector"] == {"matchLabels": selector}
        assert selector.items() <= pod["metadata"]["labels"].items()  # it selects this Deployment's pods
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert endpoint["port"] == PORT_NAME and ports[endpoint["port"]] == server.port
        assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
        assert monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert set(monitor["spec"]["podTargetLabels"]) <= set(pod["metadata"]["labels"])


def test_the_pod_monitor_carries_its_models_kindo_id_and_never_the_pod_template() -> None:
    result = monitored()
    model_ids = result.outputs["modelIds"]
    deployments = of_type(result, DEPLOYMENT)
    for server in dev_plan().servers:
        monitor = of_type(result, POD_MONITOR)[f"{server.name}-pod-monitor"]
        relabelings = {r["targetLabel"]: r for r in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]}
        model_id = model_ids[server.litellmModelName]
        assert relabelings[MODEL_ID_LABEL] == {"action": "replace", "targetLabel": MODEL_ID_LABEL, "replacement": model_id}
        assert relabelings[LITELLM_NAME_LABEL]["replacement"] == server.litellmModelName
        assert all(PROMETHEUS_LABEL_NAME.match(label) for label in relabelings)
        # Registered first: the PodMonitor depends on the KindoModel whose ID it carries.
        assert any(urn.endswith(f"KindoModel::{server.litellmModelName}")
                   for urn in result.dependencies[f"{server.name}-pod-monitor"])
        assert not find_values(deployments[f"{server.name}-deployment"], model_id)


def test_every_pod_monitor_scrapes_without_credentials_and_fits_the_crds_fields() -> None:
    for monitor in of_type(monitored(), POD_MONITOR).values():
        jsonschema.validate(monitor, SCHEMA)
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert not set(CREDENTIAL_FIELDS) & set(endpoint), endpoint
            assert endpoint.get("scheme", "http") == "http"


def test_the_schema_check_can_fail() -> None:
    monitor = next(iter(of_type(monitored(), POD_MONITOR).values()))
    for path, value in ((("spec", "podMetricEndpoints"), []), (("spec", "podMetricsEndpoints", 0, "interval"), "15 s"),
                        (("spec", "podMetricsEndpoints", 0, "relabelings", 0, "target_label"), "x"), (("spec",), {})):
        broken = copy.deepcopy(monitor)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA)


def test_without_pod_monitor_the_program_renders_none_but_the_dashboard() -> None:
    result = run_with(json.dumps(None))
    assert of_type(result, POD_MONITOR) == {}
    assert "vllm-dashboard" in of_type(result, CONFIG_MAP)
    assert "vllm-dashboard" not in of_type(run_with(json.dumps({"dashboard": False})), CONFIG_MAP)


def test_the_dashboard_config_map_is_labelled_for_grafanas_sidecar_and_holds_the_dashboard() -> None:
    config_map = of_type(monitored(), CONFIG_MAP)["vllm-dashboard"]
    assert SIDECAR_LABEL == {"grafana_dashboard": "1"}
    assert SIDECAR_LABEL.items() <= config_map["metadata"]["labels"].items()
    kubernetes_validate.validate(config_map, EKS_KUBERNETES, strict=True)
    ((file_name, text),) = config_map["data"].items()
    assert file_name.endswith(".json") and json.loads(text) == dashboard()
    assert config_map["metadata"]["namespace"] == dev_plan().servers[0].namespace


def test_pod_monitors_on_a_cluster_without_the_prometheus_operator_stop_the_preflight_with_the_fix() -> None:
    result = run_program(dev_config({"podMonitor": True, "podMonitorLabels": KUBE_PROMETHEUS_STACK}), "dev")
    assert result.error is not None and of_type(result, POD_MONITOR) == {} and of_type(result, DEPLOYMENT) == {}
    message = str(result.error)
    assert "preflight-pod-monitor-crd-missing" in message and "podmonitors.monitoring.coreos.com" in message
    assert "observability.podMonitor: false" in message and CRD_PATH in result.mocks.live.gets
    # Without PodMonitors the preflight does not even look for the CRD.
    plain = run_program(dev_config(None), "dev")
    assert plain.error is None and CRD_PATH not in plain.mocks.live.gets
