"""Self-hosted audio transcription (issue 16): Whisper in the catalog, sized, served, routed, checked, and a fully
self-hosted example stack that plans clean and renders under Pulumi's mocks."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from checker.endpoint_checker import CLIP_NAME
from planner import catalogs
from planner.config import load_settings
from planner.plan import Plan, make_plan
from planner.sizing import kv_bytes_per_token, kv_fixed_bytes
from tests.conftest import add_model, base_config, only, plan_of
from tests.pulumi_harness import ROOT, run_program, server_key, stack_config

EXAMPLE = ROOT / "examples" / "Pulumi.self-hosted.yaml"
WHISPERS = ("openai/whisper-large-v3", "openai/whisper-large-v3-turbo")


def whisper_stack(hf_id: str = "openai/whisper-large-v3-turbo", **vllm: Any) -> dict[str, Any]:
    raw = base_config()
    raw["models"] = [m for m in raw["models"] if m["metadataType"] != "Transcription"]
    add_model(raw, litellmModelName="whisper", provider="Self-Hosted", type="INTERNAL", metadataType="Transcription",
              contextWindow=None, vllm={"model": hf_id, "gpuPool": "l40s", **vllm})
    raw["models"][-1].pop("contextWindow")
    return raw


def server(plan: Plan, name: str = "whisper"):  # type: ignore[no-untyped-def]
    return next(s for s in plan.servers if s.litellmModelName == name)


@pytest.mark.parametrize("hf_id", WHISPERS)
def test_whisper_is_catalogued_as_a_transcription_model(hf_id: str) -> None:
    arch, how = catalogs.architectures().find(hf_id)
    assert arch is not None and how == "" and arch.kind == "transcription"
    assert arch.maxContext == 448 and arch.crossAttentionTokens == 1500 and arch.headDim * arch.attentionHeads == 1280
    assert arch.source == f"https://huggingface.co/{hf_id}/blob/main/config.json"


def test_the_kv_cache_counts_the_decoder_per_token_and_cross_attention_per_request() -> None:
    large, _ = catalogs.architectures().find("openai/whisper-large-v3")
    turbo, _ = catalogs.architectures().find("openai/whisper-large-v3-turbo")
    # 2 (K, V) x 20 heads x 64 x 2 bytes = 5,120 bytes per decoder layer per token.
    assert kv_bytes_per_token(large, 1, None) == 32 * 5120 and kv_bytes_per_token(turbo, 1, None) == 4 * 5120
    # The encoder's 1,500 positions, once per request, in every decoder layer: 234.4 MiB for large-v3.
    assert kv_fixed_bytes(large, 1, None, 448) == 1500 * 32 * 5120
    assert kv_fixed_bytes(turbo, 1, None, 448) == 1500 * 4 * 5120


@pytest.mark.parametrize("hf_id", WHISPERS)
def test_whisper_fits_one_l40s_and_gets_the_transcription_argv(hf_id: str) -> None:
    plan = plan_of(whisper_stack(hf_id))
    planned = server(plan)
    assert plan.ok, [f.line for f in plan.errors]
    assert planned.fits and planned.gpusPerReplica == 1 and planned.maxModelLen == 448
    args = planned.args
    assert args[:3] == [hf_id, "--served-model-name", "whisper"] and "--max-model-len" in args
    assert args[args.index("--max-model-len") + 1] == "448" and args[args.index("--dtype") + 1] == "float16"
    # Encoder-decoder models support neither; an explicit prefix-caching flag crashes vLLM's cross-attention manager.
    assert "--enable-prefix-caching" not in args and "--enable-chunked-prefill" not in args
    assert "--tool-call-parser" not in args and "--task" not in args


def test_whisper_routes_to_audio_transcription_with_its_kindo_body() -> None:
    plan = plan_of(whisper_stack())
    assert plan.flags["AUDIO_TRANSCRIPTION"] == ["whisper"]
    model = next(m for m in plan.models if m.litellmModelName == "whisper")
    assert not model.needsToolCalling and model.flags == ["AUDIO_TRANSCRIPTION"]
    assert model.body is not None
    body = model.body.fields
    assert body["type"] == "INTERNAL" and "contextWindow" not in body and body["metadata"]["type"] == "Transcription"
    # LiteLLM posts {api_base}/audio/transcriptions with the suffix of `openai/<name>` as the model.
    assert body["litellmParams"]["model"] == "openai/whisper"
    assert body["litellmParams"]["api_base"] == server(plan).url and server(plan).url.endswith("/v1")
    assert model.body.server_key


def test_the_in_cluster_check_runs_the_transcription_check() -> None:
    model = next(m for m in plan_of(whisper_stack()).models if m.litellmModelName == "whisper")
    assert model.check is not None
    args = model.check.args
    assert args[args.index("--kind") + 1] == "transcription" and args[args.index("--model") + 1] == "whisper"


def test_a_context_window_on_a_transcription_model_does_not_become_its_length() -> None:
    raw = whisper_stack()
    raw["models"][-1]["contextWindow"] = 131072
    assert server(plan_of(raw)).maxModelLen == 448


@pytest.mark.parametrize(("hf_id", "metadata", "words"), [
    ("openai/whisper-large-v3-turbo", "Embeddings", "is a speech-to-text model but metadataType is 'Embeddings'"),
    ("Qwen/Qwen3-8B", "Transcription", "is a chat model, not a speech-to-text model"),
])
def test_a_model_of_the_wrong_kind_is_an_error(hf_id: str, metadata: str, words: str) -> None:
    raw = whisper_stack(hf_id)
    raw["models"][-1]["metadataType"] = metadata
    finding = only(plan_of(raw), "model-kind-mismatch", "whisper")
    assert finding.severity == "error" and words in finding.message


def test_an_image_without_audio_decoding_is_warned_about() -> None:
    old = only(plan_of(whisper_stack(image="vllm/vllm-openai:v0.14.1")), "vllm-audio-extra", "whisper")
    assert old.severity == "warning" and 'pip install "vllm[audio]==0.14.1"' in old.message
    assert not [f for f in plan_of(whisper_stack()).findings if f.code == "vllm-audio-extra"]


# ---------------------------------------------------------------------------------------------- the example stack


def example_plan() -> Plan:
    settings, findings = load_settings(EXAMPLE)
    return make_plan(settings, findings)


def test_the_self_hosted_example_plans_without_errors_and_without_cloud_keys() -> None:
    plan = example_plan()
    assert plan.ok, [f.line for f in plan.errors]
    assert all(m.selfHosted for m in plan.models) and not plan.settings.credentials
    kinds = {m.metadataType for m in plan.models}
    assert kinds == {"Text Generation", "Embeddings", "Transcription"}
    required = [key for key, spec in plan.flagSpecs.items() if spec.requirement == "required"]
    assert all(plan.flags[key] for key in required)


def test_the_self_hosted_example_renders_under_mocks_with_the_clip_shipped() -> None:
    result = run_program(stack_config(EXAMPLE), "self-hosted")
    assert result.error is None, result.error
    plan = example_plan()
    deployments = {r.name for r in result.mocks.of_type("kubernetes:apps/v1:Deployment")}
    assert deployments == {f"{s.name}-deployment" for s in plan.servers}
    jobs = {r.name for r in result.mocks.of_type("kubernetes:batch/v1:Job")}
    assert server_key(jobs, "whisper-large-v3-turbo", "job")
    # The check script's ConfigMap (beside it: the Grafana dashboard's, README "Seeing the models serve").
    [script] = [r.inputs for r in result.mocks.of_type("kubernetes:core/v1:ConfigMap") if r.name == "endpoint-check-script"]
    clip = (ROOT / "checker" / CLIP_NAME).read_bytes()
    assert base64.b64decode(script["binaryData"][CLIP_NAME]) == clip
    models = {r.name for r in result.mocks.of_type("pulumi-python:dynamic/kindo:KindoModel")}
    assert models == {m.litellmModelName for m in plan.models}
