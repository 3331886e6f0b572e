"""The Pulumi program: stack config -> plan -> stop on errors -> components -> stack outputs.

`__main__.py` only calls `main()`; tests call `main()` under `pulumi.runtime.set_mocks`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi.runtime.config import get_config, is_config_secret

from components.cluster_addons import ClusterAddons, ClusterAddonsArgs
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.endpoint_check import EndpointCheck, EndpointCheckArgs, check_script_config_map
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from components.model_catalog import ModelCatalog, ModelCatalogArgs
from components.nvidia_device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.observability import ModelMonitoring, ModelMonitoringArgs
from components.preflight import ApiServer, KubernetesReads, read_cluster_facts
from components.storage import ModelStorage
from components.vllm_server import VllmServer, VllmServerArgs
from components.weights import PodIdentity, WeightsMirror, WeightsMirrorArgs
from planner import catalogs
from planner.config import KNOWN_KEYS, SECRET_KEYS, Settings, parse_settings
from planner.findings import Finding, sort_findings
from planner.images import ChartSource
from planner.names import MANAGED_BY, PROJECT, STACK_LABEL
from planner.plan import Plan, make_plan
from planner.policy_input import plan_input_props, pool_slice, server_slice
from planner.preflight import LivePlan, decide_live, preflight_query

SECURE = {"secure": "<from pulumi config>"}


def raw_config() -> dict[str, Any]:
    """The kindo-models keys as the planner reads them from a stack file: secret values reduced to `secure`.

    Pulumi hands the program decrypted values; the planner must neither hold them nor mistake them for keys
    written in plain text, so every key Pulumi marks secret becomes a `{secure: ...}` marker here.
    """
    raw: dict[str, Any] = {}
    for key in KNOWN_KEYS:
        full = f"{PROJECT}:{key}"
        text = get_config(full)
        if text is None:
            continue
        secret = is_config_secret(full)
        if key in SECRET_KEYS:
            raw[key] = SECURE if secret else text
            continue
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # the planner says what shape it wanted
        if key == "credentials" and secret and isinstance(value, dict):
            value = {name: SECURE for name in value}  # names are needed, values are not
        elif secret:
            raise pulumi.RunError(
                f"{full} holds secure values; only kindoApiKey, unleashApiToken, huggingFaceToken and credentials may. "
                f"Move each key to `pulumi config set --path --secret {PROJECT}:credentials.NAME <key>` and refer to it "
                "as `credential: NAME`.")
        raw[key] = value
    return raw


def load_plan() -> Plan:
    settings, findings = parse_settings(raw_config(), pulumi.get_stack(), get_config("aws:region"))
    return make_plan(settings, findings)


def report(findings: list[Finding]) -> None:
    """Warnings and notes go to Pulumi's log; errors are listed once, by stop_on_errors()."""
    log = {"warning": pulumi.log.warn, "info": pulumi.log.info}
    for finding in findings:
        if finding.severity in log:
            log[finding.severity](finding.line)


def stop_on_errors(plan: Plan) -> None:
    if plan.ok:
        return
    errors: list[Finding] = plan.errors
    raise pulumi.RunError(
        f"the plan of stack {plan.stack} has {len(errors)} error{'s' if len(errors) > 1 else ''}; nothing was created:\n"
        + "\n".join(f"  - {f.line}" for f in errors)
        + f"\nSee them all with: python -m planner plan --stack {plan.stack}")


def preflight(plan: Plan, cluster: aws.eks.AwaitableGetClusterResult, kube: KubernetesReads | None) -> LivePlan:
    """Read the live cluster and decide what to create or adopt; stop with one line per missing prerequisite."""
    reads = kube or ApiServer(cluster.endpoint, cluster.certificate_authorities[0].data, cluster.name, plan.settings.region)
    facts = read_cluster_facts(preflight_query(plan), cluster.version, reads)
    live, findings = decide_live(plan, facts, plan.settings.region)
    findings = sort_findings(findings)
    report(findings)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise pulumi.RunError(
            f"the preflight of stack {plan.stack} found {len(errors)} missing prerequisite{'s' if len(errors) > 1 else ''} "
            f"in cluster {cluster.name}; nothing was created:\n" + "\n".join(f"  - {f.line}" for f in errors))
    return live


