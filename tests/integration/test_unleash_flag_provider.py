"""UnleashFlagProvider against a REAL Unleash 8.2.0: it owns one strategy per stack, takes hand routing over only
when that changes nothing Kindo sees, and touches nothing else."""

from __future__ import annotations

import json

import pytest

from dynamic_providers.unleash_flag import (
    LEGACY_TITLE, PROVIDER_VERSION, UnleashFlagError, UnleashFlagProvider, title_of,
)

ENV = "development"
OWNER = "kindo-models/dev"
OURS = title_of(OWNER)


@pytest.fixture
def provider(unleash_server, monkeypatch) -> UnleashFlagProvider:
    monkeypatch.setenv("UNLEASH_URL", unleash_server.url + "/api")  # the /api suffix people paste is accepted
    monkeypatch.setenv("UNLEASH_API_TOKEN", unleash_server.token)
    return UnleashFlagProvider()


def props(ns, flag: str, ids: list[str], required: bool = False, **changes) -> dict:
    base = {"flag": ns.name(flag), "environment": ENV, "project": ns.project, "owner": OWNER, "modelIds": ids,
            "payload": "ids", "required": required, "providerVersion": PROVIDER_VERSION, "__provider": "x"}
    return {**base, **changes}


def env_of(unleash_server, ns, flag: str, environment: str = ENV) -> dict:
    r = unleash_server.session.get(f"{ns.features_url}/{ns.name(flag)}/environments/{environment}")
    assert r.status_code == 200, r.text
    return r.json()


def ours(env: dict, title: str = OURS) -> dict:
    (strategy,) = [s for s in env["strategies"] if s.get("title") == title]
    return strategy


def ids_in(strategy: dict) -> list[str]:
    (variant,) = strategy["variants"]
    assert variant["payload"]["type"] == "json"
    return json.loads(variant["payload"]["value"])


def strategies_url(ns, flag: str, environment: str = ENV) -> str:
    return f"{ns.features_url}/{ns.name(flag)}/environments/{environment}/strategies"


def hand_routing(server, ns, flag: str, values: list[str], **extra) -> str:
    """A flag routed the way the runbook or kindo-cli leaves it: a strategy with a variant carrying the models."""
    server.session.post(ns.features_url, json={"name": ns.name(flag), "type": "release"})
    body = {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": flag},
            "constraints": [], "variants": [{"name": "models", "weight": 1000, "weightType": "variable",
                                             "stickiness": "default",
                                             "payload": {"type": "json", "value": json.dumps(values)}}], **extra}
    r = server.session.post(strategies_url(ns, flag), json=body)
    assert r.status_code == 200, r.text
    assert server.session.post(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}/on").status_code == 200
    return r.json()["id"]


def test_create_makes_the_flag_enables_it_and_carries_the_ids(provider, unleash_server, unleash_project) -> None:
    result = provider.create(props(unleash_project, "TOOL_CALLING_MODELS", ["m-1", "m-2"]))
    env = env_of(unleash_server, unleash_project, "TOOL_CALLING_MODELS")
    assert env["enabled"] is True
    strategy = ours(env)
    assert str(strategy["id"]) == result.id == result.outs["strategyId"]
    assert ids_in(strategy) == ["m-1", "m-2"] and strategy["parameters"]["rollout"] == "100"
    assert result.outs["enabled"] is True and result.outs["archived"] is False and result.outs["otherRouting"] == []


