"""Read the live cluster for the preflight (planner/preflight.py decides from what is read; nothing here decides).

AWS facts come from provider invokes, which run at preview and whose failures are catchable (a missing add-on is a
failed DescribeAddon). Kubernetes facts come from the API server with the same `aws eks get-token` identity the
Kubernetes provider uses: pulumi_kubernetes has no invoke that lists objects, and `Resource.get` of a missing object
fails the whole deployment instead of raising (pulumi/pulumi#3364). The reads are GETs only.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from typing import Any, Protocol

import pulumi_aws as aws
import requests

from planner.names import POOL_LABEL, STACK_LABEL
from planner.preflight import AddonFact, ClusterFacts, LiveServer, PreflightQuery, StorageClassFact
from planner.scheduling import Resources

TIMEOUT_SECONDS = 20
# Failure texts of DescribeAddon for an add-on the cluster does not have, through the AWS provider's data source.
NOT_FOUND_MARKERS = ("resourcenotfound", "couldn't find resource", "not found", "no addon", "empty result")


class KubernetesUnreadable(Exception):
    """The API server cannot be read; the message says why and what to do."""


class KubernetesReads(Protocol):
    def get(self, path: str) -> dict[str, Any] | None:
        """The object or list at an API path; None when it does not exist (404). Raises KubernetesUnreadable."""


class ApiServer:
    """The cluster's API server, authenticated as `aws eks get-token` (AWS CLI v2) says."""

    def __init__(self, endpoint: str, certificate_authority: str, cluster: str, region: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.command = ["aws", "eks", "get-token", "--cluster-name", cluster, "--output", "json"] + (
            ["--region", region] if region else [])
        self.certificate_authority = certificate_authority
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            try:
                done = subprocess.run(self.command, capture_output=True, text=True, timeout=60, check=False)
            except FileNotFoundError:
                raise KubernetesUnreadable("the AWS CLI (`aws`) is not on PATH where Pulumi runs: install AWS CLI v2, "
                                           "the Kubernetes provider authenticates with `aws eks get-token` too.") from None
            if done.returncode != 0:
                raise KubernetesUnreadable(f"`{' '.join(self.command)}` failed: {done.stderr.strip()[:300]}. Check the AWS "
                                           "credentials where Pulumi runs.")
            self._token = json.loads(done.stdout)["status"]["token"]
        return self._token

    def get(self, path: str) -> dict[str, Any] | None:
        with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as ca:
            ca.write(base64.b64decode(self.certificate_authority))
        try:
            response = requests.get(self.endpoint + path, headers={"Authorization": f"Bearer {self.token()}"},
                                    verify=ca.name, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise KubernetesUnreadable(f"cannot reach the cluster's API server {self.endpoint}: {type(exc).__name__}. Run "
                                       "Pulumi where the EKS endpoint is reachable (a private endpoint needs a VPN, a "
                                       "bastion or a runner inside the VPC).") from None
        finally:
            os.unlink(ca.name)
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise KubernetesUnreadable(f"the API server answered {response.status_code} to GET {path}: the identity running "
                                       "Pulumi is not allowed into the cluster. Give it an EKS access entry with "
                                       "AmazonEKSClusterAdminPolicy (README, \"Before your first pulumi up\").")
        if response.status_code >= 400:
            raise KubernetesUnreadable(f"the API server answered {response.status_code} to GET {path}.")
        return response.json()


def items(reads: KubernetesReads, path: str) -> list[dict[str, Any]]:
    found = reads.get(path)
    return list(found.get("items") or []) if found else []


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def is_not_found(message: str) -> bool:
    return any(marker in message.lower() for marker in NOT_FOUND_MARKERS)


def addon_fact(query: PreflightQuery, name: str) -> AddonFact:
    try:
        addon = aws.eks.get_addon(cluster_name=query.cluster, addon_name=name)
    except Exception as exc:  # noqa: BLE001 - a failed invoke raises a plain Exception; absence is one of its texts
        message = str(exc)
        return AddonFact(False) if is_not_found(message) else AddonFact(False, error=message[:300])
    tags = addon.tags or {}
    identity = bool(addon.pod_identity_associations) or bool(addon.service_account_role_arn)
    return AddonFact(True, ours=tags.get(STACK_LABEL) == query.stack, identity=identity)


def subnet_zones(subnets: tuple[str, ...]) -> dict[str, str]:
    zones = {}
    for subnet in subnets:
        try:
            zones[subnet] = aws.ec2.get_subnet(id=subnet).availability_zone
        except Exception:  # noqa: BLE001,S112 - an unreadable subnet is reported by the preflight's decision
            continue
    return zones


def node_groups(cluster: str) -> tuple[str, ...] | None:
    try:
        return tuple(aws.eks.get_node_groups(cluster_name=cluster).names or ())
    except Exception:  # noqa: BLE001 - unknown node groups only silence a warning
        return None


# Kubernetes quantity suffixes (apimachinery resource.Quantity), as multiples of one unit.
QUANTITY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                     "m": 10**-3}


def quantity(text: object) -> float:
    """A Kubernetes quantity ("8", "7500m", "30Gi", "100G") as a number of units; 0 for what cannot be read."""
    value = str(text or "0").strip()
    for suffix, factor in QUANTITY_SUFFIXES.items():
        if value.endswith(suffix):
            value, scale = value[: -len(suffix)], factor
            break
    else:
        scale = 1
    try:
        return float(value) * scale
    except ValueError:
        return 0.0


def live_server(deployment: dict[str, Any]) -> LiveServer:
    spec = deployment.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    requests: dict[str, Any] = {}
    for container in pod.get("containers") or []:
        for key, value in ((container.get("resources") or {}).get("requests") or {}).items():
            requests[key] = requests.get(key, 0.0) + quantity(value)
    request = Resources(gpus=int(requests.get("nvidia.com/gpu", 0)), cpuMilli=int(requests.get("cpu", 0) * 1000),
                        memoryMiB=int(requests.get("memory", 0) / 2**20),
                        diskGiB=requests.get("ephemeral-storage", 0) / 2**30, pods=1)
    replicas = spec.get("replicas")
    return LiveServer(name=(deployment.get("metadata") or {}).get("name", ""),
                      pool=(pod.get("nodeSelector") or {}).get(POOL_LABEL, ""),
                      replicas=1 if replicas is None else int(replicas), request=request)


def live_servers(deployments: list[dict[str, Any]], namespace: str, stack: str) -> tuple[LiveServer, ...]:
    """This stack's vLLM Deployments in its namespace (labelled as VllmServer labels them)."""
    return tuple(live_server(d) for d in deployments
                 if (d.get("metadata") or {}).get("namespace") == namespace
                 and labels_of(d).get("app.kubernetes.io/name") == "vllm" and labels_of(d).get(STACK_LABEL) == stack)


def autoscaler_deployments(deployments: list[dict[str, Any]], stack: str) -> tuple[tuple[str, ...], bool]:
    """(Cluster Autoscaler Deployments this stack did not install, whether this stack's own runs)."""
    foreign, ours = [], False
    for deployment in deployments:
        containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
        if not any("cluster-autoscaler" in (c.get("image") or "").rsplit("/", 1)[-1] for c in containers):
            continue
        meta = deployment.get("metadata") or {}
        if labels_of(deployment).get(STACK_LABEL) == stack:
            ours = True
        else:
            foreign.append(f"{meta.get('namespace')}/{meta.get('name')}")
    return tuple(sorted(foreign)), ours


def namespace_owner(namespace: dict[str, Any] | None, stack: str) -> str:
    """absent | ours (labelled with this stack) | pulumi (labelled only `managed-by: pulumi`, as this program's
    earlier versions left it: possibly this stack's own, in its state) | foreign."""
    if namespace is None:
        return "absent"
    labels = labels_of(namespace)
    if labels.get(STACK_LABEL) == stack:
        return "ours"
    if STACK_LABEL not in labels and labels.get("app.kubernetes.io/managed-by") == "pulumi":
        return "pulumi"
    return "foreign"


def kubernetes_facts(query: PreflightQuery, reads: KubernetesReads) -> dict[str, Any]:
    namespace = reads.get(f"/api/v1/namespaces/{query.namespace}")
    classes = {
        (c.get("metadata") or {}).get("name", ""): StorageClassFact(
            c.get("provisioner", ""), c.get("volumeBindingMode") or "Immediate", labels_of(c).get(STACK_LABEL) == query.stack)
        for c in items(reads, "/apis/storage.k8s.io/v1/storageclasses")}
    deployments = items(reads, "/apis/apps/v1/deployments")
    autoscalers, own = autoscaler_deployments(deployments, query.stack)
    return {
        "namespace": namespace_owner(namespace, query.stack),
        "storageClasses": classes,
        "csiDrivers": frozenset((d.get("metadata") or {}).get("name", "") for d in items(reads, "/apis/storage.k8s.io/v1/csidrivers")),
        "daemonSets": frozenset((d.get("metadata") or {}).get("name", "")
                                for d in items(reads, "/apis/apps/v1/namespaces/kube-system/daemonsets")),
        "autoscalers": autoscalers,
        "ownAutoscaler": own,
        "servers": live_servers(deployments, query.namespace, query.stack),
        "karpenter": reads.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{query.karpenterCrd}") is not None,
        "podMonitorCrd": query.podMonitorCrd is not None and reads.get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{query.podMonitorCrd}") is not None,
    }


def read_cluster_facts(query: PreflightQuery, version: str, reads: KubernetesReads) -> ClusterFacts:
    """Everything the preflight decides from; `unreadable` says why the Kubernetes side could not be read."""
    try:
        found = kubernetes_facts(query, reads)
    except KubernetesUnreadable as exc:
        return ClusterFacts(version=version, unreadable=str(exc))
    addons = {name: addon_fact(query, name) for name in query.addons}
    return ClusterFacts(version=version, addons=addons, subnetZones=subnet_zones(query.subnets),
                        nodeGroups=node_groups(query.cluster), **found)
