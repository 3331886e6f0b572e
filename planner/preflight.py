"""What the plan cannot know: the live cluster. Decided at preview, before anything is created.

components/preflight.py reads the cluster (its version and add-ons through AWS, StorageClasses, CSI drivers, the
namespace, DaemonSets, autoscalers and Karpenter's CRD through the Kubernetes API, the zones of the EBS pools'
subnets) into `ClusterFacts`; `decide_live` turns the plan and those facts into a `LivePlan`: what the program
creates, what it adopts (an existing namespace, add-on or autoscaler it did not create), and one error per missing
prerequisite. What this stack created carries its stack label (planner/names.py STACK_LABEL) and stays managed.
It also reads the vLLM servers running now: during a blue-green rollout (planner/rollout.py) the old generation keeps
its nodes until the new one is verified, and a pool whose size the program owns must hold both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from planner import catalogs
from planner.findings import Finding, error, info, warning
from planner.images import ChartSource, chart_source, image_ref, split_image
from planner.names import MANAGED_BY, PROJECT, STACK_LABEL
from planner.observability import POD_MONITOR_CRD
from planner.plan import Plan
from planner.scheduling import Resources, nodes_needed
from planner.storage import EBS_PROVISIONER, StorageClassPlan

KARPENTER_CRD = "nodepools.karpenter.sh"


@dataclass(frozen=True)
class AddonFact:
    present: bool
    ours: bool = False  # tagged with this stack's label: the program created it
    identity: bool = False  # it has a Pod Identity association or an IRSA role
    error: str | None = None  # the lookup failed for another reason than absence


@dataclass(frozen=True)
class StorageClassFact:
    provisioner: str
    bindingMode: str
    ours: bool


@dataclass(frozen=True)
class PreflightQuery:
    """What the preflight reads, as the plan needs it."""

    cluster: str
    stack: str
    namespace: str
    addons: tuple[str, ...]
    subnets: tuple[str, ...]  # the subnets of pools whose weights caches are on EBS
    karpenterCrd: str = KARPENTER_CRD
    podMonitorCrd: str | None = None  # read only when the plan has PodMonitors


@dataclass(frozen=True)
class LiveServer:
    """A vLLM Deployment of this stack running now, as the scheduler sees it."""

    name: str
    pool: str  # its nodeSelector's pool label
    replicas: int
    request: Resources  # one replica's requests


@dataclass(frozen=True)
class ClusterFacts:
    version: str = ""  # Kubernetes minor, e.g. "1.34"
    addons: dict[str, AddonFact] = field(default_factory=dict)
    csiDrivers: frozenset[str] = frozenset()
    daemonSets: frozenset[str] = frozenset()  # kube-system DaemonSets
    storageClasses: dict[str, StorageClassFact] = field(default_factory=dict)
    namespace: str = "absent"  # absent | ours | pulumi (an earlier version's label only) | foreign
    autoscalers: tuple[str, ...] = ()  # namespace/name of Cluster Autoscaler Deployments this stack did not install
    ownAutoscaler: bool = False
    karpenter: bool = False
    podMonitorCrd: bool = False  # the Prometheus Operator's PodMonitor CRD exists (read only when the plan needs it)
    subnetZones: dict[str, str] = field(default_factory=dict)
    nodeGroups: tuple[str, ...] | None = None  # the cluster's managed node groups (None: not read)
    servers: tuple[LiveServer, ...] = ()  # this stack's vLLM Deployments in its namespace
    unreadable: str | None = None  # why the cluster could not be read (nothing else is then known)


@dataclass(frozen=True)
class AutoscalerPlan:
    """The Cluster Autoscaler the program installs: pinned chart for the cluster's minor, its IAM through Pod Identity."""

    clusterName: str
    region: str
    chart: ChartSource
    imageRepository: str
    imageTag: str
    namespace: str
    serviceAccount: str
    labels: dict[str, str]
    extraArgs: dict[str, str]
    policy: str  # IAM policy document (JSON)


