"""The stack's side of moving an installation (issue 12): kindoModelId, confirmNotRegistered and the variant payload
reach the dynamic resources the program registers."""

from __future__ import annotations

from typing import Any

from tests.conftest import base_config, only, plan_of
from tests.pulumi_harness import ROOT, run_program, stack_config

KINDO = "pulumi-python:dynamic/kindo:KindoModel"
FLAG = "pulumi-python:dynamic/unleash:UnleashModelFlag"
ADOPTED = "0b8f3c52-6a41-4d2e-9f7a-1c2d3e4f5a6b"


def named(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in raw["models"] if m["litellmModelName"] == name)


def test_the_fields_are_read_and_checked() -> None:
    raw = base_config()
    named(raw, "bge-m3")["kindoModelId"] = ADOPTED
    named(raw, "transcription-generator")["confirmNotRegistered"] = "unconfirmed-1234"
    raw["unleash"]["variantPayload"] = "names"
    plan = plan_of(raw)
    assert plan.ok, [f.line for f in plan.errors]
    bge = next(m for m in plan.models if m.litellmModelName == "bge-m3")
    assert bge.adoptModelId == ADOPTED and {f.payload for f in plan.routed_flags} == {"names"}
    raw["models"][0]["confirmNotRegistered"] = "a1b2c3"  # not a placeholder the provider handed out
    assert only(plan_of(raw), "config-invalid").message.startswith("models[0].confirmNotRegistered")


def test_one_kindo_model_cannot_be_adopted_twice() -> None:
    raw = base_config()
    for name in ("bge-m3", "transcription-generator"):
        named(raw, name)["kindoModelId"] = ADOPTED
    finding = only(plan_of(raw), "kindo-model-id-duplicate")
    assert finding.severity == "error" and "bge-m3, transcription-generator" in finding.message


def test_the_program_passes_them_to_the_dynamic_resources() -> None:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    models = config["kindo-models:models"]
    next(m for m in models if m["litellmModelName"] == "bge-m3")["kindoModelId"] = ADOPTED
    config["kindo-models:unleash"]["variantPayload"] = "names"
    result = run_program(config, "dev")
    assert result.error is None, result.error
    registered = {r.name: r.inputs for r in result.mocks.of_type(KINDO)}
    assert registered["bge-m3"]["adoptModelId"] == ADOPTED
    assert all(inputs.get("adoptModelId") is None for name, inputs in registered.items() if name != "bge-m3")
    flags = {r.name: r.inputs for r in result.mocks.of_type(FLAG)}
    assert flags and all(f["payload"] == "names" and f["modelNames"] for f in flags.values())
    assert flags["EMBEDDING_MODELS"]["modelNames"] == ["bge-m3"]
