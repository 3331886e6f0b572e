"""The runbook's model lifecycle as Pulumi runs it: the Kindo double + a REAL Unleash, driven in engine order.

`Engine` (tests/lifecycle_engine.py) stands in for the Pulumi engine and follows its documented step order:
pending deletes of an earlier failed update first; then the KindoModels in dependency order, then the
UnleashModelFlags (check with the old inputs, diff, create/update/replace, create-before-delete); then the
deletions, dependents first. Every test runs twice: against a Kindo that accepts a second model with the same
litellmModelName (the contract's assumption) and against one that enforces the documented "unique routing key".
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any, Iterator

import pulumi
import pytest
import yaml

from dynamic_providers import http
from dynamic_providers.kindo_model import ALTERNATE_SUFFIX, NEW_PATH, KindoModelError
from dynamic_providers.routing_report import CONFIG_KEY, read_routing, render_snippet
from dynamic_providers.unleash_flag import title_of
from tests.kindo_double import KindoDouble, running_double
from tests.lifecycle_engine import ENV, OWNER, WRITES, Engine, Model, Stack, unleash_references

ORG, USER = "org-test", "user-test"
OURS = title_of(OWNER)


@pytest.fixture(params=[False, True], ids=["names-shared", "names-unique"])
def kindo(request, unleash_server, unleash_project, monkeypatch) -> Iterator[KindoDouble]:
    with running_double(flags_referencing=unleash_references(unleash_server, unleash_project),
                        unique_names=request.param) as double:
        monkeypatch.setenv("KINDO_API_URL", double.url)
        monkeypatch.setenv("KINDO_API_KEY", double.api_key)
        monkeypatch.setenv("KINDO_ORG_ID", ORG)
        monkeypatch.setenv("KINDO_USER_ID", USER)
        monkeypatch.setenv("UNLEASH_URL", unleash_server.url)
        monkeypatch.setenv("UNLEASH_API_TOKEN", unleash_server.token)
        monkeypatch.setattr(http, "_sleep", lambda _s: None)
        yield double


@pytest.fixture
def writes(monkeypatch) -> list[tuple[str, str, str]]:
    """Every write request the providers send, to either service: (service, method, path)."""
    sent: list[tuple[str, str, str]] = []
    original = http.JsonClient.request

    def counting(self, method, path, body=None, **kwargs):
        if method.upper() in WRITES:
            sent.append((self.service, method.upper(), path))
        return original(self, method, path, body, **kwargs)

    monkeypatch.setattr(http.JsonClient, "request", counting)
    return sent


def model(name: str, provider: str = "Anthropic", context: int = 200000, **extra: Any) -> Model:
    replacement = extra.pop("replacement", None)
    return Model({"displayName": name, "modelProviderDisplayName": provider, "type": "CHAT", "contextWindow": context,
                  "metadata": {"type": "Text Generation", "costTier": "MEDIUM"}, "litellmModelName": name,
                  "litellmParams": {"model": f"anthropic/{name}", "api_key": "sk-ant-test-key"}, **extra}, replacement)


SONNET, HAIKU = "claude-sonnet-4-20250514", "claude-haiku-4-5-20251001"


def base_stack(**adopted: str) -> Stack:
    return Stack(
        models={SONNET: model(SONNET, **({"adoptModelId": adopted[SONNET]} if SONNET in adopted else {})),
                HAIKU: model(HAIKU, replacement=SONNET, **({"adoptModelId": adopted[HAIKU]} if HAIKU in adopted else {}))},
        flags={"LOCAL_STORAGE_CHAT_ACTIONS_MODELS": [SONNET], "TOOL_CALLING_MODELS": [SONNET, HAIKU],
               "INTERNAL_SMALL_WORKER": [HAIKU]},
        required={"LOCAL_STORAGE_CHAT_ACTIONS_MODELS", "TOOL_CALLING_MODELS", "INTERNAL_SMALL_WORKER"},
    )


def env_of(server, ns, flag: str) -> dict:
    r = server.session.get(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}")
    assert r.status_code == 200, r.text
    return r.json()


def variant_ids(server, ns, flag: str) -> list[str]:
    (ours,) = [s for s in env_of(server, ns, flag)["strategies"] if s.get("title") == OURS]
    return json.loads(ours["variants"][0]["payload"]["value"])


def models_of(kindo: KindoDouble, name: str) -> list[str]:
    """The models Kindo has for one entry: under its name or, after a replacement Kindo forced, the alternate."""
    return kindo.models_named(name) + kindo.models_named(name + ALTERNATE_SUFFIX)


def assert_one_model_per_entry_and_one_routing_per_flag(kindo, server, ns, engine: Engine, stack: Stack) -> None:
    for name in stack.models:
        assert models_of(kindo, name) == [engine.model_id(name)], name
    assert len(kindo.models) == len(stack.models)
    for flag, names in stack.flags.items():
        routing = [s for s in env_of(server, ns, flag)["strategies"] if s.get("variants")]
        assert [s["title"] for s in routing] == [OURS], flag
        assert variant_ids(server, ns, flag) == [engine.model_id(n) for n in names], flag


def test_1_a_new_model_is_registered_and_every_flag_carries_its_id(kindo, unleash_server, unleash_project) -> None:
    engine = Engine(unleash_project)
    engine.up(base_stack())
    sonnet, haiku = engine.model_id(SONNET), engine.model_id(HAIKU)
    assert set(kindo.models) == {sonnet, haiku}
    assert variant_ids(unleash_server, unleash_project, "TOOL_CALLING_MODELS") == [sonnet, haiku]
    assert variant_ids(unleash_server, unleash_project, "INTERNAL_SMALL_WORKER") == [haiku]
    assert variant_ids(unleash_server, unleash_project, "LOCAL_STORAGE_CHAT_ACTIONS_MODELS") == [sonnet]
    assert engine.log[:2] == [f"create kindo {SONNET}", f"create kindo {HAIKU}"]


def test_2_a_registered_field_change_replaces_the_model_and_moves_its_flags_first(kindo, unleash_server, unleash_project) -> None:
    engine = Engine(unleash_project)
    engine.up(base_stack())
    old = engine.model_id(HAIKU)
    changed = base_stack()
    changed.models[HAIKU].inputs["contextWindow"] = 100000
    engine.up(changed)
    new = engine.model_id(HAIKU)
    assert new != old and kindo.deletions == [(old, new)]  # deleted with its successor as the replacement
    assert kindo.models[new]["contextWindow"] == 100000
    assert_one_model_per_entry_and_one_routing_per_flag(kindo, unleash_server, unleash_project, engine, changed)
    steps = engine.log[engine.log.index(f"replace kindo {HAIKU}"):]
    assert steps[-1] == f"delete kindo {old}" and "update unleash INTERNAL_SMALL_WORKER" in steps[:-1]
    expected = HAIKU + ALTERNATE_SUFFIX if kindo.unique_names else HAIKU
    assert engine.models[HAIKU].outs["routingName"] == kindo.models[new]["litellmModelName"] == expected


def test_3_removing_a_model_moves_its_flags_then_deletes_it_with_its_replacement(kindo, unleash_server, unleash_project) -> None:
    engine = Engine(unleash_project)
    engine.up(base_stack())
    sonnet, haiku = engine.model_id(SONNET), engine.model_id(HAIKU)
    smaller = base_stack()
    del smaller.models[HAIKU]
    smaller.flags["TOOL_CALLING_MODELS"] = [SONNET]
    smaller.flags["INTERNAL_SMALL_WORKER"] = [SONNET]
    engine.up(smaller)
    assert kindo.deletions == [(haiku, sonnet)] and set(kindo.models) == {sonnet}
    assert variant_ids(unleash_server, unleash_project, "INTERNAL_SMALL_WORKER") == [sonnet]


def test_4_an_unchanged_stack_makes_zero_write_requests(kindo, unleash_server, unleash_project, writes) -> None:
    engine = Engine(unleash_project)
    engine.up(base_stack())
    assert {service for service, _, _ in writes} == {"Kindo", "Unleash"}
    writes.clear()
    before = len(kindo.requests)
    engine.up(base_stack())
    assert writes == [] and kindo.writes() == 2 and len(kindo.requests) == before


def test_5_drift_shows_in_refresh_and_the_next_up_restores_it(kindo, unleash_server, unleash_project) -> None:
    engine = Engine(unleash_project)
    engine.up(base_stack())
    ns, s = unleash_project, unleash_server.session
    flag_id = engine.flags["TOOL_CALLING_MODELS"].id
    strategies = f"{ns.features_url}/{ns.name('TOOL_CALLING_MODELS')}/environments/{ENV}/strategies"
    hand = [{"name": "kindo-models", "weight": 1000, "weightType": "variable", "stickiness": "default",
             "payload": {"type": "json", "value": json.dumps(["edited-by-hand"])}}]
    assert s.patch(f"{strategies}/{flag_id}", json=[{"op": "replace", "path": "/variants", "value": hand}]).status_code == 200
    assert s.post(strategies, json={"name": "default", "title": "a person's strategy", "constraints": [],
                                    "parameters": {}}).status_code == 200
    assert s.post(f"{ns.features_url}/{ns.name('INTERNAL_SMALL_WORKER')}/environments/{ENV}/off").status_code == 200
    engine.refresh()
    assert engine.flags["TOOL_CALLING_MODELS"].outs["modelIds"] == ["edited-by-hand"]
    assert engine.flags["INTERNAL_SMALL_WORKER"].outs["enabled"] is False
    engine.up(base_stack())
    assert variant_ids(unleash_server, ns, "TOOL_CALLING_MODELS") == [engine.model_id(SONNET), engine.model_id(HAIKU)]
    assert env_of(unleash_server, ns, "INTERNAL_SMALL_WORKER")["enabled"] is True
    engine.up(Stack(models=base_stack().models, flags={k: v for k, v in base_stack().flags.items() if k != "TOOL_CALLING_MODELS"},
                    required=base_stack().required))  # our routing of that flag is removed...
    assert [st["title"] for st in env_of(unleash_server, ns, "TOOL_CALLING_MODELS")["strategies"]] == ["a person's strategy"]


def test_6_kindo_refusing_a_delete_names_the_flags_still_referencing_the_model(kindo, unleash_server, unleash_project) -> None:
    engine = Engine(unleash_project)
    engine.up(base_stack())
    haiku = engine.model_id(HAIKU)
    # another tool routes a flag we do not manage to the same model
    ns, s = unleash_project, unleash_server.session
    assert s.post(ns.features_url, json={"name": ns.name("API_STEP_GENERATION"), "type": "release"}).status_code == 201
    assert s.post(f"{ns.features_url}/{ns.name('API_STEP_GENERATION')}/environments/{ENV}/strategies", json={
        "name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": "x"},
        "constraints": [], "variants": [{"name": "by-hand", "weight": 1000, "weightType": "variable", "stickiness": "default",
                                         "payload": {"type": "json", "value": json.dumps([haiku])}}]}).status_code == 200
    smaller = base_stack()
    del smaller.models[HAIKU]
    smaller.flags["TOOL_CALLING_MODELS"] = [SONNET]
    smaller.flags["INTERNAL_SMALL_WORKER"] = [SONNET]
    with pytest.raises(KindoModelError) as refused:
        engine.up(smaller)
    assert ns.name("API_STEP_GENERATION") in str(refused.value).splitlines()[0]
    assert haiku in kindo.models and kindo.deletions == []


def test_7_failures_are_clear_retried_only_where_safe_and_never_duplicate(kindo, unleash_server, unleash_project) -> None:
    engine = Engine(unleash_project)
    kindo.inject("502", times=1)  # 502 without a body: provably unprocessed, retried
    engine.up(Stack(models={SONNET: model(SONNET)}, flags={}))
    assert kindo.models_named(SONNET) == [engine.model_id(SONNET)]
    kindo.inject("drop", times=1)  # processed, answer lost: NOT retried; the run stops, state remembers
    with pytest.raises(pulumi.RunError, match="outcome of its registration is unknown"):
        engine.up(Stack(models={**base_stack().models}, flags={}))
    with pytest.raises(KindoModelError, match="outcome of its registration is unknown"):
        engine.up(base_stack())  # the next run stops too, and registers nothing
    assert len(kindo.models_named(HAIKU)) == 1 and kindo.writes(NEW_PATH) == 3  # the 502, its retry, haiku once
    kindo.inject("401", times=1)
    with pytest.raises(KindoModelError) as denied:
        Engine(unleash_project, models=copy.deepcopy(engine.models)).up(
            Stack(models={SONNET: model(SONNET), "gpt-4o": model("gpt-4o")}, flags={}))
    assert "401" in str(denied.value) and kindo.api_key not in str(denied.value)


# --------------------------------------------------------------------------- an installation set up by hand
def set_up_by_hand(kindo: KindoDouble, server, ns) -> dict[str, str]:
    """What the runbook (or `kindo install --apply`) leaves: models registered, flags routed to their IDs."""
    ids = {}
    for name in (SONNET, HAIKU):
        ids[name] = kindo.add_model(name, **{k: v for k, v in model(name).inputs.items() if k != "litellmModelName"})
    for flag, names in base_stack().flags.items():
        assert server.session.post(ns.features_url, json={"name": ns.name(flag), "type": "release"}).status_code == 201
        body = {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": flag},
                "constraints": [], "variants": [{"name": "models", "weight": 1000, "weightType": "variable",
                                                 "stickiness": "default", "payload": {
                                                     "type": "json", "value": json.dumps([ids[n] for n in names])}}]}
        assert server.session.post(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}/strategies", json=body).status_code == 200
        assert server.session.post(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}/on").status_code == 200
    return ids


def test_8_an_installation_set_up_by_hand_is_adopted_and_then_managed(kindo, unleash_server, unleash_project, writes) -> None:
    ns = unleash_project
    by_hand = set_up_by_hand(kindo, unleash_server, ns)
    # The migration starts from the truth: the routing report's snippet says which ID each entry is.
    keys = [ns.name(flag) for flag in base_stack().flags]
    snippet = yaml.safe_load(render_snippet(read_routing(unleash_server.url, unleash_server.token, ns.project, ENV, keys)))
    adopted = {}
    for entry in snippet[CONFIG_KEY]:
        name = kindo.models[entry["kindoModelId"]]["litellmModelName"]  # the operator reads Kindo's Models page
        adopted[name] = entry["kindoModelId"]
        assert sorted(entry["flags"]) == sorted(ns.name(f) for f, names in base_stack().flags.items() if name in names)
    assert adopted == by_hand

    engine = Engine(ns)
    writes.clear()
    engine.up(base_stack(**adopted))
    assert kindo.writes() == 0 and not [w for w in writes if w[0] == "Kindo"]  # nothing registered, nothing deleted
    assert {engine.model_id(n): engine.models[n].outs["registration"] for n in adopted} == \
           {i: "adopted" for i in by_hand.values()}
    assert_one_model_per_entry_and_one_routing_per_flag(kindo, unleash_server, ns, engine, base_stack(**adopted))
    assert [w for w in writes if w[1] == "POST" and w[2].endswith("/strategies")] == []  # taken over, not added

    changed = base_stack(**adopted)  # day 2: a field of an adopted model changes
    changed.models[HAIKU].inputs["contextWindow"] = 100000
    engine.up(changed)
    new = engine.model_id(HAIKU)
    assert new != by_hand[HAIKU] and kindo.deletions == [(by_hand[HAIKU], new)]
    assert_one_model_per_entry_and_one_routing_per_flag(kindo, unleash_server, ns, engine, changed)
    engine.up(changed)  # and stays put: kindoModelId in the entry does not adopt the retired model again
    assert engine.model_id(HAIKU) == new and len(kindo.models) == 2


def test_9_a_replacement_whose_outcome_is_unknown_keeps_the_old_model_serving(kindo, unleash_server, unleash_project) -> None:
    """The old half of a replacement is retired by Pulumi first in the NEXT update after a failed one, where the
    provider cannot know about the placeholder; so that run goes on, the old model serves, and the run after it
    stops until the operator answers. The answer retires the old model into the right successor."""
    ns = unleash_project
    engine = Engine(ns)
    engine.up(base_stack())
    old = engine.model_id(HAIKU)
    changed = base_stack()
    changed.models[HAIKU].inputs["contextWindow"] = 100000
    kindo.inject("drop", path=NEW_PATH)  # the successor's answer is lost
    engine.up(changed)
    assert engine.warnings and "outcome of its registration is unknown" in engine.warnings[-1]
    assert engine.models[HAIKU].outs["modelId"] == old and variant_ids(unleash_server, ns, "INTERNAL_SMALL_WORKER") == [old]
    assert old in kindo.models and kindo.deletions == []
    with pytest.raises(KindoModelError, match="outcome of its registration is unknown"):
        engine.up(changed)
    # The answer, from Kindo's Models page. (A unique-names Kindo refused the plain name before the answer was
    # lost: nothing was registered, and the operator confirms so.)
    seen = [m for m in models_of(kindo, HAIKU) if m != old]
    assert len(seen) == (0 if kindo.unique_names else 1)
    placeholder = engine.models[HAIKU].id
    if seen:
        changed.models[HAIKU].inputs["adoptModelId"] = seen[0]
    else:
        changed.models[HAIKU].inputs["confirmNotRegistered"] = placeholder
    engine.up(changed)
    new = engine.model_id(HAIKU)
    assert placeholder.startswith("unconfirmed-") and new != old and kindo.deletions == [(old, new)]
    assert_one_model_per_entry_and_one_routing_per_flag(kindo, unleash_server, ns, engine, changed)


def test_10_a_stack_routing_by_names_carries_the_names_kindo_has(kindo, unleash_server, unleash_project) -> None:
    ns = unleash_project
    engine = Engine(ns)
    stack = base_stack()
    stack.payload = "names"
    engine.up(stack)
    assert variant_ids(unleash_server, ns, "TOOL_CALLING_MODELS") == [SONNET, HAIKU]
    stack.models[HAIKU].inputs["contextWindow"] = 100000
    engine.up(stack)
    routing = kindo.models[engine.model_id(HAIKU)]["litellmModelName"]
    assert variant_ids(unleash_server, ns, "INTERNAL_SMALL_WORKER") == [routing]
    assert routing == (HAIKU + ALTERNATE_SUFFIX if kindo.unique_names else HAIKU) and len(kindo.models) == 2


def test_11_an_adopted_id_kindo_does_not_know_is_never_deleted_into(kindo, unleash_server, unleash_project) -> None:
    """A typo in kindoModelId cannot be caught at adoption (Kindo has no read endpoint); it surfaces on the first
    delete that needs it as a replacement: Kindo's 404 names it, nothing is deleted, and the error says so."""
    engine = Engine(unleash_project)
    engine.up(base_stack())
    haiku, typo = engine.model_id(HAIKU), str(uuid.uuid4())
    with pytest.raises(KindoModelError) as refused:
        engine.up(base_stack(**{HAIKU: typo}))
    assert f"Kindo does not know its replacement {typo}" in str(refused.value).splitlines()[0]
    assert haiku in kindo.models and kindo.deletions == [] and engine.pending[0][1].id == haiku
