"""The Plan: settings in, every decision and every finding out. No Pulumi, no I/O beyond the catalogs.

make_plan resolves each model once (planner/resolve.py), decides its server (servers.py), its Kindo body
(model_plan.py), its flags and replacement (routing.py), its pool (pools.py) and its endpoint check (targets.py),
and collects what every check says (checks.py). The Plan it returns is all a component renders.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from planner import catalogs, checks
from planner.catalogs import FlagSpec
from planner.config import Settings
from planner.findings import Finding, has_errors, info, sort_findings
from planner.images import check_image
from planner.model_plan import PlannedModel, plan_model
from planner.names import DEFAULT_NAMESPACE
from planner.observability import ObservabilityPlan, plan_observability
from planner.placeholders import check_placeholders
from planner.pools import (
    DevicePluginPlan, PlannedPool, PoolSettings, check_duplicate_pools, device_plugin_plan, plan_pool, pool_node,
)
from planner.resolve import ResolvedModel, StackContext, resolve_model
from planner.routing import flag_specs, flag_table, replacements
from planner.scheduling import PoolNode
from planner.servers import PlannedServer, ServerContext, plan_server
from planner.storage import StorageClassPlan, storage_class_plan
from planner.targets import check_plan

# Findings that the catalog view shows as a key problem in the Status column.
KEY_STATUS = {
    "credential-missing": "key missing",
    "credential-from-esc": "key from ESC (unchecked)",
    "api-key-missing": "key missing",
    "secret-env-unset": "key not in environment",
    "plain-text-secret": "plain-text key",
    "provider-required-field": "incomplete",
}


@dataclass
class CatalogRow:
    model: str
    modelId: str
    provider: str
    category: str
    context: int | None
    maxOutput: int | None
    credential: str
    status: str
    flags: list[str]


@dataclass(frozen=True)
class PlannedFlag:
    """One Unleash flag that carries models: which, and whether Kindo requires it (its routing is never dropped)."""

    key: str
    models: list[str]  # litellmModelNames, in routing order
    required: bool
    payload: str = "ids"  # what the variant carries: Kindo model IDs, or routing names (unleash.variantPayload)


@dataclass
class Plan:
    stack: str
    settings: Settings
    findings: list[Finding]
    models: list[PlannedModel]
    servers: list[PlannedServer]
    pools: list[PlannedPool]
    flags: dict[str, list[str]]
    flagSpecs: dict[str, FlagSpec] = field(default_factory=dict)
    storageClass: StorageClassPlan | None = None  # the class EBS weights caches name (planner/storage.py)
    nodes: dict[str, PoolNode] = field(default_factory=dict)  # each pool's node, as its servers were placed on it
    # PodMonitors and the Grafana dashboard (planner/observability.py); rendered, not part of `plan --json`
    observability: ObservabilityPlan = field(default_factory=ObservabilityPlan)

    @property
    def ok(self) -> bool:
        return not has_errors(self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def routed_flags(self) -> list[PlannedFlag]:
        """The flags that carry at least one model, as the catalog component registers them."""
        payload = self.settings.unleash.variantPayload if self.settings.unleash else "ids"
        return [PlannedFlag(key, names, key in self.flagSpecs and self.flagSpecs[key].requirement == "required", payload)
                for key, names in self.flags.items() if names]

    @property
    def device_plugin(self) -> DevicePluginPlan | None:
        """Where the NVIDIA device plugin must run (None: every pool's AMI ships it)."""
        return device_plugin_plan(self.pools, self.settings.images)

    @property
    def ebs_pools(self) -> list[PlannedPool]:
        """The pools whose weights caches are EBS volumes: they need the storage class (and the EBS CSI driver)."""
        return [p for p in self.pools if p.weightsCache == "ebs"]

    def summary(self) -> str:
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in ("error", "warning", "info")}

        def count(number: int, noun: str, plural: str | None = None) -> str:
            return f"{number} {noun if number == 1 else plural or noun + 's'}"

        # "info" as the findings' own severity says it, uncountable: "1 info", "3 info".
        return (f"stack {self.stack}: {count(len(self.models), 'model')}, {count(len(self.servers), 'vLLM server')}, "
                f"{count(len(self.pools), 'GPU pool')}; {count(counts['error'], 'error')}, "
                f"{count(counts['warning'], 'warning')}, {count(counts['info'], 'info', 'info')}")

    def catalog(self) -> list[CatalogRow]:
        """The Models page of Kindo's admin UI, as this stack will fill it."""
        problems: dict[str, list[str]] = {}
        for finding in self.findings:
            if finding.code in KEY_STATUS:
                problems.setdefault(finding.subject, []).append(KEY_STATUS[finding.code])
        return [
            CatalogRow(model=m.displayName, modelId=m.litellmModel or m.litellmModelName, provider=m.provider,
                       category=m.category, context=m.contextWindow, maxOutput=m.maxTokens, credential=m.credential,
                       status=", ".join(dict.fromkeys(problems.get(m.litellmModelName, []))) or "ok", flags=m.flags)
            for m in self.models
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "ok": self.ok,
            "findings": [f.to_json() for f in self.findings],
            "models": [m.to_json() for m in self.models],
            "flags": self.flags,
            "servers": [s.to_json() for s in self.servers],
            "pools": [p.to_json() for p in self.pools],
            "catalog": [row.__dict__ for row in self.catalog()],
        }


