"""Resolve each model entry ONCE: everything the decisions and the checks need, looked up in one place.

A `ResolvedModel` holds the entry with what the catalogs say about it: the architecture with the stack's
overrides, the vLLM release of its image, its pool and instance type, its capabilities and flags, its LiteLLM id
and cloud-model match, and whether its server needs a tool-call parser. Decisions (planner/servers.py) and checks
(planner/checks.py) judge this object; nothing looks a catalog up a second time.

Resolution also says what it could not resolve (an unknown pool, an architecture the catalog lacks, an image
whose version is unknown or too old), as findings beside the resolved value.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

from planner import catalogs
from planner.catalogs import (
    REQUIRED_FOR_SIZING, Architecture, CloudMatch, FlagSpec, InstanceType, Provider, Route, Version, VllmRelease,
)
from planner.config import GpuPool, ModelEntry, VllmSpec
from planner.findings import Finding, error, info, warning
from planner.routing import model_flags


@dataclass(frozen=True)
class StackContext:
    """What every model of a stack is resolved against."""

    pools: dict[str, GpuPool]
    namespace: str
    default_image: str | None
    flag_specs: dict[str, FlagSpec]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class ResolvedImage:
    image: str
    version: Version | None  # None: the tag is not a version (`latest`, a digest)
    release: VllmRelease | None  # the catalog's release for that version, None when older than every release
    defaults: VllmRelease  # what the server is sized with (the release, else the pinned default)

    @property
    def parser_release(self) -> VllmRelease | None:
        """The release whose parser names the server is checked against: an unpinned image is checked against the
        pinned default; an image older than every catalogued release is not checked."""
        return self.release if self.version is not None else self.defaults


@dataclass(frozen=True)
class ResolvedServer:
    """A self-hosted model's server, resolved far enough to be decided (pool, instance and architecture known)."""

    spec: VllmSpec
    pool: GpuPool
    instance: InstanceType
    architecture: Architecture
    matched_how: str  # '' when the catalog matched the id exactly (or the stack described the model)
    image: ResolvedImage
    namespace: str


@dataclass(frozen=True)
class ResolvedModel:
    entry: ModelEntry
    litellm_model: str | None  # provider-prefixed LiteLLM id (derived as openai/<name> for a vLLM model)
    provider: Provider | None  # None: not a provider Kindo ships
    capabilities: dict[str, bool]
    flags: list[str]
    needs_tool_parser: bool  # routed to a flag that needs tool calling, or the model calls tools
    architecture: Architecture | None  # self-hosted: the catalog's (with overrides) or the stack's description
    cloud: CloudMatch | None  # cloud model: its entry in LiteLLM's map (None: self-hosted, or not in the map)
    server: ResolvedServer | None  # self-hosted and resolvable
    findings: list[Finding] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry.litellmModelName

    @property
    def advertised(self) -> Advertised | None:
        """The limits the model advertises, when known: the architecture's (self-hosted) or LiteLLM's (cloud)."""
        if self.entry.vllm:
            if self.architecture is None:
                return None
            context = self.architecture.maxContext
            return Advertised(context, context, None, self.entry.vllm.model)
        if self.cloud is None:
            return None
        cloud = self.cloud.model
        shown = self.cloud.key if not self.cloud.alias else f"{self.cloud.key} ({cloud.key})"
        return Advertised(cloud.maxInput, cloud.window, cloud.maxOutput, f"{shown} ({cloud.source})")


@dataclass(frozen=True)
class Advertised:
    """A model's published limits. inputLimit <= window; they differ where a provider caps the prompt below the
    window (OpenAI's GPT-5: 272,000 of 400,000), and either is a right contextWindow for Kindo."""

    inputLimit: int | None
    window: int | None
    maxOutput: int | None
    source: str


def litellm_model(entry: ModelEntry) -> str | None:
    if entry.litellmModel:
        return entry.litellmModel
    return f"openai/{entry.litellmModelName}" if entry.vllm else None


