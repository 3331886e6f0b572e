"""The committed stacks: complete, realistic, secret-free, and planning with no errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from planner import catalogs
from planner.checks import is_pinned_id
from planner.config import load_settings
from planner.plan import make_plan

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "prod")


def plan(stack: str):
    settings, findings = load_settings(ROOT / f"Pulumi.{stack}.yaml")
    return make_plan(settings, findings)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_plans_with_no_errors(stack: str) -> None:
    result = plan(stack)
    assert result.ok, [f"{f.code} {f.subject}: {f.message}" for f in result.errors]
    assert result.servers and all(s.fits for s in result.servers)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_uses_no_model_that_retires_within_the_notice(stack: str) -> None:
    # Planned with the real date on purpose: when a provider announces a retirement, this fails until the stack
    # moves to a current model, as `scripts/plan` would tell its user.
    retiring = [f.line for f in plan(stack).findings if f.code in ("model-retired", "model-retiring")]
    assert not retiring, retiring


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_has_no_warning_about_its_models(stack: str) -> None:
    # The examples a newcomer copies: no context, maxTokens, alias or apiBase warning. Only what the stack file cannot
    # hold (secrets set per stack) and pool capacity advice may remain.
    allowed = {"credential-missing", "secret-missing", "huggingface-token-missing", "pool-capacity-reservation"}
    warnings = [f.line for f in plan(stack).findings if f.severity == "warning" and f.code not in allowed]
    assert not warnings, warnings


@pytest.mark.parametrize("stack", STACKS)
def test_every_required_flag_is_routed_in_each_stack(stack: str) -> None:
    specs, _ = catalogs.flags()
    result = plan(stack)
    for key, spec in specs.items():
        if spec.requirement == "required":
            assert result.flags[key], f"{stack}: {key} has no model"


def test_stacks_together_cover_the_model_kinds_the_runbook_needs() -> None:
    models = [m for stack in STACKS for m in plan(stack).models]
    by = {(m.provider, (m.litellmModel or "")) for m in models}
    anthropic = catalogs.providers()["Anthropic"]
    assert any(p == "Anthropic" and is_pinned_id(lm.split("/", 1)[-1], anthropic) for p, lm in by), "a pinned Anthropic model"
    assert any(p == "Azure OpenAI" for p, _ in by) and any(p == "AWS Bedrock" for p, _ in by)
    assert any(m.entry.vllm and m.entry.vllm.model == "BAAI/bge-m3" and m.metadataType == "Embeddings" for m in models)
    assert any(m.litellmModel == "deepgram/nova-2" and m.type == "INTERNAL" for m in models)
    assert any(m.entry.vllm and m.entry.vllm.model == "openai/gpt-oss-120b" for m in models)
    assert any("INTERNAL_SMALL_WORKER" in m.flags and m.selfHosted for m in models)


def test_dev_and_prod_differ_where_the_runbook_says() -> None:
    dev, prod = plan("dev"), plan("prod")
    assert dev.settings.region != prod.settings.region  # separate quota
    assert dev.settings.unleash.environment == "development" and prod.settings.unleash.environment == "production"
    assert {p.name: p.maxSize for p in dev.pools} != {p.name: p.maxSize for p in prod.pools}
    assert dev.settings.kindo.apiUrl != prod.settings.kindo.apiUrl


@pytest.mark.parametrize("name", ["Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"])
def test_no_secret_values_in_committed_files(name: str) -> None:
    text = (ROOT / name).read_text()
    for pattern in (r"sk-(ant|proj)?-?[A-Za-z0-9]{10,}", r"AKIA[0-9A-Z]{16}", r"hf_[A-Za-z0-9]{20,}", r"secure:\s*\S"):
        assert not re.search(pattern, text), f"{name} matches {pattern}"


def test_project_file_declares_the_secret_keys() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "kindo-models" and project["runtime"]["name"] == "python"
    for key in ("kindo-models:kindoApiKey", "kindo-models:unleashApiToken"):
        declared = project["config"][key]
        assert declared["secret"] is True and declared["type"] == "string" and declared["description"]
    # Pulumi's project schema types only string/integer/boolean/array (sdk/go/common/workspace/project.json)
    for declared in project["config"].values():
        assert declared["type"] in ("string", "integer", "boolean", "array")
