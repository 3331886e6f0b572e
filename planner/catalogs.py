"""Catalogs: GPUs and instances, model architectures, vLLM releases and parsers, flags, providers, cloud models.

All of it is data under planner/data/ (see SCHEMA.md there); this module only reads it into typed
records. Nothing here decides anything.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

import yaml
from annotated_types import Ge, Gt

DATA = Path(__file__).parent / "data"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_LOADER)  # noqa: S506 - a safe loader


# --------------------------------------------------------------------------- GPUs and instances


@dataclass(frozen=True)
class Gpu:
    name: str
    memoryMiB: int  # as EC2 reports it
    deviceName: str  # as CUDA names the device (nvidia-smi --query-gpu=name); vLLM's batch defaults read it
    cudaMemoryGiB: float  # the total CUDA reports: what vLLM sizes with
    computeCapability: float

    @property
    def memory_bytes(self) -> int:
        return self.memoryMiB * 1024 * 1024

    @property
    def cuda_memory_bytes(self) -> int:
        return int(self.cudaMemoryGiB * 1024**3)


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu: Gpu
    gpus: int
    vcpus: int
    memoryGiB: int
    reservationAdvised: bool = False
    nvme: tuple[int, int] = (0, 0)  # local NVMe instance store: (disks, GB per disk); (0, 0): EBS only
    enis: int = 0  # network interfaces and IPv4 addresses per interface: the node's max pods
    ipv4PerEni: int = 0

    @property
    def nvmeGB(self) -> int:
        """Total local NVMe instance store in GB (10^9 bytes, as EC2 counts it)."""
        return self.nvme[0] * self.nvme[1]


Interconnect = Literal["nvlink", "pcie"]


@lru_cache(maxsize=1)
def interconnects() -> dict[str, Interconnect]:
    """Instance family -> how its GPUs reach each other (planner/data/interconnect.yaml)."""
    return {str(family): kind for family, kind in _load(DATA / "interconnect.yaml")["families"].items()}


def interconnect(instance_type: str) -> Interconnect:
    """The instance type's GPU interconnect; an unknown family is taken as PCIe (no peer-to-peer buffers)."""
    return interconnects().get(instance_type.split(".", 1)[0], "pcie")


def instance_families(table: dict[str, "InstanceType"]) -> list[str]:
    """The instance families the catalog holds (g5, g6e, p5, ...), for messages."""
    return sorted({name.split(".", 1)[0] for name in table})


@lru_cache(maxsize=1)
def instances() -> dict[str, InstanceType]:
    data = _load(DATA / "instances.yaml")
    gpus = {name: Gpu(name=name, memoryMiB=int(spec["memoryMiB"]), deviceName=str(spec["deviceName"]),
                      cudaMemoryGiB=float(spec["cudaMemoryGiB"]), computeCapability=float(spec["computeCapability"]))
            for name, spec in data["gpus"].items()}
    return {
        name: InstanceType(name=name, gpu=gpus[spec["gpu"]], nvme=tuple(spec.get("nvme") or (0, 0)),  # type: ignore[arg-type]
                           **{k: v for k, v in spec.items() if k not in ("gpu", "nvme")})
        for name, spec in data["instances"].items()
    }


# --------------------------------------------------------------------------- EKS nodes and what the program installs


@dataclass(frozen=True)
class CpuReserveRange:
    start: int  # millicores
    end: int | None  # None: to the node's total
    rate: int  # per 10,000 millicores of the range


@dataclass(frozen=True)
class NodeDaemonSet:
    name: str
    cpuMilli: int
    memoryMiB: int
    when: Literal["always", "ebsCsi", "devicePlugin"]


@dataclass(frozen=True)
class ChartPin:
    chart: str
    repository: str  # the upstream Helm repository (HTTP)
    version: str
    image: str  # upstream image reference (repository:tag)


@dataclass(frozen=True)
class AutoscalerPins:
    chart: str
    repository: str
    image: str  # upstream repository; the tag comes from byKubernetes
    serviceAccount: str
    namespace: str
    byKubernetes: dict[str, tuple[str, str]]  # Kubernetes minor -> (chart version, image tag)
    readActions: tuple[str, ...]
    writeActions: tuple[str, ...]


@dataclass(frozen=True)
class EksData:
    """planner/data/eks.yaml: kubelet reservations, max pods, daemonsets, disk figures, pinned charts and add-ons."""

    cpuReserveRanges: tuple[CpuReserveRange, ...]
    memoryReservePerPodMiB: int
    memoryReserveBaseMiB: int
    ephemeralReserveGiB: int
    evictionMemoryMiB: int
    evictionNodefsPercent: int
    maxPodsCapVcpus: int
    maxPodsCapSmall: int
    maxPodsCapLarge: int
    memoryOverheadEstimate: float
    daemonsets: tuple[NodeDaemonSet, ...]
    vllmImageGiB: int
    osGiB: int
    writableLayerGiB: int
    devicePlugin: ChartPin
    checkImage: str
    clusterAutoscaler: AutoscalerPins
    addons: dict[str, dict[str, str]]