def close_match(name: str, options: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


# --------------------------------------------------------------------------------------------- architecture


def resolve_architecture(spec: VllmSpec, subject: str) -> tuple[Architecture | None, str, list[Finding]]:
    """The model's architecture with the stack's overrides, how the catalog matched it ('' when exact or described
    in the stack), and findings."""
    found, how = catalogs.architectures().find(spec.model)
    overrides = spec.architecture.model_dump(exclude_none=True) if spec.architecture else {}
    if found is None:
        missing = [k for k in REQUIRED_FOR_SIZING if k not in overrides]
        if missing:
            return None, "", [error(
                "architecture-unknown", subject,
                f"vllm.model {spec.model!r} is not in the architecture catalog, so its GPU memory cannot be sized. "
                f"Add vllm.architecture with {', '.join(missing)} (from the model's config.json: "
                "num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, max_position_embeddings; "
                "parametersB from the model card), or use a catalogued model id.")]
        overrides.setdefault("huggingFaceIds", [spec.model])
        overrides.setdefault("key", spec.model.lower())
        # A model the stack describes calls tools when it names a parser, unless it says otherwise.
        overrides.setdefault("toolCalling", bool(spec.toolCallParser))
        return catalogs.architecture_from_dict(overrides), "", []
    findings = [info("architecture-matched", subject, f"vllm.model {spec.model!r}: architecture {how}.")] if how else []
    return (found.with_overrides(overrides) if overrides else found), how, findings


# --------------------------------------------------------------------------------------------- image


def image_version(image: str) -> Version | None:
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    return catalogs.parse_version(tag)


def release_of(version: Version | None, image: str, subject: str) -> tuple[VllmRelease | None, list[Finding]]:
    """The recorded release of an image's version. Every final vLLM release is recorded, so a version in range that
    is not recorded is no release at all; a version newer than the newest is checked as the newest, with a warning."""
    vllm = catalogs.vllm()
    if version is None:
        return None, []
    release = vllm.release(version)
    if release is not None:
        return release, []
    oldest, newest = catalogs.parse_version(next(iter(vllm.releases))), catalogs.parse_version(vllm.newest.version)
    if newest is not None and version > newest:
        return vllm.newest, [warning("vllm-version-newer", subject, f"image {image} is newer than the newest vLLM release "
                                     f"the catalog records ({vllm.newest.version}); it is checked and sized as "
                                     f"{vllm.newest.version}. Record it: scripts/gen_vllm_releases.py --release "
                                     f"{catalogs.format_version(version)}.")]
    if oldest is not None and version < oldest:
        return None, [warning("vllm-version-unknown", subject, f"image {image} is older than every vLLM release in the "
                              f"catalog (from {next(iter(vllm.releases))}); its parser names cannot be checked.")]
    same_minor = vllm.having(lambda r: catalogs.parse_version(r.version)[:2] == tuple(version[:2]))  # type: ignore[index]
    return None, [error("vllm-version-unknown", subject, f"image {image}: {catalogs.format_version(version)} is not a vLLM "
                        f"release, so the image does not exist (releases of {version[0]}.{version[1]}: "
                        f"{', '.join(same_minor) or 'none'}). Use one of them, or {vllm.default_image}.")]


def resolve_image(spec: VllmSpec, default_image: str | None, arch: Architecture | None,
                  subject: str) -> tuple[ResolvedImage, list[Finding]]:
    vllm = catalogs.vllm()
    image = spec.image or default_image or vllm.default_image
    version = image_version(image)
    release, findings = release_of(version, image, subject)
    if version is None:
        findings.append(warning("vllm-image-unpinned", subject, f"image {image!r} has no version tag, so parsers and "
                                f"minimum versions cannot be checked and every restart may pull another release. Pin it, "
                                f"e.g. {vllm.default_image}."))
    minimum = catalogs.parse_version(arch.minVllmVersion) if arch and version else None
    if minimum and version and version < minimum:
        findings.append(error("vllm-image-too-old", subject, f"{spec.model} needs vLLM {arch.minVllmVersion} or newer; "
                              f"image {image} is {catalogs.format_version(version)}. Use {vllm.default_image} "
                              "(remove vllm.image to take the default)."))
    # An unpinned or unknown image is sized with the pinned default release.
    defaults = release or vllm.releases[vllm.defaultVersion]
    return ResolvedImage(image, version, release, defaults), findings


# --------------------------------------------------------------------------------------------- capabilities


def resolve_capabilities(entry: ModelEntry, arch: Architecture | None, cloud: CloudMatch | None) -> dict[str, bool]:
    """Explicit capabilities win; else the architecture's (self-hosted) or LiteLLM's map (cloud)."""
    if entry.metadataType != "Text Generation":
        # Embedding and transcription models answer no chat requests: no tools, no images.
        return {"toolCalling": False, "vision": bool(entry.capabilities.vision)}
    tool_calling, vision = entry.capabilities.toolCalling, entry.capabilities.vision
    if entry.vllm:
        override = entry.vllm.architecture
        if arch is None:  # described too sparsely to size: only what the stack says
            arch_tools = override.toolCalling if override and override.toolCalling is not None else bool(entry.vllm.toolCallParser)
            arch_vision = bool(override.vision) if override and override.vision is not None else False
        else:
            arch_tools, arch_vision = arch.toolCalling, arch.vision
        default_tools, default_vision = arch_tools, arch_vision
    else:
        # What LiteLLM's map says; where it is silent, a cloud chat API calls tools through LiteLLM.
        known_tools = cloud.model.toolCalling if cloud else None
        default_tools = True if known_tools is None else known_tools
        default_vision = bool(cloud and cloud.model.vision)
    return {"toolCalling": bool(default_tools if tool_calling is None else tool_calling),
            "vision": bool(default_vision if vision is None else vision)}


def needs_tool_parser(capabilities: dict[str, bool], flags: list[str], specs: dict[str, FlagSpec]) -> bool:
    """A server needs a tool-call parser when its model calls tools or a flag it is routed to needs tool calling."""
    return capabilities["toolCalling"] or any(specs[f].needs == "toolCalling" for f in flags if f in specs)


# --------------------------------------------------------------------------------------------- the model


def resolve_pool(spec: VllmSpec, context: StackContext, subject: str) -> tuple[GpuPool | None, list[Finding]]:
    pool = context.pools.get(spec.gpuPool)
    if pool is not None:
        return pool, []
    known = ", ".join(sorted(context.pools)) or "none defined"
    return None, [error("unknown-pool", subject, f"vllm.gpuPool {spec.gpuPool!r} is not a pool of this stack "
                        f"(pools: {known}).{close_match(spec.gpuPool, list(context.pools))} Add it to gpuPools or fix "
                        "the name.")]


def resolve_cloud(entry: ModelEntry, provider: Provider | None, model_id: str | None) -> CloudMatch | None:
    """The cloud model's entry in LiteLLM's map: baseModel first (an Azure deployment's name says nothing), then
    litellmModel; only the provider's own entries. Self-hosted models are not in the map."""
    if entry.vllm or provider is None or provider.selfHosted:
        return None
    ids: list[tuple[Literal["baseModel", "litellmModel"], str]] = [("baseModel", entry.baseModel)] if entry.baseModel else []
    if model_id:
        ids.append(("litellmModel", model_id))
    return catalogs.cloud_catalog().find(ids, provider, entry.awsRegion)


def resolve_model(entry: ModelEntry, context: StackContext) -> ResolvedModel:
    subject = entry.litellmModelName
    findings: list[Finding] = []
    provider = catalogs.providers().get(entry.provider)
    model_id = litellm_model(entry)
    arch: Architecture | None = None
    server: ResolvedServer | None = None
    cloud = resolve_cloud(entry, provider, model_id)
    if entry.vllm:
        spec = entry.vllm
        pool, pool_findings = resolve_pool(spec, context, subject)
        arch, how, arch_findings = resolve_architecture(spec, subject)
        image, image_findings = resolve_image(spec, context.default_image, arch, subject)
        findings += pool_findings + arch_findings + image_findings
        # A pool whose instance type is unknown has its own finding (checks.check_pool).
        instance = catalogs.instances().get(pool.instanceType) if pool else None
        if pool and instance and arch:
            server = ResolvedServer(spec, pool, instance, arch, how, image, context.namespace)
    capabilities = resolve_capabilities(entry, arch, cloud)
    flags = model_flags(entry.metadataType, capabilities, entry.flags, context.routes)
    return ResolvedModel(
        entry=entry, litellm_model=model_id, provider=provider, capabilities=capabilities, flags=flags,
        needs_tool_parser=needs_tool_parser(capabilities, flags, context.flag_specs), architecture=arch, cloud=cloud,
        server=server, findings=findings,
    )
