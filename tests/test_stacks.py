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
    # hold (secrets set per stack; the installation's own URLs and IDs, which the examples leave as recognisable
    # placeholders), pool capacity advice, and a downtime the stack accepts on purpose (prod's reserved H100s hold no
    # second generation: `rollout: recreate`, stated as a warning) may remain.
    allowed = {"credential-missing", "secret-missing", "huggingface-token-missing", "pool-capacity-reservation",
               "placeholder-value", "rollout-recreate"}
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


PLAIN_SECRET_PATTERNS = (r"sk-(ant-|proj-)?[A-Za-z0-9_-]{16,}", r"AKIA[0-9A-Z]{16}", r"hf_[A-Za-z0-9]{20,}")
# What `pulumi config set --secret` writes: ciphertext under `secure:`, which is Pulumi's way and safe to commit.
SECURE_VALUE = re.compile(r"secure:\s*\S+")


def plain_secrets_in(text: str) -> list[str]:
    """The plain-text secret patterns a stack file's text matches, encrypted `secure:` values aside."""
    scrubbed = SECURE_VALUE.sub("secure: <ciphertext>", text)
    return [pattern for pattern in PLAIN_SECRET_PATTERNS if re.search(pattern, scrubbed)]


@pytest.mark.parametrize("name", ["Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"])
def test_no_plain_text_secret_in_committed_files(name: str) -> None:
    text = (ROOT / name).read_text()
    assert not plain_secrets_in(text), f"{name} matches {plain_secrets_in(text)}"
    if name != "Pulumi.yaml":
        assert not [f for f in plan(name.split(".")[1]).findings if f.code == "plain-text-secret"]


def with_secure_secrets(stack: str) -> str:
    """The stack file after `pulumi config set --secret` of every key its comment lists (ciphertext made up)."""
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    secure = "\n".join([
        "  kindo-models:kindoApiKey:\n    secure: v1:Tk9UQVJFQUxLRVkAKIAABCDEFGHIJKLMNOP==",
        "  kindo-models:unleashApiToken:\n    secure: v1:c2stYW50LWFwaTAzLWZha2VmYWtlZmFrZQ==",
        "  kindo-models:huggingFaceToken:\n    secure: v1:aGZfZmFrZWZha2VmYWtlZmFrZWZha2Vm==",
        "  kindo-models:credentials:",
        *(f"    {name}:\n      secure: v1:Y2lwaGVydGV4dA{index}==" for index, name in
          enumerate(("anthropic", "azure-openai", "deepgram"))),
    ])
    return text.replace("config:\n", "config:\n" + secure + "\n", 1)


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_set_the_pulumi_way_are_fine(tmp_path: Path, stack: str) -> None:
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(with_secure_secrets(stack))
    assert not plain_secrets_in(path.read_text())  # ciphertext is not a plain-text secret, even when it looks odd
    settings, findings = load_settings(path)
    result = make_plan(settings, findings)
    assert result.ok
    assert not [f.line for f in result.findings if "secret" in f.code or "credential" in f.code]
    assert all(row.status == "ok" for row in result.catalog())


def test_a_plain_text_secret_is_still_caught() -> None:
    assert plain_secrets_in("  kindo-models:credentials:\n    anthropic: sk-ant-api03-abcdefghijklmnop\n")
    assert plain_secrets_in("    awsAccessKeyId: AKIAABCDEFGHIJKLMNOP\n")


@pytest.mark.parametrize("environment", ["[kindo-models/dev-secrets]", "\n  - kindo-models/dev-secrets",
                                         "\n  imports:\n    - kindo-models/dev-secrets"])
def test_a_stack_that_imports_an_esc_environment_is_not_told_to_set_its_secrets(tmp_path: Path,
                                                                                 environment: str) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text((ROOT / "Pulumi.dev.yaml").read_text() + f"environment: {environment}\n")
    settings, findings = load_settings(path)
    result = make_plan(settings, findings)
    assert settings.escEnvironments == ("kindo-models/dev-secrets",)
    assert not [f.line for f in result.findings if f.code in ("secret-missing", "credential-missing")]
    from_esc = {f.subject: f for f in result.findings if f.code in ("secret-from-esc", "credential-from-esc")}
    assert {"kindoApiKey", "unleashApiToken", "claude-sonnet-5-5", "azure-gpt-6-1-sol", "transcription-generator"} \
        <= set(from_esc)
    for finding in from_esc.values():
        assert finding.severity == "info" and "kindo-models/dev-secrets" in finding.message
        assert "cannot be checked here" in finding.message
    assert {row.status for row in result.catalog() if row.provider != "Self-Hosted"} == {"key from ESC (unchecked)"}
    # A plain-text secret stays an error with ESC too.
    path.write_text(path.read_text().replace("config:\n", "config:\n  kindo-models:kindoApiKey: hunter2\n", 1))
    assert "plain-text-secret" in {f.code for f in make_plan(*load_settings(path)).errors}


def test_a_malformed_environment_section_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text((ROOT / "Pulumi.dev.yaml").read_text() + "environment: {imports: 3}\n")
    finding = next(f for f in load_settings(path)[1] if f.subject == "environment")
    assert finding.severity == "error" and "pulumi config env add" in finding.message


def test_project_file_declares_the_secret_keys() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "kindo-models" and project["runtime"]["name"] == "python"
    for key in ("kindo-models:kindoApiKey", "kindo-models:unleashApiToken"):
        declared = project["config"][key]
        assert declared["secret"] is True and declared["type"] == "string" and declared["description"]
    # Pulumi's project schema types only string/integer/boolean/array (sdk/go/common/workspace/project.json)
    for declared in project["config"].values():
        assert declared["type"] in ("string", "integer", "boolean", "array")
