"""KindoModel: one Kindo global model as a Pulumi resource (contract: reference/kindo-admin-api.md).

Kindo's admin API has two calls: `model/new` (register) and `model/delete-with-replacement`. There is no read,
list or update endpoint, so:
- any change to a field Kindo registers is a REPLACEMENT, create-before-delete (Pulumi's default): the successor
  is registered, the resources that depend on the model's ID (Unleash flag variants) move to it, then the old
  model is deleted with the successor as its replacement;
- a change to a field that lives only in Pulumi state (replacementModelId, providerVersion, ...) is an update
  that calls no API;
- refresh cannot see Kindo: `read` returns the state as it is.

Adoption (`adoptModelId`, the stack's `kindoModelId`). The model already exists in Kindo (the runbook or
`kindo install --apply` registered it): create takes that ID into state WITHOUT calling `model/new`. Kindo cannot
be read, so the entry's fields are taken as the description of the adopted model. Afterwards:
- changing a registered field replaces the adopted model like any other: a successor is registered, flags move,
  the adopted model is deleted with the successor as its replacement (its users follow Kindo's replacement);
- pointing adoptModelId at ANOTHER model replaces this one by adopting that one (no registration) and retires
  the old one into it; setting it to the ID the resource already has, or removing it, only records that;
- check() marks an adoption that was already applied (`adoptionDone`), so a replacement of an adopted model
  registers a successor instead of adopting the same ID again.

Unknown outcomes. After `model/new` was sent, some failures leave Kindo's side unknown: the answer was lost (read
timeout, dropped connection), a 5xx with a body came back, or a 2xx without an ID or without JSON at all. Repeating
the call could register a second model, and Pulumi's Python dynamic provider host cannot return partial state from
a FAILED create (pulumi/dynamic/__main__.py: any exception aborts the gRPC call, and no state is written). So such
a create SUCCEEDS with a placeholder that state remembers: the resource id is `unconfirmed-<uuid>`, `registration`
is "unconfirmed", `unconfirmedReason` says what happened. Nothing ever routes to an unconfirmed model:
- a NEW model's placeholder has `modelId` = the placeholder: UnleashModelFlag.check refuses it, and KindoModel
  itself ends the program (an apply on its outputs raises pulumi.RunError with the instruction);
- a REPLACEMENT's placeholder keeps the old model serving: `modelId` is the old model's ID, `supersedes` too, so
  the flags do not move. The run is NOT stopped there, on purpose: Pulumi retires the old half of a replacement
  at the end of a successful run, but after a failed run it retires it FIRST in the next one
  (retirePendingDeletes), in a fresh provider process that cannot know about the placeholder; that delete
  would move the old model's users to the anchor, or block every later run while flags still carry it. Instead
  the old model's delete, in this same run, hands its retirement to the placeholder (no API call), and
  KindoModel's apply prints the instruction as a warning;
- every later `pulumi up` (and preview) stops in diff with the instruction until the entry says what happened:
  `kindoModelId: <ID seen on Kindo's Models page>` (replaces the placeholder by adopting: no registration) or
  `confirmNotRegistered: <the placeholder ID>` (replaces it by registering once more). The confirmation names
  ONE placeholder, so it can never confirm a later unknown outcome by accident. The placeholder's delete then
  retires the model it supersedes, with the new model as its replacement;
- a placeholder's delete never calls Kindo and never fails, because Pulumi may run it first in a later update
  (after a failed one), in a process that cannot see the answer: it is retired by the answer (then the model it
  superseded is retired into the answer's model, when that happens in the same run), or by removing its entry
  (then a model Kindo may have registered stays in Kindo, unmanaged: every run before said so).

Deletes NEVER happen without a replacement. The replacement is, in order:
1. the successor registered or adopted in the SAME deployment for the same (apiUrl, orgId, litellmModelName):
   the module-level registry below (one provider host process per deployment; this class is pickled by
   reference, so `create` of the successor and `delete` of the old model share this module);
2. else the `replacementModelId` in the model's state;
3. else the delete fails, before any request, saying to set `replacementModelId`.
A delete whose model is already gone succeeds (Pulumi's convention), and one whose replacement is gone never
does: see `model_gone` for how a 404 is told apart.

Unique routing names. Kindo may enforce the documented "unique routing key": a second `model/new` with the same
litellmModelName is refused (a 409, or a 400/422 that says so). A replacement then registers its successor under
the ALTERNATE routing name `<litellmModelName>--next` (the next replacement goes back to the plain name, which is
free again by then). The alternative, deleting the old model first, needs a replacement that exists at that
moment: Kindo would move every user, assistant and workflow step of the model to the type's anchor instead of
its successor, and refuses anyway while Unleash flags still carry the model. With the alternate name Kindo's users
lose nothing (the model ID moves through Kindo's own replacement); what changes is the LiteLLM routing key, which
only matters to callers that use LiteLLM by name (Kindo does not) and to flags that carry routing names, which
take the `routingName` output. A NEW entry whose name Kindo refuses is an existing model: adopt it.

Connection: `configure()` (run in the provider host, on the unpickled object) reads stack config
`kindo-models:kindo` {apiUrl, orgId, userId} and the secret `kindo-models:kindoApiKey`; each missing piece falls
back to KINDO_API_URL, KINDO_ORG_ID, KINDO_USER_ID, KINDO_API_KEY at call time (scripts, tests). Nothing secret
is ever set on the provider before it is pickled into `__provider`, and `__getstate__` drops what `configure()`
stored, so even a configured object pickles without it.

Pulumi runs the provider state's pickle for delete and refresh (pulumi#6490). The class itself is pickled by
reference (today's code runs), but its attributes come from state: keep this module path and class name stable,
and bump PROVIDER_VERSION when a fix must reach resources already in state (an update, no API call).
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime import rpc

from dynamic_providers.http import HttpError, JsonClient, RetryPolicy, Timeout, redact, shorten
from dynamic_providers.props import (
    CONFIG_NAMESPACE, PROVIDER_KEY, ConfigShapeError, config_object, has_unknown, is_unknown, normalize,
    resolve_connection,
)

# 2: adoption, unconfirmed placeholders, deletes of what is already gone, alternate routing names.
PROVIDER_VERSION = "2"
NEW_PATH = "/internal/openapi/admin/model/new"
DELETE_PATH = "/internal/openapi/admin/model/delete-with-replacement"

# Body fields Kindo registers: changing any of them means a new model (no update endpoint).
REGISTERED_FIELDS = ("displayName", "modelProviderDisplayName", "type", "contextWindow", "metadata",
                     "litellmModelName", "litellmParams", "model_info")
# Inputs that live only in Pulumi state.
LOCAL_FIELDS = ("replacementModelId", "adoptModelId", "confirmNotRegistered", "providerVersion")
INPUT_FIELDS = REGISTERED_FIELDS + LOCAL_FIELDS
# Inputs check() derives from the resource's previous inputs; diff ignores them, create reads them.
DERIVED_FIELDS = ("adoptionDone",)
OUTPUT_FIELDS = ("modelId", "registration", "routingName", "unconfirmedReason", "placeholderId", "supersedes")
OBJECT_FIELDS = ("metadata", "litellmParams", "model_info")
MODEL_TYPES = ("CHAT", "INTERNAL")
COST_TIERS = ("LOW", "MEDIUM", "HIGH")
REGISTERED, ADOPTED, UNCONFIRMED = "registered", "adopted", "unconfirmed"  # the `registration` output
UNCONFIRMED_PREFIX = "unconfirmed-"
ALTERNATE_SUFFIX = "--next"
# litellmParams keys whose values are credentials (scrubbed from every error).
SECRET_PARAM = re.compile(r"(?i)(key|secret|token|password|credential)")
FLAG_KEY = re.compile(r"[A-Z][A-Z0-9_]+")
UNLEASH_NAME = re.compile(r"[A-Za-z0-9_.~-]+")  # any Unleash feature name (URL-friendly)
DUPLICATE_WORDS = ("already exist", "duplicate", "unique", "already registered", "already in use", "taken")
# Statuses of a gateway that did not reach Kindo: without a body, the request was not processed (contract).
GATEWAY_STATUSES = (502, 503, 504)

# (environment variable, stack config field) for each piece of the connection
CONNECTION_SOURCES = {
    "apiUrl": ("KINDO_API_URL", f"{CONFIG_NAMESPACE}:kindo.apiUrl"),
    "orgId": ("KINDO_ORG_ID", f"{CONFIG_NAMESPACE}:kindo.orgId"),
    "userId": ("KINDO_USER_ID", f"{CONFIG_NAMESPACE}:kindo.userId"),
    "apiKey": ("KINDO_API_KEY", f"{CONFIG_NAMESPACE}:kindoApiKey (secret)"),
}
AUTH_HINT = (f"Check the Kindo API key: {CONFIG_NAMESPACE}:kindoApiKey in the stack "
             "(`pulumi config set --secret`), or KINDO_API_KEY outside a stack; it is Kindo's UM_INTERNAL_API_KEY")


class KindoModelError(Exception):
    """A Kindo model operation that failed; the first line of the message says what and what to do."""


def is_placeholder(model_id: Any) -> bool:
    """True for the ID of a model whose registration outcome is unknown (see the module docstring)."""
    return isinstance(model_id, str) and model_id.startswith(UNCONFIRMED_PREFIX)


def alternate_name(litellm_model_name: str) -> str:
    """The routing name a successor takes when Kindo refuses a second model under the same name."""
    if litellm_model_name.endswith(ALTERNATE_SUFFIX):
        return litellm_model_name[: -len(ALTERNATE_SUFFIX)]
    return litellm_model_name + ALTERNATE_SUFFIX


# --------------------------------------------------------------------------------- successor registry
@dataclass(frozen=True)
class Successor:
    model_id: str
    confirmed: bool  # Kindo answered model/new with this ID minutes ago (adopted IDs are the operator's word)
    unconfirmed: bool = False  # a placeholder: its registration outcome is unknown
    supersedes: Optional[str] = None  # the model a replacement placeholder took over the retirement of


# Models registered or adopted by THIS process (one provider host per deployment), by (apiUrl, orgId,
# litellmModelName). A replacement creates the successor before deleting the old model, so the old model's delete
# finds it here. Lost when the process ends: a delete retried by a later deployment falls back to replacementModelId.
_SUCCESSORS: dict[tuple[str, str, str], list[Successor]] = {}
_SUCCESSORS_LOCK = threading.Lock()


def _registry_key(conn: "KindoConnection", litellm_model_name: str) -> tuple[str, str, str]:
    return (conn.api_url.rstrip("/"), conn.org_id, litellm_model_name)


def remember_successor(conn: "KindoConnection", litellm_model_name: str, successor: Successor) -> None:
    with _SUCCESSORS_LOCK:
        _SUCCESSORS.setdefault(_registry_key(conn, litellm_model_name), []).append(successor)


def successor_of(conn: "KindoConnection", litellm_model_name: str, deleting_id: str) -> Optional[Successor]:
    """The latest model registered or adopted in this deployment under the same name, other than the one deleted."""
    with _SUCCESSORS_LOCK:
        found = _SUCCESSORS.get(_registry_key(conn, litellm_model_name), [])
        return next((s for s in reversed(found) if s.model_id != deleting_id), None)


def forget_model(conn: "KindoConnection", litellm_model_name: str, model_id: str) -> None:
    """A deleted model can no longer be anyone's replacement."""
    with _SUCCESSORS_LOCK:
        found = _SUCCESSORS.get(_registry_key(conn, litellm_model_name), [])
        found[:] = [s for s in found if s.model_id != model_id]


