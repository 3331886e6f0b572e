"""The Pulumi program: stack config -> plan -> stop on errors -> components -> stack outputs.

`__main__.py` only calls `main()`; tests call `main()` under `pulumi.runtime.set_mocks`.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi.runtime.config import get_config, is_config_secret

from components.endpoint_check import EndpointCheck, EndpointCheckArgs, check_script_config_map
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from components.model_catalog import ModelCatalog, ModelCatalogArgs
from components.nvidia_device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.vllm_server import VllmServer, VllmServerArgs
from planner.config import KNOWN_KEYS, SECRET_KEYS, Settings, parse_settings
from planner.findings import Finding
from planner.names import MANAGED_BY, PROJECT
from planner.plan import Plan, make_plan
from planner.policy_input import plan_input_props, pool_slice, server_slice

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


def report(plan: Plan) -> None:
    """Warnings and notes go to Pulumi's log; errors are listed once, by stop_on_errors()."""
    log = {"warning": pulumi.log.warn, "info": pulumi.log.info}
    for finding in plan.findings:
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


def build_pools(plan: Plan, cluster: aws.eks.AwaitableGetClusterResult) -> dict[str, GpuNodePool]:
    settings = plan.settings
    assert settings.cluster is not None
    role = node_role_arn(settings) if plan.pools else None
    return {
        pool.name: GpuNodePool(pool.name, GpuNodePoolArgs(
            cluster_name=settings.cluster.name, pool=pool, node_role_arn=role,
            cluster_subnet_ids=list(cluster.vpc_config.subnet_ids),
            plan_input=plan_input_props(pool_slice(settings.raw, pool.name), plan.stack)))
        for pool in plan.pools
    }


def build_servers(plan: Plan, namespace: k8s.core.v1.Namespace, depends: dict[str, list[pulumi.Resource]],
                  k8s_opts: pulumi.ResourceOptions) -> dict[str, VllmServer]:
    """One VllmServer per planned server, by litellmModelName; each waits for its pool (and the device plugin)."""
    hf_token = pulumi.Config(PROJECT).get_secret("huggingFaceToken")
    return {
        server.litellmModelName: VllmServer(
            server.name,
            VllmServerArgs(server=server, namespace=namespace.metadata.name, huggingface_token=hf_token,
                           plan_input=plan_input_props(server_slice(plan.settings.raw, server.litellmModelName, server.pool),
                                                       plan.stack, server.args)),
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=depends[server.pool])),
        )
        for server in plan.servers
    }


def build_checks(plan: Plan, namespace: k8s.core.v1.Namespace, servers: dict[str, VllmServer],
                 k8s_opts: pulumi.ResourceOptions) -> dict[str, EndpointCheck]:
    """The in-cluster endpoint check of every self-hosted model the plan checks, by litellmModelName."""
    checked = [m for m in plan.models if m.check is not None and m.litellmModelName in servers]
    if not checked:
        return {}
    script = check_script_config_map(namespace.metadata.name, k8s_opts)
    return {
        model.litellmModelName: EndpointCheck(
            model.check.server,
            EndpointCheckArgs(check=model.check, namespace=namespace.metadata.name, script_config_map=script.metadata.name,
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


def build(plan: Plan) -> dict[str, Any]:
    """Create the resources of a plan without errors; returns the components by name (tests inspect them)."""
    settings = plan.settings
    assert settings.cluster is not None
    cluster = aws.eks.get_cluster(name=settings.cluster.name)
    provider = k8s.Provider("eks", kubeconfig=kubeconfig(cluster, settings.region), enable_server_side_apply=True)
    k8s_opts = pulumi.ResourceOptions(provider=provider)
    pools = build_pools(plan, cluster)
    device_plugin = plan.device_plugin
    plugin = (NvidiaDevicePlugin("nvidia-device-plugin", NvidiaDevicePluginArgs(plan=device_plugin), opts=k8s_opts)
              if device_plugin else None)
    servers: dict[str, VllmServer] = {}
    checks: dict[str, EndpointCheck] = {}
    if plan.servers:
        namespace = k8s.core.v1.Namespace("inference", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=settings.cluster.namespace, labels=dict(MANAGED_BY)), opts=k8s_opts)
        depends = {name: [pool, *([plugin] if plugin else [])] for name, pool in pools.items()}
        servers = build_servers(plan, namespace, depends, k8s_opts)
        checks = build_checks(plan, namespace, servers, k8s_opts)
    catalog = build_catalog(plan, servers, checks)
    export(plan, pools, servers, catalog)
    return {"pools": pools, "plugin": plugin, "servers": servers, "checks": checks, "provider": provider,
            "catalog": catalog}


def main() -> dict[str, Any]:
    plan = load_plan()
    report(plan)
    stop_on_errors(plan)
    return build(plan)