def _autoscaler_pins(spec: dict[str, Any]) -> AutoscalerPins:
    return AutoscalerPins(
        chart=spec["chart"], repository=spec["repository"], image=spec["image"], serviceAccount=spec["serviceAccount"],
        namespace=spec["namespace"],
        byKubernetes={str(minor): (str(pin["chart"]), str(pin["tag"])) for minor, pin in spec["byKubernetes"].items()},
        readActions=tuple(spec["readActions"]), writeActions=tuple(spec["writeActions"]))


@lru_cache(maxsize=1)
def eks() -> EksData:
    data = _load(DATA / "eks.yaml")
    kubelet, pods, disk, plugin = data["kubelet"], data["maxPods"], data["disk"], data["devicePlugin"]
    return EksData(
        cpuReserveRanges=tuple(CpuReserveRange(r["from"], r["to"], r["rate"]) for r in kubelet["cpuReserveRanges"]),
        memoryReservePerPodMiB=kubelet["memoryReservePerPodMiB"], memoryReserveBaseMiB=kubelet["memoryReserveBaseMiB"],
        ephemeralReserveGiB=kubelet["ephemeralReserveGiB"], evictionMemoryMiB=kubelet["evictionMemoryMiB"],
        evictionNodefsPercent=kubelet["evictionNodefsPercent"], maxPodsCapVcpus=pods["capVcpus"],
        maxPodsCapSmall=pods["capSmall"], maxPodsCapLarge=pods["capLarge"],
        memoryOverheadEstimate=float(data["memoryOverheadEstimate"]),
        daemonsets=tuple(NodeDaemonSet(d["name"], d["cpuMilli"], d["memoryMiB"], d["when"]) for d in data["daemonsets"]),
        vllmImageGiB=disk["vllmImageGiB"], osGiB=disk["osGiB"], writableLayerGiB=disk["writableLayerGiB"],
        devicePlugin=ChartPin(plugin["chart"], plugin["repository"], str(plugin["version"]), plugin["image"]),
        checkImage=data["checkImage"], clusterAutoscaler=_autoscaler_pins(data["clusterAutoscaler"]),
        addons={name: {k: str(v) for k, v in spec.items()} for name, spec in data["addons"].items()},
    )


# --------------------------------------------------------------------------- model architectures


