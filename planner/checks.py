"""Pitfall checks on the contract: one small function per concern, each returning findings.

They judge resolved models (planner/resolve.py) and the stack's settings; none looks a catalog up again. The only
outside fact they read is the environment `pulumi up` will run in (which `${VAR}` keys are set), and it is passed in.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import re
from collections import Counter
from typing import Mapping, Sequence
from urllib.parse import urlparse

from planner import catalogs
from planner.catalogs import CloudModel, FlagSpec, InstanceType, Provider
from planner.config import GpuPool, ModelEntry, SecretRef, Settings
from planner.findings import Finding, error, info, warning
from planner.names import PROJECT
from planner.resolve import ResolvedModel
from planner.servers import PlannedServer

SECRET_FIELDS = ("apiKey", "awsAccessKeyId", "awsSecretAccessKey")
DATED_ID = re.compile(r"\d{8}")
# Anthropic's dateless ids, claude-{name}-{major}[-{minor}] (planner/data/providers.yaml: datelessPinnedFrom).
DATELESS_VERSION = re.compile(r"^claude-[a-z]+-(\d+)(?:-(\d{1,2}))?$")
RETIREMENT_NOTICE_DAYS = 90  # a retirement this close is a warning: time to move before requests fail
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
                      "the provider-prefixed LiteLLM id, e.g. anthropic/claude-sonnet-4-6.")]
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
    return findings


# --------------------------------------------------------------------------------------------- cloud models


def is_retired(model: CloudModel, today: datetime.date) -> bool:
    return model.deprecationDate is not None and model.deprecationDate <= today


def is_pinned_id(name: str, provider: Provider) -> bool:
    """A provider id that names one fixed model: dated (claude-haiku-4-5-20251001), or dateless from the generation on
    which the provider pins dateless ids (Anthropic 4.6: claude-sonnet-4-6, claude-opus-5). Aliases (-latest, the
    dateless forms of older generations such as claude-sonnet-4-5) are not."""
    if name.endswith("-latest"):
        return False
    if DATED_ID.search(name):
        return True
    threshold = catalogs.parse_version(provider.datelessPinnedFrom)
    version = DATELESS_VERSION.match(name)
    return bool(threshold and version and (int(version[1]), int(version[2] or 0)) >= threshold[:2])


def pinned_suggestion(name: str, resolved: ResolvedModel, today: datetime.date) -> str | None:
    """A pinned, unretired id for an undated one: the alias's target, else its newest dated sibling (claude-haiku-4-5
    -> claude-haiku-4-5-20251001); a retired candidate is replaced by its successor. None when nothing qualifies."""
    catalog, provider = catalogs.cloud_catalog(), resolved.provider
    assert provider is not None
    allowed = set(catalog.providers.get(provider.displayName, ()))
    if resolved.cloud and resolved.cloud.alias:
        candidates = [resolved.cloud.model]
    else:
        dated = re.compile(re.escape(name) + r"-\d{8}$")
        candidates = [m for key, m in sorted(catalog.models.items(), reverse=True)
                      if dated.match(key) and m.provider in allowed]
    for candidate in candidates:
        current = catalog.successor_of(candidate, today) if is_retired(candidate, today) else candidate
        if current is not None and is_pinned_id(current.key, provider):
            return catalog.litellm_id(current.key, provider)
    return None


def check_model_id_pinned(resolved: ResolvedModel, today: datetime.date) -> list[Finding]:
    provider, model = resolved.provider, resolved.litellm_model
    if not (provider and provider.datedModelIds and model) or resolved.entry.vllm:
        return []
    name = model.split("/", 1)[-1]
    alias = bool(resolved.cloud and resolved.cloud.alias and resolved.cloud.field == "litellmModel")
    if not alias and is_pinned_id(name, provider):
        return []
    suggestion = pinned_suggestion(name, resolved, today)
    fix = (f"Set litellmModel: {suggestion}" if suggestion else
           f"Use a dated ID (claude-{{name}}-{{major}}-{{minor}}-YYYYMMDD) or a dateless one from the "
           f"{provider.datelessPinnedFrom or 'current'} generation on (claude-{{name}}-{{major}}[-{{minor}}])")
    return [warning("model-id-undated", resolved.name, f"litellmModel {model!r} is an alias, not a dated or pinned model ID: the "
                    f"model behind it changes without notice. {fix}.")]


def _retirement_fix(resolved: ResolvedModel, model: CloudModel, today: datetime.date) -> str:
    catalog, provider, match = catalogs.cloud_catalog(), resolved.provider, resolved.cloud
    assert provider is not None and match is not None
    successor = catalog.successor_of(model, today)
    if successor is None:
        return (f"Choose a current {provider.displayName} model (planner/data/litellm_models.json lists each with its "
                f"deprecation_date) and set {match.field} to it.")
    limits = ", ".join(f"{label} {value:,}" for label, value in (("input", successor.maxInput), ("output", successor.maxOutput))
                       if value)
    target = catalog.litellm_id(successor.key, provider)
    if match.field == "baseModel":
        bare = target.split("/", 1)[-1]
        how = f"deploy {bare}, point litellmModel at that deployment and set baseModel: {bare}"
    else:
        how = f"set litellmModel: {target}"
    return f"Its successor is {target}{f' ({limits})' if limits else ''}: {how}, and check contextWindow and maxTokens."


def check_retirement(resolved: ResolvedModel, today: datetime.date) -> list[Finding]:
    """Retired (on or before today): an error. Retiring within RETIREMENT_NOTICE_DAYS: a warning with the date."""
    match = resolved.cloud
    if match is None or match.model.deprecationDate is None:
        return []
    model, date = match.model, match.model.deprecationDate
    days = (date - today).days
    if days > RETIREMENT_NOTICE_DAYS:
        return []
    what = f"{match.field} {match.value!r}" + (f" ({model.key})" if model.key != match.value.split("/", 1)[-1] else "")
    fix = _retirement_fix(resolved, model, today)
    if days <= 0:
        return [error("model-retired", resolved.name, f"{what} was retired on {date.isoformat()} ({model.source}): every "
                      f"request to it fails. {fix}")]
    return [warning("model-retiring", resolved.name, f"{what} retires on {date.isoformat()}, in {days} day"
                    f"{'s' if days > 1 else ''} ({model.source}); requests fail from then on. {fix}")]


MODES = {"Text Generation": ("chat", "responses"), "Embeddings": ("embedding",), "Transcription": ("audio_transcription",)}


def check_cloud_match(resolved: ResolvedModel) -> list[Finding]:
    """A cloud model LiteLLM's map does not know cannot be checked; one of another kind is registered wrong."""
    entry, provider, match = resolved.entry, resolved.provider, resolved.cloud
    if entry.vllm or provider is None or provider.selfHosted or not resolved.litellm_model:
        return []
    release = catalogs.cloud_catalog().release
    if match is None:
        hint = (" An Azure deployment's name says nothing of its model: set baseModel to the model it serves "
                "(e.g. baseModel: gpt-5.1)." if "apiVersion" in provider.requires else
                " Check the model ID on the provider's model page, or set baseModel to the model it serves.")
        return [info("cloud-model-unknown", entry.litellmModelName, f"{resolved.litellm_model} "
                     + (f"(baseModel {entry.baseModel}) " if entry.baseModel else "")
                     + f"is not a {provider.displayName} model in {release}'s model map: its limits, capabilities and "
                     f"retirement date cannot be checked.{hint}")]
    expected = MODES.get(entry.metadataType, ())
    if match.model.mode and expected and match.model.mode not in expected:
        return [error("cloud-model-kind-mismatch", entry.litellmModelName, f"{match.field} {match.value!r} is a "
                      f"{match.model.mode} model in {release}'s map, but metadataType is {entry.metadataType!r}. Fix "
                      f"metadataType (and type), or point {match.field} at a {expected[0]} model.")]
    return []


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
    if provider and provider.selfHosted:
        return check_api_base_version(entry.apiBase, parsed.path, subject)
    return []


