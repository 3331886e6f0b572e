"""Names that several places must agree on: the project's config namespace, Kubernetes names, labels and ports.

One definition each. The planner uses them to decide (a Service's name and URL, a pool's labels and taint), the
plan carries what it decided, and the components render it; the policy pack and the dynamic providers read the
same constants.
"""

from __future__ import annotations

import re

PROJECT = "kindo-models"  # Pulumi project name and the stack config namespace (kindo-models:models, ...)
DEFAULT_NAMESPACE = "inference"  # Kubernetes namespace of the vLLM servers unless cluster.namespace says otherwise
PORT = 8000  # vLLM's port in the pod and the Service's port
# The name of that port in the pod and the Service: the Service targets it, and a PodMonitor scrapes the port of this
# name (prometheus-operator: an unknown name finds no targets).
PORT_NAME = "http"

# Node labels and the taint of our GPU pools. The NVIDIA device plugin chart's own affinity accepts
# nvidia.com/gpu.present=true (shared/reference/facts.md, "Anchors"); our pool label pins pods to their pool.
POOL_LABEL = "kindo-models/pool"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_TAINT_KEY = "nvidia.com/gpu"
MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi"}
# Marks what a stack created in the cluster or in AWS (namespace, storage class, add-ons, autoscaler), so that the
# preflight tells what this stack owns from what it found there and adopts.
STACK_LABEL = f"{PROJECT}/stack"

_DNS_JUNK = re.compile(r"[^a-z0-9-]+")


def service_name(litellm_model_name: str) -> str:
    """A DNS-1035 label derived from the routing key, stable for a given name."""
    label = _DNS_JUNK.sub("-", litellm_model_name.lower()).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    if not label or not label[0].isalpha():
        label = f"m-{label}".rstrip("-")
    return label[:63].rstrip("-")


def service_url(name: str, namespace: str) -> str:
    """The in-cluster OpenAI base URL of a vLLM Service (what LiteLLM posts to: it must end with /v1)."""
    return f"http://{name}.{namespace}.svc.cluster.local:{PORT}/v1"


def label_value(text: str) -> str:
    """A Kubernetes label value: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def selector_labels(component: str, instance: str) -> dict[str, str]:
    """The labels a Service or a Deployment selects its pods by: stable for the life of the workload."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": instance}


def labels(component: str, instance: str, **extra: str) -> dict[str, str]:
    """The one label set of every object this project renders (vLLM production-stack's `_helpers.tpl` idea):
    the selector labels, the manager, and any project labels (`kindo-models/<key>`) with valid values."""
    out = {**selector_labels(component, instance), **MANAGED_BY}
    out.update({f"{PROJECT}/{key}": label_value(value) for key, value in extra.items()})
    return out