def kubeconfig(cluster: aws.eks.AwaitableGetClusterResult, region: str | None) -> str:
    """A kubeconfig for the existing cluster that authenticates with `aws eks get-token` (IAM, no static token)."""
    command = ["eks", "get-token", "--cluster-name", cluster.name] + (["--region", region] if region else [])
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "eks",
        "clusters": [{"name": "eks", "cluster": {"server": cluster.endpoint,
                                                  "certificate-authority-data": cluster.certificate_authorities[0].data}}],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
        "users": [{"name": "eks", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                     "command": "aws", "args": command}}}],
    })


def node_role_arn(settings: Settings) -> pulumi.Input[str]:
    """The configured node role, else the role of the cluster's first existing node group (Kindo's own nodes)."""
    assert settings.cluster is not None
    if settings.cluster.nodeRoleArn:
        return settings.cluster.nodeRoleArn
    name = settings.cluster.name
    groups = aws.eks.get_node_groups(cluster_name=name)
    if not groups.names:
        raise pulumi.RunError(f"cluster {name} has no node group to copy a node role from: set "
                              f"{PROJECT}:cluster.nodeRoleArn to the IAM role GPU nodes should use.")
    return aws.eks.get_node_group(cluster_name=name, node_group_name=sorted(groups.names)[0]).node_role_arn


def build_pools(plan: Plan, cluster: aws.eks.AwaitableGetClusterResult, live: LivePlan) -> dict[str, GpuNodePool]:
    """One GpuNodePool per planned pool; sized for a running rollout where the preflight says so."""
    settings = plan.settings
    assert settings.cluster is not None
    role = node_role_arn(settings) if plan.pools else None
    pools = [dataclasses.replace(p, desiredSize=live.desiredSizes[p.name]) if p.name in live.desiredSizes else p
             for p in plan.pools]
    return {
        pool.name: GpuNodePool(pool.name, GpuNodePoolArgs(
            cluster_name=settings.cluster.name, pool=pool, node_role_arn=role,
            cluster_subnet_ids=list(cluster.vpc_config.subnet_ids),
            plan_input=plan_input_props(pool_slice(settings.raw, pool.name), plan.stack)))
        for pool in pools
    }


def build_cluster_parts(plan: Plan, live: LivePlan, k8s_opts: pulumi.ResourceOptions) -> dict[str, Any]:
    """The add-ons, storage class and autoscaler the preflight decided the program provides."""
    assert plan.settings.cluster is not None
    addons_data = catalogs.eks().addons
    addons = ClusterAddons("cluster-addons", ClusterAddonsArgs(
        cluster_name=plan.settings.cluster.name, live=live, ebs_csi_addon=addons_data["ebsCsi"]["name"],
        ebs_csi_service_account=addons_data["ebsCsi"]["serviceAccount"], ebs_csi_policy_arn=addons_data["ebsCsi"]["policyArn"],
        pod_identity_addon=addons_data["podIdentityAgent"]["name"])) if live.podIdentityAgent or live.ebsCsiAddon else None
    storage = ModelStorage("model-storage", live.storageClass, opts=k8s_opts) if live.storageClass else None
    autoscaler = None
    if live.autoscaler:
        agent = [addons.pod_identity_agent] if addons and addons.pod_identity_agent else []
        autoscaler = ClusterAutoscaler("cluster-autoscaler", ClusterAutoscalerArgs(
            plan=live.autoscaler, trust_policy=live.trustPolicy, tags=live.tags,
            repository_opts=repository_opts(live.autoscaler.chart), depends_on=agent), opts=k8s_opts)
    return {"addons": addons, "storage": storage, "autoscaler": autoscaler}


def repository_opts(chart: ChartSource) -> k8s.helm.v3.RepositoryOptsArgs | None:
    """The chart's upstream Helm repository, or, for a chart mirrored into ECR, a login with an ECR token."""
    if chart.repository:
        return k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository)
    if chart.ecrRegistry:
        token = aws.ecr.get_authorization_token(registry_id=chart.ecrRegistry.split(".", 1)[0])
        return k8s.helm.v3.RepositoryOptsArgs(username=token.user_name, password=pulumi.Output.secret(token.password))
    return None  # another OCI registry: Helm's own registry login (helm registry login) applies


