"""GPU memory math for a vLLM server, per vLLM release: what the pod will print at start-up.

How vLLM spends a GPU (vllm/v1/worker/gpu_worker.py `determine_available_memory`, vllm/utils/mem_utils.py): it loads
the weights, runs one profiling forward pass over `max_num_batched_tokens` tokens (after the multimodal encoder on
one dummy item, and followed by a dummy sampler pass over `max_num_seqs` rows of logits), and gives the KV cache

    total x gpu_memory_utilization - (weights + torch activation peak + non-torch increase [+ CUDA-graph estimate])

where `total` is the GPU memory CUDA reports. It then splits the KV cache into blocks by KV-cache group
(v1/core/kv_cache_utils.py) and prints `GPU KV cache size: N tokens` and `Maximum concurrency for L tokens per
request: X`; it refuses to start unless one request of `max_model_len` fits. This module reproduces each step per
GPU of a tensor-parallel group, with each term's source next to it. Calibrated against 30 published start-up logs
(tests/calibration/logs.yaml, FINDINGS.md; tests/test_calibration.py holds every one within 10 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.catalogs import Architecture, Gpu, VllmRelease, WeightLayout, weight_formats

GIB = 1024**3
# vLLM's default --block-size (CacheConfig.block_size) on CUDA.
BLOCK_TOKENS = 16

# --- activation (the profiling run; FINDINGS.md 3.4, gpu_model_runner.profile_run) ---------------------------------
# Persistent buffers and allocator slack of the profile run, fitted on the 30 logs.
PROFILE_BASE_GIB = 0.12
# The dummy sampler pass (gpu_model_runner._dummy_sampler_run) over min(max_num_seqs, max_num_batched_tokens) rows of
# logits with top-k and top-p set: bytes per logit at its peak, by the release's implementation (vllm_releases.json
# samplerImplementation, read from v1/sample/ops/topk_topp_sampler.py). pytorch-sort: bf16 logits, an fp32 copy,
# sorted values, int64 indices, softmax and masks (10 logs imply 30-41 B); flashinfer and triton: upper bounds from
# the 5 logs where the sampler is not the peak. Triton runs from 8 rows; fewer rows take the sort path.
SAMPLER_BYTES_PER_LOGIT = {"pytorch-sort": 35.0, "flashinfer": 10.0, "triton": 6.0}
TRITON_SAMPLER_MIN_ROWS = 8
# Multimodal models first run their encoder on one dummy item of the largest size and keep its outputs through the
# decoder pass. Measured per model (Architecture.encoderProfileGiB); this default for the others is the midpoint of
# the two measured (Qwen3.5 0.75 GiB at TP 4, Qwen3-VL 2.9 GiB at TP 2).
ENCODER_PROFILE_DEFAULT_GIB = 1.0

# --- non-torch memory charged to the budget (FINDINGS.md 3.5) -------------------------------------------------------
# vLLM charges the growth of (CUDA used - torch reserved) from a snapshot (vllm_releases.json memorySnapshot):
# whole-device (0.8-0.9.0): everything outside torch, CUDA context included; before-distributed-init (0.9.1-0.10):
# the snapshot precedes NCCL init, so NCCL's and the custom all-reduce's buffers are charged; after-distributed-init
# (0.11 on): neither. Per GPU, by tensor parallelism and interconnect (planner/data/interconnect.yaml):
NON_TORCH_TP1_GIB = 0.10  # cuBLAS workspaces and kernels loaded during the profile run (logs at TP 1)
NON_TORCH_NO_P2P_GIB = 0.15  # TP >= 2 without custom all-reduce (PCIe, multi-node): logs with "Custom allreduce is disabled"
NON_TORCH_NVLINK_GIB = 0.25  # TP >= 2 over NVLink, communicators already in the snapshot (0.11 on)
NON_TORCH_NVLINK_NCCL_INIT_GIB = 2.70  # TP >= 2 over NVLink with NCCL init charged: both H100 TP 8 logs of 0.10.0
# whole-device also charges the CUDA context. No V1 log of 0.8-0.9.0 in the set: a typical CUDA 12 context, uncalibrated.
CUDA_CONTEXT_GIB = 0.5

# --- CUDA graphs (FINDINGS.md 3.6) ----------------------------------------------------------------------------------
# Where the release takes the graph estimate from the budget (vllm_releases.json cudaGraphsInBudget): captured sizes
# up to min(2 x max_num_seqs, 512) (config/vllm.py); fitted on the logged estimates (0.14-0.15 GiB for 32-128 sizes,
# 0.51 at 512), plus 3.1 GiB at 512 for recurrent hybrids (Qwen3.5-9B logged 3.65 GiB at TP 4).
MAX_CAPTURE_SIZE = 512
CUDA_GRAPH_BASE_GIB = 0.12
CUDA_GRAPH_AT_MAX_CAPTURE_GIB = 0.4
STATE_GRAPH_AT_MAX_CAPTURE_GIB = 3.1

# --- MXFP4 expert padding by kernel (vllm/model_executor/layers/fused_moe/oracle/mxfp4.py
# mxfp4_round_up_hidden_size_and_intermediate_size, 0.33.0; quantization/mxfp4.py L154-188 at 0.10.1.1) ------------
# Marlin below compute capability 9.0, OpenAI's Triton kernels on Hopper, FlashInfer TRT-LLM from Blackwell:
# (round the per-GPU intermediate up to, round the hidden size up to).
MXFP4_PADDING = {"marlin": (128, 256), "triton": (64, 1), "flashinfer-trtllm": (128, 256)}


def round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class VllmKnobs:
    """The `vllm serve` flags vLLM sizes by, as a stack gives them in vllm.extraArgs (planner/servers.py
    decide_vllm_knobs); None: the release's default."""

    gpu_memory_utilization: float | None = None  # --gpu-memory-utilization
    max_num_seqs: int | None = None  # --max-num-seqs
    max_num_batched_tokens: int | None = None  # --max-num-batched-tokens
    enforce_eager: bool = False  # --enforce-eager: no CUDA graphs
    kv_cache_memory_bytes: int | None = None  # --kv-cache-memory-bytes: the KV cache size, not profiled
    custom_all_reduce: bool = True  # False: --disable-custom-all-reduce
    prefix_caching: bool | None = None  # --[no-]enable-prefix-caching; None: on for chat models (planner/vllm_args.py)
    language_model_only: bool = False  # --language-model-only / --limit-mm-per-prompt all 0: no encoder profile


