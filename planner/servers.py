"""Decide one vLLM server per self-hosted model: context, sizing, parsers, resources and the command line.

Each decision is a small function that returns its value and its findings; `plan_server` calls them in order
on a resolved model (planner/resolve.py) and assembles the `PlannedServer` the components render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from planner import catalogs
from planner.catalogs import Architecture, Gpu, InstanceType, VllmRelease, describe_versions
from planner.config import Images, ModelEntry, VllmSpec
from planner.findings import Finding, error, warning
from planner.images import image_ref
from planner.names import GPU_TAINT_KEY, POOL_LABEL, PORT, labels, selector_labels, service_name, service_url
from planner.resolve import ResolvedModel, ResolvedServer, close_match
from planner.scheduling import PoolNode, Resources, check_replica_fits, replica_request
from planner.weights import WeightsPlan, decide_weights
from planner.sizing import Sizing, SizingRequest, VllmKnobs, size, smallest_fitting, valid_tensor_parallel_sizes
from planner.rollout import base_name, generation_of, rollout_findings, server_name
from planner.vllm_args import DERIVED_FLAGS, ArgsInput, extra_arg_value, flag_name, vllm_args

# Fields a component renders but a reader of `plan --json` does not need.
RENDER_ONLY = ("labels", "selector", "nodeSelector", "tolerations", "port", "request", "podAnnotations", "weights")


@dataclass
class PlannedServer:
    name: str  # Kubernetes name of the Deployment and Service
    litellmModelName: str
    model: str  # Hugging Face id
    pool: str
    instanceType: str
    gpu: str
    gpuMemoryGiB: float
    gpusPerReplica: int
    tensorParallelSize: int
    maxModelLen: int
    maxContextThatFits: int
    kvCacheTokens: int  # what vLLM prints as `GPU KV cache size: N tokens`
    maxConcurrency: float  # what vLLM prints as `Maximum concurrency for maxModelLen tokens per request: Xx`
    fits: bool
    weightsGiB: float
    kvBytesPerToken: int
    args: list[str]
    image: str
    replicas: int
    namespace: str
    url: str
    architecture: str
    budgetGiB: float
    runtimeGiB: float
    kvCacheGiB: float
    cacheVolumeGiB: int
    weightsCache: str  # nvme: an emptyDir on the node's instance store; ebs: a claim per replica from storageClass
    storageClass: str | None
    diskRequestGiB: int  # ephemeral-storage request per replica (the NVMe cache and the container's writable layer)
    cpuRequest: int  # cores per replica
    memoryRequestGiB: int  # per replica
    shmGiB: int  # /dev/shm (NCCL and the tokenizer workers use it)
    startupBudgetSeconds: int  # download + load before /health answers
    trustRemoteCode: bool
    toolCallParser: str | None
    reasoningParser: str | None
    # What the components render: the one label set, the pods' selector, their node and taint.
    labels: dict[str, str] = field(default_factory=dict)
    selector: dict[str, str] = field(default_factory=dict)
    nodeSelector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    port: int = PORT  # vLLM's --port, the container's and the Service's port
    request: Resources = field(default_factory=Resources)  # one replica's requests, as the scheduler sees them
    podAnnotations: dict[str, str] = field(default_factory=dict)
    # Rollouts (planner/rollout.py): the generation is a digest of what the pods run; with blue-green it is part of
    # every name, so a change brings up a new server beside the old one.
    rollout: str = "blue-green"
    generation: str = ""
    baseName: str = ""  # the name without the generation: what the Kubernetes names derive from
    weights: WeightsPlan | None = None  # where the weights come from (planner/weights.py)

    @property
    def env(self) -> dict[str, str]:
        """Plain environment of the vLLM container: what its weights source needs."""
        return dict(self.weights.env) if self.weights else {}

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in RENDER_ONLY}
        for key in ("gpuMemoryGiB", "weightsGiB", "budgetGiB", "runtimeGiB", "kvCacheGiB", "maxConcurrency"):
            out[key] = round(out[key], 2)
        return out


# Share of a node's CPU and memory a replica may request per GPU it uses: the rest is for the kubelet, the
# device plugin, CNI and logging daemons. planner/scheduling.py checks the result against EKS's published
# reservations for every instance type (tests/test_scheduling.py: it fits each one in the catalog).
NODE_SHARE = 0.8
# Startup: the probe's budget is decided with the weights' source (planner/weights.py startup_budget, figures in
# planner/data/coldstart.yaml); the startup probe, not the liveness probe, guards this window.
# The GPU pools' taint, tolerated by every pod that runs there.
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def replica_resources(instance: InstanceType, gpus_per_replica: int) -> tuple[int, int, int]:
    """(cpu cores, memory GiB, /dev/shm GiB) for one replica."""
    share = gpus_per_replica / instance.gpus
    cpu = max(1, int(instance.vcpus * NODE_SHARE * share))
    memory = max(4, int(instance.memoryGiB * NODE_SHARE * share))
    shm = max(1, min(memory // 4, 16 * gpus_per_replica))
    return cpu, memory, shm


def cache_volume_gib(weights_gib: float) -> int:
    """The model cache: the weights and 20% for the tokenizer, config and partial downloads, in tens of GiB."""
    return max(10, int(weights_gib * 1.2 + 9) // 10 * 10)


# The Cluster Autoscaler keeps a node whose pods use local volumes unless told they may go (the weights cache is
# re-downloaded by the replacement pod): annotate which volume (FAQ "Pods with local storage").
SAFE_TO_EVICT_LOCAL = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"


@dataclass(frozen=True)
class ServerContext:
    """What a server is decided with besides its model: its pool's nodes, the stack's mirror and autoscaler."""

    node: PoolNode | None
    images: Images
    autoscaler: str = "none"
    region: str | None = None  # the stack's aws:region (an S3 weights prefix is read there)
    stack: str = ""  # labels the server's objects, so the preflight finds this stack's running servers


@dataclass(frozen=True)
class ReplicaResources:
    cpu: int  # cores
    memoryGiB: int
    shmGiB: int
    cacheGiB: int
    diskGiB: int  # ephemeral-storage request
    request: Resources


def decide_resources(subject: str, instance: InstanceType, gpus: int, weights_gib: float,
                     node: PoolNode | None) -> tuple[ReplicaResources, list[Finding]]:
    """A replica's requests (its share of the node) and the weights cache, checked against what its node leaves."""
    cpu, memory, shm = replica_resources(instance, gpus)
    cache = cache_volume_gib(weights_gib)
    writable = catalogs.eks().writableLayerGiB
    disk = cache + writable if node is None or node.cache == "nvme" else writable
    request = replica_request(gpus, cpu, memory, disk)
    findings = check_replica_fits(subject, request, node.shape, shm) if node and node.shape else []
    return ReplicaResources(cpu, memory, shm, cache, disk, request), findings