@dataclass(frozen=True)
class LivePlan:
    namespace: str
    createNamespace: bool  # False: it exists and was not created by this stack; it is adopted, not recreated
    podIdentityAgent: bool  # the program creates (or keeps) the eks-pod-identity-agent add-on
    ebsCsiAddon: bool  # the program creates (or keeps) the aws-ebs-csi-driver add-on and its role
    storageClass: StorageClassPlan | None  # the class the program creates (None: none, or the stack's own)
    autoscaler: AutoscalerPlan | None
    tags: dict[str, str]  # AWS tags of what the program creates in the cluster's account
    trustPolicy: str  # IAM trust policy of the roles pods assume through EKS Pod Identity
    desiredSizes: dict[str, int] = field(default_factory=dict)  # pools sized above the plan while a rollout runs


def addon_names() -> tuple[str, str]:
    addons = catalogs.eks().addons
    return addons["ebsCsi"]["name"], addons["podIdentityAgent"]["name"]


def preflight_query(plan: Plan) -> PreflightQuery:
    cluster = plan.settings.cluster
    assert cluster is not None
    subnets = sorted({s for p in plan.ebs_pools for s in p.subnetIds or []})
    return PreflightQuery(cluster.name, plan.stack, cluster.namespace, addon_names(), tuple(subnets),
                          podMonitorCrd=POD_MONITOR_CRD if plan.observability.podMonitors else None)


def pod_identity_trust_policy() -> str:
    """Roles assumed through EKS Pod Identity (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]})


# --------------------------------------------------------------------------------------------- decisions


def decide_namespace(plan: Plan, facts: ClusterFacts) -> tuple[bool, list[Finding]]:
    """Declare the namespace unless someone else's exists. One labelled only `managed-by: pulumi` is what this
    program's earlier versions created, and may be in this stack's state: declaring it keeps it (adopting it would
    drop the resource from the program, and Pulumi would delete it with everything in it); if it is another
    program's, the create fails with "already exists" instead of deleting anything."""
    if facts.namespace != "foreign" or not plan.servers:
        return True, []
    name = plan.settings.cluster.namespace if plan.settings.cluster else ""
    return False, [info("preflight-namespace-adopted", name, f"namespace {name} exists and was not created by this "
                        "stack: it is used as it is (adopted), not recreated, and `pulumi destroy` leaves it.")]


def csi_driver_present(facts: ClusterFacts) -> bool:
    ebs = facts.addons.get(addon_names()[0])
    return bool(ebs and ebs.present) or catalogs.eks().addons["ebsCsi"]["csiDriver"] in facts.csiDrivers


def check_named_class(plan: Plan, facts: ClusterFacts, name: str) -> list[Finding]:
    found = facts.storageClasses.get(name)
    if found is None:
        known = ", ".join(sorted(facts.storageClasses)) or "none"
        return [error("preflight-storage-class-missing", "cluster.storageClass", f"{PROJECT}:cluster.storageClass names "
                      f"{name!r}, which the cluster does not have (it has: {known}). Create it, name an existing one, "
                      "or remove cluster.storageClass to let the program create its own gp3 class.")]
    findings = []
    if plan.ebs_pools and found.bindingMode != "WaitForFirstConsumer":
        findings.append(error("preflight-storage-class-binding", "cluster.storageClass", f"StorageClass {name} binds "
                              f"{found.bindingMode}: each volume is created before its pod is scheduled, possibly in another "
                              "zone than the pod's node. Use a class with volumeBindingMode: WaitForFirstConsumer."))
    if found.provisioner == EBS_PROVISIONER and not csi_driver_present(facts):
        findings.append(error("preflight-addon-missing", addon_names()[0], f"StorageClass {name} provisions through "
                              f"{EBS_PROVISIONER}, but the cluster runs no EBS CSI driver: its volumes stay Pending. Install "
                              f"the add-on (aws eks create-addon --cluster-name <cluster> --addon-name {addon_names()[0]}) with "
                              "its IAM role, or remove cluster.storageClass to let the program install it."))
    return findings