def test_update_changes_only_our_variants_and_keeps_hand_made_strategies(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    created = provider.create(props(ns, "EMBEDDING_MODELS", ["e-1"]))
    hand = s.post(strategies_url(ns, "EMBEDDING_MODELS"), json={"name": "default", "title": "added by a person",
                                                                 "constraints": [], "parameters": {}, "variants": []})
    assert hand.status_code == 200, hand.text
    # someone also tightened our strategy's constraints: a PUT would wipe them, our PATCH must not
    constraint = [{"contextName": "userId", "operator": "IN", "values": ["u1"], "caseInsensitive": False, "inverted": False}]
    r = s.patch(f"{strategies_url(ns, 'EMBEDDING_MODELS')}/{created.id}",
                json=[{"op": "replace", "path": "/constraints", "value": constraint}])
    assert r.status_code == 200, r.text

    provider.update(created.id, created.outs, props(ns, "EMBEDDING_MODELS", ["e-2", "e-1"]))
    env = env_of(unleash_server, ns, "EMBEDDING_MODELS")
    assert ids_in(ours(env)) == ["e-2", "e-1"] and ours(env)["constraints"][0]["values"] == ["u1"]
    assert [st["title"] for st in env["strategies"] if st.get("title") != OURS] == ["added by a person"]


def test_hand_edit_shows_in_read_and_the_next_update_restores_it(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    created = provider.create(props(ns, "INTERNAL_SMALL_WORKER", ["small-1"]))
    edited = [{"name": "kindo-models", "weight": 1000, "weightType": "variable", "stickiness": "default",
               "payload": {"type": "json", "value": json.dumps(["typed-by-hand"])}}]
    r = s.patch(f"{strategies_url(ns, 'INTERNAL_SMALL_WORKER')}/{created.id}",
                json=[{"op": "replace", "path": "/variants", "value": edited}])
    assert r.status_code == 200

    read = provider.read(created.id, created.outs)
    assert read.id == created.id and read.outs["modelIds"] == ["typed-by-hand"] and read.inputs["modelIds"] == ["typed-by-hand"]
    diff = provider.diff(created.id, read.outs, props(ns, "INTERNAL_SMALL_WORKER", ["small-1"]))
    assert diff.changes and not diff.replaces
    provider.update(created.id, read.outs, props(ns, "INTERNAL_SMALL_WORKER", ["small-1"]))
    assert ids_in(ours(env_of(unleash_server, ns, "INTERNAL_SMALL_WORKER"))) == ["small-1"]


def test_delete_removes_only_ours_and_never_silently_turns_a_required_flag_off(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    created = provider.create(props(ns, "AUDIO_TRANSCRIPTION", ["t-1"], required=True))
    with pytest.raises(UnleashFlagError, match="refusing to remove the routing of required flag"):
        provider.delete(created.id, created.outs)
    assert ours(env_of(unleash_server, ns, "AUDIO_TRANSCRIPTION"))
    r = s.post(strategies_url(ns, "AUDIO_TRANSCRIPTION"), json={"name": "default", "title": "kept", "constraints": [],
                                                                "parameters": {}})
    assert r.status_code == 200
    provider.delete(created.id, created.outs)
    env = env_of(unleash_server, ns, "AUDIO_TRANSCRIPTION")
    assert [st["title"] for st in env["strategies"]] == ["kept"] and env["enabled"] is True
    provider.delete(created.id, created.outs)  # deleting again is a no-op


def test_create_adopts_our_strategy_instead_of_adding_a_second(provider, unleash_server, unleash_project) -> None:
    first = provider.create(props(unleash_project, "INGESTION_WORKERS", ["a"]))
    again = provider.create(props(unleash_project, "INGESTION_WORKERS", ["b"]))
    env = env_of(unleash_server, unleash_project, "INGESTION_WORKERS")
    assert again.id == first.id and len(env["strategies"]) == 1 and ids_in(ours(env)) == ["b"]


def test_strategy_removed_by_hand_reads_as_gone_and_update_puts_it_back(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    created = provider.create(props(ns, "INTERNAL_LARGE_WORKER", ["l-1"]))
    assert s.delete(f"{strategies_url(ns, 'INTERNAL_LARGE_WORKER')}/{created.id}").status_code == 200
    assert provider.read(created.id, created.outs).id == ""
    updated = provider.update(created.id, created.outs, props(ns, "INTERNAL_LARGE_WORKER", ["l-1"]))
    assert updated.outs["strategyId"] != created.id
    assert ids_in(ours(env_of(unleash_server, ns, "INTERNAL_LARGE_WORKER"))) == ["l-1"]


def test_a_bad_token_gives_a_clear_error_without_the_token(unleash_server, unleash_project, monkeypatch) -> None:
    monkeypatch.setenv("UNLEASH_URL", unleash_server.url)
    monkeypatch.setenv("UNLEASH_API_TOKEN", "*:*.wrong-token-value")
    with pytest.raises(UnleashFlagError) as raised:
        UnleashFlagProvider().create(props(unleash_project, "CRON_EXPRESSION_GENERATION", ["c"]))
    message = str(raised.value)
    assert "401" in message and "unleashApiToken" in message and "wrong-token-value" not in message


# --------------------------------------------------------------------------------- routing set by hand
def test_hand_routing_of_the_same_models_is_taken_over(provider, unleash_server, unleash_project) -> None:
    ns = unleash_project
    hand_id = hand_routing(unleash_server, ns, "TOOL_CALLING_MODELS", ["m-2", "m-1"])
    created = provider.create(props(ns, "TOOL_CALLING_MODELS", ["m-1", "m-2"]))
    env = env_of(unleash_server, ns, "TOOL_CALLING_MODELS")
    assert created.id == hand_id and len(env["strategies"]) == 1  # one strategy carries the routing: ours now
    assert ours(env)["id"] == hand_id and ids_in(ours(env)) == ["m-1", "m-2"] and env["enabled"] is True


@pytest.mark.parametrize("hand, extra, words", [
    (["m-9"], {}, "it carries other models than this stack routes (['m-1'])"),
    (["m-1"], {"constraints": [{"contextName": "userId", "operator": "IN", "values": ["u1"]}]}, "constrained"),
    (["m-1"], {"parameters": {"rollout": "50", "stickiness": "default", "groupId": "g"}}, "below 100%"),
])
def test_other_hand_routing_stops_the_first_up_and_changes_nothing(provider, unleash_server, unleash_project,
                                                                   hand, extra, words) -> None:
    ns = unleash_project
    hand_routing(unleash_server, ns, "DEFAULT_WORKFLOW_STEP_MODEL", hand, **extra)
    before = env_of(unleash_server, ns, "DEFAULT_WORKFLOW_STEP_MODEL")
    with pytest.raises(UnleashFlagError) as stopped:
        provider.create(props(ns, "DEFAULT_WORKFLOW_STEP_MODEL", ["m-1"]))
    line = str(stopped.value).splitlines()[0]
    assert "already routed by hand or by another tool" in line and words in line and "Nothing was changed" in line
    assert env_of(unleash_server, ns, "DEFAULT_WORKFLOW_STEP_MODEL") == before


def test_hand_routing_beside_ours_is_drift_and_up_stops_on_it(provider, unleash_server, unleash_project) -> None:
    ns = unleash_project
    created = provider.create(props(ns, "INTERNAL_AUTO_GENERATION", ["m-1"]))
    hand_id = hand_routing(unleash_server, ns, "INTERNAL_AUTO_GENERATION", ["m-7"])
    read = provider.read(created.id, created.outs)
    assert read.outs["otherRouting"] == [f"a flexibleRollout strategy ({hand_id})"]
    assert provider.diff(created.id, read.outs, props(ns, "INTERNAL_AUTO_GENERATION", ["m-1"])).changes
    with pytest.raises(UnleashFlagError, match="carries model routing in a strategy this stack does not own, beside ours"):
        provider.update(created.id, read.outs, props(ns, "INTERNAL_AUTO_GENERATION", ["m-1"]))


# ------------------------------------------------------------------------------------------- stacks
def test_a_second_stack_on_the_same_environment_is_refused_and_never_clobbers(provider, unleash_server,
                                                                              unleash_project) -> None:
    ns = unleash_project
    first = provider.create(props(ns, "TOOL_CALLING_MODELS", ["dev-1"]))
    second = props(ns, "TOOL_CALLING_MODELS", ["prod-1"], owner="kindo-models/prod")
    with pytest.raises(UnleashFlagError) as refused:
        provider.create(second)
    assert "routed by another stack" in str(refused.value) and OWNER in str(refused.value)
    provider.delete("no-such-strategy", {**second, "strategyId": "no-such-strategy"})  # its delete leaves ours alone
    env = env_of(unleash_server, ns, "TOOL_CALLING_MODELS")
    assert [s["id"] for s in env["strategies"]] == [first.id] and ids_in(ours(env)) == ["dev-1"]


def test_dev_and_prod_share_one_flag_each_in_its_environment(provider, unleash_server, unleash_project) -> None:
    ns = unleash_project
    dev = provider.create(props(ns, "EMBEDDING_MODELS", ["dev-e"]))
    prod = provider.create(props(ns, "EMBEDDING_MODELS", ["prod-e"], environment="production", owner="kindo-models/prod"))
    assert ids_in(ours(env_of(unleash_server, ns, "EMBEDDING_MODELS"))) == ["dev-e"]
    prod_env = env_of(unleash_server, ns, "EMBEDDING_MODELS", "production")
    assert ids_in(ours(prod_env, title_of("kindo-models/prod"))) == ["prod-e"] and prod_env["enabled"] is True
    provider.delete(dev.id, dev.outs)
    assert env_of(unleash_server, ns, "EMBEDDING_MODELS")["strategies"] == []
    assert [s["id"] for s in env_of(unleash_server, ns, "EMBEDDING_MODELS", "production")["strategies"]] == [prod.id]


def test_a_version_1_strategy_becomes_ours_with_the_owner_in_its_title(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    s.post(ns.features_url, json={"name": ns.name("INGESTION_WORKERS"), "type": "release"})
    old = s.post(strategies_url(ns, "INGESTION_WORKERS"), json={
        "name": "flexibleRollout", "title": LEGACY_TITLE, "constraints": [],
        "parameters": {"rollout": "100", "stickiness": "default", "groupId": "g"},
        "variants": [{"name": "kindo-models", "weight": 1000, "weightType": "variable", "stickiness": "default",
                      "payload": {"type": "json", "value": json.dumps(["i-1"])}}]}).json()
    state = {k: v for k, v in props(ns, "INGESTION_WORKERS", ["i-1"], providerVersion="1").items() if k != "owner"}
    state["strategyId"] = old["id"]  # what version 1 left in state
    diff = provider.diff(old["id"], state, props(ns, "INGESTION_WORKERS", ["i-1"]))
    assert diff.changes and not diff.replaces
    updated = provider.update(old["id"], state, props(ns, "INGESTION_WORKERS", ["i-1"]))
    env = env_of(unleash_server, ns, "INGESTION_WORKERS")
    assert updated.outs["strategyId"] == old["id"] and ours(env)["id"] == old["id"] and len(env["strategies"]) == 1


# -------------------------------------------------------------------------------------- Unleash drift
def test_an_archived_flag_is_drift_and_up_revives_and_enables_it(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    created = provider.create(props(ns, "LOCAL_STORAGE_CHAT_ACTIONS_MODELS", ["l-1"], required=True))
    assert s.delete(f"{ns.features_url}/{ns.name('LOCAL_STORAGE_CHAT_ACTIONS_MODELS')}").status_code == 202  # UI "delete"
    read = provider.read(created.id, created.outs)
    assert read.id == created.id and read.outs["archived"] is True  # still in state, shown as drift
    assert provider.diff(created.id, read.outs, props(ns, "LOCAL_STORAGE_CHAT_ACTIONS_MODELS", ["l-1"], required=True)).changes
    updated = provider.update(created.id, read.outs, props(ns, "LOCAL_STORAGE_CHAT_ACTIONS_MODELS", ["l-1"], required=True))
    assert updated.outs["archived"] is False
    client = s.get(f"{unleash_server.url}/api/admin/projects/default/features/{ns.name('LOCAL_STORAGE_CHAT_ACTIONS_MODELS')}")
    assert client.status_code == 200 and client.json()["archived"] is False
    env = env_of(unleash_server, ns, "LOCAL_STORAGE_CHAT_ACTIONS_MODELS")
    assert env["enabled"] is True and ids_in(ours(env)) == ["l-1"] and len(env["strategies"]) == 1


def test_create_on_an_archived_flag_revives_it_instead_of_reporting_success(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    assert s.post(ns.features_url, json={"name": ns.name("API_STEP_GENERATION")}).status_code == 201
    assert s.delete(f"{ns.features_url}/{ns.name('API_STEP_GENERATION')}").status_code == 202
    provider.create(props(ns, "API_STEP_GENERATION", ["a-1"]))
    assert ns.name("API_STEP_GENERATION") in ns.feature_names()  # live again: Kindo's SDK sees it
    assert env_of(unleash_server, ns, "API_STEP_GENERATION")["enabled"] is True


def test_a_disabled_environment_is_drift_and_up_enables_it(provider, unleash_server, unleash_project) -> None:
    ns, s = unleash_project, unleash_server.session
    created = provider.create(props(ns, "CRON_EXPRESSION_GENERATION", ["c-1"]))
    assert s.post(f"{ns.features_url}/{ns.name('CRON_EXPRESSION_GENERATION')}/environments/{ENV}/off").status_code == 200
    read = provider.read(created.id, created.outs)
    assert read.outs["enabled"] is False
    news = props(ns, "CRON_EXPRESSION_GENERATION", ["c-1"])
    assert provider.diff(created.id, read.outs, news).changes
    provider.update(created.id, read.outs, news)
    assert env_of(unleash_server, ns, "CRON_EXPRESSION_GENERATION")["enabled"] is True


# ------------------------------------------------------------------------------------ routing names
def test_a_stack_may_route_by_names(provider, unleash_server, unleash_project) -> None:
    ns = unleash_project
    news = props(ns, "TOOL_CALLING_MODELS", ["id-1", "id-2"], payload="names",
                 modelNames=["claude-sonnet-4", "gpt-4o"])
    created = provider.create(news)
    assert ids_in(ours(env_of(unleash_server, ns, "TOOL_CALLING_MODELS"))) == ["claude-sonnet-4", "gpt-4o"]
    read = provider.read(created.id, created.outs)
    assert read.outs["modelNames"] == ["claude-sonnet-4", "gpt-4o"] and read.outs["modelIds"] == ["id-1", "id-2"]
    assert not provider.diff(created.id, read.outs, news).changes


def test_hand_routing_by_names_against_a_stack_routing_by_ids_names_the_setting(provider, unleash_server,
                                                                                unleash_project) -> None:
    ns = unleash_project
    hand_routing(unleash_server, ns, "EMBEDDING_MODELS", ["bge-m3"])
    with pytest.raises(UnleashFlagError) as stopped:
        provider.create(props(ns, "EMBEDDING_MODELS", ["e-1"], modelNames=["bge-m3"]))
    assert "this stack is set to carry model IDs; set the stack's variant payload" in str(stopped.value)


def test_check_refuses_a_placeholder_and_a_names_payload_without_names(provider) -> None:
    class NS:
        project = "default"

        @staticmethod
        def name(flag: str) -> str:
            return flag

    failures = provider.check({}, props(NS, "X", ["unconfirmed-1"])).failures
    assert [f.property for f in failures] == ["modelIds"] and "registration outcome is unknown" in failures[0].reason
    failures = provider.check({}, props(NS, "X", ["m-1"], payload="names")).failures
    assert [f.property for f in failures] == ["modelNames"]
    failures = provider.check({}, props(NS, "X", ["m-1"], owner="")).failures
    assert [f.property for f in failures] == ["owner"] and "<project>/<stack>" in failures[0].reason