# --------------------------------------------------------------------------------------------- checks


# The metadataType each kind of model serves, and an example to serve instead (a model of the wrong kind behind a
# flag fails every request Kindo sends it).
KIND_METADATA = {"chat": "Text Generation", "embedding": "Embeddings", "transcription": "Transcription"}
KIND_EXAMPLE = {"chat": "a chat model (e.g. Qwen/Qwen3-8B)", "embedding": "an embedding model (e.g. BAAI/bge-m3)",
                "transcription": "a speech-to-text model (e.g. openai/whisper-large-v3-turbo)"}


def check_model_kind(entry: ModelEntry, arch: Architecture) -> list[Finding]:
    assert entry.vllm is not None
    model, subject, served = entry.vllm.model, entry.litellmModelName, KIND_METADATA[arch.kind]
    if served == entry.metadataType:
        return []
    wanted = next(kind for kind, metadata in KIND_METADATA.items() if metadata == entry.metadataType)
    fix = f"set metadataType: {served}" + (" and type: INTERNAL" if arch.kind != "chat" else "")
    if arch.kind == "chat":
        return [error("model-kind-mismatch", subject, f"{model} is a chat model, not {KIND_EXAMPLE[wanted].split(' (')[0]}: "
                      f"serve {KIND_EXAMPLE[wanted]} or {fix}.")]
    return [error("model-kind-mismatch", subject, f"{model} is {KIND_EXAMPLE[arch.kind].split(' (')[0]} but metadataType "
                  f"is {entry.metadataType!r}: {fix}.")]


# Audio decoding: vLLM's `audio` extra (librosa/soundfile, later PyAV) is not in the stock vllm/vllm-openai image
# (maintainer, vllm-project/vllm#13912; reported again for 0.8.0 #15087, 0.9.2 #20671, 0.17.1 neutree-ai/neutree#465).
# From 0.25.0 torchcodec (with the image's FFmpeg) is a core dependency and decodes audio (vllm/multimodal/media/audio.py).
AUDIO_IN_CORE = (0, 25, 0)


