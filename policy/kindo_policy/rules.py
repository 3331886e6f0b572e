"""The pack's checks as plain functions: resource props in, violation messages out.

The kindo-models rules are the planner's own, never restated here. Our components register the slice of the
planner's input they render (the `kindo-models:` keys of a stack file) as the property `kindoModels`; these
functions read those slices back, run `make_plan` on them and turn every error finding into a violation with
the text the program prints for it (program.report): `Finding.line`, `code [subject]: message`.

Two checks look at rendered Kubernetes objects, where the planner has no say: a vLLM container must request as
many `nvidia.com/gpu` as its command line uses, and a Hugging Face token may live only in a Kubernetes Secret.

Props arrive from pulumi_policy wrapped in proxies that raise on values unknown during preview; `plain()` turns
them into dicts and lists, marking unknown values `UNKNOWN` and secret-marked values `Marked`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_BOOLEAN_VALUE
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE, _DictProxy, _ListProxy
from pulumi_policy.secret import Secret, _DictSecretsProxy, _ListSecretsProxy

from .planner_path import ensure_planner

ensure_planner()

from planner.config import parse_settings  # noqa: E402
from planner.findings import Finding  # noqa: E402
from planner.plan import Plan, make_plan  # noqa: E402
from planner.policy_input import PLAN_INPUT, plan_input_props  # noqa: E402,F401 - one definition, shared with the components
from planner.vllm_args import FIELD_FLAGS, extra_arg_value  # noqa: E402

# --------------------------------------------------------------------------- our resource types and their property

VLLM_SERVER = "kindo-models:index:VllmServer"
GPU_NODE_POOL = "kindo-models:index:GpuNodePool"
MODEL_CATALOG = "kindo-models:index:ModelCatalog"
PLAN_INPUT_TYPES = (MODEL_CATALOG, VLLM_SERVER, GPU_NODE_POOL)
# The property (input AND registered output) that carries a component's slice of the planner's input:
#   {"stack": NAME (optional), "config": {kindo-models keys as in a stack file}, "server": {"args": [...]} (VllmServer)}

K8S_SECRET = "kubernetes:core/v1:Secret"
# Where each workload kind keeps its pod spec (wire names, as the engine hands props to the pack).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
GPU_RESOURCE = "nvidia.com/gpu"

# Pulumi's wire envelope for a secret value (sdk/go/common/resource/properties.go), as raw state carries it.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_SENTINELS = frozenset({UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_BOOLEAN_VALUE,
                               UNKNOWN_NUMBER_VALUE, UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE})


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Marked:
    """A value that carries Pulumi's secret marker (a pulumi_policy.Secret, or the wire envelope)."""

    value: Any


def plain(value: Any) -> Any:
    """Props as dicts, lists and scalars; unknown values become UNKNOWN, secret-marked values Marked(value)."""
    if isinstance(value, (_DictProxy, _ListProxy, _DictSecretsProxy, _ListSecretsProxy)):
        value = value["__target"]  # the proxies hand out their wrapped container under this key
    if isinstance(value, Secret):
        return Marked(plain(value.value))
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        if value.get(SIG_KEY) == SECRET_SIG:
            return Marked(plain(value.get("value")))
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Sequence):
        return [plain(item) for item in value]
    return value


def contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, Marked):
        return contains_unknown(value.value)
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def unmarked(value: Any) -> Any:
    """Plan input without markers: a secret-marked value is, to the planner, Pulumi secure config."""
    if isinstance(value, Marked):
        return {"secure": "[secret]"}
    if isinstance(value, dict):
        return {k: unmarked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unmarked(v) for v in value]
    return value


# --------------------------------------------------------------------------- the planner's input, read back


@dataclass
class PlanInput:
    """One component's slice of the planner's input."""

    type: str
    urn: str
    name: str
    stack: str
    config: dict[str, Any]
    args: list[str] | None = None  # VllmServer: the command line its Deployment runs

    @property
    def models(self) -> list[dict[str, Any]]:
        return [m for m in self.config.get("models") or [] if isinstance(m, dict)]

    @property
    def pools(self) -> list[dict[str, Any]]:
        return [p for p in self.config.get("gpuPools") or [] if isinstance(p, dict)]


class PlanInputUnknown(Exception):
    """The plan input holds a value unknown during preview; the policy cannot run on it yet."""


def stack_of(urn: str) -> str:
    """urn:pulumi:STACK::PROJECT::TYPE::NAME -> STACK."""
    head = urn.split("::", 1)[0]
    parts = head.split(":", 2)
    return parts[2] if len(parts) == 3 else ""


