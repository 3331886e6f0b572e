"""Every pitfall is a finding: feed a bad config, assert severity, subject and a message that says what to do."""

from __future__ import annotations

import pytest

from tests.conftest import add_model, base_config, model, only, plan_of


def test_base_config_has_no_errors() -> None:
    plan = plan_of(base_config())
    assert plan.ok, plan.errors


# ---------------------------------------------------------------- config shape


def test_misspelt_field_names_the_field_and_suggests_the_right_one(raw) -> None:
    entry = model(raw, "claude-sonnet-4-6")
    entry["contextwindow"] = entry.pop("contextWindow")
    plan = plan_of(raw)
    finding = only(plan, "config-unknown-field")
    assert finding.severity == "error" and finding.subject == "claude-sonnet-4-6"
    assert "contextwindow" in finding.message and "Did you mean `contextWindow`" in finding.message


def test_bad_value_names_field_value_and_fix(raw) -> None:
    model(raw, "claude-sonnet-4-6")["contextWindow"] = "lots"
    finding = only(plan_of(raw), "config-invalid")
    assert finding.severity == "error"
    assert "models[0].contextWindow" in finding.message and "'lots'" in finding.message


def test_missing_required_contract_field(raw) -> None:
    del model(raw, "bge-m3")["displayName"]
    finding = only(plan_of(raw), "config-missing-field", "bge-m3")
    assert "models[1].displayName is required" in finding.message


def test_unknown_top_level_key_suggests_the_known_one(raw) -> None:
    raw["gpuPool"] = raw.pop("gpuPools")
    finding = only(plan_of(raw), "config-unknown-key", "gpuPool")
    assert "gpuPools" in finding.message


def test_one_bad_model_does_not_hide_the_others(raw) -> None:
    raw["models"][0]["type"] = "CHATTY"
    add_model(raw, litellmModelName="x", litellmModel="openai/gpt-4o", provider="OpenAI", apiBase="http://localhost:8000")
    plan = plan_of(raw)
    assert {f.code for f in plan.errors} >= {"config-invalid", "api-base-localhost"}


# ---------------------------------------------------------------- context window


def test_context_window_below_advertised_is_a_warning_with_both_numbers(raw) -> None:
    model(raw, "claude-sonnet-4-6")["contextWindow"] = 8096
    finding = only(plan_of(raw), "context-window-below-advertised")
    assert finding.severity == "warning" and finding.subject == "claude-sonnet-4-6"
    assert "8,096" in finding.message and "1,000,000" in finding.message


