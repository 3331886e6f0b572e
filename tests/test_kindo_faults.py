"""Every Kindo fault of issue 12, injected by the Kindo double, driven across `pulumi up` runs by the engine
stand-in. Each asserts its outcome; all of them count: faults tried and survived, duplicate models (must be 0) and
leaked secrets (0), written to .cache/fault-figures/test_kindo_faults.json (tests/faults.py).

Secrets here contain `/` and `+`, so an echo with JSON's `\\/` escaping or URL encoding would show."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Iterator, Optional

import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from dynamic_providers import http
from dynamic_providers.http import RetryPolicy, Timeout
from dynamic_providers.kindo_model import ALTERNATE_SUFFIX, DELETE_PATH, NEW_PATH, KindoModelError, KindoModelProvider
from faults import Tally, leaks
from kindo_double import KindoDouble, running_double
from lifecycle_engine import Engine, Model, Stack

KINDO_KEY = "kindo/TEST+um-internal-key=0123456789"
MODEL_KEY = "sk-ant-TEST/model+secret=98765"
ANCHOR, SMALL = "claude-sonnet-4", "claude-haiku-4-5"
UNKNOWN = "outcome of its registration is unknown"


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    found = Tally("test_kindo_faults")
    yield found
    found.write()


@pytest.fixture
def kindo(monkeypatch: pytest.MonkeyPatch) -> Iterator[KindoDouble]:
    with running_double(api_key=KINDO_KEY, slow_seconds=3.0) as double:
        monkeypatch.setenv("KINDO_API_URL", double.url)
        monkeypatch.setenv("KINDO_API_KEY", KINDO_KEY)
        monkeypatch.setenv("KINDO_ORG_ID", "org-f")
        monkeypatch.setenv("KINDO_USER_ID", "user-f")
        monkeypatch.setattr(http, "_sleep", lambda _s: None)
        yield double


def model(name: str, **extra: Any) -> Model:
    replacement = extra.pop("replacement", None)
    return Model({"displayName": name, "modelProviderDisplayName": "Anthropic", "type": "CHAT", "contextWindow": 200000,
                  "metadata": {"type": "Text Generation"}, "litellmModelName": name,
                  "litellmParams": {"model": f"anthropic/{name}", "api_key": MODEL_KEY}, **extra}, replacement)


def stack(**small: Any) -> Stack:
    """An anchor and a model replaced into it; `small` changes the second model's inputs."""
    return Stack(models={ANCHOR: model(ANCHOR), SMALL: model(SMALL, replacement=ANCHOR, **small)}, flags={})


class Run:
    """Successive `pulumi up` runs of one stack; collects every text an operator or a log would see."""

    def __init__(self, kindo: KindoDouble) -> None:
        self.kindo = kindo
        self.provider = KindoModelProvider(timeout=Timeout(connect=1.0, read=1.5),
                                           retry=RetryPolicy(attempts=4, first_wait=0.01, max_wait=0.05, budget=5.0))
        self.engine = Engine(None, kindo=self.provider)
        self.texts: list[str] = []

    def up(self, target: Stack) -> Optional[BaseException]:
        try:
            self.engine.up(target)
            return None
        except (KindoModelError, pulumi.RunError) as error:
            self.texts.append(str(error))
            return error

    def models_of(self, name: str) -> list[str]:
        return self.kindo.models_named(name) + self.kindo.models_named(name + ALTERNATE_SUFFIX)

    def duplicates(self, names: tuple[str, ...] = (ANCHOR, SMALL)) -> int:
        return sum(max(0, len(self.models_of(n)) - 1) for n in names)

    def leaks(self) -> list[str]:
        outputs = [{k: v for k, v in s.outs.items() if k != "litellmParams"} for s in self.engine.models.values()]
        pickled = base64.b64decode(serialize_provider(self.provider)).decode("latin-1")
        return leaks([*self.texts, *self.engine.warnings, json.dumps(outputs), pickled], [KINDO_KEY, MODEL_KEY])


SCENARIOS: list[Callable[[Run], None]] = []


def scenario(fn: Callable[[Run], None]) -> Callable[[Run], None]:
    SCENARIOS.append(fn)
    return fn