def plan_input(resource_type: str, urn: str, name: str, props: Any) -> PlanInput | None:
    """The component's slice of the planner's input, or None when the resource carries none."""
    if resource_type not in PLAN_INPUT_TYPES:
        return None
    props = plain(props)
    value = props.get(PLAN_INPUT) if isinstance(props, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        return None
    if contains_unknown(value):
        raise PlanInputUnknown(f"{resource_type} {name}: {PLAN_INPUT} is not known until the update runs")
    value = unmarked(value)
    server = value.get("server") if isinstance(value.get("server"), dict) else {}
    args = server.get("args")
    stack = value.get("stack") if isinstance(value.get("stack"), str) and value.get("stack") else stack_of(urn)
    return PlanInput(resource_type, urn, name, stack, copy.deepcopy(value["config"]),
                     [str(a) for a in args] if isinstance(args, list) else None)


def message(finding: Finding) -> str:
    """A finding as the program reports it (program.report) and as every violation of this pack reads."""
    return finding.line


def plan_config(config: dict[str, Any], stack: str) -> Plan:
    settings, findings = parse_settings(copy.deepcopy(config), stack)
    return make_plan(settings, findings)




def as_deployed(entry: dict[str, Any], args: list[str]) -> dict[str, Any]:
    """The model entry as its server's command line actually serves it, for the planner to judge.

    Every flag the plan derives is read back into its field (a parser, the context, the tensor parallel size ...).
    A command line without --tool-call-parser serves no parser at all, whatever the catalog recommends: the
    architecture's parser is blanked, so a tool-calling model gets the planner's tool-parser-missing error.
    """
    entry = copy.deepcopy(entry)
    spec = entry.get("vllm")
    if not isinstance(spec, dict):
        return entry
    if args and not args[0].startswith("-"):
        spec["model"] = args[0]
    for flag, name in FIELD_FLAGS:
        value = extra_arg_value(args, flag)
        if value is not None:
            spec[name] = value
    if extra_arg_value(args, "--tool-call-parser") is None:
        spec.pop("toolCallParser", None)
        architecture = spec.get("architecture") if isinstance(spec.get("architecture"), dict) else {}
        spec["architecture"] = {**architecture, "toolCallParser": ""}
    return entry


def _names(items: list[dict[str, Any]], key: str, prefix: str) -> set[str]:
    # The planner names an entry without a usable name by its position, e.g. models[0].
    return {item[key] if isinstance(item.get(key), str) and item.get(key) else f"{prefix}[{index}]"
            for index, item in enumerate(items)}


def own_findings(plan: Plan, subjects: set[str]) -> list[str]:
    return [message(f) for f in plan.errors if f.subject in subjects]


def vllm_server_messages(server: PlanInput) -> list[str]:
    """Errors the planner finds in the model a VllmServer serves, judged as its command line serves it."""
    config = copy.deepcopy(server.config)
    models = [m for m in config.get("models") or []]
    if server.args is not None and models and isinstance(models[0], dict):
        models[0] = as_deployed(models[0], server.args)
        config["models"] = models
    return own_findings(plan_config(config, server.stack), _names(server.models, "litellmModelName", "models"))


def gpu_node_pool_messages(pool: PlanInput) -> list[str]:
    """Errors the planner finds in a GpuNodePool's pool."""
    return own_findings(plan_config(pool.config, pool.stack), _names(pool.pools, "name", "gpuPools"))


@dataclass
class StackInput:
    config: dict[str, Any]
    stack: str
    complete: bool  # a ModelCatalog carried the whole stack's input
    owners: dict[str, str] = field(default_factory=dict)  # subject -> URN of the component that renders it
    default_urn: str | None = None


def merge(inputs: list[PlanInput]) -> StackInput:
    """The components' slices as one planner input.

    A ModelCatalog's slice (the whole catalog) comes first. A VllmServer's model, as its command line serves
    it, takes the place of the catalog's entry of that name; any other model or pool is added unless an equal
    entry is already there, so two different entries under one name reach the planner, which reports them.
    Object-valued keys (cluster, kindo, unleash, vllm, credentials, secret keys) come from the first slice that
    has them.
    """
    ordered = sorted(inputs, key=lambda i: PLAN_INPUT_TYPES.index(i.type))
    catalogs = [i for i in ordered if i.type == MODEL_CATALOG]
    stack = ordered[0].stack if ordered else ""
    config: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    pools: list[dict[str, Any]] = []
    from_catalog: dict[str, int] = {}
    owners: dict[str, str] = {}
    for item in ordered:
        entries = item.models
        if item.type == VLLM_SERVER and item.args is not None and entries:
            entries = [as_deployed(entries[0], item.args), *entries[1:]]
        for entry in entries:
            name = entry.get("litellmModelName")
            if item.type == VLLM_SERVER and name in from_catalog:
                models[from_catalog.pop(name)] = entry
            elif entry not in models:
                if item.type == MODEL_CATALOG and isinstance(name, str):
                    from_catalog.setdefault(name, len(models))
                models.append(entry)
            if isinstance(name, str) and (item.type == VLLM_SERVER or name not in owners):
                owners[name] = item.urn
        for pool in item.pools:
            if pool not in pools:
                pools.append(pool)
            name = pool.get("name")
            if isinstance(name, str) and (item.type == GPU_NODE_POOL or name not in owners):
                owners[name] = item.urn
        for key, value in item.config.items():
            if key not in ("models", "gpuPools") and key not in config:
                config[key] = value
    if models or catalogs:
        config["models"] = models
    if pools or catalogs:
        config["gpuPools"] = pools
    return StackInput(config, stack, bool(catalogs), owners, catalogs[0].urn if catalogs else None)


def stack_messages(inputs: list[PlanInput]) -> list[tuple[str | None, str]]:
    """(URN or None, message) for every error the planner finds in the components' stack.

    With a ModelCatalog the stack's whole input is known and every error counts. Without one (a program that
    uses only our infrastructure components) the input is partial: errors about what is absent (kindo, unleash,
    flags nothing routes to) are not this program's; only errors about the models and pools present count.
    """
    if not inputs:
        return []
    merged = merge(inputs)
    plan = plan_config(merged.config, merged.stack)
    out: list[tuple[str | None, str]] = []
    for finding in plan.errors:
        urn = merged.owners.get(finding.subject)
        if urn is None and not merged.complete:
            continue
        out.append((urn or merged.default_urn, message(finding)))
    return out


# --------------------------------------------------------------------------- rendered Kubernetes objects


def _get(value: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, Marked):
        value = value.value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():  # numbers cross the engine's wire as doubles
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def is_vllm(container: dict[str, Any]) -> bool:
    """A vLLM server: `vllm serve`, the OpenAI entrypoint module, or the vllm/vllm-openai image (whose
    entrypoint is that module). Routers and other vLLM-named helpers are not servers."""
    image = container.get("image") if isinstance(container.get("image"), str) else ""
    repository = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    words = [w for w in (container.get("command") or []) + (container.get("args") or []) if isinstance(w, str)]
    served = any(a == "vllm" and b == "serve" for a, b in zip(words, words[1:]))
    return served or any("vllm.entrypoints.openai" in w for w in words) or repository.startswith("vllm-openai")


def gpus_needed(words: list[str]) -> int | None:
    """GPUs one vLLM process uses: tensor parallel x pipeline parallel size (each 1 when absent)."""
    total = 1
    for long_flag, short_flag in (("--tensor-parallel-size", "-tp"), ("--pipeline-parallel-size", "-pp")):
        raw = extra_arg_value(words, long_flag)
        raw = raw if raw is not None else extra_arg_value(words, short_flag)
        if raw is None:
            continue
        size = _int(raw)
        if size is None or size < 1:
            return None
        total *= size
    return total


def gpu_request_messages(resource_type: str, name: str, props: Any) -> list[str]:
    """A vLLM container must request (and limit) nvidia.com/gpu equal to the GPUs its command line uses."""
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return []
    pod = _get(plain(props), path)
    containers = pod.get("containers") if isinstance(pod, dict) else None
    out: list[str] = []
    for index, container in enumerate(containers if isinstance(containers, list) else []):
        if not isinstance(container, dict) or not is_vllm(container):
            continue
        words = [w for w in (container.get("command") or []) + (container.get("args") or []) if isinstance(w, str)]
        if any(w is UNKNOWN for w in (container.get("command") or []) + (container.get("args") or [])):
            continue
        subject = f"{name}/{container.get('name') or f'containers[{index}]'}"
        needed = gpus_needed(words)
        if needed is None:
            out.append(f"vllm-gpu-request [{subject}]: the tensor or pipeline parallel size on its command line is "
                       "not a positive whole number, so the GPUs it needs cannot be known. Fix the vLLM arguments.")
            continue
        resources = container.get("resources") if isinstance(container.get("resources"), dict) else {}
        requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
        limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
        request, limit = requests.get(GPU_RESOURCE), limits.get(GPU_RESOURCE)
        if request is UNKNOWN or limit is UNKNOWN:
            continue
        # Kubernetes sets an extended resource's request to its limit when only the limit is given.
        effective = request if request is not None else limit
        if effective is None:
            out.append(f"vllm-gpu-request [{subject}]: vLLM runs on {needed} GPU{'s' if needed > 1 else ''} "
                       f"(tensor x pipeline parallel size) but the container requests no {GPU_RESOURCE}: it would be "
                       f"scheduled without GPUs. Set resources.requests and resources.limits {GPU_RESOURCE}: \"{needed}\".")
            continue
        if _int(effective) != needed:
            out.append(f"vllm-gpu-request [{subject}]: the container requests {GPU_RESOURCE} {effective} but vLLM runs on "
                       f"{needed} (tensor x pipeline parallel size): it would not start, or would hold GPUs it does not use. "
                       f"Set resources.requests and resources.limits {GPU_RESOURCE}: \"{needed}\".")
        if request is not None and limit is not None and _int(request) != _int(limit):
            out.append(f"vllm-gpu-request [{subject}]: {GPU_RESOURCE} request {request} differs from its limit {limit}; "
                       "Kubernetes requires an extended resource's request to equal its limit.")
    return out


HF_TOKEN_KEYS = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN",
                           "HF_API_TOKEN"})