def check_transcription_image(server: ResolvedServer, subject: str) -> list[Finding]:
    version = server.image.version
    if server.architecture.kind != "transcription" or version is None or version >= AUDIO_IN_CORE:
        return []
    return [warning("vllm-audio-extra", subject, f"image {server.image.image} decodes no audio unless it was built with "
                    "vLLM's audio extra (the stock vllm/vllm-openai image lacks it before 0.25.0): use an image built "
                    f"FROM it with `pip install \"vllm[audio]=={catalogs.format_version(version)}\"`, or a release from "
                    "0.25.0 on. The endpoint check's transcription step fails until then.")]


def check_extra_args(spec: VllmSpec, subject: str) -> list[Finding]:
    """A derived flag typed again in extraArgs is a second source of truth."""
    return [error("vllm-extra-arg-derived", subject, f"vllm.extraArgs sets {flag_name(arg)}, which the plan derives "
                  f"from {DERIVED_FLAGS[flag_name(arg)]}. Remove it from extraArgs and set that field instead.")
            for arg in spec.extraArgs if flag_name(arg) in DERIVED_FLAGS]


def human_readable_int(raw: str) -> int | None:
    """vLLM's reading of --max-num-batched-tokens / --kv-cache-memory-bytes (vllm/utils/argparse_utils.py 0.33.0
    human_readable_int): 1k = 1,000, 1K = 1,024 (k/m/g/t decimal, K/M/G/T binary, no decimals with binary suffixes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", raw.strip())
    if match:
        number, suffix = match.groups()
        if suffix.islower():
            return int(float(number) * 1000 ** ("kmgt".index(suffix) + 1))
        return int(number) * 1024 ** ("KMGT".index(suffix) + 1) if number.isdigit() else None
    return int(raw) if raw.strip().isdigit() else None


def _number(raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw)
    except ValueError:
        return None


# flag -> (how vLLM parses it, what is valid, what to write instead)
KNOB_FLAGS: dict[str, tuple[Callable[[str], Any], Callable[[Any], bool], str]] = {
    "--gpu-memory-utilization": (float, lambda v: 0.1 <= v <= 0.99, "a fraction between 0.1 and 0.99"),
    "--max-num-seqs": (int, lambda v: v >= 1, "a whole number of sequences, 1 or more"),
    "--max-num-batched-tokens": (human_readable_int, lambda v: v >= 1, "a number of tokens such as 8192 or 8k"),
    "--kv-cache-memory-bytes": (human_readable_int, lambda v: v > 0, "a size in bytes such as 8G (8 GiB) or 8000000000"),
}


def read_knob(extra_args: list[str], flag: str, subject: str) -> tuple[Any, list[Finding]]:
    """The value of one sizing flag in extraArgs, or an error naming the flag, the value and the fix."""
    raw = extra_arg_value(extra_args, flag)
    if raw is None:
        return None, []
    parse, valid, fix = KNOB_FLAGS[flag]
    value = _number(raw, parse)
    if value is not None and valid(value):
        return value, []
    return None, [error("vllm-extra-arg-invalid", subject, f"{flag} {raw!r} in vllm.extraArgs is not valid: write {fix}.")]


def has_flag(extra_args: list[str], flag: str) -> bool:
    return any(flag_name(arg) == flag for arg in extra_args)


def decide_vllm_knobs(spec: VllmSpec, arch: Architecture, max_model_len: int, release: VllmRelease,
                      subject: str) -> tuple[VllmKnobs, list[Finding]]:
    """The flags vLLM sizes by, read from vllm.extraArgs into the sizing; an invalid value is an error."""
    extra, findings, values = spec.extraArgs, [], {}
    for flag in KNOB_FLAGS:
        values[flag], found = read_knob(extra, flag, subject)
        findings += found
    seqs, tokens = values["--max-num-seqs"], values["--max-num-batched-tokens"]
    if tokens is not None and seqs is not None and tokens < seqs:
        findings.append(error("vllm-extra-arg-invalid", subject, f"--max-num-batched-tokens {tokens} is below "
                              f"--max-num-seqs {seqs}: vLLM refuses to start. Raise it to {seqs} or more."))
    if tokens is not None and arch.kind != "chat" and tokens < max_model_len:
        findings.append(error("vllm-extra-arg-invalid", subject, f"--max-num-batched-tokens {tokens} is below the max "
                              f"model length {max_model_len:,} of a model served without chunked prefill: vLLM refuses "
                              f"to start. Raise it to {max_model_len} or more, or remove it."))
    prefix = False if has_flag(extra, "--no-enable-prefix-caching") else None
    knobs = VllmKnobs(gpu_memory_utilization=values["--gpu-memory-utilization"], max_num_seqs=seqs,
                      max_num_batched_tokens=tokens, enforce_eager=has_flag(extra, "--enforce-eager"),
                      kv_cache_memory_bytes=values["--kv-cache-memory-bytes"],
                      custom_all_reduce=not has_flag(extra, "--disable-custom-all-reduce"), prefix_caching=prefix,
                      language_model_only=has_flag(extra, "--language-model-only"))
    return knobs, findings


def checkpoint_weights(hf_id: str) -> str | None:
    """The weight layout a quantized checkpoint's repository name announces (quantization.yaml checkpointSuffixes:
    `...-FP8-dynamic`, `...-AWQ`, `...-GPTQ-Int4`, `...-quantized.w4a16`); None for an unquantized name."""
    name = hf_id.strip().lower().rsplit("/", 1)[-1]
    suffixes = catalogs.weight_formats().checkpoint_suffixes
    for suffix in sorted(suffixes, key=len, reverse=True):
        if name.endswith(suffix) and name[: -len(suffix)][-1:] in ("-", "_", "."):
            return suffixes[suffix]
    return None


def pool_gpu(server: ResolvedServer) -> Gpu:
    """The GPU as vLLM will see it: the catalog's, with the pool's gpuMemoryGiB where the stack states one."""
    gpu = server.instance.gpu
    stated = server.pool.gpuMemoryGiB
    return replace(gpu, cudaMemoryGiB=stated) if stated else gpu


def sizing_request(server: ResolvedServer, max_model_len: int, knobs: VllmKnobs) -> SizingRequest:
    spec, instance = server.spec, server.instance
    return SizingRequest(server.architecture, pool_gpu(server), instance.gpus, max_model_len, server.image.defaults,
                         quantization=spec.quantization, kv_cache_dtype=spec.kvCacheDtype,
                         checkpoint_weights=checkpoint_weights(spec.model), knobs=knobs,
                         nvlink=catalogs.interconnect(instance.name) == "nvlink")


def decide_max_model_len(entry: ModelEntry, arch: Architecture) -> tuple[int, list[Finding]]:
    """--max-model-len: vllm.maxModelLen, else the contract's contextWindow, else what the model supports."""
    spec, subject = entry.vllm, entry.litellmModelName
    assert spec is not None
    # A transcription model has no prompt window (the contract leaves contextWindow out): vLLM's length is the
    # decoder's, from the model.
    context_window = entry.contextWindow if arch.kind != "transcription" else None
    max_model_len = spec.maxModelLen or context_window or arch.maxContext
    findings: list[Finding] = []
    if max_model_len > arch.maxContext:
        findings.append(error("max-model-len-above-model", subject, f"max model length {max_model_len:,} is above what "
                              f"{spec.model} supports ({arch.maxContext:,}); vLLM refuses to start. Set vllm.maxModelLen "
                              f"and contextWindow to {arch.maxContext:,} or less."))
    if context_window and context_window > max_model_len:
        findings.append(error("context-window-above-server", subject, f"contextWindow {context_window:,} is above what its "
                              f"server serves (vllm.maxModelLen {max_model_len:,}): Kindo would send prompts vLLM rejects. "
                              f"Set contextWindow to {max_model_len:,}, or raise vllm.maxModelLen."))
    return max_model_len, findings