# ------------------------------------------------------------------------------- model/new: unknown outcomes
def _unknown_then_answered(run: Run, fault: str, registered: bool, **double_settings: Any) -> None:
    """The first registration's outcome is unknown: that run stops, the next one too without an answer and
    without a request; the answer the operator reads on Kindo's Models page settles it with one model."""
    run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={}))
    for key, value in double_settings.items():
        setattr(run.kindo, key, value)
    run.kindo.inject(fault, path=NEW_PATH)
    assert isinstance(run.up(stack()), pulumi.RunError) and UNKNOWN in run.texts[-1]
    for key in double_settings:
        setattr(run.kindo, key, KindoDouble.__dataclass_fields__[key].default)
    writes = run.kindo.writes(NEW_PATH)
    assert isinstance(run.up(stack()), KindoModelError) and UNKNOWN in run.texts[-1]
    assert run.kindo.writes(NEW_PATH) == writes  # the next up registers nothing
    seen = run.kindo.models_named(SMALL)
    assert len(seen) == (1 if registered else 0)
    placeholder = run.engine.models[SMALL].id
    answer = {"adoptModelId": seen[0]} if seen else {"confirmNotRegistered": placeholder}
    assert run.up(stack(**answer)) is None
    assert run.models_of(SMALL) == [run.engine.model_id(SMALL)] and run.kindo.writes(NEW_PATH) == writes + (not seen)


@scenario
def new_answer_lost_after_registration(run: Run) -> None:
    _unknown_then_answered(run, "drop", registered=True)


@scenario
def new_read_timeout_after_registration(run: Run) -> None:
    _unknown_then_answered(run, "slow", registered=True)


@scenario
def new_500_after_registration(run: Run) -> None:
    _unknown_then_answered(run, "500-after", registered=True)


@scenario
def new_200_with_a_non_json_body(run: Run) -> None:
    _unknown_then_answered(run, "garbage", registered=True)


@scenario
def new_200_with_an_empty_body(run: Run) -> None:
    _unknown_then_answered(run, "empty", registered=True)


@scenario
def new_200_without_a_model_id(run: Run) -> None:
    run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={}))
    run.kindo.id_shape = "none"
    assert isinstance(run.up(stack()), pulumi.RunError) and "without a model ID" in run.texts[-1]
    run.kindo.id_shape = "id"
    assert run.up(stack(adoptModelId=run.kindo.models_named(SMALL)[0])) is None


@scenario
def new_200_login_page_of_a_proxy(run: Run) -> None:
    _unknown_then_answered(run, "html", registered=False)
    assert "proxy or login page" in run.texts[0]


@scenario
def new_500_before_registration(run: Run) -> None:
    _unknown_then_answered(run, "500", registered=False)


@scenario
def new_false_confirmation_on_a_unique_names_kindo(run: Run) -> None:
    run.kindo.unique_names = True
    run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={}))
    run.kindo.inject("drop", path=NEW_PATH)
    run.up(stack())
    placeholder = run.engine.models[SMALL].id
    assert isinstance(run.up(stack(confirmNotRegistered=placeholder)), KindoModelError)  # it WAS registered
    assert "most likely did happen" in run.texts[-1] and len(run.models_of(SMALL)) == 1


@scenario
def new_stale_confirmation_names_another_placeholder(run: Run) -> None:
    run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={}))
    run.kindo.inject("drop", path=NEW_PATH)
    run.up(stack())
    assert isinstance(run.up(stack(confirmNotRegistered="unconfirmed-from-an-earlier-outcome")), KindoModelError)
    assert "not this placeholder" in run.texts[-1] and len(run.models_of(SMALL)) == 1


@scenario
def new_the_answers_own_registration_is_lost_again(run: Run) -> None:
    run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={}))
    run.kindo.inject("html", path=NEW_PATH)  # a proxy: nothing registered
    run.up(stack())
    first = run.engine.models[SMALL].id
    run.kindo.inject("drop", path=NEW_PATH)  # the confirmation's registration: answer lost
    assert isinstance(run.up(stack(confirmNotRegistered=first)), pulumi.RunError)
    second = run.engine.models[SMALL].id
    assert second != first and len(run.models_of(SMALL)) == 1
    assert run.up(stack(confirmNotRegistered=first, adoptModelId=run.models_of(SMALL)[0])) is None
    assert run.models_of(SMALL) == [run.engine.model_id(SMALL)]