# Field types carry their constraints, so the stack's `vllm.architecture` override (planner/config.py) is derived
# from this one definition instead of retyping it.
PositiveInt = Annotated[int, Gt(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]
NativeDtype = Literal["bfloat16", "float16", "float32", "fp8", "mxfp4", "int4"]
AttentionKind = Literal["mha", "gqa", "mla", "sliding", "hybrid"]
ModelKind = Literal["chat", "embedding", "transcription"]
NonNegativeFloat = Annotated[float, Ge(0)]


@dataclass(frozen=True)
class LinearAttention:
    """The recurrent layers of a hybrid model (config.json), whose per-request state vLLM caches as a MambaSpec page
    (vllm/model_executor/layers/mamba/mamba_utils.py *_state_shape)."""

    kind: Literal["gated_delta_net", "mamba2"]
    layers: PositiveInt
    convKernel: PositiveInt
    stateDtype: Literal["float32", "bfloat16", "float16"] = "float32"  # mamba_ssm_dtype / mamba_ssm_cache_dtype
    # gated_delta_net: linear_num_key_heads, linear_num_value_heads, linear_key_head_dim, linear_value_head_dim
    numKeyHeads: Optional[PositiveInt] = None
    numValueHeads: Optional[PositiveInt] = None
    keyHeadDim: Optional[PositiveInt] = None
    valueHeadDim: Optional[PositiveInt] = None
    # mamba2: mamba_num_heads, mamba_head_dim, ssm_state_size, n_groups; intermediate = heads x head dim
    numHeads: Optional[PositiveInt] = None
    headDim: Optional[PositiveInt] = None
    stateSize: Optional[PositiveInt] = None
    nGroups: Optional[PositiveInt] = None


@dataclass(frozen=True)
class Architecture:
    key: str
    huggingFaceIds: tuple[str, ...]
    family: str
    kind: ModelKind
    parametersB: PositiveFloat
    activeParametersB: PositiveFloat
    nativeDtype: NativeDtype
    layers: PositiveInt
    attentionHeads: PositiveInt
    kvHeads: PositiveInt
    headDim: PositiveInt
    attention: AttentionKind
    maxContext: PositiveInt
    fullAttentionLayers: NonNegativeInt
    slidingWindowLayers: NonNegativeInt = 0
    slidingWindow: Optional[PositiveInt] = None
    hiddenSize: Optional[PositiveInt] = None
    intermediateSize: Optional[PositiveInt] = None
    experts: Optional[PositiveInt] = None
    expertsPerToken: Optional[PositiveInt] = None
    vocabSize: Optional[PositiveInt] = None
    kvLoraRank: Optional[PositiveInt] = None
    qkRopeHeadDim: Optional[PositiveInt] = None
    qLoraRank: Optional[PositiveInt] = None  # MLA: q_lora_rank (its projection is replicated under TP)
    denseLayers: Optional[NonNegativeInt] = None  # MoE: leading dense layers (first_k_dense_replace)
    tieWordEmbeddings: bool = False  # the LM head shares the embedding matrix (counted once)
    visionParametersB: Optional[PositiveFloat] = None  # vision tower, part of parametersB; stays 16-bit
    encoderProfileGiB: Optional[NonNegativeFloat] = None  # vLLM's multimodal encoder profile, measured per GPU
    linearAttention: Optional[LinearAttention] = None  # hybrid models' recurrent layers
    encoderOnly: bool = False  # bidirectional attention (BERT, XLM-RoBERTa): vLLM keeps no KV cache
    # Encoder-decoder models (Whisper): encoder positions every decoder layer attends to, cached once per request.
    crossAttentionTokens: Optional[PositiveInt] = None
    checkpointGiB: Optional[PositiveFloat] = None
    vision: bool = False
    toolCalling: bool = False
    toolCallParser: Optional[str] = None
    reasoningParser: Optional[str] = None
    trustRemoteCode: bool = False
    minVllmVersion: str = "0.6.0"
    source: str = ""
    notes: str = ""

    @property
    def is_moe(self) -> bool:
        return bool(self.experts)

    def with_overrides(self, overrides: dict[str, Any]) -> "Architecture":
        known = {f.name for f in fields(Architecture)}
        values = {k: v for k, v in overrides.items() if k in known and v is not None}
        if isinstance(values.get("linearAttention"), dict):
            values["linearAttention"] = LinearAttention(**values["linearAttention"])
        return replace(self, **values)


ARCHITECTURE_FIELDS = {f.name for f in fields(Architecture)}
# Identity and provenance of a catalog entry: a stack describes a model's shape, not these.
NOT_OVERRIDABLE = ("key", "huggingFaceIds", "source", "notes")
REQUIRED_FOR_SIZING = ("parametersB", "layers", "attentionHeads", "kvHeads", "headDim", "maxContext")


def architecture_from_dict(entry: dict[str, Any]) -> Architecture:
    values = {k: v for k, v in entry.items() if k in ARCHITECTURE_FIELDS}
    values["huggingFaceIds"] = tuple(values.get("huggingFaceIds") or ())
    values.setdefault("key", (values["huggingFaceIds"] or ("custom",))[0].lower())
    values["family"] = values.get("family") or "none"
    values["kind"] = values.get("kind") or "chat"
    values.setdefault("nativeDtype", "bfloat16")
    values.setdefault("attention", "gqa")
    values.setdefault("activeParametersB", values.get("parametersB"))
    values.setdefault("fullAttentionLayers", values.get("layers"))
    if values.get("slidingWindowLayers") is None:
        values["slidingWindowLayers"] = 0
    for key in ("minVllmVersion",):
        if key in values and values[key] is not None:
            values[key] = str(values[key])
    for key in ("vision", "toolCalling", "trustRemoteCode", "tieWordEmbeddings", "encoderOnly"):
        values[key] = bool(values.get(key) or False)
    if isinstance(values.get("linearAttention"), dict):
        values["linearAttention"] = LinearAttention(**values["linearAttention"])
    for key in ("source", "notes"):
        values[key] = str(values.get(key) or "")
    if values.get("minVllmVersion") is None:
        values["minVllmVersion"] = "0.6.0"
    return Architecture(**values)


# Suffixes of quantized or re-packaged checkpoints: the architecture is the base model's.
_CHECKPOINT_SUFFIX = re.compile(
    r"[-_.](awq|gptq(-int[48])?|fp8(-dynamic)?|int[48]|w4a16|w8a8|nvfp4|bnb-4bit|4bit|8bit|quantized.*|gguf|mlx.*)$",
    re.IGNORECASE,
)


@dataclass
class ArchitectureCatalog:
    entries: list[Architecture] = field(default_factory=list)
    by_id: dict[str, Architecture] = field(default_factory=dict)
    by_repo_name: dict[str, Architecture] = field(default_factory=dict)

    def add(self, arch: Architecture) -> None:
        self.entries.append(arch)
        for hf_id in arch.huggingFaceIds:
            self.by_id[hf_id.lower()] = arch
            self.by_repo_name.setdefault(hf_id.split("/")[-1].lower(), arch)

    def find(self, hf_id: str) -> tuple[Architecture | None, str]:
        """The architecture for a Hugging Face id, and how it was matched ('' when exact)."""
        wanted = hf_id.strip().lower()
        if wanted in self.by_id:
            return self.by_id[wanted], ""
        repo = wanted.split("/")[-1]
        if repo in self.by_repo_name:
            match = self.by_repo_name[repo]
            return match, f"matched by repository name to {match.huggingFaceIds[0]}"
        base = repo
        while True:
            stripped = _CHECKPOINT_SUFFIX.sub("", base)
            if stripped == base:
                break
            base = stripped
            if base in self.by_repo_name:
                match = self.by_repo_name[base]
                return match, f"quantized checkpoint of {match.huggingFaceIds[0]}"
        return None, ""


@lru_cache(maxsize=1)
def architectures() -> ArchitectureCatalog:
    catalog = ArchitectureCatalog()
    for path in sorted((DATA / "models").glob("*.yaml")):
        for entry in _load(path) or []:
            catalog.add(architecture_from_dict(entry))
    return catalog


# --------------------------------------------------------------------------- vLLM releases


Version = tuple[int, ...]  # (major, minor, patch, fourth, post): 0.9.0.1 -> (0, 9, 0, 1, 0), 0.8.5.post1 -> (0, 8, 5, 0, 1)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.post(\d+))?$")


def parse_version(text: str | None) -> Version | None:
    match = _VERSION.match(str(text or "").strip())
    return tuple(int(part or 0) for part in match.groups()) if match else None


def format_version(version: Version) -> str:
    major, minor, patch, fourth, post = (tuple(version) + (0, 0, 0, 0, 0))[:5]
    return f"{major}.{minor}.{patch}" + (f".{fourth}" if fourth else "") + (f".post{post}" if post else "")


@dataclass(frozen=True)
class BatchTier:
    """vLLM's OpenAI-server scheduler defaults (EngineArgs.get_batch_defaults): the first tier whose minimum GPU
    memory the GPU reaches and whose device-name conditions match applies."""

    minGpuGiB: float
    maxNumBatchedTokens: int
    maxNumSeqs: int
    excludeDeviceNameContains: tuple[str, ...] = ()  # substrings of the lower-case CUDA device name
    deviceNameContainsAny: tuple[str, ...] = ()  # up to 0.8.4 the large tier was named GPUs
    excludeComputeCapabilities: tuple[float, ...] = ()

    def matches(self, gpu: Gpu) -> bool:
        name = gpu.deviceName.lower()
        if gpu.cudaMemoryGiB < self.minGpuGiB or any(part in name for part in self.excludeDeviceNameContains):
            return False
        if gpu.computeCapability in self.excludeComputeCapabilities:
            return False
        return not self.deviceNameContainsAny or any(part in name for part in self.deviceNameContainsAny)


@dataclass(frozen=True)
class ChatTemplates:
    imageDirectory: str  # where the vllm/vllm-openai image keeps the source tree's examples/
    files: frozenset[str]  # paths under examples/

    def path(self, template: str) -> str | None:
        """The template's path inside the image, or None when this release does not ship it."""
        name = template.removeprefix("examples/")
        return f"{self.imageDirectory}/{name}" if name in self.files else None


@dataclass(frozen=True)
class VllmRelease:
    """One vLLM release as its own PyPI files say (planner/data/vllm_releases.json, scripts/gen_vllm_releases.py)."""

    version: str
    released: str
    gpuMemoryUtilization: float
    batchTiers: tuple[BatchTier, ...]
    cudaGraphsInBudget: bool  # the CUDA-graph memory estimate is taken from the KV budget
    nonTorchInBudget: bool  # CUDA context / cuBLAS and all non-torch memory is charged to the budget
    ncclInitInBudget: bool  # NCCL's start-up buffers are charged to the budget
    memorySnapshot: str  # whole-device | before-distributed-init | after-distributed-init
    samplerImplementation: str  # flashinfer-when-installed | pytorch-sort | triton | flashinfer
    kvCacheTokens: str  # how `GPU KV cache size: N tokens` counts: blocks-per-group | concurrency-times-length
    slidingWindowReserve: str  # none | max-num-batched-tokens | max-in-flight-tokens
    toolCallParsers: tuple[str, ...]
    reasoningParsers: tuple[str, ...]
    quantizationMethods: tuple[str, ...]
    deprecatedQuantizationMethods: tuple[str, ...]
    kvCacheDtypes: tuple[str, ...]
    serveFlags: frozenset[str]
    negatableFlags: frozenset[str]
    chatTemplates: ChatTemplates | None  # None: not known for this release (no sdist on PyPI)

    def batch_tier(self, gpu: Gpu) -> BatchTier:
        return next((tier for tier in self.batchTiers if tier.matches(gpu)), BatchTier(0, 2048, 256))


@dataclass(frozen=True)
class ParserFamily:
    toolCallParsers: tuple[str, ...]
    reasoningParsers: tuple[str, ...]
    chatTemplate: str | None = None  # examples/... that vLLM's docs ask for with this family's tool parser


@dataclass
class VllmCatalog:
    image: str
    defaultVersion: str
    releases: dict[str, VllmRelease]  # by version string, oldest first
    families: dict[str, ParserFamily]
    by_version: dict[Version, VllmRelease] = field(default_factory=dict)

    @property
    def default_image(self) -> str:
        return f"{self.image}:v{self.defaultVersion}"

    @property
    def newest(self) -> VllmRelease:
        return list(self.releases.values())[-1]

    def release(self, version: Version) -> VllmRelease | None:
        """The recorded release with exactly this version."""
        return self.by_version.get(tuple(version))

    def having(self, predicate: Callable[[VllmRelease], bool]) -> list[str]:
        """The versions of the releases for which predicate holds, oldest first."""
        return [r.version for r in self.releases.values() if predicate(r)]


def describe_versions(versions: list[str]) -> str:
    """A list of releases, shortened: '0.17.1 to 0.33.0 (31 releases)', or the names when few."""
    if len(versions) <= 4:
        return ", ".join(versions) or "none"
    return f"{versions[0]} to {versions[-1]} ({len(versions)} releases)"


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


def _release(version: str, spec: dict[str, Any]) -> VllmRelease:
    tiers = tuple(BatchTier(float(t["minGpuGiB"]), int(t["maxNumBatchedTokens"]), int(t["maxNumSeqs"]),
                            _as_tuple(t.get("excludeDeviceNameContains")), _as_tuple(t.get("deviceNameContainsAny")),
                            tuple(float(c) for c in t.get("excludeComputeCapabilities") or ()))
                  for t in spec["batchTiers"])
    templates = spec.get("chatTemplates")
    return VllmRelease(
        version=version, released=str(spec["released"]), gpuMemoryUtilization=float(spec["gpuMemoryUtilization"]),
        batchTiers=tiers, cudaGraphsInBudget=bool(spec["cudaGraphsInBudget"]),
        nonTorchInBudget=bool(spec["nonTorchInBudget"]), ncclInitInBudget=bool(spec["ncclInitInBudget"]),
        memorySnapshot=str(spec["memorySnapshot"]), samplerImplementation=str(spec["samplerImplementation"]),
        kvCacheTokens=str(spec["kvCacheTokens"]), slidingWindowReserve=str(spec["slidingWindowReserve"]),
        toolCallParsers=_as_tuple(spec["toolCallParsers"]),
        reasoningParsers=_as_tuple(spec["reasoningParsers"]), quantizationMethods=_as_tuple(spec["quantizationMethods"]),
        deprecatedQuantizationMethods=_as_tuple(spec.get("deprecatedQuantizationMethods")),
        kvCacheDtypes=_as_tuple(spec["kvCacheDtypes"]), serveFlags=frozenset(spec["serveFlags"]),
        negatableFlags=frozenset(spec.get("negatableFlags") or ()),
        chatTemplates=ChatTemplates(str(templates["imageDirectory"]), frozenset(templates["files"])) if templates else None,
    )


@lru_cache(maxsize=1)
def vllm() -> VllmCatalog:
    data = _load(DATA / "vllm.yaml")
    generated = json.loads((DATA / "vllm_releases.json").read_text(encoding="utf-8"))["releases"]
    releases = {version: _release(version, spec) for version, spec in generated.items()}
    families = {
        str(name): ParserFamily(_as_tuple((spec or {}).get("toolCallParsers")), _as_tuple((spec or {}).get("reasoningParsers")),
                                (spec or {}).get("chatTemplate"))
        for name, spec in (data.get("families") or {}).items()
    }
    return VllmCatalog(image=str(data.get("image", "vllm/vllm-openai")), defaultVersion=str(data["defaultVersion"]),
                       releases=releases, families=families,
                       by_version={parse_version(v): r for v, r in releases.items()})  # type: ignore[misc]


# --------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class FlagSpec:
    key: str
    requirement: str
    accepts: tuple[str, ...]
    needs: str | None = None
    exactlyOne: bool = False
    fallback: bool = False
    description: str = ""


@dataclass(frozen=True)
class Route:
    metadataType: str
    capability: str | None
    flags: tuple[str, ...]


@lru_cache(maxsize=1)
def flags() -> tuple[dict[str, FlagSpec], tuple[Route, ...]]:
    data = _load(DATA / "flags.yaml")
    specs = {
        key: FlagSpec(
            key=key,
            requirement=spec["requirement"],
            accepts=_as_tuple(spec.get("accepts")),
            needs=spec.get("needs"),
            exactlyOne=bool(spec.get("exactlyOne", False)),
            fallback=bool(spec.get("fallback", False)),
            description=str(spec.get("description", "")),
        )
        for key, spec in data["flags"].items()
    }
    routes = tuple(
        Route(metadataType=r["metadataType"], capability=r.get("capability"), flags=_as_tuple(r["flags"]))
        for r in data["defaultRoutes"]
    )
    return specs, routes


# --------------------------------------------------------------------------- providers and cloud models


@dataclass(frozen=True)
class Provider:
    displayName: str
    prefixes: tuple[str, ...]
    keyRequired: bool
    requires: tuple[str, ...] = ()
    standardApiBase: str | None = None
    apiBaseAllowed: bool = False
    datedModelIds: bool = False
    selfHosted: bool = False
    openaiCompatible: bool = False
    ambientCredential: str | None = None
    datelessPinnedFrom: str | None = None  # the generation ("4.6") from which dateless IDs are pinned versions


@lru_cache(maxsize=1)
def _providers_file() -> dict[str, Any]:
    return _load(DATA / "providers.yaml")


@lru_cache(maxsize=1)
def providers() -> dict[str, Provider]:
    out = {}
    for spec in _providers_file()["providers"]:
        spec = dict(spec)
        spec["prefixes"] = _as_tuple(spec.get("prefixes"))
        spec["requires"] = _as_tuple(spec.get("requires"))
        out[spec["displayName"]] = Provider(**spec)
    return out


@lru_cache(maxsize=1)
def gated_organizations() -> frozenset[str]:
    """Hugging Face organizations whose repositories need an accepted licence and a token."""
    return frozenset(str(o).lower() for o in _providers_file()["huggingFace"]["gatedOrganizations"])


# --------------------------------------------------------------------------- weight formats


@dataclass(frozen=True)
class QuantizationFormat:
    name: str
    weights: str | None  # the WeightLayout it holds weights in; None: the checkpoint's own
    needsCheckpoint: bool


@dataclass(frozen=True)
class WeightLayout:
    name: str
    bytesPerParam: float  # scales and zero points included
    appliesTo: Literal["all", "linear", "experts"]


@dataclass(frozen=True)
class WeightFormats:
    """planner/data/quantization.yaml: --quantization methods, weight layouts, and how a checkpoint names its layout."""

    formats: dict[str, QuantizationFormat]
    layouts: dict[str, WeightLayout]
    native: dict[str, str]  # nativeDtype -> layout
    checkpoint_suffixes: dict[str, str]  # repository-name suffix -> layout


@lru_cache(maxsize=1)
def weight_formats() -> WeightFormats:
    data = _load(DATA / "quantization.yaml")
    formats = {str(name): QuantizationFormat(str(name), spec.get("weights"), bool(spec.get("needsCheckpoint")))
               for name, spec in data["formats"].items()}
    layouts = {str(name): WeightLayout(str(name), float(spec["bytesPerParam"]), spec["appliesTo"])
               for name, spec in data["layouts"].items()}
    return WeightFormats(formats, layouts, {str(k): str(v) for k, v in data["nativeDtypes"].items()},
                         {str(k): str(v) for k, v in data["checkpointSuffixes"].items()})


def quantization_formats() -> dict[str, QuantizationFormat]:
    return weight_formats().formats


# --------------------------------------------------------------------------- cloud models (LiteLLM's map)


@dataclass(frozen=True)
class CloudModel:
    """One model of LiteLLM's model map (planner/data/litellm_models.json) with the hand-kept overrides applied.

    maxInput is LiteLLM's max_input_tokens: the prompt limit (for most providers also the whole window);
    contextWindow is the total window where the provider states one larger than that (OpenAI's GPT-5: 272,000
    input, 400,000 total). None: the map does not say.
    """

    key: str  # LiteLLM's key
    provider: str  # LiteLLM's litellm_provider
    mode: str | None = None  # chat, responses, embedding, audio_transcription
    maxInput: int | None = None
    maxOutput: int | None = None
    contextWindow: int | None = None
    vision: bool | None = None
    toolCalling: bool | None = None
    deprecationDate: datetime.date | None = None  # the day requests start failing
    successor: str | None = None  # a LiteLLM key
    source: str = ""  # where the figures come from: LiteLLM's release, or the override's page

    @property
    def window(self) -> int | None:
        """The total window a contextWindow may go up to."""
        return self.contextWindow or self.maxInput


@dataclass(frozen=True)
class CloudMatch:
    """How a stack's model found its CloudModel."""

    model: CloudModel  # the entry (an alias's target)
    key: str  # the key that matched (an alias's own key when the id is an alias)
    alias: bool  # the key is an alias of model.key (its target can change under it)
    field: Literal["baseModel", "litellmModel"]  # which of the entry's fields matched
    value: str  # that field's value


# Inference-profile prefixes of Bedrock model ids (us.anthropic..., global.anthropic...): the map keeps most models
# under both forms; where it has only the plain one, the profile's limits and dates are the model's.
_BEDROCK_GEO = re.compile(r"^(us|eu|apac|global|jp|au|ca|in|us-gov)\.(?=[a-z0-9-]+\.)")
# LiteLLM's Bedrock route segments (bedrock/converse/<id>, bedrock/invoke/<id>): not part of the model's id.
_BEDROCK_ROUTES = ("converse/", "invoke/")
_ALIAS_HOPS = 4


@dataclass(frozen=True)
class CloudCatalog:
    release: str  # the LiteLLM release the map comes from
    models: dict[str, CloudModel]
    aliases: dict[str, str]  # alias key -> target key
    providers: dict[str, tuple[str, ...]]  # Kindo provider display name -> LiteLLM litellm_provider values

    def entry(self, key: str) -> tuple[CloudModel | None, bool]:
        """The model behind a key (following aliases), and whether the key was an alias."""
        seen, current = 0, key
        while current in self.aliases and seen < _ALIAS_HOPS:
            current, seen = self.aliases[current], seen + 1
        return self.models.get(current), seen > 0

    def successor_of(self, model: CloudModel, today: datetime.date) -> CloudModel | None:
        """The first successor (following the chain) that is not retired by `today`; None when there is none."""
        current, hops = model, 0
        while current.successor and hops < 8:
            nxt, _ = self.entry(current.successor)
            if nxt is None:
                return None
            if nxt.deprecationDate is None or nxt.deprecationDate > today:
                return nxt
            current, hops = nxt, hops + 1
        return None

    def find(self, ids: list[tuple[Literal["baseModel", "litellmModel"], str]], provider: Provider,
             aws_region: str | None = None) -> CloudMatch | None:
        """The entry for the first id that has one among the provider's own models (see cloud_keys for the order).

        Provider-aware: under Azure, baseModel gpt-4o is azure/gpt-4o, never OpenAI's gpt-4o; Bedrock and Vertex keep
        their own retirement dates for the same model.
        """
        allowed = set(self.providers.get(provider.displayName, ()))
        for field_name, value in ids:
            for key in cloud_keys(value, provider, aws_region):
                model, alias = self.entry(key)
                if model is not None and model.provider in allowed:
                    return CloudMatch(model, key, alias, field_name, value)
        return None

    def litellm_id(self, key: str, provider: Provider) -> str:
        """A LiteLLM key as a stack's litellmModel for that provider (claude-sonnet-4-6 -> anthropic/claude-sonnet-4-6)."""
        return key if key.startswith(provider.prefixes) else provider.prefixes[0] + key


def cloud_keys(model_id: str, provider: Provider, aws_region: str | None = None) -> list[str]:
    """The keys of LiteLLM's map a model id can be found under, most specific first.

    1. the id as written (azure/gpt-4o, deepgram/nova-2, gemini/gemini-2.5-pro, vertex_ai/claude-...);
    2. with the provider's prefix added (baseModel gpt-4o under Azure -> azure/gpt-4o);
    3. without it (anthropic/claude-sonnet-4-6 -> claude-sonnet-4-6, openai/gpt-5 -> gpt-5);
    Bedrock only: 4. without a route segment (bedrock/converse/...); 5. the stack's region's own entry
    (bedrock/us-east-1/<id>); 6. without the inference-profile prefix (us.anthropic.x -> anthropic.x).
    """
    prefix = next((p for p in provider.prefixes if model_id.startswith(p)), None)
    bare = model_id[len(prefix):] if prefix else model_id
    keys = [model_id, provider.prefixes[0] + bare, bare]
    if provider.prefixes[0] == "bedrock/":
        for route in _BEDROCK_ROUTES:
            bare = bare.removeprefix(route)
        keys += [bare, f"bedrock/{bare}"]
        if aws_region:
            keys.append(f"bedrock/{aws_region}/{bare}")
        plain = _BEDROCK_GEO.sub("", bare)
        keys += [plain, f"bedrock/{plain}"]
    return list(dict.fromkeys(keys))


def _cloud_model(key: str, entry: dict[str, Any], source: str) -> CloudModel:
    date = entry.get("deprecation_date")
    return CloudModel(
        key=key, provider=str(entry.get("provider", "")), mode=entry.get("mode"), maxInput=entry.get("max_input_tokens"),
        maxOutput=entry.get("max_output_tokens"), contextWindow=entry.get("context_window"),
        vision=entry.get("supports_vision"), toolCalling=entry.get("supports_function_calling"),
        deprecationDate=datetime.date.fromisoformat(date) if date else None, successor=entry.get("successor_model"),
        source=str(entry.get("source") or source))


@lru_cache(maxsize=1)
def cloud_catalog() -> CloudCatalog:
    """LiteLLM's map (generated, JSON) with planner/data/cloud_model_overrides.yaml applied key by key."""
    generated = json.loads((DATA / "litellm_models.json").read_text(encoding="utf-8"))
    overrides = (_load(DATA / "cloud_model_overrides.yaml") or {}).get("overrides") or {}
    release = f"LiteLLM {generated['_generated']['litellm']}"
    merged: dict[str, tuple[dict[str, Any], str]] = {key: (entry, release) for key, entry in generated["models"].items()}
    for key, override in overrides.items():
        base, _ = merged.get(key, ({}, release))
        # An override that names its own page is that page's figure; the fields it leaves alone stay LiteLLM's.
        merged[key] = ({**base, **override}, f"{release} and {override['source']}" if base else override["source"])
    aliases = {key: entry["alias_of"] for key, (entry, _) in merged.items() if "alias_of" in entry}
    models = {key: _cloud_model(key, entry, source) for key, (entry, source) in merged.items() if "alias_of" not in entry}
    providers = {name: tuple(values) for name, values in generated["providers"].items()}
    return CloudCatalog(release=release, models=models, aliases=aliases, providers=providers)


# --------------------------------------------------------------------------- cold start


@dataclass(frozen=True)
class ColdStart:
    baseSeconds: int
    secondsPerGiB: dict[str, float]  # by weights source: huggingface | s3
    streamerConcurrency: int
    streamerMemoryShare: float
    mirrorUploadSecondsPerGiB: float


@lru_cache(maxsize=1)
def coldstart() -> ColdStart:
    data = _load(DATA / "coldstart.yaml")
    return ColdStart(int(data["baseSeconds"]), {k: float(v["secondsPerGiB"]) for k, v in data["sources"].items()},
                     int(data["streamer"]["concurrency"]), float(data["streamer"]["memoryShare"]),
                     float(data["mirror"]["uploadSecondsPerGiB"]))


# --------------------------------------------------------------------------- vLLM metrics and dashboards


@dataclass(frozen=True)
class VllmMetric:
    name: str  # as Prometheus stores it (a counter with its `_total`)
    type: Literal["gauge", "counter", "histogram"]
    present: tuple[str, ...]  # the checked releases whose loggers.py registers it


@dataclass(frozen=True)
class VllmMetrics:
    """vLLM's Prometheus metrics per release (planner/data/vllm_metrics.yaml)."""

    checkedReleases: tuple[str, ...]
    labels: tuple[str, ...]  # on every metric
    path: str
    authRequired: bool
    metrics: dict[str, VllmMetric]

    def in_every_release(self) -> frozenset[str]:
        """The metric names every checked release exposes: the only ones a dashboard may query."""
        return frozenset(name for name, metric in self.metrics.items() if set(self.checkedReleases) <= set(metric.present))


@lru_cache(maxsize=1)
def vllm_metrics() -> VllmMetrics:
    data = _load(DATA / "vllm_metrics.yaml")
    metrics = {str(m["name"]): VllmMetric(str(m["name"]), m["type"], _as_tuple(m.get("present"))) for m in data["metrics"]}
    return VllmMetrics(checkedReleases=_as_tuple(data["checkedReleases"]), labels=_as_tuple(data["labels"]),
                       path=str(data["endpoint"]["path"]), authRequired=bool(data["endpoint"]["authRequired"]),
                       metrics=metrics)


@lru_cache(maxsize=None)
def dashboard(name: str) -> str:
    """A Grafana dashboard's JSON text (planner/data/dashboards/<name>.json)."""
    return (DATA / "dashboards" / f"{name}.json").read_text(encoding="utf-8")