def check_api_base_version(api_base: str, path: str, subject: str) -> list[Finding]:
    """LiteLLM's OpenAI route posts to <apiBase>/chat/completions; vLLM serves /v1/chat/completions (else 404)."""
    path = path.rstrip("/")
    if path.endswith("/v1"):
        return []
    fixed = api_base.rstrip("/") + "/v1"
    message = (f"apiBase {api_base!r} does not end in /v1: LiteLLM posts to <apiBase>/chat/completions, and vLLM (like "
               f"every OpenAI-compatible server) answers /v1/chat/completions, so each request gets 404. "
               f"Set apiBase: {fixed}")
    if not path:  # a bare host: certainly wrong for vLLM
        return [error("api-base-missing-v1", subject, message + ".")]
    return [warning("api-base-missing-v1", subject, message + f" (unless a gateway at {path} maps it).")]


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


def from_esc(key: str, environments: Sequence[str]) -> str:
    """What to say of a key the stack file lacks when it imports ESC environments that may hold it."""
    names = ", ".join(environments)
    return (f"{PROJECT}:{key} is not in the stack file; it is expected from the ESC environment"
            f"{'s' if len(environments) > 1 else ''} {names} (environment: in the stack file), which the planner does "
            f"not open, so it cannot be checked here. `pulumi env open {environments[0]}` shows what it provides.")


def check_secrets(resolved: ResolvedModel, credentials: dict[str, SecretRef], environ: Mapping[str, str],
                  esc: Sequence[str] = ()) -> list[Finding]:
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
            if esc:
                findings.append(info("credential-from-esc", subject, from_esc(f"credentials.{ref.name}", esc)))
            else:
                findings.append(warning("credential-missing", subject, f"credential {ref.name!r} is not set in this "
                                        "stack; the model would be registered without its key. Run "
                                        f"`{set_secret_command(ref.name)}`."))
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


def check_context(resolved: ResolvedModel, server: PlannedServer | None) -> list[Finding]:
    """contextWindow and maxTokens against what the model advertises and, self-hosted, what its server serves."""
    entry = resolved.entry
    if not entry.contextWindow or entry.metadataType == "Transcription":
        return []
    if entry.vllm:
        return self_hosted_context(resolved, server)
    return cloud_context(resolved)


