"""The vLLM command line, derived from the contract and the plan: nothing typed twice."""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalogs import Architecture
from planner.names import PORT

# Flags that carry a field of the model's `vllm` block, one table for both directions: `vllm_args` writes them
# and the policy pack (policy/kindo_policy/rules.py) reads a rendered command line back into the fields.
FIELD_FLAGS: tuple[tuple[str, str], ...] = (
    ("--max-model-len", "maxModelLen"),
    ("--tensor-parallel-size", "tensorParallelSize"),
    ("--quantization", "quantization"),
    ("--kv-cache-dtype", "kvCacheDtype"),
    ("--tool-call-parser", "toolCallParser"),
    ("--reasoning-parser", "reasoningParser"),
)
_FIELD_NOTES = {"maxModelLen": " (defaults to contextWindow)"}

# Flags the plan derives; typing them in extraArgs would make two sources of truth.
# flag -> the config field that sets it
DERIVED_FLAGS: dict[str, str] = {
    "--served-model-name": "litellmModelName",
    **{flag: f"vllm.{name}{_FIELD_NOTES.get(name, '')}" for flag, name in FIELD_FLAGS},
    # vLLM refuses auto tool choice without a parser; the plan adds the two together or not at all.
    "--enable-auto-tool-choice": "vllm.toolCallParser (added together with it)",
    "--model": "vllm.model",
    "--revision": "vllm.revision",
    "--load-format": "vllm.weights (runai_streamer for an s3:// prefix)",
    "--model-loader-extra-config": "vllm.weights (the streamer's concurrency and memory limit)",
    "--port": f"(fixed: {PORT}, the Service port)",
    "--host": "(fixed: 0.0.0.0 inside the pod)",
    "--api-key": "(generated: the server's key comes from its Kubernetes Secret)",
}

# dtype to serve each checkpoint format in: fp32 checkpoints (bge-m3) are served in bf16; quantized
# formats let vLLM pick (`auto`) because their kernels choose the activation type.
SERVE_DTYPE: dict[str, str] = {"bfloat16": "bfloat16", "float16": "float16", "float32": "bfloat16"}


@dataclass(frozen=True)
class ArgsInput:
    hf_model: str
    served_model_name: str
    max_model_len: int
    tensor_parallel_size: int
    architecture: Architecture
    tool_call_parser: str | None
    reasoning_parser: str | None
    quantization: str | None
    kv_cache_dtype: str | None
    extra_args: tuple[str, ...]
    chat_template: str | None = None  # path inside the image
    loader_args: tuple[str, ...] = ()  # where the weights come from: --revision, or the S3 streamer's flags


def flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def extra_arg_value(extra_args: tuple[str, ...] | list[str], flag: str) -> str | None:
    """The value given to `flag` in extraArgs (`--flag value` or `--flag=value`), else None."""
    for index, arg in enumerate(extra_args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(extra_args):
            return extra_args[index + 1]
    return None


def vllm_args(spec: ArgsInput) -> list[str]:
    """Arguments for the `vllm serve` entrypoint of the vllm/vllm-openai image."""
    arch = spec.architecture
    args = [
        spec.hf_model,
        "--served-model-name", spec.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(PORT),
        "--max-model-len", str(spec.max_model_len),
    ]
    if spec.tool_call_parser:
        args += ["--tool-call-parser", spec.tool_call_parser, "--enable-auto-tool-choice"]
    if spec.chat_template:
        args += ["--chat-template", spec.chat_template]
    if spec.reasoning_parser:
        args += ["--reasoning-parser", spec.reasoning_parser]
    if arch.trustRemoteCode:
        args += ["--trust-remote-code"]
    args += ["--dtype", SERVE_DTYPE.get(arch.nativeDtype, "auto") if not spec.quantization else "auto"]
    if spec.quantization:
        args += ["--quantization", spec.quantization]
    args += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
    if arch.kind == "chat":
        # Pooling (embedding) and encoder-decoder (transcription) models support neither: vLLM turns them off, and an
        # explicit --enable-prefix-caching makes its cross-attention manager raise on a cache lookup (vLLM 0.33.0
        # vllm/v1/core/single_type_kv_cache_manager.py).
        args += ["--enable-prefix-caching", "--enable-chunked-prefill"]
    if spec.kv_cache_dtype and spec.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", spec.kv_cache_dtype]
    return args + list(spec.loader_args) + list(spec.extra_args)