# Replacements diff() announced in THIS process, by the new litellmModelName: the model being replaced (its own
# ID, or for a placeholder the model that placeholder supersedes). The engine diffs a resource and then creates its
# replacement in the same provider process; create() reads it to keep the old model serving on an unknown outcome
# and to allow the alternate routing name.
_REPLACING: dict[str, Optional[str]] = {}


def note_replacement(litellm_model_name: Any, supersedes: Optional[str]) -> None:
    if isinstance(litellm_model_name, str):
        with _SUCCESSORS_LOCK:
            _REPLACING[litellm_model_name] = supersedes


def replacing(litellm_model_name: str) -> tuple[bool, Optional[str]]:
    """(whether this create replaces a resource, the model it takes over) as diff() announced it."""
    with _SUCCESSORS_LOCK:
        if litellm_model_name not in _REPLACING:
            return False, None
        return True, _REPLACING.pop(litellm_model_name)


def reset_successors() -> None:
    """Forget every registered successor and announced replacement (tests: each test is its own 'deployment')."""
    with _SUCCESSORS_LOCK:
        _SUCCESSORS.clear()
        _REPLACING.clear()


# --------------------------------------------------------------------------------------- connection
@dataclass(frozen=True)
class KindoConnection:
    api_url: str
    org_id: str
    user_id: str
    api_key: str = field(repr=False)

    def client(self, timeout: Timeout, retry: RetryPolicy) -> JsonClient:
        try:
            return JsonClient("Kindo", self.api_url, {"Authorization": f"Bearer {self.api_key}"},
                              secrets=[self.api_key], timeout=timeout, retry=retry,
                              hints={401: AUTH_HINT, 403: AUTH_HINT})
        except ValueError as e:
            raise KindoModelError(f"{CONFIG_NAMESPACE}:kindo.apiUrl (or KINDO_API_URL) is not usable. {e}") from None