def decide_own_storage(plan: Plan, facts: ClusterFacts) -> tuple[bool, StorageClassPlan | None, list[Finding]]:
    """(create or keep the EBS CSI add-on, the class to create or keep, findings) when the program provides the class."""
    own = plan.storageClass
    assert own is not None
    found = facts.storageClasses.get(own.name)
    if found is not None and not found.ours:
        return False, None, [error("preflight-storage-class-conflict", own.name, f"a StorageClass {own.name} exists that "
                                   f"this stack did not create. Name it in {PROJECT}:cluster.storageClass to use it, or "
                                   "delete it.")]
    ebs = facts.addons.get(addon_names()[0], AddonFact(False))
    if ebs.error:
        return False, None, [error("preflight-addon-unreadable", addon_names()[0], f"cannot read the add-on: {ebs.error}. "
                                   "Grant eks:DescribeAddon to the identity running Pulumi.")]
    needed = bool(plan.ebs_pools)
    create_addon = ebs.ours or (needed and not csi_driver_present(facts))
    findings = []
    if needed and ebs.present and not ebs.ours and not ebs.identity:
        findings.append(warning("preflight-addon-identity", addon_names()[0], "the EBS CSI add-on has no Pod Identity "
                                "association or IRSA role: its controller creates volumes only if the node role allows "
                                "it (AmazonEBSCSIDriverPolicyV2)."))
    return create_addon, own if (needed or (found and found.ours)) else None, findings


def check_subnet_zones(plan: Plan, facts: ClusterFacts) -> list[Finding]:
    findings = []
    for pool in plan.ebs_pools:
        subnets = pool.subnetIds or []
        unknown = [s for s in subnets if s not in facts.subnetZones]
        zones = sorted({facts.subnetZones[s] for s in subnets if s in facts.subnetZones})
        if unknown:
            findings.append(error("preflight-subnet-unknown", pool.name, f"subnet(s) {', '.join(unknown)} cannot be read: "
                                  "check the pool's subnetIds (and ec2:DescribeSubnets for the identity running Pulumi)."))
        elif len(zones) > 1:
            findings.append(error("preflight-ebs-zones", pool.name, f"its weights caches are EBS volumes, but its subnets span "
                                  f"{', '.join(zones)}: a replica moved to another zone cannot attach its volume. Keep "
                                  "the pool's subnetIds in one zone, or use weightsCache: nvme."))
    return findings


def autoscaler_policy(cluster: str) -> str:
    pins = catalogs.eks().clusterAutoscaler
    # Writes only to the groups CA discovers: EKS tags every managed node group's ASG k8s.io/cluster-autoscaler/<cluster>.
    owned = {"Null": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "false"}}
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(pins.readActions), "Resource": "*"},
        {"Effect": "Allow", "Action": list(pins.writeActions), "Resource": "*", "Condition": owned}]})


def autoscaler_plan(plan: Plan, version: str, region: str) -> AutoscalerPlan | None:
    pins = catalogs.eks().clusterAutoscaler
    pin = pins.byKubernetes.get(version)
    cluster = plan.settings.cluster
    if pin is None or cluster is None:
        return None
    images = plan.settings.images
    repository, tag = split_image(image_ref(f"{pins.image}:{pin[1]}", images))
    return AutoscalerPlan(
        clusterName=cluster.name, region=region, chart=chart_source(pins.chart, pins.repository, pin[0], images),
        imageRepository=repository, imageTag=tag, namespace=pins.namespace, serviceAccount=pins.serviceAccount,
        labels={**MANAGED_BY, STACK_LABEL: plan.stack},
        # Scale down nodes whose vLLM pods keep weights in an emptyDir (CA keeps such nodes by default), and keep
        # per-zone node groups of one pool balanced.
        extraArgs={"balance-similar-node-groups": "true", "skip-nodes-with-local-storage": "false", "expander": "least-waste"},
        policy=autoscaler_policy(cluster.name))


