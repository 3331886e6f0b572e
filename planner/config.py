"""Stack configuration: the schema of everything under `kindo-models:` and how it is read.

The `models:` entries use the install-contract field names of seeds/prepare-ai-models.txt exactly.
Secrets are never held here: a key is only ever a *reference* (a named credential, an environment
variable, Pulumi `secure:` ciphertext), and a key written in plain text is reduced to the fact that
it was plain, so that the planner can say so without carrying the value anywhere.
"""

from __future__ import annotations

import datetime
import difflib
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator

from planner.catalogs import NOT_OVERRIDABLE, Architecture, quantization_formats
from planner.findings import Finding, error
from planner.loading import StackFileError, read_stack_document, stack_name_from_path
from planner.names import DEFAULT_NAMESPACE, PROJECT
S3_PREFIX = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


# The stack file cannot be read or parsed (planner/loading.py, bounded); the message says where (exit code 2).
ConfigFileError = StackFileError


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from. Never the secret itself.

    kind: credential (named entry of `credentials`), env (`${VAR}` read at deploy time),
    secure (Pulumi-encrypted value in the stack file), plain (written in clear text: an error;
    the value was dropped on reading).
    """

    kind: Literal["credential", "env", "secure", "plain"]
    name: str = ""

    def describe(self) -> str:
        return {
            "credential": f"credential {self.name}",
            "env": f"${{{self.name}}}",
            "secure": "secure config",
            "plain": "PLAIN TEXT",
        }[self.kind]


def parse_secret(value: Any) -> SecretRef | None:
    if value is None or value == "":
        return None
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            return SecretRef("secure")
        if set(value) == {"credential"} and isinstance(value["credential"], str) and value["credential"]:
            return SecretRef("credential", value["credential"])
        raise ValueError(
            "a key is a string `${ENV_VAR}`, `{credential: NAME}` or Pulumi secure config "
            "(`pulumi config set --path --secret ...`)"
        )
    if isinstance(value, str):
        match = ENV_REFERENCE.match(value.strip())
        if match:
            return SecretRef("env", match.group(1))
        return SecretRef("plain")  # the value itself is deliberately not kept
    raise ValueError("a key must be a string such as ${ANTHROPIC_API_KEY} or {credential: NAME}")


Secret = Annotated[SecretRef | None, BeforeValidator(parse_secret)]


def _as_text(value: Any) -> Any:
    # YAML reads an unquoted 2024-10-21 as a date; the contract means the string.
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- models


class Capabilities(Strict):
    toolCalling: bool | None = None
    vision: bool | None = None


# Any field of a catalog architecture (planner/catalogs.py Architecture), to describe a model the catalog lacks or
# correct one: derived from that one definition, constraints included. A version may be written as a YAML number.
_OVERRIDE_INPUT_TYPES: dict[str, Any] = {"minVllmVersion": Text}


def _architecture_override_fields() -> dict[str, Any]:
    hints = get_type_hints(Architecture, include_extras=True)
    return {f.name: (Optional[_OVERRIDE_INPUT_TYPES.get(f.name, hints[f.name])], None)
            for f in fields(Architecture) if f.name not in NOT_OVERRIDABLE}


ArchitectureOverride = create_model(
    "ArchitectureOverride", __base__=Strict, __doc__="A stack's correction or description of a model's architecture.",
    **_architecture_override_fields())

# The weight formats of planner/data/quantization.yaml: the schema accepts exactly what the sizing knows.
Quantization = Literal[tuple(quantization_formats())]  # type: ignore[valid-type]
KvCacheDtype = Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]


class VllmSpec(Strict):
    model: str = Field(min_length=1, description="Hugging Face model id")
    gpuPool: str = Field(min_length=1)
    tensorParallelSize: int | None = Field(None, ge=1, le=64)
    maxModelLen: int | None = Field(None, ge=256)
    quantization: Quantization | None = None
    kvCacheDtype: KvCacheDtype | None = None
    toolCallParser: str | None = None
    reasoningParser: str | None = None
    architecture: ArchitectureOverride | None = None
    replicas: int = Field(1, ge=0, le=100)
    image: str | None = None
    extraArgs: list[Text] = Field(default_factory=list)
    # A change that restarts vLLM: a new verified generation beside the old one (blue-green), or in place (recreate).
    rollout: Literal["blue-green", "recreate"] = "blue-green"
    # Load the weights from S3 with the Run:ai streamer (a one-time Job mirrors the Hub snapshot there).
    weights: str | None = None
    # The Hugging Face commit the server (or the S3 mirror) serves: a rollout is reproducible.
    revision: str | None = None

    @field_validator("weights")
    @classmethod
    def _weights_is_an_s3_prefix(cls, value: str | None) -> str | None:
        if value is not None and not S3_PREFIX.match(value):
            raise ValueError("weights is an S3 prefix the snapshot is mirrored to, s3://BUCKET/PREFIX (a bucket name "
                             "of 3-63 lowercase letters, digits, '.' and '-', then a key prefix)")
        return value

    @field_validator("revision")
    @classmethod
    def _revision_is_a_commit(cls, value: str | None) -> str | None:
        if value is not None and not COMMIT.match(value):
            raise ValueError("revision is the 40-hex commit of the Hugging Face repository (its Files tab, 'History'): a "
                             "branch or tag can move, and a rollout would not be reproducible")
        return value


MetadataType = Literal["Text Generation", "Embeddings", "Transcription"]


class ModelEntry(Strict):
    litellmModelName: str = Field(min_length=1, max_length=200)
    litellmModel: str | None = None  # derived as openai/<litellmModelName> for a `vllm` model
    displayName: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    creator: str | None = None
    type: Literal["CHAT", "INTERNAL"]
    metadataType: MetadataType
    costTier: Literal["LOW", "MEDIUM", "HIGH"] | None = None
    contextWindow: int | None = Field(None, gt=0)
    maxTokens: int | None = Field(None, gt=0)
    apiKey: Secret = None
    credential: str | None = None
    apiBase: str | None = None
    apiVersion: Text | None = None
    awsRegion: str | None = None
    awsAccessKeyId: Secret = None
    awsSecretAccessKey: Secret = None
    baseModel: str | None = None
    usageTag: str | None = None
    description: str | None = None
    docLink: str | None = None
    flags: list[str] = Field(default_factory=list)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    vllm: VllmSpec | None = None
    verify: bool = True
    # Moving an installation that exists: the ID of the model Kindo already has for this entry (adopted: managed,
    # never registered again), or, after a registration whose outcome was unknown, its placeholder ID to confirm that
    # Kindo did not register it (README "Moving an existing installation", "When a registration's outcome is unknown").
    kindoModelId: str | None = Field(None, min_length=1)
    confirmNotRegistered: str | None = Field(None, pattern=r"^unconfirmed-")

    @field_validator("litellmModelName")
    @classmethod
    def _routing_key_has_no_spaces(cls, value: str) -> str:
        if value != value.strip() or any(ch.isspace() for ch in value):
            raise ValueError("a routing key has no spaces; use letters, digits, '-', '.', '_'")
        return value

    @property
    def api_key(self) -> SecretRef | None:
        """The model's API key reference: `credential: NAME` is shorthand for `apiKey: {credential: NAME}`."""
        if self.credential:
            return SecretRef("credential", self.credential)
        return self.apiKey


