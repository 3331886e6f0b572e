"""What the endpoint checker (checker/endpoint_checker.py) checks for each planned model: the plan's side.

`python -m planner verify` builds targets from a plan with the key from this machine; the in-cluster check Job
gets the same target as checker arguments, its key read from the server's Secret (`check_plan`).
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Mapping, Sequence

from checker.endpoint_checker import VLLM_KEY_ENV, Options, Skip, Target, script_args
from planner import catalogs
from planner.model_plan import CheckPlan, PlannedModel
from planner.servers import PlannedServer


# The checks a model's metadataType answers (checker/endpoint_checker.py kinds).
CHECK_KIND = {"Text Generation": "chat", "Embeddings": "embeddings", "Transcription": "transcription"}


class UnknownModel(ValueError):
    """A model name the stack does not have; the message lists what it has."""


def resolve_key(model: PlannedModel, api_key: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """(key, where it came from): --api-key, the model's ${ENV} reference, then VLLM_API_KEY for a vLLM server.
    Never a plain-text key: the planner drops those on reading."""
    if api_key:
        return api_key, "--api-key"
    ref = model.key
    if ref is not None and ref.kind == "env" and environ.get(ref.name):
        return environ[ref.name], f"${{{ref.name}}}"
    if model.selfHosted and environ.get(VLLM_KEY_ENV):
        return environ[VLLM_KEY_ENV], f"${VLLM_KEY_ENV}"
    return None, "none"


def base_url_of(model: PlannedModel, server: PlannedServer | None) -> str | None | Skip:
    """The OpenAI base URL to check: the model's own, its server's in-cluster URL, or its provider's (when that
    provider speaks OpenAI's API); a Skip when the checker cannot speak to the provider."""
    if model.selfHosted:
        return model.apiBase or (server.url if server else None)  # apiBase defaults to the in-cluster Service URL
    provider = catalogs.providers().get(model.provider)
    if provider and provider.openaiCompatible:
        return model.apiBase or provider.standardApiBase
    return Skip(model.litellmModelName, f"{model.provider} has no OpenAI-compatible endpoint this checker speaks: verify "
                "it with the provider's own API (runbook: curl the provider's /v1/models with your key), or pass "
                "--base-url of an OpenAI-compatible proxy")


def target_for(model: PlannedModel, server: PlannedServer | None, base_url: str | None = None,
               api_key: str | None = None, environ: Mapping[str, str] | None = None) -> Target | Skip:
    """The checks a planned model gets: its URL, served name, key, kind, tool calling and max model length."""
    environ = os.environ if environ is None else environ
    name = model.litellmModelName
    if not model.verify:
        return Skip(name, "verify: false in the stack: the endpoint checks are skipped for this model")
    base = base_url or base_url_of(model, server)
    if isinstance(base, Skip):
        return base
    if not base:
        return Skip(name, "no base URL: the model has no apiBase and no planned server (see `plan`)")
    key, source = resolve_key(model, api_key, environ)
    if key is None and not model.selfHosted:
        ref = model.key
        where = (f"${{{ref.name}}} is not set in this environment" if ref is not None and ref.kind == "env"
                 else f"its key is {ref.describe()}, which only `pulumi up` reads" if ref is not None else "it has no key")
        return Skip(name, f"no API key for {model.provider}: {where}. Export it or pass --api-key.")
    served = name if model.selfHosted else (model.litellmModel or name).split("/", 1)[-1]
    return Target(
        model=served,
        baseUrl=base,
        apiKey=key,
        keySource=source,
        kind=CHECK_KIND.get(model.metadataType, "chat"),
        toolCalling=model.needsToolCalling,
        maxModelLen=server.maxModelLen if server else model.contextWindow,
        reasoning=bool(server and server.reasoningParser),
        # A cloud provider serves its advertised window; a request near it would be billed by the 100k tokens.
        skipContext=None if model.selfHosted or base_url else "a cloud model: the provider serves its advertised "
                    "window, and a near-limit request is billed",
        name=name if served != name else None,
    )


def check_plan(model: PlannedModel, server: PlannedServer, image: str, options: Options = Options()) -> CheckPlan | None:
    """The in-cluster check of a self-hosted model's server; None when the model is not checked (`verify: false`).
    The key is not taken from this machine (environ={}): the Job reads it from the server's Secret. `image`: the
    Job's image as the plan decided it (planner/images.py check_image)."""
    target = target_for(model, server, environ={})
    if not isinstance(target, Target):
        return None
    return CheckPlan(
        server=server.name,
        args=script_args(target, options),
        fingerprint=json.dumps([server.image, server.args, server.replicas]),
        deadlineSeconds=int(120 + 6 * (options.readTimeout + options.connectTimeout)),
        image=image,
    )


def targets_for(models: Sequence[PlannedModel], servers: Sequence[PlannedServer], stack: str,
                names: Sequence[str] | None = None, base_url: str | None = None, api_key: str | None = None,
                environ: Mapping[str, str] | None = None) -> list[Target | Skip]:
    """Targets for the named models (all of the plan's when None); UnknownModel names what the stack has."""
    by_name = {m.litellmModelName: m for m in models}
    by_server = {s.name: s for s in servers}
    chosen = list(by_name) if names is None else list(names)
    for name in chosen:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownModel(f"model {name!r} is not in stack {stack} (or its entry is invalid: run `plan`).{hint} "
                               f"The stack has: {', '.join(by_name) or 'no models'}.")
    return [target_for(by_name[n], by_server.get(by_name[n].server or ""), base_url, api_key, environ) for n in chosen]