def decide_autoscaler(plan: Plan, facts: ClusterFacts, region: str | None) -> tuple[AutoscalerPlan | None, list[Finding]]:
    mode = plan.settings.cluster.autoscaler if plan.settings.cluster else "none"
    running = ", ".join(facts.autoscalers)
    if mode == "karpenter":
        return None, [] if facts.karpenter else [error(
            "preflight-karpenter-missing", "cluster.autoscaler", f"cluster.autoscaler is karpenter, but the cluster has no "
            f"Karpenter (CRD {KARPENTER_CRD} missing): nothing would add nodes. Install Karpenter, or set cluster.autoscaler "
            "to none (the program sizes the node groups) or cluster-autoscaler.")]
    if mode == "none":
        return None, [warning("preflight-autoscaler-running", "cluster.autoscaler", f"a Cluster Autoscaler runs ({running}) "
                              "while cluster.autoscaler is none: it and the program would both set the node groups' desired "
                              "sizes. Set cluster.autoscaler: cluster-autoscaler.")] if facts.autoscalers else []
    if facts.autoscalers:
        return None, [info("preflight-autoscaler-adopted", "cluster.autoscaler", f"the cluster's own Cluster Autoscaler "
                           f"({running}) sizes the node groups; the program does not install another.")]
    if not region:
        return None, [error("preflight-region-missing", "aws:region", "the Cluster Autoscaler needs the region: set "
                            "aws:region in the stack (pulumi config set aws:region <region>).")]
    installed = autoscaler_plan(plan, facts.version, region)
    if installed is None:
        known = ", ".join(sorted(catalogs.eks().clusterAutoscaler.byKubernetes))
        return None, [error("preflight-autoscaler-version", "cluster.autoscaler", f"no Cluster Autoscaler is pinned for "
                            f"Kubernetes {facts.version} (pinned: {known}); its minor must match the cluster's. Add the pin "
                            "to planner/data/eks.yaml, or install one yourself (the program then adopts it).")]
    return installed, []


OWN_NODE_GROUP_PREFIX = "kindo-"  # GpuNodePool names its node groups kindo-<pool>-...


def check_system_nodes(plan: Plan, facts: ClusterFacts) -> list[Finding]:
    """The check Jobs, the EBS CSI controller and the Cluster Autoscaler request no GPU: they need an untainted node."""
    if facts.nodeGroups is None or facts.karpenter or not plan.servers:
        return []
    others = [name for name in facts.nodeGroups if not name.startswith(OWN_NODE_GROUP_PREFIX)]
    if others:
        return []
    return [warning("preflight-no-system-nodes", plan.settings.cluster.name if plan.settings.cluster else "cluster",
                    "the cluster has no managed node group besides this program's GPU pools, whose taint keeps other pods "
                    "off: the endpoint check Jobs (and the EBS CSI controller, the Cluster Autoscaler) need an untainted "
                    "node. Make sure self-managed or Fargate capacity runs them, or add a small node group.")]