def build_namespace(plan: Plan, live: LivePlan, k8s_opts: pulumi.ResourceOptions) -> pulumi.Input[str]:
    """The servers' namespace: created and labelled as this stack's, or an existing one adopted as it is."""
    if not live.createNamespace:
        return live.namespace
    # Retained on delete: a namespace holds more than this program's objects, and a later change of how it is
    # declared must never take everything in it along.
    namespace = k8s.core.v1.Namespace("inference", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=live.namespace, labels={**MANAGED_BY, STACK_LABEL: plan.stack}),
        opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(retain_on_delete=True)))
    return namespace.metadata.name


def build_mirrors(plan: Plan, namespace: pulumi.Input[str], identity: PodIdentity,
                  hf_token: pulumi.Output[str] | None, k8s_opts: pulumi.ResourceOptions) -> dict[str, WeightsMirror]:
    """The one-time Jobs that copy pinned Hub snapshots to S3, by litellmModelName (planner/weights.py)."""
    return {
        server.litellmModelName: WeightsMirror(server.weights.mirror.name, WeightsMirrorArgs(
            mirror=server.weights.mirror, image=server.image, namespace=namespace, identity=identity,
            huggingface_token=hf_token), opts=k8s_opts)
        for server in plan.servers if server.weights is not None and server.weights.mirror is not None
    }


def build_servers(plan: Plan, namespace: pulumi.Input[str], depends: dict[str, list[pulumi.Resource]],
                  identity: PodIdentity, k8s_opts: pulumi.ResourceOptions) -> dict[str, VllmServer]:
    """One VllmServer per planned server, by litellmModelName; each waits for its pool (and the device plugin), and
    for the Job that mirrors its weights to S3 when they come from there."""
    hf_token = pulumi.Config(PROJECT).get_secret("huggingFaceToken")
    mirrors = build_mirrors(plan, namespace, identity, hf_token, k8s_opts)
    return {
        server.litellmModelName: VllmServer(
            server.name,
            VllmServerArgs(server=server, namespace=namespace, huggingface_token=hf_token,
                           plan_input=plan_input_props(server_slice(plan.settings.raw, server.litellmModelName, server.pool),
                                                       plan.stack, server.args),
                           identity=identity,
                           depends_on=[mirrors[server.litellmModelName]] if server.litellmModelName in mirrors else []),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=depends[server.pool])),
        )
        for server in plan.servers
    }


def build_checks(plan: Plan, namespace: pulumi.Input[str], servers: dict[str, VllmServer],
                 k8s_opts: pulumi.ResourceOptions) -> dict[str, EndpointCheck]:
    """The in-cluster endpoint check of every self-hosted model the plan checks, by litellmModelName."""
    checked = [m for m in plan.models if m.check is not None and m.litellmModelName in servers]
    if not checked:
        return {}
    script = check_script_config_map(namespace, k8s_opts)
    return {
        model.litellmModelName: EndpointCheck(
            model.check.server,
            EndpointCheckArgs(check=model.check, namespace=namespace, script_config_map=script.metadata.name,
                              api_key_secret=servers[model.litellmModelName].secret.metadata.name),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                depends_on=[servers[model.litellmModelName]])),
        )
        for model in checked if model.check is not None
    }


def build_catalog(plan: Plan, servers: dict[str, VllmServer], checks: dict[str, EndpointCheck]) -> ModelCatalog:
    credentials = pulumi.Config(PROJECT).get_secret_object("credentials") if get_config(f"{PROJECT}:credentials") else None
    return ModelCatalog("models", ModelCatalogArgs(
        plan=plan,
        credentials=credentials,
        server_keys={name: server.api_key for name, server in servers.items()},
        # A self-hosted model is registered once its server is ready (Pulumi awaits the Deployment's readiness)
        # and, unless `verify: false`, its in-cluster endpoint check has passed (Pulumi awaits the Job).
        depends_on={name: [server, *([checks[name]] if name in checks else [])] for name, server in servers.items()},
        plan_input=plan_input_props(plan.settings.raw, plan.stack),
    ))


def build_monitoring(plan: Plan, namespace: pulumi.Input[str], catalog: ModelCatalog,
                     k8s_opts: pulumi.ResourceOptions) -> ModelMonitoring | None:
    """The PodMonitors (each with its model's Kindo ID, so after its registration) and the dashboard ConfigMap."""
    observability = plan.observability
    if not observability.podMonitors and observability.dashboard is None:
        return None
    return ModelMonitoring("monitoring", ModelMonitoringArgs(
        plan=observability, namespace=namespace,
        model_ids={name: catalog.models[name].modelId for name in observability.podMonitors}), opts=k8s_opts)


