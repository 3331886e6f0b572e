"""The admin API body follows the contract's mapping; secrets are references, never values."""

from __future__ import annotations

from tests.conftest import add_model, base_config, plan_of


def body_of(raw: dict, name: str):
    return next(m for m in plan_of(raw).models if m.litellmModelName == name).body


def test_cloud_model_maps_every_contract_field() -> None:
    raw = base_config()
    add_model(raw, litellmModelName="azure-gpt-4o", litellmModel="azure/dep", provider="Azure OpenAI", creator="OpenAI",
              costTier="MEDIUM", maxTokens=16384, apiBase="https://r.openai.azure.com", apiVersion="2024-10-21",
              credential="anthropic", baseModel="gpt-4o", description="d", docLink="https://x", usageTag="Chat + Agents")
    body = body_of(raw, "azure-gpt-4o")
    assert body.fields == {
        "displayName": "azure-gpt-4o", "modelProviderDisplayName": "Azure OpenAI", "type": "CHAT", "contextWindow": 131072,
        "metadata": {"type": "Text Generation", "costTier": "MEDIUM", "usageTag": "Chat + Agents", "description": "d",
                     "modelCreator": "OpenAI", "link": "https://x"},
        "litellmModelName": "azure-gpt-4o",
        "litellmParams": {"model": "azure/dep", "api_base": "https://r.openai.azure.com", "api_version": "2024-10-21",
                          "max_tokens": 16384},
        "model_info": {"base_model": "gpt-4o"},
    }
    assert body.secret_slots["api_key"].kind == "credential" and body.secret_slots["api_key"].name == "anthropic"
    assert not body.server_key


def test_transcription_has_no_context_window_and_bedrock_keys_are_slots() -> None:
    raw = base_config()
    body = body_of(raw, "transcription-generator")
    assert "contextWindow" not in body.fields and body.fields["litellmParams"]["model"] == "deepgram/nova-2"
    add_model(raw, litellmModelName="bedrock", litellmModel="bedrock/us.anthropic.claude-sonnet-4-6",
              provider="AWS Bedrock", awsRegion="us-east-1", awsAccessKeyId="${AWS_KEY_ID}",
              awsSecretAccessKey={"credential": "bedrock-secret"})
    body = body_of(raw, "bedrock")
    assert body.fields["litellmParams"]["aws_region_name"] == "us-east-1"
    assert body.secret_slots["aws_access_key_id"].kind == "env" and body.secret_slots["aws_secret_access_key"].name == "bedrock-secret"
    assert "aws_secret_access_key" not in body.fields["litellmParams"]


def test_self_hosted_model_points_at_its_server_with_its_key() -> None:
    plan = plan_of(base_config())
    body = next(m for m in plan.models if m.litellmModelName == "bge-m3").body
    server = next(s for s in plan.servers if s.litellmModelName == "bge-m3")
    assert body.fields["litellmParams"] == {"model": "openai/bge-m3",
                                            "api_base": f"http://bge-m3-{server.generation}.inference.svc.cluster.local:8000/v1"}
    assert body.server_key and body.fields["type"] == "INTERNAL"


def test_replacements_point_at_the_anchor_of_each_type_without_cycles() -> None:
    raw = base_config()
    add_model(raw, litellmModelName="gpt-4o", litellmModel="openai/gpt-4o", provider="OpenAI", credential="anthropic")
    add_model(raw, litellmModelName="bge-2", provider="Self-Hosted", type="INTERNAL", metadataType="Embeddings",
              contextWindow=8192, vllm={"model": "BAAI/bge-m3", "gpuPool": "l40s"})
    replacement = {m.litellmModelName: m.replacement for m in plan_of(raw).models}
    assert replacement == {"claude-sonnet-4-6": None, "gpt-4o": "claude-sonnet-4-6",
                           "bge-m3": None, "bge-2": "bge-m3", "transcription-generator": None}