# --------------------------------------------------------------------------- the rest of the stack


class GpuPool(Strict):
    name: str
    instanceType: str
    minSize: int = Field(0, ge=0)
    maxSize: int = Field(ge=0)
    desiredSize: int | None = Field(None, ge=0)
    capacityType: Literal["ON_DEMAND", "SPOT", "CAPACITY_BLOCK"] = "ON_DEMAND"
    diskSizeGiB: int | None = Field(None, ge=20, le=16384)
    capacityReservationId: str | None = None
    amiType: Literal["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"] = "AL2023_x86_64_NVIDIA"
    subnetIds: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # The GPU memory vLLM will see, in GiB (what torch.cuda.mem_get_info() reports as the total), for GPUs whose usable
    # memory differs from the catalog's cudaMemoryGiB (planner/data/instances.yaml): MIG or vGPU slices, ECC settings.
    gpuMemoryGiB: float | None = Field(None, gt=0, le=1024)
    # Where a node keeps the weights it downloads: nvme (the instance store as RAID0, zone-free) or ebs (a volume per
    # replica from the storage class; the pool must then live in one Availability Zone). None: nvme where the instance
    # type has instance store, else ebs (planner/storage.py).
    weightsCache: Literal["nvme", "ebs"] | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value) or len(value) > 40:
            raise ValueError("a pool name is lowercase letters, digits and '-', starts with a letter, at most 40 characters")
        return value