@dataclass(frozen=True)
class SizingRequest:
    """What one server is sized for: the model, the node's GPUs, the context, the release and the knobs vLLM sizes by."""

    architecture: Architecture
    gpu: Gpu  # cudaMemoryGiB: what CUDA reports, or the pool's gpuMemoryGiB
    gpus_per_node: int
    max_model_len: int
    release: VllmRelease
    quantization: str | None = None  # vllm.quantization: a --quantization method (quantization.yaml formats)
    kv_cache_dtype: str | None = None
    checkpoint_weights: str | None = None  # a quantized checkpoint's layout, from its name (quantization.yaml)
    knobs: VllmKnobs = VllmKnobs()
    nvlink: bool = False  # the node's GPUs are NVLink peers (planner/data/interconnect.yaml)
    sampler: str | None = None  # the sampler's top-k/top-p implementation when not the release's default

    @property
    def chunked_prefill(self) -> bool:
        # Encoder-decoder and pooling models run without chunked prefill (SchedulerConfig / is_chunked_prefill_supported).
        return self.architecture.kind == "chat"

    @property
    def prefix_caching(self) -> bool:
        knob = self.knobs.prefix_caching
        return self.architecture.kind == "chat" if knob is None else knob


@dataclass(frozen=True)
class Scheduler:
    """The scheduler limits vLLM sizes with (EngineArgs._set_default_max_num_seqs_and_batched_tokens_args)."""

    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int


@dataclass(frozen=True)
class KvLayerType:
    """Layers that share one KV-cache spec (v1/kv_cache_interface.py), per GPU."""

    kind: str  # full | sliding | state | cross
    layers: int
    page_bytes: int  # one block of one layer, after vLLM unifies the page size
    block_tokens: int
    window: int = 0  # sliding