def test_self_hosted_context_below_advertised_says_what_the_gpus_hold(raw) -> None:
    add_model(raw, litellmModelName="llama", provider="Self-Hosted", contextWindow=4096,
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s"})
    finding = only(plan_of(raw), "context-window-below-advertised", "llama")
    assert "4,096" in finding.message and "131,072" in finding.message and "GPUs hold" in finding.message


def test_context_window_above_what_the_server_serves_is_an_error(raw) -> None:
    add_model(raw, litellmModelName="llama", provider="Self-Hosted", contextWindow=131072,
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s", "maxModelLen": 32768})
    finding = only(plan_of(raw), "context-window-above-server", "llama")
    assert finding.severity == "error" and "32,768" in finding.message and "131,072" in finding.message


def test_cloud_context_window_above_the_provider_limit_is_an_error(raw) -> None:
    model(raw, "claude-sonnet-4-6")["contextWindow"] = 2_000_000
    finding = only(plan_of(raw), "context-window-above-server")
    assert finding.severity == "error" and "1,000,000" in finding.message


def test_max_model_len_above_the_model_is_an_error(raw) -> None:
    add_model(raw, litellmModelName="llama", provider="Self-Hosted", contextWindow=262144,
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "h100"})
    finding = only(plan_of(raw), "max-model-len-above-model", "llama")
    assert "131,072" in finding.message


# ---------------------------------------------------------------- parsers


def test_tool_calling_model_without_parser(raw) -> None:
    add_model(raw, litellmModelName="custom", provider="Self-Hosted", capabilities={"toolCalling": True},
              vllm={"model": "acme/custom-7b", "gpuPool": "l40s",
                    "architecture": {"parametersB": 7, "layers": 32, "attentionHeads": 32, "kvHeads": 8, "headDim": 128,
                                     "maxContext": 131072, "toolCalling": True}})
    finding = only(plan_of(raw), "tool-parser-missing", "custom")
    assert finding.severity == "error" and "vllm.toolCallParser" in finding.message


def test_unknown_parser_lists_the_valid_ones(raw) -> None:
    add_model(raw, litellmModelName="scout", provider="Self-Hosted", contextWindow=131072,
              vllm={"model": "meta-llama/Llama-4-Scout-17B-16E-Instruct", "gpuPool": "h100", "toolCallParser": "llama4"})
    finding = only(plan_of(raw), "tool-parser-unknown", "scout")
    assert finding.severity == "error"
    assert "'llama4'" in finding.message and "llama4_pythonic" in finding.message and "hermes" in finding.message


def test_llama3_is_not_a_parser(raw) -> None:
    add_model(raw, litellmModelName="llama", provider="Self-Hosted",
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s", "toolCallParser": "llama3"})
    finding = only(plan_of(raw), "tool-parser-unknown", "llama")
    assert "llama3_json" in finding.message


def test_wrong_family_parser_is_an_error(raw) -> None:
    add_model(raw, litellmModelName="oss", provider="Self-Hosted",
              vllm={"model": "openai/gpt-oss-120b", "gpuPool": "h100", "toolCallParser": "hermes"})
    finding = only(plan_of(raw), "tool-parser-wrong-family", "oss")
    assert finding.severity == "error" and "'openai'" in finding.message


def test_model_without_tool_support_routed_to_tool_calling(raw) -> None:
    add_model(raw, litellmModelName="mixtral", provider="Self-Hosted", contextWindow=32768, flags=["TOOL_CALLING_MODELS"],
              vllm={"model": "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpuPool": "h100"})
    plan = plan_of(raw)
    assert only(plan, "tool-calling-unsupported", "mixtral").severity == "error"


# ---------------------------------------------------------------- sizing and images


def test_model_that_cannot_fit_names_what_would(raw) -> None:
    raw["gpuPools"].append({"name": "one-h100", "instanceType": "p5.4xlarge", "maxSize": 1, "capacityReservationId": "cr-2"})
    add_model(raw, litellmModelName="coder", provider="Self-Hosted", contextWindow=250000,
              vllm={"model": "Qwen/Qwen3-Coder-30B-A3B-Instruct", "gpuPool": "one-h100"})
    finding = only(plan_of(raw), "model-does-not-fit", "coder")
    assert finding.severity == "error"
    assert "250,000" in finding.message
    assert "set vllm.maxModelLen" in finding.message  # the largest length that fits, as a number
    assert "kvCacheDtype: fp8" in finding.message or "quantization: fp8" in finding.message
    assert "p6-b200.48xlarge" in finding.message or "p5.48xlarge" in finding.message


def test_weights_that_fit_nowhere_say_so(raw) -> None:
    add_model(raw, litellmModelName="big", provider="Self-Hosted", contextWindow=131072,
              vllm={"model": "meta-llama/Llama-3.1-70B-Instruct", "gpuPool": "l40s"})
    finding = only(plan_of(raw), "model-does-not-fit", "big")
    assert "no room" in finding.message and "L40S" in finding.message


def test_image_older_than_the_family_needs(raw) -> None:
    add_model(raw, litellmModelName="scout", provider="Self-Hosted", contextWindow=131072,
              vllm={"model": "meta-llama/Llama-4-Scout-17B-16E-Instruct", "gpuPool": "h100",
                    "image": "vllm/vllm-openai:v0.7.3"})
    finding = only(plan_of(raw), "vllm-image-too-old", "scout")
    assert "0.8.3" in finding.message and "0.7.3" in finding.message


def test_unpinned_image_is_a_warning(raw) -> None:
    model(raw, "bge-m3")["vllm"]["image"] = "vllm/vllm-openai:latest"
    assert only(plan_of(raw), "vllm-image-unpinned", "bge-m3").severity == "warning"


def test_invalid_tensor_parallel_size(raw) -> None:
    add_model(raw, litellmModelName="qwen", provider="Self-Hosted", contextWindow=32768,
              vllm={"model": "Qwen/Qwen2.5-7B-Instruct", "gpuPool": "h100", "tensorParallelSize": 8})
    finding = only(plan_of(raw), "tensor-parallel-invalid", "qwen")
    assert "28 attention heads" in finding.message and "1, 2, 4" in finding.message


def test_derived_flag_in_extra_args(raw) -> None:
    model(raw, "bge-m3")["vllm"]["extraArgs"] = ["--served-model-name", "other"]
    finding = only(plan_of(raw), "vllm-extra-arg-derived", "bge-m3")
    assert "litellmModelName" in finding.message


def test_awq_on_a_bf16_repository(raw) -> None:
    add_model(raw, litellmModelName="llama", provider="Self-Hosted",
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s", "quantization": "awq"})
    assert "AWQ" in only(plan_of(raw), "quantization-needs-checkpoint", "llama").message


def test_unknown_architecture_asks_for_the_config_fields(raw) -> None:
    add_model(raw, litellmModelName="mystery", provider="Self-Hosted", vllm={"model": "acme/mystery-9b", "gpuPool": "l40s"})
    finding = only(plan_of(raw), "architecture-unknown", "mystery")
    assert "vllm.architecture" in finding.message and "kvHeads" in finding.message


# ---------------------------------------------------------------- providers and contract


def test_azure_without_its_three_fields(raw) -> None:
    add_model(raw, litellmModelName="azure-gpt-4o", litellmModel="azure/dep", provider="Azure OpenAI", contextWindow=128000)
    finding = only(plan_of(raw), "provider-required-field", "azure-gpt-4o")
    assert finding.severity == "error"
    assert "apiBase" in finding.message and "apiVersion" in finding.message and "apiKey" in finding.message


def test_azure_without_api_version_only(raw) -> None:
    add_model(raw, litellmModelName="azure-gpt-4o", litellmModel="azure/dep", provider="Azure OpenAI", contextWindow=128000,
              apiBase="https://r.openai.azure.com", credential="anthropic")
    finding = only(plan_of(raw), "provider-required-field", "azure-gpt-4o")
    assert "apiVersion" in finding.message and "apiBase" not in finding.message


def test_bedrock_without_region(raw) -> None:
    add_model(raw, litellmModelName="bedrock", litellmModel="bedrock/us.anthropic.claude-sonnet-4-6",
              provider="AWS Bedrock", contextWindow=1000000)
    assert "awsRegion" in only(plan_of(raw), "provider-required-field", "bedrock").message


def test_prefix_that_does_not_match_the_provider(raw) -> None:
    model(raw, "claude-sonnet-4-6")["litellmModel"] = "openai/claude-sonnet-4-6"
    finding = only(plan_of(raw), "litellm-prefix-mismatch")
    assert "anthropic/" in finding.message and "anthropic/claude-sonnet-4-6" in finding.message


def test_provider_name_in_other_case_is_an_error(raw) -> None:
    model(raw, "claude-sonnet-4-6")["provider"] = "anthropic"
    finding = only(plan_of(raw), "provider-name-mismatch")
    assert finding.severity == "error" and "'Anthropic'" in finding.message


def test_unknown_provider_warns_about_a_new_provider_row(raw) -> None:
    add_model(raw, litellmModelName="x", litellmModel="openai/gpt-4o", provider="OpenAI Inc", credential="anthropic")
    finding = only(plan_of(raw), "provider-unknown", "x")
    assert "new one" in finding.message and "providerDisplayNames" in finding.message


def test_declared_provider_is_accepted(raw) -> None:
    raw["kindo"]["providerDisplayNames"] = ["Acme Inference"]
    add_model(raw, litellmModelName="x", litellmModel="openai/acme", provider="Acme Inference",
              apiBase="https://acme.example.com/v1")
    assert not [f for f in plan_of(raw).findings if f.code.startswith("provider-") and f.subject == "x"]


def test_api_base_on_a_standard_provider(raw) -> None:
    model(raw, "claude-sonnet-4-6")["apiBase"] = "https://anthropic.proxy.example.com"
    assert only(plan_of(raw), "api-base-standard-provider").severity == "warning"


@pytest.mark.parametrize("url", ["http://localhost:8000/v1", "http://127.0.0.1:8000/v1", "http://0.0.0.0:8000/v1", "http://[::1]:8000/v1"])
def test_localhost_api_base(raw, url: str) -> None:
    add_model(raw, litellmModelName="local", litellmModel="openai/local", provider="Self-Hosted", apiBase=url)
    finding = only(plan_of(raw), "api-base-localhost", "local")
    assert finding.severity == "error" and "cluster" in finding.message


def test_undated_anthropic_alias(raw) -> None:
    add_model(raw, litellmModelName="haiku", litellmModel="anthropic/claude-3-5-haiku-latest", provider="Anthropic",
              credential="anthropic")
    finding = only(plan_of(raw), "model-id-undated", "haiku")
    assert finding.severity == "warning" and "dated" in finding.message


def test_duplicate_litellm_model_name(raw) -> None:
    add_model(raw, litellmModelName="bge-m3", litellmModel="openai/bge-m3", provider="OpenAI", credential="anthropic")
    finding = only(plan_of(raw), "duplicate-litellm-model-name", "bge-m3")
    assert finding.severity == "error" and "unique" in finding.message


def test_served_name_must_match(raw) -> None:
    model(raw, "bge-m3")["litellmModel"] = "openai/bge"
    finding = only(plan_of(raw), "served-name-mismatch", "bge-m3")
    assert "404" in finding.message


def test_embedding_type_must_be_internal(raw) -> None:
    model(raw, "bge-m3")["type"] = "CHAT"
    assert only(plan_of(raw), "model-type-mismatch", "bge-m3").severity == "error"


# ---------------------------------------------------------------- flags


def test_required_flag_with_no_model(raw) -> None:
    model(raw, "claude-sonnet-4-6")["flags"].remove("INTERNAL_SMALL_WORKER")
    finding = only(plan_of(raw), "flag-required-empty", "INTERNAL_SMALL_WORKER")
    assert finding.severity == "error"


def test_audio_transcription_is_required(raw) -> None:
    raw["models"] = [m for m in raw["models"] if m["metadataType"] != "Transcription"]
    assert only(plan_of(raw), "flag-required-empty", "AUDIO_TRANSCRIPTION").severity == "error"


def test_single_model_flag_with_two_models(raw) -> None:
    add_model(raw, litellmModelName="gpt-4o", litellmModel="openai/gpt-4o", provider="OpenAI", contextWindow=128000,
              credential="anthropic", flags=["LOCAL_STORAGE_CHAT_ACTIONS_MODELS"])
    finding = only(plan_of(raw), "flag-single-model", "LOCAL_STORAGE_CHAT_ACTIONS_MODELS")
    assert "exactly one" in finding.message and "gpt-4o" in finding.message


def test_non_embedding_model_in_embedding_models(raw) -> None:
    model(raw, "claude-sonnet-4-6")["flags"].append("EMBEDDING_MODELS")
    finding = only(plan_of(raw), "flag-wrong-model-type", "claude-sonnet-4-6")
    assert "EMBEDDING_MODELS" in finding.message and "Embeddings" in finding.message


def test_unknown_flag_key(raw) -> None:
    model(raw, "claude-sonnet-4-6")["flags"].append("TOOL_CALLING_MODEL")
    finding = only(plan_of(raw), "flag-unknown")
    assert "TOOL_CALLING_MODELS" in finding.message


def test_flag_requirement_override_makes_a_new_key_known(raw) -> None:
    raw["unleash"]["flagRequirements"] = {"NEW_FLAG": "optional"}
    model(raw, "claude-sonnet-4-6")["flags"].append("NEW_FLAG")
    plan = plan_of(raw)
    assert plan.ok and plan.flags["NEW_FLAG"] == ["claude-sonnet-4-6"]


def test_multimodal_needs_vision(raw) -> None:
    add_model(raw, litellmModelName="qwen", provider="Self-Hosted", contextWindow=32768, flags=["MULTIMODAL_MODELS"],
              vllm={"model": "Qwen/Qwen2.5-7B-Instruct", "gpuPool": "l40s"})
    assert only(plan_of(raw), "flag-capability-missing", "qwen").severity == "error"


# ---------------------------------------------------------------- secrets


def test_plain_text_key_in_a_model(raw) -> None:
    entry = model(raw, "claude-sonnet-4-6")
    del entry["credential"]
    entry["apiKey"] = "sk-ant-api03-very-secret"
    plan = plan_of(raw)
    finding = only(plan, "plain-text-secret", "claude-sonnet-4-6")
    assert finding.severity == "error" and "pulumi config set --path --secret" in finding.message
    assert "very-secret" not in repr(plan.to_json()) and "very-secret" not in repr(plan.settings)


def test_plain_text_kindo_key(raw) -> None:
    raw["kindoApiKey"] = "um-internal-secret"
    plan = plan_of(raw)
    assert "pulumi config set --secret" in only(plan, "plain-text-secret", "kindoApiKey").message
    assert "um-internal-secret" not in repr(plan.to_json())


def test_env_reference_is_accepted_and_checked(raw, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    entry = model(raw, "claude-sonnet-4-6")
    del entry["credential"]
    entry["apiKey"] = "${ANTHROPIC_API_KEY}"
    assert only(plan_of(raw), "secret-env-unset").severity == "warning"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    assert not [f for f in plan_of(raw).findings if f.code == "secret-env-unset"]


def test_credential_not_set(raw) -> None:
    del raw["credentials"]["anthropic"]
    finding = only(plan_of(raw), "credential-missing", "claude-sonnet-4-6")
    assert "credentials.anthropic" in finding.message
    row = next(r for r in plan_of(raw).catalog() if r.model == "Claude Sonnet 4.6")
    assert row.status == "key missing"


# ---------------------------------------------------------------- pools


def test_unknown_pool(raw) -> None:
    model(raw, "bge-m3")["vllm"]["gpuPool"] = "l40"
    finding = only(plan_of(raw), "unknown-pool", "bge-m3")
    assert "'l40s'" in finding.message


def test_unknown_instance_type(raw) -> None:
    raw["gpuPools"][1]["instanceType"] = "g6e.xlarg"
    finding = only(plan_of(raw), "pool-unknown-instance-type", "l40s")
    assert "g6e.xlarge" in finding.message


def test_pool_too_small_for_its_replicas(raw) -> None:
    model(raw, "bge-m3")["vllm"]["replicas"] = 3
    raw["gpuPools"][1]["maxSize"] = 2
    plan = plan_of(raw)
    finding = only(plan, "pool-too-small", "l40s")
    assert "Raise maxSize to 3" in finding.message
    assert "pool-rollout-headroom" not in {f.code for f in plan.findings}  # one error, one fix


def test_pool_sizes(raw) -> None:
    raw["gpuPools"][1].update(minSize=3, maxSize=2)
    assert only(plan_of(raw), "pool-size-invalid", "l40s").severity == "error"


def test_p5_without_reservation_warns(raw) -> None:
    del raw["gpuPools"][0]["capacityReservationId"]
    assert only(plan_of(raw), "pool-capacity-reservation", "h100").severity == "warning"


def test_bad_urls(raw) -> None:
    raw["unleash"]["url"] = "unleash.example.com"
    assert only(plan_of(raw), "url-invalid", "unleash.url").severity == "error"


def test_auto_tool_choice_in_extra_args_is_derived(raw) -> None:
    model(raw, "bge-m3")["vllm"]["extraArgs"] = ["--enable-auto-tool-choice"]
    finding = only(plan_of(raw), "vllm-extra-arg-derived", "bge-m3")
    assert "vllm.toolCallParser" in finding.message


def test_two_pools_with_one_name(raw) -> None:
    raw["gpuPools"].append(dict(raw["gpuPools"][1]))
    finding = only(plan_of(raw), "pool-duplicate", "l40s")
    assert finding.severity == "error" and "unique" in finding.message
