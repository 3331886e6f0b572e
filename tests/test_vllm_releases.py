"""Each image is checked against its own vLLM release (planner/data/vllm_releases.json, issue 11): parsers,
quantization methods, KV-cache dtypes, serve flags and chat templates, with the releases that have what it lacks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from planner import catalogs
from tests.conftest import add_model, base_config, only, plan_of

NEMOTRON = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16"


def stack_with(hf_id: str = "Qwen/Qwen3-8B", image: str | None = None, pool: str = "l40s", **vllm: Any) -> dict[str, Any]:
    raw = base_config()
    spec = {"model": hf_id, "gpuPool": pool, **vllm, **({"image": image} if image else {})}
    add_model(raw, litellmModelName="m", provider="Self-Hosted", contextWindow=8192, vllm=spec)
    return raw


def codes(raw: dict[str, Any], subject: str = "m") -> set[str]:
    return {f.code for f in plan_of(raw).findings if f.subject == subject}


def server(raw: dict[str, Any], name: str = "m"):  # type: ignore[no-untyped-def]
    return next(s for s in plan_of(raw).servers if s.litellmModelName == name)


def test_every_final_release_from_0_8_is_recorded_with_its_patches() -> None:
    releases = catalogs.vllm().releases
    for version in ("0.8.0", "0.8.5.post1", "0.9.0.1", "0.10.1.1", "0.17.0", "0.17.1", "0.20.2", "0.33.0"):
        assert version in releases, version
    assert catalogs.vllm().defaultVersion in releases


def test_bitsandbytes_is_an_error_on_0_33_and_fine_on_0_27() -> None:
    finding = only(plan_of(stack_with(image="vllm/vllm-openai:v0.33.0", quantization="bitsandbytes")),
                   "quantization-unsupported", "m")
    assert finding.severity == "error" and "0.8.0 to 0.27.1" in finding.message
    assert "quantization-unsupported" not in codes(stack_with(image="vllm/vllm-openai:v0.27.1", quantization="bitsandbytes"))


def test_nemotron_3_on_0_20_2_has_no_parser_error_and_on_0_17_0_has_one() -> None:
    fine = stack_with(NEMOTRON, image="vllm/vllm-openai:v0.20.2", pool="h100")
    assert "reasoning-parser-unknown" not in codes(fine) and "vllm-image-too-old" not in codes(fine)
    old = plan_of(stack_with(NEMOTRON, image="vllm/vllm-openai:v0.17.0", pool="h100"))
    parser = only(old, "reasoning-parser-unknown", "m")
    assert "0.17.1" in parser.message  # the releases that have it start there
    assert only(old, "vllm-image-too-old", "m").severity == "error"


def test_a_version_that_was_never_released_is_an_error_and_a_newer_one_is_sized_as_the_newest() -> None:
    missing = only(plan_of(stack_with(image="vllm/vllm-openai:v0.17.5")), "vllm-version-unknown", "m")
    assert missing.severity == "error" and "0.17.0, 0.17.1" in missing.message
    newer = plan_of(stack_with(image="vllm/vllm-openai:v0.34.0"))
    warning = only(newer, "vllm-version-newer", "m")
    assert "--release 0.34.0" in warning.message and newer.ok
    assert server(stack_with(image="vllm/vllm-openai:v0.34.0")).budgetGiB == server(stack_with()).budgetGiB


def test_gpu_memory_utilization_follows_the_release() -> None:
    old, new = server(stack_with(image="vllm/vllm-openai:v0.19.1")), server(stack_with(image="vllm/vllm-openai:v0.20.0"))
    assert round(old.budgetGiB / old.gpuMemoryGiB, 2) == 0.9 and round(new.budgetGiB / new.gpuMemoryGiB, 2) == 0.92


@pytest.mark.parametrize(("args", "unknown"), [
    (["--no-such-flag"], True),
    (["--max-num-seqs", "64"], False),
    (["--max_num_seqs=64"], False),  # vLLM reads underscores as dashes
    (["--compilation-config.mode", "3"], False),  # a key of a JSON flag
    (["--no-enable-log-requests"], False),
    (["-O3"], False),
])
def test_extra_flags_must_exist_in_the_release(args: list[str], unknown: bool) -> None:
    assert ("vllm-flag-unknown" in codes(stack_with(extraArgs=args))) is unknown


def test_an_old_release_lacks_a_newer_flag_and_the_message_names_where_it_exists() -> None:
    raw = stack_with(image="vllm/vllm-openai:v0.11.0", extraArgs=["--attention-backend", "FLASH_ATTN"])
    finding = only(plan_of(raw), "vllm-flag-unknown", "m")
    assert "--attention-backend" in finding.message and "Releases that have it" in finding.message
    assert "vllm-flag-unknown" not in codes(stack_with(extraArgs=["--attention-backend", "FLASH_ATTN"]))


def test_a_deprecated_method_needs_its_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # No release deprecates a method the schema accepts today; a release that does refuses it without the opt-in.
    catalog = catalogs.vllm()
    deprecating = dataclasses.replace(catalog.releases["0.33.0"], deprecatedQuantizationMethods=("awq",))
    monkeypatch.setitem(catalog.releases, "0.33.0", deprecating)
    monkeypatch.setitem(catalog.by_version, (0, 33, 0, 0, 0), deprecating)
    awq = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert only(plan_of(stack_with(awq, quantization="awq")), "quantization-deprecated", "m").severity == "error"
    opted = stack_with(awq, quantization="awq", extraArgs=["--allow-deprecated-quantization"])
    assert "quantization-deprecated" not in codes(opted)


def test_llama_31_is_started_with_the_json_tool_template_the_image_ships() -> None:
    args = server(stack_with("meta-llama/Llama-3.1-8B-Instruct")).args
    template = args[args.index("--chat-template") + 1]
    assert template == "/vllm-workspace/examples/tool_chat_template_llama3.1_json.jinja"
    assert args[args.index("--tool-call-parser") + 1] == "llama3_json"


def test_a_template_in_extra_args_wins_and_none_is_added_without_a_tool_parser() -> None:
    raw = stack_with("meta-llama/Llama-3.1-8B-Instruct", extraArgs=["--chat-template", "/mnt/my.jinja"])
    args = server(raw).args
    assert args.count("--chat-template") == 1 and args[args.index("--chat-template") + 1] == "/mnt/my.jinja"
    raw = stack_with("meta-llama/Llama-3.1-8B-Instruct")
    raw["models"][-1]["capabilities"] = {"toolCalling": False}
    assert "--chat-template" not in server(raw).args


def test_a_release_without_the_template_warns_instead_of_passing_a_missing_file() -> None:
    raw = stack_with("deepseek-ai/DeepSeek-V3", image="vllm/vllm-openai:v0.8.5", pool="h100")
    finding = only(plan_of(raw), "chat-template-missing", "m")
    assert "tool_chat_template_deepseekv3.jinja" in finding.message and "0.9.0 to 0.33.0" in finding.message
    assert "--chat-template" not in server(raw).args


def test_a_release_whose_templates_are_unknown_says_so() -> None:
    raw = stack_with("meta-llama/Llama-3.1-8B-Instruct", image="vllm/vllm-openai:v0.15.1")  # no sdist on PyPI
    assert only(plan_of(raw), "chat-template-unknown", "m").severity == "warning"
    assert "--chat-template" not in server(raw).args
