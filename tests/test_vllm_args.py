"""The vLLM command line is derived from the contract and the plan, never typed twice."""

from __future__ import annotations

from tests.conftest import add_model, base_config, plan_of


def args_for(**vllm) -> list[str]:
    raw = base_config()
    add_model(raw, litellmModelName="the-model", provider="Self-Hosted", contextWindow=vllm.pop("contextWindow", 131072),
              vllm={"gpuPool": "h100", **vllm})
    plan = plan_of(raw)
    return next(s for s in plan.servers if s.litellmModelName == "the-model").args


def value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_served_name_is_the_routing_key_and_max_len_the_context_window() -> None:
    args = args_for(model="meta-llama/Llama-3.1-8B-Instruct", contextWindow=65536)
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert value(args, "--served-model-name") == "the-model"
    assert value(args, "--max-model-len") == "65536"
    assert value(args, "--dtype") == "bfloat16"
    assert "--enable-prefix-caching" in args and "--enable-chunked-prefill" in args


def test_family_parser_comes_with_auto_tool_choice() -> None:
    args = args_for(model="meta-llama/Llama-3.1-8B-Instruct")
    assert value(args, "--tool-call-parser") == "llama3_json"
    assert args[args.index("--tool-call-parser") + 2] == "--enable-auto-tool-choice"


def test_gpt_oss_gets_its_tool_and_reasoning_parsers() -> None:
    args = args_for(model="openai/gpt-oss-120b")
    assert value(args, "--tool-call-parser") == "openai" and value(args, "--reasoning-parser") == "openai_gptoss"
    assert value(args, "--dtype") == "auto"  # mxfp4 checkpoint: the kernels choose


def test_nemotron_needs_trust_remote_code_and_its_parsers() -> None:
    args = args_for(model="nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16", contextWindow=262144, kvCacheDtype="fp8")
    assert "--trust-remote-code" in args
    assert value(args, "--tool-call-parser") == "qwen3_coder" and value(args, "--reasoning-parser") == "nemotron_v3"
    assert value(args, "--kv-cache-dtype") == "fp8"


def test_tensor_parallel_size_is_the_plans_and_extra_args_come_last() -> None:
    args = args_for(model="meta-llama/Llama-3.1-70B-Instruct", extraArgs=["--max-num-seqs", "64"])
    assert int(value(args, "--tensor-parallel-size")) > 1
    assert args[-2:] == ["--max-num-seqs", "64"]


def test_embedding_models_skip_generation_flags() -> None:
    raw = base_config()
    server = next(s for s in plan_of(raw).servers if s.litellmModelName == "bge-m3")
    assert "--tool-call-parser" not in server.args and "--enable-chunked-prefill" not in server.args
    assert server.url == f"http://bge-m3-{server.generation}.inference.svc.cluster.local:8000/v1"


def test_self_hosted_contract_fields_are_derived() -> None:
    raw = base_config()
    plan = plan_of(raw)
    planned = next(m for m in plan.models if m.litellmModelName == "bge-m3")
    server = next(s for s in plan.servers if s.litellmModelName == "bge-m3")
    assert planned.litellmModel == "openai/bge-m3"
    assert planned.apiBase == f"http://bge-m3-{server.generation}.inference.svc.cluster.local:8000/v1" == server.url


def test_gpu_memory_utilization_in_extra_args_changes_the_sizing() -> None:
    raw = base_config()
    add_model(raw, litellmModelName="a", provider="Self-Hosted", vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s"})
    add_model(raw, litellmModelName="b", provider="Self-Hosted", vllm={"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s",
                                                                    "extraArgs": ["--gpu-memory-utilization=0.5"]})
    raw["gpuPools"][1]["maxSize"] = 3
    servers = {s.litellmModelName: s for s in plan_of(raw).servers}
    assert servers["b"].maxContextThatFits < servers["a"].maxContextThatFits
