"""GPU memory math for a vLLM server: weights + runtime + KV cache against GPU memory x utilization.

How vLLM spends a GPU (vllm/v1/worker/gpu_worker.py `determine_available_memory`): it loads the
weights, runs one profiling forward pass at `max_num_batched_tokens` (plus a dummy sampler pass over
`max_num_seqs` rows of logits), and gives the KV cache what is left of
`total_memory x gpu_memory_utilization` after weights, the activation peak and memory that torch does
not allocate (CUDA context, NCCL). The KV cache must hold at least one request of `max_model_len`
tokens, or vLLM refuses to start and reports the largest length that fits. This module reproduces
that arithmetic per GPU of a tensor-parallel group.

Published anchor (reproduced by tests/test_sizing.py): Llama-3.1-8B in bf16 on one L4 leaves about
4.91 GiB of KV cache, 40,208 tokens at 131,072 bytes per token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.catalogs import Architecture, Gpu, VllmRelease, quantization_formats

GIB = 1024**3

# Bytes per parameter of a checkpoint's native dtype. fp32 checkpoints (bge-m3) are served in bf16
# (planner/vllm_args.py SERVE_DTYPE), so they weigh 2 bytes. Checkpoints published 4-bit carry scales like the
# quantization formats of planner/data/quantization.yaml (mxfp4: OCP MX spec v1.0; int4: AWQ/GPTQ groups of 128).
DTYPE_BYTES: dict[str, float] = {"float32": 2.0, "bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "int8": 1.0,
                                 "mxfp4": 0.5 + 1 / 32, "int4": 0.5 + 4 / 128}

# --- runtime overhead per GPU, outside weights and KV cache -------------------------------------
# Sources: vLLM v0.33.0 vllm/v1/worker/gpu_worker.py (determine_available_memory) and vllm/utils/mem_utils.py,
# summarised with links in planner/data/vllm.yaml `memoryNotes`.
#
# Memory allocated before vLLM's first memory snapshot but not by torch (CUDA context, cuBLAS handles, NCCL
# communicators). Since v0.11 the snapshot is taken after them, so they sit in the (1 - utilization) slack;
# v0.8.5 charged them to the budget (release flag nonTorchInBudget). ~0.3 GiB per GPU plus ~0.25 GiB of NCCL
# and custom all-reduce buffers with tensor parallelism (vLLM's "non_torch_memory" profile lines).
NON_TORCH_GIB = 0.3
TENSOR_PARALLEL_COMM_GIB = 0.25
# Persistent buffers allocated during model init and profiling besides the weights (rotary caches, sampler
# and attention metadata buffers), part of vLLM's "total_consumed".
PERSISTENT_BUFFERS_GIB = 0.15
# CUDA graphs: since v0.21 vLLM estimates their memory and takes it from the KV budget (release flag
# cudaGraphsInBudget). Public estimates range 0.17-1.3 GiB (vllm.yaml memoryNotes: ~0.65 GiB for gemma-3-4b's
# 34 layers, ~1.3 GiB for Llama-4-Maverick): a base plus a per-layer share reproduces that range.
CUDA_GRAPH_BASE_GIB = 0.25
CUDA_GRAPH_PER_LAYER_GIB = 0.01
# Activation peak of the profiling forward pass over max_num_batched_tokens, per token: the MLP's gate/up
# output, the activation output and the hidden/residual streams in bf16. Four widths of (hidden +
# intermediate) gives ~1.1 GiB for Llama-3.1-8B at 8,192 tokens, the order of vLLM's logged "PyTorch
# activation peak memory". MoE: the fused-MoE kernel keeps one intermediate per selected expert.
ACTIVATION_WIDTHS = 4
ACTIVATION_BYTES = 2
# The profiling pass also runs the sampler on max_num_seqs rows of logits with top-k/top-p set
# (gpu_model_runner `_dummy_sampler_run`): fp32 logits, their sorted copy and int64 sort indices, 16 bytes
# per vocabulary entry per row at the peak. The peak is the larger of this and the forward pass.
SAMPLER_BYTES_PER_LOGIT = 16
# KV cache is paged in blocks of 16 tokens (vLLM's default block_size).
BLOCK_TOKENS = 16


@dataclass(frozen=True)
class RuntimeDefaults:
    """What a vLLM release does that changes the arithmetic (from planner/data/vllm.yaml)."""

    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    cuda_graphs_in_budget: bool
    non_torch_in_budget: bool

    @classmethod
    def for_release(cls, release: VllmRelease, gpu: Gpu) -> "RuntimeDefaults":
        tier = release.batch_tier(gpu)
        return cls(release.gpuMemoryUtilization, tier.maxNumBatchedTokens, tier.maxNumSeqs,
                   release.cudaGraphsInBudget, release.nonTorchInBudget)


@dataclass(frozen=True)
class SizingRequest:
    """What one server is sized for: the model, the node's GPUs, the context, and the knobs vLLM sizes by."""

    architecture: Architecture
    gpu: Gpu
    gpus_per_node: int
    max_model_len: int
    release: VllmRelease
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    gpu_memory_utilization: float | None = None