@dataclass(frozen=True)
class KvReport:
    """What vLLM prints about its KV cache, and its start-up check."""

    tokens: int  # `GPU KV cache size: N tokens`
    max_concurrency: float  # `Maximum concurrency for max_model_len tokens per request: X`
    fits: bool  # one request of max_model_len fits (check_enough_kv_cache_memory)
    max_context_that_fits: int  # the longest single request that passes that check (estimate_max_model_len)


@dataclass(frozen=True)
class Sizing:
    """Per-GPU memory picture of one replica at one tensor parallel size, and what vLLM will print for it."""

    tensor_parallel_size: int
    gpu_memory_gib: float  # what CUDA reports (or the pool's gpuMemoryGiB)
    budget_gib: float
    weights_gib: float  # one copy of the model as loaded
    weights_per_gpu_gib: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_available_gib: float
    kv_bytes_per_token: int  # per GPU, for the layers whose cache grows with the context
    kv_fixed_bytes: int  # per GPU, per request: sliding windows and cross-attention at their full size
    kv_cache_tokens: int
    max_concurrency: float
    max_context_that_fits: int
    max_model_len: int
    fits: bool
    max_num_seqs: int
    max_num_batched_tokens: int

    @property
    def runtime_gib(self) -> float:
        """What the budget pays for besides weights and KV cache."""
        return self.activation_gib + self.non_torch_gib + self.cuda_graph_gib


# --------------------------------------------------------------------------------------------- scheduler


def scheduler(request: SizingRequest) -> Scheduler:
    """The release's batch tier for the GPU, capped as vLLM caps it: without chunked prefill the batch holds a whole
    request; by default the batch is at most max_num_seqs requests of max_model_len (arg_utils.py 0.33.0 L3166-3236)."""
    tier = request.release.batch_tier(request.gpu)
    length = request.max_model_len
    knobs = request.knobs
    tokens = knobs.max_num_batched_tokens
    if tokens is None:
        tokens = tier.maxNumBatchedTokens if request.chunked_prefill else max(length, tier.maxNumBatchedTokens)
        tokens = min((knobs.max_num_seqs or tier.maxNumSeqs) * length, tokens)
    seqs = knobs.max_num_seqs or min(tier.maxNumSeqs, tokens)
    utilization = knobs.gpu_memory_utilization or request.release.gpuMemoryUtilization
    return Scheduler(utilization, seqs, tokens)


# --------------------------------------------------------------------------------------------- weights


def weight_layout(arch: Architecture, quantization: str | None, checkpoint_weights: str | None = None) -> WeightLayout:
    """How the weights sit in memory: the --quantization method's layout, else the checkpoint's (named by its
    repository), else the native dtype's (quantization.yaml). A checkpoint already smaller is not made smaller."""
    table = weight_formats()
    native = table.layouts[table.native.get(arch.nativeDtype, "bf16")]
    method = table.formats.get(quantization or "")
    chosen = checkpoint_weights if method is None or method.weights is None else method.weights
    layout = table.layouts.get(chosen or "", native)
    return native if layout.bytesPerParam >= native.bytesPerParam else layout


def embedding_params(arch: Architecture) -> float:
    """Embeddings and LM head (one matrix when tied): they stay 16-bit under every weight format."""
    if not (arch.vocabSize and arch.hiddenSize):
        return 0.0
    return arch.vocabSize * arch.hiddenSize * (1 if arch.tieWordEmbeddings else 2)


def moe_layers(arch: Architecture) -> int:
    return arch.layers - (arch.denseLayers or 0)


def routed_expert_params(arch: Architecture, intermediate: float, hidden: int) -> float:
    """Gate, up and down projections of every routed expert of every MoE layer."""
    if not (arch.experts and arch.intermediateSize):
        return 0.0
    return moe_layers(arch) * arch.experts * 3 * hidden * intermediate


def mxfp4_kernel(gpu: Gpu) -> str:
    if gpu.computeCapability < 9.0:
        return "marlin"
    return "triton" if gpu.computeCapability < 10.0 else "flashinfer-trtllm"


def quantized_experts_per_gpu(arch: Architecture, layout: WeightLayout, tp: int, gpu: Gpu) -> float:
    """Routed-expert parameters one GPU holds; MXFP4 experts padded to the kernel's tile."""
    hidden = arch.hiddenSize or arch.attentionHeads * arch.headDim
    intermediate = (arch.intermediateSize or 0) / tp
    if layout.name.startswith("mxfp4"):
        pad_intermediate, pad_hidden = MXFP4_PADDING[mxfp4_kernel(gpu)]
        intermediate, hidden = round_up(intermediate, pad_intermediate), round_up(hidden, pad_hidden)
    return routed_expert_params(arch, intermediate, hidden)


