"""Placeholder values the plan can recognise: an example stack copied without replacing its examples.

Example domains (RFC 2606 / RFC 6761: example.com/.net/.org, *.example, *.test, *.invalid, *.localhost), all-zero UUIDs
and AWS IDs (cr-0000..., subnet-0000...), and AWS's documentation account 123456789012 in an ARN. Each is a warning
with the field it sits in: the plan is valid, but `pulumi up` would talk to nothing.
"""

from __future__ import annotations

import re
from typing import Iterator
from urllib.parse import urlparse

from planner.config import Settings
from planner.findings import Finding, warning
from planner.names import PROJECT

EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
EXAMPLE_SUFFIXES = (".example", ".test", ".invalid", ".localhost")
ZERO_ID = re.compile(r"^(?:0{8}-?0{4}-?0{4}-?0{4}-?0{12}|(?:cr|subnet|sg|vpc|i)-0+)$")
DOCUMENTATION_ACCOUNT = ":123456789012:"


def is_example_host(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in EXAMPLE_DOMAINS) or host.endswith(EXAMPLE_SUFFIXES)


def placeholder_kind(value: str) -> str | None:
    """What kind of placeholder a value is, or None when it looks real."""
    if ZERO_ID.match(value.strip().lower()):
        return "an all-zero ID"
    if DOCUMENTATION_ACCOUNT in value:
        return "AWS's documentation account 123456789012"
    if "://" in value and is_example_host(value):
        return "an example domain"
    return None


def stack_values(settings: Settings) -> Iterator[tuple[str, str]]:
    """(field, value) of every setting that names something outside this repository."""
    if settings.kindo:
        yield from (("kindo.apiUrl", settings.kindo.apiUrl), ("kindo.orgId", settings.kindo.orgId),
                    ("kindo.userId", settings.kindo.userId))
    if settings.unleash:
        yield "unleash.url", settings.unleash.url
    if settings.cluster:
        yield from (("cluster.nodeRoleArn", settings.cluster.nodeRoleArn or ""),
                    *((f"cluster.subnetIds[{i}]", s) for i, s in enumerate(settings.cluster.subnetIds or [])))
    for pool in settings.gpuPools:
        yield f"gpuPools[{pool.name}].capacityReservationId", pool.capacityReservationId or ""
        yield from ((f"gpuPools[{pool.name}].subnetIds[{i}]", s) for i, s in enumerate(pool.subnetIds or []))
    for model in settings.models:
        yield f"models[{model.litellmModelName}].apiBase", model.apiBase or ""


def check_placeholders(settings: Settings) -> list[Finding]:
    findings = []
    for where, value in stack_values(settings):
        kind = placeholder_kind(value) if value else None
        if kind:
            findings.append(warning("placeholder-value", where, f"{PROJECT}:{where} {value!r} is {kind}, a placeholder: "
                                    "replace it with your installation's value before `pulumi up`."))
    return findings