@dataclass(frozen=True)
class Sizing:
    """Per-GPU memory picture of one replica at one tensor parallel size."""

    tensor_parallel_size: int
    gpu_memory_gib: float
    budget_gib: float
    weights_gib: float  # whole model
    weights_per_gpu_gib: float
    runtime_gib: float
    kv_available_gib: float
    kv_bytes_per_token: int  # per GPU, for the layers whose cache grows with the context
    kv_fixed_bytes: int  # per GPU: bounded (sliding-window / chunked) layers at their full window
    max_context_that_fits: int
    max_model_len: int

    @property
    def fits(self) -> bool:
        return self.max_context_that_fits >= self.max_model_len

    @property
    def concurrency(self) -> float:
        """How many max-length requests the KV cache holds at once (vLLM's 'maximum concurrency')."""
        return self.max_context_that_fits / self.max_model_len if self.max_model_len else 0.0


def weight_bytes(arch: Architecture, quantization: str | None) -> float:
    """Bytes of weights for the whole model; MoE counts every expert (all are resident)."""
    params = arch.parametersB * 1e9
    fmt = quantization_formats().get(quantization or "")
    if fmt is None or fmt.bytesPerParam is None:
        if arch.checkpointGiB:
            return arch.checkpointGiB * GIB
        return params * DTYPE_BYTES.get(arch.nativeDtype, 2.0)
    per_param = fmt.bytesPerParam
    if per_param >= DTYPE_BYTES.get(arch.nativeDtype, 2.0):
        return weight_bytes(arch, None)  # a checkpoint already this small is not made smaller
    # Embeddings and the LM head stay in 16-bit under weight quantization.
    embedding_params = 2 * arch.vocabSize * arch.hiddenSize if arch.vocabSize and arch.hiddenSize else 0
    embedding_params = min(embedding_params, params)
    return (params - embedding_params) * per_param + embedding_params * 2.0


def kv_dtype_bytes(kv_cache_dtype: str | None) -> int:
    return 1 if kv_cache_dtype and kv_cache_dtype.startswith("fp8") else 2


