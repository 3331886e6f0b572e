"""Cloud models judged against LiteLLM's map: retirement, input vs total window, pinned ids, baseModel lookups,
and the self-hosted findings the LiteLLM proxy measurements called for (maxTokens vs prompt room, /v1, mode)."""

from __future__ import annotations

import datetime

import pytest

from planner import catalogs
from planner.checks import is_pinned_id
from tests.conftest import TODAY, add_model, base_config, model, only, plan_of

D = datetime.date


def codes(plan, subject: str) -> set[str]:
    return {f.code for f in plan.findings if f.subject == subject}


def anthropic(raw: dict, name: str, model_id: str, **fields) -> dict:
    return add_model(raw, litellmModelName=name, litellmModel=f"anthropic/{model_id}", provider="Anthropic",
                     credential="anthropic", **fields)


def azure(raw: dict, name: str, base_model: str | None, **fields) -> dict:
    extra = {"baseModel": base_model} if base_model else {}
    return add_model(raw, litellmModelName=name, litellmModel=f"azure/{name}-deployment", provider="Azure OpenAI",
                     apiBase="https://r.openai.azure.com", apiVersion="2024-10-21", credential="anthropic",
                     **extra, **fields)


# ---------------------------------------------------------------- retirement


def test_a_retired_model_is_an_error_naming_the_date_and_the_successor(raw) -> None:
    anthropic(raw, "sonnet-4", "claude-sonnet-4-20250514", contextWindow=200000)
    finding = only(plan_of(raw), "model-retired", "sonnet-4")
    assert finding.severity == "error"
    assert "2026-06-15" in finding.message and "litellmModel: anthropic/claude-sonnet-4-6" in finding.message
    assert "platform.claude.com" in finding.message  # the override's source: LiteLLM dropped the model


def test_retirement_is_judged_on_the_injected_day(raw) -> None:
    anthropic(raw, "sonnet-4", "claude-sonnet-4-20250514", contextWindow=200000)
    before = only(plan_of(raw, today=D(2026, 6, 1)), "model-retiring", "sonnet-4")
    assert before.severity == "warning" and "2026-06-15, in 14 days" in before.message
    assert "anthropic/claude-sonnet-4-6" in before.message
    assert not codes(plan_of(raw, today=D(2026, 3, 1)), "sonnet-4") & {"model-retired", "model-retiring"}
    on_the_day = plan_of(raw, today=D(2026, 6, 15))
    assert only(on_the_day, "model-retired", "sonnet-4").severity == "error"


def test_a_model_retiring_within_90_days_is_a_warning_with_the_date(raw) -> None:
    anthropic(raw, "sonnet-4-5", "claude-sonnet-4-5-20250929", contextWindow=200000)
    finding = only(plan_of(raw, today=D(2026, 9, 15)), "model-retiring", "sonnet-4-5")
    assert "2026-11-30, in 76 days" in finding.message and "anthropic/claude-sonnet-5-5" in finding.message
    assert not codes(plan_of(raw, today=D(2026, 8, 31)), "sonnet-4-5") & {"model-retiring"}  # 91 days ahead


def test_the_suggested_successor_is_never_retired_itself(raw) -> None:
    # azure/gpt-4o -> azure/gpt-5.1 (2027-07-13) -> azure/gpt-5.2 (2027-06-08) -> azure/gpt-5.4 (2027-09-02)
    azure(raw, "azure-4o", "gpt-4o", contextWindow=128000)
    finding = only(plan_of(raw, today=D(2027, 7, 20)), "model-retired", "azure-4o")
    assert "gpt-5.4" in finding.message and "gpt-5.1" not in finding.message and "gpt-5.2" not in finding.message
    assert "baseModel: gpt-5.4" in finding.message  # an Azure deployment: deploy it and set baseModel


def test_a_retired_model_without_a_successor_says_how_to_choose(raw) -> None:
    anthropic(raw, "sonnet-3-7", "claude-3-7-sonnet-20250219", contextWindow=200000)
    finding = only(plan_of(raw), "model-retired", "sonnet-3-7")
    assert "2026-02-19" in finding.message and "Choose a current Anthropic model" in finding.message