def replicated_params(arch: Architecture) -> tuple[float, float]:
    """(MLA projections, MoE routers): layers vLLM does not shard under tensor parallelism, so each GPU holds a whole
    copy: MLA's fused q_a/kv_a projection (disable_tp=True) and kv_a_proj_with_mqa, and every MoE router `gate`
    (ReplicatedLinear) (vllm/model_executor/models/deepseek_v2.py at v0.11.0 L158, L877-891)."""
    hidden = arch.hiddenSize or 0
    mla = 0.0
    if arch.attention == "mla" and arch.kvLoraRank:
        mla = arch.layers * hidden * ((arch.qLoraRank or 0) + arch.kvLoraRank + (arch.qkRopeHeadDim or 0))
    routers = moe_layers(arch) * arch.experts * hidden if arch.experts else 0.0
    return mla, float(routers)


def weight_bytes_per_gpu(arch: Architecture, layout: WeightLayout, tp: int, gpu: Gpu) -> float:
    """Bytes of weights on one GPU of a tensor-parallel group of `tp` (FINDINGS.md 3.3):
    [body x b(layout) + (embeddings + vision tower) x 2] / tp + replicated layers x (1 - 1/tp)."""
    total = arch.parametersB * 1e9
    per_param = layout.bytesPerParam
    if layout.appliesTo == "experts":
        routed = routed_expert_params(arch, arch.intermediateSize or 0, arch.hiddenSize or 0)
        sharded = quantized_experts_per_gpu(arch, layout, tp, gpu) * per_param + (total - routed) * 2.0 / tp
        linear_bytes = 2.0
    elif layout.appliesTo == "linear":
        kept = min(total, embedding_params(arch) + (arch.visionParametersB or 0.0) * 1e9)
        sharded = ((total - kept) * per_param + kept * 2.0) / tp
        linear_bytes = per_param
    else:
        sharded, linear_bytes = total * per_param / tp, per_param
    mla, routers = replicated_params(arch)
    return sharded + (mla * linear_bytes + routers * 2.0) * (1 - 1 / tp)


def weight_bytes(arch: Architecture, quantization: str | None, checkpoint_weights: str | None = None) -> float:
    """Bytes of one copy of the model's weights as vLLM loads them (MoE: every expert is resident)."""
    layout = weight_layout(arch, quantization, checkpoint_weights)
    return weight_bytes_per_gpu(arch, layout, 1, _UNPADDED)


# A GPU whose MXFP4 kernel pads nothing the catalog's models need (OpenAI's Triton kernels pad to 64): for figures
# of the model itself, not of one GPU.
_UNPADDED = Gpu(name="-", memoryMiB=0, deviceName="-", cudaMemoryGiB=0.0, computeCapability=9.0)


# --------------------------------------------------------------------------------------------- activation and runtime


def forward_peak_bytes(arch: Architecture, tp: int, tokens: int) -> float:
    """Activation peak of the profile forward pass over `tokens` tokens, per GPU, 16-bit: the MLP's gate/up output
    (2 I/tp) and activation output (I/tp), or for MoE the fused-MoE intermediate caches of every selected expert
    (top_k x (3 I/tp + H)); four hidden-size streams (residual, norm, attention output); q, k, v and the attention
    output (2 heads + 2 KV heads) x head_dim / tp. Checked through the implied totals of the logs (FINDINGS.md 3.4)."""
    hidden = arch.hiddenSize or arch.attentionHeads * arch.headDim
    intermediate = arch.intermediateSize or 4 * hidden
    attention = (2 * arch.attentionHeads + 2 * arch.kvHeads) * arch.headDim / tp
    if arch.is_moe and arch.expertsPerToken:
        mlp = arch.expertsPerToken * (3 * intermediate / tp + hidden)
    else:
        mlp = 3 * intermediate / tp
    return tokens * (mlp + 4 * hidden + attention) * 2


