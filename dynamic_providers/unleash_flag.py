"""UnleashModelFlag: the Kindo models a feature flag routes to, as ONE strategy a stack owns on that flag.

One resource per (flag, environment). Its strategy is a 100% flexibleRollout titled `kindo-models routing:
<owner>`, where owner is the stack's identity (`<project>/<stack>`), and its single variant carries the models in
its payload: a JSON list of Kindo model IDs (default, seed global-model-management) or of routing names
(litellmModelName; seed prepare-ai-models says they "match Unleash variants"), chosen by `payload` ("ids" or
"names"). We create the flag if it is missing, revive it if it was archived, and enable the environment; we change
only our strategy, with a JSON Patch (a PUT would wipe its parameters and constraints).

What is on the flag before us decides the first `pulumi up` (a brownfield installation routed by hand or by
kindo-cli):
- a strategy owned by ANOTHER stack (title with another owner) in this environment: refused, never clobbered;
  two stacks must not share one Unleash environment;
- exactly one strategy made by hand that carries model routing, unconstrained, at 100%, whose variants all carry
  exactly the models this stack routes (same kind: IDs or names): TAKEN OVER (re-titled as ours, its variants set
  to ours; its parameters and constraints kept). Kindo sees the same routing before and after;
- any other routing (several strategies, different models, constraints, a partial rollout, a disabled one):
  stopped with a message that says exactly what to change; nothing is written.
So a flag never ends with two strategies that both carry model routing. Strategies without variants (a
person's gradual rollout, say) are not routing and are left alone.

Drift `pulumi refresh` shows (outputs `enabled`, `archived`, `otherRouting`, and the models our variant carries):
an archived flag (the UI's "delete": GET on its environment still answers 200, but it is gone from
/api/client/features, so Kindo no longer sees it), an environment switched off by hand, another routing strategy
beside ours, hand edits of our variant. The next `pulumi up` repairs the first two (revive, enable) and our
variant, and stops with the exact action on the third.

Unleash facts this relies on (reference/facts.md, verified against unleash-server 8.2.0):
- GET of an archived feature answers 404, GET of its environment 200: both together say "archived";
  POST of an archived name answers 409; POST /api/admin/projects/{p}/revive brings it back, disabled;
- strategy GET/PATCH by id ignore the {env} part of the URL: our strategy's environment is checked through the
  feature's environments;
- deleting the last strategy of an enabled environment turns the flag off there, so deleting ours from a
  required flag is refused loudly instead;
- there is no optimistic concurrency: we only ever write our own strategy.

Keep this module path and class names stable: state refers to them by name (pickled by reference). Provider code
in state runs for refresh and delete (pulumi#6490): bump PROVIDER_VERSION to push a fix into state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence
import pulumi
from pulumi.dynamic import (
    CheckFailure, CheckResult, ConfigureRequest, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider,
    UpdateResult,
)
from pulumi.runtime import rpc

from dynamic_providers.http import HttpError, JsonClient, RetryPolicy, Timeout
from dynamic_providers.kindo_model import is_placeholder
from dynamic_providers.props import (
    CONFIG_NAMESPACE, PROVIDER_KEY, ConfigShapeError, config_object, has_unknown, normalize, resolve_connection,
)
from dynamic_providers.unleash_api import (  # noqa: F401  (re-exported for callers and tests)
    LEGACY_TITLE, TITLE_PREFIX, VARIANT_NAME, Paths, UnleashApi, UnleashError, base_url, classify, describe, is_plain,
    title_of, values_of,
)

# 2: owner identity in the title, takeover of hand routing, archived/disabled drift, names payload.
PROVIDER_VERSION = "2"
PAYLOADS = ("ids", "names")
IDENTITY_FIELDS = ("flag", "environment", "project")  # a different flag/environment/project is another resource
UPDATE_FIELDS = ("owner", "modelIds", "modelNames", "payload", "required", "providerVersion")
INPUT_FIELDS = IDENTITY_FIELDS + UPDATE_FIELDS
OBSERVED_FIELDS = ("enabled", "archived", "otherRouting")  # read from Unleash; drift in them makes an update
CONNECTION_SOURCES = {
    "url": ("UNLEASH_URL", f"{CONFIG_NAMESPACE}:unleash.url"),
    "token": ("UNLEASH_API_TOKEN", f"{CONFIG_NAMESPACE}:unleashApiToken (secret)"),
}
AUTH_HINT = (f"Check the Unleash token: {CONFIG_NAMESPACE}:unleashApiToken in the stack (an admin API token or a "
             "personal access token, `pulumi config set --secret`), or UNLEASH_API_TOKEN outside a stack")


class UnleashFlagError(UnleashError):
    """An Unleash flag operation that failed; the first line says what and what to do."""


@dataclass
class UnleashConnection:
    url: str
    token: str = field(repr=False)

    def client(self, timeout: Timeout, retry: RetryPolicy) -> JsonClient:
        try:
            return JsonClient("Unleash", self.url, {"Authorization": self.token}, secrets=[self.token],
                              timeout=timeout, retry=retry, hints={401: AUTH_HINT, 403: AUTH_HINT})
        except ValueError as e:
            raise UnleashFlagError(f"{CONFIG_NAMESPACE}:unleash.url (or UNLEASH_URL) is not usable. {e}") from None


def carried(inputs: Mapping[str, Any]) -> list[str]:
    """What our variant carries: the model IDs, or their routing names."""
    return list(inputs.get("modelNames") or []) if inputs.get("payload") == "names" else list(inputs["modelIds"])


def variants(values: Sequence[str]) -> list[dict[str, Any]]:
    return [{"name": VARIANT_NAME, "weight": 1000, "weightType": "variable", "stickiness": "default",
             "payload": {"type": "json", "value": json.dumps(list(values))}}]


def declared(props: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: normalize(props[k]) for k in INPUT_FIELDS if props.get(k) is not None}
    values.setdefault("payload", "ids")
    values.setdefault("required", False)
    return values


def paths_of(inputs: Mapping[str, Any]) -> Paths:
    return Paths(str(inputs["project"]), str(inputs["flag"]), str(inputs["environment"]))


# ------------------------------------------------------------------------------------------- checks
def _identity_failures(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    for name in IDENTITY_FIELDS + ("owner",):
        value = inputs.get(name)
        if not has_unknown(value) and (not isinstance(value, str) or not value.strip()):
            what = "the stack's identity, <project>/<stack>" if name == "owner" else "a non-empty string"
            failures.append(CheckFailure(name, f"{name} is required: {what}"))
    flag = inputs.get("flag")
    if isinstance(flag, str) and flag and not Paths.valid_flag(flag):
        failures.append(CheckFailure("flag", f"flag {flag!r} is not a valid Unleash feature name "
                                             "(letters, digits, '_', '.', '~', '-')"))
    return failures


def _list_failure(inputs: Mapping[str, Any], key: str, what: str) -> Optional[CheckFailure]:
    value = inputs.get(key)
    if has_unknown(value) or (value is None and key == "modelNames"):
        return None
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        return CheckFailure(key, f"{key} must be a list of {what} (non-empty strings)")
    return None


def _model_failures(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = [f for f in (_list_failure(inputs, "modelIds", "Kindo model IDs"),
                            _list_failure(inputs, "modelNames", "routing names (litellmModelName)")) if f]
    ids, names, kind = inputs.get("modelIds"), inputs.get("modelNames"), inputs.get("payload", "ids")
    for index, model_id in enumerate(ids if isinstance(ids, list) else []):
        if is_placeholder(model_id):
            failures.append(CheckFailure("modelIds", f"modelIds[{index}] {model_id!r} is a Kindo model whose "
                                         "registration outcome is unknown; nothing is routed to it. Answer that "
                                         "model's error (kindoModelId or confirmNotRegistered on its entry), then run "
                                         "`pulumi up` again."))
    if not has_unknown(kind) and kind not in PAYLOADS:
        failures.append(CheckFailure("payload", f"payload {kind!r} is not one of {', '.join(PAYLOADS)} (model IDs, "
                                                "or routing names)"))
    elif kind == "names" and names is None:
        failures.append(CheckFailure("modelNames", "payload 'names' needs modelNames: the routing names of the models "
                                                   "in modelIds, in the same order"))
    if isinstance(ids, list) and isinstance(names, list) and not has_unknown(ids) and not has_unknown(names) \
            and len(ids) != len(names):
        failures.append(CheckFailure("modelNames", f"modelNames has {len(names)} names for {len(ids)} modelIds; "
                                                   "give one routing name per model, in the same order"))
    return failures


# ------------------------------------------------------------------------------------------ messages
def _other_kind(inputs: Mapping[str, Any]) -> list[str]:
    """The same models as the other payload kind would carry them (for telling a kind mismatch apart)."""
    return list(inputs.get("modelIds") or []) if inputs.get("payload") == "names" else list(inputs.get("modelNames") or [])


def _kind_words(inputs: Mapping[str, Any], other: bool = False) -> str:
    names = (inputs.get("payload") == "names") != other
    return "routing names" if names else "model IDs"


def _other_stack_error(paths: Paths, strategy: Mapping[str, Any]) -> UnleashFlagError:
    return UnleashFlagError(
        f"flag {paths.flag} in environment {paths.environment} is routed by another stack ({describe(strategy)}); "
        "two stacks must not share one Unleash environment, and nothing was changed. Point this stack at its own "
        f"environment ({CONFIG_NAMESPACE}:unleash.environment), or remove the other stack's routing (`pulumi destroy` "
        "in that stack, or delete that strategy in Unleash); then run `pulumi up` again.")


def _beside_ours_error(paths: Paths, hand: Sequence[Mapping[str, Any]]) -> UnleashFlagError:
    listed = "; ".join(f"{describe(s)} carrying {values_of(s)}" for s in hand)
    return UnleashFlagError(
        f"flag {paths.flag} in environment {paths.environment} carries model routing in a strategy this stack does "
        f"not own, beside ours: {listed}. Kindo could read either. Remove that strategy (or its variants) in Unleash, "
        "then run `pulumi up` again; this stack never changes strategies it does not own.")


def _no_takeover_error(paths: Paths, hand: Sequence[Mapping[str, Any]], inputs: Mapping[str, Any]) -> UnleashFlagError:
    wanted = carried(inputs)
    listed = "; ".join(f"{describe(s)} carrying {values_of(s)}" for s in hand)
    if len(hand) > 1:
        why = "several strategies carry model routing"
    elif not is_plain(hand[0]):
        why = "that strategy is constrained, disabled, below 100% or splits its variants"
    elif sorted(values_of(hand[0])) == sorted(_other_kind(inputs)):
        why = (f"it carries the same models as {_kind_words(inputs, other=True)}, and this stack is set to carry "
               f"{_kind_words(inputs)}; set the stack's variant payload to match what Kindo reads")
    else:
        why = f"it carries other models than this stack routes ({wanted})"
    return UnleashFlagError(
        f"flag {paths.flag} in environment {paths.environment} is already routed by hand or by another tool "
        f"({listed}), and this stack cannot take that routing over: {why}. Nothing was changed. Either make the stack "
        f"route exactly those models to {paths.flag} for its first `pulumi up` (the routing report prints a snippet), "
        "or reduce that routing in Unleash to one unconstrained strategy at 100% (or remove its variants); then run "
        "`pulumi up` again.")


# ------------------------------------------------------------------------------------------ provider
class UnleashFlagProvider(ResourceProvider):
    """Nothing secret is ever stored on this object before it is pickled into state: configure() runs in the
    provider host, after unpickling, and __getstate__ drops what it stored in case the object is pickled again."""

    timeout = Timeout(connect=5.0, read=30.0)
    retry = RetryPolicy()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_configured", None)
        return state

    def configure(self, req: ConfigureRequest) -> None:
        try:
            unleash = config_object(req.config.get(f"{CONFIG_NAMESPACE}:unleash"), f"{CONFIG_NAMESPACE}:unleash",
                                    "{url, project, environment}")
        except ConfigShapeError as e:
            raise UnleashFlagError(str(e)) from None
        self._configured = {"url": unleash.get("url"),
                            "token": rpc.unwrap_rpc_secret(req.config.get(f"{CONFIG_NAMESPACE}:unleashApiToken"))}

    def connection(self) -> UnleashConnection:
        """Stack config from configure(), else the environment, read now (never stored before pickling)."""
        values, missing = resolve_connection(getattr(self, "_configured", None) or {}, CONNECTION_SOURCES)
        if missing:
            raise UnleashFlagError("the Unleash connection is incomplete; set " + ", ".join(missing)
                                   + f" (stack config `{CONFIG_NAMESPACE}:unleash` {{url, project, environment}} and the "
                                   f"secret `{CONFIG_NAMESPACE}:unleashApiToken`, or the environment variables)")
        return UnleashConnection(base_url(values["url"]), values["token"])

    def _reader(self) -> UnleashApi:
        return UnleashApi(self.connection().client(self.timeout, self.retry), UnleashFlagError)

    # -- check / diff
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in news.items() if k != PROVIDER_KEY and k not in OBSERVED_FIELDS + ("strategyId",)}
        return CheckResult(inputs, _identity_failures(inputs) + _model_failures(inputs))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = declared(olds), {k: v for k, v in news.items() if k != PROVIDER_KEY}
        new.setdefault("payload", "ids")
        new.setdefault("required", False)
        changed = [k for k in INPUT_FIELDS if has_unknown(new.get(k)) or normalize(new.get(k)) != old.get(k)]
        drifted = olds.get("enabled") is False or olds.get("archived") is True or bool(olds.get("otherRouting"))
        replaces = [k for k in changed if k in IDENTITY_FIELDS]
        return DiffResult(changes=bool(changed) or drifted, replaces=replaces, delete_before_replace=False)

    # -- create / update / read / delete
    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = declared(props)
        with self._reader() as reader:
            strategy_id = self._converge(reader, paths_of(inputs), inputs, None)
        return CreateResult(strategy_id, _outputs(inputs, strategy_id))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = declared(news)
        with self._reader() as reader:
            strategy_id = self._converge(reader, paths_of(inputs), inputs, id_)
        return UpdateResult(_outputs(inputs, strategy_id))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = declared(props)
        paths = paths_of(inputs)
        with self._reader() as reader:
            view = reader.flag(paths)
        routing = classify(view.strategies, title_of(inputs.get("owner", "")), id_, LEGACY_TITLE)
        if routing.ours is None:
            return ReadResult("", {})  # gone: the engine drops it from state and a later `up` recreates it
        found = {**inputs, ("modelNames" if inputs["payload"] == "names" else "modelIds"): values_of(routing.ours, VARIANT_NAME)}
        observed = {"enabled": view.enabled, "archived": view.archived,
                    "otherRouting": [describe(s) for s in routing.other_stacks + routing.hand]}
        strategy_id = str(routing.ours["id"])
        return ReadResult(strategy_id, {**found, **observed, "strategyId": strategy_id}, found)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = declared(props)
        paths = paths_of(inputs)
        with self._reader() as reader:
            view = reader.flag(paths)
            routing = classify(view.strategies, title_of(inputs.get("owner", "")), id_, LEGACY_TITLE)
            if routing.ours is None:
                return  # the flag or our strategy is gone already
            others = [s for s in view.strategies if s is not routing.ours]
            if inputs.get("required") and view.enabled and not others:
                raise UnleashFlagError(
                    f"refusing to remove the routing of required flag {paths.flag} in {paths.environment}: it is its "
                    f"only strategy, and Unleash would turn the flag off, leaving Kindo without a model for it. Route "
                    f"a model to {paths.flag} in the stack, or, to leave the flag as it is, drop the resource from "
                    "state with `pulumi state delete <urn>`.")
            for strategy in [routing.ours, *routing.duplicates]:
                reader.remove_strategy(paths, str(strategy["id"]))

    # -- the one write path of create and update
    def _converge(self, reader: UnleashApi, paths: Paths, inputs: Mapping[str, Any], strategy_id: Optional[str]) -> str:
        """Make the flag carry our routing in one strategy we own; refuse whatever is not ours to change."""
        view = reader.ensure_live(paths)
        title = title_of(str(inputs["owner"]))
        routing = classify(view.strategies, title, strategy_id, LEGACY_TITLE)
        if routing.other_stacks:
            raise _other_stack_error(paths, routing.other_stacks[0])
        if routing.ours is not None and routing.hand:
            raise _beside_ours_error(paths, routing.hand)
        if routing.ours is None and routing.hand:
            ours = self._take_over(reader, paths, routing.hand, inputs)
        elif routing.ours is None:
            ours = {"id": reader.add_strategy(paths, title, variants(carried(inputs)))}
        else:
            ours = routing.ours
            self._keep_ours(reader, paths, ours, title, inputs)
        for extra in routing.duplicates:  # a second strategy with our title (an earlier lost answer): ours too
            reader.remove_strategy(paths, str(extra["id"]))
        if not view.enabled:
            reader.enable(paths)
        return str(ours["id"])

    @staticmethod
    def _take_over(reader: UnleashApi, paths: Paths, hand: Sequence[Mapping[str, Any]],
                   inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        strategy = hand[0]
        if len(hand) > 1 or not is_plain(strategy) or sorted(values_of(strategy)) != sorted(carried(inputs)):
            raise _no_takeover_error(paths, hand, inputs)
        reader.patch_strategy(paths, str(strategy["id"]), title_of(str(inputs["owner"])), variants(carried(inputs)))
        return strategy

    @staticmethod
    def _keep_ours(reader: UnleashApi, paths: Paths, ours: Mapping[str, Any], title: str,
                   inputs: Mapping[str, Any]) -> None:
        wanted = variants(carried(inputs))
        same_values = values_of(ours, VARIANT_NAME) == carried(inputs) and len(ours.get("variants") or []) == 1
        if ours.get("title") != title or not same_values:
            reader.patch_strategy(paths, str(ours["id"]), title if ours.get("title") != title else None,
                                  None if same_values else wanted)


def _outputs(inputs: Mapping[str, Any], strategy_id: str) -> dict[str, Any]:
    return {**inputs, "strategyId": strategy_id, "enabled": True, "archived": False, "otherRouting": []}


@dataclass
class UnleashModelFlagArgs:
    flag: pulumi.Input[str]
    environment: pulumi.Input[str]
    project: pulumi.Input[str]
    model_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # KindoModel.modelId outputs, in routing order
    required: bool = False  # a required flag's routing is never silently removed
    # The stack's identity, "<project>/<stack>"; default: the running program's own.
    owner: Optional[pulumi.Input[str]] = None
    # KindoModel.routingName outputs of the same models, in the same order: what the variant carries when
    # payload is "names" (pass them always: error messages then name both).
    model_names: Optional[pulumi.Input[Sequence[pulumi.Input[str]]]] = None
    payload: str = "ids"  # "ids" | "names"


class UnleashModelFlag(Resource, module="unleash", name="UnleashModelFlag"):
    # Dynamic resources expose outputs under their property names.
    strategyId: pulumi.Output[str]
    modelIds: pulumi.Output[list[str]]
    enabled: pulumi.Output[bool]
    archived: pulumi.Output[bool]
    otherRouting: pulumi.Output[list[str]]

    def __init__(self, name: str, args: UnleashModelFlagArgs, opts: Optional[pulumi.ResourceOptions] = None,
                 provider: Optional[UnleashFlagProvider] = None) -> None:
        owner = args.owner if args.owner is not None else f"{pulumi.get_project()}/{pulumi.get_stack()}"
        props = {"flag": args.flag, "environment": args.environment, "project": args.project, "owner": owner,
                 "modelIds": args.model_ids, "modelNames": args.model_names, "payload": args.payload,
                 "required": args.required, "providerVersion": PROVIDER_VERSION,
                 **{key: None for key in OBSERVED_FIELDS + ("strategyId",)}}
        super().__init__(provider or UnleashFlagProvider(), name, props, opts)

