"""The read-only migration helper against a REAL Unleash: what each flag carries today, and a snippet to paste."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from dynamic_providers import http
from dynamic_providers.routing_report import CONFIG_KEY, PAYLOAD_SETTING, read_routing, render_snippet
from dynamic_providers.unleash_api import title_of

ENV = "development"


def route(server, ns, flag: str, values: list[str], *, title: str | None = None, enabled: bool = True,
          payload_type: str = "json") -> None:
    server.session.post(ns.features_url, json={"name": ns.name(flag), "type": "release"})
    value = json.dumps(values) if payload_type == "json" else ",".join(values)
    body = {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": flag},
            "constraints": [], "variants": [{"name": "v", "weight": 1000, "weightType": "variable", "stickiness": "default",
                                             "payload": {"type": payload_type, "value": value}}]}
    if title:
        body["title"] = title
    assert server.session.post(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}/strategies", json=body).status_code == 200
    if enabled:
        assert server.session.post(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}/on").status_code == 200


@pytest.fixture
def methods(monkeypatch) -> list[str]:
    sent: list[str] = []
    original = http.JsonClient.request

    def recording(self, method, path, body=None, **kwargs):
        sent.append(method.upper())
        return original(self, method, path, body, **kwargs)

    monkeypatch.setattr(http.JsonClient, "request", recording)
    return sent


def test_the_report_reads_every_flag_and_renders_a_snippet_to_paste(unleash_server, unleash_project, methods) -> None:
    ns = unleash_project
    sonnet, haiku, bge = (str(uuid.uuid4()) for _ in range(3))
    route(unleash_server, ns, "TOOL_CALLING_MODELS", [sonnet, haiku])
    route(unleash_server, ns, "INTERNAL_SMALL_WORKER", [haiku], payload_type="csv")
    route(unleash_server, ns, "EMBEDDING_MODELS", [bge], enabled=False)
    route(unleash_server, ns, "INGESTION_WORKERS", [sonnet])
    assert unleash_server.session.delete(f"{ns.features_url}/{ns.name('INGESTION_WORKERS')}").status_code == 202
    keys = [ns.name(f) for f in ("TOOL_CALLING_MODELS", "INTERNAL_SMALL_WORKER", "EMBEDDING_MODELS",
                                 "INGESTION_WORKERS", "AUDIO_TRANSCRIPTION")]

    routing = read_routing(unleash_server.url + "/api", unleash_server.token, ns.project, ENV, keys)
    assert set(methods) == {"GET"}  # read-only
    by_flag = {f.flag: f for f in routing.flags}
    assert by_flag[keys[0]].values == [sonnet, haiku] and by_flag[keys[1]].values == [haiku]
    assert by_flag[keys[2]].enabled is False and by_flag[keys[3]].state == "archived"
    assert by_flag[keys[4]].state == "missing" and by_flag[keys[4]].strategies == []
    assert all(s.plain and s.owner is None for f in routing.flags for s in f.strategies)

    snippet = render_snippet(routing)
    entries = yaml.safe_load(snippet)[CONFIG_KEY]
    assert [(e["kindoModelId"], e["flags"]) for e in entries] == [
        (sonnet, [keys[0], keys[3]]), (haiku, [keys[0], keys[1]]), (bge, [keys[2]])]
    assert all(e["litellmModelName"] == "TODO" for e in entries)
    assert f"flag {keys[3]} is archived" in snippet and f"flag {keys[2]} is disabled in {ENV}" in snippet
    assert unleash_server.token not in snippet


def test_names_other_stacks_and_routing_that_cannot_be_taken_over_are_reported(unleash_server, unleash_project) -> None:
    ns = unleash_project
    route(unleash_server, ns, "TOOL_CALLING_MODELS", ["claude-sonnet-4", "gpt-4o"])
    route(unleash_server, ns, "EMBEDDING_MODELS", ["bge-m3"], title=title_of("kindo-models/prod"))
    route(unleash_server, ns, "INTERNAL_LARGE_WORKER", ["claude-sonnet-4"])
    route(unleash_server, ns, "INTERNAL_LARGE_WORKER", ["gpt-4o"])  # two strategies carrying models
    routing = read_routing(unleash_server.url, unleash_server.token, ns.project, ENV)  # every flag with routing
    mine = [f for f in routing.flags if f.flag.startswith(ns.prefix)]  # the server is shared with other tests
    assert sorted(f.flag for f in mine) == sorted(ns.name(f) for f in (
        "TOOL_CALLING_MODELS", "EMBEDDING_MODELS", "INTERNAL_LARGE_WORKER"))
    snippet = render_snippet(type(routing)(routing.project, routing.environment, mine), owner="kindo-models/dev")
    entries = yaml.safe_load(snippet)[CONFIG_KEY]
    assert {e["litellmModelName"] for e in entries} == {"claude-sonnet-4", "gpt-4o", "bge-m3"}
    assert all(e["kindoModelId"] == "TODO" for e in entries)
    assert f"set {PAYLOAD_SETTING}: names" in snippet
    assert f"flag {ns.name('EMBEDDING_MODELS')} is routed by stack kindo-models/prod" in snippet
    assert f"flag {ns.name('INTERNAL_LARGE_WORKER')} carries routing that cannot be taken over as is" in snippet
    # the same stack reading its own environment gets no warning about itself
    assert "routed by stack" not in render_snippet(type(routing)(routing.project, routing.environment, mine),
                                                   owner="kindo-models/prod")


def test_an_environment_without_routing_renders_an_empty_list(unleash_server, unleash_project) -> None:
    routing = read_routing(unleash_server.url, unleash_server.token, unleash_project.project, ENV,
                           [unleash_project.name("TOOL_CALLING_MODELS")])
    assert yaml.safe_load(render_snippet(routing)) == {CONFIG_KEY: []}
