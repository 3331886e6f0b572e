"""Catalogs: GPUs and instances, model architectures, vLLM releases and parsers, flags, providers.

All of it is data under planner/data/ (see SCHEMA.md there); this module only reads it into typed
records. Nothing here decides anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

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
    memoryMiB: int

    @property
    def memory_bytes(self) -> int:
        return self.memoryMiB * 1024 * 1024


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


def instance_families(table: dict[str, "InstanceType"]) -> list[str]:
    """The instance families the catalog holds (g5, g6e, p5, ...), for messages."""
    return sorted({name.split(".", 1)[0] for name in table})


@lru_cache(maxsize=1)
def instances() -> dict[str, InstanceType]:
    data = _load(DATA / "instances.yaml")
    gpus = {name: Gpu(name=name, memoryMiB=int(spec["memoryMiB"])) for name, spec in data["gpus"].items()}
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
ModelKind = Literal["chat", "embedding"]


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
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})


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
    for key in ("vision", "toolCalling", "trustRemoteCode"):
        values[key] = bool(values.get(key) or False)
    for key in ("source", "notes"):
        values[key] = str(values.get(key) or "")
    if values.get("minVllmVersion") is None:
        values["minVllmVersion"] = "0.6.0"
    return Architecture(**values)


# Suffixes of quantized or re-packaged checkpoints: the architecture is the base model's.
_CHECKPOINT_SUFFIX = re.compile(
    r"[-_.](awq|gptq(-int[48])?|fp8(-dynamic)?|int[48]|w4a16|w8a8|bnb-4bit|4bit|8bit|quantized.*|gguf|mlx.*)$",
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


Version = tuple[int, ...]


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.post\d+)?$", str(text).strip())
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class BatchTier:
    """vLLM's OpenAI-server scheduler defaults for GPUs of at least this size (arg_utils batch defaults)."""

    minGpuGiB: float
    maxNumBatchedTokens: int
    maxNumSeqs: int
    excludeGpus: tuple[str, ...] = ()


@dataclass(frozen=True)
class VllmRelease:
    version: str
    gpuMemoryUtilization: float
    batchTiers: tuple[BatchTier, ...]
    cudaGraphsInBudget: bool  # the CUDA-graph memory estimate is taken from the KV budget
    nonTorchInBudget: bool  # CUDA context / NCCL / cuBLAS memory is charged to the budget
    toolCallParsers: tuple[str, ...]
    reasoningParsers: tuple[str, ...]
    source: str = ""

    def batch_tier(self, gpu: Gpu) -> BatchTier:
        gib = gpu.memory_bytes / 1024**3
        for tier in self.batchTiers:
            if gib >= tier.minGpuGiB and gpu.name not in tier.excludeGpus:
                return tier
        return BatchTier(0, 2048, 256)  # SchedulerConfig defaults when no tier applies


@dataclass(frozen=True)
class ParserFamily:
    toolCallParsers: tuple[str, ...]
    reasoningParsers: tuple[str, ...]


@dataclass(frozen=True)
class VllmCatalog:
    image: str
    defaultVersion: str
    releases: dict[str, VllmRelease]
    families: dict[str, ParserFamily]

    @property
    def default_image(self) -> str:
        return f"{self.image}:v{self.defaultVersion}"

    def release_for(self, version: Version | None) -> VllmRelease | None:
        """The catalog release with that exact version, else the newest one not newer than it."""
        if version is None:
            return None
        known = sorted((parse_version(v), r) for v, r in self.releases.items() if parse_version(v))
        candidates = [r for v, r in known if v is not None and v <= version]
        exact = [r for v, r in known if v == version]
        return exact[0] if exact else (candidates[-1] if candidates else None)


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


@lru_cache(maxsize=1)
def vllm() -> VllmCatalog:
    data = _load(DATA / "vllm.yaml")
    releases = {}
    for version, spec in (data.get("versions") or {}).items():
        tiers = tuple(
            BatchTier(float(t["minGpuGiB"]), int(t["maxNumBatchedTokens"]), int(t["maxNumSeqs"]), _as_tuple(t.get("excludeGpus")))
            for t in spec.get("batchTiers") or ()
        )
        sources = spec.get("source") or ""
        releases[str(version)] = VllmRelease(
            version=str(version),
            gpuMemoryUtilization=float(spec["gpuMemoryUtilization"]),
            batchTiers=tiers,
            cudaGraphsInBudget=bool(spec.get("cudaGraphsInBudget", False)),
            nonTorchInBudget=bool(spec.get("nonTorchInBudget", False)),
            toolCallParsers=_as_tuple(spec.get("toolCallParsers")),
            reasoningParsers=_as_tuple(spec.get("reasoningParsers")),
            source=" ".join(sources) if isinstance(sources, list) else str(sources),
        )
    families = {
        str(name): ParserFamily(_as_tuple((spec or {}).get("toolCallParsers")), _as_tuple((spec or {}).get("reasoningParsers")))
        for name, spec in (data.get("families") or {}).items()
    }
    return VllmCatalog(
        image=str(data.get("image", "vllm/vllm-openai")),
        defaultVersion=str(data["defaultVersion"]),
        releases=releases,
        families=families,
    )


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
    cloudCatalogMatch: Literal["exact", "contains"] = "exact"


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
    bytesPerParam: float | None  # None: sized as the checkpoint is published
    needsCheckpoint: bool


@lru_cache(maxsize=1)
def quantization_formats() -> dict[str, QuantizationFormat]:
    data = _load(DATA / "quantization.yaml")["formats"]
    return {str(name): QuantizationFormat(str(name), spec.get("bytesPerParam"), bool(spec.get("needsCheckpoint")))
            for name, spec in data.items()}


@dataclass(frozen=True)
class CloudModel:
    match: str
    contextWindow: int
    maxOutput: int
    vision: bool


@lru_cache(maxsize=1)
def cloud_models() -> dict[str, CloudModel]:
    return {m["match"]: CloudModel(**m) for m in _load(DATA / "cloud_models.yaml")["models"]}


def find_cloud_model(litellm_model: str | None, provider: Provider | None) -> CloudModel | None:
    """The cloud catalog entry of a provider-prefixed LiteLLM id; the longest key first (gpt-4o-mini before gpt-4o)."""
    if not litellm_model:
        return None
    name = litellm_model.split("/", 1)[-1]
    table = cloud_models()
    contains = provider is not None and provider.cloudCatalogMatch == "contains"
    for key in sorted(table, key=len, reverse=True):
        if name == key or (contains and key in name):
            return table[key]
    return None
