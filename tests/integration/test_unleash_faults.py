"""Every Unleash fault of issue 12 against the REAL Unleash, behind a fault-injecting proxy on 127.0.0.1 where the
fault needs one (tests/fault_proxy.py). Each asserts its outcome; all count in the tally written to
.cache/fault-figures/test_unleash_faults.json: faults tried and survived, duplicate routing (a second strategy
carrying models on a flag: must be 0) and leaked secrets (0)."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Optional

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from dynamic_providers import http
from dynamic_providers.http import RetryPolicy, Timeout
from dynamic_providers.unleash_flag import PROVIDER_VERSION, UnleashFlagError, UnleashFlagProvider, title_of
from tests.fault_proxy import FaultProxy, fault_proxy
from tests.faults import Tally, leaks

ENV = "development"
OWNER = "kindo-models/dev"
FLAG = "TOOL_CALLING_MODELS"


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    found = Tally("test_unleash_faults")
    yield found
    found.write()


class Ctx:
    """One fault's world: a provider talking to Unleash through the proxy, and what the operator would see."""

    def __init__(self, server: Any, ns: Any, proxy: FaultProxy, waits: list[float]) -> None:
        self.server, self.ns, self.proxy, self.waits = server, ns, proxy, waits
        self.provider = UnleashFlagProvider()
        self.provider.timeout = Timeout(connect=2.0, read=5.0)
        self.provider.retry = RetryPolicy(attempts=3, first_wait=0.01, max_wait=2.0, budget=10.0)
        self.texts: list[str] = []
        self.outputs: list[dict] = []

    def props(self, ids: list[str], flag: str = FLAG, **changes: Any) -> dict:
        return {"flag": self.ns.name(flag), "environment": ENV, "project": self.ns.project, "owner": OWNER,
                "modelIds": ids, "payload": "ids", "required": True, "providerVersion": PROVIDER_VERSION,
                "__provider": "x", **changes}

    def create(self, ids: list[str], **changes: Any):
        result = self.provider.create(self.props(ids, **changes))
        self.outputs.append(result.outs)
        return result

    def fails(self, call: Callable[[], Any], *words: str) -> UnleashFlagError:
        with pytest.raises(UnleashFlagError) as raised:
            call()
        self.texts.append(str(raised.value))
        for word in words:
            assert word in str(raised.value), (word, str(raised.value))
        return raised.value

    def env(self, flag: str = FLAG, environment: str = ENV) -> dict:
        r = self.server.session.get(f"{self.ns.features_url}/{self.ns.name(flag)}/environments/{environment}")
        assert r.status_code == 200, r.text
        return r.json()

    def routing(self, flag: str = FLAG) -> list[dict]:
        return [s for s in self.env(flag)["strategies"] if s.get("variants")]

    def hand_routing(self, values: list[str], flag: str = FLAG) -> str:
        s, ns = self.server.session, self.ns
        s.post(ns.features_url, json={"name": ns.name(flag), "type": "release"})
        r = s.post(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}/strategies", json={
            "name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": flag},
            "constraints": [], "variants": [{"name": "m", "weight": 1000, "weightType": "variable", "stickiness": "default",
                                             "payload": {"type": "json", "value": json.dumps(values)}}]})
        assert r.status_code == 200, r.text
        return r.json()["id"]


SCENARIOS: list[Callable[[Ctx], None]] = []


