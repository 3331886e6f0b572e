"""A stand-in for the Pulumi engine over the two dynamic providers, following the engine's documented step order.
Used by the lifecycle tests, the fault tests and bench/providers.py.

No Pulumi CLI exists here, so `Engine` follows what the engine does
(https://www.pulumi.com/docs/iac/concepts/how-pulumi-works/, "Creation and deletion order"; pulumi's
step_generator: GeneratePendingDeletes, GenerateSteps, GenerateDeletes):
1. At the start of an update, resources left "pending deletion" by an earlier update (the old halves of
   replacements whose delete never ran) are deleted first.
2. Resources are visited in dependency order: the KindoModels first (anchors before the models whose
   replacementModelId is the anchor's ID), then the UnleashModelFlags, whose modelIds are the models' IDs.
   Each is checked (check(old inputs, new inputs)) and, if it exists, diffed; then created, updated, left alone,
   or replaced. A replacement is create-before-delete: the new one is created in place and the old one is marked
   pending deletion.
3. After every create and update, the deletions run: resources no longer in the program and the old halves of
   replacements, dependents first (flags before the models they carry).
If the program fails (a provider error, or KindoModel's apply stopping on an unconfirmed registration), step 3
does not run: removed resources stay, replaced ones stay pending deletion for the next update.
The provider objects are used exactly as the dynamic-provider host uses them, `__provider` key included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from dynamic_providers.kindo_model import KindoModelProvider, reset_successors, stop_if_unconfirmed
from dynamic_providers.unleash_flag import PROVIDER_VERSION as FLAG_VERSION, UnleashFlagProvider
from dynamic_providers.kindo_model import PROVIDER_VERSION as MODEL_VERSION

ENV = "development"
OWNER = "kindo-models/test"
WRITES = ("POST", "PATCH", "PUT", "DELETE")
SERIALIZED = "serialized"  # stands in for the engine's `__provider` string


@dataclass
class Model:
    inputs: dict[str, Any]
    replacement: Optional[str] = None  # name of the model whose ID is this one's replacementModelId


@dataclass
class Stack:
    models: dict[str, Model]  # in dependency order
    flags: dict[str, list[str]]  # flag key -> model names
    required: set[str] = field(default_factory=set)
    owner: str = OWNER
    payload: str = "ids"  # what flag variants carry: "ids" | "names"
    environment: str = ENV


@dataclass
class State:
    id: str
    inputs: dict[str, Any]  # the checked inputs
    outs: dict[str, Any]


@dataclass
class Engine:
    ns: Any  # the test's Unleash namespace (flag prefix, project); None for stacks without flags
    kindo: KindoModelProvider = field(default_factory=KindoModelProvider)
    unleash: UnleashFlagProvider = field(default_factory=UnleashFlagProvider)
    models: dict[str, State] = field(default_factory=dict)
    flags: dict[str, State] = field(default_factory=dict)
    pending: list[tuple[str, State]] = field(default_factory=list)  # (kind, old state) awaiting deletion
    log: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what pulumi.log.warn would print

    def up(self, stack: Stack) -> None:
        reset_successors()  # one `pulumi up` = one provider host process
        self._delete_pending()
        for name, model in stack.models.items():
            self._step("kindo", self.kindo, self.models, name, self._model_props(model))
            warning = stop_if_unconfirmed(self.models[name].outs)  # KindoModel's apply: may stop the program
            if warning:
                self.warnings.append(warning)
        for flag, names in stack.flags.items():
            self._step("unleash", self.unleash, self.flags, flag, self._flag_props(stack, flag, names))
        self.pending += [("unleash", self.flags.pop(f)) for f in [f for f in self.flags if f not in stack.flags]]
        self.pending += [("kindo", self.models.pop(m)) for m in [m for m in self.models if m not in stack.models]]
        self._delete_pending()

    def refresh(self) -> None:
        for kind, provider, states in (("kindo", self.kindo, self.models), ("unleash", self.unleash, self.flags)):
            for name, state in list(states.items()):
                result = provider.read(state.id, {**state.outs, "__provider": SERIALIZED})
                if not result.id:
                    del states[name]  # gone: the engine drops it from state
                    continue
                states[name] = State(result.id, dict(result.inputs or state.inputs), dict(result.outs))

    def model_id(self, name: str) -> str:
        """The KindoModel's `modelId` output, which the program passes on (the resource id of a replacement's
        placeholder is not the model flags carry)."""
        return self.models[name].outs.get("modelId") or self.models[name].id

    # -- internals
    def _model_props(self, model: Model) -> dict[str, Any]:
        props = {**model.inputs, "__provider": SERIALIZED, "providerVersion": MODEL_VERSION}
        if model.replacement:
            props["replacementModelId"] = self.model_id(model.replacement)
        return props

    def _flag_props(self, stack: Stack, flag: str, names: list[str]) -> dict[str, Any]:
        return {"flag": self.ns.name(flag), "environment": stack.environment, "project": self.ns.project,
                "owner": stack.owner, "modelIds": [self.model_id(n) for n in names],
                "modelNames": [self.models[n].outs.get("routingName") or n for n in names], "payload": stack.payload,
                "required": flag in stack.required, "providerVersion": FLAG_VERSION, "__provider": SERIALIZED}

    def _delete_pending(self) -> None:
        self.pending.sort(key=lambda step: step[0] != "unleash")  # dependents (flags) first
        while self.pending:
            kind, state = self.pending[0]
            self.log.append(f"delete {kind} {state.id}")
            (self.unleash if kind == "unleash" else self.kindo).delete(state.id, {**state.outs, "__provider": SERIALIZED})
            self.pending.pop(0)

    def _step(self, kind: str, provider: Any, states: dict[str, State], name: str, props: dict[str, Any]) -> None:
        old = states.get(name)
        checked = provider.check(dict(old.inputs) if old else {}, props)
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        news = {**checked.inputs, "__provider": SERIALIZED}
        if old is None:
            created = provider.create(news)
            states[name] = State(created.id, dict(checked.inputs), dict(created.outs))
            self.log.append(f"create {kind} {name}")
            return
        diff = provider.diff(old.id, {**old.outs, "__provider": SERIALIZED}, news)
        if diff.replaces:
            created = provider.create(news)
            self.pending.append((kind, old))
            states[name] = State(created.id, dict(checked.inputs), dict(created.outs))
            self.log.append(f"replace {kind} {name}")
        elif diff.changes:
            updated = provider.update(old.id, {**old.outs, "__provider": SERIALIZED}, news)
            states[name] = State(updated.outs.get("strategyId", old.id), dict(checked.inputs), dict(updated.outs))
            self.log.append(f"update {kind} {name}")


def unleash_references(server, ns, environment: str = ENV):
    """The Kindo double's view of Unleash: which flags' variants still carry a model ID (read live)."""

    def lookup(model_id: str) -> list[str]:
        found = []
        for feature in ns.feature_names():
            r = server.session.get(f"{ns.features_url}/{feature}/environments/{environment}")
            if r.status_code != 200:
                continue
            for strategy in r.json().get("strategies", []):
                for variant in strategy.get("variants") or []:
                    if model_id in str(variant.get("payload", {}).get("value", "")):
                        found.append(feature)
        return sorted(set(found))

    return lookup