def stack_context(settings: Settings, specs: dict[str, FlagSpec]) -> StackContext:
    _, routes = catalogs.flags()
    return StackContext(
        pools={p.name: p for p in settings.gpuPools},
        namespace=settings.cluster.namespace if settings.cluster else DEFAULT_NAMESPACE,
        default_image=settings.vllm.image if settings.vllm else None,
        flag_specs=specs,
        routes=routes,
    )


def model_findings(model: ResolvedModel, settings: Settings, specs: dict[str, FlagSpec],
                   environ: Mapping[str, str], today: datetime.date) -> list[Finding]:
    """What the checks say about one model's contract fields (its server is judged by plan_server)."""
    extra_providers = settings.kindo.providerDisplayNames if settings.kindo else []
    findings = list(model.findings)
    for check in (checks.check_litellm_model, checks.check_api_base, checks.check_required_fields,
                  checks.check_cloud_match):
        findings += check(model)
    findings += checks.check_model_id_pinned(model, today) + checks.check_retirement(model, today)
    findings += checks.check_types(model.entry) + checks.check_provider(model, extra_providers)
    findings += checks.check_secrets(model, settings.credentials, environ, settings.escEnvironments)
    findings += checks.check_flag_names(model.entry, specs)
    if not model.entry.verify:
        findings.append(info("verify-skipped", model.name, "verify: false: the endpoint checks are skipped for this "
                             "model, so a broken endpoint reaches Kindo unnoticed."))
    return findings


def decide_model(model: ResolvedModel, context: ServerContext | None,
                 check_image_ref: str) -> tuple[PlannedModel, PlannedServer | None, list[Finding]]:
    """The model's server (when it has one to decide), then the model as Kindo registers it."""
    server, findings = plan_server(model, model.server, context) if model.server and context else (None, [])
    entry = model.entry
    if server and entry.apiBase and entry.apiBase.rstrip("/") != server.url:
        findings.append(info("api-base-overridden", model.name, f"apiBase {entry.apiBase!r} is used instead of its "
                             f"server's in-cluster URL {server.url}."))
    findings += checks.check_context(model, server)
    planned = plan_model(model, server)
    if server is not None:
        planned.check = check_plan(planned, server, check_image_ref)
    return planned, server, findings


