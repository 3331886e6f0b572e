"""planner/data/vllm_releases.json is what scripts/gen_vllm_releases.py makes of vLLM's own PyPI files.

(a) The committed data equals a rerun of the generator: on every release whose extract is cached in
    .cache/vllm-wheels, and on one release fetched from PyPI here (range reads of its wheel + its sdist).
(b) The extraction functions on small synthetic sources, one per layout vLLM has used; the range-read and
    sdist paths against a local HTTP server. No network.
(c) Sanity over the committed data, with the boundaries found in the wheels.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import io
import os
import random
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from textwrap import dedent
from typing import Any, ClassVar

import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "planner" / "data" / "vllm_releases.json"
# The cheapest release to fetch whole (0.8 wheels carry the least Python; its sdist is 7 MB).
FETCHED_RELEASE = "0.8.5.post1"


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_vllm_releases", ROOT / "scripts" / "gen_vllm_releases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, Any]]:
    return json.loads(DATA.read_text())["releases"]


def at_least(version: str, floor: str) -> bool:
    return Version(version) >= Version(floor)


# --------------------------------------------------------------------------- (a) committed == regenerated


def test_committed_data_equals_a_rerun_on_every_cached_release(committed: dict[str, dict[str, Any]]) -> None:
    cached = [version for version in committed if gen.extract_path(version).exists()]
    if not cached:
        pytest.skip(f"no extract cached in {gen.CACHE}: `scripts/gen_vllm_releases.py --check` caches them all "
                    f"(the next test still regenerates {FETCHED_RELEASE} from PyPI)")
    differing = []
    for version in cached:
        extract = gen.load_extract(version)  # re-verifies every member against the wheel's RECORD
        if extract is None:
            continue  # read with an older selection of files; `--check` reads it again
        regenerated = gen.release_entry(extract)
        if regenerated != committed[version]:
            differing.append(gen.diff_text(committed[version], regenerated, version))
    assert not differing, "\n".join(differing)


def test_one_release_fetched_from_pypi_regenerates_to_the_committed_entry(
        committed: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CACHE", tmp_path)  # nothing cached: the range-read path runs for real
    started = time.monotonic()
    try:
        index = gen.fetch_index()
    except OSError as error:
        pytest.skip(f"PyPI unreachable ({error}); this test needs https://pypi.org and files.pythonhosted.org")
    timings: dict[str, float] = {}
    extract = gen.fetch_extract(Version(FETCHED_RELEASE), index, timings)
    regenerated = gen.release_entry(extract)
    elapsed = time.monotonic() - started
    assert extract.manifest["wheel"]["method"] == "HTTP range reads"
    assert extract.manifest["wheel"]["bytesRead"] < extract.manifest["wheel"]["size"] / 20
    assert regenerated == committed[FETCHED_RELEASE], gen.diff_text(committed[FETCHED_RELEASE], regenerated, FETCHED_RELEASE)
    print(f"{FETCHED_RELEASE}: fetched and regenerated in {elapsed:.1f} s "
          f"({extract.manifest['wheel']['bytesRead']} bytes of the wheel, sdist {extract.manifest['sdist']['size']} bytes)")


# --------------------------------------------------------------------------- (b) extraction on synthetic sources


def src(text: str) -> str:
    return dedent(text).lstrip("\n")


EAGER_TOOL_PARSERS = {
    # 0.8-0.10: the package __init__ imports the modules, each registers its class with a decorator
    "vllm/entrypoints/openai/tool_parsers/__init__.py": src('''
        from .abstract_tool_parser import ToolParser, ToolParserManager
        from .hermes_tool_parser import Hermes2ProToolParser
        from vllm.entrypoints.openai.tool_parsers.llama_tool_parser import Llama3JsonToolParser
        from .granite_tool_parser import GraniteToolParser
    '''),
    "vllm/entrypoints/openai/tool_parsers/abstract_tool_parser.py": "class ToolParserManager: ...\n",
    "vllm/entrypoints/openai/tool_parsers/hermes_tool_parser.py": src('''
        @ToolParserManager.register_module("hermes")
        class Hermes2ProToolParser(ToolParser): ...
    '''),
    "vllm/entrypoints/openai/tool_parsers/llama_tool_parser.py": src('''
        from .pythonic_tool_parser import PythonicToolParser
        @ToolParserManager.register_module(["llama3_json", "llama4_json"])
        class Llama3JsonToolParser(ToolParser): ...
    '''),
    "vllm/entrypoints/openai/tool_parsers/pythonic_tool_parser.py": src('''
        @ToolParserManager.register_module(name="pythonic")
        class PythonicToolParser(ToolParser): ...
    '''),
    "vllm/entrypoints/openai/tool_parsers/granite_tool_parser.py": src('''
        @ToolParserManager.register_module()
        class GraniteToolParser(ToolParser): ...
    '''),
    # present in the wheel but imported by nobody: never registered
    "vllm/entrypoints/openai/tool_parsers/orphan_tool_parser.py": src('''
        @ToolParserManager.register_module("orphan")
        class OrphanToolParser(ToolParser): ...
    '''),
}

LAZY_TOOL_PARSERS = {
    # 0.11 on: a name -> (module, class) table in the package __init__, registered lazily
    "vllm/tool_parsers/__init__.py": src('''
        from vllm.tool_parsers.abstract_tool_parser import ToolParser, ToolParserManager
        """
        Example:
            ToolParserManager.register_lazy_module(name="in_a_docstring", module_path="x", class_name="Y")
        """
        _TOOL_PARSERS_TO_REGISTER = {
            "hermes": ("hermes_tool_parser", "Hermes2ProToolParser"),
            "qwen3_json": ("hermes_tool_parser", "Hermes2ProToolParser"),
            "mimo": ("mimo_tool_parser", "MiMoToolParser"),
        }
    '''),
    "vllm/tool_parsers/abstract_tool_parser.py": "class ToolParserManager: ...\n",
    "vllm/tool_parsers/hermes_tool_parser.py": "class Hermes2ProToolParser: ...\n",
    "vllm/tool_parsers/mimo_tool_parser.py": "class MiMoToolParser: ...\n",
    # a decorator in a module the table does not import registers nothing reachable
    "vllm/tool_parsers/step_tool_parser.py": '@ToolParserManager.register_module("step")\nclass S: ...\n',
}


def test_eager_registry_counts_only_modules_the_package_imports_directly_or_transitively() -> None:
    assert gen.tool_call_parsers(EAGER_TOOL_PARSERS) == {
        "GraniteToolParser": "GraniteToolParser",  # register_module() with no name registers the class name
        "hermes": "Hermes2ProToolParser",
        "llama3_json": "Llama3JsonToolParser",
        "llama4_json": "Llama3JsonToolParser",
        "pythonic": "PythonicToolParser",  # imported only by llama_tool_parser
    }


def test_lazy_registry_reads_the_table_and_keeps_aliases() -> None:
    assert gen.tool_call_parsers(LAZY_TOOL_PARSERS) == {
        "hermes": "Hermes2ProToolParser", "mimo": "MiMoToolParser", "qwen3_json": "Hermes2ProToolParser"}


def test_lazy_registry_entry_for_a_module_the_wheel_lacks_is_an_error() -> None:
    sources = {**LAZY_TOOL_PARSERS}
    del sources["vllm/tool_parsers/mimo_tool_parser.py"]
    with pytest.raises(gen.GenerationError, match=r"'mimo' points at mimo_tool_parser.py"):
        gen.tool_call_parsers(sources)


def test_reasoning_parsers_in_the_0_8_0_package_and_in_vllm_reasoning() -> None:
    old = {
        "vllm/entrypoints/openai/reasoning_parsers/__init__.py": "from .deepseek_r1_reasoning_parser import X\n",
        "vllm/entrypoints/openai/reasoning_parsers/deepseek_r1_reasoning_parser.py":
            '@ReasoningParserManager.register_module("deepseek_r1")\nclass X: ...\n',
    }
    new = {
        "vllm/reasoning/__init__.py": '_REASONING_PARSERS_TO_REGISTER = {"nemotron_v3": ("nemotron_v3_reasoning_parser", "N")}\n',
        "vllm/reasoning/nemotron_v3_reasoning_parser.py": "class N: ...\n",
    }
    assert gen.reasoning_parsers(old) == {"deepseek_r1": "X"}
    assert gen.reasoning_parsers(new) == {"nemotron_v3": "N"}
    with pytest.raises(gen.GenerationError, match="no reasoning parser registry"):
        gen.reasoning_parsers({"vllm/reasoning/__init__.py": "x = 1\n"})


def test_quantization_methods_literal_list_and_deprecated() -> None:
    literal = src('''
        QuantizationMethods = Literal["awq", "fp8", "bitsandbytes"]
        QUANTIZATION_METHODS: list[str] = list(get_args(QuantizationMethods))
        DEPRECATED_QUANTIZATION_METHODS = ["fbgemm_fp8"]
    ''')
    plain_list = 'QUANTIZATION_METHODS = ["aqlm", "awq"]\n'  # 0.8.0
    assert gen.quantization_methods({gen.QUANT_INIT: literal}) == (["awq", "fp8", "bitsandbytes"], ["fbgemm_fp8"])
    assert gen.quantization_methods({gen.QUANT_INIT: plain_list}) == (["aqlm", "awq"], [])
    with pytest.raises(gen.GenerationError, match="QuantizationMethods"):
        gen.quantization_methods({gen.QUANT_INIT: "QUANTIZATION_METHODS = build()\n"})


def test_kv_cache_dtypes_from_the_literal_or_the_old_argparse_choices() -> None:
    assert gen.kv_cache_dtypes({"vllm/config/cache.py": 'CacheDType = Literal[\n "auto",\n "fp8",\n]\n'}) == ["auto", "fp8"]
    assert gen.kv_cache_dtypes({"vllm/config.py": 'CacheDType = Literal["auto", "fp8_e5m2"]\n'}) == ["auto", "fp8_e5m2"]
    old = {"vllm/config.py": "x = 1\n", "vllm/engine/arg_utils.py": src('''
        def add_cli_args(parser):
            parser.add_argument('--kv-cache-dtype', type=str, choices=['auto', 'fp8', 'fp8_e5m2'], default='auto')
    ''')}
    assert gen.kv_cache_dtypes(old) == ["auto", "fp8", "fp8_e5m2"]


def test_gpu_memory_utilization_plain_field_pydantic_field_and_engine_override() -> None:
    plain = {"vllm/config.py": "class CacheConfig:\n    gpu_memory_utilization: float = 0.9\n"}
    field = {"vllm/config/cache.py": "class CacheConfig:\n    gpu_memory_utilization: float = Field(default=0.92, gt=0, le=1)\n"}
    engine_args = {**field, "vllm/engine/arg_utils.py": src('''
        class EngineArgs:
            gpu_memory_utilization: float = 0.85
    ''')}
    inherits = {**field, "vllm/engine/arg_utils.py": src('''
        class EngineArgs:
            gpu_memory_utilization: float = CacheConfig.gpu_memory_utilization
    ''')}
    assert gen.gpu_memory_utilization(plain) == 0.9
    assert gen.gpu_memory_utilization(field) == 0.92
    assert gen.gpu_memory_utilization(engine_args) == 0.85
    assert gen.gpu_memory_utilization(inherits) == 0.92


def batch_source(body: str, name: str = "get_batch_defaults") -> dict[str, str]:
    indented = "\n".join("        " + line for line in dedent(body).strip().splitlines())
    return {"vllm/engine/arg_utils.py": f"class EngineArgs:\n    def {name}(self, usage_context):\n{indented}\n"}


def test_batch_tiers_0_8_0_device_name_chain_with_one_shared_max_num_seqs() -> None:
    sources = batch_source('''
        if "h100" in device_name or "h200" in device_name:
            default_max_num_batched_tokens = {UsageContext.LLM_CLASS: 16384, UsageContext.OPENAI_API_SERVER: 8192}
        else:
            default_max_num_batched_tokens = {UsageContext.LLM_CLASS: 8192, UsageContext.OPENAI_API_SERVER: 2048}
        default_max_num_seqs = 1024
    ''', "_set_default_args_v1")
    assert gen.batch_tiers(sources) == [
        {"minGpuGiB": 0, "deviceNameContainsAny": ["h100", "h200"], "maxNumBatchedTokens": 8192, "maxNumSeqs": 1024},
        {"minGpuGiB": 0, "maxNumBatchedTokens": 2048, "maxNumSeqs": 1024},
    ]


def test_batch_tiers_memory_bound_exclusions_and_the_160_gib_tier() -> None:
    sources = batch_source('''
        if current_platform.is_tpu():
            chip_name = current_platform.get_device_name()
        if device_memory >= 160 * GiB_bytes:
            default_max_num_batched_tokens = {UsageContext.OPENAI_API_SERVER: 16384}
            default_max_num_seqs = {UsageContext.OPENAI_API_SERVER: 1024}
        elif device_memory >= 70 * GiB_bytes and "a100" not in device_name and not is_gb10:
            default_max_num_batched_tokens = {UsageContext.LLM_CLASS: 16384, UsageContext.OPENAI_API_SERVER: 8192}
            default_max_num_seqs = {UsageContext.OPENAI_API_SERVER: 1024}
        else:
            default_max_num_batched_tokens = {UsageContext.OPENAI_API_SERVER: 2048}
            default_max_num_seqs = 256
    ''')
    assert gen.batch_tiers(sources) == [
        {"minGpuGiB": 160, "maxNumBatchedTokens": 16384, "maxNumSeqs": 1024},
        {"minGpuGiB": 70, "excludeDeviceNameContains": ["a100"], "excludeComputeCapabilities": ["12.1"],
         "maxNumBatchedTokens": 8192, "maxNumSeqs": 1024},
        {"minGpuGiB": 0, "maxNumBatchedTokens": 2048, "maxNumSeqs": 256},
    ]


def test_batch_tiers_unknown_condition_is_an_error_that_names_it() -> None:
    sources = batch_source('''
        if device_memory >= 70 * GiB_bytes and has_nvlink:
            default_max_num_batched_tokens = {UsageContext.OPENAI_API_SERVER: 8192}
            default_max_num_seqs = 1024
        else:
            default_max_num_batched_tokens = {UsageContext.OPENAI_API_SERVER: 2048}
            default_max_num_seqs = 256
    ''')
    with pytest.raises(gen.GenerationError, match="unknown tier condition `has_nvlink`"):
        gen.batch_tiers(sources)


def envs_source(default: str | None) -> str:
    name = "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS"
    entry = f'    "{name}": lambda: bool(int(os.getenv("{name}", "{default}"))),\n'
    return "environment_variables = {\n" + (entry if default is not None else "") + '    "OTHER": lambda: 1,\n}\n'


@pytest.mark.parametrize(("default", "expected"), [(None, False), ("0", False), ("1", True)])
def test_cuda_graphs_in_budget_follows_the_env_default(default: str | None, expected: bool) -> None:
    worker = "x = envs.VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS\n"
    assert gen.cuda_graphs_in_budget({"vllm/envs.py": envs_source(default), "vllm/v1/worker/gpu_worker.py": worker}) is expected


def test_cuda_graph_env_that_the_worker_ignores_is_an_error() -> None:
    with pytest.raises(gen.GenerationError, match=r"gpu_worker.py does not use it"):
        gen.cuda_graphs_in_budget({"vllm/envs.py": envs_source("1"), "vllm/v1/worker/gpu_worker.py": "pass\n"})


WORKER_0_8 = src('''
    class Worker:
        def init_device(self):
            init_worker_distributed_environment(self.vllm_config)
        def determine_available_memory(self):
            _, total_gpu_memory = torch.cuda.mem_get_info()
            peak_memory = torch.cuda.memory_stats()["allocated_bytes.all.peak"]
            non_torch_allocations = total_allocated_bytes - torch_allocated_bytes
            return total_gpu_memory * self.cache_config.gpu_memory_utilization - peak_memory
''')


def worker_with_snapshot(snapshot_first: bool) -> str:
    snapshot, distributed = "self.init_snapshot = MemorySnapshot()", "init_worker_distributed_environment(self.vllm_config)"
    first, second = (snapshot, distributed) if snapshot_first else (distributed, snapshot)
    return src(f'''
        class Worker(WorkerBase):
            def init_device(self):
                {first}
                {second}
            def determine_available_memory(self):
                with memory_profiling(self.init_snapshot) as result:
                    self.model_runner.profile_run()
                return self.requested_memory - result.non_kv_cache_memory
    ''')


def test_memory_snapshot_three_layouts_and_an_unknown_one() -> None:
    path = "vllm/v1/worker/gpu_worker.py"
    assert gen.memory_snapshot({path: WORKER_0_8}) == "whole-device"
    assert gen.memory_snapshot({path: worker_with_snapshot(snapshot_first=True)}) == "before-distributed-init"
    assert gen.memory_snapshot({path: worker_with_snapshot(snapshot_first=False)}) == "after-distributed-init"
    unknown = "class Worker:\n    def determine_available_memory(self):\n        return ask_the_driver()\n"
    with pytest.raises(gen.GenerationError, match="matches no known accounting"):
        gen.memory_snapshot({path: unknown})


def flashinfer_env(unset: str) -> str:
    return src(f'''
        environment_variables = {{
            "VLLM_USE_FLASHINFER_SAMPLER": lambda: (
                bool(int(os.environ["VLLM_USE_FLASHINFER_SAMPLER"]))
                if "VLLM_USE_FLASHINFER_SAMPLER" in os.environ
                else {unset}
            ),
        }}
    ''')


SAMPLER_0_10 = "if envs.VLLM_USE_FLASHINFER_SAMPLER is not False:\n    self.forward = self.forward_cuda\n"
SAMPLER_0_12 = "def apply_top_k_top_p(logits, k, p):\n    logits_sort, logits_idx = logits.sort(dim=-1)\n"
SAMPLER_0_17 = SAMPLER_0_12 + "from vllm.v1.sample.ops.topk_topp_triton import apply_top_k_top_p_triton\n"


@pytest.mark.parametrize(("sampler", "unset", "expected"), [
    (SAMPLER_0_10, "None", "flashinfer-when-installed"),
    (SAMPLER_0_12, "None", "pytorch-sort"),
    (SAMPLER_0_17, "None", "triton"),
    (SAMPLER_0_17, "True", "flashinfer"),
])
def test_sampler_implementation_from_the_sampler_module_and_the_env_default(sampler: str, unset: str, expected: str) -> None:
    sources = {"vllm/envs.py": flashinfer_env(unset), gen.SAMPLER_PATH: sampler}
    assert gen.sampler_implementation(sources) == expected


def test_sampler_implementation_unknown_or_missing_is_an_error() -> None:
    with pytest.raises(gen.GenerationError, match="no known top-k/top-p"):
        gen.sampler_implementation({"vllm/envs.py": flashinfer_env("None"), gen.SAMPLER_PATH: "def sample(): ...\n"})
    with pytest.raises(gen.GenerationError, match="not in the wheel"):
        gen.sampler_implementation({"vllm/envs.py": flashinfer_env("None")})


def test_kv_cache_tokens_rule_blocks_per_group_or_concurrency_times_length() -> None:
    old = src('''
        num_tokens = num_blocks // len(kv_cache_config.kv_cache_groups) * min_block_size
        logger.info("GPU KV cache size: %s tokens", num_tokens_str)
    ''')
    new = "num_tokens = int(max_concurrency * max_model_len)\nlogger.info('GPU KV cache size: %s tokens', n)\n"
    assert gen.kv_cache_tokens_rule({gen.KV_CACHE_UTILS_PATH: old}) == "blocks-per-group"
    assert gen.kv_cache_tokens_rule({gen.KV_CACHE_UTILS_PATH: new}) == "concurrency-times-length"
    with pytest.raises(gen.GenerationError, match="no `KV cache size"):
        gen.kv_cache_tokens_rule({gen.KV_CACHE_UTILS_PATH: "pass\n"})


def test_sliding_window_reserve_one_batch_or_every_batch_in_flight() -> None:
    path = gen.KV_CACHE_INTERFACE_PATH
    one = "class KVCacheSpec: ...\nclass SlidingWindowSpec(AttentionSpec):\n    def max_memory_usage_bytes(self, c):\n        return c.max_num_batched_tokens\n"
    many = "class KVCacheSpec: ...\nclass SlidingWindowSpec(AttentionSpec):\n    def max_memory_usage_bytes(self, c):\n        return c.max_in_flight_tokens\n"
    assert gen.sliding_window_reserve({path: one}) == "max-num-batched-tokens"
    assert gen.sliding_window_reserve({path: many}) == "max-in-flight-tokens"
    assert gen.sliding_window_reserve({path: "class KVCacheSpec:\n    pass\n"}) == "none"
    with pytest.raises(gen.GenerationError, match="no KVCacheSpec"):
        gen.sliding_window_reserve({path: "pass\n"})


FLAG_SOURCES = {
    "vllm/entrypoints/cli/serve.py": src('''
        from vllm.entrypoints.openai.cli_args import make_arg_parser
        class ServeSubcommand(CLISubcommand):
            def subparser_init(self, subparsers):
                serve_parser = subparsers.add_parser("serve")
                serve_parser.add_argument("model_tag", nargs="?")
                serve_parser.add_argument("--headless", action="store_true")
                return make_arg_parser(serve_parser)
    '''),
    "vllm/entrypoints/openai/cli_args.py": src('''
        from vllm.engine.arg_utils import AsyncEngineArgs
        class BaseFrontendArgs:
            enable_auto_tool_choice: bool = False
            tool_call_parser: str | None = None
            @classmethod
            def add_cli_args(cls, parser):
                frontend_kwargs = get_kwargs(cls)
                for key, value in frontend_kwargs.items():
                    parser.add_argument(f"--{key.replace('_', '-')}", **value)
                return parser
        class FrontendArgs(BaseFrontendArgs):
            port: int = 8000
            allow_credentials: bool = False
            chat_template: str | None = None
        def make_arg_parser(parser):
            parser = FrontendArgs.add_cli_args(parser)
            parser = AsyncEngineArgs.add_cli_args(parser)
            return parser
    '''),
    "vllm/engine/arg_utils.py": src('''
        from vllm.config import CacheConfig
        class EngineArgs:
            @staticmethod
            def add_cli_args(parser):
                cache_kwargs = get_kwargs(CacheConfig)
                parser.add_argument("--model", type=str)
                parser.add_argument("--tensor-parallel-size", "-tp", type=int)
                parser.add_argument("--enable-prefix-caching", **{**cache_kwargs["enable_prefix_caching"], "default": None})
                parser.add_argument("--kv-cache-dtype", **cache_kwargs["cache_dtype"])
                parser.add_argument("--enforce-eager", **cache_kwargs["enforce_eager"], action="store_true")
                return parser
        class AsyncEngineArgs(EngineArgs):
            @staticmethod
            def add_cli_args(parser):
                parser = EngineArgs.add_cli_args(parser)
                parser.add_argument("--enable-log-requests", action=argparse.BooleanOptionalAction)
                return parser
    '''),
    "vllm/config.py": src('''
        class CacheConfig:
            enable_prefix_caching: bool | None = None
            cache_dtype: CacheDType = "auto"
            enforce_eager: bool = False
    '''),
}


def test_serve_flags_literal_looped_inherited_and_negatable() -> None:
    scan = gen.serve_flags(FLAG_SOURCES)
    assert scan.flags == {
        "-h", "--help", "--headless", "--enable-auto-tool-choice", "--tool-call-parser", "--port", "--allow-credentials",
        "--chat-template", "--model", "--tensor-parallel-size", "-tp", "--enable-prefix-caching", "--kv-cache-dtype",
        "--enforce-eager", "--enable-log-requests",
    }
    # bool fields get --no-X from get_kwargs (also through `**{**kwargs[...], ...}`), BooleanOptionalAction too;
    # an explicit action (store_true) does not
    assert scan.negatable == {"--enable-auto-tool-choice", "--allow-credentials", "--enable-prefix-caching",
                              "--enable-log-requests"}
    assert scan.unresolved == []


def test_serve_flags_report_what_they_cannot_read() -> None:
    sources = {**FLAG_SOURCES, "vllm/engine/arg_utils.py": FLAG_SOURCES["vllm/engine/arg_utils.py"].replace(
        'parser.add_argument("--model", type=str)', 'parser.add_argument("--model", **cache_kwargs["no_such_field"])')}
    assert gen.serve_flags(sources).unresolved == ["--model: field 'no_such_field' not found in CacheConfig"]


DOCKERFILE = src('''
    ARG FINAL_BASE_IMAGE=nvidia/cuda:12.9-runtime
    FROM nvidia/cuda:12.9-devel AS build
    WORKDIR /workspace
    COPY examples examples
    FROM ${FINAL_BASE_IMAGE} AS vllm-base
    WORKDIR /vllm-workspace
    RUN --mount=type=cache,target=/root/.cache \\
        python3 <<'PYEOF'
    from flashinfer.jit import env
    FROM this is python, not an instruction
    PYEOF
    COPY --chown=vllm examples/ examples
    FROM vllm-base AS vllm-openai-base
    WORKDIR app
    FROM vllm-openai-base AS vllm-openai
    ENTRYPOINT ["vllm", "serve"]
    FROM vllm-base AS test
    COPY examples /elsewhere
''')


def test_dockerfile_examples_dir_follows_the_target_stage_chain_and_skips_heredocs() -> None:
    assert gen.dockerfile_examples_dir(DOCKERFILE) == "/vllm-workspace/examples"
    assert gen.dockerfile_examples_dir(DOCKERFILE, target="test") == "/elsewhere"
    assert gen.dockerfile_examples_dir(DOCKERFILE.replace("COPY --chown=vllm examples/ examples\n", "")) is None
    with pytest.raises(gen.GenerationError, match="no stage named nightly"):
        gen.dockerfile_examples_dir(DOCKERFILE, target="nightly")


def test_chat_templates_lists_examples_jinja_and_where_the_image_has_them() -> None:
    sdist = {"docker/Dockerfile": DOCKERFILE.encode(), "examples/tool_chat_template_hermes.jinja": b"{{ x }}",
             "examples/pooling/score/template/a.jinja": b"", "README.md": b""}
    assert gen.chat_templates(sdist) == {"imageDirectory": "/vllm-workspace/examples", "dockerfile": "docker/Dockerfile",
                                         "files": ["pooling/score/template/a.jinja", "tool_chat_template_hermes.jinja"]}
    assert gen.chat_templates({}) is None  # 0.15.x: PyPI has no sdist


def test_latest_patches_and_the_wheel_pip_would_pick() -> None:
    def wheel(name: str) -> Any:
        return gen.IndexFile(name, f"https://files.example/{name}", "0" * 64, 1, "2026-01-01T00:00:00Z")
    files = [wheel(n) for n in (
        "vllm-0.8.5-cp38-abi3-manylinux1_x86_64.whl", "vllm-0.8.5.post1-cp38-abi3-manylinux1_x86_64.whl",
        "vllm-0.10.1.1-cp38-abi3-manylinux1_x86_64.whl", "vllm-0.10.2-cp38-abi3-manylinux1_x86_64.whl",
        "vllm-0.21.0-cp38-abi3-manylinux_2_24_x86_64.whl", "vllm-0.21.0-1-cp38-abi3-manylinux_2_24_x86_64.whl",
        "vllm-0.21.0-1-cp38-abi3-manylinux_2_24_aarch64.whl", "vllm-0.22.0rc1-cp38-abi3-manylinux_2_28_x86_64.whl",
        "vllm-0.7.3-cp38-abi3-manylinux1_x86_64.whl")]
    wheels = gen.wheels_by_version(files)
    assert wheels[Version("0.21.0")].filename == "vllm-0.21.0-1-cp38-abi3-manylinux_2_24_x86_64.whl"
    assert Version("0.22.0rc1") not in wheels
    assert [str(v) for v in gen.latest_patches(wheels)] == ["0.8.5.post1", "0.10.2", "0.21.0"]
    later = gen.IndexFile("vllm-0.21.0-2-cp38-abi3-manylinux_2_28_x86_64.whl", "u", "0" * 64, 1, "2026-05-17T00:00:00Z")
    first = gen.IndexFile("vllm-0.21.0.tar.gz", "u", "0" * 64, 1, "2026-05-15T00:00:00Z")
    others = [file for file in files if "0.21.0" not in file.filename]  # earlier uploads of other releases
    assert gen.first_upload([later, first, *others], Version("0.21.0")) == "2026-05-15T00:00:00Z"  # not the rebuild's day


# ---- the range-read and sdist paths, against a local server


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(members: dict[str, bytes], record_override: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like a vLLM wheel: a big binary between the Python files, RECORD last."""
    blob = random.Random(11).randbytes(3 << 20)  # incompressible, so the range reads must skip it
    buffer = io.BytesIO()
    names = list(members)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names[:1]:
            archive.writestr(name, members[name])
        archive.writestr("vllm/_C.abi3.so", blob, compress_type=zipfile.ZIP_STORED)
        for name in names[1:]:
            archive.writestr(name, members[name])
        hashed = {**members, **(record_override or {}), "vllm/_C.abi3.so": blob}
        archive.writestr("vllm-9.9.9.dist-info/RECORD", "\n".join(record_line(n, d) for n, d in hashed.items()) + "\n")
    return buffer.getvalue()