def sampler_peak_bytes(request: SizingRequest, limits: Scheduler) -> float:
    """The dummy sampler pass: rows of fp32-and-sorted logits over the vocabulary. Pooling models sample nothing."""
    arch = request.architecture
    if arch.kind == "embedding":
        return 0.0
    rows = min(limits.max_num_seqs, limits.max_num_batched_tokens)
    implementation = request.sampler or request.release.samplerImplementation
    if implementation == "flashinfer-when-installed":
        implementation = "flashinfer"  # the vllm/vllm-openai image ships FlashInfer
    if implementation == "triton" and rows < TRITON_SAMPLER_MIN_ROWS:
        implementation = "pytorch-sort"
    return rows * (arch.vocabSize or 32000) * SAMPLER_BYTES_PER_LOGIT[implementation]


def activation_bytes(request: SizingRequest, limits: Scheduler, tp: int) -> float:
    """torch's peak increase over the profile run: base + encoder profile + the larger of forward and sampler."""
    arch = request.architecture
    encoder = 0.0
    if arch.vision and not request.knobs.language_model_only:
        encoder = ENCODER_PROFILE_DEFAULT_GIB if arch.encoderProfileGiB is None else arch.encoderProfileGiB
    forward = forward_peak_bytes(arch, tp, limits.max_num_batched_tokens)
    return (PROFILE_BASE_GIB + encoder) * GIB + max(forward, sampler_peak_bytes(request, limits))


def non_torch_bytes(request: SizingRequest, tp: int) -> float:
    """Memory outside torch's allocator that the release charges to the budget (NON_TORCH_* above)."""
    snapshot = request.release.memorySnapshot
    if tp == 1:
        gib = NON_TORCH_TP1_GIB
    elif not (request.nvlink and request.knobs.custom_all_reduce):
        gib = NON_TORCH_NO_P2P_GIB
    elif snapshot == "after-distributed-init":
        gib = NON_TORCH_NVLINK_GIB
    else:
        gib = NON_TORCH_NVLINK_NCCL_INIT_GIB
    if snapshot == "whole-device":
        gib += CUDA_CONTEXT_GIB
    return gib * GIB


def cuda_graph_bytes(request: SizingRequest, limits: Scheduler) -> float:
    """The CUDA-graph estimate, where the release takes it from the budget; none when eager or pooling."""
    if not request.release.cudaGraphsInBudget or request.knobs.enforce_eager or request.architecture.kind == "embedding":
        return 0.0
    share = min(2 * limits.max_num_seqs, MAX_CAPTURE_SIZE) / MAX_CAPTURE_SIZE
    state = STATE_GRAPH_AT_MAX_CAPTURE_GIB * share if request.architecture.linearAttention else 0.0
    return (CUDA_GRAPH_BASE_GIB + CUDA_GRAPH_AT_MAX_CAPTURE_GIB * share + state) * GIB


# --------------------------------------------------------------------------------------------- KV cache layout


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
    """Per GPU, summed over the layers whose cache grows with the context (none for an encoder-only model)."""
    if arch.encoderOnly:
        return 0
    return arch.fullAttentionLayers * kv_bytes_per_token_per_layer(arch, tensor_parallel_size, kv_cache_dtype)


def kv_fixed_bytes(arch: Architecture, tensor_parallel_size: int, kv_cache_dtype: str | None, max_model_len: int) -> int:
    """Per GPU, per request, what does not grow with the context: sliding-window or chunked-local layers hold at
    most one window; an encoder-decoder's cross-attention holds the encoder's positions in every decoder layer.
    (vLLM reserves more than this: see kv_layer_types and blocks_per_request.)"""
    per_layer = kv_bytes_per_token_per_layer(arch, tensor_parallel_size, kv_cache_dtype)
    sliding = 0
    if arch.slidingWindowLayers and arch.slidingWindow:
        sliding = arch.slidingWindowLayers * min(arch.slidingWindow, max_model_len) * per_layer
    cross = arch.fullAttentionLayers * (arch.crossAttentionTokens or 0) * per_layer
    return sliding + cross