def _config_object(value: Any, key: str) -> dict[str, Any]:
    try:
        return config_object(value, key, "{apiUrl, orgId, userId}")
    except ConfigShapeError as e:
        raise KindoModelError(str(e)) from None


# ------------------------------------------------------------------------------------- value helpers
def declared(props: Mapping[str, Any]) -> dict[str, Any]:
    """The declared and derived inputs of a property bag (no `__provider`, no outputs), normalized."""
    return {k: normalize(props[k]) for k in INPUT_FIELDS + DERIVED_FIELDS if props.get(k) is not None}


def _differs(old: Any, new: Any) -> bool:
    if has_unknown(new):
        return True  # not known until dependencies resolve: may change
    return normalize(old) != normalize(new)


def secret_values(inputs: Mapping[str, Any]) -> list[str]:
    """Credentials inside litellmParams: scrubbed from any error, in case Kindo echoes the body."""
    params = inputs.get("litellmParams")
    if not isinstance(params, Mapping):
        return []
    return [str(v) for k, v in params.items() if SECRET_PARAM.search(k) and isinstance(v, (str, int)) and v != ""]


def model_id_of(data: Any) -> Optional[str]:
    """The new model's ID from any of the assumed answer shapes: id, modelId, model.id, data.id."""
    if not isinstance(data, Mapping):
        return None
    nested = [data.get(outer) for outer in ("model", "data")]
    candidates = [data.get("id"), data.get("modelId")] + [n.get("id") for n in nested if isinstance(n, Mapping)]
    for candidate in candidates:
        if isinstance(candidate, bool):
            continue
        if isinstance(candidate, int) or (isinstance(candidate, str) and candidate.strip()):
            return str(candidate).strip()
    return None


def referencing_flags(data: Any, text: str) -> list[str]:
    """Unleash flag keys named in a refusal: strings shaped like a flag key in a list or under a key
    mentioning "flag" (preferred evidence); else flag-shaped words with an underscore inside messages."""
    listed: list[str] = []
    mentioned: list[str] = []

    def add(into: list[str], key: str) -> None:
        if key not in into:
            into.append(key)

    def walk(value: Any, flag_context: bool, under_flag_key: bool = False) -> None:
        if isinstance(value, str):
            # Under a key that names flags (e.g. {"flags": [...]}) any Unleash feature name counts; elsewhere
            # only the upper-case shape of Kindo's own flag keys does.
            if (under_flag_key and UNLEASH_NAME.fullmatch(value)) or (flag_context and FLAG_KEY.fullmatch(value)):
                add(listed, value)
            elif " " in value.strip() or "," in value:  # prose, not an error code
                for word in FLAG_KEY.findall(value):
                    if "_" in word:
                        add(mentioned, word)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                about_flags = "flag" in str(k).lower()
                if about_flags and isinstance(v, Mapping):
                    for name in v:
                        if UNLEASH_NAME.fullmatch(str(name)):
                            add(listed, str(name))
                walk(v, flag_context or about_flags, about_flags)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, True, under_flag_key)

    walk(data if data is not None else text, False)
    return listed or mentioned