@scenario
def replacement_answer_lost(run: Run) -> None:
    run.up(stack())
    old = run.engine.model_id(SMALL)
    run.kindo.inject("drop", path=NEW_PATH)
    assert run.up(stack(contextWindow=100000)) is None and UNKNOWN in run.engine.warnings[-1]
    assert run.engine.model_id(SMALL) == old and old in run.kindo.models  # the old model keeps serving
    assert isinstance(run.up(stack(contextWindow=100000)), KindoModelError)
    [seen] = [m for m in run.models_of(SMALL) if m != old]
    assert run.up(stack(contextWindow=100000, adoptModelId=seen)) is None
    assert run.kindo.deletions == [(old, seen)] and run.models_of(SMALL) == [seen]


# ------------------------------------------------------------------------------- model/new: safe retries
def _gateway(run: Run, status: str) -> None:
    run.kindo.inject(status, path=NEW_PATH)
    assert run.up(stack()) is None and run.kindo.writes(NEW_PATH) == 3 and len(run.models_of(SMALL)) == 1


for _status in ("502", "503", "504"):
    def _gateway_fault(run: Run, status: str = _status) -> None:
        _gateway(run, status)
    _gateway_fault.__name__ = f"new_{_status}_without_a_body_is_retried"
    scenario(_gateway_fault)


@scenario
def new_connection_refused_then_open(run: Run) -> None:
    closed = KindoDouble(api_key=KINDO_KEY)  # bound, not listening
    run.kindo.stop()
    run.kindo = closed
    import os
    os.environ["KINDO_API_URL"] = closed.url
    http._sleep = lambda _s: closed.listen()
    try:
        assert run.up(stack()) is None and len(run.models_of(SMALL)) == 1 and closed.writes(NEW_PATH) == 2
    finally:
        closed.stop()


@scenario
def new_connection_refused_for_good(run: Run) -> None:
    import os
    closed = KindoDouble(api_key=KINDO_KEY)
    os.environ["KINDO_API_URL"] = closed.url
    try:
        error = run.up(stack())
        assert isinstance(error, KindoModelError) and "cannot connect to" in str(error) and closed.models == {}
    finally:
        closed.stop()
        os.environ["KINDO_API_URL"] = run.kindo.url
    assert run.up(stack()) is None and len(run.models_of(SMALL)) == 1


@scenario
def new_revoked_key(run: Run) -> None:
    run.kindo.inject("401", path=NEW_PATH)
    error = run.up(stack())
    assert isinstance(error, KindoModelError) and "HTTP 401" in str(error) and "kindoApiKey" in str(error)
    assert run.kindo.models == {}


@scenario
def new_401_echoing_the_key_in_every_escaping(run: Run) -> None:
    run.kindo.inject("echo-401", path=NEW_PATH)
    error = run.up(stack())
    assert isinstance(error, KindoModelError) and "HTTP 401" in str(error) and "[REDACTED]" in str(error)


# -------------------------------------------------------------------------------------- deletes
def _remove_small(run: Run) -> Optional[BaseException]:
    return run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={}))


@scenario
def delete_of_a_model_deleted_by_hand(run: Run) -> None:
    run.up(stack())
    del run.kindo.models[run.engine.model_id(SMALL)]
    assert _remove_small(run) is None and SMALL not in run.engine.models


@scenario
def delete_500_after_kindo_deleted(run: Run) -> None:
    run.up(stack())
    small = run.engine.model_id(SMALL)
    run.kindo.inject("500-after", path=DELETE_PATH)
    assert _remove_small(run) is None and small not in run.kindo.models and run.kindo.writes(DELETE_PATH) == 2


@scenario
def delete_answer_lost_after_kindo_deleted(run: Run) -> None:
    run.up(stack())
    run.kindo.inject("drop", path=DELETE_PATH)
    assert _remove_small(run) is None and run.models_of(SMALL) == []