def check_quantization(server: ResolvedServer, subject: str) -> list[Finding]:
    spec, arch = server.spec, server.architecture
    fmt = catalogs.quantization_formats().get(spec.quantization or "")
    if fmt is None or not fmt.needsCheckpoint or arch.nativeDtype not in ("bfloat16", "float16"):
        return []
    if server.matched_how.startswith("quantized checkpoint"):
        return []
    return [error("quantization-needs-checkpoint", subject, f"quantization {fmt.name!r} needs a {fmt.name.upper()} "
                  f"checkpoint, but vllm.model {spec.model!r} is the {arch.nativeDtype} release. Point vllm.model at an "
                  "AWQ/GPTQ repository of it, or use quantization: fp8 (vLLM quantizes bf16 weights to fp8 at load).")]


# --------------------------------------------------------------------------------------------- sizing


def suggestions(request: SizingRequest, instance: InstanceType, best: Sizing | None) -> list[str]:
    """What would serve this model: concrete, computed alternatives."""
    out: list[str] = []
    length = request.max_model_len
    if best and best.max_context_that_fits > 0:
        out.append(f"set vllm.maxModelLen (and contextWindow) to {best.max_context_that_fits:,} or less, the most "
                   f"{instance.name} holds at tensor parallel size {best.tensor_parallel_size}")
    if not (request.kv_cache_dtype or "").startswith("fp8"):
        fit, _ = smallest_fitting(replace(request, kv_cache_dtype="fp8"))
        if fit:
            out.append(f"kvCacheDtype: fp8 serves {length:,} tokens at tensor parallel size {fit.tensor_parallel_size}")
    if request.quantization is None and request.architecture.nativeDtype in ("bfloat16", "float16", "float32"):
        fit, _ = smallest_fitting(replace(request, quantization="fp8"))
        if fit:
            out.append(f"quantization: fp8 (weights {fit.weights_gib:.0f} GiB) serves it at tensor parallel size "
                       f"{fit.tensor_parallel_size}")
    options = other_instances(request, instance)
    if options:
        out.append("an instance type whose GPUs hold it: " + ", ".join(options[:4]))
    return out


