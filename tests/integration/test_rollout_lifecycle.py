"""A change to a self-hosted server, as `pulumi up` runs it: the dev stack's plan before and after the change, driven
through the engine's step order (tests/lifecycle_engine.py) against the Kindo double and a REAL Unleash.

After every step the test reads what Kindo's users would reach: each flag's variants (from Unleash), each model ID's
apiBase (from Kindo), and whether a server with that URL exists, is ready, and passed its endpoint check against what
its pods run now. With blue-green (the default) that must hold at every step; with `vllm.rollout: recreate` it does
not, and the test shows the step where it breaks (the downtime the plan warns about).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from planner.config import parse_settings
from planner.plan import Plan, make_plan
from tests.integration.test_model_lifecycle import kindo  # noqa: F401 - the fixture: the Kindo double for both modes
from tests.lifecycle_engine import Check, Engine, Model, Server, Stack
from tests.pulumi_harness import ROOT, stack_config

MODEL = "qwen3-8b"  # the dev stack's tool-calling model: several flags carry it


def raw_dev() -> dict[str, Any]:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    return {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("kindo-models:")}


def plan_of(raw: dict[str, Any]) -> Plan:
    settings, findings = parse_settings(copy.deepcopy(raw), "dev")
    plan = make_plan(settings, findings)
    assert plan.ok, [f.line for f in plan.errors]
    return plan


def stack_of(plan: Plan) -> Stack:
    """What the program registers for a plan: servers, checks, KindoModels (anchors first, each self-hosted one with
    its server's generated key), and the flags with the models they carry."""
    servers = {s.name: Server(s.url, s.generation) for s in plan.servers}
    checks = {m.check.server: Check(m.check.server, m.check.fingerprint) for m in plan.models if m.check}
    by_model = {s.litellmModelName: s for s in plan.servers}
    models: dict[str, Model] = {}
    for planned in sorted(plan.models, key=lambda m: m.replacement is not None):
        assert planned.body is not None
        params = {**planned.body.fields["litellmParams"], **{slot: "test-key" for slot in planned.body.secret_slots}}
        if planned.body.server_key:
            params["api_key"] = f"key-of-{by_model[planned.litellmModelName].name}"  # one RandomPassword per server
        models[planned.litellmModelName] = Model({**planned.body.fields, "litellmParams": params}, planned.replacement)
    flags = {flag.key: flag.models for flag in plan.routed_flags}
    return Stack(models=models, flags=flags, required={f.key for f in plan.routed_flags if f.required},
                 servers=servers, checks=checks)


def unreachable(engine: Engine, kindo_double, unleash_server, ns, stack: Stack) -> list[str]:
    """Every (flag, model) whose model's apiBase is a self-hosted server that is gone, not ready, or not verified."""
    by_url = {server.url: name for name, server in engine.servers.items()}
    broken = []
    for flag in stack.flags:
        response = unleash_server.session.get(f"{ns.features_url}/{ns.name(flag)}/environments/development")
        assert response.status_code == 200, response.text
        for strategy in response.json()["strategies"]:
            for variant in strategy.get("variants") or []:
                for model_id in json.loads(variant["payload"]["value"]):
                    base = (kindo_double.models.get(model_id) or {}).get("litellmParams", {}).get("api_base", "")
                    self_hosted = base.endswith(".svc.cluster.local:8000/v1")  # cloud models have no server here
                    if self_hosted and not engine.verified(by_url.get(base, "")):
                        broken.append(f"{flag} -> {model_id} ({base})")
    return broken


def watched(engine: Engine, kindo_double, unleash_server, ns, stack: Stack) -> dict[str, list[str]]:
    """Step -> what was unreachable right after it (only the steps where something was)."""
    seen: dict[str, list[str]] = {}

    def observe(step: str) -> None:
        broken = unreachable(engine, kindo_double, unleash_server, ns, stack)
        if broken:
            seen[step] = broken

    engine.observe = observe
    return seen


def test_a_server_change_moves_every_flag_to_a_verified_new_server_before_the_old_one_goes(
        kindo, unleash_server, unleash_project) -> None:  # noqa: F811
    raw = raw_dev()
    before = plan_of(raw)
    first = stack_of(before)
    engine = Engine(unleash_project)
    engine.up(first)
    old_server = next(s for s in before.servers if s.litellmModelName == MODEL)
    old_id = engine.model_id(MODEL)
    next(m for m in raw["models"] if m["litellmModelName"] == MODEL)["vllm"]["extraArgs"] = ["--max-num-seqs", "64"]
    after = plan_of(raw)
    new_server = next(s for s in after.servers if s.litellmModelName == MODEL)
    assert new_server.name != old_server.name and new_server.url != old_server.url
    second = stack_of(after)
    broken = watched(engine, kindo, unleash_server, unleash_project, second)
    start = len(engine.log)
    engine.up(second)
    assert broken == {}, broken  # at no step did a flag carry a model whose server was gone or unverified
    steps = engine.log[start:]
    new_id = engine.model_id(MODEL)
    assert new_id != old_id and kindo.deletions[-1] == (old_id, new_id)  # deleted with its successor as replacement
    assert kindo.models[new_id]["litellmParams"]["api_base"] == new_server.url
    order = [f"create server {new_server.name}", f"create check {new_server.name}", f"replace kindo {MODEL}",
             f"delete kindo {old_id}", f"delete server {old_server.name}"]
    assert [s for s in steps if s in order] == order, steps
    moved = [s for s in steps if s.startswith("update unleash")]
    assert moved and steps.index(moved[-1]) < steps.index(f"delete kindo {old_id}")
    assert set(engine.servers) == {s.name for s in after.servers}  # the old generation is gone, the others untouched
    assert not [s for s in steps if "server" in s and MODEL not in s]


def test_with_recreate_the_same_server_restarts_under_its_flags(kindo, unleash_server, unleash_project) -> None:  # noqa: F811
    raw = raw_dev()
    entry = next(m for m in raw["models"] if m["litellmModelName"] == MODEL)
    entry["vllm"]["rollout"] = "recreate"
    before = plan_of(raw)
    engine = Engine(unleash_project)
    engine.up(stack_of(before))
    old_id = engine.model_id(MODEL)
    entry["vllm"]["extraArgs"] = ["--max-num-seqs", "64"]
    after = plan_of(raw)
    server = next(s for s in after.servers if s.litellmModelName == MODEL)
    assert server.name == next(s.name for s in before.servers if s.litellmModelName == MODEL) == "qwen3-8b"
    second = stack_of(after)
    broken = watched(engine, kindo, unleash_server, unleash_project, second)
    engine.up(second)
    assert engine.model_id(MODEL) == old_id  # same URL and key: Kindo's model stays
    # The downtime the plan warns about: while the pods restart, and until the new check passes, Kindo routes there.
    assert set(broken) == {f"updating server {server.name}", f"update server {server.name}"}, broken
    assert all(server.url in line for lines in broken.values() for line in lines)

