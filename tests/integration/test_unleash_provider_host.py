"""UnleashModelFlag through the SDK's REAL dynamic-provider host against the real Unleash: the engine's calls,
with the token passed as the engine passes secrets (Configure, secret envelope) and no UNLEASH_* variables."""

from __future__ import annotations

import json
from typing import Any, Iterator

import grpc
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto
from pulumi.runtime.proto.provider_pb2_grpc import ResourceProviderStub

from dynamic_providers.unleash_flag import PROVIDER_VERSION, UnleashFlagProvider, title_of
from tests.provider_host import plain, provider_host, secret, struct

URN = "urn:pulumi:dev::kindo-models::pulumi-python:dynamic/unleash:UnleashModelFlag::{}"
ENV = "development"
OURS = title_of("kindo-models/dev")


@pytest.fixture
def host() -> Iterator[ResourceProviderStub]:
    with provider_host(drop_env_prefixes=("UNLEASH_",)) as stub:
        yield stub


def news(ns, pickled: str, flag: str, ids: list[str], **changes: Any) -> dict[str, Any]:
    return {"flag": ns.name(flag), "environment": ENV, "project": ns.project, "owner": "kindo-models/dev",
            "modelIds": ids, "payload": "ids", "required": False, "providerVersion": PROVIDER_VERSION,
            "__provider": pickled, **changes}


def ids_in_unleash(server, ns, flag: str) -> list[str]:
    env = server.session.get(f"{ns.features_url}/{ns.name(flag)}/environments/{ENV}").json()
    strategies = [s for s in env["strategies"] if s.get("title") == OURS]
    return json.loads(strategies[0]["variants"][0]["payload"]["value"]) if strategies else []


def test_flag_lifecycle_through_the_real_provider_host(host, unleash_server, unleash_project) -> None:
    ns = unleash_project
    pickled = serialize_provider(UnleashFlagProvider())
    assert unleash_server.token.encode() not in pickled.encode()
    unleash = json.dumps({"url": unleash_server.url + "/api", "project": ns.project, "environment": ENV})
    configured = host.Configure(proto.ConfigureRequest(
        variables={"kindo-models:unleash": unleash},
        args=struct({"kindo-models:unleash": unleash, "kindo-models:unleashApiToken": secret(unleash_server.token)}),
        acceptSecrets=True, acceptResources=True))
    assert configured.acceptSecrets is False
    urn = URN.format("TOOL_CALLING_MODELS")

    bad = host.Check(proto.CheckRequest(urn=urn, olds=struct({}), news=struct(news(ns, pickled, "TOOL_CALLING_MODELS", ["a"], payload="xml"))))
    assert [f.property for f in bad.failures] == ["payload"]
    checked = host.Check(proto.CheckRequest(urn=urn, olds=struct({}), news=struct(news(ns, pickled, "TOOL_CALLING_MODELS", ["m-1"])))).inputs

    created = host.Create(proto.CreateRequest(urn=urn, properties=checked))
    assert plain(created.properties)["strategyId"] == created.id
    assert ids_in_unleash(unleash_server, ns, "TOOL_CALLING_MODELS") == ["m-1"]

    same = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=checked))
    assert same.changes == proto.DiffResponse.DIFF_NONE
    moved = host.Check(proto.CheckRequest(urn=urn, olds=created.properties, news=struct(news(ns, pickled, "TOOL_CALLING_MODELS", ["m-2", "m-1"])))).inputs
    diff = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=moved))
    assert diff.changes == proto.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    other = host.Check(proto.CheckRequest(urn=urn, olds=created.properties, news=struct(news(ns, pickled, "EMBEDDING_MODELS", ["m-1"])))).inputs
    assert list(host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=other)).replaces) == ["flag"]

    updated = host.Update(proto.UpdateRequest(id=created.id, urn=urn, olds=created.properties, news=moved))
    assert ids_in_unleash(unleash_server, ns, "TOOL_CALLING_MODELS") == ["m-2", "m-1"]
    read = host.Read(proto.ReadRequest(id=created.id, urn=urn, properties=updated.properties))
    assert read.id == created.id and plain(read.properties)["modelIds"] == ["m-2", "m-1"]

    host.Delete(proto.DeleteRequest(id=created.id, urn=urn, properties=updated.properties))
    assert ids_in_unleash(unleash_server, ns, "TOOL_CALLING_MODELS") == []

    required = host.Create(proto.CreateRequest(urn=URN.format("AUDIO_TRANSCRIPTION"), properties=host.Check(proto.CheckRequest(
        urn=urn, olds=struct({}), news=struct(news(ns, pickled, "AUDIO_TRANSCRIPTION", ["t-1"], required=True)))).inputs))
    with pytest.raises(grpc.RpcError) as refused:
        host.Delete(proto.DeleteRequest(id=required.id, urn=URN.format("AUDIO_TRANSCRIPTION"), properties=required.properties))
    assert "refusing to remove the routing of required flag" in refused.value.details()
    assert unleash_server.token not in refused.value.details()


def test_archived_flag_drift_through_the_real_host(host, unleash_server, unleash_project) -> None:
    """Refresh (Read) reports the archived flag as drift, Diff asks for an update, Update revives and enables it."""
    ns = unleash_project
    pickled = serialize_provider(UnleashFlagProvider())
    unleash = json.dumps({"url": unleash_server.url, "project": ns.project, "environment": ENV})
    host.Configure(proto.ConfigureRequest(
        variables={"kindo-models:unleash": unleash},
        args=struct({"kindo-models:unleash": unleash, "kindo-models:unleashApiToken": secret(unleash_server.token)}),
        acceptSecrets=True, acceptResources=True))
    urn = URN.format("EMBEDDING_MODELS")
    checked = host.Check(proto.CheckRequest(urn=urn, olds=struct({}), news=struct(news(ns, pickled, "EMBEDDING_MODELS", ["e-1"])))).inputs
    created = host.Create(proto.CreateRequest(urn=urn, properties=checked))
    assert unleash_server.session.delete(f"{ns.features_url}/{ns.name('EMBEDDING_MODELS')}").status_code == 202
    read = host.Read(proto.ReadRequest(id=created.id, urn=urn, properties=created.properties))
    assert read.id == created.id and plain(read.properties)["archived"] is True
    diff = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=read.properties, news=checked))
    assert diff.changes == proto.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    updated = host.Update(proto.UpdateRequest(id=created.id, urn=urn, olds=read.properties, news=checked))
    assert plain(updated.properties)["archived"] is False
    assert ns.name("EMBEDDING_MODELS") in ns.feature_names() and ids_in_unleash(unleash_server, ns, "EMBEDDING_MODELS") == ["e-1"]