def other_instances(request: SizingRequest, instance: InstanceType) -> list[str]:
    """Instance types (one per GPU kind and count) that hold the model: fewest GPUs first, then the least memory."""
    options: list[tuple[int, float, str]] = []
    seen: set[tuple[str, int]] = set()
    for candidate in catalogs.instances().values():
        if (candidate.gpu.name, candidate.gpus) in seen or candidate.name == instance.name:
            continue
        seen.add((candidate.gpu.name, candidate.gpus))
        fit, _ = smallest_fitting(replace(request, gpu=candidate.gpu, gpus_per_node=candidate.gpus,
                                          nvlink=catalogs.interconnect(candidate.name) == "nvlink"))
        if fit:
            used = fit.tensor_parallel_size * candidate.gpu.cuda_memory_bytes
            options.append((fit.tensor_parallel_size, used,
                            f"{candidate.name} ({fit.tensor_parallel_size}x {candidate.gpu.name} of {candidate.gpus})"))
    return [text for _, _, text in sorted(options)]


def requested_tensor_parallel(request: SizingRequest, requested: int, instance: InstanceType,
                              subject: str) -> tuple[int, list[Finding]]:
    """The stack's vllm.tensorParallelSize, or the nearest valid size below it (with an error) when vLLM refuses it."""
    arch, node_gpus = request.architecture, instance.gpus
    valid = valid_tensor_parallel_sizes(arch, node_gpus)
    if requested in valid:
        return requested, []
    why = (f"{instance.name} has {node_gpus} GPU{'s' if node_gpus > 1 else ''}" if requested > node_gpus
           else f"it must divide the {arch.attentionHeads} attention heads and match the {arch.kvHeads} KV heads")
    return max([v for v in valid if v <= requested] or valid or [1]), [error(
        "tensor-parallel-invalid", subject, f"vllm.tensorParallelSize {requested} is not valid here: {why}. Valid on this "
        f"pool: {', '.join(map(str, valid)) or 'none'}; or remove it to take the smallest that serves the context.")]


def does_not_fit(request: SizingRequest, server: ResolvedServer, shown: Sizing, best: Sizing | None, subject: str) -> Finding:
    instance, length = server.instance, request.max_model_len
    if shown.max_context_that_fits <= 0:
        what = (f"its weights ({shown.weights_gib:.1f} GiB, {shown.weights_per_gpu_gib:.1f} GiB per GPU at tensor "
                f"parallel size {shown.tensor_parallel_size}) plus runtime leave no room for KV cache in "
                f"{shown.budget_gib:.1f} GiB per {instance.gpu.name}")
    else:
        what = (f"the KV cache ({shown.kv_available_gib:.1f} GiB per GPU at tensor parallel size "
                f"{shown.tensor_parallel_size}) holds one request of at most {shown.max_context_that_fits:,} tokens, "
                f"below maxModelLen {length:,}: vLLM refuses to start")
    fixes = suggestions(request, instance, best)
    return error("model-does-not-fit", subject, f"{server.spec.model} cannot serve {length:,} tokens on pool "
                 f"{server.pool.name} ({instance.name}, {instance.gpus}x {instance.gpu.name}): {what}. "
                 + ("Options: " + "; ".join(fixes) + "." if fixes else "No single node in the catalog holds it."))


def decide_sizing(request: SizingRequest, server: ResolvedServer, subject: str) -> tuple[Sizing, list[Finding]]:
    """The tensor parallel size and memory picture: the stack's size if it set one, else the smallest that fits."""
    findings: list[Finding] = []
    if server.spec.tensorParallelSize:
        tp, findings = requested_tensor_parallel(request, server.spec.tensorParallelSize, server.instance, subject)
        sizing = size(request, tp)
        if sizing.fits:
            return sizing, findings
        fit, _ = smallest_fitting(request)
        if fit:
            return sizing, findings + [error(
                "model-does-not-fit", subject, f"{server.spec.model} at tensor parallel size {tp} holds one request "
                f"of at most {sizing.max_context_that_fits:,} tokens in its KV cache, below maxModelLen "
                f"{request.max_model_len:,}: vLLM refuses to start. Set vllm.tensorParallelSize to "
                f"{fit.tensor_parallel_size} (or remove it).")]
        best: Sizing | None = sizing
    else:
        fit, best = smallest_fitting(request)
        if fit:
            return fit, []
    shown = best or size(request, 1)
    return shown, findings + [does_not_fit(request, server, shown, best, subject)]


