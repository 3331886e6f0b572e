"""GPU memory math against published figures, vLLM's own arithmetic and physical invariants.
(tests/test_calibration.py holds the sizing against 30 published start-up logs.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner import catalogs
from planner.catalogs import LinearAttention
from planner.sizing import (GIB, BLOCK_TOKENS, Sizing, SizingRequest, VllmKnobs, kv_bytes_per_token, kv_groups,
                            kv_layer_types, recurrent_state_bytes, scheduler, size, smallest_fitting, weight_bytes,
                            weight_bytes_per_gpu, weight_layout)

RELEASES = catalogs.vllm().releases
PINNED = RELEASES[catalogs.vllm().defaultVersion]
GPUS = {i.gpu.name: i.gpu for i in catalogs.instances().values()}


def sized(architecture, gpu, tensor_parallel_size, max_model_len, release, **fields) -> Sizing:  # type: ignore[no-untyped-def]
    """One sizing at a given tensor parallel size (on a node of 8 such GPUs)."""
    return size(SizingRequest(architecture, gpu, 8, max_model_len, release, **fields), tensor_parallel_size)


def arch(hf_id: str):  # type: ignore[no-untyped-def]
    found, _ = catalogs.architectures().find(hf_id)
    assert found is not None, hf_id
    return found


def test_llama_31_8b_on_one_l4_matches_the_published_kv_cache() -> None:
    # Published vLLM-style calculation (facts.md): ~4.91 GiB of KV = 40,208 tokens at 131,072 B/token, computed with a
    # 22.49 GiB total. CUDA reports 22.06 GiB on an L4 (instances.yaml), and the release charges sampler, CUDA graphs
    # and non-torch memory: ~4.3 GiB, 35k tokens. The L4 log of the calibration set (0.11.0) agrees within 4 %.
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    sizing = sized(llama, GPUS["L4"], 1, 8192, PINNED)
    assert sizing.kv_bytes_per_token == 131_072
    assert sizing.weights_gib == pytest.approx(14.96, abs=0.1)
    assert 40_208 * 0.85 <= sizing.kv_cache_tokens <= 40_208 * 1.15, sizing
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


def test_quantized_checkpoints_are_sized_by_their_published_layout() -> None:
    # compressed-tensors is a container: the checkpoint's scheme decides. RedHatAI's FP8-dynamic R1-Distill-32B
    # loaded 32.20 GiB in the calibration set; sized as bf16 it would be 61 GiB.
    distill = arch("RedHatAI/DeepSeek-R1-Distill-Qwen-32B-FP8-dynamic")
    assert weight_bytes(distill, "compressed-tensors", "fp8") / GIB == pytest.approx(32.2, abs=0.3)
    assert weight_bytes(distill, "compressed-tensors") / GIB > 60
    # AWQ: 4 bits + fp16 scale + 4-bit zero per 128 (0.5195 B); GPTQ has no zero points (0.5156 B)
    qwen = arch("Qwen/Qwen2.5-14B-Instruct")
    assert weight_bytes(qwen, "awq") / GIB == pytest.approx(9.38, abs=0.15)
    assert weight_bytes(qwen, "gptq") < weight_bytes(qwen, "awq")
    # a format larger than the checkpoint does not grow it: fp8 on gpt-oss keeps its MXFP4 experts
    oss = arch("openai/gpt-oss-120b")
    assert weight_layout(oss, "fp8").name == "mxfp4-experts"


def test_mxfp4_experts_are_padded_for_marlin_below_hopper() -> None:
    # gpt-oss-120b at TP 4 on A100s printed 17.22 GiB per GPU: Marlin pads 720 -> 768 and 2880 -> 3072
    oss = arch("openai/gpt-oss-120b")
    layout = weight_layout(oss, None)
    a100 = weight_bytes_per_gpu(oss, layout, 4, GPUS["A100-80GB"]) / GIB
    assert a100 == pytest.approx(17.22, abs=0.15)
    # OpenAI's Triton kernels on Hopper pad the per-GPU intermediate to 64 only: 720 -> 768, the hidden size stays
    assert weight_bytes_per_gpu(oss, layout, 4, GPUS["H100"]) / GIB < a100 - 0.9
    # one H100 holds the checkpoint as published (2880 is a multiple of 64)
    assert weight_bytes_per_gpu(oss, layout, 1, GPUS["H100"]) / GIB == pytest.approx(oss.checkpointGiB, abs=0.3)


def test_layers_vllm_replicates_under_tensor_parallelism_cost_every_gpu() -> None:
    kimi = arch("moonshotai/Kimi-K2-Thinking")
    layout = weight_layout(kimi, None)
    assert layout.name == "int4-g32-experts"
    split_evenly = weight_bytes_per_gpu(kimi, layout, 1, GPUS["H200"]) / 8
    at_tp8 = weight_bytes_per_gpu(kimi, layout, 8, GPUS["H200"])
    # MLA q_a/kv_a projections and the MoE routers are whole on every GPU: ~1.8 GiB more per GPU (FINDINGS.md 3.3)
    assert 1.5 * GIB < at_tp8 - split_evenly < 2.2 * GIB


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
    lite = arch("deepseek-ai/DeepSeek-V2-Lite-Chat")
    assert kv_bytes_per_token(lite, 2, None) == 27 * 576 * 2


def test_deepseek_v3_does_not_fit_the_runbooks_8_h100_but_fits_8_h200() -> None:
    deepseek = arch("deepseek-ai/DeepSeek-V3")  # ~627 GiB of fp8 weights as vLLM loads them (no MTP layer)
    h100 = sized(deepseek, GPUS["H100"], 8, 128_000, PINNED, nvlink=True)
    assert not h100.fits and h100.weights_per_gpu_gib > h100.budget_gib
    assert sized(deepseek, GPUS["H200"], 8, 128_000, PINNED, nvlink=True).fits


def test_sliding_window_layers_form_their_own_kv_cache_group() -> None:
    # gpt-oss: 18 full + 18 sliding-window layers -> two groups of 18; a request holds every block of the full group
    # and a window plus the in-flight batches of the sliding one, so concurrency is not length-proportional.
    oss = arch("openai/gpt-oss-120b")
    request = SizingRequest(oss, GPUS["H100"], 1, 131_072, PINNED)
    size_, groups = kv_groups(kv_layer_types(request, 1))
    assert size_ == 18 and [g.kind for g in groups] == ["full", "sliding"]
    short, long = size(replace(request, max_model_len=4096), 1), size(request, 1)
    assert short.kv_fixed_bytes == long.kv_fixed_bytes == oss.slidingWindowLayers * oss.slidingWindow * 2 * oss.kvHeads * oss.headDim * 2
    assert short.kv_bytes_per_token == oss.fullAttentionLayers * 2 * oss.kvHeads * oss.headDim * 2
    # 0.33 prints int(concurrency x max_model_len): more than the blocks of one group hold, as vLLM says it does
    blocks = long.kv_available_gib * GIB // (groups[0].page_bytes * 18)
    assert long.kv_cache_tokens == int(long.max_concurrency * 131_072) > blocks * BLOCK_TOKENS / 2


def test_kv_cache_tokens_count_as_each_release_prints_them() -> None:
    # up to 0.20.0: blocks // groups x block size; from 0.20.1: int(concurrency x max_model_len)
    oss = arch("openai/gpt-oss-120b")
    old, new = RELEASES["0.20.0"], RELEASES["0.21.0"]
    assert (old.kvCacheTokens, new.kvCacheTokens) == ("blocks-per-group", "concurrency-times-length")
    before = sized(oss, GPUS["H100"], 1, 131_072, old)
    after = sized(oss, GPUS["H100"], 1, 131_072, new)
    assert before.kv_cache_tokens % BLOCK_TOKENS == 0 and after.kv_cache_tokens == int(after.max_concurrency * 131_072)
    assert after.kv_cache_tokens > before.kv_cache_tokens


def test_hybrid_models_cache_attention_per_token_and_one_state_per_request() -> None:
    nemotron = arch("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16")
    assert nemotron.attention == "hybrid" and nemotron.fullAttentionLayers < nemotron.layers / 4
    assert kv_bytes_per_token(nemotron, 1, None) == nemotron.fullAttentionLayers * 2 * nemotron.kvHeads * nemotron.headDim * 2
    # Qwen3.5-27B at TP 4: one Gated-DeltaNet state is 801,792 B, so vLLM's attention block grows to 784 tokens
    qwen = arch("Qwen/Qwen3.5-27B")
    assert recurrent_state_bytes(qwen, 4) == 801_792
    types = kv_layer_types(SizingRequest(qwen, GPUS["L40S"], 4, 32_768, RELEASES["0.19.0"]), 4)
    assert {t.kind: t.block_tokens for t in types} == {"full": 784, "state": 784}
    assert [g.kind for g in kv_groups(types)[1]] == ["full", "state", "state", "state"]
    # with prefix caching vLLM keeps two states per request (mamba_cache_mode 'align')
    plain = sized(qwen, GPUS["H100"], 2, 32_768, PINNED, knobs=VllmKnobs(prefix_caching=False))
    cached = sized(qwen, GPUS["H100"], 2, 32_768, PINNED, knobs=VllmKnobs(prefix_caching=True))
    assert cached.max_concurrency < plain.max_concurrency


def test_whisper_cross_attention_is_reserved_as_vllm_does() -> None:
    # CrossAttentionSpec reserves the scheduler's max_num_encoder_input_tokens (= max_num_batched_tokens) per request
    # in every decoder layer, beside the decoder's own 448 tokens: two groups.
    whisper = arch("openai/whisper-large-v3")
    request = SizingRequest(whisper, GPUS["L40S"], 1, 448, PINNED)
    limits = scheduler(request)
    assert limits.max_num_batched_tokens == 2048  # no chunked prefill: max(448, the tier's 2048)
    sizing = size(request, 1)
    blocks_per_request = 448 // BLOCK_TOKENS + 2048 // BLOCK_TOKENS
    page_group = 32 * BLOCK_TOKENS * 2 * 20 * 64 * 2
    blocks = int(sizing.kv_available_gib * GIB // page_group)
    assert sizing.max_concurrency == pytest.approx(blocks / blocks_per_request, rel=1e-3)
    assert sizing.fits and sizing.kv_fixed_bytes == 1500 * 32 * 5120


def test_encoder_only_embedding_models_keep_no_kv_cache() -> None:
    bge = arch("BAAI/bge-m3")
    sizing = sized(bge, GPUS["L40S"], 1, 8192, PINNED)
    assert sizing.fits and sizing.kv_cache_tokens == 0 and sizing.kv_bytes_per_token == 0


def test_more_utilization_more_context_and_larger_gpus_hold_more() -> None:
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    low = sized(llama, GPUS["L40S"], 1, 8192, PINNED, knobs=VllmKnobs(gpu_memory_utilization=0.8))
    high = sized(llama, GPUS["L40S"], 1, 8192, PINNED, knobs=VllmKnobs(gpu_memory_utilization=0.95))
    assert high.kv_cache_tokens > low.kv_cache_tokens
    assert sized(llama, GPUS["H100"], 1, 8192, PINNED).kv_cache_tokens > sized(llama, GPUS["L4"], 1, 8192, PINNED).kv_cache_tokens


def test_each_knob_vllm_sizes_by_changes_the_sizing() -> None:
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    base = sized(llama, GPUS["H100"], 1, 32_768, PINNED)
    assert (base.max_num_seqs, base.max_num_batched_tokens) == (1024, 8192)
    fewer_seqs = sized(llama, GPUS["H100"], 1, 32_768, PINNED, knobs=VllmKnobs(max_num_seqs=64))
    assert fewer_seqs.activation_gib < base.activation_gib and fewer_seqs.kv_cache_tokens > base.kv_cache_tokens
    more_tokens = sized(llama, GPUS["H100"], 1, 32_768, PINNED, knobs=VllmKnobs(max_num_batched_tokens=65_536))
    assert more_tokens.activation_gib > base.activation_gib
    eager = sized(llama, GPUS["H100"], 1, 32_768, PINNED, knobs=VllmKnobs(enforce_eager=True))
    assert base.cuda_graph_gib > 0 and eager.cuda_graph_gib == 0 and eager.kv_cache_tokens > base.kv_cache_tokens
    fixed = sized(llama, GPUS["H100"], 1, 32_768, PINNED, knobs=VllmKnobs(kv_cache_memory_bytes=8 * GIB))
    assert fixed.kv_available_gib == pytest.approx(8.0) and fixed.kv_cache_tokens == 8 * GIB // 131_072


def test_gpu_memory_as_cuda_reports_it_and_as_a_pool_states_it() -> None:
    h100 = GPUS["H100"]
    assert h100.memoryMiB == 81_920 and h100.cudaMemoryGiB == pytest.approx(79.19)
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    assert sized(llama, h100, 1, 8192, PINNED).budget_gib == pytest.approx(79.19 * 0.92)
    smaller = sized(llama, replace(h100, cudaMemoryGiB=70.0), 1, 8192, PINNED)
    assert smaller.budget_gib == pytest.approx(70.0 * 0.92)


def test_communication_buffers_by_release_and_interconnect() -> None:
    llama = arch("meta-llama/Llama-3.1-70B-Instruct")
    charged = sized(llama, GPUS["H100"], 4, 8192, RELEASES["0.10.1.1"], nvlink=True)  # NCCL init in the budget
    not_charged = sized(llama, GPUS["H100"], 4, 8192, RELEASES["0.11.0"], nvlink=True)
    pcie = sized(llama, GPUS["L40S"], 4, 8192, RELEASES["0.10.1.1"], nvlink=False)
    assert charged.non_torch_gib == pytest.approx(2.7) and not_charged.non_torch_gib == pytest.approx(0.25)
    assert pcie.non_torch_gib == pytest.approx(0.15)
    assert sized(llama, GPUS["H100"], 1, 8192, RELEASES["0.11.0"]).non_torch_gib == pytest.approx(0.1)


def test_the_sampler_by_release() -> None:
    # 0.11.1-0.16 sort the logits in PyTorch (35 B per logit over 1024 rows), 0.21 on use FlashInfer (10 B)
    qwen = arch("Qwen/Qwen3-8B")
    sort = sized(qwen, GPUS["H100"], 1, 8192, RELEASES["0.12.0"])
    flashinfer = sized(qwen, GPUS["H100"], 1, 8192, RELEASES["0.21.0"])
    assert sort.activation_gib == pytest.approx(0.12 + 1024 * 151_936 * 35 / GIB, abs=0.01)
    assert flashinfer.activation_gib < sort.activation_gib / 2


def test_older_releases_use_their_own_defaults() -> None:
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    old = RELEASES["0.11.0"]
    assert old.gpuMemoryUtilization == 0.9 and PINNED.gpuMemoryUtilization == 0.92
    assert sized(llama, GPUS["L4"], 1, 8192, old).budget_gib < sized(llama, GPUS["L4"], 1, 8192, PINNED).budget_gib
    assert PINNED.batch_tier(GPUS["B200"]).maxNumBatchedTokens == 16384
    assert PINNED.batch_tier(GPUS["A100-80GB"]).maxNumBatchedTokens == 2048  # vLLM excludes A100 from the large tier
    assert PINNED.batch_tier(GPUS["H100"]).maxNumBatchedTokens == 8192  # 79.19 GiB clears the 70 GiB tier


def test_weights_that_do_not_fit_leave_zero_context() -> None:
    sizing = sized(arch("meta-llama/Llama-3.1-70B-Instruct"), GPUS["L4"], 1, 8192, PINNED)
    assert sizing.max_context_that_fits == 0 and not sizing.fits and sizing.kv_cache_tokens == 0
    assert sizing.weights_gib > sizing.budget_gib
    assert sizing.weights_gib * GIB == pytest.approx(weight_bytes(arch("meta-llama/Llama-3.1-70B-Instruct"), None))


def test_fits_is_vllms_start_up_check_and_max_context_its_estimate() -> None:
    llama = arch("meta-llama/Llama-3.1-8B-Instruct")
    sizing = sized(llama, GPUS["L4"], 1, 131_072, PINNED)
    assert not sizing.fits
    assert sizing.max_context_that_fits == int(sizing.kv_available_gib * GIB // 131_072) // BLOCK_TOKENS * BLOCK_TOKENS
    assert sized(llama, GPUS["L4"], 1, sizing.max_context_that_fits, PINNED).fits


def test_linear_attention_catalog_field_reads_from_yaml_and_overrides() -> None:
    qwen = arch("Qwen/Qwen3.5-9B")
    assert isinstance(qwen.linearAttention, LinearAttention) and qwen.linearAttention.layers == 24
    changed = qwen.with_overrides({"linearAttention": {"kind": "mamba2", "layers": 8, "convKernel": 4, "numHeads": 8,
                                                       "headDim": 64, "stateSize": 128, "nGroups": 1}})
    assert changed.linearAttention is not None and changed.linearAttention.kind == "mamba2"


# --------------------------------------------------------------------------------------------- through the plan


def llama_server(**vllm):  # type: ignore[no-untyped-def]
    from tests.conftest import add_model, base_config, plan_of
    raw = base_config()
    add_model(raw, litellmModelName="llama", provider="Self-Hosted", contextWindow=32768,
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s", **vllm})
    raw["gpuPools"][1]["maxSize"] = 3
    plan = plan_of(raw)
    return plan, next(s for s in plan.servers if s.litellmModelName == "llama")


def test_the_plan_reports_what_the_pod_will_print() -> None:
    plan, server = llama_server()
    out = server.to_json()
    assert {"kvCacheTokens", "maxConcurrency", "maxContextThatFits", "fits", "budgetGiB", "runtimeGiB", "kvCacheGiB"} <= set(out)
    assert "concurrency" not in out
    assert out["gpuMemoryGiB"] == pytest.approx(44.39)  # what CUDA reports on an L40S, not EC2's 44.7
    # 0.33 prints int(concurrency x max_model_len)
    assert server.kvCacheTokens == int(server.maxConcurrency * 32768)
    assert out["maxConcurrency"] == round(server.maxConcurrency, 2)


@pytest.mark.parametrize(("args", "flag"), [
    (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization"),
    (["--max-num-seqs=0"], "--max-num-seqs"),
    (["--max-num-batched-tokens", "lots"], "--max-num-batched-tokens"),
    (["--kv-cache-memory-bytes=1.5G"], "--kv-cache-memory-bytes"),  # vLLM refuses decimals with binary suffixes
])
def test_an_invalid_knob_is_an_error_naming_the_flag_the_value_and_the_fix(args: list[str], flag: str) -> None:
    from tests.conftest import only
    plan, _ = llama_server(extraArgs=args)
    finding = only(plan, "vllm-extra-arg-invalid", "llama")
    value = args[-1].split("=")[-1]
    assert flag in finding.message and repr(value) in finding.message and "write" in finding.message


def test_batched_tokens_below_max_num_seqs_is_refused_as_vllm_does() -> None:
    from tests.conftest import only
    plan, _ = llama_server(extraArgs=["--max-num-seqs=256", "--max-num-batched-tokens=128"])
    assert "Raise it to 256" in only(plan, "vllm-extra-arg-invalid", "llama").message


def test_knobs_in_extra_args_reach_the_sizing() -> None:
    _, base = llama_server()
    _, eager = llama_server(extraArgs=["--enforce-eager", "--max-num-seqs", "32"])
    assert eager.runtimeGiB < base.runtimeGiB and eager.kvCacheTokens > base.kvCacheTokens
    _, fixed = llama_server(extraArgs=["--kv-cache-memory-bytes=4G"])
    assert fixed.kvCacheGiB == pytest.approx(4.0) and fixed.kvCacheTokens == 4 * GIB // 131_072
    # vLLM reads 16k as 16,000 and 16K as 16,384 tokens per batch: a larger activation peak each
    _, decimal = llama_server(extraArgs=["--max-num-batched-tokens=16k"])
    _, binary = llama_server(extraArgs=["--max-num-batched-tokens=16K"])
    assert binary.runtimeGiB > decimal.runtimeGiB > base.runtimeGiB


def test_a_pool_may_state_the_gpu_memory_vllm_sees() -> None:
    from tests.conftest import add_model, base_config, plan_of
    raw = base_config()
    raw["gpuPools"][1]["gpuMemoryGiB"] = 40.0
    add_model(raw, litellmModelName="llama", provider="Self-Hosted", contextWindow=32768,
              vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s"})
    server = next(s for s in plan_of(raw).servers if s.litellmModelName == "llama")
    _, catalog = llama_server()
    assert server.gpuMemoryGiB == 40.0 and server.budgetGiB == pytest.approx(40.0 * 0.92)
    assert server.kvCacheTokens < catalog.kvCacheTokens


def test_a_quantized_checkpoint_is_sized_by_its_name_through_the_plan() -> None:
    from tests.conftest import add_model, base_config, plan_of
    raw = base_config()
    add_model(raw, litellmModelName="distill", provider="Self-Hosted", contextWindow=16384,
              vllm={"model": "RedHatAI/DeepSeek-R1-Distill-Qwen-32B-FP8-dynamic", "gpuPool": "l40s"})
    server = next(s for s in plan_of(raw).servers if s.litellmModelName == "distill")
    assert server.weightsGiB == pytest.approx(32.0, abs=0.3) and server.fits
