"""The sizing against published vLLM start-up logs (tests/calibration/logs.yaml, FINDINGS.md there).

Each log is planned through the planner's own sizing: the catalog's architecture for the model, the log's GPU (the
catalog's, or tests/calibration/gpus.yaml for cards AWS does not offer), the release its version names, its tensor
parallel size and max_model_len, and the flags the log shows the user set, read by the planner's own knob function
from an extraArgs list (planner/servers.py decide_vllm_knobs). Never the memory figures the log prints.
Each must land within 10 % of the printed `GPU KV cache size: N tokens` and `Maximum concurrency ... X`.

`python -m tests.test_calibration` prints the table (printed vs planned, error) and the error distribution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner import catalogs
from planner.catalogs import Gpu, VllmRelease
from planner.config import VllmSpec
from planner.servers import checkpoint_weights, decide_vllm_knobs
from planner.sizing import Sizing, SizingRequest, size

HERE = Path(__file__).resolve().parent / "calibration"
TOLERANCE = 0.10
# A log whose version string is not a release: the release its line numbers match (the log's notes in logs.yaml).
VERSION_OVERRIDES = {"h200-kimi-k2-thinking-tp8": "0.11.2"}
# Flags of a log's configuration -> the vllm.extraArgs a stack would write for them.
CONFIG_FLAGS = {"gpuMemoryUtilization": "--gpu-memory-utilization", "maxNumSeqs": "--max-num-seqs",
                "maxNumBatchedTokens": "--max-num-batched-tokens"}
SWITCHES = {"enforceEager": "--enforce-eager", "disableCustomAllReduce": "--disable-custom-all-reduce",
            "languageModelOnly": "--language-model-only"}


@lru_cache(maxsize=1)
def logs() -> list[dict[str, Any]]:
    return yaml.safe_load((HERE / "logs.yaml").read_text())


@lru_cache(maxsize=1)
def gpus() -> dict[str, Gpu]:
    table = {i.gpu.name: i.gpu for i in catalogs.instances().values()}
    for name, spec in yaml.safe_load((HERE / "gpus.yaml").read_text()).items():
        table[name] = Gpu(name=name, **spec)
    return table


def gpu_of(log: dict[str, Any]) -> Gpu:
    name = log["gpu"]["name"]
    if name.startswith("RTX 3090") and "WSL" in log.get("notes", ""):
        return gpus()["RTX 3090 (WSL)"]
    return next(gpus()[key] for key in sorted(gpus(), key=len, reverse=True) if name.startswith(key))


def release_of(log: dict[str, Any]) -> VllmRelease:
    """The recorded release the log's version is, or the newest one at or below it (a dev build of 0.26.1 is 0.26)."""
    text = VERSION_OVERRIDES.get(log["id"], str(log["vllmVersion"]))
    parts = [int(part) for part in re.findall(r"\d+", text.split("rc")[0].split("+")[0])[:4]]
    wanted = tuple(parts + [0] * (5 - len(parts)))
    known = [(catalogs.parse_version(v) or (), r) for v, r in catalogs.vllm().releases.items()]
    return max((item for item in known if item[0] <= wanted), key=lambda item: item[0])[1]


def extra_args_of(log: dict[str, Any]) -> list[str]:
    """The log's non-default configuration as the vllm.extraArgs a stack would write."""
    config, lines = log["config"], "\n".join(log["lines"])
    args = [f"{flag}={config[key]}" for key, flag in CONFIG_FLAGS.items() if config.get(key) is not None]
    args += [flag for key, flag in SWITCHES.items() if config.get(key)]
    if "enable_prefix_caching=False" in lines:
        args.append("--no-enable-prefix-caching")
    return args


def sampler_of(log: dict[str, Any], release: VllmRelease) -> str | None:
    """Up to 0.11.0 vLLM samples with FlashInfer when the package is installed: the vllm/vllm-openai image has it, a
    plain `pip install vllm` may not, and then the log says so (topk_topp_sampler.py)."""
    lines = "\n".join(log["lines"])
    missing = "FlashInfer is not available" in lines or ("FlashInfer i" in lines and "Using FlashInfer" not in lines)
    return "pytorch-sort" if release.samplerImplementation == "flashinfer-when-installed" and missing else None