def test_retirement_dates_are_the_providers_own(raw) -> None:
    # Azure retires gpt-4o on 2027-04-14, OpenAI on 2027-01-14: an Azure deployment gets Azure's date.
    azure(raw, "azure-4o", "gpt-4o", contextWindow=128000)
    add_model(raw, litellmModelName="openai-4o", litellmModel="openai/gpt-4o", provider="OpenAI", credential="anthropic",
              contextWindow=128000)
    plan = plan_of(raw, today=D(2027, 2, 1))
    assert "2027-04-14" in only(plan, "model-retiring", "azure-4o").message
    assert "2027-01-14" in only(plan, "model-retired", "openai-4o").message
    # Bedrock keeps its own schedule for Sonnet 4 (2026-10-14), and its own successor id.
    add_model(raw, litellmModelName="bedrock-4", litellmModel="bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0",
              provider="AWS Bedrock", awsRegion="us-east-1", contextWindow=200000)
    finding = only(plan_of(raw), "model-retired", "bedrock-4")
    assert "2026-10-14" in finding.message and "bedrock/us.anthropic.claude-sonnet-5" in finding.message


# ---------------------------------------------------------------- windows and limits


@pytest.mark.parametrize("window", [272_000, 300_000, 400_000])
def test_gpt_5_input_limit_and_total_window_are_both_right(raw, window: int) -> None:
    add_model(raw, litellmModelName="gpt5", litellmModel="openai/gpt-5", provider="OpenAI", credential="anthropic",
              contextWindow=window, maxTokens=128000)
    assert not codes(plan_of(raw, today=D(2026, 8, 1)), "gpt5") & {
        "context-window-below-advertised", "context-window-above-server", "max-tokens-above-model"}


def test_gpt_5_below_its_input_limit_is_told_that_limit_and_above_the_window_is_an_error(raw) -> None:
    entry = add_model(raw, litellmModelName="gpt5", litellmModel="openai/gpt-5", provider="OpenAI",
                      credential="anthropic", contextWindow=128000)
    finding = only(plan_of(raw, today=D(2026, 8, 1)), "context-window-below-advertised", "gpt5")
    assert "272,000-token prompt limit (400,000 in all)" in finding.message
    assert "Set contextWindow: 272000 (or 400000, the whole window)" in finding.message
    entry["contextWindow"] = 500_000
    assert "400,000" in only(plan_of(raw, today=D(2026, 8, 1)), "context-window-above-server", "gpt5").message


def test_base_model_is_what_an_azure_deployment_is_compared_with(raw) -> None:
    # The runbook's #1 mistake on an Azure deployment whose name says nothing: caught through baseModel.
    azure(raw, "azure-4o", "gpt-4o", contextWindow=8096, maxTokens=32000)
    plan = plan_of(raw)
    below = only(plan, "context-window-below-advertised", "azure-4o")
    assert "8,096" in below.message and "128,000" in below.message and "azure/gpt-4o" in below.message
    assert "16,384" in only(plan, "max-tokens-above-model", "azure-4o").message
    # Without baseModel the deployment cannot be matched: said, with the fix.
    azure(raw, "azure-x", None, contextWindow=8096)
    unknown = only(plan_of(raw), "cloud-model-unknown", "azure-x")
    assert unknown.severity == "info" and "baseModel" in unknown.message


def test_the_seeds_haiku_latest_is_flagged(raw) -> None:
    # seeds/global-model-management.txt: anthropic/claude-3-5-haiku-latest, base_model claude-3-5-haiku-20241022.
    anthropic(raw, "haiku", "claude-3-5-haiku-latest", contextWindow=32768, baseModel="claude-3-5-haiku-20241022")
    plan = plan_of(raw)
    retired = only(plan, "model-retired", "haiku")
    assert "2026-02-19" in retired.message and "claude-haiku-4-5-20251001" in retired.message
    raw["models"][-1].pop("baseModel")
    assert {"model-retired", "model-id-undated"} <= codes(plan_of(raw), "haiku")


def test_capabilities_come_from_the_map(raw) -> None:
    add_model(raw, litellmModelName="chat-only", litellmModel="openai/gpt-5-chat", provider="OpenAI",
              credential="anthropic", contextWindow=128000)
    add_model(raw, litellmModelName="haiku", litellmModel="anthropic/claude-haiku-4-5-20251001", provider="Anthropic",
              credential="anthropic", contextWindow=200000)
    models = {m.litellmModelName: m for m in plan_of(raw, today=D(2026, 6, 1)).models}
    assert models["chat-only"].capabilities == {"toolCalling": False, "vision": True}  # supports_function_calling: false
    assert models["haiku"].capabilities == {"toolCalling": True, "vision": True}
    assert "TOOL_CALLING_MODELS" not in models["chat-only"].flags and "MULTIMODAL_MODELS" in models["haiku"].flags


def test_a_cloud_model_of_another_kind_is_an_error(raw) -> None:
    add_model(raw, litellmModelName="emb", litellmModel="openai/text-embedding-3-small", provider="OpenAI",
              credential="anthropic", contextWindow=8191)
    finding = only(plan_of(raw), "cloud-model-kind-mismatch", "emb")
    assert "embedding" in finding.message and "metadataType" in finding.message


