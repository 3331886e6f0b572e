"""The Kindo admin API body of a planned model (reference/kindo-admin-api.md, "Mapping from the install-contract").

Pure data: secrets are NOT in it. Where a key belongs, `secret_slots` says which reference fills it, and the
program puts the secret Output there (a named credential, an environment variable, or a server's API key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from planner.config import ModelEntry, SecretRef

# model_info.mode per metadataType: LiteLLM's health check probes a model by its mode, and without one it sends a
# chat completion, which an embedding or transcription endpoint refuses (the model shows unhealthy in the proxy).
# Mode names are LiteLLM's (the `mode` of its model map: embedding, audio_transcription).
HEALTH_CHECK_MODE = {"Embeddings": "embedding", "Transcription": "audio_transcription"}

# litellmParams key -> the contract field whose secret fills it
SECRET_PARAMS = {"api_key": "apiKey", "aws_access_key_id": "awsAccessKeyId", "aws_secret_access_key": "awsSecretAccessKey"}


@dataclass(frozen=True)
class KindoBody:
    fields: dict[str, Any]  # every body field except orgId/userId and the secrets
    secret_slots: dict[str, SecretRef] = field(default_factory=dict)  # litellmParams key -> where its value comes from
    server_key: bool = False  # litellmParams.api_key is the model's own vLLM server key


def kindo_body(entry: ModelEntry, litellm_model: str | None, api_base: str | None) -> KindoBody:
    """The body of `model/new` for an entry, with the LiteLLM id and API base the plan decided for it."""
    metadata = {
        "type": entry.metadataType,
        "costTier": entry.costTier,
        "usageTag": entry.usageTag,
        "description": entry.description,
        "modelCreator": entry.creator,
        "link": entry.docLink,
    }
    params: dict[str, Any] = {
        "model": litellm_model,
        "api_base": api_base,
        "api_version": entry.apiVersion,
        "max_tokens": entry.maxTokens,
        "aws_region_name": entry.awsRegion,
    }
    fields: dict[str, Any] = {
        "displayName": entry.displayName,
        "modelProviderDisplayName": entry.provider,
        "type": entry.type,
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "litellmModelName": entry.litellmModelName,
        "litellmParams": {k: v for k, v in params.items() if v is not None},
    }
    if entry.contextWindow is not None:  # absent in the documented transcription example
        fields["contextWindow"] = entry.contextWindow
    model_info = {"base_model": entry.baseModel, "mode": HEALTH_CHECK_MODE.get(entry.metadataType)}
    if any(model_info.values()):
        fields["model_info"] = {k: v for k, v in model_info.items() if v is not None}
    slots = {param: getattr(entry, name) if name != "apiKey" else entry.api_key for param, name in SECRET_PARAMS.items()}
    slots = {param: ref for param, ref in slots.items() if ref is not None}
    server_key = entry.vllm is not None and "api_key" not in slots and entry.apiBase is None
    return KindoBody(fields=fields, secret_slots=slots, server_key=server_key)
