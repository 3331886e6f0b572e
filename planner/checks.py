"""Pitfall checks on the contract: one small function per concern, each returning findings.

They judge resolved models (planner/resolve.py) and the stack's settings; none looks a catalog up again. The only
outside fact they read is the environment `pulumi up` will run in (which `${VAR}` keys are set), and it is passed in.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections import Counter
from typing import Mapping, Sequence
from urllib.parse import urlparse

from planner import catalogs
from planner.catalogs import FlagSpec, InstanceType
from planner.config import GpuPool, ModelEntry, SecretRef, Settings
from planner.findings import Finding, error, info, warning
from planner.names import PROJECT
from planner.resolve import ResolvedModel
from planner.servers import PlannedServer

SECRET_FIELDS = ("apiKey", "awsAccessKeyId", "awsSecretAccessKey")
DATED_ID = re.compile(r"\d{8}")
LOCAL_HOSTS = {"localhost", "localhost.localdomain", "host.docker.internal", "ip6-localhost"}
SMALL_CONTEXT = 16384  # below this a chat model cannot hold an agent's tool history (seeds: 4k/8k settings)


def set_secret_command(name: str) -> str:
    return f"pulumi config set --path --secret {PROJECT}:credentials.{name} <key>"


def check_provider(model: ResolvedModel, extra_names: list[str]) -> list[Finding]:
    entry = model.entry
    if model.provider or entry.provider in extra_names:
        return []
    known = sorted(set(catalogs.providers()) | set(extra_names))
    subject = entry.litellmModelName
    folded = {k.lower().replace(" ", "").replace("-", ""): k for k in known}
    near = folded.get(entry.provider.lower().replace(" ", "").replace("-", ""))
    if near:
        return [error("provider-name-mismatch", subject, f"provider {entry.provider!r} differs from Kindo's ModelProvider "
                      f"{near!r} only in spelling; Kindo matches exactly and would create a second provider row. "
                      f"Write {near!r}.")]
    close = difflib.get_close_matches(entry.provider, known, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return [warning("provider-unknown", subject, f"provider {entry.provider!r} is not a ModelProvider Kindo ships "
                    f"({', '.join(known)}); if your installation has no such row, registering creates a new one.{hint} "
                    f"If it exists, list it under {PROJECT}:kindo.providerDisplayNames.")]


def check_litellm_model(resolved: ResolvedModel) -> list[Finding]:
    entry, provider, model = resolved.entry, resolved.provider, resolved.litellm_model
    subject = entry.litellmModelName
    if not model:
        return [error("litellm-model-missing", subject, "litellmModel is required for a model without a `vllm` block: "
                      "the provider-prefixed LiteLLM id, e.g. anthropic/claude-sonnet-4-20250514.")]
    findings: list[Finding] = []
    if provider and not model.startswith(provider.prefixes):
        findings.append(error("litellm-prefix-mismatch", subject, f"litellmModel {model!r} does not start with the "
                              f"{entry.provider} prefix {' or '.join(provider.prefixes)}: LiteLLM would route it to another "
                              f"provider. Use {provider.prefixes[0]}{model.split('/', 1)[-1]}."))
    if entry.vllm and entry.litellmModel:
        served = entry.litellmModel.split("/", 1)[-1]
        if served != entry.litellmModelName:
            findings.append(error("served-name-mismatch", subject, f"litellmModel {entry.litellmModel!r} ends in {served!r}, "
                                  f"but vLLM serves this model as {entry.litellmModelName!r} (--served-model-name is derived "
                                  "from litellmModelName): LiteLLM would get 404. Remove litellmModel (it is derived as "
                                  f"openai/{entry.litellmModelName}) or make its suffix equal litellmModelName."))
    if provider and provider.datedModelIds:
        name = model.split("/", 1)[-1]
        if name.endswith("-latest") or not DATED_ID.search(name):
            findings.append(warning("model-id-undated", subject, f"litellmModel {model!r} is an alias, not a dated model "
                                    f"ID: the model behind it changes without notice. Use the dated ID (e.g. "
                                    "anthropic/claude-sonnet-4-20250514)."))
    return findings


def _is_local(host: str) -> bool:
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def check_api_base(resolved: ResolvedModel) -> list[Finding]:
    entry, provider = resolved.entry, resolved.provider
    if not entry.apiBase:
        return []
    subject = entry.litellmModelName
    parsed = urlparse(entry.apiBase)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return [error("api-base-invalid", subject, f"apiBase {entry.apiBase!r} is not an http(s) URL with a host, "
                      "e.g. https://my-resource.openai.azure.com.")]
    if _is_local(parsed.hostname):
        return [error("api-base-localhost", subject, f"apiBase {entry.apiBase!r} points at {parsed.hostname}: inside the "
                      "cluster that is LiteLLM's own pod, not your server. Use a hostname that resolves from the cluster "
                      "(a Service DNS name or a stable external host).")]
    if provider and provider.standardApiBase and not provider.apiBaseAllowed:
        if entry.apiBase.rstrip("/") != provider.standardApiBase.rstrip("/"):
            return [warning("api-base-standard-provider", subject, f"apiBase is set for {entry.provider}, whose endpoint "
                            f"LiteLLM already knows ({provider.standardApiBase}); a wrong base breaks every request. "
                            "Remove apiBase unless you route through a proxy on purpose.")]
    return []


def check_required_fields(resolved: ResolvedModel) -> list[Finding]:
    entry, provider = resolved.entry, resolved.provider
    if not provider:
        return []
    present = {
        "apiBase": bool(entry.apiBase) or bool(entry.vllm),
        "apiVersion": bool(entry.apiVersion),
        "apiKey": entry.api_key is not None,
        "awsRegion": bool(entry.awsRegion),
    }
    missing = [name for name in provider.requires if not present.get(name, True)]
    if not missing:
        return []
    return [error("provider-required-field", entry.litellmModelName, f"{entry.provider} needs {', '.join(missing)}; "
                  f"without {'them' if len(missing) > 1 else 'it'} LiteLLM cannot route requests. Add "
                  + ", ".join(missing) + " to the model entry.")]


def check_secrets(resolved: ResolvedModel, credentials: dict[str, SecretRef], environ: Mapping[str, str]) -> list[Finding]:
    entry, provider = resolved.entry, resolved.provider
    subject = entry.litellmModelName
    findings: list[Finding] = []
    for name in SECRET_FIELDS:
        ref: SecretRef | None = getattr(entry, name)
        if ref and ref.kind == "plain":
            credential = f"{subject}-{name}".lower().replace(".", "-")
            findings.append(error("plain-text-secret", subject, f"{name} is written in plain text in the stack file: it "
                                  f"would sit in git and in Pulumi state. Store it with `{set_secret_command(credential)}` "
                                  f"and write `{name}: {{credential: {credential}}}`"
                                  + (f" (or `credential: {credential}`)" if name == "apiKey" else "") + "."))
    # `credential:` is shorthand for apiKey, so the same reference can come twice: report it once.
    refs = dict.fromkeys(ref for ref in [entry.api_key, *(getattr(entry, name) for name in SECRET_FIELDS)] if ref)
    for ref in refs:
        if ref and ref.kind == "credential" and ref.name not in credentials and "*" not in credentials:
            findings.append(warning("credential-missing", subject, f"credential {ref.name!r} is not set in this stack; the "
                                    f"model would be registered without its key. Run `{set_secret_command(ref.name)}`."))
        if ref and ref.kind == "env" and ref.name not in environ:
            findings.append(warning("secret-env-unset", subject, f"{ref.describe()} is not set in this environment; "
                                    f"`pulumi up` reads it from the environment it runs in. Export {ref.name} there, or "
                                    f"store it as `{set_secret_command(ref.name.lower())}` and use a credential."))
    if provider and provider.keyRequired and entry.api_key is None and not entry.vllm:
        findings.append(warning("api-key-missing", subject, f"no apiKey or credential for {entry.provider}: LiteLLM falls "
                                "back to its own environment variables, and Kindo's catalog shows the model as missing a "
                                f"key. Add `credential: NAME` and run `{set_secret_command('NAME')}`."))
    if provider and provider.ambientCredential and entry.awsAccessKeyId is None and entry.awsSecretAccessKey is None:
        findings.append(info("bedrock-irsa", subject, "no AWS keys: LiteLLM uses the cluster's IRSA role, which needs "
                             "bedrock:InvokeModel and aws-marketplace:ViewSubscriptions/Subscribe, and the model must be "
                             "enabled under Bedrock > Model access."))
    return findings


def check_types(entry: ModelEntry) -> list[Finding]:
    subject = entry.litellmModelName
    findings: list[Finding] = []
    if entry.metadataType in ("Embeddings", "Transcription") and entry.type != "INTERNAL":
        findings.append(error("model-type-mismatch", subject, f"metadataType {entry.metadataType!r} models are type "
                              "INTERNAL in Kindo; CHAT would offer them in the chat model picker. Set type: INTERNAL."))
    if entry.metadataType == "Text Generation" and entry.type == "INTERNAL":
        findings.append(warning("model-type-mismatch", subject, "a Text Generation model with type INTERNAL is hidden from "
                                "users' chat model picker; set type: CHAT unless that is intended."))
    if entry.metadataType != "Transcription" and not entry.contextWindow:
        findings.append(error("context-window-missing", subject, "contextWindow is required: set it to the model's full "
                              "advertised context window."))
    if entry.contextWindow and entry.maxTokens and entry.maxTokens >= entry.contextWindow:
        findings.append(error("max-tokens-above-context", subject, f"maxTokens {entry.maxTokens:,} is not below contextWindow "
                              f"{entry.contextWindow:,}: no room would be left for the prompt. Use the model's max output."))
    return findings


def check_context(resolved: ResolvedModel, max_that_fits: int | None) -> list[Finding]:
    entry = resolved.entry
    subject = entry.litellmModelName
    if not entry.contextWindow or entry.metadataType == "Transcription":
        return []
    advertised, max_output, source = resolved.advertised
    findings: list[Finding] = []
    if advertised and entry.contextWindow < advertised:
        served = f" (its GPUs hold {max_that_fits:,} tokens)" if max_that_fits else ""
        findings.append(warning("context-window-below-advertised", subject, f"contextWindow {entry.contextWindow:,} is below "
                                f"the {advertised:,} that {source} advertises{served}: Kindo truncates conversations and "
                                f"agents lose context. Raise it to {advertised:,}, or to the most the hardware serves."))
    elif advertised and entry.contextWindow > advertised and not entry.vllm:
        findings.append(error("context-window-above-server", subject, f"contextWindow {entry.contextWindow:,} is above the "
                              f"{advertised:,} that {source} serves: long prompts would fail at the provider. "
                              f"Set it to {advertised:,}."))
    elif not advertised and entry.metadataType == "Text Generation" and entry.contextWindow < SMALL_CONTEXT:
        findings.append(warning("context-window-small", subject, f"contextWindow {entry.contextWindow:,} is small for a chat "
                                "model (the runbook's #1 mistake is 4,096 or 8,096 for a 128k model). Check the provider's "
                                "documented limit and use the full window."))
    if max_output and entry.maxTokens and entry.maxTokens > max_output:
        findings.append(warning("max-tokens-above-model", subject, f"maxTokens {entry.maxTokens:,} is above the "
                                f"{max_output:,} output tokens {source} allows; requests may be rejected. Use {max_output:,}."))
    return findings


def check_flag_names(entry: ModelEntry, specs: dict[str, FlagSpec]) -> list[Finding]:
    findings = []
    for key in entry.flags:
        if key not in specs:
            close = difflib.get_close_matches(key, list(specs), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            findings.append(error("flag-unknown", entry.litellmModelName, f"flag {key!r} is not a Kindo model flag.{hint} If "
                                  f"your Kindo version reads it, declare it under {PROJECT}:unleash.flagRequirements."))
    return findings


def check_flags(table: dict[str, list[str]], specs: dict[str, FlagSpec], models: dict[str, ResolvedModel]) -> list[Finding]:
    findings: list[Finding] = []
    for key, spec in specs.items():
        routed = table.get(key, [])
        if spec.requirement == "required" and not routed:
            findings.append(error("flag-required-empty", key, f"{key} is required and no model routes to it: {spec.description} "
                                  f"would fail. Add {key} to a suitable model's `flags` ({' or '.join(spec.accepts)})."))
        if spec.exactlyOne and len(routed) > 1:
            findings.append(error("flag-single-model", key, f"{key} holds exactly one fallback model, but "
                                  f"{len(routed)} route to it ({', '.join(routed)}). Keep it in one model's flags."))
        if spec.requirement == "conditional" and not routed:
            findings.append(info("flag-conditional-empty", key, f"{key} has no model: {spec.description} stays off."))
        for name in routed:
            model = models.get(name)
            if model is None:
                continue
            if spec.accepts and model.entry.metadataType not in spec.accepts:
                findings.append(error("flag-wrong-model-type", name, f"{key} takes {' or '.join(spec.accepts)} models, but "
                                      f"{name} is {model.entry.metadataType!r}. Remove {key} from its flags."))
            elif spec.needs and not model.capabilities.get(spec.needs, False):
                findings.append(error("flag-capability-missing", name, f"{key} needs {spec.needs}, which {name} does not "
                                      f"have (capabilities.{spec.needs}). Remove {key} from its flags, or set "
                                      f"capabilities.{spec.needs}: true if the model does support it."))
    return findings


def check_duplicates(models: list[ModelEntry]) -> list[Finding]:
    counts = Counter(m.litellmModelName for m in models)
    return [error("duplicate-litellm-model-name", name, f"litellmModelName {name!r} is used by {count} models; it is the "
                  "routing key and must be unique (LiteLLM would load-balance between them). Rename all but one.")
            for name, count in counts.items() if count > 1]


def check_pool(pool: GpuPool, instance: InstanceType | None) -> list[Finding]:
    findings: list[Finding] = []
    if instance is None:
        table = catalogs.instances()
        close = difflib.get_close_matches(pool.instanceType, list(table), n=3, cutoff=0.6)
        findings.append(error("pool-unknown-instance-type", pool.name, f"instanceType {pool.instanceType!r} is not a GPU "
                              f"instance type in the catalog. {('Did you mean ' + ', '.join(close) + '? ') if close else ''}"
                              f"Known families: {', '.join(catalogs.instance_families(table))}."))
    if pool.minSize > pool.maxSize:
        findings.append(error("pool-size-invalid", pool.name, f"minSize {pool.minSize} is above maxSize {pool.maxSize}."))
    if pool.desiredSize is not None and not pool.minSize <= pool.desiredSize <= pool.maxSize:
        findings.append(error("pool-size-invalid", pool.name, f"desiredSize {pool.desiredSize} is outside "
                              f"minSize..maxSize ({pool.minSize}..{pool.maxSize})."))
    if pool.capacityType == "CAPACITY_BLOCK" and not pool.capacityReservationId:
        findings.append(error("pool-capacity-block-id", pool.name, "capacityType CAPACITY_BLOCK needs the Capacity Block's "
                              "capacityReservationId (cr-...)."))
    if pool.capacityType == "SPOT" and pool.capacityReservationId:
        findings.append(error("pool-capacity-conflict", pool.name, "a capacity reservation is for ON_DEMAND or "
                              "CAPACITY_BLOCK capacity, not SPOT. Drop one of them."))
    if instance and instance.reservationAdvised and not pool.capacityReservationId:
        findings.append(warning("pool-capacity-reservation", pool.name, f"{instance.name} capacity is rarely available "
                                "on demand: without a capacity reservation or Capacity Block the node group may never "
                                "scale up. Set capacityReservationId (and capacityType: CAPACITY_BLOCK for a block)."))
    return findings


def check_stack(settings: Settings, self_hosted: list[ModelEntry]) -> list[Finding]:
    findings: list[Finding] = []
    for key, ref in (("kindoApiKey", settings.kindoApiKey), ("unleashApiToken", settings.unleashApiToken)):
        if ref is None:
            findings.append(warning("secret-missing", key, f"{PROJECT}:{key} is not set; `pulumi up` cannot register "
                                    f"models without it. Run `pulumi config set --secret {PROJECT}:{key} <value>`."))
        elif ref.kind == "plain":
            findings.append(error("plain-text-secret", key, f"{PROJECT}:{key} is written in plain text in the stack file. "
                                  f"Remove it and run `pulumi config set --secret {PROJECT}:{key} <value>`."))
    if settings.huggingFaceToken and settings.huggingFaceToken.kind == "plain":
        findings.append(error("plain-text-secret", "huggingFaceToken", f"{PROJECT}:huggingFaceToken is in plain text. Run "
                              f"`pulumi config set --secret {PROJECT}:huggingFaceToken <token>` instead."))
    gated_organizations = catalogs.gated_organizations()
    gated = [m.vllm.model for m in self_hosted if m.vllm and m.vllm.model.split("/")[0].lower() in gated_organizations]
    if gated and settings.huggingFaceToken is None:
        findings.append(warning("huggingface-token-missing", "huggingFaceToken", f"{', '.join(gated)} "
                                f"{'are' if len(gated) > 1 else 'is'} gated on Hugging Face; the download fails without a "
                                f"token. Run `pulumi config set --secret {PROJECT}:huggingFaceToken <token>`."))
    for key, url in (("kindo.apiUrl", settings.kindo.apiUrl if settings.kindo else None),
                     ("unleash.url", settings.unleash.url if settings.unleash else None)):
        if url is None:
            continue
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            findings.append(error("url-invalid", key, f"{PROJECT}:{key} {url!r} is not an http(s) URL, e.g. "
                                  "https://api.kindo.example.com."))
    return findings



def check_service_names(servers: Sequence[PlannedServer]) -> list[Finding]:
    """Two routing keys that give one Kubernetes Service name would serve one model under both names."""
    findings: list[Finding] = []
    names: dict[str, str] = {}
    for server in servers:
        if server.name in names and names[server.name] != server.litellmModelName:
            findings.append(error("service-name-collision", server.litellmModelName, f"litellmModelName "
                                  f"{server.litellmModelName!r} and {names[server.name]!r} give the same Kubernetes Service "
                                  f"name {server.name!r}. Rename one of them."))
        names[server.name] = server.litellmModelName
    return findings