# ---------------------------------------------------------------- pinned ids


@pytest.mark.parametrize(("name", "pinned"), [
    ("claude-sonnet-4-6", True), ("claude-opus-4-8", True), ("claude-sonnet-5", True), ("claude-sonnet-5-5", True),
    ("claude-haiku-4-5-20251001", True), ("claude-sonnet-4-5", False), ("claude-haiku-4-5", False),
    ("claude-3-5-haiku-latest", False), ("claude-sonnet-latest", False)])
def test_dateless_ids_from_the_4_6_generation_on_are_pinned(name: str, pinned: bool) -> None:
    assert is_pinned_id(name, catalogs.providers()["Anthropic"]) is pinned


def test_a_pinned_dateless_id_gets_no_undated_warning(raw) -> None:
    anthropic(raw, "sonnet-4-6", "claude-sonnet-4-6", contextWindow=1000000)
    assert "model-id-undated" not in codes(plan_of(raw), "sonnet-4-6")


@pytest.mark.parametrize(("model_id", "suggested"), [
    ("claude-haiku-4-5", "anthropic/claude-haiku-4-5-20251001"),
    ("claude-sonnet-4-5", "anthropic/claude-sonnet-5-5"),  # its dated form retired on 2026-11-30
    ("claude-sonnet-latest", "anthropic/claude-sonnet-5-5"),
])
def test_the_undated_warning_suggests_a_current_pinned_model(raw, model_id: str, suggested: str) -> None:
    anthropic(raw, "alias", model_id, contextWindow=200000)
    finding = only(plan_of(raw), "model-id-undated", "alias")
    assert f"Set litellmModel: {suggested}." in finding.message
    retired = [k for k, m in catalogs.cloud_catalog().models.items()
               if m.deprecationDate and m.deprecationDate <= TODAY and m.provider == "anthropic"]
    assert not [k for k in retired if f"anthropic/{k}." in finding.message or f"anthropic/{k} " in finding.message]


# ---------------------------------------------------------------- self-hosted


def test_self_hosted_max_tokens_that_crowd_the_prompt_are_said_with_the_fix(raw) -> None:
    entry = add_model(raw, litellmModelName="oss", provider="Self-Hosted", contextWindow=131072, maxTokens=32768,
                      vllm={"model": "openai/gpt-oss-120b", "gpuPool": "h100"})
    finding = only(plan_of(raw), "max-tokens-limits-prompt", "oss")
    assert finding.severity == "warning"
    for text in ("maxTokens 32,768", "98,304", "131,072", "Remove maxTokens",
                 "set contextWindow: 98304 and vllm.maxModelLen: 131072"):
        assert text in finding.message
    # The fix, as the finding gives it, leaves nothing to say about the context.
    entry["contextWindow"] = 98304
    entry["vllm"]["maxModelLen"] = 131072
    assert not codes(plan_of(raw), "oss") & {"max-tokens-limits-prompt", "context-window-below-advertised"}
    # So does the other fix.
    entry["contextWindow"], entry["vllm"] = 131072, {"model": "openai/gpt-oss-120b", "gpuPool": "h100"}
    del entry["maxTokens"]
    assert not codes(plan_of(raw), "oss") & {"max-tokens-limits-prompt", "context-window-below-advertised"}


@pytest.mark.parametrize(("api_base", "severity"), [
    ("http://vllm.example.com:8000", "error"), ("http://vllm.example.com:8000/", "error"),
    ("https://gateway.example.com/llm", "warning"), ("http://vllm.example.com:8000/v1", None),
    ("http://vllm.example.com:8000/v1/", None), ("https://gateway.example.com/llm/v1", None)])
def test_an_external_self_hosted_api_base_needs_v1(raw, api_base: str, severity: str | None) -> None:
    add_model(raw, litellmModelName="ext", litellmModel="openai/ext", provider="Self-Hosted", apiBase=api_base)
    found = [f for f in plan_of(raw).findings if f.code == "api-base-missing-v1"]
    assert [f.severity for f in found] == ([severity] if severity else [])
    if found:
        assert f"Set apiBase: {api_base.rstrip('/')}/v1" in found[0].message and "404" in found[0].message


def test_embedding_and_transcription_models_carry_their_mode_for_litellms_health_check() -> None:
    raw = base_config()
    model(raw, "bge-m3")["baseModel"] = "bge-m3"
    bodies = {m.litellmModelName: m.body.fields for m in plan_of(raw).models}
    assert bodies["bge-m3"]["model_info"] == {"base_model": "bge-m3", "mode": "embedding"}
    assert bodies["transcription-generator"]["model_info"] == {"mode": "audio_transcription"}
    assert "model_info" not in bodies["claude-sonnet-4-6"]