class Cluster(Strict):
    name: str = Field(min_length=1)
    namespace: str = DEFAULT_NAMESPACE
    nodeRoleArn: str | None = None
    subnetIds: list[str] | None = None
    # An existing StorageClass for the EBS weights caches; None: the program ensures the EBS CSI add-on and its own
    # encrypted gp3 class (only when a pool keeps its cache on EBS).
    storageClass: str | None = Field(None, min_length=1, max_length=253)
    # Who owns each GPU pool's live desired size: none (the program sets it to what its servers need on every up),
    # cluster-autoscaler (installed by the program when the cluster runs none), karpenter (the program never sizes).
    autoscaler: Literal["none", "cluster-autoscaler", "karpenter"] = "none"

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError("a namespace is lowercase letters, digits and '-', starting with a letter")
        return value


class Kindo(Strict):
    apiUrl: str = Field(min_length=1)
    orgId: str = Field(min_length=1)
    userId: str = Field(min_length=1)
    # ModelProvider display names that exist in this installation besides the ones Kindo ships.
    providerDisplayNames: list[str] = Field(default_factory=list)


FlagRequirement = Literal["required", "optional", "conditional"]


class Unleash(Strict):
    url: str = Field(min_length=1)
    project: str = "default"
    environment: str = Field(min_length=1)
    flagRequirements: dict[str, FlagRequirement] = Field(default_factory=dict)
    # What a flag's variant carries: Kindo model IDs (seeds: global-model-management) or routing names, the
    # litellmModelName (seeds: prepare-ai-models, "matches Unleash variants"). Kindo versions differ.
    variantPayload: Literal["ids", "names"] = "ids"


class VllmDefaults(Strict):
    image: str | None = None


REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$")


