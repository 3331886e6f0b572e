"""Shared helpers: a small valid stack to mutate, and a one-call plan."""

from __future__ import annotations

import copy
import datetime
from typing import Any, Callable

import pytest

from planner.config import parse_settings
from planner.findings import Finding
from planner.plan import Plan, make_plan

ALL_REQUIRED = [
    "DEFAULT_WORKFLOW_STEP_MODEL", "LOCAL_STORAGE_CHAT_ACTIONS_MODELS", "CRON_EXPRESSION_GENERATION",
    "INGESTION_WORKERS", "INTERNAL_AUTO_GENERATION", "INTERNAL_LARGE_WORKER", "INTERNAL_SMALL_WORKER",
]

BASE: dict[str, Any] = {
    "cluster": {"name": "kindo-test"},
    "kindo": {"apiUrl": "https://api.kindo.test", "orgId": "org-1", "userId": "user-1"},
    "kindoApiKey": {"secure": "v1:abc"},
    "unleash": {"url": "https://unleash.kindo.test", "environment": "development"},
    "unleashApiToken": {"secure": "v1:def"},
    "huggingFaceToken": {"secure": "v1:ghi"},
    "credentials": {"anthropic": {"secure": "v1:jkl"}, "deepgram": {"secure": "v1:mno"}},
    "gpuPools": [
        {"name": "h100", "instanceType": "p5.48xlarge", "minSize": 0, "maxSize": 2, "capacityReservationId": "cr-1"},
        {"name": "l40s", "instanceType": "g6e.xlarge", "minSize": 0, "maxSize": 3},  # 2 servers + a rollout's next
    ],
    "models": [
        {
            "litellmModelName": "claude-sonnet-4-6", "litellmModel": "anthropic/claude-sonnet-4-6",
            "displayName": "Claude Sonnet 4.6", "provider": "Anthropic", "creator": "Anthropic", "type": "CHAT",
            "metadataType": "Text Generation", "costTier": "MEDIUM", "contextWindow": 1000000, "maxTokens": 16384,
            "credential": "anthropic", "flags": list(ALL_REQUIRED),
        },
        {
            "litellmModelName": "bge-m3", "displayName": "BGE-M3", "provider": "Self-Hosted", "type": "INTERNAL",
            "metadataType": "Embeddings", "contextWindow": 8192, "vllm": {"model": "BAAI/bge-m3", "gpuPool": "l40s"},
        },
        {
            "litellmModelName": "transcription-generator", "litellmModel": "deepgram/nova-2", "displayName": "Transcription",
            "provider": "Deepgram", "type": "INTERNAL", "metadataType": "Transcription",
            "apiBase": "https://api.deepgram.com/v1/", "credential": "deepgram",
        },
    ],
}


def base_config() -> dict[str, Any]:
    return copy.deepcopy(BASE)


# The day the committed LiteLLM map was generated (planner/data/litellm_models.json): tests judge retirement as of
# then, so that a model retiring later does not change what they assert. The committed stacks are planned with the
# real date (tests/test_stacks.py): that they stay current is the point there.
TODAY = datetime.date(2026, 11, 30)


def plan_of(raw: dict[str, Any], stack: str = "test", today: datetime.date = TODAY) -> Plan:
    settings, findings = parse_settings(raw, stack)
    return make_plan(settings, findings, today=today)


def model(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in raw["models"] if m["litellmModelName"] == name)


def add_model(raw: dict[str, Any], **fields: Any) -> dict[str, Any]:
    entry = {"displayName": fields.get("litellmModelName", "x"), "type": "CHAT", "metadataType": "Text Generation",
             "contextWindow": 131072, **fields}
    raw["models"].append(entry)
    return entry


def only(plan: Plan, code: str, subject: str | None = None) -> Finding:
    """The single finding with that code (and subject), failing with the whole list otherwise."""
    found = [f for f in plan.findings if f.code == code and (subject is None or f.subject == subject)]
    assert len(found) == 1, f"expected one {code} for {subject}, got {found}; all: {plan.findings}"
    return found[0]


@pytest.fixture
def raw() -> dict[str, Any]:
    return base_config()


@pytest.fixture
def plan_for() -> Callable[[dict[str, Any]], Plan]:
    return plan_of
