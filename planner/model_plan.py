"""Decide what Kindo registers for one model: its Kindo body, its API base, its credential."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from planner.config import ModelEntry, SecretRef
from planner.kindo_body import KindoBody, kindo_body
from planner.resolve import ResolvedModel
from planner.servers import PlannedServer

COST_TIER_CATEGORY = {"HIGH": "Premium", "MEDIUM": "Standard", "LOW": "Budget"}
# Fields a component renders but a reader of `plan --json` does not need.
RENDER_ONLY = ("entry", "key", "body", "check", "needsToolCalling", "adoptModelId", "confirmNotRegistered")


@dataclass(frozen=True)
class CheckPlan:
    """The in-cluster endpoint check of a self-hosted model: the checker's arguments (its key is read from the
    server's Secret) and what makes it run again."""

    server: str  # the PlannedServer's name
    args: list[str]  # arguments of checker/endpoint_checker.py
    fingerprint: str  # changes when the server changes: a new Job, so the check runs again
    deadlineSeconds: int  # every check is time-bounded; the Job's deadline covers them all
    image: str  # the Job's image (a stock Python: the checker is the standard library only), mirrored if the stack says


@dataclass
class PlannedModel:
    litellmModelName: str
    litellmModel: str | None
    displayName: str
    provider: str
    type: str
    metadataType: str
    costTier: str | None
    contextWindow: int | None
    maxTokens: int | None
    apiBase: str | None
    flags: list[str]
    capabilities: dict[str, bool]
    selfHosted: bool
    server: str | None
    key: SecretRef | None
    verify: bool
    entry: ModelEntry = field(repr=False)
    needsToolCalling: bool = False  # routed to a flag that needs tool calling, or the model calls tools
    ambientCredential: str | None = None  # what LiteLLM uses without a key (the provider's, e.g. an IRSA role)
    body: KindoBody | None = None  # the admin API body of `model/new`
    check: CheckPlan | None = None  # the in-cluster endpoint check, for a self-hosted model with `verify`
    adoptModelId: str | None = None  # the stack's kindoModelId: a model Kindo already has, managed, not registered
    confirmNotRegistered: str | None = None  # a placeholder ID whose registration the operator says did not happen
    # The model Kindo moves this one's references to when it is deleted (delete-with-replacement).
    replacement: str | None = None

    @property
    def category(self) -> str:
        return COST_TIER_CATEGORY.get(self.costTier or "", "-")

    @property
    def credential(self) -> str:
        if self.key:
            return self.key.describe()
        if self.selfHosted:
            return "generated (vLLM API key)"
        return self.ambientCredential or "-"

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in RENDER_ONLY and k != "ambientCredential"}
        out.pop("replacement")
        out.update(category=self.category, credential=self.credential, replacement=self.replacement)
        return {key: out[key] for key in JSON_ORDER}


JSON_ORDER = ("litellmModelName", "litellmModel", "displayName", "provider", "type", "metadataType", "category",
              "contextWindow", "maxTokens", "apiBase", "flags", "capabilities", "selfHosted", "server", "credential",
              "verify", "replacement")


def plan_model(resolved: ResolvedModel, server: PlannedServer | None) -> PlannedModel:
    entry = resolved.entry
    api_base = entry.apiBase or (server.url if server else None)
    return PlannedModel(
        litellmModelName=entry.litellmModelName, litellmModel=resolved.litellm_model, displayName=entry.displayName,
        provider=entry.provider, type=entry.type, metadataType=entry.metadataType, costTier=entry.costTier,
        contextWindow=entry.contextWindow, maxTokens=entry.maxTokens, apiBase=api_base, flags=resolved.flags,
        capabilities=resolved.capabilities, selfHosted=entry.vllm is not None, server=server.name if server else None,
        key=entry.api_key, verify=entry.verify, entry=entry, needsToolCalling=resolved.needs_tool_parser,
        ambientCredential=resolved.provider.ambientCredential if resolved.provider else None,
        body=kindo_body(entry, resolved.litellm_model, api_base),
        adoptModelId=entry.kindoModelId, confirmNotRegistered=entry.confirmNotRegistered,
    )
    return model
