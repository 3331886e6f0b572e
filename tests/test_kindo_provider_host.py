"""KindoModel through the SDK's REAL dynamic-provider host, the way the Pulumi engine drives it.

The host and its wire helpers live in tests/provider_host.py; the engine launches `python -m pulumi.dynamic` (the provider class, pickled by
reference into `__provider`, imports from there), reads the port it prints, and talks gRPC:
  Configure (stack config; secrets in secret envelopes; the host answers acceptSecrets=false, so every later
  call carries secrets as plain values) -> Check -> Diff -> Create / Update -> Read -> Delete.
This test plays the engine for one model's life, including a replacement whose old model is deleted with the
successor the host registered in the same process. No KINDO_* variables reach the host: the connection
comes from Configure only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import struct_pb2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi.dynamic.dynamic import serialize_provider  # noqa: E402
from pulumi.output import Unknown  # noqa: E402
from pulumi.runtime import proto, rpc  # noqa: E402
from pulumi.runtime.proto.provider_pb2_grpc import ResourceProviderStub  # noqa: E402

from dynamic_providers.http import RetryPolicy, Timeout  # noqa: E402
from dynamic_providers.kindo_model import PROVIDER_VERSION, KindoModelProvider  # noqa: E402
from kindo_double import InMemoryFlags, KindoDouble, running_double  # noqa: E402
from provider_host import plain, provider_host, secret, struct  # noqa: E402

URN = "urn:pulumi:dev::kindo-models::pulumi-python:dynamic/kindo:KindoModel::{}"
ANTHROPIC_KEY = "sk-ant-TEST-host-secret-555"
ORG, USER = "org-from-stack", "user-from-stack"


@pytest.fixture
def host() -> Iterator[ResourceProviderStub]:
    with provider_host(drop_env_prefixes=("KINDO_",)) as stub:
        yield stub


@pytest.fixture
def kindo() -> Iterator[KindoDouble]:
    with running_double(flags_referencing=InMemoryFlags()) as double:
        yield double


def inputs(pickled: str, **changes: Any) -> dict[str, Any]:
    base = {
        "displayName": "Claude Sonnet 4", "modelProviderDisplayName": "Anthropic", "type": "CHAT",
        "contextWindow": 200000, "metadata": {"type": "Text Generation", "costTier": "MEDIUM"},
        "litellmModelName": "claude-sonnet-4",
        "litellmParams": {"model": "anthropic/claude-sonnet-4-20250514", "api_key": ANTHROPIC_KEY, "max_tokens": 16384},
        "providerVersion": PROVIDER_VERSION, "__provider": pickled,
    }
    return {**base, **changes}


def check(stub: ResourceProviderStub, urn: str, news: dict[str, Any]) -> tuple[struct_pb2.Struct, list[Any]]:
    answer = stub.Check(proto.CheckRequest(urn=urn, olds=struct({}), news=struct(news)))
    return answer.inputs, list(answer.failures)


def test_model_lifecycle_through_the_real_provider_host(host: ResourceProviderStub, kindo: KindoDouble) -> None:
    pickled = serialize_provider(KindoModelProvider(timeout=Timeout(connect=2.0, read=10.0),
                                                    retry=RetryPolicy(first_wait=0.05, max_wait=0.2, budget=5.0)))
    configured = host.Configure(proto.ConfigureRequest(
        variables={"kindo-models:kindo": f'{{"apiUrl": "{kindo.url}", "orgId": "{ORG}", "userId": "{USER}"}}'},
        args=struct({"kindo-models:kindo": f'{{"apiUrl": "{kindo.url}", "orgId": "{ORG}", "userId": "{USER}"}}',
                     "kindo-models:kindoApiKey": secret(kindo.api_key),
                     "aws:region": "us-west-2"}),
        acceptSecrets=True, acceptResources=True))
    assert configured.acceptSecrets is False  # so the engine sends secrets as plain values from here on
    urn = URN.format("claude")

    # Check: failures name the field; unknowns (preview) pass; ints come back as ints.
    _, failures = check(host, urn, inputs(pickled, type="CHAT_MODEL"))
    assert [(f.property, "CHAT or INTERNAL" in f.reason) for f in failures] == [("type", True)]
    preview, failures = check(host, urn, inputs(pickled, litellmParams={"model": "hosted_vllm/x",
                                                                        "api_base": rpc.UNKNOWN}))
    assert failures == [] and isinstance(plain(preview)["litellmParams"]["api_base"], Unknown)
    checked, failures = check(host, urn, inputs(pickled))
    assert failures == [] and plain(checked)["__provider"] == pickled

    # Create: the connection comes from Configure (the host has no KINDO_* variables).
    created = host.Create(proto.CreateRequest(urn=urn, properties=checked))
    outs = plain(created.properties)
    assert outs["modelId"] == created.id and outs["__provider"] == pickled
    assert kindo.models[created.id]["orgId"] == ORG and kindo.models[created.id]["contextWindow"] == 200000

    # Diff: nothing / replacementModelId only / a registered field.
    fallback = kindo.add_model("claude-haiku")
    unchanged = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=checked))
    assert unchanged.changes == proto.DiffResponse.DIFF_NONE
    news_update = check(host, urn, inputs(pickled, replacementModelId=fallback))[0]
    update = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=news_update))
    assert update.changes == proto.DiffResponse.DIFF_SOME and list(update.replaces) == []
    news_replace = check(host, urn, inputs(pickled, contextWindow=131072, replacementModelId=fallback))[0]
    replace = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=news_replace))
    assert list(replace.replaces) == ["contextWindow"] and replace.deleteBeforeReplace is False

    # Update (replacementModelId only): no API call.
    writes = kindo.writes()
    updated = host.Update(proto.UpdateRequest(id=created.id, urn=urn, olds=created.properties, news=news_update))
    assert plain(updated.properties)["replacementModelId"] == fallback and kindo.writes() == writes

    # Replacement, create-before-delete: the successor first, then the old model goes, replaced by the
    # successor the host registered in this process (preferred over replacementModelId in state).
    successor = host.Create(proto.CreateRequest(urn=urn, properties=news_replace))
    read = host.Read(proto.ReadRequest(id=successor.id, urn=urn, properties=successor.properties))
    assert read.id == successor.id and plain(read.properties)["contextWindow"] == 131072
    host.Delete(proto.DeleteRequest(id=created.id, urn=urn, properties=updated.properties))
    assert kindo.deletions == [(created.id, successor.id)]
    assert kindo.models_named("claude-sonnet-4") == [successor.id]

    # A delete that must not happen: the error reaches the engine with our message and no secret.
    orphan = host.Create(proto.CreateRequest(urn=URN.format("orphan"), properties=check(
        host, urn, inputs(pickled, litellmModelName="orphan-model"))[0]))
    writes = kindo.writes()
    with pytest.raises(grpc.RpcError) as error:
        host.Delete(proto.DeleteRequest(id=orphan.id, urn=URN.format("orphan"), properties=orphan.properties))
    details = error.value.details()
    assert error.value.code() == grpc.StatusCode.UNKNOWN
    assert "KindoModelError: Kindo model 'orphan-model'" in details and "Set replacementModelId on it" in details
    assert kindo.api_key not in details and ANTHROPIC_KEY not in details and kindo.writes() == writes


def test_an_unknown_registration_through_the_real_host_is_remembered_and_answered(host: ResourceProviderStub,
                                                                                   kindo: KindoDouble) -> None:
    """The host cannot return partial state from a failed Create; a placeholder from a successful one is what the
    engine stores. The next Diff stops with the instruction; the answer (kindoModelId) replaces the placeholder
    by adoption, and the placeholder's Delete in the same host process makes no request."""
    pickled = serialize_provider(KindoModelProvider(timeout=Timeout(connect=2.0, read=10.0),
                                                    retry=RetryPolicy(first_wait=0.05, max_wait=0.2, budget=5.0)))
    connection = f'{{"apiUrl": "{kindo.url}", "orgId": "{ORG}", "userId": "{USER}"}}'
    host.Configure(proto.ConfigureRequest(
        variables={"kindo-models:kindo": connection},
        args=struct({"kindo-models:kindo": connection, "kindo-models:kindoApiKey": secret(kindo.api_key)}),
        acceptSecrets=True, acceptResources=True))
    urn = URN.format("claude")
    checked, _ = check(host, urn, inputs(pickled))
    kindo.inject("drop")  # Kindo registers the model, the answer is lost
    created = host.Create(proto.CreateRequest(urn=urn, properties=checked))
    outs = plain(created.properties)
    assert created.id.startswith("unconfirmed-") and outs["registration"] == "unconfirmed"
    assert outs["modelId"] == created.id and ANTHROPIC_KEY not in outs["unconfirmedReason"]
    [registered] = kindo.models_named("claude-sonnet-4")

    # The next run without an answer: Diff stops, nothing is sent.
    with pytest.raises(grpc.RpcError) as stopped:
        host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=checked))
    assert "outcome of its registration is unknown" in stopped.value.details()
    assert f"confirmNotRegistered: {created.id}" in stopped.value.details() and kindo.writes() == 1

    # The answer: the operator saw the model on Kindo's Models page.
    answered = host.Check(proto.CheckRequest(urn=urn, olds=created.properties,
                                             news=struct(inputs(pickled, adoptModelId=registered)))).inputs
    diff = host.Diff(proto.DiffRequest(id=created.id, urn=urn, olds=created.properties, news=answered))
    assert list(diff.replaces) == ["adoptModelId"]
    adopted = host.Create(proto.CreateRequest(urn=urn, properties=answered))
    assert adopted.id == registered and plain(adopted.properties)["registration"] == "adopted"
    host.Delete(proto.DeleteRequest(id=created.id, urn=urn, properties=created.properties))
    assert kindo.writes() == 1 and kindo.models_named("claude-sonnet-4") == [registered]