class Images(Strict):
    """Where every image and chart comes from, for clusters without internet egress (planner/images.py)."""

    # A mirror prefix, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/mirror: an upstream image
    # <host>/<path>:<tag> is pulled as <registry>/<host>/<path>:<tag> (Docker Hub's official images keep `library/`).
    registry: str | None = None
    # Per upstream registry host, a prefix that replaces `<registry>/<host>` (an ECR pull-through cache rule's
    # prefix, e.g. {docker.io: 123456789012.dkr.ecr.us-west-2.amazonaws.com/docker-hub}).
    mirrors: dict[str, str] = Field(default_factory=dict)
    # The OCI location the Helm charts were pushed to (default: oci://<registry>/charts).
    charts: str | None = None

    @field_validator("registry")
    @classmethod
    def _registry_is_a_prefix(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY_HOST.match(value.rstrip("/")):
            raise ValueError("images.registry is a registry host and optional path without a scheme or tag, e.g. "
                             "123456789012.dkr.ecr.us-west-2.amazonaws.com/mirror")
        return value.rstrip("/") if value else value

    @field_validator("mirrors")
    @classmethod
    def _mirrors_are_prefixes(cls, value: dict[str, str]) -> dict[str, str]:
        for host, prefix in value.items():
            if not REGISTRY_HOST.match(host) or "/" in host or not REGISTRY_HOST.match(prefix.rstrip("/")):
                raise ValueError(f"images.mirrors maps an upstream registry host (docker.io, nvcr.io, registry.k8s.io) "
                                 f"to a mirror prefix without a scheme; {host!r}: {prefix!r} is not one")
        return {host: prefix.rstrip("/") for host, prefix in value.items()}

    @field_validator("charts")
    @classmethod
    def _charts_are_oci(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("oci://"):
            raise ValueError("images.charts is an OCI location such as oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/charts")
        return value.rstrip("/") if value else value


# A Prometheus Operator duration (monitoring.coreos.com/v1 `Duration`, the pattern of PodMonitor
# podMetricsEndpoints[].interval in the CRD: prometheus-operator v0.91.0,
# example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml at 00749296a6ed0225f09f8bd9849d764f1280d766).
PROMETHEUS_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
# A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def is_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return bool(LABEL_NAME.match(name)) and (not prefix or bool(LABEL_PREFIX.match(prefix)))


class Observability(Strict):
    """How operators see the vLLM servers serve (planner/observability.py decides; README "Seeing the models serve")."""

    # A PodMonitor per vLLM server, for clusters that run the Prometheus Operator (its CRD must exist).
    podMonitor: bool = False
    # Labels every PodMonitor carries, so that a Prometheus selects it: kube-prometheus-stack's Prometheus selects
    # PodMonitors labelled `release: <its Helm release>` unless podMonitorSelectorNilUsesHelmValues is false.
    podMonitorLabels: dict[str, Text] = Field(default_factory=dict)
    # The Grafana dashboard as a ConfigMap labelled for Grafana's dashboard sidecar (grafana_dashboard: "1").
    dashboard: bool = True
    scrapeInterval: str = "15s"

    @field_validator("podMonitorLabels")
    @classmethod
    def _labels_are_kubernetes_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not is_label_key(key):
                raise ValueError(f"{key!r} is not a Kubernetes label key (an optional "
                                 "DNS prefix and '/', then at most 63 letters, digits, '-', '_', '.'), e.g. release")
            if not LABEL_VALUE.match(text):
                raise ValueError(f"the value of {key}, {text!r}, is not a Kubernetes label value (at "
                                 "most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit), "
                                 "e.g. kube-prometheus-stack")
        return value

    @field_validator("scrapeInterval")
    @classmethod
    def _interval_is_a_prometheus_duration(cls, value: str) -> str:
        if not value or not PROMETHEUS_DURATION.match(value) or not re.search(r"[1-9]", value):
            raise ValueError("a scrape interval is a Prometheus duration above zero (units in the order y w d h m s "
                             "ms, no spaces), e.g. 15s, 30s or 1m")
        return value


@dataclass
class Settings:
    """Validated stack settings. Sections that failed validation are None (their findings say why)."""

    stack: str
    region: str | None = None
    models: list[ModelEntry] = field(default_factory=list)
    gpuPools: list[GpuPool] = field(default_factory=list)
    cluster: Cluster | None = None
    kindo: Kindo | None = None
    unleash: Unleash | None = None
    kindoApiKey: SecretRef | None = None
    unleashApiToken: SecretRef | None = None
    huggingFaceToken: SecretRef | None = None
    credentials: dict[str, SecretRef] = field(default_factory=dict)
    vllm: VllmDefaults = field(default_factory=VllmDefaults)
    images: Images = field(default_factory=Images)
    observability: Observability = field(default_factory=Observability)
    invalid_models: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # what was parsed (secrets as references/markers)
    # Pulumi ESC environments the stack file imports (`environment:`): they can provide any key, secrets included,
    # which the planner cannot see (it does not open environments).
    escEnvironments: tuple[str, ...] = ()


KNOWN_KEYS: dict[str, str] = {
    "models": "list of models (install-contract fields)",
    "gpuPools": "list of GPU node pools",
    "cluster": "{name, namespace, nodeRoleArn, subnetIds, storageClass, autoscaler}",
    "kindo": "{apiUrl, orgId, userId}",
    "kindoApiKey": "secure: pulumi config set --secret kindoApiKey",
    "unleash": "{url, project, environment}",
    "unleashApiToken": "secure: pulumi config set --secret unleashApiToken",
    "huggingFaceToken": "secure: pulumi config set --secret huggingFaceToken",
    "credentials": "{name: secure key}: pulumi config set --path --secret credentials.NAME",
    "vllm": "{image}: defaults for every vLLM server",
    "images": "{registry, mirrors, charts}: where every image and chart is pulled from (clusters without egress)",
    "observability": "{podMonitor, podMonitorLabels, dashboard, scrapeInterval}: metrics of the vLLM servers",
}
SECRET_KEYS = ("kindoApiKey", "unleashApiToken", "huggingFaceToken")


# --------------------------------------------------------------------------- reading


read_stack_file = read_stack_document  # the stack file as a mapping, read within limits (planner/loading.py)


def stack_config(document: dict[str, Any], path: Path) -> tuple[dict[str, Any], str | None]:
    """The `kindo-models:` keys of a stack document (namespace stripped) and `aws:region`."""
    config = document.get("config", document)
    if not isinstance(config, dict):
        raise ConfigFileError(str(path), f"`config:` must be a mapping of keys such as {PROJECT}:models.")
    ours: dict[str, Any] = {}
    region = None
    for key, value in config.items():
        key = str(key)
        if key.startswith(f"{PROJECT}:"):
            ours[key.split(":", 1)[1]] = value
        elif key == "aws:region":
            region = value if isinstance(value, str) else None
        elif ":" not in key:
            ours[key] = value  # a bare mapping (no namespace), e.g. a test fixture
    return ours, region


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at `loc` (for 'did you mean' on a misspelt key)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        annotation = info.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            for c in candidates:
                for inner in getattr(c, "__args__", ()):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        current = inner
    return list(getattr(current, "model_fields", {}) or [])


def _shorten(value: Any, limit: int = 60) -> str:
    """A short picture of a value for a message. Never the whole of it: a value can be huge or deeply nested (an
    alias-built structure), and repr() would walk all of it."""
    text = _preview(value, limit, 0)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _preview(value: Any, budget: int, depth: int) -> str:
    """repr-like text of at most about `budget` characters, looking at most 3 levels and `budget` items deep."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"  # str() of it can raise
    if isinstance(value, str):
        return repr(value[:budget + 1])
    if not isinstance(value, (dict, list, tuple)):
        return repr(value) if isinstance(value, (int, float, bool, type(None), datetime.date)) else f"<{type(value).__name__}>"
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    if depth >= 3:
        return opening + "..." + closing
    items = iter(value.items()) if isinstance(value, dict) else iter(value)
    parts: list[str] = []
    used = 0
    for item in items:
        if used > budget:
            parts.append("...")
            break
        piece = (f"{_preview(item[0], budget, depth + 1)}: {_preview(item[1], budget, depth + 1)}"
                 if isinstance(value, dict) else _preview(item, budget, depth + 1))
        parts.append(piece)
        used += len(piece) + 2
    return opening + ", ".join(parts) + closing


def validation_findings(exc: ValidationError, model: type[BaseModel], prefix: str, subject: str) -> list[Finding]:
    findings: list[Finding] = []
    for problem in exc.errors(include_url=False):
        loc = tuple(problem.get("loc", ()))
        where = f"{prefix}.{_loc(loc)}" if loc else prefix
        kind = problem.get("type", "")
        if kind == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(name, _known_fields(model, loc), n=1, cutoff=0.6)
            hint = f" Did you mean `{close[0]}`?" if close else f" Valid fields: {', '.join(_known_fields(model, loc))}."
            findings.append(error("config-unknown-field", subject, f"{where}: unknown field `{name}`.{hint}"))
        elif kind == "missing":
            findings.append(error("config-missing-field", subject, f"{where} is required: add it to the entry."))
        else:
            message = problem.get("msg", "invalid").removeprefix("Value error, ")
            shown = "" if "secret" in where.lower() or "key" in where.lower() else f" (got {_shorten(problem.get('input'))})"
            findings.append(error("config-invalid", subject, f"{where}: {message}{shown}. Fix the value in the stack file."))
    return findings


def _unknown_keys(raw: dict[str, Any]) -> list[Finding]:
    findings = []
    for key in raw:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, list(KNOWN_KEYS), n=1, cutoff=0.6)
            hint = f"Did you mean `{PROJECT}:{close[0]}`?" if close else f"Known keys: {', '.join(KNOWN_KEYS)}."
            findings.append(error("config-unknown-key", key, f"{PROJECT}:{key} is not a setting of this project. {hint}"))
    return findings


def _entries(raw: dict[str, Any], key: str, what: str) -> tuple[list[Any], list[Finding]]:
    """The list under `key` (absent or null: empty), or a finding when it is not a list."""
    value = raw.get(key)
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [error("config-invalid", key, f"{PROJECT}:{key} must be a list of {what}, not a {type(value).__name__}.")]
    return value, []


def _entry_subject(entry: Any, name_field: str, where: str) -> str:
    name = entry.get(name_field) if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name else where


def _parse_models(raw: dict[str, Any], settings: Settings) -> list[Finding]:
    entries, findings = _entries(raw, "models", "model entries")
    for index, entry in enumerate(entries):
        subject = _entry_subject(entry, "litellmModelName", f"models[{index}]")
        if not isinstance(entry, dict):
            findings.append(error("config-invalid", subject, f"models[{index}] must be a mapping of contract fields, not {_shorten(entry)}."))
            settings.invalid_models += 1
            continue
        try:
            settings.models.append(ModelEntry.model_validate(entry))
        except ValidationError as exc:
            findings.extend(validation_findings(exc, ModelEntry, f"models[{index}]", subject))
            settings.invalid_models += 1
    return findings


def _parse_pools(raw: dict[str, Any], settings: Settings) -> list[Finding]:
    entries, findings = _entries(raw, "gpuPools", "pools")
    for index, entry in enumerate(entries):
        try:
            settings.gpuPools.append(GpuPool.model_validate(entry))
        except ValidationError as exc:
            findings.extend(validation_findings(exc, GpuPool, f"gpuPools[{index}]", _entry_subject(entry, "name", f"gpuPools[{index}]")))
    return findings


# Object-valued sections: (key, schema, required).
SECTIONS: tuple[tuple[str, type[BaseModel], bool], ...] = (
    ("cluster", Cluster, True), ("kindo", Kindo, True), ("unleash", Unleash, True), ("vllm", VllmDefaults, False),
    ("images", Images, False), ("observability", Observability, False),
)


def _parse_sections(raw: dict[str, Any], settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    for key, model, required in SECTIONS:
        value = raw.get(key)
        if value is None:
            if required:
                findings.append(error("config-missing-key", key, f"{PROJECT}:{key} is required: {KNOWN_KEYS[key]}."))
            continue
        try:
            setattr(settings, key, model.model_validate(value))
        except ValidationError as exc:
            findings.extend(validation_findings(exc, model, key, key))
    return findings


def _parse_secrets(raw: dict[str, Any], settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    for key in SECRET_KEYS:
        try:
            setattr(settings, key, parse_secret(raw.get(key)))
        except ValueError as exc:
            findings.append(error("config-invalid", key, f"{PROJECT}:{key}: {exc}."))
    credentials_raw = raw.get("credentials") or {}
    if isinstance(credentials_raw, dict) and set(credentials_raw) == {"secure"}:
        # `pulumi config set --secret credentials '{...}'` encrypts the whole map: names unknown until deploy.
        settings.credentials = {"*": SecretRef("secure")}
        return findings
    if not isinstance(credentials_raw, dict):
        return findings + [error("config-invalid", "credentials", f"{PROJECT}:credentials must map a name to a secure key.")]
    for name, value in credentials_raw.items():
        try:
            ref = parse_secret(value)
        except ValueError as exc:
            findings.append(error("config-invalid", f"credentials.{name}", f"{PROJECT}:credentials.{name}: {exc}."))
            continue
        if ref is not None:
            settings.credentials[str(name)] = ref
    return findings


def parse_settings(raw: dict[str, Any], stack: str, region: str | None = None) -> tuple[Settings, list[Finding]]:
    """Validate each section on its own, so that one mistake does not hide the others."""
    settings = Settings(stack=stack, region=region, raw=raw if isinstance(raw, dict) else {})
    findings = _unknown_keys(raw)
    for parse in (_parse_models, _parse_pools, _parse_sections, _parse_secrets):
        findings.extend(parse(raw, settings))
    return settings, findings


def esc_environments(document: dict[str, Any]) -> tuple[tuple[str, ...], list[Finding]]:
    """The ESC environments a stack file imports: `environment: [a, b]`, or `environment: {imports: [...]}` (an
    import may be written `name` or `{name: {merge: false}}`, as in ESC's own imports)."""
    value = document.get("environment")
    if value is None:
        return (), []
    imports = value.get("imports") if isinstance(value, dict) else value
    names: list[str] = []
    for item in imports if isinstance(imports, list) else [None]:
        if isinstance(item, str) and item:
            names.append(item)
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
            names.append(next(iter(item)))
        else:
            return (), [error("config-invalid", "environment", "`environment:` lists the ESC environments the stack "
                              "imports, e.g. `environment: [kindo-models/dev-secrets]`; got "
                              f"{_shorten(value)}. Fix it as Pulumi's docs show (pulumi config env add NAME).")]
    return tuple(names), []


def load_settings(path: Path, stack: str | None = None) -> tuple[Settings, list[Finding]]:
    return settings_from_document(read_stack_file(path), path, stack)


def settings_from_document(document: dict[str, Any], path: Path, stack: str | None = None
                           ) -> tuple[Settings, list[Finding]]:
    raw, region = stack_config(document, path)
    name = stack or stack_name_from_path(path)
    settings, findings = parse_settings(raw, name, region)
    settings.escEnvironments, esc_findings = esc_environments(document)
    return settings, findings + esc_findings