# --------------------------------------------------------------------------------------------- the image's release


def releases_having(predicate: Callable[[VllmRelease], bool]) -> str:
    return describe_versions(catalogs.vllm().having(predicate))


# vLLM's FlexibleArgumentParser reads `-O<level>` (and `-O.key`) itself, in every release: no serve flag of its own.
OPTIMIZATION_SHORTHAND = "-O"


def normalized_flag(arg: str) -> str:
    """A flag as vLLM's parser reads it: underscores are dashes, `--json-flag.key` sets a key of `--json-flag`."""
    name = flag_name(arg)
    if name.startswith("--"):
        return "--" + name[2:].split(".", 1)[0].replace("_", "-")
    return name


def check_flags_exist(spec: VllmSpec, release: VllmRelease, subject: str) -> list[Finding]:
    """Each flag in extraArgs must be one `vllm serve` of that release defines: an unknown flag stops the server."""
    findings: list[Finding] = []
    for arg in spec.extraArgs:
        if not arg.startswith("-") or arg.lstrip("-").replace(".", "").isdigit():
            continue  # a value, or a negative number
        flag = normalized_flag(arg)
        if flag.startswith(OPTIMIZATION_SHORTHAND) and not flag.startswith("--"):
            continue
        known = flag in release.serveFlags or (flag.startswith("--no-") and f"--{flag[5:]}" in release.negatableFlags)
        if not known:
            having = releases_having(lambda r: flag in r.serveFlags)
            findings.append(error("vllm-flag-unknown", subject, f"vllm.extraArgs {arg!r}: `vllm serve` of vLLM "
                                  f"{release.version} has no {flag}, so the server would not start. Releases that have it: "
                                  f"{having}. Remove it, or use an image of one of those releases."))
    return findings


def check_release_support(server: ResolvedServer, subject: str) -> list[Finding]:
    """The image's release must know the quantization method, the KV-cache dtype and every extra flag."""
    spec, release = server.spec, server.image.parser_release
    if release is None:
        return []
    findings = check_flags_exist(spec, release, subject)
    method = spec.quantization
    if method and method not in release.quantizationMethods:
        findings.append(error("quantization-unsupported", subject, f"vllm.quantization {method!r} is not a quantization "
                              f"method of vLLM {release.version}: it refuses to start ('Unknown quantization method'). "
                              f"Releases that have it: {releases_having(lambda r: method in r.quantizationMethods)}. "
                              "Choose another method or an image of one of those releases."))
    elif method in release.deprecatedQuantizationMethods and "--allow-deprecated-quantization" not in spec.extraArgs:
        findings.append(error("quantization-deprecated", subject, f"vllm.quantization {method!r} is deprecated in vLLM "
                              f"{release.version}, which refuses it without --allow-deprecated-quantization. Add that to "
                              "vllm.extraArgs, or choose another method."))
    dtype = spec.kvCacheDtype
    if dtype and dtype not in release.kvCacheDtypes:
        findings.append(error("kv-cache-dtype-unsupported", subject, f"vllm.kvCacheDtype {dtype!r} is not a --kv-cache-dtype "
                              f"of vLLM {release.version}. Releases that have it: "
                              f"{releases_having(lambda r: dtype in r.kvCacheDtypes)}; this one has "
                              f"{', '.join(release.kvCacheDtypes)}."))
    return findings


def decide_chat_template(server: ResolvedServer, tool_parser: str | None, subject: str) -> tuple[str | None, list[Finding]]:
    """--chat-template: the template vLLM's docs ask for with the family's tool parser, at its path in the image.
    A template the stack passes in extraArgs wins."""
    family = catalogs.vllm().families.get(server.architecture.family)
    release = server.image.parser_release
    if not (family and family.chatTemplate and tool_parser) or "--chat-template" in map(flag_name, server.spec.extraArgs):
        return None, []
    if release is None or release.chatTemplates is None:
        return None, [warning("chat-template-unknown", subject, f"vLLM's docs ask for {family.chatTemplate} with "
                              f"--tool-call-parser {tool_parser}, but whether image {server.image.image} ships it is not "
                              "known; the model's own template is used. Pass `--chat-template <path>` in vllm.extraArgs "
                              "if tool calls come back as text.")]
    path = release.chatTemplates.path(family.chatTemplate)
    if path is None:
        return None, [warning("chat-template-missing", subject, f"vLLM {release.version} does not ship "
                              f"{family.chatTemplate}, which its docs ask for with --tool-call-parser {tool_parser}: tool "
                              "calls may come back as text. Releases that ship it: "
                              f"{releases_having(lambda r: bool(r.chatTemplates and r.chatTemplates.path(family.chatTemplate)))}.")]
    return path, []