STATE_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def recurrent_state_bytes(arch: Architecture, tp: int) -> int:
    """One request's state of one recurrent layer on one GPU (mamba_utils.py *_state_shape and *_state_dtype): the conv
    state (kernel - 1 positions of the conv channels, model dtype) and the temporal state (stateDtype)."""
    lin = arch.linearAttention
    if lin is None:
        return 0
    if lin.kind == "gated_delta_net":
        conv_channels = 2 * (lin.numKeyHeads or 0) * (lin.keyHeadDim or 0) + (lin.numValueHeads or 0) * (lin.valueHeadDim or 0)
        temporal = (lin.numValueHeads or 0) // tp * (lin.valueHeadDim or 0) * (lin.keyHeadDim or 0)
    else:  # mamba2: conv over x, B and C; state per head
        conv_channels = (lin.numHeads or 0) * (lin.headDim or 0) + 2 * (lin.nGroups or 0) * (lin.stateSize or 0)
        temporal = (lin.numHeads or 0) // tp * (lin.headDim or 0) * (lin.stateSize or 0)
    return (lin.convKernel - 1) * (conv_channels // tp) * 2 + temporal * STATE_DTYPE_BYTES[lin.stateDtype]


def kv_layer_types(request: SizingRequest, tp: int) -> list[KvLayerType]:
    """The model's KV-cache specs per GPU, as vLLM builds them. A hybrid model's attention block grows to the smallest
    multiple of 16 tokens whose page holds one recurrent state, and the state page is padded to it
    (model_executor/models/config.py HybridAttentionMambaModelConfig at v0.19.0; the Qwen3.5 logs print 784 and 528)."""
    arch = request.architecture
    if arch.encoderOnly:
        return []  # encoder-only attention needs no KV cache (gpu_model_runner.get_kv_cache_spec skips it)
    per_token = kv_bytes_per_token_per_layer(arch, tp, request.kv_cache_dtype)
    state = recurrent_state_bytes(arch, tp)
    block = BLOCK_TOKENS * cdiv(cdiv(state, per_token), BLOCK_TOKENS) if state else BLOCK_TOKENS
    page = block * per_token
    full, sliding = arch.fullAttentionLayers, arch.slidingWindowLayers if arch.slidingWindow else 0
    if request.release.slidingWindowReserve == "none":
        full, sliding = full + sliding, 0  # no sliding-window spec yet: cached as full attention
    types = [KvLayerType("full", full, page, block)] if full else []
    if sliding:
        types.append(KvLayerType("sliding", sliding, page, block, arch.slidingWindow or 0))
    if arch.linearAttention:
        types.append(KvLayerType("state", arch.linearAttention.layers, page, block))
    if arch.crossAttentionTokens:
        types.append(KvLayerType("cross", arch.fullAttentionLayers, page, block))
    return types


def kv_groups(types: list[KvLayerType]) -> tuple[int, list[KvLayerType]]:
    """(layers per group, one entry per KV-cache group): every type splits into groups of the same size, the fewest
    layers of any type, or the most when that is under 1.5x the fewest (kv_cache_utils.py
    _get_kv_cache_groups_uniform_page_size at v0.19.0 L959-1078; kv_cache_planning.py at v0.33.0 L416-556)."""
    if len(types) == 1:
        return types[0].layers, types
    counts = [t.layers for t in types]
    size = max(counts) if max(counts) < 1.5 * min(counts) else min(counts)
    return size, [t for t in types for _ in range(cdiv(t.layers, size))]


def blocks_per_request(kind: KvLayerType, request: SizingRequest, limits: Scheduler, length: int) -> int:
    """Blocks one request of `length` tokens holds in a layer of this type (max_memory_usage_bytes / page, in
    kv_cache_interface.py): every block of full attention; a sliding window plus what is scheduled in flight, +1 for a
    window straddling blocks; one recurrent state (two with prefix caching, mamba_cache_mode 'align'); the encoder
    input's blocks for cross-attention (SchedulerConfig.max_num_encoder_input_tokens = max_num_batched_tokens)."""
    if kind.kind == "full":
        return cdiv(length, kind.block_tokens)
    if kind.kind == "sliding":
        in_flight = limits.max_num_batched_tokens
        if request.release.slidingWindowReserve == "max-in-flight-tokens":
            in_flight *= 2  # two batches in flight under the default async scheduling (VllmConfig.max_in_flight_tokens)
        return cdiv(min(kind.window - 1 + in_flight, length), kind.block_tokens) + 1
    if kind.kind == "state":
        return 2 if request.prefix_caching else 1
    return cdiv(limits.max_num_batched_tokens, kind.block_tokens)


def needed_bytes(types: list[KvLayerType], request: SizingRequest, limits: Scheduler, length: int) -> int:
    """KV memory one request of `length` needs, over every layer (kv_cache_utils.max_memory_usage_bytes)."""
    return sum(t.layers * blocks_per_request(t, request, limits, length) * t.page_bytes for t in types)


def longest_request(types: list[KvLayerType], request: SizingRequest, limits: Scheduler, available: float) -> int:
    """The longest request whose KV cache fits `available` (vLLM's estimate_max_model_len: a binary search), up to
    what the model supports."""
    low, high = 0, max(request.architecture.maxContext, request.max_model_len)
    while low < high:
        middle = (low + high + 1) // 2
        if needed_bytes(types, request, limits, middle) <= available:
            low = middle
        else:
            high = middle - 1
    return low


def kv_report(request: SizingRequest, limits: Scheduler, tp: int, available: float) -> KvReport:
    """vLLM's block arithmetic on the available memory (kv_cache_utils.py get_kv_cache_config_from_groups,
    get_max_concurrency_for_kv_cache_config, and the `GPU KV cache size` report of the release)."""
    types = kv_layer_types(request, tp)
    length = request.max_model_len
    if not types:
        return KvReport(0, 0.0, available >= 0, request.architecture.maxContext)
    group_size, groups = kv_groups(types)
    page = types[0].page_bytes
    blocks = max(0, int(available // (page * group_size)))
    per_request = sum(blocks_per_request(g, request, limits, length) for g in groups)
    concurrency = blocks / per_request
    if request.release.kvCacheTokens == "concurrency-times-length":
        tokens = int(concurrency * length)
    else:
        tokens = blocks // len(groups) * min(t.block_tokens for t in types)
    fits = available > 0 and needed_bytes(types, request, limits, length) <= available
    return KvReport(tokens, concurrency, fits, longest_request(types, request, limits, max(0.0, available)))


# --------------------------------------------------------------------------------------------- the whole picture


def size(request: SizingRequest, tensor_parallel_size: int) -> Sizing:
    """The per-GPU memory picture of one replica of `request` at one tensor parallel size."""
    arch, gpu, tp = request.architecture, request.gpu, tensor_parallel_size
    limits = scheduler(request)
    layout = weight_layout(arch, request.quantization, request.checkpoint_weights)
    weights = weight_bytes_per_gpu(arch, layout, tp, gpu)
    activation, non_torch = activation_bytes(request, limits, tp), non_torch_bytes(request, tp)
    graphs = cuda_graph_bytes(request, limits)
    total = gpu.cuda_memory_bytes
    budget = total * limits.gpu_memory_utilization
    available = budget - weights - activation - non_torch - graphs
    kv_bytes = request.knobs.kv_cache_memory_bytes
    if kv_bytes is not None:
        # vLLM takes the KV size as given and skips the utilization budget; it still has to be on the GPU.
        available = min(float(kv_bytes), total - weights - activation - non_torch - graphs)
        budget = weights + activation + non_torch + graphs + kv_bytes
    report = kv_report(request, limits, tp, available)
    return Sizing(
        tensor_parallel_size=tp, gpu_memory_gib=total / GIB, budget_gib=budget / GIB,
        weights_gib=weight_bytes_per_gpu(arch, layout, 1, gpu) / GIB, weights_per_gpu_gib=weights / GIB,
        activation_gib=activation / GIB, non_torch_gib=non_torch / GIB, cuda_graph_gib=graphs / GIB,
        kv_available_gib=max(0.0, available) / GIB,
        kv_bytes_per_token=kv_bytes_per_token(arch, tp, request.kv_cache_dtype),
        kv_fixed_bytes=kv_fixed_bytes(arch, tp, request.kv_cache_dtype, request.max_model_len),
        kv_cache_tokens=report.tokens, max_concurrency=report.max_concurrency,
        max_context_that_fits=report.max_context_that_fits, max_model_len=request.max_model_len, fits=report.fits,
        max_num_seqs=limits.max_num_seqs, max_num_batched_tokens=limits.max_num_batched_tokens,
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