@scenario
def delete_whose_replacement_is_gone(run: Run) -> None:
    run.up(stack())
    small, anchor = run.engine.model_id(SMALL), run.engine.model_id(ANCHOR)
    del run.kindo.models[anchor]  # the replacement was deleted by hand
    error = _remove_small(run)
    assert isinstance(error, KindoModelError) and f"does not know its replacement {anchor}" in str(error)
    assert small in run.kindo.models and run.kindo.deletions == []  # never deleted, still in state
    assert run.engine.pending and run.engine.pending[0][1].id == small


@scenario
def delete_opaque_404_with_a_replacement_from_state(run: Run) -> None:
    run.kindo.not_found_shape = "opaque"
    run.up(stack())
    del run.kindo.models[run.engine.model_id(SMALL)]
    error = _remove_small(run)
    assert isinstance(error, KindoModelError) and "pulumi state delete" in str(error)


@scenario
def delete_opaque_404_with_a_replacement_registered_now(run: Run) -> None:
    run.kindo.not_found_shape = "opaque"
    run.up(stack())
    old = run.engine.model_id(SMALL)
    del run.kindo.models[old]  # gone by hand; the stack replaces it: the successor exists, the 404 is about `old`
    assert run.up(stack(contextWindow=100000)) is None and run.models_of(SMALL) == [run.engine.model_id(SMALL)]


@scenario
def delete_answered_by_a_login_page(run: Run) -> None:
    run.up(stack())
    small = run.engine.model_id(SMALL)
    run.kindo.inject("html", path=DELETE_PATH)
    error = _remove_small(run)
    assert isinstance(error, KindoModelError) and "proxy" in str(error) and small in run.kindo.models
    assert run.up(Stack(models={ANCHOR: model(ANCHOR)}, flags={})) is None and small not in run.kindo.models


# ---------------------------------------------------------------------------------- unique routing names
@scenario
def unique_names_replacement_takes_the_alternate_name(run: Run) -> None:
    run.kindo.unique_names = True
    run.up(stack())
    assert run.up(stack(contextWindow=100000)) is None
    assert run.kindo.models[run.engine.model_id(SMALL)]["litellmModelName"] == SMALL + ALTERNATE_SUFFIX
    assert run.up(stack(contextWindow=65536)) is None
    assert run.kindo.models[run.engine.model_id(SMALL)]["litellmModelName"] == SMALL


@scenario
def unique_names_new_entry_kindo_already_has(run: Run) -> None:
    run.kindo.unique_names = True
    by_hand = run.kindo.add_model(SMALL)
    error = run.up(stack())
    assert isinstance(error, KindoModelError) and "kindoModelId: <its ID>" in str(error)
    assert run.up(stack(adoptModelId=by_hand)) is None and run.models_of(SMALL) == [by_hand]


@scenario
def unique_names_with_a_400_refusal(run: Run) -> None:
    run.kindo.unique_names, run.kindo.duplicate_status = True, 400
    run.up(stack())
    assert run.up(stack(contextWindow=100000)) is None and len(run.models_of(SMALL)) == 1


# ------------------------------------------------------------------------------------------ the runner
@pytest.mark.parametrize("fault", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_kindo_fault(fault: Callable[[Run], None], kindo: KindoDouble, tally: Tally,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_sleep", http._sleep)  # scenarios may replace it; restored afterwards
    monkeypatch.setenv("KINDO_API_URL", kindo.url)
    record = tally.start(fault.__name__, "kindo")
    run = Run(kindo)
    fault(run)
    record.duplicates = run.duplicates()
    record.leaks = run.leaks()
    assert record.duplicates == 0, f"{record.duplicates} duplicate models"
    assert record.leaks == [], record.leaks
    record.survived = True


def test_the_leak_figure_can_fail(kindo: KindoDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """With redaction switched off, the same echo shows up in the scanner: the 0 above is measured, not given."""
    monkeypatch.setattr(http, "redact", lambda text, _secrets: text)
    monkeypatch.setattr(http, "redact_value", lambda value, _secrets: value)
    run = Run(kindo)
    kindo.inject("echo-401", path=NEW_PATH)
    assert isinstance(run.up(stack()), KindoModelError)
    assert run.leaks()
