"""Changing a self-hosted model without downtime: each server is a generation of what its pods run.

With `vllm.rollout: blue-green` (the default) a server's Kubernetes names carry a digest of everything its pods run
(image, command line, environment, pool, resources, cache). A change that restarts vLLM therefore yields a NEW
server beside the old one, and the plan's in-cluster URL changes with it. Through Pulumi's create-before-delete
order (pkg/resource/deploy/step_generator.go: creates and replacements first, deletes last in reverse dependency
order) that gives Kindo's own blue/green, gated by the endpoint check:
  1. the new generation's Deployment and Service are created and awaited (ready replicas);
  2. its endpoint check Job runs against the new Service and must pass;
  3. the model's KindoModel, whose apiBase changed, is replaced: the successor is registered;
  4. the Unleash flags move to the successor's ID;
  5. the old KindoModel is deleted with the successor as its replacement (users, assistants, steps move);
  6. the old generation's check, Service, Deployment and cache are deleted last.
A change of the replica count alone is no new generation: it scales the running one.
With `vllm.rollout: recreate` the names carry no generation and a change updates the Deployment in place (downtime
for the reload; the plan says so). Pools must hold both generations while a rollout runs: planner/pools.py checks.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from planner.config import VllmSpec
from planner.findings import Finding, warning
from planner.names import service_name

GENERATION_DIGITS = 6
# A Service name is a DNS-1035 label of at most 63 characters: the base leaves room for "-" and the generation.
BASE_NAME_LENGTH = 63 - 1 - GENERATION_DIGITS


def base_name(litellm_model_name: str) -> str:
    """The model's Kubernetes name without its generation (a DNS label short enough to take one)."""
    return service_name(litellm_model_name)[:BASE_NAME_LENGTH].rstrip("-")


def generation_of(pod_facts: dict[str, Any]) -> str:
    """A short digest of everything the server's pods run: any change of it restarts vLLM."""
    canonical = json.dumps(pod_facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:GENERATION_DIGITS]


def server_name(base: str, generation: str, rollout: str) -> str:
    return f"{base}-{generation}" if rollout == "blue-green" else base


def rollout_findings(spec: VllmSpec, startup_seconds: int, subject: str) -> list[Finding]:
    if spec.rollout != "recreate":
        return []
    if spec.replicas > 1:
        what = ("restarts it in place one replica at a time: the model serves at reduced capacity for each reload (up "
                f"to {startup_seconds // 60} minutes), and restarted pods serve before any endpoint check")
    else:
        what = (f"restarts it in place, and the model is down for the reload (up to {startup_seconds // 60} minutes, "
                "the startup budget) while Kindo keeps routing to it")
    return [warning("rollout-recreate", subject, f"vllm.rollout: recreate: a change to this server {what}. Remove it for "
                    "a zero-downtime rollout (a new verified generation beside the old one; the pool needs room for both).")]