# --------------------------------------------------------------------------------------------- parsers


def check_parser(kind: str, parser: str, server: ResolvedServer, subject: str, user_set: bool) -> list[Finding]:
    """kind: 'tool' or 'reasoning'. The name must exist in the image's release and suit the model's family."""
    field_name = "vllm.toolCallParser" if kind == "tool" else "vllm.reasoningParser"
    flag = "--tool-call-parser" if kind == "tool" else "--reasoning-parser"
    release, arch = server.image.parser_release, server.architecture
    if release is not None:
        valid = release.toolCallParsers if kind == "tool" else release.reasoningParsers
        if valid and parser not in valid:
            having = releases_having(lambda r: parser in (r.toolCallParsers if kind == "tool" else r.reasoningParsers))
            return [error(f"{kind}-parser-unknown", subject, f"{field_name} {parser!r} is not a {flag} of vLLM "
                          f"{release.version}.{close_match(parser, valid)} Releases that have it: {having}. "
                          f"Valid in {release.version}: {', '.join(sorted(valid))}.")]
    family = catalogs.vllm().families.get(arch.family)
    accepted = (family.toolCallParsers if kind == "tool" else family.reasoningParsers) if family else ()
    recommended = arch.toolCallParser if kind == "tool" else arch.reasoningParser
    if not accepted and recommended:
        accepted = (recommended,)
    if not (user_set and accepted and parser not in accepted):
        return []
    severity = error if kind == "tool" else warning
    return [severity(f"{kind}-parser-wrong-family", subject, f"{field_name} {parser!r} does not read {arch.family} models' "
                     f"{'tool calls' if kind == 'tool' else 'reasoning'} (the model is "
                     f"{arch.huggingFaceIds[0] if arch.huggingFaceIds else arch.key}); use "
                     f"{' or '.join(repr(p) for p in accepted)}"
                     + (" or remove the field to take the catalog's." if recommended else "."))]


def decide_parsers(model: ResolvedModel, server: ResolvedServer) -> tuple[tuple[str | None, str | None], list[Finding]]:
    """(--tool-call-parser, --reasoning-parser): the stack's, else the catalog's (a tool parser only when needed)."""
    spec, arch, subject = server.spec, server.architecture, model.name
    findings: list[Finding] = []
    tool_parser = spec.toolCallParser or (arch.toolCallParser if model.needs_tool_parser else None)
    if model.needs_tool_parser and not arch.toolCalling and not spec.toolCallParser:
        findings.append(error("tool-calling-unsupported", subject, f"{spec.model} has no tool-calling support in vLLM "
                              "(no tool-call parser for its family), yet the model is routed to tool calling. Remove "
                              "TOOL_CALLING_MODELS from its flags and set capabilities.toolCalling: false, or serve a "
                              "model that calls tools."))
    elif model.needs_tool_parser and not tool_parser:
        findings.append(error("tool-parser-missing", subject, f"{spec.model} is routed to tool calling but has no "
                              "--tool-call-parser: Kindo agents cannot call tools. Set vllm.toolCallParser."))
    if tool_parser:
        findings += check_parser("tool", tool_parser, server, subject, spec.toolCallParser is not None)
    reasoning_parser = spec.reasoningParser or arch.reasoningParser
    if reasoning_parser:
        findings += check_parser("reasoning", reasoning_parser, server, subject, spec.reasoningParser is not None)
    return (tool_parser, reasoning_parser), findings


# --------------------------------------------------------------------------------------------- the server


def decide_server_args(model: ResolvedModel, server: ResolvedServer, max_model_len: int, tp: int,
                       parsers: tuple[str | None, str | None], chat_template: str | None,
                       weights: WeightsPlan) -> list[str]:
    spec, arch = server.spec, server.architecture
    return vllm_args(ArgsInput(weights.modelPath, model.name, max_model_len, tp, arch, parsers[0], parsers[1],
                               spec.quantization, spec.kvCacheDtype, tuple(spec.extraArgs), chat_template,
                               weights.loaderArgs))