# ------------------------------------------------------------------------------------------- checks
def _required_text(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    for key, what in (("displayName", "the name shown in Kindo's UI"),
                      ("modelProviderDisplayName", "an existing ModelProvider display name, spelled exactly "
                                                   "(otherwise Kindo silently creates a new provider)"),
                      ("litellmModelName", "the unique LiteLLM routing key, e.g. claude-sonnet-4-20250514")):
        value = inputs.get(key)
        if not is_unknown(value) and (not isinstance(value, str) or not value.strip()):
            failures.append(CheckFailure(key, f"{key} is required: {what}"))
    name = inputs.get("litellmModelName")
    if isinstance(name, str) and name.strip() and (name != name.strip() or any(c.isspace() for c in name)):
        failures.append(CheckFailure("litellmModelName", f"litellmModelName {name!r} contains whitespace; "
                                                         "use a routing key without spaces"))
    return failures


def _typed_fields(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    kind = inputs.get("type")
    if not is_unknown(kind) and kind not in MODEL_TYPES:
        failures.append(CheckFailure("type", f"type must be CHAT or INTERNAL (embeddings, transcription), got {kind!r}"))
    window = inputs.get("contextWindow")
    if window is not None and not is_unknown(window) and (
            isinstance(window, bool) or not isinstance(window, int) or window <= 0):
        failures.append(CheckFailure("contextWindow", f"contextWindow must be a positive integer (tokens), got {window!r}"))
    for key in OBJECT_FIELDS:
        value = inputs.get(key)
        if value is not None and not is_unknown(value) and not isinstance(value, Mapping):
            failures.append(CheckFailure(key, f"{key} must be an object, got {type(value).__name__}"))
    metadata = inputs.get("metadata")
    tier = metadata.get("costTier") if isinstance(metadata, Mapping) else None
    if tier is not None and not is_unknown(tier) and tier not in COST_TIERS:
        failures.append(CheckFailure("metadata", f"metadata.costTier must be LOW, MEDIUM or HIGH, got {tier!r}"))
    return failures


def _litellm_params(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    params = inputs.get("litellmParams")
    if params is None:
        return [CheckFailure("litellmParams", "litellmParams is required: at least {model: <provider-prefixed model>}")]
    model = params.get("model") if isinstance(params, Mapping) else None
    if isinstance(params, Mapping) and not is_unknown(model) and (not isinstance(model, str) or not model.strip()):
        return [CheckFailure("litellmParams", "litellmParams.model is required: the provider-prefixed LiteLLM model, "
                                              "e.g. anthropic/claude-sonnet-4-20250514")]
    return []


def _local_fields(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    for key, what in (("replacementModelId", "the Kindo model that takes over this one's users when it is deleted"),
                      ("adoptModelId", "the ID of the model Kindo already has (the stack's kindoModelId)")):
        value = inputs.get(key)
        if value is None or is_unknown(value):
            continue
        if not isinstance(value, str) or not value.strip():
            failures.append(CheckFailure(key, f"{key} must be a Kindo model ID (a non-empty string) or absent: {what}; "
                                              f"got {value!r}"))
        elif is_placeholder(value):
            failures.append(CheckFailure(key, f"{key} {value!r} is the placeholder of a registration whose outcome is "
                                              "unknown, not a Kindo model ID; use the ID shown on Kindo's Models page"))
    confirm = inputs.get("confirmNotRegistered")
    if confirm is not None and not is_unknown(confirm) and not is_placeholder(confirm):
        failures.append(CheckFailure("confirmNotRegistered", "confirmNotRegistered takes the placeholder ID the error "
                                     f"showed ({UNCONFIRMED_PREFIX}...), to confirm that one registration did not "
                                     f"happen; got {confirm!r}"))
    return failures


def validate(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    """Every problem with the inputs, each naming its property. Unknown values (preview) are not judged."""
    unknown_keys = [CheckFailure(key, f"{key} is not a KindoModel input; the inputs are: {', '.join(INPUT_FIELDS)}")
                    for key in inputs if key not in INPUT_FIELDS]
    return unknown_keys + _required_text(inputs) + _typed_fields(inputs) + _litellm_params(inputs) + _local_fields(inputs)


# ---------------------------------------------------------------------------------- unknown outcomes
def unconfirmed_instruction(outs: Mapping[str, Any], placeholder: Optional[str] = None) -> Optional[str]:
    """The instruction for a model whose registration outcome is unknown, or None for any other state.
    `placeholder`: the resource id (the outputs of a replacement's placeholder carry the old model's ID)."""
    if outs.get("registration") != UNCONFIRMED:
        return None
    name = outs.get("litellmModelName", "?")
    routing = outs.get("routingName") or name
    placeholder = placeholder or outs.get("placeholderId") or outs.get("modelId", "?")
    serving = (f"Model {outs['supersedes']} keeps serving until then; no flag moved."
               if outs.get("supersedes") else "No flag routes to it.")
    return (f"Kindo model '{name}': the outcome of its registration is unknown ({outs.get('unconfirmedReason', '?')}). "
            f"It was NOT registered again. {serving} Look for '{routing}' (display name '{outs.get('displayName', '?')}') "
            f"on Kindo's Models page, then say what happened in this model's entry and run `pulumi up`: if Kindo has "
            f"it, `kindoModelId: <its ID>` (it is adopted, not registered again); if it does not, "
            f"`confirmNotRegistered: {placeholder}` (it is registered once more).")


def stop_if_unconfirmed(outs: Mapping[str, Any]) -> Optional[str]:
    """What KindoModel's apply does on its outputs. A new model whose registration is unknown ends the program
    with the instruction (pulumi.RunError prints without a traceback); a replacement's placeholder returns the
    instruction, which the apply prints as a warning (see the module docstring for why that run goes on).
    Exposed for engines that stand in for Pulumi in tests."""
    instruction = unconfirmed_instruction(outs)
    if instruction and not outs.get("supersedes"):
        raise pulumi.RunError(instruction)
    return instruction


def _warn_if_unconfirmed(outs: Mapping[str, Any]) -> None:
    instruction = stop_if_unconfirmed(outs)
    if instruction:
        pulumi.log.warn(instruction)


@dataclass(frozen=True)
class Outcome:
    """What one `model/new` call did: "registered" (model_id), "duplicate" (refused: name taken; nothing
    registered) or "unconfirmed" (unknown: reason)."""

    kind: str
    model_id: str = ""
    reason: str = ""


def classify_failure(e: HttpError, routing: str) -> Outcome:
    """Turn a failed `model/new` into an outcome; raise for failures where Kindo certainly registered nothing."""
    if e.kind == "not-json":
        return Outcome(UNCONFIRMED, reason=f"HTTP {e.status} without Kindo's JSON: a proxy or login page answered")
    if e.maybe_processed:
        return Outcome(UNCONFIRMED, reason=f"the answer was lost ({e.kind})")
    if e.status is not None and e.status >= 500 and not (e.status in GATEWAY_STATUSES and not e.from_api
                                                         and e.server_message == "(empty body)"):
        return Outcome(UNCONFIRMED, reason=f"HTTP {e.status} after the request reached Kindo")
    if _says_duplicate(e, routing):
        return Outcome("duplicate")
    raise KindoModelError(_create_failure(routing, e))


def _says_duplicate(e: HttpError, routing: str) -> bool:
    if not e.from_api:
        return False
    if e.status == 409:
        return True
    said = e.server_message.lower()
    return e.status in (400, 422) and any(w in said for w in DUPLICATE_WORDS) and (
        routing.lower() in said or "litellmmodelname" in said or "name" in said)


def _create_failure(name: str, e: HttpError) -> str:
    if e.status in (400, 422):
        return (f"Kindo rejected the body of model '{name}' (HTTP {e.status}: {e.server_message}); fix that field "
                f"in the model's entry in the stack.\n{e}")
    if e.status in GATEWAY_STATUSES:
        return (f"Kindo model '{name}' was not registered: the gateway in front of Kindo answered HTTP {e.status} "
                f"without a body, so the request never reached Kindo; run `pulumi up` again later.\n{e}")
    return f"Kindo model '{name}' was not registered: {e}"


def _duplicate_failure(name: str, tried: list[str], confirming: bool) -> str:
    names = " and ".join(f"'{n}'" for n in tried)
    if confirming:
        return (f"Kindo model '{name}' was not registered: Kindo already has a model named {names} (it enforces unique "
                "routing names), so the registration whose outcome was unknown most likely did happen. Replace "
                "`confirmNotRegistered` in the model's entry by `kindoModelId: <the ID on Kindo's Models page>`.")
    if len(tried) == 1:
        return (f"Kindo model '{name}' was not registered: Kindo already has a model named '{name}' (it enforces "
                "unique routing names). Adopt it: set `kindoModelId: <its ID>` on the entry (the ID is on Kindo's "
                "Models page; the routing report shows the IDs your flags carry), then run `pulumi up`.")
    return (f"Kindo model '{name}' was not replaced: Kindo already has models named {names} (it enforces unique "
            "routing names), and the successor needs one of them free. Retire the model that holds one of these "
            "names (delete-with-replacement on Kindo's side, or adopt it into an entry), then run `pulumi up`.")


# ------------------------------------------------------------------------------------------- deletes
@dataclass(frozen=True)
class Replacement:
    model_id: str
    origin: str
    confirmed: bool  # Kindo registered it in this deployment: it exists now


def model_gone(e: HttpError, deleting_id: str, replacement: Replacement) -> bool:
    """Whether a 404 from delete-with-replacement means the model being deleted no longer exists.

    The contract ASSUMES a 404 when EITHER ID does not exist and documents no body. So: Kindo's own JSON error
    that names the deleting ID and not the replacement says the model is gone; one that names the replacement
    (alone or beside it) may mean the replacement is gone. When the body names neither, the model is taken as
    gone only if the replacement was registered by Kindo in this very deployment, so it exists. Otherwise the
    delete fails and asks the operator. Why that is safe: "gone" deletes nothing in Kindo, it only forgets a model;
    it is said only when Kindo's answer leaves no other reading, never when the replacement may be what is missing
    (then the model may still exist with its users, and forgetting it would strand them on an unmanaged model)."""
    if e.status != 404 or not e.from_api:
        return False
    names_deleting, names_replacement = e.names(deleting_id), e.names(replacement.model_id)
    if names_deleting and not names_replacement:
        return True
    return not names_deleting and not names_replacement and replacement.confirmed


def _delete_failure(id_: str, name: str, replacement: Replacement, e: HttpError) -> str:
    flags = referencing_flags(e.data, e.server_message) if e.status and 400 <= e.status < 500 else []
    if flags and e.status not in (401, 403, 404):
        return (f"Kindo refused to delete model '{name}' ({id_}): Unleash flags {', '.join(flags)} still reference "
                f"it; update those flags' variants to drop {id_} (e.g. to {replacement.model_id}) first, then run "
                f"again.\n{e}")
    if e.status == 404 and e.names(replacement.model_id):
        return (f"Kindo model '{name}' ({id_}) was not deleted: Kindo does not know its replacement "
                f"{replacement.model_id} (from {replacement.origin}). Point replacementModelId at a model that exists "
                f"in Kindo and run again.\n{e}")
    if e.status == 404:
        return (f"Kindo model '{name}' ({id_}) was not deleted: Kindo answered 404 without saying whether the model "
                f"or its replacement {replacement.model_id} (from {replacement.origin}) is missing. Check both on "
                f"Kindo's Models page: if {id_} is gone, remove it from the state with `pulumi state delete <its URN>`; "
                f"if the replacement is gone, point replacementModelId at an existing model and run again.\n{e}")
    return f"Kindo model '{name}' ({id_}) was not deleted (replacement {replacement.model_id}, from {replacement.origin}): {e}"


# ------------------------------------------------------------------------------------------ provider
class KindoModelProvider(ResourceProvider):
    """CRUD for KindoModel against Kindo's admin model API."""

    def __init__(self, timeout: Timeout = Timeout(connect=5.0, read=60.0),
                 retry: RetryPolicy = RetryPolicy(attempts=4, first_wait=0.5, max_wait=8.0, budget=120.0)) -> None:
        super().__init__()
        self.timeout = timeout
        self.retry = retry
        self._configured: dict[str, Any] = {}

    # The pickle in `__provider` must never hold what configure() read (the API key): drop it.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_configured", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._configured = {}

    def configure(self, req: ConfigureRequest) -> None:
        kindo = _config_object(req.config.get(f"{CONFIG_NAMESPACE}:kindo"), f"{CONFIG_NAMESPACE}:kindo")
        self._configured = {
            "apiUrl": kindo.get("apiUrl"),
            "orgId": kindo.get("orgId"),
            "userId": kindo.get("userId"),
            "apiKey": rpc.unwrap_rpc_secret(req.config.get(f"{CONFIG_NAMESPACE}:kindoApiKey")),
        }

    def connection(self) -> KindoConnection:
        """Stack config from configure(), else the environment, read now (never stored before pickling)."""
        values, missing = resolve_connection(getattr(self, "_configured", None) or {}, CONNECTION_SOURCES)
        if missing:
            raise KindoModelError(
                "the Kindo connection is incomplete; set " + ", ".join(missing)
                + f" (stack config `{CONFIG_NAMESPACE}:kindo` {{apiUrl, orgId, userId}} and the secret "
                f"`{CONFIG_NAMESPACE}:kindoApiKey`, or the environment variables outside a stack)")
        return KindoConnection(values["apiUrl"], values["orgId"], values["userId"], values["apiKey"])

    # -- check / diff
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # Outputs and derived fields are the provider's: never taken from the caller, derived here from `olds`
        # (the resource's previous inputs; empty for a new resource).
        inputs = {k: normalize(v) for k, v in news.items()
                  if k not in (PROVIDER_KEY, *OUTPUT_FIELDS, *DERIVED_FIELDS) and v is not None}
        failures = validate(inputs)
        previous = declared(olds or {})
        if inputs.get("adoptModelId") and previous.get("adoptModelId") == inputs["adoptModelId"]:
            inputs["adoptionDone"] = True  # adopted before: a replacement now registers a successor
        return CheckResult(inputs, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # olds are the state's outputs, news the checked inputs; both carry `__provider`, which is not ours to
        # compare (a re-pickled provider is no change to the model). Secrets are compared, never shown.
        if olds.get("registration") == UNCONFIRMED or is_placeholder(id_):
            result = _diff_unconfirmed(id_, olds, news)
            note_replacement(news.get("litellmModelName"), olds.get("supersedes"))
            return result
        changed = [k for k in INPUT_FIELDS if k != "adoptModelId" and _differs(olds.get(k), news.get(k))]
        replaces = [k for k in changed if k in REGISTERED_FIELDS]
        adopt, adopted = news.get("adoptModelId"), olds.get("adoptModelId")
        if is_unknown(adopt) or (adopt and adopt != adopted and adopt != id_):
            replaces.append("adoptModelId")  # another existing model takes this one's place
        if adopt != adopted:
            changed.append("adoptModelId")
        if replaces:
            note_replacement(news.get("litellmModelName"), id_)
        return DiffResult(changes=bool(changed), replaces=replaces)

    # -- create
    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = declared(props)
        conn = self.connection()
        _, supersedes = replacing(str(inputs.get("litellmModelName", "?")))
        adopt = inputs.get("adoptModelId")
        if adopt and not inputs.get("adoptionDone"):
            remember_successor(conn, inputs["litellmModelName"], Successor(adopt, confirmed=False))
            return CreateResult(adopt, _outputs(inputs, adopt, ADOPTED, inputs["litellmModelName"]))
        return self._register(conn, inputs, supersedes)

    def _register(self, conn: KindoConnection, inputs: dict[str, Any], supersedes: Optional[str]) -> CreateResult:
        """model/new; `supersedes`: the model this one replaces (diff announced it), if any."""
        name = str(inputs.get("litellmModelName", "?"))
        confirming = is_placeholder(inputs.get("confirmNotRegistered"))
        # Only a model that replaces another may take the alternate name: for a new entry (or the confirmation of
        # a new entry's unknown registration) a refused name means Kindo has that model: adopt it.
        candidates = [name, alternate_name(name)] if supersedes else [name]
        for routing in candidates:
            outcome = self._post_new(conn, inputs, routing)
            if outcome.kind == REGISTERED:
                remember_successor(conn, name, Successor(outcome.model_id, confirmed=True))
                return CreateResult(outcome.model_id, _outputs(inputs, outcome.model_id, REGISTERED, routing))
            if outcome.kind == UNCONFIRMED:
                return self._placeholder(conn, inputs, routing, outcome.reason, supersedes)
        raise KindoModelError(_duplicate_failure(name, candidates, confirming and not supersedes))

    @staticmethod
    def _placeholder(conn: KindoConnection, inputs: Mapping[str, Any], routing: str, reason: str,
                     supersedes: Optional[str]) -> CreateResult:
        """State's memory of an unknown outcome. A replacement's placeholder keeps the old model serving."""
        placeholder = f"{UNCONFIRMED_PREFIX}{uuid.uuid4()}"
        remember_successor(conn, str(inputs["litellmModelName"]),
                           Successor(placeholder, confirmed=False, unconfirmed=True, supersedes=supersedes))
        outs = _outputs(inputs, supersedes or placeholder, UNCONFIRMED, routing)
        return CreateResult(placeholder, {**outs, "unconfirmedReason": reason, "placeholderId": placeholder,
                                          "supersedes": supersedes})

    def _post_new(self, conn: KindoConnection, inputs: Mapping[str, Any], routing: str) -> Outcome:
        body = {"orgId": conn.org_id, "userId": conn.user_id,
                **{k: inputs[k] for k in REGISTERED_FIELDS if k in inputs}, "litellmModelName": routing}
        secrets = secret_values(inputs)
        try:
            with conn.client(self.timeout, self.retry) as client:
                answer = client.post(NEW_PATH, body, idempotent=False, secrets=secrets)
        except HttpError as e:
            return classify_failure(e, routing)
        model_id = model_id_of(answer.data)
        if model_id is None:
            said = shorten(redact(answer.snippet(), [*secrets, conn.api_key]), 120)
            return Outcome(UNCONFIRMED, reason=f"HTTP {answer.status} without a model ID (looked for id, modelId, "
                                               f"model.id, data.id in: {said})")
        return Outcome(REGISTERED, model_id=model_id)

    # -- read / update
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # Kindo has no read, get or list endpoint (reference/kindo-admin-api.md, "What does not exist"):
        # nothing can be observed, so the state is returned as it is and refresh reports no drift.
        outs = {k: v for k, v in props.items() if k != PROVIDER_KEY}
        outs.setdefault("modelId", id_)
        inputs = {k: outs[k] for k in INPUT_FIELDS + DERIVED_FIELDS if k in outs}
        return ReadResult(id_, outs, inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only fields that live in Pulumi state can get here (diff replaces for anything else): nothing to call.
        old, new = declared(olds), declared(news)
        moved = [k for k in REGISTERED_FIELDS if _differs(old.get(k), new.get(k))]
        if moved:
            raise KindoModelError(
                f"Kindo model {id_} cannot be updated in place ({', '.join(moved)} changed) because Kindo has no "
                "update endpoint; this is a provider bug: diff should have asked for a replacement. Report it.")
        registration = olds.get("registration") or REGISTERED
        return UpdateResult(_outputs(new, olds.get("modelId") or id_, registration,
                                     olds.get("routingName") or new.get("litellmModelName")))

    # -- delete
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        state = declared(props)
        name = str(state.get("litellmModelName", "?"))
        conn = self.connection()
        if props.get("registration") == UNCONFIRMED or is_placeholder(id_):
            return self._delete_placeholder(conn, id_, name, props)
        replacement = self._replacement(id_, name, state, conn)
        if replacement is not None:  # None: a placeholder took over this model's retirement (no API call)
            self._delete_with_replacement(conn, id_, name, replacement)
        forget_model(conn, name, id_)

    def _delete_with_replacement(self, conn: KindoConnection, id_: str, name: str, replacement: Replacement) -> None:
        body = {"deletingModelId": id_, "replacementModelId": replacement.model_id,
                "orgId": conn.org_id, "userId": conn.user_id}
        try:
            with conn.client(self.timeout, self.retry) as client:
                # Idempotent in effect: repeating it after a lost answer deletes nothing more (it answers 404).
                client.post(DELETE_PATH, body, idempotent=True, empty_ok=True)
        except HttpError as e:
            if not model_gone(e, id_, replacement):
                raise KindoModelError(_delete_failure(id_, name, replacement, e)) from None

    def _delete_placeholder(self, conn: KindoConnection, id_: str, name: str, props: Mapping[str, Any]) -> None:
        """A placeholder leaves state without a request of its own. When the operator's answer replaced it in this
        deployment, the model it superseded is retired with the answer's model as its replacement."""
        successor = successor_of(conn, name, id_)
        superseded = props.get("supersedes")
        # No successor here: its entry was removed, or this is a later run's retirement of a placeholder that an
        # answer replaced in a run that then failed. Both leave; neither may block the stack.
        # An unconfirmed successor: the answer's own registration is unknown again, and that placeholder carries on.
        if successor is not None and not successor.unconfirmed and superseded and superseded != successor.model_id:
            origin = f"the model that answered the unknown registration of '{name}'"
            self._delete_with_replacement(conn, superseded, name, Replacement(successor.model_id, origin, successor.confirmed))
        forget_model(conn, name, id_)

    @staticmethod
    def _replacement(id_: str, name: str, state: Mapping[str, Any], conn: KindoConnection) -> Optional[Replacement]:
        successor = successor_of(conn, name, id_)
        if successor is not None and successor.unconfirmed and successor.supersedes == id_:
            return None  # handed over: the placeholder retires this model once its outcome is known
        if successor is not None and successor.unconfirmed:
            raise KindoModelError(
                f"Kindo model '{name}' ({id_}) was not deleted: the registration of its successor has an unknown "
                "outcome, so there is no replacement that certainly exists. Answer that first (the error of the "
                "successor says how), then run `pulumi up` again.")
        if successor is not None:
            return Replacement(successor.model_id, f"the successor '{name}' this deployment created", successor.confirmed)
        configured = state.get("replacementModelId")
        if configured == id_:
            raise KindoModelError(
                f"Kindo model '{name}' ({id_}) was not deleted: its replacementModelId is its own ID; set "
                "replacementModelId to the model that takes over its users, assistants and workflow steps.")
        if configured:
            return Replacement(str(configured), "replacementModelId", confirmed=False)
        raise KindoModelError(
            f"Kindo model '{name}' ({id_}) was not deleted: it has no replacement, and Kindo only deletes a model "
            "by moving its users, assistants and workflow steps to another. Set replacementModelId on it (keep it "
            "in the stack, set the input, run `pulumi up`: an update without API calls), then remove it.")


def _diff_unconfirmed(id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
    """A placeholder changes only by the operator's answer; without one, the run stops here (also in preview)."""
    adopt = news.get("adoptModelId")
    if is_unknown(adopt) or (adopt and adopt != olds.get("adoptModelId")):
        return DiffResult(changes=True, replaces=["adoptModelId"])
    if news.get("confirmNotRegistered") == id_:
        return DiffResult(changes=True, replaces=["confirmNotRegistered"])
    instruction = unconfirmed_instruction({**olds, "registration": UNCONFIRMED}, id_)
    stale = news.get("confirmNotRegistered")
    if stale:
        instruction = f"{instruction} (confirmNotRegistered names {stale}, not this placeholder.)"
    raise KindoModelError(instruction)


def _outputs(inputs: Mapping[str, Any], model_id: str, registration: str, routing: Any) -> dict[str, Any]:
    return {**inputs, "modelId": model_id, "registration": registration, "routingName": routing,
            "unconfirmedReason": None, "placeholderId": None, "supersedes": None}


# ------------------------------------------------------------------------------------------ resource
@dataclass
class KindoModelArgs:
    """The admin API body of the model, as ONE mapping with the wire (camelCase) names the planner produces
    (displayName, modelProviderDisplayName, type, contextWindow, metadata, litellmModelName, litellmParams,
    model_info), plus what lives only in Pulumi state:
    - replacement_model_id: the model that takes over this one's users when it is deleted (the type's anchor);
    - adopt_model_id: the ID of a model Kindo already has (the stack's kindoModelId): adopted, not registered;
    - confirm_not_registered: the placeholder ID of a registration whose outcome was unknown, to confirm that
      it did not happen (the stack's confirmNotRegistered)."""

    body: Mapping[str, Any]
    replacement_model_id: Optional[pulumi.Input[str]] = None
    adopt_model_id: Optional[pulumi.Input[str]] = None
    confirm_not_registered: Optional[pulumi.Input[str]] = None

    def __post_init__(self) -> None:
        unknown = sorted(k for k in self.body if k not in REGISTERED_FIELDS)
        if unknown:
            raise ValueError(f"KindoModelArgs.body has keys that are not Kindo body fields: {', '.join(unknown)}; "
                             f"the fields are {', '.join(REGISTERED_FIELDS)} (orgId and userId come from the connection)")

    def to_props(self) -> dict[str, Any]:
        return {**self.body, "replacementModelId": self.replacement_model_id, "adoptModelId": self.adopt_model_id,
                "confirmNotRegistered": self.confirm_not_registered}


class KindoModel(Resource, module="kindo", name="KindoModel"):
    """A Kindo global model. `modelId` (also the resource id) is what Unleash flag variants carry; `routingName`
    is the litellmModelName Kindo has (the input's, or its alternate after a replacement Kindo forced); and
    `registration` says how the model came into state: registered, adopted, or unconfirmed (a placeholder)."""

    modelId: pulumi.Output[str]
    litellmModelName: pulumi.Output[str]
    routingName: pulumi.Output[str]
    registration: pulumi.Output[str]
    replacementModelId: pulumi.Output[Optional[str]]

    def __init__(self, name: str, args: KindoModelArgs, opts: Optional[pulumi.ResourceOptions] = None,
                 provider: Optional[KindoModelProvider] = None) -> None:
        props = {**args.to_props(), "providerVersion": PROVIDER_VERSION, **{key: None for key in OUTPUT_FIELDS}}
        # litellmParams holds api_key / aws keys: secret in state even when the caller forgot to mark them.
        # (Returning pulumi.Output.secret from the provider fails in the host; this option does not.)
        opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(additional_secret_outputs=["litellmParams"]), opts)
        super().__init__(provider or KindoModelProvider(), name, props, opts)
        # An unknown registration must reach the operator even when no flag routes to the model: a new model's
        # placeholder ends the program, a replacement's is a warning (see the module docstring).
        pulumi.Output.all(registration=self.registration, modelId=self.modelId, litellmModelName=self.litellmModelName,
                          routingName=self.routingName, displayName=getattr(self, "displayName", None),
                          unconfirmedReason=self.unconfirmedReason, placeholderId=self.placeholderId,
                          supersedes=self.supersedes).apply(_warn_if_unconfirmed)