def plan_nodes(settings: Settings, storage: StorageClassPlan) -> tuple[dict[str, PoolNode], list[Finding]]:
    """Each pool's nodes, decided before the servers placed on them (a server is checked against its node)."""
    nodes: dict[str, PoolNode] = {}
    findings: list[Finding] = []
    for pool in settings.gpuPools:
        nodes[pool.name], pool_findings = pool_node(pool, catalogs.instances().get(pool.instanceType), settings.cluster,
                                                    storage.name)
        findings += pool_findings
    return nodes, findings


def server_context(model: ResolvedModel, nodes: dict[str, PoolNode], settings: Settings) -> ServerContext | None:
    if model.server is None:
        return None
    autoscaler = settings.cluster.autoscaler if settings.cluster else "none"
    return ServerContext(nodes.get(model.server.pool.name), settings.images, autoscaler, settings.region, settings.stack)


def plan_pools(settings: Settings, servers: list[PlannedServer],
               nodes: dict[str, PoolNode]) -> tuple[list[PlannedPool], list[Finding]]:
    cluster = settings.cluster
    pool_settings = PoolSettings(settings.stack, cluster.autoscaler if cluster else "none", cluster.subnetIds if cluster else None)
    pools: list[PlannedPool] = []
    findings: list[Finding] = []
    for pool in settings.gpuPools:
        planned_pool, pool_findings = plan_pool(pool, servers, pool_settings, nodes[pool.name])
        pools.append(planned_pool)
        findings += pool_findings
    return pools, findings


def make_plan(settings: Settings, findings: list[Finding] | None = None,
              environ: Mapping[str, str] | None = None, today: datetime.date | None = None) -> Plan:
    """environ: the environment `pulumi up` will run in, for `${VAR}` keys (default: this process's).
    today: the date retirement is judged against (default: the real date; tests pin it)."""
    findings = list(findings or [])
    environ = os.environ if environ is None else environ
    today = today or datetime.date.today()
    specs = flag_specs(catalogs.flags()[0], settings.unleash.flagRequirements if settings.unleash else {})
    context = stack_context(settings, specs)
    findings += check_duplicate_pools(settings.gpuPools) + check_placeholders(settings)
    for pool in settings.gpuPools:
        findings += checks.check_pool(pool, catalogs.instances().get(pool.instanceType))
    storage = storage_class_plan(settings.cluster, settings.stack)
    nodes, node_findings = plan_nodes(settings, storage)
    findings += node_findings + checks.check_duplicates(settings.models)
    resolved = [resolve_model(entry, context) for entry in settings.models]
    models: list[PlannedModel] = []
    servers: list[PlannedServer] = []
    job_image = check_image(settings.images)
    for model in resolved:
        planned, server, server_findings = decide_model(model, server_context(model, nodes, settings), job_image)
        findings += model_findings(model, settings, specs, environ, today) + server_findings
        models.append(planned)
        servers += [server] if server else []
    findings += checks.check_service_names(servers)
    table = flag_table({m.litellmModelName: m.flags for m in models}, specs)
    anchors = replacements([(m.litellmModelName, m.metadataType) for m in models], table, specs)
    for planned in models:
        planned.replacement = anchors[planned.litellmModelName]
    if settings.invalid_models == 0:
        # With invalid entries dropped, "no model routes to X" would be noise on top of the real error.
        findings += checks.check_flags(table, specs, {m.name: m for m in resolved})
    findings += checks.check_stack(settings, [m.entry for m in models if m.selfHosted])
    pools, pool_findings = plan_pools(settings, servers, nodes)
    versions = {m.name: m.server.image.version for m in resolved if m.server}
    observability, observability_findings = plan_observability(settings.observability, servers, versions, context.namespace)
    return Plan(stack=settings.stack, settings=settings, findings=sort_findings(findings + pool_findings + observability_findings),
                models=models, servers=servers, pools=pools, flags=table, flagSpecs=specs, storageClass=storage,
                observability=observability, nodes=nodes)