def export(plan: Plan, pools: dict[str, GpuNodePool], servers: dict[str, VllmServer], catalog: ModelCatalog) -> None:
    pulumi.export("nodeGroups", {name: pool.node_group_name for name, pool in pools.items()})
    pulumi.export("modelIds", {name: model.modelId for name, model in catalog.models.items()})
    pulumi.export("vllmServers", {name: server.url for name, server in servers.items()})
    pulumi.export("plan", {
        "summary": plan.summary(),
        "warnings": [f.line for f in plan.findings if f.severity == "warning"],
        "servers": [{k: s.to_json()[k] for k in ("name", "gpu", "gpusPerReplica", "tensorParallelSize", "maxModelLen",
                                                  "maxContextThatFits", "replicas", "url")} for s in plan.servers],
        "flags": plan.flags,
    })
    pulumi.export("catalog", [row.__dict__ for row in plan.catalog()])


def build(plan: Plan, kube: KubernetesReads | None = None) -> dict[str, Any]:
    """Create the resources of a plan without errors; returns the components by name (tests inspect them)."""
    settings = plan.settings
    assert settings.cluster is not None
    cluster = aws.eks.get_cluster(name=settings.cluster.name)
    live = preflight(plan, cluster, kube)
    provider = k8s.Provider("eks", kubeconfig=kubeconfig(cluster, settings.region), enable_server_side_apply=True)
    k8s_opts = pulumi.ResourceOptions(provider=provider)
    parts = build_cluster_parts(plan, live, k8s_opts)
    pools = build_pools(plan, cluster, live)
    device_plugin = plan.device_plugin
    plugin = (NvidiaDevicePlugin("nvidia-device-plugin", NvidiaDevicePluginArgs(
        plan=device_plugin, repository_opts=repository_opts(device_plugin.chart)), opts=k8s_opts) if device_plugin else None)
    servers: dict[str, VllmServer] = {}
    checks: dict[str, EndpointCheck] = {}
    monitoring: ModelMonitoring | None = None
    if plan.servers:
        namespace = build_namespace(plan, live, k8s_opts)
        # A server waits for its nodes, the device plugin, and the storage its cache claims (when the program adds it).
        shared = [part for part in (plugin, parts["storage"], parts["addons"]) if part is not None]
        depends = {name: [pool, *shared] for name, pool in pools.items()}
        agent = parts["addons"].pod_identity_agent if parts["addons"] else None
        identity = PodIdentity(settings.cluster.name, live.trustPolicy, live.tags, [agent] if agent else [])
        servers = build_servers(plan, namespace, depends, identity, k8s_opts)
        checks = build_checks(plan, namespace, servers, k8s_opts)
    catalog = build_catalog(plan, servers, checks)
    if plan.servers:
        monitoring = build_monitoring(plan, namespace, catalog, k8s_opts)
    export(plan, pools, servers, catalog)
    pulumi.export("cluster", {"namespace": live.namespace, "namespaceAdopted": not live.createNamespace and bool(plan.servers),
                              "storageClass": plan.storageClass.name if plan.storageClass and plan.ebs_pools else None,
                              "autoscaler": settings.cluster.autoscaler})
    return {"pools": pools, "plugin": plugin, "servers": servers, "checks": checks, "provider": provider,
            "catalog": catalog, "monitoring": monitoring, "live": live, **parts}


def allow_dynamic_resources(plan: Plan) -> None:
    """pulumi.dynamic.serialize_provider (SDK 3.272.0) wraps pickle's _batch_setitems once more for every dynamic
    resource it serializes and never unwraps it: the N-th KindoModel or flag is pickled N calls deep. Past ~450 dynamic
    resources Python's default recursion limit stops the program; allow what this plan registers."""
    needed = 1000 + 4 * (len(plan.models) + len(plan.routed_flags))
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def main(kube: KubernetesReads | None = None) -> dict[str, Any]:
    """kube: how the preflight reads the Kubernetes API (tests pass a double; default: the cluster's API server)."""
    plan = load_plan()
    report(plan.findings)
    stop_on_errors(plan)
    allow_dynamic_resources(plan)
    return build(plan, kube)