# A Hugging Face user access token: hf_ followed by letters and digits (34 of them today).
HF_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{30,}")
SECRET_DATA_FIELDS = ("data", "stringData")


def _walk(value: Any, path: tuple[str, ...] = (), marked: bool = False) -> Iterator[tuple[tuple[str, ...], Any, bool]]:
    """(path, leaf, secret-marked) for every leaf."""
    if isinstance(value, Marked):
        yield from _walk(value.value, path, True)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, str(key)), marked)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, f"[{index}]"), marked)
    else:
        yield path, value, marked


def _dotted(path: tuple[str, ...]) -> str:
    return "".join(p if p.startswith("[") else (f".{p}" if i else p) for i, p in enumerate(path))


def _looks_like_token(value: Any, base64_encoded: bool = False) -> bool:
    if not isinstance(value, str):
        return False
    if HF_TOKEN_PATTERN.search(value):
        return True
    if base64_encoded:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return False
        return bool(HF_TOKEN_PATTERN.search(decoded))
    return False


def hf_token_messages(resource_type: str, name: str, props: Any, markers_visible: bool = False) -> list[str]:
    """A Hugging Face token may sit only in a Kubernetes Secret's data/stringData, never in plain text elsewhere.

    The kubernetes provider marks a Secret's data and stringData secret itself (pulumi-kubernetes #803, #1577),
    before any policy runs. pulumi_policy 1.21.0 hands a validation the values with the marker removed (its
    Analyze deserializes without keeping secrets; pulumi/pulumi-policy#241), so the marker can only be checked
    where it is visible: `markers_visible=True` for props that keep it (raw state, a remediation's props); there
    an HF token in a Secret without the marker is reported too. Values are never printed, only where they sit.
    """
    props = plain(props)
    out: list[str] = []
    seen: set[str] = set()

    def report(path: tuple[str, ...], code: str, text: str) -> None:
        where = _dotted(path) or "(props)"
        if where not in seen:
            seen.add(where)
            out.append(f"{code} [{name}:{where}]: {text}")

    for path, value, marked in _walk(props):
        if value is UNKNOWN:
            continue
        in_secret_data = resource_type == K8S_SECRET and bool(path) and path[0] in SECRET_DATA_FIELDS
        key = path[-1] if path else ""
        if in_secret_data:
            is_token = key in HF_TOKEN_KEYS or _looks_like_token(value, base64_encoded=path[0] == "data")
            if markers_visible and is_token and not marked:
                report(path, "hf-token-not-secret", "this Secret carries a Hugging Face token without Pulumi's secret "
                       "marker, so it would be stored in plain text in the stack's state. Pass it as a secret "
                       "(config.get_secret / pulumi.Output.secret).")
            continue
        if _looks_like_token(value):
            report(path, "hf-token-in-plain-text", f"a Hugging Face token is written in plain text in this {resource_type}. "
                   "Keep it in a Kubernetes Secret and reference it (env valueFrom.secretKeyRef); give it to the program as "
                   "secret stack config (kindo-models:huggingFaceToken).")
        elif key in HF_TOKEN_KEYS and isinstance(value, str) and value:
            report(path, "hf-token-in-plain-text", f"{key} is given a literal value in this {resource_type}. Keep the "
                   "token in a Kubernetes Secret and reference it (env valueFrom.secretKeyRef).")
    for path, value, _ in _walk(props):
        # An environment variable {name: HF_TOKEN, value: ...} anywhere outside a Secret.
        if path and path[-1] == "name" and value in HF_TOKEN_KEYS and resource_type != K8S_SECRET:
            env = _at(props, path[:-1])
            literal = env.get("value") if isinstance(env, dict) else None
            if isinstance(literal, Marked):
                literal = literal.value
            if isinstance(literal, str) and literal and literal is not UNKNOWN:
                report((*path[:-1], "value"), "hf-token-in-plain-text", f"environment variable {value} is given a "
                       "literal value; a pod spec is readable by anyone who can read the workload. Use "
                       "valueFrom.secretKeyRef to a Kubernetes Secret.")
    return out


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if part.startswith("[") and isinstance(value, list):
            index = int(part[1:-1])
            value = value[index] if index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
        if isinstance(value, Marked):
            value = value.value
    return value
