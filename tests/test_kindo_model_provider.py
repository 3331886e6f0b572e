"""KindoModelProvider called directly, against the Kindo double (tests/kindo_double.py).

The provider reads its connection from the environment here (no stack: no configure() call), except in the
configure tests. Backoff waits are recorded instead of slept, so retry tests take milliseconds.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi.dynamic import Config, ConfigureRequest  # noqa: E402
from pulumi.dynamic.dynamic import serialize_provider  # noqa: E402
from pulumi.output import Unknown  # noqa: E402

from dynamic_providers import http  # noqa: E402
from dynamic_providers.http import HttpError, JsonClient, RetryPolicy, Timeout, redact  # noqa: E402
from dynamic_providers.kindo_model import (  # noqa: E402
    DELETE_PATH,
    NEW_PATH,
    PROVIDER_VERSION,
    KindoModelError,
    KindoModelProvider,
    is_placeholder,
    model_id_of,
    referencing_flags,
    reset_successors,
)
from kindo_double import InMemoryFlags, KindoDouble, running_double  # noqa: E402

PROVIDER_ENTRY = "gASVexample-serialized-provider"  # stands in for the engine's `__provider` string
ANTHROPIC_KEY = "sk-ant-TEST-secret-anthropic-key-777"
AWS_SECRET = "aws-TEST-secret-access-key/with+chars"
ORG, USER = "org-0001", "user-0001"


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def new_deployment() -> Iterator[None]:
    """Each test is one deployment: no successor leaks from another test."""
    reset_successors()
    yield
    reset_successors()


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(http, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def flags() -> InMemoryFlags:
    return InMemoryFlags()


def use_double(monkeypatch: pytest.MonkeyPatch, double: KindoDouble) -> None:
    monkeypatch.setenv("KINDO_API_URL", double.url)
    monkeypatch.setenv("KINDO_API_KEY", double.api_key)
    monkeypatch.setenv("KINDO_ORG_ID", ORG)
    monkeypatch.setenv("KINDO_USER_ID", USER)


@pytest.fixture
def kindo(monkeypatch: pytest.MonkeyPatch, flags: InMemoryFlags) -> Iterator[KindoDouble]:
    with running_double(flags_referencing=flags, slow_seconds=3.0) as double:
        use_double(monkeypatch, double)
        yield double


def provider() -> KindoModelProvider:
    # read 1.5 s: the double's "slow" fault (3 s) times out, and a loaded machine still answers in time
    return KindoModelProvider(timeout=Timeout(connect=1.0, read=1.5),
                              retry=RetryPolicy(attempts=4, first_wait=0.01, max_wait=0.05, budget=5.0))


def props(**changes: Any) -> dict[str, Any]:
    """Inputs as the engine hands them to the provider: numbers as floats, `__provider` included."""
    base: dict[str, Any] = {
        "displayName": "Claude Sonnet 4",
        "modelProviderDisplayName": "Anthropic",
        "type": "CHAT",
        "contextWindow": 200000.0,
        "metadata": {"type": "Text Generation", "costTier": "MEDIUM", "modelCreator": "Anthropic"},
        "litellmModelName": "claude-sonnet-4",
        "litellmParams": {"model": "anthropic/claude-sonnet-4-20250514", "api_key": ANTHROPIC_KEY,
                          "max_tokens": 16384.0},
        "model_info": {"base_model": "claude-sonnet-4-20250514"},
        "providerVersion": PROVIDER_VERSION,
        "__provider": PROVIDER_ENTRY,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def create(p: KindoModelProvider, **changes: Any) -> tuple[str, dict[str, Any]]:
    checked = p.check({}, props(**changes))
    assert checked.failures == [], [(f.property, f.reason) for f in checked.failures]
    result = p.create({**checked.inputs, "__provider": PROVIDER_ENTRY})
    return result.id, {**(result.outs or {}), "__provider": PROVIDER_ENTRY}


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0]


# --------------------------------------------------------------------------------------------- check
def test_check_accepts_valid_inputs_and_normalizes_engine_floats() -> None:
    result = provider().check({}, props())
    assert result.failures == []
    assert "__provider" not in result.inputs
    assert result.inputs["contextWindow"] == 200000 and isinstance(result.inputs["contextWindow"], int)
    assert isinstance(result.inputs["litellmParams"]["max_tokens"], int)


@pytest.mark.parametrize("changes, field, words", [
    ({"litellmModelName": None}, "litellmModelName", "required"),
    ({"litellmModelName": "claude sonnet"}, "litellmModelName", "whitespace"),
    ({"displayName": ""}, "displayName", "required"),
    ({"modelProviderDisplayName": None}, "modelProviderDisplayName", "exactly"),
    ({"type": "CHAT_MODEL"}, "type", "CHAT or INTERNAL"),
    ({"type": None}, "type", "CHAT or INTERNAL"),
    ({"contextWindow": 0.0}, "contextWindow", "positive integer"),
    ({"contextWindow": -8192.0}, "contextWindow", "positive integer"),
    ({"contextWindow": 1.5}, "contextWindow", "positive integer"),
    ({"contextWindow": "200k"}, "contextWindow", "positive integer"),
    ({"contextWindow": True}, "contextWindow", "positive integer"),
    ({"litellmParams": None}, "litellmParams", "required"),
    ({"litellmParams": {"api_key": ANTHROPIC_KEY}}, "litellmParams", "litellmParams.model"),
    ({"metadata": "Text Generation"}, "metadata", "object"),
    ({"metadata": {"costTier": "CHEAP"}}, "metadata", "costTier"),
    ({"replacementModelId": ""}, "replacementModelId", "model ID"),
    ({"contextWindows": 1.0}, "contextWindows", "not a KindoModel input"),
])
def test_check_failures_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    failures = provider().check({}, props(**changes)).failures
    assert [f.property for f in failures] == [field], [(f.property, f.reason) for f in failures]
    assert words in failures[0].reason
    assert ANTHROPIC_KEY not in failures[0].reason


def test_check_does_not_judge_unknown_values_in_preview() -> None:
    params = {"model": "hosted_vllm/qwen3-8b", "api_base": Unknown(), "api_key": Unknown()}
    result = provider().check({}, props(litellmParams=params, type=Unknown(), replacementModelId=Unknown()))
    assert result.failures == []


# ---------------------------------------------------------------------------------------------- diff
def state_of(**changes: Any) -> dict[str, Any]:
    """Outputs in state, as the engine passes them to diff: ints as floats again, another `__provider`."""
    return {**props(**changes), "modelId": "m-1", "__provider": "an-older-pickle"}


def news_of(**changes: Any) -> dict[str, Any]:
    return provider().check({}, props(**changes)).inputs | {"__provider": PROVIDER_ENTRY}


def test_diff_without_declared_changes_is_no_change() -> None:
    result = provider().diff("m-1", state_of(), news_of())
    assert result.changes is False and result.replaces == []


@pytest.mark.parametrize("changes, replaced", [
    ({"contextWindow": 131072.0}, ["contextWindow"]),
    ({"litellmParams": {"model": "anthropic/claude-sonnet-4-20250514", "api_key": "sk-ant-rotated",
                        "max_tokens": 16384.0}}, ["litellmParams"]),
    ({"metadata": {"type": "Text Generation", "costTier": "HIGH", "modelCreator": "Anthropic"}}, ["metadata"]),
    ({"model_info": None}, ["model_info"]),
    ({"displayName": "Claude Sonnet 4 (new)", "replacementModelId": "m-9"}, ["displayName"]),
])
def test_diff_of_a_registered_field_is_a_replacement(changes: dict[str, Any], replaced: list[str]) -> None:
    result = provider().diff("m-1", state_of(), news_of(**changes))
    assert result.changes is True and result.replaces == replaced
    assert result.delete_before_replace is None  # create-before-delete: the successor exists before the delete


@pytest.mark.parametrize("changes", [{"replacementModelId": "m-9"}, {"providerVersion": "next"}])
def test_diff_of_local_fields_alone_is_an_update(changes: dict[str, Any]) -> None:
    result = provider().diff("m-1", state_of(), news_of(**changes))
    assert result.changes is True and result.replaces == []


def test_diff_with_an_unknown_registered_value_may_replace() -> None:
    params = {"model": "anthropic/claude-sonnet-4-20250514", "api_key": Unknown(), "max_tokens": 16384}
    news = props(litellmParams=params)
    assert provider().diff("m-1", state_of(), news).replaces == ["litellmParams"]


# -------------------------------------------------------------------------------------------- create
@pytest.mark.parametrize("shape", ["id", "modelId", "model.id", "data.id"])
def test_create_finds_the_id_in_each_answer_shape(kindo: KindoDouble, shape: str) -> None:
    kindo.id_shape = shape
    model_id, outs = create(provider())
    assert kindo.models_named("claude-sonnet-4") == [model_id]
    assert outs["modelId"] == model_id and outs["litellmParams"]["api_key"] == ANTHROPIC_KEY
    registered = kindo.models[model_id]
    assert registered["orgId"] == ORG and registered["userId"] == USER
    assert registered["contextWindow"] == 200000  # an int on the wire: the double refuses 200000.0
    assert "replacementModelId" not in registered and "providerVersion" not in registered
    assert kindo.requests[-1].body["litellmParams"]["api_key"] == "***"  # the record never keeps a key


def assert_unconfirmed(model_id: str, outs: dict[str, Any], reason: str) -> None:
    """A create whose outcome is unknown: state remembers a placeholder, and nothing can route to it."""
    assert is_placeholder(model_id) and outs["modelId"] == model_id == outs["placeholderId"]
    assert outs["registration"] == "unconfirmed" and reason in outs["unconfirmedReason"]
    assert ANTHROPIC_KEY not in json.dumps({k: v for k, v in outs.items() if k != "litellmParams"})


def test_create_remembers_an_answer_without_id_as_unconfirmed(kindo: KindoDouble) -> None:
    kindo.id_shape = "none"
    model_id, outs = create(provider())
    assert_unconfirmed(model_id, outs, "without a model ID")
    assert "success" in outs["unconfirmedReason"]  # the redacted snippet of what Kindo said
    assert kindo.writes() == 1 and len(kindo.models) == 1


def test_create_remembers_a_garbage_answer_as_unconfirmed_and_does_not_repeat(kindo: KindoDouble) -> None:
    kindo.inject("garbage")
    model_id, outs = create(provider())
    assert_unconfirmed(model_id, outs, "a proxy or login page answered")
    assert kindo.writes(NEW_PATH) == 1 and len(kindo.models) == 1


def test_create_retries_after_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    double = KindoDouble()  # bound, not listening: connecting is refused
    use_double(monkeypatch, double)
    monkeypatch.setattr(http, "_sleep", lambda _seconds: double.listen())
    try:
        model_id, _ = create(provider())
        assert double.models_named("claude-sonnet-4") == [model_id]
        assert double.writes() == 1  # the refused attempt never reached it
    finally:
        double.stop()


@pytest.mark.parametrize("status", ["502", "503", "504"])
def test_create_retries_after_a_bodiless_gateway_error(kindo: KindoDouble, waits: list[float], status: str) -> None:
    kindo.inject(status)
    model_id, _ = create(provider())
    assert kindo.models_named("claude-sonnet-4") == [model_id]
    assert kindo.writes() == 2 and len(waits) == 1


def test_create_does_not_retry_a_500_with_a_body_and_remembers_it(kindo: KindoDouble) -> None:
    kindo.inject("500")
    model_id, outs = create(provider())
    assert_unconfirmed(model_id, outs, "HTTP 500 after the request reached Kindo")
    assert kindo.writes() == 1 and kindo.models == {}


def test_create_after_a_read_timeout_is_not_repeated(kindo: KindoDouble) -> None:
    kindo.inject("slow")
    model_id, outs = create(provider())
    assert_unconfirmed(model_id, outs, "the answer was lost (read-timeout)")
    assert kindo.writes() == 1 and len(kindo.models_named("claude-sonnet-4")) == 1


def test_create_after_a_lost_response_is_not_repeated(kindo: KindoDouble) -> None:
    kindo.inject("drop")
    model_id, outs = create(provider())
    assert_unconfirmed(model_id, outs, "the answer was lost (dropped)")
    assert kindo.writes() == 1 and len(kindo.models_named("claude-sonnet-4")) == 1


@pytest.mark.parametrize("how", ["fault", "wrong key"])
def test_401_gives_a_clear_error_without_the_key(kindo: KindoDouble, monkeypatch: pytest.MonkeyPatch,
                                                 how: str) -> None:
    key = kindo.api_key
    if how == "fault":
        kindo.inject("401")
    else:
        key = "wrong-TEST-key-that-must-not-leak-123"
        monkeypatch.setenv("KINDO_API_KEY", key)
    with pytest.raises(KindoModelError) as error:
        create(provider())
    text = str(error.value)
    assert "HTTP 401" in first_line(error.value) and "kindoApiKey" in first_line(error.value)
    assert f"POST {NEW_PATH}" in text and "HTTP 401" in text and "Unauthorized" in text
    assert key not in text and ANTHROPIC_KEY not in text and kindo.url not in text
    assert kindo.models == {}


def test_a_body_kindo_rejects_names_kindos_message(kindo: KindoDouble) -> None:
    checked = provider().check({}, props()).inputs
    checked["litellmParams"] = {"api_key": ANTHROPIC_KEY}  # past check on purpose: Kindo says 400
    with pytest.raises(KindoModelError) as error:
        provider().create(checked)
    assert "rejected the body" in first_line(error.value) and "litellmParams.model" in first_line(error.value)
    assert ANTHROPIC_KEY not in str(error.value)


def test_a_server_echoing_a_secret_is_redacted() -> None:
    text = f'Invalid key "{ANTHROPIC_KEY}" / {json.dumps(AWS_SECRET)} / Authorization: Bearer abc.def.ghi'
    scrubbed = redact(text, [ANTHROPIC_KEY, AWS_SECRET])
    assert ANTHROPIC_KEY not in scrubbed and "abc.def.ghi" not in scrubbed
    assert AWS_SECRET.replace("/", "\\/") not in scrubbed and scrubbed.count("[REDACTED]") == 3


# -------------------------------------------------------------------------------------------- delete
def test_delete_uses_the_successor_registered_in_the_same_deployment(kindo: KindoDouble) -> None:
    p = provider()
    old_id, old_outs = create(p, replacementModelId=kindo.add_model("fallback"))
    new_id, _ = create(p, contextWindow=131072.0)  # the replacement: same litellmModelName
    p.delete(old_id, old_outs)
    assert kindo.deletions == [(old_id, new_id)]  # preferred over the replacementModelId in state
    assert kindo.models_named("claude-sonnet-4") == [new_id]


def test_delete_uses_replacement_model_id_from_state(kindo: KindoDouble) -> None:
    fallback = kindo.add_model("claude-haiku")
    model_id, outs = create(provider(), replacementModelId=fallback)
    reset_successors()  # a later deployment: only the state is left
    provider().delete(model_id, outs)
    assert kindo.deletions == [(model_id, fallback)] and model_id not in kindo.models


def test_delete_without_any_replacement_makes_no_request(kindo: KindoDouble) -> None:
    model_id, outs = create(provider())
    reset_successors()
    writes = kindo.writes()
    with pytest.raises(KindoModelError) as error:
        provider().delete(model_id, outs)
    assert "no replacement" in first_line(error.value) and "replacementModelId" in first_line(error.value)
    assert kindo.writes() == writes and model_id in kindo.models


def test_delete_never_uses_the_model_as_its_own_replacement(kindo: KindoDouble) -> None:
    model_id, outs = create(provider())
    writes = kindo.writes()
    with pytest.raises(KindoModelError) as error:
        provider().delete(model_id, {**outs, "replacementModelId": model_id})
    assert "its own ID" in first_line(error.value) and kindo.writes() == writes


@pytest.mark.parametrize("shape", ["list", "message"])
def test_delete_refused_while_flags_reference_the_model_names_them(kindo: KindoDouble, flags: InMemoryFlags,
                                                                   shape: str) -> None:
    kindo.refusal_shape = shape
    model_id, outs = create(provider(), replacementModelId=kindo.add_model("fallback"))
    flags.set("TOOL_CALLING_MODELS", [model_id])
    flags.set("INTERNAL_SMALL_WORKER", ["another", model_id])
    flags.set("EMBEDDING_MODELS", ["another"])
    with pytest.raises(KindoModelError) as error:
        provider().delete(model_id, outs)
    line = first_line(error.value)
    assert "INTERNAL_SMALL_WORKER, TOOL_CALLING_MODELS" in line and "EMBEDDING_MODELS" not in line
    assert "update those flags" in line and "HTTP 409" in str(error.value)
    assert model_id in kindo.models
    flags.set("TOOL_CALLING_MODELS", [])
    flags.set("INTERNAL_SMALL_WORKER", [])
    provider().delete(model_id, outs)  # once the variants moved, the same delete goes through
    assert model_id not in kindo.models


def test_delete_of_an_unknown_replacement_names_both_ids(kindo: KindoDouble) -> None:
    model_id, outs = create(provider(), replacementModelId="no-such-model")
    reset_successors()
    with pytest.raises(KindoModelError) as error:
        provider().delete(model_id, outs)
    line = first_line(error.value)
    assert model_id in line and "no-such-model" in line and "replacementModelId" in line
    assert "HTTP 404" in str(error.value)


def test_delete_retries_on_5xx(kindo: KindoDouble, waits: list[float]) -> None:
    model_id, outs = create(provider(), replacementModelId=kindo.add_model("fallback"))
    kindo.inject("500", times=2, path=DELETE_PATH)
    provider().delete(model_id, outs)
    assert model_id not in kindo.models and kindo.writes(DELETE_PATH) == 3 and len(waits) == 2


def test_delete_whose_answer_was_lost_succeeds_when_kindo_says_the_model_is_gone(kindo: KindoDouble) -> None:
    fallback = kindo.add_model("fallback")
    model_id, outs = create(provider(), replacementModelId=fallback)
    kindo.inject("drop", path=DELETE_PATH)  # processed; the retry then hears 404 naming the deleted model
    provider().delete(model_id, outs)
    assert model_id not in kindo.models and kindo.deletions == [(model_id, fallback)] and kindo.writes(DELETE_PATH) == 2


# ------------------------------------------------------------------------------------ read / update
def test_read_returns_the_state_faithfully() -> None:
    state = state_of(replacementModelId="m-9")
    result = provider().read("m-1", state)
    assert result.id == "m-1"
    assert result.outs == {k: v for k, v in state.items() if k != "__provider"}
    assert result.inputs is not None and "modelId" not in result.inputs and "__provider" not in result.inputs
    assert result.inputs["replacementModelId"] == "m-9" and result.inputs["litellmParams"] == state["litellmParams"]


def test_update_of_replacement_model_id_calls_no_api(kindo: KindoDouble) -> None:
    p = provider()
    model_id, outs = create(p)
    writes = kindo.writes()
    result = p.update(model_id, outs, news_of(replacementModelId="m-9"))
    assert result.outs is not None and result.outs["replacementModelId"] == "m-9"
    assert result.outs["modelId"] == model_id and kindo.writes() == writes


def test_update_refuses_a_registered_change() -> None:
    with pytest.raises(KindoModelError, match="provider bug"):
        provider().update("m-1", state_of(), news_of(contextWindow=1024.0))


# --------------------------------------------------------------------------- connection and secrets
def configure_request(kindo: Any, key: str | None) -> ConfigureRequest:
    raw: dict[str, Any] = {"kindo-models:kindo": kindo}
    if key is not None:
        raw["kindo-models:kindoApiKey"] = key
    return ConfigureRequest(Config(raw_config=raw, project_name="project"))


@pytest.mark.parametrize("as_json", [True, False])
def test_configure_reads_stack_config(kindo: KindoDouble, monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    for name in ("KINDO_API_URL", "KINDO_API_KEY", "KINDO_ORG_ID", "KINDO_USER_ID"):
        monkeypatch.delenv(name)
    connection = {"apiUrl": kindo.url, "orgId": "org-from-stack", "userId": "user-from-stack"}
    p = provider()
    p.configure(configure_request(json.dumps(connection) if as_json else connection, kindo.api_key))
    model_id, _ = create(p)
    assert kindo.models[model_id]["orgId"] == "org-from-stack"


def test_missing_connection_names_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KINDO_API_URL", "KINDO_API_KEY", "KINDO_ORG_ID", "KINDO_USER_ID"):
        monkeypatch.delenv(name, raising=False)
    p = provider()
    p.configure(configure_request({"apiUrl": "https://kindo.test", "orgId": "o"}, None))
    with pytest.raises(KindoModelError) as error:
        create(p)
    line = first_line(error.value)
    assert "kindo.userId / KINDO_USER_ID" in line and "kindoApiKey (secret) / KINDO_API_KEY" in line
    assert "apiUrl" not in line.split(";")[1].split("(")[0]


def test_the_serialized_provider_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    env_key = "kindo-env-TEST-secret-0042"
    stack_key = "kindo-stack-TEST-secret-0043"
    monkeypatch.setenv("KINDO_API_KEY", env_key)
    fresh = provider()
    configured = provider()
    configured.configure(configure_request({"apiUrl": "https://kindo.test", "orgId": "o", "userId": "u"}, stack_key))
    assert configured.connection().api_key == stack_key  # configure() did read it...
    for p in (fresh, configured):
        pickled = base64.b64decode(serialize_provider(p))
        for secret in (env_key, stack_key):
            assert secret.encode() not in pickled  # ...and the pickle in `__provider` never holds it
        assert b"dynamic_providers.kindo_model" in pickled and b"def delete" not in pickled  # by reference


# ------------------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize("data, expected", [
    ({"id": "a"}, "a"), ({"modelId": "b"}, "b"), ({"model": {"id": "c"}}, "c"), ({"data": {"id": 7}}, "7"),
    ({"id": ""}, None), ({"data": [{"id": "x"}]}, None), ("id", None), (None, None), ({"id": True}, None),
])
def test_model_id_shapes(data: Any, expected: str | None) -> None:
    assert model_id_of(data) == expected


@pytest.mark.parametrize("data, text, expected", [
    ({"message": "in use", "flags": ["TOOL_CALLING_MODELS", "A_B"]}, "", ["TOOL_CALLING_MODELS", "A_B"]),
    ({"error": "MODEL_IN_USE", "details": {"featureFlags": {"EMBEDDINGS": ["m"]}}}, "", ["EMBEDDINGS"]),
    ({"message": "Referenced by INGESTION_WORKERS, INTERNAL_LARGE_WORKER. HTTP error"}, "",
     ["INGESTION_WORKERS", "INTERNAL_LARGE_WORKER"]),
    (None, "flags still set: AUDIO_TRANSCRIPTION", ["AUDIO_TRANSCRIPTION"]),
    ({"error": "MODEL_IN_USE"}, "", []),
])
def test_referencing_flags(data: Any, text: str, expected: list[str]) -> None:
    assert referencing_flags(data, text) == expected


def test_idempotent_calls_give_up_after_bounded_attempts(kindo: KindoDouble, waits: list[float]) -> None:
    kindo.inject("503", times=10)
    client = JsonClient("Kindo", kindo.url, {"Authorization": f"Bearer {kindo.api_key}"},
                        retry=RetryPolicy(attempts=3, first_wait=0.01, max_wait=0.02, budget=5.0))
    with pytest.raises(HttpError) as error:
        client.post(DELETE_PATH, {"orgId": ORG, "userId": USER}, idempotent=True)
    assert first_line(error.value) == f"Kindo POST {DELETE_PATH} failed: HTTP 503 (after 3 attempts): (empty body)"
    assert error.value.status == 503 and len(waits) == 2 and kindo.writes() == 3


# ------------------------------------------------------------------------------- resource under mocks
def test_kindo_model_registers_its_inputs_and_a_provider_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import pulumi
    from pulumi.runtime import rpc
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from dynamic_providers.kindo_model import KindoModel, KindoModelArgs

    env_key = "kindo-env-TEST-secret-0099"
    monkeypatch.setenv("KINDO_API_KEY", env_key)
    seen: list[pulumi.runtime.MockResourceArgs] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            seen.append(args)
            return "m-1", {**args.inputs, "modelId": "m-1"}

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
            return {}, []

    def program() -> None:  # Outputs belong to the loop they are made in: make them inside the run
        fields = {k: v for k, v in props().items() if k not in ("__provider", "providerVersion")}
        fields["litellmParams"] = {**fields["litellmParams"], "api_key": pulumi.Output.secret(ANTHROPIC_KEY)}
        KindoModel("claude", KindoModelArgs(fields, replacement_model_id="m-0"))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(Mocks(), project="kindo-models", stack="test", preview=False)
    try:
        _sync_await(run_pulumi_func(program))
    finally:
        loop.close()
    [model] = seen
    assert model.typ == "pulumi-python:dynamic/kindo:KindoModel" and model.name == "claude"
    assert model.inputs["providerVersion"] == PROVIDER_VERSION and model.inputs["replacementModelId"] == "m-0"
    assert model.inputs["litellmModelName"] == "claude-sonnet-4" and "modelId" not in model.inputs
    assert rpc.is_rpc_secret(model.inputs["__provider"])  # the SDK marks the pickle secret; still, no secret in it
    assert rpc.is_rpc_secret(model.inputs["litellmParams"])  # the secret api_key keeps litellmParams secret
    pickled = base64.b64decode(rpc.unwrap_rpc_secret(model.inputs["__provider"]))
    assert env_key.encode() not in pickled and ANTHROPIC_KEY.encode() not in pickled


# ----------------------------------------------------------------------------- the double's contract
def test_the_double_is_no_friendlier_than_the_contract(kindo: KindoDouble) -> None:
    import requests

    auth = {"Authorization": f"Bearer {kindo.api_key}"}
    body = {"orgId": ORG, "userId": USER, "displayName": "X", "modelProviderDisplayName": "Anthropic", "type": "CHAT",
            "litellmModelName": "x", "litellmParams": {"model": "anthropic/x", "api_key": ANTHROPIC_KEY}}

    def post(path: str, payload: Any, headers: dict[str, str] = auth, **kw: Any) -> requests.Response:
        return requests.post(kindo.url + path, json=payload, headers=headers, timeout=5, **kw)

    assert post(NEW_PATH, body, headers={}).status_code == 401
    assert post(NEW_PATH, body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert post(NEW_PATH, {**body, "orgId": ""}).status_code == 400
    assert post(NEW_PATH, {k: v for k, v in body.items() if k != "userId"}).status_code == 400
    assert post(NEW_PATH, {**body, "contextWindow": 8192.0}).status_code == 400  # an integer, documented
    assert post(NEW_PATH, {**body, "type": "chat"}).status_code == 400
    not_json = requests.post(kindo.url + NEW_PATH, data="orgId=o", timeout=5,
                             headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 400
    first, second = post(NEW_PATH, body).json()["id"], post(NEW_PATH, body).json()["id"]  # not idempotent
    assert first != second and sorted(kindo.models_named("x")) == sorted([first, second])
    assert post(NEW_PATH, {**body, "modelProviderDisplayName": "anthropic"}).ok  # silently a new provider
    assert kindo.created_providers == ["anthropic"]

    same = {"orgId": ORG, "userId": USER, "deletingModelId": first, "replacementModelId": first}
    assert post(DELETE_PATH, same).status_code == 400
    unknown = post(DELETE_PATH, {**same, "replacementModelId": "missing-id"})
    assert unknown.status_code == 404 and "missing-id" in unknown.json()["message"]
    assert post(DELETE_PATH, {**same, "replacementModelId": second}).json() == {"success": True}
    assert kindo.deletions == [(first, second)]

    assert all(r.body is None or "Authorization" not in json.dumps(r.body) for r in kindo.requests)
    assert ANTHROPIC_KEY not in json.dumps([r.body for r in kindo.requests])
    assert kindo.writes(NEW_PATH) == 10 and kindo.writes(DELETE_PATH) == 3


# ------------------------------------------------------------------------------------------ adoption
def test_args_take_the_admin_api_body_with_its_wire_names() -> None:
    from dynamic_providers.kindo_model import KindoModelArgs

    body = {k: v for k, v in props().items() if k not in ("__provider", "providerVersion")}
    args = KindoModelArgs(body, replacement_model_id="m-0", adopt_model_id="m-7")
    assert args.to_props() == {**body, "replacementModelId": "m-0", "adoptModelId": "m-7", "confirmNotRegistered": None}
    with pytest.raises(ValueError, match="orgId") as error:
        KindoModelArgs({**body, "orgId": "o"})
    assert "not Kindo body fields" in str(error.value)


def test_adopting_registers_nothing_and_takes_the_id(kindo: KindoDouble) -> None:
    existing = kindo.add_model("claude-sonnet-4")
    model_id, outs = create(provider(), adoptModelId=existing)
    assert model_id == existing == outs["modelId"] and outs["registration"] == "adopted"
    assert kindo.writes() == 0 and kindo.models_named("claude-sonnet-4") == [existing]


def test_check_marks_an_adoption_already_applied() -> None:
    p = provider()
    assert "adoptionDone" not in p.check({}, props(adoptModelId="m-7")).inputs  # a new resource adopts
    assert p.check(props(adoptModelId="m-7"), props(adoptModelId="m-7")).inputs["adoptionDone"] is True
    assert "adoptionDone" not in p.check(props(adoptModelId="m-7"), props(adoptModelId="m-8")).inputs
    # outputs and derived fields never come from the caller
    checked = p.check({}, props(modelId="x", registration="adopted", adoptionDone=True)).inputs
    assert not {"modelId", "registration", "adoptionDone"} & set(checked)


def test_a_field_change_of_an_adopted_model_registers_a_successor(kindo: KindoDouble) -> None:
    p = provider()
    adopted = kindo.add_model("claude-sonnet-4")
    _, outs = create(p, adoptModelId=adopted)
    news = {**p.check(outs, props(adoptModelId=adopted, contextWindow=131072.0)).inputs, "__provider": PROVIDER_ENTRY}
    assert p.diff(adopted, outs, news).replaces == ["contextWindow"]
    successor = p.create(news)
    assert successor.id != adopted and successor.outs["registration"] == "registered" and kindo.writes(NEW_PATH) == 1
    p.delete(adopted, outs)  # the engine's last step: the adopted model goes, into its successor
    assert kindo.deletions == [(adopted, successor.id)]


@pytest.mark.parametrize("old, new, replaces, changes", [
    (None, "m-7", ["adoptModelId"], True),  # another model takes this one's place
    ("m-7", "m-8", ["adoptModelId"], True),
    (None, "m-1", [], True),  # the ID the resource already has: recorded only
    ("m-7", None, [], True),  # removed: recorded only, the model stays
    ("m-7", "m-7", [], False),
])
def test_diff_of_adopt_model_id(old: str | None, new: str | None, replaces: list[str], changes: bool) -> None:
    result = provider().diff("m-1", state_of(adoptModelId=old), news_of(adoptModelId=new))
    assert result.replaces == replaces and result.changes is changes


# ------------------------------------------------------------------------------------ unknown outcome
def placeholder_state(**changes: Any) -> tuple[str, dict[str, Any]]:
    placeholder = "unconfirmed-0000"
    return placeholder, {**state_of(**changes), "modelId": placeholder, "placeholderId": placeholder,
                         "registration": "unconfirmed", "unconfirmedReason": "the answer was lost (dropped)"}


def test_a_placeholder_stops_every_diff_until_the_entry_answers() -> None:
    placeholder, olds = placeholder_state()
    with pytest.raises(KindoModelError) as error:
        provider().diff(placeholder, olds, news_of())
    line = first_line(error.value)
    assert "outcome of its registration is unknown" in line and "kindoModelId: <its ID>" in line
    assert f"confirmNotRegistered: {placeholder}" in line and "the answer was lost" in line
    assert provider().diff(placeholder, olds, news_of(adoptModelId="m-9")).replaces == ["adoptModelId"]
    assert provider().diff(placeholder, olds, news_of(confirmNotRegistered=placeholder)).replaces == ["confirmNotRegistered"]
    with pytest.raises(KindoModelError, match="confirmNotRegistered names unconfirmed-9999, not this placeholder"):
        provider().diff(placeholder, olds, news_of(confirmNotRegistered="unconfirmed-9999"))


@pytest.mark.parametrize("changes, field, words", [
    ({"adoptModelId": "unconfirmed-1234"}, "adoptModelId", "placeholder"),
    ({"adoptModelId": ""}, "adoptModelId", "model ID"),
    ({"confirmNotRegistered": "m-1"}, "confirmNotRegistered", "placeholder ID"),
])
def test_check_refuses_answers_that_cannot_be_right(changes: dict[str, Any], field: str, words: str) -> None:
    failures = provider().check({}, props(**changes)).failures
    assert [f.property for f in failures] == [field] and words in failures[0].reason


def test_a_placeholder_leaves_without_a_request_and_never_blocks(kindo: KindoDouble) -> None:
    placeholder, olds = placeholder_state()
    provider().delete(placeholder, olds)  # its entry removed, or a later run retiring it: no request, no failure
    provider().delete(placeholder, {**olds, "supersedes": kindo.add_model("claude-sonnet-4")})
    assert kindo.writes() == 0 and len(kindo.models) == 1


def test_stop_if_unconfirmed_stops_a_new_model_and_warns_for_a_replacement() -> None:
    import pulumi

    from dynamic_providers.kindo_model import stop_if_unconfirmed

    placeholder, olds = placeholder_state()
    with pytest.raises(pulumi.RunError, match="outcome of its registration is unknown"):
        stop_if_unconfirmed(olds)
    warning = stop_if_unconfirmed({**olds, "modelId": "m-old", "supersedes": "m-old"})
    assert warning and "m-old keeps serving" in warning and placeholder in warning
    assert stop_if_unconfirmed(state_of()) is None


# -------------------------------------------------------------------------------------------- delete
def http_404(body: Any) -> HttpError:
    return HttpError("Kindo POST x failed: HTTP 404", method="POST", path=DELETE_PATH, kind="status", status=404,
                     server_message=str(body), data=body)


@pytest.mark.parametrize("body, confirmed, gone", [
    ({"message": "Model not found: m-old"}, False, True),  # names the deleted model only: it is gone
    ({"message": "Model not found: m-new"}, True, False),  # names the replacement: never "gone"
    ({"message": "Model not found: m-old, m-new"}, True, False),  # both named: cannot tell apart
    ({"message": "Model not found"}, True, True),  # opaque, the replacement registered minutes ago: the model
    ({"message": "Model not found"}, False, False),  # opaque, replacement from state: ask
    (None, True, False),  # not Kindo's JSON (a proxy's 404 page): never "gone"
])
def test_model_gone_reads_a_404_strictly(body: Any, confirmed: bool, gone: bool) -> None:
    from dynamic_providers.kindo_model import Replacement, model_gone

    assert model_gone(http_404(body), "m-old", Replacement("m-new", "test", confirmed)) is gone


def test_a_model_deleted_by_hand_is_gone_and_the_delete_succeeds(kindo: KindoDouble) -> None:
    fallback = kindo.add_model("fallback")
    model_id, outs = create(provider(), replacementModelId=fallback)
    del kindo.models[model_id]  # deleted by hand in Kindo
    provider().delete(model_id, outs)
    assert kindo.deletions == [] and fallback in kindo.models


def test_an_opaque_404_with_a_replacement_from_state_asks_the_operator(kindo: KindoDouble) -> None:
    kindo.not_found_shape = "opaque"
    model_id, outs = create(provider(), replacementModelId=kindo.add_model("fallback"))
    del kindo.models[model_id]
    reset_successors()
    with pytest.raises(KindoModelError) as error:
        provider().delete(model_id, outs)
    line = first_line(error.value)
    assert "without saying whether the model or its replacement" in line and "pulumi state delete" in line


def test_a_delete_answered_by_a_login_page_is_not_done(kindo: KindoDouble) -> None:
    model_id, outs = create(provider(), replacementModelId=kindo.add_model("fallback"))
    kindo.inject("html", path=DELETE_PATH)
    with pytest.raises(KindoModelError) as error:
        provider().delete(model_id, outs)
    assert "not the Kindo API's JSON" in str(error.value) and "proxy" in str(error.value)
    assert model_id in kindo.models and kindo.deletions == []


# -------------------------------------------------------------------------------- unique routing names
def test_with_unique_names_a_replacement_takes_the_alternate_name_and_back(kindo: KindoDouble) -> None:
    kindo.unique_names = True
    p = provider()
    first_id, first = create(p)
    names = []
    for window in (131072.0, 65536.0):
        news = {**p.check(first, props(contextWindow=window)).inputs, "__provider": PROVIDER_ENTRY}
        assert p.diff(first_id, first, news).replaces == ["contextWindow"]
        successor = p.create(news)
        p.delete(first_id, first)
        names.append(successor.outs["routingName"])
        first_id, first = successor.id, {**successor.outs, "__provider": PROVIDER_ENTRY}
        assert len(kindo.models) == 1 and successor.outs["litellmModelName"] == "claude-sonnet-4"
    assert names == ["claude-sonnet-4--next", "claude-sonnet-4"]
    assert kindo.writes(NEW_PATH) == 4  # the first, (refused, alternate), the plain name free again


def test_with_unique_names_a_new_entry_whose_name_kindo_has_says_adopt_it(kindo: KindoDouble) -> None:
    kindo.unique_names = True
    kindo.add_model("claude-sonnet-4")  # registered by the runbook
    with pytest.raises(KindoModelError) as error:
        create(provider())
    assert "already has a model named 'claude-sonnet-4'" in first_line(error.value)
    assert "kindoModelId: <its ID>" in first_line(error.value) and len(kindo.models) == 1