class RangeHandler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:  # the http.server API names it
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        if requested:
            start_text, end_text = requested.removeprefix("bytes=").split("-")
            start, end = int(start_text), min(int(end_text), len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            body = data[start:end + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def file_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    files: dict[str, bytes] = {}
    handler = type("Handler", (RangeHandler,), {"files": files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


PY_MEMBERS = {
    "vllm/envs.py": b"environment_variables = {}\n",
    "vllm/tool_parsers/__init__.py": b"_TOOL_PARSERS_TO_REGISTER = {}\n",
    "vllm/engine/arg_utils.py": b"class EngineArgs: ...\n",
}


def index_file(url: str, name: str, data: bytes) -> Any:
    return gen.IndexFile(name, f"{url}/{name}", hashlib.sha256(data).hexdigest(), len(data), "2026-01-01T00:00:00Z")


def test_range_reads_fetch_only_the_members_and_check_them_against_record(
        file_server: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = file_server
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    monkeypatch.setattr(gen, "TAIL_READ", 64 << 10)  # a real wheel's central directory needs ~2 MB
    files["/vllm.whl"] = wheel = make_wheel(PY_MEMBERS)
    members, how = gen.read_wheel(index_file(url, "vllm.whl", wheel), {})
    assert {name: data for name, data in members.items() if name.endswith(".py")} == PY_MEMBERS
    assert how["method"] == "HTTP range reads"
    assert how["bytesRead"] < len(wheel) / 4  # the 3 MB binary between the members was skipped
    assert how["requests"] >= 3  # the tail, then the members before and after the binary


def test_range_reads_refuse_a_member_that_differs_from_record(
        file_server: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = file_server
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    files["/vllm.whl"] = wheel = make_wheel(PY_MEMBERS, record_override={"vllm/envs.py": b"tampered = True\n"})
    with pytest.raises(gen.GenerationError, match=r"vllm/envs.py does not match the sha256 in the wheel's RECORD"):
        gen.read_wheel(index_file(url, "vllm.whl", wheel), {})


def test_range_reads_refuse_a_file_whose_size_differs_from_the_index(
        file_server: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = file_server
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    files["/vllm.whl"] = wheel = make_wheel(PY_MEMBERS)
    stale = gen.IndexFile("vllm.whl", f"{url}/vllm.whl", "0" * 64, len(wheel) + 1, "2026-01-01T00:00:00Z")
    with pytest.raises(gen.GenerationError, match="the index says"):
        gen.read_wheel(stale, {})


def make_sdist(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"vllm-9.9.9/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_sdist_is_checked_whole_and_compared_with_the_wheel(
        file_server: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = file_server
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    sdist_files = {**PY_MEMBERS, "vllm/envs.py": b"environment_variables = {'changed': 1}\n",
                   "docker/Dockerfile": DOCKERFILE.encode(), "examples/tool_chat_template_hermes.jinja": b"{{ x }}"}
    files["/vllm.tar.gz"] = sdist = make_sdist(sdist_files)
    members, how = gen.read_sdist(index_file(url, "vllm.tar.gz", sdist), PY_MEMBERS, {})
    assert set(members) == {"docker/Dockerfile", "examples/tool_chat_template_hermes.jinja"}
    assert how["pythonFilesCompared"] == 3 and how["pythonFilesDiffering"] == ["vllm/envs.py"]
    wrong = gen.IndexFile("vllm.tar.gz", f"{url}/vllm.tar.gz", "f" * 64, len(sdist), "2026-01-01T00:00:00Z")
    with pytest.raises(gen.GenerationError, match="differs from PyPI's"):
        gen.read_sdist(wrong, PY_MEMBERS, {})
    assert gzip.decompress(sdist)  # a real gzip stream, as PyPI serves


def test_cached_extract_is_reverified_against_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CACHE", tmp_path)
    record = "\n".join(record_line(n, d) for n, d in PY_MEMBERS.items()).encode()
    wheel = {**PY_MEMBERS, "vllm-9.9.9.dist-info/RECORD": record}
    manifest = {"wheel": {}, "sdist": None, "memberPatterns": gen.member_patterns(), "firstUpload": "2026-01-01"}
    gen.save_extract(gen.Extract("9.9.9", wheel, {}, manifest))
    assert gen.load_extract("9.9.9").wheel == wheel
    gen.save_extract(gen.Extract("9.9.9", {**wheel, "vllm/envs.py": b"edited\n"}, {}, manifest))
    with pytest.raises(gen.GenerationError, match="does not match the sha256"):
        gen.load_extract("9.9.9")
    gen.save_extract(gen.Extract("9.9.9", wheel, {}, {**manifest, "memberPatterns": ["older"]}))
    assert gen.load_extract("9.9.9") is None  # read with another selection of files: read again


# --------------------------------------------------------------------------- (c) the committed data


def test_every_release_from_0_8_to_0_33_patches_included_in_order(committed: dict[str, dict[str, Any]]) -> None:
    versions = [Version(v) for v in committed]
    assert versions == sorted(versions) and len(versions) >= 50
    assert sorted({v.minor for v in versions if v.major == 0}) == list(range(8, 34))
    for minor in range(8, 34):  # patches of one minor come out in order (an older minor may get a late patch)
        released = [committed[str(v)]["released"] for v in versions if v.minor == minor]
        assert released == sorted(released), minor


def test_every_release_is_complete_and_names_its_sources(committed: dict[str, dict[str, Any]]) -> None:
    for version, release in committed.items():
        assert "hermes" in release["toolCallParsers"], version
        assert "deepseek_r1" in release["reasoningParsers"], version
        assert {"auto", "fp8"} <= set(release["kvCacheDtypes"]), version
        assert {"awq", "gptq", "fp8"} <= set(release["quantizationMethods"]), version
        assert release["unresolvedFlagSources"] == [], version
        wheel = release["source"]["wheel"]
        assert wheel["url"].startswith("https://files.pythonhosted.org/") and wheel["url"].endswith(wheel["file"])
        assert len(wheel["sha256"]) == 64 and f"vllm-{version}-" in wheel["file"], version
        if release["source"]["sdist"] is None:
            assert release["chatTemplates"] is None and Version(version).release[:2] == (0, 15), version
        else:
            assert release["source"]["wheelMatchesSdist"] is True, version
            assert release["chatTemplates"]["imageDirectory"] == "/vllm-workspace/examples", version


def test_boundaries_found_in_the_wheels(committed: dict[str, dict[str, Any]]) -> None:
    for version, release in committed.items():
        quantization, reasoning, tools = release["quantizationMethods"], release["reasoningParsers"], release["toolCallParsers"]
        assert ("bitsandbytes" in quantization) is not at_least(version, "0.28"), version
        assert ("nemotron_v3" in reasoning) is at_least(version, "0.17.1"), version
        assert ("granite4" in tools) is at_least(version, "0.18"), version
        assert ("qwen3_json" in tools) is at_least(version, "0.32"), version
        assert ("openai" in tools and "openai_gptoss" in reasoning) is at_least(version, "0.10.2"), version
        assert release["gpuMemoryUtilization"] == (0.92 if at_least(version, "0.20") else 0.9), version
        assert release["cudaGraphsInBudget"] is at_least(version, "0.20"), version
        expected_snapshot = ("whole-device" if not at_least(version, "0.9.1") else
                             "before-distributed-init" if not at_least(version, "0.11") else "after-distributed-init")
        assert release["memorySnapshot"] == expected_snapshot, version
        assert release["nonTorchInBudget"] is (expected_snapshot == "whole-device"), version
        expected_sampler = ("flashinfer-when-installed" if not at_least(version, "0.11.1") else "pytorch-sort"
                            if not at_least(version, "0.17") else "triton" if not at_least(version, "0.21") else "flashinfer")
        assert release["samplerImplementation"] == expected_sampler, version
        expected_tokens = "concurrency-times-length" if at_least(version, "0.20.1") else "blocks-per-group"
        assert release["kvCacheTokens"] == expected_tokens, version
        expected_reserve = ("none" if not at_least(version, "0.8.3") else "max-num-batched-tokens"
                            if not at_least(version, "0.26") else "max-in-flight-tokens")
        assert release["slidingWindowReserve"] == expected_reserve, version
        tiers = release["batchTiers"]
        if not at_least(version, "0.8.5"):  # up to 0.8.4 the large tier was H100/H200 by name
            assert tiers[0]["deviceNameContainsAny"] == ["h100", "h200"] and len(tiers) == 2, version
            continue
        assert [t["minGpuGiB"] for t in tiers] == ([160, 70, 0] if at_least(version, "0.28") else [70, 0]), version
        assert ("excludeDeviceNameContains" in tiers[-2]) is at_least(version, "0.9"), version  # A100 gets 'small'
    assert committed["0.33.0"]["toolCallParsers"]["mimo"] == "MiMoToolParser"
    assert committed["0.33.0"]["toolCallParsers"]["qwen3_json"] == committed["0.33.0"]["toolCallParsers"]["hermes"]


def test_every_flag_the_planner_writes_exists_in_every_release(committed: dict[str, dict[str, Any]]) -> None:
    from planner.vllm_args import DERIVED_FLAGS

    written = {flag for flag in DERIVED_FLAGS if flag.startswith("--")} | {"--dtype", "--trust-remote-code",
               "--enable-prefix-caching", "--enable-chunked-prefill", "--chat-template"}
    for version, release in committed.items():
        assert written <= set(release["serveFlags"]), (version, sorted(written - set(release["serveFlags"])))


def test_planner_literals_are_names_some_release_knows(committed: dict[str, dict[str, Any]]) -> None:
    from typing import get_args

    from planner.config import KvCacheDtype, Quantization

    known_quantization = {name for release in committed.values() for name in release["quantizationMethods"]}
    known_kv = {name for release in committed.values() for name in release["kvCacheDtypes"]}
    assert set(get_args(Quantization)) <= known_quantization
    assert set(get_args(KvCacheDtype)) <= known_kv


def test_templates_that_vllm_yaml_families_name_ship_wherever_their_parser_exists(committed: dict[str, dict[str, Any]]) -> None:
    families = yaml.safe_load((ROOT / "planner" / "data" / "vllm.yaml").read_text())["families"]
    missing = []
    for family, spec in families.items():
        template = spec.get("chatTemplate")
        if not template:
            continue
        parser = spec["toolCallParsers"][0]
        for version, release in committed.items():
            templates = release["chatTemplates"]
            shipped = templates is None or template.removeprefix("examples/") in templates["files"]
            if parser in release["toolCallParsers"] and not shipped:
                missing.append(f"{family}: {template} not in {version}")
    # The only gap: DeepSeek-R1's template came with 0.9.1, after its parser (the planner then passes none).
    assert missing == ["deepseek_r1: examples/tool_chat_template_deepseekr1.jinja not in 0.9.0",
                       "deepseek_r1: examples/tool_chat_template_deepseekr1.jinja not in 0.9.0.1"], missing


@pytest.mark.skipif(not os.environ.get("VLLM_RELEASES_FULL_CHECK"), reason="set VLLM_RELEASES_FULL_CHECK=1 to rerun the "
                    "generator's --check on every release (reads PyPI for the ones not cached; ~40 s cold)")
def test_generator_check_command_passes() -> None:
    assert gen.main(["--check"]) == 0
