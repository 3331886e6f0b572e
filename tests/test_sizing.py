"""GPU memory math against published figures and physical invariants."""

from __future__ import annotations

import pytest

from planner import catalogs
from planner.sizing import GIB, SizingRequest, Sizing, kv_bytes_per_token, size, smallest_fitting, weight_bytes

PINNED = catalogs.vllm().releases[catalogs.vllm().defaultVersion]
GPUS = {i.gpu.name: i.gpu for i in catalogs.instances().values()}


def sized(architecture, gpu, tensor_parallel_size, max_model_len, release, **knobs) -> Sizing:  # type: ignore[no-untyped-def]
    """One sizing at a given tensor parallel size (on a node of 8 such GPUs)."""
    return size(SizingRequest(architecture, gpu, 8, max_model_len, release, **knobs), tensor_parallel_size)


def arch(hf_id: str):
    found, _ = catalogs.architectures().find(hf_id)
    assert found is not None, hf_id
    return found


def test_llama_31_8b_on_one_l4_matches_the_published_kv_cache() -> None:
    # Published vLLM-style calculation (facts.md): ~4.91 GiB of KV = 40,208 tokens at 131,072 B/token.
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    sizing = sized(llama, GPUS["L4"], 1, 8192, PINNED)
    assert sizing.kv_bytes_per_token == 131_072
    assert sizing.weights_gib == pytest.approx(14.96, abs=0.1)
    assert 40_208 * 0.85 <= sizing.max_context_that_fits <= 40_208 * 1.15, sizing


def test_qwen3_coder_30b_a3b_class_cannot_serve_250k_on_one_h100_but_can_on_two_and_on_a_b200() -> None:
    coder = arch("Qwen/Qwen3-Coder-30B-A3B-Instruct")
    one_h100 = sized(coder, GPUS["H100"], 1, 250_000, PINNED)
    assert 70_000 <= one_h100.max_context_that_fits <= 160_000, one_h100
    assert not one_h100.fits
    two_h100 = sized(coder, GPUS["H100"], 2, 250_000, PINNED)
    assert two_h100.fits, two_h100
    one_b200 = sized(coder, GPUS["B200"], 1, 250_000, PINNED)
    assert one_b200.fits, one_b200
    fit, _ = smallest_fitting(SizingRequest(coder, GPUS["H100"], 8, 250_000, PINNED))
    assert fit is not None and fit.tensor_parallel_size == 2


def test_moe_weights_count_every_expert() -> None:
    mixtral = arch("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert mixtral.activeParametersB < mixtral.parametersB / 3
    assert weight_bytes(mixtral, None) == pytest.approx(mixtral.parametersB * 1e9 * 2, rel=0.01)


def test_fp8_weights_and_fp8_kv_cache_halve_their_share() -> None:
    llama = arch("meta-llama/Llama-3.1-70B-Instruct")
    bf16 = weight_bytes(llama, None)
    fp8 = weight_bytes(llama, "fp8")
    assert 0.5 * bf16 <= fp8 < 0.52 * bf16  # embeddings and LM head stay 16-bit
    assert kv_bytes_per_token(llama, 1, "fp8") * 2 == kv_bytes_per_token(llama, 1, None)


def test_gqa_kv_heads_split_by_tensor_parallelism_and_replicate_beyond() -> None:
    llama = arch("meta-llama/Llama-3.1-70B-Instruct")  # 8 KV heads
    assert kv_bytes_per_token(llama, 2, None) * 2 == kv_bytes_per_token(llama, 1, None)
    assert kv_bytes_per_token(llama, 8, None) == 80 * 2 * 1 * 128 * 2
    qwen = arch("Qwen/Qwen3-Coder-30B-A3B-Instruct")  # 4 KV heads: TP 8 replicates to one per GPU
    assert kv_bytes_per_token(qwen, 8, None) == kv_bytes_per_token(qwen, 4, None)


def test_mla_caches_one_latent_replicated_on_every_gpu() -> None:
    deepseek = arch("deepseek-ai/DeepSeek-V3")
    assert kv_bytes_per_token(deepseek, 1, None) == 61 * (512 + 64) * 2
    assert kv_bytes_per_token(deepseek, 8, None) == kv_bytes_per_token(deepseek, 1, None)


def test_deepseek_v3_does_not_fit_the_runbooks_8_h100_but_fits_8_h200() -> None:
    deepseek = arch("deepseek-ai/DeepSeek-V3")  # ~641 GiB of fp8 weights
    assert not sized(deepseek, GPUS["H100"], 8, 128_000, PINNED).fits
    assert sized(deepseek, GPUS["H200"], 8, 128_000, PINNED).fits


def test_sliding_window_layers_do_not_grow_with_the_context() -> None:
    oss = arch("openai/gpt-oss-120b")
    assert oss.slidingWindowLayers and oss.fullAttentionLayers < oss.layers
    short = sized(oss, GPUS["H100"], 1, 4096, PINNED)
    long = sized(oss, GPUS["H100"], 1, 131_072, PINNED)
    assert short.kv_bytes_per_token == oss.fullAttentionLayers * 2 * oss.kvHeads * oss.headDim * 2
    assert short.kv_fixed_bytes == long.kv_fixed_bytes == oss.slidingWindowLayers * oss.slidingWindow * 2 * oss.kvHeads * oss.headDim * 2


def test_hybrid_models_cache_only_their_attention_layers() -> None:
    nemotron = arch("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16")
    assert nemotron.attention == "hybrid" and nemotron.fullAttentionLayers < nemotron.layers / 4
    assert kv_bytes_per_token(nemotron, 1, None) == nemotron.fullAttentionLayers * 2 * nemotron.kvHeads * nemotron.headDim * 2


def test_more_utilization_more_context_and_larger_gpus_hold_more() -> None:
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    low = sized(llama, GPUS["L40S"], 1, 8192, PINNED, gpu_memory_utilization=0.8)
    high = sized(llama, GPUS["L40S"], 1, 8192, PINNED, gpu_memory_utilization=0.95)
    assert high.max_context_that_fits > low.max_context_that_fits
    assert sized(llama, GPUS["H100"], 1, 8192, PINNED).max_context_that_fits > sized(llama, GPUS["L4"], 1, 8192, PINNED).max_context_that_fits


def test_older_releases_use_their_own_defaults() -> None:
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    old = catalogs.vllm().releases["0.11.0"]
    assert old.gpuMemoryUtilization == 0.9 and PINNED.gpuMemoryUtilization == 0.92
    assert sized(llama, GPUS["L4"], 1, 8192, old).budget_gib < sized(llama, GPUS["L4"], 1, 8192, PINNED).budget_gib
    assert PINNED.batch_tier(GPUS["B200"]).maxNumBatchedTokens == 16384
    assert PINNED.batch_tier(GPUS["A100-80GB"]).maxNumBatchedTokens == 2048  # vLLM excludes A100 from the large tier


def test_weights_that_do_not_fit_leave_zero_context() -> None:
    sizing = sized(arch("meta-llama/Llama-3.1-70B-Instruct"), GPUS["L4"], 1, 8192, PINNED)
    assert sizing.max_context_that_fits == 0 and not sizing.fits
    assert sizing.weights_gib > sizing.budget_gib
    assert sizing.weights_gib * GIB == pytest.approx(weight_bytes(arch("meta-llama/Llama-3.1-70B-Instruct"), None))