def scenario(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    SCENARIOS.append(fn)
    return fn


# --------------------------------------------------------------------- a proxy in front of Unleash
@scenario
def read_answered_by_a_login_page_is_not_gone(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.inject("html", method="GET")
    c.fails(lambda: c.provider.read(created.id, created.outs), "HTML page", "proxy")


@scenario
def read_answered_by_the_proxys_404_page_is_not_gone(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.inject("html-404", method="GET")
    c.fails(lambda: c.provider.read(created.id, created.outs), "HTTP 404", "HTML page")


@scenario
def read_answered_with_an_empty_200_is_not_gone(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.inject("empty", method="GET")
    c.fails(lambda: c.provider.read(created.id, created.outs), "empty body", "proxy")


@scenario
def read_redirected_to_a_login_page(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.inject("redirect", method="GET")
    c.fails(lambda: c.provider.read(created.id, created.outs), "HTTP 302", "redirected to https://sso.example.test")


@scenario
def delete_answered_by_a_login_page_is_not_done(c: Ctx) -> None:
    created = c.create(["m-1"], required=False)
    c.proxy.inject("html", method="DELETE")
    c.fails(lambda: c.provider.delete(created.id, created.outs), "HTML page")
    assert [s["id"] for s in c.routing()] == [created.id]  # still there: never reported as done
    c.provider.delete(created.id, created.outs)
    assert c.routing() == []


@scenario
def new_strategy_answered_by_a_login_page(c: Ctx) -> None:
    c.proxy.inject("html", method="POST", path_contains="/strategies")
    c.fails(lambda: c.create(["m-1"]), "not the Unleash API's JSON", "proxy")
    c.create(["m-1"])  # the next run: exactly one strategy
    assert len(c.routing()) == 1


@scenario
def enable_answered_by_a_login_page(c: Ctx) -> None:
    c.proxy.inject("html", method="POST", path_contains="/on")
    c.fails(lambda: c.create(["m-1"]), "HTML page")
    assert c.env()["enabled"] is False  # not reported as done
    c.create(["m-1"])
    assert c.env()["enabled"] is True and len(c.routing()) == 1


@scenario
def new_strategy_answer_lost_after_unleash_added_it(c: Ctx) -> None:
    c.proxy.inject("drop", method="POST", path_contains="/strategies")
    created = c.create(["m-1"])
    assert [s["id"] for s in c.routing()] == [created.id]  # found by its title, not added twice


@scenario
def new_strategy_503_without_a_body_is_retried(c: Ctx) -> None:
    c.proxy.inject("503", times=2, method="POST", path_contains="/strategies")
    c.create(["m-1"])
    assert len(c.routing()) == 1 and len(c.waits) == 2


@scenario
def read_429_waits_as_retry_after_says(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.retry_after = "1"
    c.proxy.inject("429", method="GET")
    assert c.provider.read(created.id, created.outs).outs["modelIds"] == ["m-1"]
    assert c.waits and c.waits[-1] >= 1.0


@scenario
def update_500_after_unleash_applied_it_is_retried(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.inject("500", method="PATCH")
    c.provider.update(created.id, created.outs, c.props(["m-2"]))
    assert [json.loads(s["variants"][0]["payload"]["value"]) for s in c.routing()] == [["m-2"]]


@scenario
def read_502_for_good_gives_up_bounded(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.proxy.inject("502", times=3, method="GET")
    c.fails(lambda: c.provider.read(created.id, created.outs), "HTTP 502 (after 3 attempts)")
    assert len(c.waits) == 2


@scenario
def delete_answer_lost_after_unleash_deleted(c: Ctx) -> None:
    created = c.create(["m-1"], required=False)
    c.proxy.inject("drop", method="DELETE")
    c.provider.delete(created.id, created.outs)  # retried: Unleash's own 404 says it is gone
    assert c.routing() == []


# ---------------------------------------------------------------------------------- credentials
@scenario
def revoked_token(c: Ctx) -> None:
    c.provider._configured = {"url": c.proxy.url, "token": "*:*.revoked-TEST-token-000000000000"}
    error = c.fails(lambda: c.create(["m-1"]), "HTTP 401", "unleashApiToken")
    assert "revoked-TEST-token" not in str(error)


@scenario
def token_echoed_in_every_escaping(c: Ctx) -> None:
    c.proxy.inject("echo-401", method="GET")
    c.fails(lambda: c.create(["m-1"]), "HTTP 401", "[REDACTED]")


@scenario
def connection_refused(c: Ctx) -> None:
    c.provider._configured = {"url": "http://127.0.0.1:9", "token": c.server.token}
    c.fails(lambda: c.create(["m-1"]), "cannot connect to 127.0.0.1:9")


# -------------------------------------------------------------------------------- hand changes
@scenario
def flag_archived_by_hand(c: Ctx) -> None:
    created = c.create(["m-1"])
    assert c.server.session.delete(f"{c.ns.features_url}/{c.ns.name(FLAG)}").status_code == 202
    read = c.provider.read(created.id, created.outs)
    assert read.outs["archived"] is True and c.provider.diff(created.id, read.outs, c.props(["m-1"])).changes
    c.provider.update(created.id, read.outs, c.props(["m-1"]))
    assert c.ns.name(FLAG) in c.ns.feature_names() and c.env()["enabled"] is True and len(c.routing()) == 1


@scenario
def create_on_a_flag_archived_by_hand(c: Ctx) -> None:
    assert c.server.session.post(c.ns.features_url, json={"name": c.ns.name(FLAG)}).status_code == 201
    assert c.server.session.delete(f"{c.ns.features_url}/{c.ns.name(FLAG)}").status_code == 202
    c.create(["m-1"])
    assert c.ns.name(FLAG) in c.ns.feature_names() and c.env()["enabled"] is True


@scenario
def revive_answered_by_a_login_page(c: Ctx) -> None:
    created = c.create(["m-1"])
    assert c.server.session.delete(f"{c.ns.features_url}/{c.ns.name(FLAG)}").status_code == 202
    c.proxy.inject("html", method="POST", path_contains="/revive")
    c.fails(lambda: c.provider.update(created.id, created.outs, c.props(["m-1"])), "revive", "HTML page")
    assert c.ns.name(FLAG) not in c.ns.feature_names()  # not reported as revived


@scenario
def environment_disabled_by_hand(c: Ctx) -> None:
    created = c.create(["m-1"])
    r = c.server.session.post(f"{c.ns.features_url}/{c.ns.name(FLAG)}/environments/{ENV}/off")
    assert r.status_code == 200
    read = c.provider.read(created.id, created.outs)
    assert read.outs["enabled"] is False and c.provider.diff(created.id, read.outs, c.props(["m-1"])).changes
    c.provider.update(created.id, read.outs, c.props(["m-1"]))
    assert c.env()["enabled"] is True


@scenario
def second_stack_on_the_same_environment(c: Ctx) -> None:
    first = c.create(["dev-1"])
    c.fails(lambda: c.create(["prod-1"], owner="kindo-models/prod"), "routed by another stack", OWNER)
    assert [s["id"] for s in c.routing()] == [first.id]


@scenario
def hand_routing_added_beside_ours(c: Ctx) -> None:
    created = c.create(["m-1"])
    c.hand_routing(["m-9"])
    read = c.provider.read(created.id, created.outs)
    assert read.outs["otherRouting"]
    c.fails(lambda: c.provider.update(created.id, read.outs, c.props(["m-1"])), "beside ours")


@scenario
def hand_routing_of_other_models_on_the_first_up(c: Ctx) -> None:
    c.hand_routing(["m-9"])
    c.fails(lambda: c.create(["m-1"]), "already routed by hand", "Nothing was changed")
    assert [s.get("title") for s in c.routing()] == [None]


@scenario
def hand_routing_of_the_same_models_on_the_first_up(c: Ctx) -> None:
    hand = c.hand_routing(["m-1", "m-2"])
    created = c.create(["m-2", "m-1"])
    assert created.id == hand and [s["title"] for s in c.routing()] == [title_of(OWNER)]


@scenario
def dev_and_prod_on_one_flag(c: Ctx) -> None:
    c.create(["dev-1"])
    c.create(["prod-1"], environment="production", owner="kindo-models/prod")
    assert len(c.routing()) == 1 and len([s for s in c.env(environment="production")["strategies"]]) == 1


# ------------------------------------------------------------------------------------------ the runner
@pytest.mark.parametrize("fault", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_unleash_fault(fault: Callable[[Ctx], None], unleash_server, unleash_project, tally: Tally,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(http, "_sleep", waits.append)
    record = tally.start(fault.__name__, "unleash")
    with fault_proxy(unleash_server.url) as proxy:
        monkeypatch.setenv("UNLEASH_URL", proxy.url)
        monkeypatch.setenv("UNLEASH_API_TOKEN", unleash_server.token)
        ctx = Ctx(unleash_server, unleash_project, proxy, waits)
        fault(ctx)
        assert proxy.pending() == 0, "a fault was queued but never hit"
    flags = [f for f in unleash_project.feature_names()]
    record.duplicates = sum(max(0, len([s for s in ctx.env(f[len(unleash_project.prefix):])["strategies"]
                                        if s.get("title") == title_of(OWNER)]) - 1) for f in flags)
    pickled = serialize_provider(ctx.provider)
    record.leaks = leaks([*ctx.texts, json.dumps(ctx.outputs), pickled], [unleash_server.token])
    assert record.duplicates == 0 and record.leaks == []
    record.survived = True


def test_the_leak_figure_can_fail(unleash_server, unleash_project, monkeypatch: pytest.MonkeyPatch) -> None:
    """With redaction off, the proxy's echo of the token is caught by the scanner."""
    monkeypatch.setattr(http, "redact", lambda text, _secrets: text)
    monkeypatch.setattr(http, "redact_value", lambda value, _secrets: value)
    with fault_proxy(unleash_server.url) as proxy:
        monkeypatch.setenv("UNLEASH_URL", proxy.url)
        monkeypatch.setenv("UNLEASH_API_TOKEN", unleash_server.token)
        ctx = Ctx(unleash_server, unleash_project, proxy, [])
        proxy.inject("echo-401", method="GET")
        error: Optional[UnleashFlagError] = ctx.fails(lambda: ctx.create(["m-1"]), "HTTP 401")
        assert leaks([str(error)], [unleash_server.token])