def kv_heads_per_gpu(arch: Architecture, tensor_parallel_size: int) -> int:
    # vLLM replicates KV heads when the group is larger than the head count.
    return max(1, arch.kvHeads // tensor_parallel_size)


def kv_bytes_per_token_per_layer(arch: Architecture, tensor_parallel_size: int, kv_cache_dtype: str | None) -> int:
    dtype = kv_dtype_bytes(kv_cache_dtype)
    if arch.attention == "mla" and arch.kvLoraRank:
        # MLA caches one compressed latent (kv_lora_rank + rope dims) per token, replicated on every GPU.
        return (arch.kvLoraRank + (arch.qkRopeHeadDim or 0)) * dtype
    return 2 * kv_heads_per_gpu(arch, tensor_parallel_size) * arch.headDim * dtype


def kv_bytes_per_token(arch: Architecture, tensor_parallel_size: int, kv_cache_dtype: str | None) -> int:
    """Per GPU, summed over the layers whose cache grows with the context."""
    return arch.fullAttentionLayers * kv_bytes_per_token_per_layer(arch, tensor_parallel_size, kv_cache_dtype)


def kv_fixed_bytes(arch: Architecture, tensor_parallel_size: int, kv_cache_dtype: str | None, max_model_len: int) -> int:
    """Per GPU, per request, what does not grow with the context: sliding-window or chunked-local layers hold at
    most one window; an encoder-decoder's cross-attention holds the encoder's positions in every decoder layer."""
    per_layer = kv_bytes_per_token_per_layer(arch, tensor_parallel_size, kv_cache_dtype)
    sliding = 0
    if arch.slidingWindowLayers and arch.slidingWindow:
        sliding = arch.slidingWindowLayers * min(arch.slidingWindow, max_model_len) * per_layer
    cross = arch.fullAttentionLayers * (arch.crossAttentionTokens or 0) * per_layer
    return sliding + cross


def runtime_bytes(arch: Architecture, tensor_parallel_size: int, defaults: RuntimeDefaults) -> float:
    """Per GPU: what the budget pays for besides weights and KV cache."""
    hidden = arch.hiddenSize or arch.attentionHeads * arch.headDim
    intermediate = arch.intermediateSize or 4 * hidden
    if arch.is_moe and arch.expertsPerToken:
        intermediate *= arch.expertsPerToken
    per_token = ACTIVATION_WIDTHS * ACTIVATION_BYTES * (hidden + intermediate / tensor_parallel_size)
    activation_peak = defaults.max_num_batched_tokens * per_token
    sampler_peak = 0 if arch.kind == "embedding" else defaults.max_num_seqs * (arch.vocabSize or 32000) * SAMPLER_BYTES_PER_LOGIT
    total = PERSISTENT_BUFFERS_GIB * GIB + max(activation_peak, sampler_peak)
    if defaults.non_torch_in_budget:
        total += (NON_TORCH_GIB + (TENSOR_PARALLEL_COMM_GIB if tensor_parallel_size > 1 else 0.0)) * GIB
    if defaults.cuda_graphs_in_budget and arch.kind != "embedding":
        # pooling models run eagerly: nothing to decode, no graphs captured
        total += (CUDA_GRAPH_BASE_GIB + CUDA_GRAPH_PER_LAYER_GIB * arch.layers) * GIB
    return total


def size(request: SizingRequest, tensor_parallel_size: int) -> Sizing:
    """The per-GPU memory picture of one replica of `request` at one tensor parallel size."""
    arch, gpu, max_model_len = request.architecture, request.gpu, request.max_model_len
    defaults = RuntimeDefaults.for_release(request.release, gpu)
    utilization = request.gpu_memory_utilization or defaults.gpu_memory_utilization
    budget = gpu.memory_bytes * utilization
    weights = weight_bytes(arch, request.quantization)
    weights_per_gpu = weights / tensor_parallel_size
    runtime = runtime_bytes(arch, tensor_parallel_size, defaults)
    per_token = kv_bytes_per_token(arch, tensor_parallel_size, request.kv_cache_dtype)
    fixed = kv_fixed_bytes(arch, tensor_parallel_size, request.kv_cache_dtype, max_model_len)
    available = budget - weights_per_gpu - runtime
    if available <= fixed:
        fits = 0
    elif per_token == 0:
        fits = arch.maxContext  # nothing grows with the context
    else:
        fits = int((available - fixed) // per_token) // BLOCK_TOKENS * BLOCK_TOKENS
    return Sizing(
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_gib=gpu.memory_bytes / GIB,
        budget_gib=budget / GIB,
        weights_gib=weights / GIB,
        weights_per_gpu_gib=weights_per_gpu / GIB,
        runtime_gib=runtime / GIB,
        kv_available_gib=max(0.0, available) / GIB,
        kv_bytes_per_token=per_token,
        kv_fixed_bytes=fixed,
        max_context_that_fits=fits,
        max_model_len=max_model_len,
    )


def valid_tensor_parallel_sizes(arch: Architecture, gpus_per_node: int) -> list[int]:
    """Sizes vLLM accepts: they divide the attention heads, and the KV heads divide or are divided by them."""
    sizes = []
    for tp in range(1, gpus_per_node + 1):
        if arch.attentionHeads % tp:
            continue
        if arch.attention != "mla" and arch.kvHeads % tp and tp % arch.kvHeads:
            continue
        sizes.append(tp)
    return sizes


def smallest_fitting(request: SizingRequest) -> tuple[Sizing | None, Sizing | None]:
    """(smallest tensor parallel size that serves max_model_len, the largest size tried as fallback)."""
    best: Sizing | None = None
    for tp in valid_tensor_parallel_sizes(request.architecture, request.gpus_per_node):
        sizing = size(request, tp)
        best = sizing
        if sizing.fits:
            return sizing, sizing
    return None, best


def disk_gib_for(weights_gib: float) -> int:
    """Root volume for a node that downloads these weights: OS and images (~60 GiB for the vLLM image and
    the AL2023 NVIDIA AMI) plus the weights twice (Hugging Face cache download + safetensors load)."""
    return int(math.ceil((60 + 2 * weights_gib) / 10.0) * 10)