def cloud_context(resolved: ResolvedModel) -> list[Finding]:
    entry, advertised, subject = resolved.entry, resolved.advertised, resolved.name
    window = entry.contextWindow or 0
    if advertised is None or not (advertised.inputLimit or advertised.window):
        if entry.metadataType == "Text Generation" and window < SMALL_CONTEXT:
            return [warning("context-window-small", subject, f"contextWindow {window:,} is small for a chat model (the "
                            "runbook's #1 mistake is 4,096 or 8,096 for a 128k model). Check the provider's documented "
                            "limit and use the full window.")]
        return []
    low = advertised.inputLimit or advertised.window or 0
    high = advertised.window or low
    findings: list[Finding] = []
    both = f"{low:,}-token prompt limit ({high:,} in all)" if high != low else f"{low:,}"
    if window < low:
        findings.append(warning("context-window-below-advertised", subject, f"contextWindow {window:,} is below the "
                                f"{both} that {advertised.source} advertises: Kindo truncates conversations and agents "
                                f"lose context. Set contextWindow: {low}" + (f" (or {high}, the whole window)." if high != low
                                                                             else ".")))
    elif window > high:
        findings.append(error("context-window-above-server", subject, f"contextWindow {window:,} is above the {high:,} "
                              f"that {advertised.source} serves: long prompts would fail at the provider. "
                              f"Set contextWindow: {high}."))
    findings += max_output_findings(resolved, advertised.maxOutput, advertised.source)
    return findings


def max_output_findings(resolved: ResolvedModel, max_output: int | None, source: str) -> list[Finding]:
    tokens = resolved.entry.maxTokens
    if not (max_output and tokens and tokens > max_output):
        return []
    return [warning("max-tokens-above-model", resolved.name, f"maxTokens {tokens:,} is above the {max_output:,} output "
                    f"tokens {source} allows; requests may be rejected. Set maxTokens: {max_output}.")]


def self_hosted_context(resolved: ResolvedModel, server: PlannedServer | None) -> list[Finding]:
    """LiteLLM adds maxTokens as max_tokens to every request that sends none, and vLLM refuses a prompt plus max_tokens
    above --max-model-len: the prompt room is maxModelLen - maxTokens, and contextWindow should not promise more."""
    entry, advertised, subject = resolved.entry, resolved.advertised, resolved.name
    window, tokens = entry.contextWindow or 0, entry.maxTokens or 0
    served = server.maxModelLen if server else window
    room = served - tokens
    findings: list[Finding] = []
    if tokens and 0 < room < window:
        findings.append(warning("max-tokens-limits-prompt", subject, f"maxTokens {tokens:,} leaves prompts {room:,} "
                                f"tokens: LiteLLM sends it as max_tokens with every request that sets none, and vLLM "
                                f"refuses a prompt plus max_tokens above --max-model-len {served:,}, while Kindo is told "
                                f"contextWindow {window:,}, so prompts from {room + 1:,} tokens on fail. Remove maxTokens "
                                f"(vLLM then lets each answer use what the prompt leaves), or set contextWindow: {room} "
                                f"and vllm.maxModelLen: {served}."))
    limit = advertised.window if advertised else None
    if limit and window < limit and (served < limit or window < room):
        hold = f" (its GPUs hold {server.maxContextThatFits:,} tokens)" if server else ""
        keep = (f" With maxTokens {tokens:,}: vllm.maxModelLen: {limit} and contextWindow: {limit - tokens}." if tokens
                else "")
        findings.append(warning("context-window-below-advertised", subject, f"contextWindow {window:,} is below the "
                                f"{limit:,} that {advertised.source} advertises{hold}: Kindo truncates conversations "
                                f"and agents lose context. Raise it to {limit:,}, or to the most the hardware serves."
                                + keep))
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
    findings = [error("duplicate-litellm-model-name", name, f"litellmModelName {name!r} is used by {count} models; it is "
                      "the routing key and must be unique (LiteLLM would load-balance between them). Rename all but one.")
                for name, count in counts.items() if count > 1]
    adopted: dict[str, list[str]] = {}
    for model in models:
        if model.kindoModelId:
            adopted.setdefault(model.kindoModelId, []).append(model.litellmModelName)
    findings += [error("kindo-model-id-duplicate", names[0], f"kindoModelId {model_id!r} is given to {', '.join(names)}: one "
                       "Kindo model can be adopted by one entry. Keep it on the entry it belongs to (the routing report "
                       "shows which models the flags carry) and remove it from the others.")
                 for model_id, names in adopted.items() if len(names) > 1]
    return findings


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
    esc = settings.escEnvironments
    for key, ref in (("kindoApiKey", settings.kindoApiKey), ("unleashApiToken", settings.unleashApiToken)):
        if ref is None and esc:
            findings.append(info("secret-from-esc", key, from_esc(key, esc)))
        elif ref is None:
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
    if gated and settings.huggingFaceToken is None and esc:
        findings.append(info("secret-from-esc", "huggingFaceToken", from_esc("huggingFaceToken", esc)))
    elif gated and settings.huggingFaceToken is None:
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