def plan_server(model: ResolvedModel, server: ResolvedServer, context: ServerContext) -> tuple[PlannedServer, list[Finding]]:
    entry, spec, arch, instance, subject = model.entry, server.spec, server.architecture, server.instance, model.name
    findings = check_model_kind(entry, arch) + check_extra_args(spec, subject) + check_transcription_image(server, subject)
    max_model_len, context_findings = decide_max_model_len(entry, arch)
    knobs, knob_findings = decide_vllm_knobs(spec, arch, max_model_len, server.image.defaults, subject)
    sizing, sizing_findings = decide_sizing(sizing_request(server, max_model_len, knobs), server, subject)
    parsers, parser_findings = decide_parsers(model, server)
    chat_template, template_findings = decide_chat_template(server, parsers[0], subject)
    findings += knob_findings + context_findings + check_quantization(server, subject) + sizing_findings
    findings += parser_findings + check_release_support(server, subject) + template_findings
    base = base_name(entry.litellmModelName)
    download_gib = max(sizing.weights_gib, arch.checkpointGiB or 0.0)  # the published files, whatever vLLM loads
    resources, resource_findings = decide_resources(subject, instance, sizing.tensor_parallel_size, download_gib,
                                                    context.node)
    weights, weight_findings = decide_weights(spec, base, resources.memoryGiB, download_gib, context.region, subject)
    findings += resource_findings + weight_findings + rollout_findings(spec, weights.startupSeconds, subject)
    args = decide_server_args(model, server, max_model_len, sizing.tensor_parallel_size, parsers, chat_template, weights)
    planned = assemble_server(model, server, context, sizing, resources, args, weights, max_model_len, parsers, base)
    return planned, findings


def assemble_server(model: ResolvedModel, server: ResolvedServer, context: ServerContext, sizing: Sizing,
                    resources: ReplicaResources, args: list[str], weights: WeightsPlan, max_model_len: int,
                    parsers: tuple[str | None, str | None], base: str) -> PlannedServer:
    """The PlannedServer, its names carrying the generation of what its pods run (blue-green)."""
    spec, arch, instance = server.spec, server.architecture, server.instance
    cache = context.node.cache if context.node else "nvme"
    image = image_ref(server.image.image, context.images)
    generation = generation_of({"image": image, "args": args, "env": weights.env, "pool": server.pool.name,
                                "cache": cache, "request": resources.request.to_json(), "shm": resources.shmGiB,
                                "startup": weights.startupSeconds})
    name = server_name(base, generation, spec.rollout)
    return PlannedServer(
        name=name, litellmModelName=model.name, model=spec.model, pool=server.pool.name,
        instanceType=instance.name, gpu=instance.gpu.name, gpuMemoryGiB=sizing.gpu_memory_gib,
        gpusPerReplica=sizing.tensor_parallel_size, tensorParallelSize=sizing.tensor_parallel_size,
        maxModelLen=max_model_len, maxContextThatFits=sizing.max_context_that_fits, kvCacheTokens=sizing.kv_cache_tokens,
        maxConcurrency=sizing.max_concurrency, fits=sizing.fits, weightsGiB=sizing.weights_gib,
        kvBytesPerToken=sizing.kv_bytes_per_token, args=args, image=image,
        replicas=spec.replicas, namespace=server.namespace, url=service_url(name, server.namespace), architecture=arch.key,
        budgetGiB=sizing.budget_gib, runtimeGiB=sizing.runtime_gib, kvCacheGiB=sizing.kv_available_gib,
        cacheVolumeGiB=resources.cacheGiB, weightsCache=cache,
        storageClass=context.node.storageClass if context.node else None, diskRequestGiB=resources.diskGiB,
        cpuRequest=resources.cpu, memoryRequestGiB=resources.memoryGiB, shmGiB=resources.shmGiB,
        startupBudgetSeconds=weights.startupSeconds, trustRemoteCode=arch.trustRemoteCode,
        toolCallParser=parsers[0], reasoningParser=parsers[1],
        labels=labels("vllm", name, model=model.name, generation=generation, stack=context.stack), selector=selector_labels("vllm", name),
        nodeSelector={POOL_LABEL: server.pool.name}, tolerations=[dict(GPU_TOLERATION)], request=resources.request,
        podAnnotations={SAFE_TO_EVICT_LOCAL: "cache"} if context.autoscaler == "cluster-autoscaler" and cache == "nvme" else {},
        rollout=spec.rollout, generation=generation, baseName=base, weights=weights,
    )
