"""A stand-in for the Pulumi engine over the two dynamic providers, following the engine's documented step order.
Used by the lifecycle tests, the fault tests and bench/providers.py.

No Pulumi CLI exists here, so `Engine` follows what the engine does
(https://www.pulumi.com/docs/iac/concepts/how-pulumi-works/, "Creation and deletion order"; pulumi's
pkg/resource/deploy/step_generator.go GenerateSteps and GenerateDeletes, read at commit 1b5949891b, Aug 2026):
1. Resources left "pending deletion" by an earlier update (the old halves of replacements whose delete never
   ran) stay where they are until the end of the next update: since pulumi 3.46.0 they are deleted with the
   update's other deletes, in dependency order, not before the program runs (CHANGELOG 3.46.0, "Pending deletes
   are no longer executed before everything else", pulumi#11027; older engines ran them first).
2. Resources are visited in dependency order: the vLLM servers (a Deployment and its Service, awaited until ready),
   their endpoint check Jobs (awaited until they succeed), the KindoModels (anchors before the models whose
   replacementModelId is the anchor's ID; a self-hosted one after its server and check), then the
   UnleashModelFlags, whose modelIds are the models' IDs. Servers and checks are cluster objects the engine
   tracks itself: a server is identified by its name (a new name is a new server), a change of what its pods run
   under the same name is an in-place update (not ready while it restarts); a check whose Job name changes is
   replaced, and it passes if its server is ready then.
   Each is checked (check(old inputs, new inputs)) and, if it exists, diffed; then created, updated, left alone,
   or replaced. A replacement is create-before-delete: the new one is created in place and the old one is marked
   pending deletion.
3. After every create and update, the deletions run: resources no longer in the program and the old halves of
   replacements, dependents first (flags, then the models they carry, then checks, then servers).
If the program fails (a provider error, or KindoModel's apply stopping on an unconfirmed registration), step 3
does not run: removed resources stay, replaced ones stay pending deletion for the next update.
The provider objects are used exactly as the dynamic-provider host uses them, `__provider` key included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

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


@dataclass(frozen=True)
class Server:
    """A VllmServer as the engine sees it: its URL and what its pods run (a change restarts them)."""

    url: str
    pods: str


@dataclass(frozen=True)
class Check:
    """An endpoint check Job: the server it checks, and the Job's name (a new name replaces the Job)."""

    server: str
    job: str


@dataclass
class Stack:
    models: dict[str, Model]  # in dependency order
    flags: dict[str, list[str]]  # flag key -> model names
    required: set[str] = field(default_factory=set)
    owner: str = OWNER
    payload: str = "ids"  # what flag variants carry: "ids" | "names"
    environment: str = ENV
    servers: dict[str, Server] = field(default_factory=dict)  # by name
    checks: dict[str, Check] = field(default_factory=dict)  # by resource name


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
    servers: dict[str, Server] = field(default_factory=dict)  # the cluster's vLLM servers
    ready: set[str] = field(default_factory=set)  # servers whose pods are ready
    checks: dict[str, Check] = field(default_factory=dict)
    passed: set[tuple[str, str]] = field(default_factory=set)  # (server, pods) a check Job succeeded against
    observe: Optional[Callable[[str], None]] = None  # called after every step, with the step

    def verified(self, server: str) -> bool:
        """The server exists, is ready, and a check passed against what its pods run now."""
        found = self.servers.get(server)
        return found is not None and server in self.ready and (server, found.pods) in self.passed

    def up(self, stack: Stack) -> None:
        reset_successors()  # one `pulumi up` = one provider host process
        for name, server in stack.servers.items():
            self._server_step(name, server)
        for name, check in stack.checks.items():
            self._check_step(name, check)
        for name, model in stack.models.items():
            self._step("kindo", self.kindo, self.models, name, self._model_props(model))
            warning = stop_if_unconfirmed(self.models[name].outs)  # KindoModel's apply: may stop the program
            if warning:
                self.warnings.append(warning)
        for flag, names in stack.flags.items():
            self._step("unleash", self.unleash, self.flags, flag, self._flag_props(stack, flag, names))
        self.pending += [("unleash", self.flags.pop(f)) for f in [f for f in self.flags if f not in stack.flags]]
        self.pending += [("kindo", self.models.pop(m)) for m in [m for m in self.models if m not in stack.models]]
        self.pending += [("check", State(c, {}, {})) for c in [c for c in self.checks if c not in stack.checks]]
        self.pending += [("server", State(s, {}, {})) for s in [s for s in self.servers if s not in stack.servers]]
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

    def _did(self, step: str) -> None:
        self.log.append(step)
        if self.observe:
            self.observe(step)

    def _server_step(self, name: str, server: Server) -> None:
        old = self.servers.get(name)
        if old == server:
            return
        self.servers[name] = server
        if old is not None:  # the same Deployment with new pods: they restart in place
            self.ready.discard(name)
            self._did(f"updating server {name}")
        self.ready.add(name)  # Pulumi awaits the Deployment's (and the Service's) readiness
        self._did(f"{'update' if old else 'create'} server {name}")

    def _check_step(self, name: str, check: Check) -> None:
        old = self.checks.get(name)
        if old == check:
            return
        if check.server not in self.ready:
            raise AssertionError(f"check {name} runs against {check.server}, which is not ready")
        if old is not None:
            self.pending.append(("check", State(name, {}, {"job": old.job})))
        self.checks[name] = check
        self.passed.add((check.server, self.servers[check.server].pods))  # Pulumi awaits the Job's success
        self._did(f"{'replace' if old else 'create'} check {name}")

    def _delete_pending(self) -> None:
        order = ("unleash", "kindo", "check", "server")  # dependents first
        self.pending.sort(key=lambda step: order.index(step[0]))
        while self.pending:
            kind, state = self.pending[0]
            self.log.append(f"delete {kind} {state.id}")  # logged before the call: a failed delete shows in the log
            if kind == "check":
                if "job" not in state.outs:  # removed from the program (a replaced one's successor stays)
                    self.checks.pop(state.id, None)
            elif kind == "server":
                self.servers.pop(state.id, None)
                self.ready.discard(state.id)
            else:
                (self.unleash if kind == "unleash" else self.kindo).delete(state.id, {**state.outs, "__provider": SERIALIZED})
            self.pending.pop(0)
            if self.observe:
                self.observe(self.log[-1])

    def _step(self, kind: str, provider: Any, states: dict[str, State], name: str, props: dict[str, Any]) -> None:
        old = states.get(name)
        checked = provider.check(dict(old.inputs) if old else {}, props)
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        news = {**checked.inputs, "__provider": SERIALIZED}
        if old is None:
            created = provider.create(news)
            states[name] = State(created.id, dict(checked.inputs), dict(created.outs))
            self._did(f"create {kind} {name}")
            return
        diff = provider.diff(old.id, {**old.outs, "__provider": SERIALIZED}, news)
        if diff.replaces:
            created = provider.create(news)
            self.pending.append((kind, old))
            states[name] = State(created.id, dict(checked.inputs), dict(created.outs))
            self._did(f"replace {kind} {name}")
        elif diff.changes:
            updated = provider.update(old.id, {**old.outs, "__provider": SERIALIZED}, news)
            states[name] = State(updated.outs.get("strategyId", old.id), dict(checked.inputs), dict(updated.outs))
            self._did(f"update {kind} {name}")


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