@dataclass(frozen=True)
class Planned:
    log: dict[str, Any]
    sizing: Sizing

    @property
    def printed_tokens(self) -> int:
        return int(self.log["printed"]["kvCacheTokens"])

    @property
    def token_error(self) -> float:
        return (self.sizing.kv_cache_tokens - self.printed_tokens) / self.printed_tokens

    @property
    def concurrency_error(self) -> float | None:
        printed = self.log["printed"].get("maxConcurrency")
        return None if printed is None else (self.sizing.max_concurrency - printed) / printed


def plan(log: dict[str, Any]) -> Planned:
    config, lines = log["config"], "\n".join(log["lines"])
    arch, _ = catalogs.architectures().find(log["model"])
    assert arch is not None, f"{log['model']} is not in planner/data/models"
    release, tp = release_of(log), int(config.get("tensorParallelSize") or 1)
    max_model_len = int(config.get("maxModelLen") or arch.maxContext)
    spec = VllmSpec(model=log["model"], gpuPool="calibration", extraArgs=extra_args_of(log))
    knobs, findings = decide_vllm_knobs(spec, arch, max_model_len, release, log["id"])
    assert not findings, [f.line for f in findings]
    quantization = config.get("quantization")
    kv_dtype = config.get("kvCacheDtype")
    request = SizingRequest(
        arch, gpu_of(log), tp, max_model_len, release,
        quantization=quantization if quantization in catalogs.quantization_formats() else None,
        kv_cache_dtype=None if kv_dtype in (None, "auto") else kv_dtype, checkpoint_weights=checkpoint_weights(log["model"]),
        knobs=knobs, nvlink=tp > 1 and "Custom allreduce is disabled" not in lines, sampler=sampler_of(log, release))
    return Planned(log, size(request, tp))


def distribution(errors: list[float]) -> str:
    return ", ".join(f"within {limit:.0%}: {sum(abs(e) <= limit for e in errors)}/{len(errors)}" for limit in (0.02, 0.05, 0.10))


# --------------------------------------------------------------------------------------------- tests


def test_the_set_covers_what_issue_10_asks_for() -> None:
    kinds = {(catalogs.architectures().find(log["model"])[0] or None) for log in logs()}
    archs = [a for a in kinds if a is not None]
    assert len(logs()) >= 25
    assert any(a.is_moe for a in archs) and any(a.attention == "mla" for a in archs)
    assert any(a.slidingWindowLayers for a in archs) and any(a.linearAttention for a in archs)
    assert len({log["gpu"]["name"].split(" (")[0] for log in logs()}) >= 4
    assert len({release_of(log).version for log in logs()}) >= 4
    assert {int(log["config"].get("tensorParallelSize") or 1) for log in logs()} >= {1, 2, 4, 8}
    assert any(str(log["config"].get("kvCacheDtype", "")).startswith("fp8") for log in logs())
    for log in logs():
        assert log["source"].startswith("https://") and log["lines"], log["id"]


@pytest.mark.parametrize("log", logs(), ids=lambda log: log["id"])
def test_planned_kv_cache_tokens_within_10_percent_of_the_printed(log: dict[str, Any]) -> None:
    planned = plan(log)
    assert abs(planned.token_error) <= TOLERANCE, (
        f"{log['id']}: planned {planned.sizing.kv_cache_tokens:,} tokens, vLLM printed {planned.printed_tokens:,} "
        f"({planned.token_error:+.1%}); {planned.sizing}")
    if planned.concurrency_error is not None:
        assert abs(planned.concurrency_error) <= TOLERANCE, (log["id"], planned.sizing.max_concurrency)


def test_error_distribution_is_recorded_and_most_logs_are_close() -> None:
    errors = [plan(log).token_error for log in logs()]
    print("\nKV cache tokens vs printed:", distribution(errors))
    assert sum(abs(e) <= 0.05 for e in errors) >= 0.8 * len(errors)


def main() -> None:
    print(f"{'log':44s} {'release':>8s} {'printed':>10s} {'planned':>10s} {'err':>7s} | {'conc printed':>12s} {'planned':>8s}")
    errors = []
    for log in logs():
        planned = plan(log)
        errors.append(planned.token_error)
        conc = log["printed"].get("maxConcurrency")
        print(f"{log['id']:44s} {release_of(log).version:>8s} {planned.printed_tokens:>10,d} "
              f"{planned.sizing.kv_cache_tokens:>10,d} {planned.token_error:>+7.1%} | "
              f"{conc if conc is not None else '-':>12} {planned.sizing.max_concurrency:>8.2f}")
    print("KV cache tokens vs printed:", distribution(errors))


if __name__ == "__main__":
    main()
