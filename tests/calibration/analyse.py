"""Calibration analysis for issue 10: the planner's KV-cache arithmetic against published vLLM start-up logs.

A script, not a test:   .venv/bin/python tests/calibration/analyse.py [--detail] [--only ID]

For each entry of tests/calibration/logs.yaml it computes
  * what the planner predicts (planner.sizing.size, through tests/test_calibration.py `plan`, the calibration test's
    own mapping of a log onto the planner),
  * what the PROPOSED memory model below predicts (`proposed()`, self-contained, see FINDINGS.md; the prototype the
    planner's sizing was ported from, kept for its ablations),
  * vLLM's own token / concurrency arithmetic replayed on the PRINTED "Available KV cache memory"
    (`vllm_kv_report`), which checks the KV-cache layout alone, apart from the memory budget,
and prints predicted vs printed KV tokens, error %, and each term (weights, activation + non-torch, graphs,
budget) predicted vs printed or implied by the printed lines.

Inputs the planner is given for a log: the model id, GPU model and count, tensor parallel size, max_model_len,
vLLM release, quantization, kv-cache dtype, gpu_memory_utilization / max_num_seqs / max_num_batched_tokens /
enforce_eager when the log shows the user set them. Never the printed memory figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

# PLANNER_ROOT=<another checkout> compares that checkout's planner (e.g. main after a refactor).
ROOT = Path(os.environ.get("PLANNER_ROOT") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT))

from planner import catalogs  # noqa: E402
from tests import test_calibration  # noqa: E402

HERE = Path(__file__).resolve().parent
GIB = 1024**3

# ----------------------------------------------------------------------------------------------- data


def load() -> tuple[list[dict], dict[str, dict]]:
    return yaml.safe_load((HERE / "logs.yaml").read_text()), {}


# Architecture fields the prototype reads as a models.yaml entry (they are catalog fields since issue 10).
EXTRA_FIELDS = ("tieWordEmbeddings", "visionParametersB", "encoderProfileGiB", "qLoraRank", "denseLayers")


def architecture(model_id: str, models: dict[str, dict]) -> tuple[catalogs.Architecture, dict, str]:
    """(Architecture, its sizing extras as a dict, where it came from)."""
    found, how = catalogs.architectures().find(model_id)
    if found is None:
        raise SystemExit(f"{model_id}: not in planner/data/models")
    extra = {name: getattr(found, name) for name in EXTRA_FIELDS}
    if found.linearAttention is not None:
        extra["linearAttention"] = dataclasses.asdict(found.linearAttention)
    return found, extra, "catalog " + found.key + (f" ({how})" if how else "")


# A log whose version string is not a release: the one its line numbers match (see its notes in logs.yaml).
VERSION_OVERRIDES = {"h200-kimi-k2-thinking-tp8": "0.11.2"}


def log_version(log: dict) -> tuple[int, int, int]:
    return version_tuple(VERSION_OVERRIDES.get(log["id"], log["vllmVersion"]))


def version_tuple(text: str) -> tuple[int, int, int]:
    """'0.10.1.1' -> (0, 10, 1); '0.26.1rc1.dev156+g..' -> (0, 26, 1); '0.11.x' -> (0, 11, 0)."""
    parts = re.findall(r"\d+", text.split("rc")[0].split("+")[0])[:3]
    while len(parts) < 3:
        parts.append("0")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


# GPU memory as CUDA reports it (torch.cuda.mem_get_info()[1]), GiB. This is what vLLM multiplies by
# gpu_memory_utilization; EC2 / spec-sheet figures (planner/data/instances.yaml memoryMiB) are larger.
# Evidence in FINDINGS.md, "GPU memory CUDA reports".
CUDA_TOTAL_GIB = {
    "H100": 79.19, "H200": 139.81, "B200": 178.35, "A100-80GB": 79.25, "A100-40GB": 39.39, "L40S": 44.39,
    "L4": 22.06, "A10G": 22.07, "RTX 3090": 23.56, "RTX 3090 (WSL)": 24.0, "RTX 4090": 23.65,
    "RTX A5000": 23.57, "RTX PRO 6000": 94.97,
}
# GPUs the planner's catalog lacks, at their nominal size (what an instances.yaml entry would say).
EXTRA_GPU_MIB = {"RTX 3090": 24576, "RTX 4090": 24576, "RTX A5000": 24576, "RTX PRO 6000": 98304}
# Compute capability decides vLLM's MXFP4 kernel (Marlin below 9.0) and the FlashInfer sampler's support.
COMPUTE_CAPABILITY = {"H100": 9.0, "H200": 9.0, "B200": 10.0, "A100-80GB": 8.0, "A100-40GB": 8.0, "L40S": 8.9,
                      "L4": 8.9, "A10G": 8.6, "RTX 3090": 8.6, "RTX 4090": 8.9, "RTX A5000": 8.6, "RTX PRO 6000": 12.0}


def gpu_key(log: dict) -> str:
    name = log["gpu"]["name"]
    if "WSL" in log.get("notes", "") or "WSL" in log["gpu"].get("evidence", ""):
        if name.startswith("RTX 3090"):
            return "RTX 3090 (WSL)"
    for key in sorted(CUDA_TOTAL_GIB, key=len, reverse=True):
        if name.startswith(key):
            return key
    raise SystemExit(f"unknown GPU {name}")


def planner_gpu(key: str) -> catalogs.Gpu:
    return test_calibration.gpus()[key if key in test_calibration.gpus() else key.replace(" (WSL)", "")]


def weight_format(log: dict, arch: catalogs.Architecture) -> str:
    """How the weights are held: bf16 | fp8 | w4a16 | awq | mxfp4 | int4-experts (Kimi)."""
    q = log["config"].get("quantization")
    mid = log["model"].lower()
    if arch.nativeDtype == "mxfp4" or q == "mxfp4":
        return "mxfp4"
    if arch.nativeDtype == "int4":
        return "int4-experts"
    if q in ("fp8", "fbgemm_fp8") or "fp8" in mid:
        return "fp8"
    if q in ("awq", "awq_marlin", "gptq", "gptq_marlin") or "awq" in mid or "gptq" in mid or "w4a16" in mid:
        return "w4a16"
    return "bf16"


# ----------------------------------------------------------------------------------------------- vLLM KV report


@dataclass
class KvType:
    kind: str  # full | sliding | mamba
    layers: int
    page: int  # bytes per block per layer (after vLLM's page unification)
    block: int  # tokens per block
    window: int | None = None


def kv_types(arch: catalogs.Architecture, extra: dict, tp: int, kv_bytes: int) -> list[KvType]:
    """Per-GPU KV cache specs as vLLM builds them (v1/kv_cache_interface.py)."""
    if arch.attention == "mla" and arch.kvLoraRank:
        per_token_layer = (arch.kvLoraRank + (arch.qkRopeHeadDim or 0)) * kv_bytes  # one latent, every GPU
    else:
        per_token_layer = 2 * max(1, arch.kvHeads // tp) * arch.headDim * kv_bytes
    block = 16
    lin = extra.get("linearAttention")
    mamba_page = 0
    if lin:
        # Gated DeltaNet state per layer per GPU: fp32 recurrent state + conv state in the model dtype
        # (model_executor/layers/mamba/mamba_utils.py gated_delta_net_state_shape / _dtype).
        ssm = (lin["numValueHeads"] // tp) * lin["keyHeadDim"] * lin["valueHeadDim"] * 4
        conv_dim = (2 * lin["numKeyHeads"] * lin["keyHeadDim"] + lin["numValueHeads"] * lin["valueHeadDim"]) // tp
        conv = (lin["convKernel"] - 1) * conv_dim * 2
        mamba_page = ssm + conv
        # vllm/model_executor/models/config.py HybridAttentionMambaModelConfig: the attention block grows
        # to the smallest multiple of 16 whose page holds one mamba state; the mamba page is then padded.
        block = 16 * math.ceil(math.ceil(mamba_page / per_token_layer) / 16)
    page = block * per_token_layer
    out = []
    full = arch.fullAttentionLayers
    if arch.attention == "sliding" and not arch.fullAttentionLayers and not arch.slidingWindowLayers:
        full = arch.layers
    if full:
        out.append(KvType("full", full, page, block))
    if arch.slidingWindowLayers and arch.slidingWindow:
        out.append(KvType("sliding", arch.slidingWindowLayers, page, block, arch.slidingWindow))
    if lin:
        out.append(KvType("mamba", lin["layers"], page, block))
    return out


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def vllm_kv_report(types: list[KvType], available: float, max_model_len: int, mnbt: int) -> tuple[int, float]:
    """('GPU KV cache size' tokens, 'Maximum concurrency') exactly as vLLM 0.9.2-0.19 computes them
    (v1/core/kv_cache_utils.py _get_kv_cache_groups_uniform_page_size, get_kv_cache_config_from_groups,
    _report_kv_cache_config, get_max_concurrency_for_kv_cache_config)."""
    if len(types) == 1:
        group_size, groups = types[0].layers, [types[0]]
    else:
        counts = [t.layers for t in types]
        group_size = min(counts)
        if max(counts) < 1.5 * min(counts):
            group_size = max(counts)
        groups = [t for t in types for _ in range(cdiv(t.layers, group_size))]
    page = types[0].page
    block = min(t.block for t in types)
    num_blocks = max(0, int(available // page // group_size))
    tokens = num_blocks // len(groups) * block

    def blocks_per_request(t: KvType) -> int:
        if t.kind == "full":
            return cdiv(max_model_len, t.block)
        if t.kind == "sliding":
            return cdiv(min(t.window - 1 + mnbt, max_model_len), t.block) + 1
        return 1  # mamba: one state page per request (no speculative decoding)

    per_request = sum(blocks_per_request(t) for t in groups)
    return tokens, num_blocks / per_request


# ----------------------------------------------------------------------------------------------- planner


def current(log: dict, arch, key: str, fmt: str) -> dict:
    planned = test_calibration.plan(log).sizing
    return {"release": test_calibration.release_of(log).version, "tokens": planned.kv_cache_tokens,
            "concurrency": planned.max_concurrency, "avail": planned.kv_available_gib,
            "weights": planned.weights_per_gpu_gib, "runtime": planned.runtime_gib, "budget": planned.budget_gib,
            "total": planned.gpu_memory_gib}


# ----------------------------------------------------------------------------------------------- proposed model
# Self-contained prototype of the memory model FINDINGS.md proposes; the lead ports it into planner/sizing.py.
# Every constant carries the source it was read from or the logs it was fitted on.

# Bytes per parameter of the quantized part of the weights (the rest stays 16-bit, see weights_per_gpu).
QUANT_BYTES = {
    "bf16": 2.0,
    "fp8": 1.0,  # fp8 e4m3 + one fp32 scale per output channel / 128x128 block: < 0.1 % more
    "w4a16": 0.5 + 2 / 128 + 0.5 / 128,  # AWQ / compressed-tensors W4A16 asym: int4 + fp16 scale + 4-bit zero per 128
    "mxfp4": 0.5 + 1 / 32,  # e2m1 + one e8m0 scale per 32 (OCP MX v1.0)
    "int4-experts": 0.5 + 2 / 32,  # Kimi-K2-Thinking: compressed-tensors int4 group 32 with bf16 scales
}
# vLLM's dummy sampler run (gpu_model_runner._dummy_sampler_run) over max_num_seqs rows of logits with
# top-k and top-p set: bytes per logit at the peak, by implementation (fitted, FINDINGS "Sampler").
SAMPLER_BYTES = {"torch": 35.0, "flashinfer": 10.0, "triton": 6.0}
PROFILE_BASE_GIB = 0.12  # persistent buffers + allocator slack of the profile run (fitted)
NON_TORCH_GIB = {"tp1": 0.10, "tp_no_p2p": 0.15, "tp_p2p_v010": 2.70, "tp_p2p_v011": 0.25}
ENCODER_DEFAULT_GIB = 1.0
# `--ablate NAME` turns one proposed change back off, to show what each one is worth (see ABLATIONS).
ABLATE: set[str] = set()
ABLATIONS = {
    "ec2_total": "GPU memory from instances.yaml (EC2 / spec sheet) instead of what CUDA reports",
    "sampler16": "sampler peak 16 B per logit whatever the release (the planner's constant)",
    "no_replicated": "no replicated MLA q_a/kv_a projections and MoE routers under TP",
    "no_marlin_pad": "no MXFP4 Marlin padding on compute capability < 9.0",
    "no_encoder": "no multimodal encoder profile term",
    "no_nccl_v010": "no NCCL charge at TP>=2 with P2P before v0.11 (0.25 GiB instead of 2.7)",
    "no_graph_estimate": "no CUDA-graph estimate from v0.21",
}


def sampler_impl(v: tuple[int, int, int], log: dict) -> str:
    """Which top-k/top-p implementation the dummy sampler run uses (v1/sample/ops/topk_topp_sampler.py)."""
    lines = "\n".join(log["lines"])
    if v >= (0, 22, 0):
        return "flashinfer"  # VLLM_USE_FLASHINFER_SAMPLER defaults to True (envs.py v0.22.1)
    if v >= (0, 17, 0):
        return "triton"  # apply_top_k_top_p_triton for batches >= 8 (v0.17.1; absent in v0.15.1)
    if v >= (0, 11, 1):
        return "torch"  # FlashInfer sampler opt-in (v0.12.0 source; the 0.11.2 log in the set agrees)
    # v0.10.x - v0.11.0: FlashInfer whenever the package is installed (the vllm/vllm-openai image has it).
    if "FlashInfer is not available" in lines or "FlashInfer i" in lines and "Using FlashInfer" not in lines:
        return "torch"
    return "flashinfer"


def defaults(v: tuple[int, int, int], total_gib: float, gpu: str) -> tuple[float, int, int]:
    """(gpu_memory_utilization, max_num_batched_tokens, max_num_seqs) of the OpenAI server
    (config/cache.py; engine/arg_utils.py get_batch_defaults)."""
    util = 0.92 if v >= (0, 21, 0) else 0.9
    large = total_gib >= 70 and "A100" not in gpu
    return util, (8192 if large else 2048), (1024 if large else 256)


def weights_per_gpu(arch, extra: dict, fmt: str, tp: int, cc: float) -> float:
    """GiB of weights one GPU holds."""
    hidden, vocab = arch.hiddenSize or 0, arch.vocabSize or 0
    emb = vocab * hidden * (1 if extra.get("tieWordEmbeddings") else 2)
    vision = (extra.get("visionParametersB") or 0) * 1e9
    total = arch.parametersB * 1e9
    if fmt == "mxfp4":
        # gpt-oss: experts in MXFP4, everything else bf16. Marlin (compute capability < 9.0) pads each expert's
        # intermediate per GPU to 128 and hidden to 256 (quantization/mxfp4.py v0.10.1.1 L154-188).
        inter, experts = arch.intermediateSize, arch.experts
        expert_params = arch.layers * experts * 3 * hidden * inter
        rest = total - expert_params
        if cc < 9.0 and "no_marlin_pad" not in ABLATE:
            i_pad = cdiv(inter // tp, 128) * 128
            h_pad = cdiv(hidden, 256) * 256
            per_gpu_experts = arch.layers * experts * 3 * h_pad * i_pad
        else:
            per_gpu_experts = expert_params / tp
        return (per_gpu_experts * QUANT_BYTES["mxfp4"] + rest * 2 / tp) / GIB
    if fmt == "int4-experts":
        routed = (arch.layers - (extra.get("denseLayers") or 0)) * arch.experts * 3 * hidden * arch.intermediateSize
        return (routed * QUANT_BYTES[fmt] + (total - routed) * 2) / tp / GIB + replicated_extra_gib(arch, extra, tp)
    body = total - emb - vision
    return (body * QUANT_BYTES[fmt] + (emb + vision) * 2) / tp / GIB + replicated_extra_gib(arch, extra, tp)


def replicated_extra_gib(arch, extra: dict, tp: int) -> float:
    """Layers vLLM does not shard under tensor parallelism, as the extra (1 - 1/tp) copy each GPU holds, 16-bit:
    MLA's q_a / kv_a projections (models/deepseek_v2.py v0.11.0: fused_qkv_a_proj with disable_tp=True,
    kv_a_proj_with_mqa ReplicatedLinear) and MoE routers (DeepseekV2MoE / Qwen3MoE gate = ReplicatedLinear)."""
    if tp == 1 or "no_replicated" in ABLATE:
        return 0.0
    hidden = arch.hiddenSize or 0
    params = 0
    if arch.attention == "mla" and arch.kvLoraRank:
        params += arch.layers * hidden * ((extra.get("qLoraRank") or 0) + arch.kvLoraRank + (arch.qkRopeHeadDim or 0))
    if arch.is_moe:
        params += (arch.layers - (extra.get("denseLayers") or 0)) * arch.experts * hidden
    return params * 2 * (1 - 1 / tp) / GIB


def forward_peak_gib(arch, extra: dict, tp: int, tokens: int) -> float:
    """Activation peak of the profile forward pass over max_num_batched_tokens tokens (per GPU).
    Dense MLP: gate_up output (2 I/tp) + activation output (I/tp); MoE (fused_moe intermediate caches 1-3):
    top_k x (2 I/tp + I/tp + H); plus ~4 hidden-size streams (residual, norm output, attention output)."""
    h = arch.hiddenSize or arch.attentionHeads * arch.headDim
    inter = arch.intermediateSize or 4 * h
    attention = (2 * arch.attentionHeads + 2 * arch.kvHeads) * arch.headDim / tp  # q, k, v and attention output
    if arch.is_moe and arch.expertsPerToken:
        per_token = arch.expertsPerToken * (3 * inter / tp + h) + 4 * h + attention
    else:
        per_token = 3 * inter / tp + 4 * h + attention
    return tokens * per_token * 2 / GIB


def cuda_graph_estimate_gib(v, eager: bool, max_num_seqs: int, lin: dict | None) -> float:
    """v0.21+: 'Estimated CUDA graph memory' is taken from the KV budget (gpu_worker.py
    determine_available_memory; VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 by default since v0.21)."""
    if eager or v < (0, 21, 0):
        return 0.0
    largest = min(2 * max_num_seqs, 512)  # config/vllm.py: max_cudagraph_capture_size = min(2 max_num_seqs, 512)
    # Fitted on the estimates logged in the set: 0.14-0.15 GiB for 32-128 captured sizes, 0.51 GiB at 512 (Phi-3);
    # a Gated DeltaNet hybrid logged 3.65 GiB at 512 (Qwen3.5-9B, TP 4).
    return 0.12 + 0.4 * largest / 512 + (3.1 * largest / 512 if lin else 0.0)


def non_torch_gib(v, tp: int, log: dict) -> float:
    """Memory outside torch's allocator charged to the budget (mem_utils.memory_profiling non_torch_increase).
    Up to v0.10 the baseline snapshot is taken BEFORE init_worker_distributed_environment (gpu_worker.py
    init_device), so NCCL communicators and custom all-reduce buffers are charged; from v0.11 it is taken after."""
    if tp == 1:
        return NON_TORCH_GIB["tp1"]
    lines = "\n".join(log["lines"])
    p2p = "Custom allreduce is disabled" not in lines and not log["config"].get("disableCustomAllReduce")
    if not p2p:
        return NON_TORCH_GIB["tp_no_p2p"]
    if "no_nccl_v010" in ABLATE:
        return NON_TORCH_GIB["tp_p2p_v011"]
    return NON_TORCH_GIB["tp_p2p_v010"] if v < (0, 11, 0) else NON_TORCH_GIB["tp_p2p_v011"]


def encoder_profile_gib(arch, extra: dict, log: dict) -> float:
    """Multimodal models run the vision encoder on one dummy item of the largest size first and keep its
    outputs while the decoder pass and the sampler run (gpu_model_runner.profile_run), so this adds to the
    activation peak. Measured per model (catalog encoderProfileGiB, from the logs in the set); vLLM skips
    it when the server runs text-only (--limit-mm-per-prompt all 0 / --language-model-only)."""
    if not arch.vision or log["config"].get("languageModelOnly"):
        return 0.0
    return extra.get("encoderProfileGiB") or ENCODER_DEFAULT_GIB


def proposed(log: dict, arch, extra: dict, key: str, fmt: str) -> dict:
    cfg = log["config"]
    v = log_version(log)
    total = CUDA_TOTAL_GIB[key]
    gpu = planner_gpu(key)
    if "ec2_total" in ABLATE:
        total = gpu.memory_bytes / GIB
    util0, mnbt0, seqs0 = defaults(v, total, key)
    util = cfg.get("gpuMemoryUtilization") or util0
    seqs = cfg.get("maxNumSeqs") or seqs0
    max_len = cfg.get("maxModelLen") or arch.maxContext
    mnbt = cfg.get("maxNumBatchedTokens") or min(mnbt0, seqs * max_len)
    tp = cfg.get("tensorParallelSize", 1)
    eager = bool(cfg.get("enforceEager"))
    kv_bytes = 1 if str(cfg.get("kvCacheDtype", "auto")).startswith("fp8") else 2

    cc = COMPUTE_CAPABILITY[key.replace(" (WSL)", "")]
    weights = weights_per_gpu(arch, extra, fmt, tp, cc)
    impl = sampler_impl(v, log)
    rows = min(seqs, mnbt)
    sampler = rows * (arch.vocabSize or 32000) * SAMPLER_BYTES[impl] / GIB
    if impl == "triton" and rows < 8:
        sampler = rows * (arch.vocabSize or 32000) * SAMPLER_BYTES["torch"] / GIB
    if "sampler16" in ABLATE:
        sampler = rows * (arch.vocabSize or 32000) * 16 / GIB
    fwd = forward_peak_gib(arch, extra, tp, mnbt)
    enc = 0.0 if "no_encoder" in ABLATE else encoder_profile_gib(arch, extra, log)
    act = PROFILE_BASE_GIB + enc + max(fwd, sampler)
    nt = non_torch_gib(v, tp, log)
    graphs = 0.0 if "no_graph_estimate" in ABLATE else cuda_graph_estimate_gib(v, eager, seqs, extra.get("linearAttention"))
    budget = total * util
    avail = budget - weights - act - nt - graphs
    types = kv_types(arch, extra, tp, kv_bytes)
    tokens, conc = vllm_kv_report(types, max(avail, 0) * GIB, max_len, mnbt)
    return {"total": total, "budget": budget, "weights": weights, "act": act, "nontorch": nt, "graphs": graphs,
            "avail": avail, "tokens": tokens, "concurrency": conc, "sampler": impl, "mnbt": mnbt, "seqs": seqs,
            "util": util, "types": types, "fwd": fwd, "samplerGiB": sampler, "enc": enc}


# ----------------------------------------------------------------------------------------------- report


def pct(pred: float, ref: float) -> float:
    return 100.0 * (pred - ref) / ref if ref else float("nan")


def distribution(errors: list[float]) -> str:
    n = len(errors)
    return ", ".join(f"within {t}%: {sum(abs(e) <= t for e in errors)}/{n}" for t in (2, 5, 10))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detail", action="store_true", help="print every term of both models per log")
    ap.add_argument("--only", help="one log id")
    ap.add_argument("--ablations", action="store_true", help="error distribution with each proposed change undone")
    args = ap.parse_args()
    if args.ablations:
        ablations()
        return
    logs, models = load()
    rows, cur_err, new_err, replay_err = [], [], [], []
    for log in logs:
        if args.only and log["id"] != args.only:
            continue
        arch, extra, origin = architecture(log["model"], models)
        key = gpu_key(log)
        fmt = weight_format(log, arch)
        pr = log["printed"]
        cur = current(log, arch, key, fmt)
        new = proposed(log, arch, extra, key, fmt)
        max_len = log["config"].get("maxModelLen") or arch.maxContext
        replay_tokens, replay_conc = vllm_kv_report(new["types"], pr["availableKvGiB"] * GIB, max_len, new["mnbt"])
        ref = pr["kvCacheTokens"]
        cur_err.append(pct(cur["tokens"], ref))
        new_err.append(pct(new["tokens"], ref))
        replay_err.append(pct(replay_tokens, ref))
        rows.append((log, arch, origin, key, fmt, cur, new, replay_tokens, replay_conc))

    print(f"{'log':44s} {'printed':>10s} | {'planner':>10s} {'err%':>7s} | {'proposed':>10s} {'err%':>7s} | "
          f"{'replay':>8s} | conc printed/cur/prop")
    for log, arch, origin, key, fmt, cur, new, rt, rc in rows:
        pr = log["printed"]
        ref = pr["kvCacheTokens"]
        conc = pr.get("maxConcurrency")
        print(f"{log['id']:44s} {ref:10,d} | {cur['tokens']:10,d} {pct(cur['tokens'], ref):+7.1f} | "
              f"{new['tokens']:10,d} {pct(new['tokens'], ref):+7.1f} | {pct(rt, ref):+7.2f}% | "
              f"{conc if conc is not None else '-'} / {cur['concurrency']:.2f} / {new['concurrency']:.2f}")
    print()
    print("KV tokens, planner  :", distribution(cur_err))
    print("KV tokens, proposed model  :", distribution(new_err))
    print("vLLM report replayed on the printed available memory:", distribution(replay_err),
          f"(max |err| {max(abs(e) for e in replay_err):.2f}%)")
    print()
    print("Terms per GPU, GiB (printed or implied by the printed lines; '-' = not printed). "
          "act+nt implied = total x util - available - weights - CUDA-graph estimate (v0.21+).")
    print(f"{'log':44s} {'weights p/c/n':>20s} | {'act+nt impl/cur/new':>20s} | {'graphs p/new':>11s} | "
          f"{'budget cur/new':>14s} | {'avail p/c/n':>20s}")
    for log, arch, origin, key, fmt, cur, new, rt, rc in rows:
        pr = log["printed"]
        w = pr.get("weightsGiB")
        ge = pr.get("cudaGraphEstimateGiB") if log_version(log) >= (0, 21, 0) else 0.0
        implied = (new["budget"] - pr["availableKvGiB"] - w - (ge or 0)) if w is not None else None
        fmt_w = f"{w:.2f}" if w is not None else "-"
        fmt_i = f"{implied:.2f}" if implied is not None else "-"
        print(f"{log['id']:44s} {fmt_w:>6s}/{cur['weights']:6.2f}/{new['weights']:6.2f} | "
              f"{fmt_i:>6s}/{cur['runtime']:6.2f}/{new['act'] + new['nontorch']:6.2f} | "
              f"{(ge if ge else 0):5.2f}/{new['graphs']:5.2f} | {cur['budget']:6.2f}/{new['budget']:6.2f} | "
              f"{pr['availableKvGiB']:6.2f}/{cur['avail']:6.2f}/{new['avail']:6.2f}")
        if args.detail:
            print(f"    {origin}; gpu {key}; format {fmt}; release(cur) {cur['release']}; sampler {new['sampler']} "
                  f"rows {min(new['seqs'], new['mnbt'])} -> {new['samplerGiB']:.2f}; fwd@{new['mnbt']} {new['fwd']:.2f}; "
                  f"enc {new['enc']:.2f}; non-torch {new['nontorch']:.2f}; util {new['util']}; "
                  f"kv {[(t.kind, t.layers, t.page, t.block) for t in new['types']]}")


def ablations() -> None:
    logs, models = load()
    resolved = []
    for log in logs:
        arch, extra, _ = architecture(log["model"], models)
        key = gpu_key(log)
        resolved.append((log, arch, extra, key, weight_format(log, arch)))

    def errors() -> list[tuple[float, str]]:
        out = []
        for log, arch, extra, key, fmt in resolved:
            tokens = proposed(log, arch, extra, key, fmt)["tokens"]
            out.append((pct(tokens, log["printed"]["kvCacheTokens"]), log["id"]))
        return out

    base = errors()
    print(f"{'proposed model':18s} {distribution([e for e, _ in base])}")
    for name, what in ABLATIONS.items():
        ABLATE.clear()
        ABLATE.add(name)
        errs = errors()
        moved = sorted(((abs(e) - abs(b), i, e) for (e, i), (b, _) in zip(errs, base) if abs(e - b) > 0.05), reverse=True)
        print(f"without {name:18s} {distribution([e for e, _ in errs])}  ({what})")
        for delta, i, e in moved[:4]:
            print(f"    {i:44s} {e:+6.1f}%")
    ABLATE.clear()


if __name__ == "__main__":
    main()