def decide_rollout_sizes(plan: Plan, facts: ClusterFacts) -> tuple[dict[str, int], list[Finding]]:
    """Pools whose size the program owns, sized for the servers of the plan AND the running ones it is about to
    replace: Pulumi deletes those last, after their successors are verified (planner/rollout.py), so both generations
    hold nodes meanwhile. The next `pulumi up` returns the pool to the plan's size."""
    planned = {s.name for s in plan.servers}
    leaving = [s for s in facts.servers if s.name not in planned]
    sizes: dict[str, int] = {}
    findings: list[Finding] = []
    configured = {p.name: p.desiredSize for p in plan.settings.gpuPools}
    for pool in plan.pools:
        old = [s for s in leaving if s.pool == pool.name and s.replicas]
        node = plan.nodes.get(pool.name)
        if pool.desiredSizeOwner != "program" or configured.get(pool.name) is not None or not old or node is None \
                or node.shape is None:
            continue
        steady = [s.request for s in plan.servers if s.pool == pool.name for _ in range(s.replicas)]
        needed = min(pool.maxSize, nodes_needed(steady + [s.request for s in old for _ in range(s.replicas)], node.shape))
        if needed <= pool.desiredSize:
            continue
        sizes[pool.name] = needed
        names = ", ".join(s.name for s in old)
        findings.append(info("preflight-rollout-nodes", pool.name, f"{names} keep{'s' if len(old) == 1 else ''} serving "
                             f"until {'its successor is' if len(old) == 1 else 'their successors are'} verified: the pool "
                             f"runs {needed} nodes during this update instead of {pool.desiredSize}. Run `pulumi up` again "
                             "afterwards to return it to its size (EKS drains the nodes it removes; the pods on them move)."))
    return sizes, findings


def check_pod_monitor_crd(plan: Plan, facts: ClusterFacts) -> list[Finding]:
    if not plan.observability.podMonitors or facts.podMonitorCrd:
        return []
    return [error("preflight-pod-monitor-crd-missing", "observability", f"observability.podMonitor is true, but the "
                  f"cluster has no PodMonitor CRD ({POD_MONITOR_CRD}): the Prometheus Operator is not installed, and "
                  "creating the PodMonitors would fail. Install it (e.g. the kube-prometheus-stack Helm chart), or set "
                  "observability.podMonitor: false.")]


def decide_agent(facts: ClusterFacts, needed: bool) -> bool:
    """The Pod Identity agent add-on: created when a role the program makes needs it and the cluster runs none; kept
    once created by this stack (other workloads may have come to rely on it)."""
    agent = facts.addons.get(addon_names()[1], AddonFact(False))
    running = agent.present or catalogs.eks().addons["podIdentityAgent"]["daemonSet"] in facts.daemonSets
    return agent.ours or (needed and not running)


def decide_live(plan: Plan, facts: ClusterFacts, region: str | None) -> tuple[LivePlan, list[Finding]]:
    """What the program creates or adopts in this cluster, and one error per missing prerequisite."""
    cluster = plan.settings.cluster
    assert cluster is not None
    if facts.unreadable:
        empty = LivePlan(cluster.namespace, False, False, False, None, None, {}, "")
        return empty, [error("preflight-cluster-unreadable", cluster.name, facts.unreadable)]
    create_namespace, findings = decide_namespace(plan, facts)
    create_addon, storage_class = False, None
    if plan.storageClass is not None and not plan.storageClass.ours:
        findings += check_named_class(plan, facts, plan.storageClass.name)
    elif plan.storageClass is not None:
        create_addon, storage_class, storage_findings = decide_own_storage(plan, facts)
        findings += storage_findings
    # An add-on this stack created stays managed whatever the pools need now (a driver with volumes is not removed).
    create_addon = create_addon or facts.addons.get(addon_names()[0], AddonFact(False)).ours
    findings += check_subnet_zones(plan, facts) + check_system_nodes(plan, facts) + check_pod_monitor_crd(plan, facts)
    autoscaler, autoscaler_findings = decide_autoscaler(plan, facts, region)
    # Roles pods assume through Pod Identity: the EBS CSI controller's, the autoscaler's, the S3 weights readers'.
    s3 = any(s.weights is not None and s.weights.access is not None for s in plan.servers)
    agent = decide_agent(facts, create_addon or autoscaler is not None or s3)
    sizes, size_findings = decide_rollout_sizes(plan, facts)
    live = LivePlan(cluster.namespace, create_namespace, agent, create_addon, storage_class, autoscaler,
                    {"managed-by": "pulumi", STACK_LABEL: plan.stack}, pod_identity_trust_policy(), sizes)
    return live, findings + autoscaler_findings + size_findings
