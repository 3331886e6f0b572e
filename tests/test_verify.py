"""The endpoint checker against a local OpenAI-compatible server: each fault gives the runbook's diagnosis.

Every server runs on 127.0.0.1 (tests/openai_double.py) and stops at the end of its test; timeouts are
fractions of a second so that the slow and trickling servers cost little.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from checker import endpoint_checker as v
from planner import targets as t
from planner.cli import main
from tests.conftest import base_config, plan_of
from tests.openai_double import MODES, Behaviour, OpenAIDouble, closed_port, count_tokens


def targets_for(plan, names=None, **options):  # type: ignore[no-untyped-def]
    """The CLI's target building for a whole plan."""
    return t.targets_for(plan.models, plan.servers, plan.stack, names, **options)

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-Verify-0123456789abcdef"
FAST = v.Options(connectTimeout=1.0, readTimeout=0.5)
Serve = Callable[..., OpenAIDouble]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start doubles by mode name or Behaviour; all stop when the test ends."""
    started: list[OpenAIDouble] = []

    def start(mode: str | Behaviour = "healthy", **changes: Any) -> OpenAIDouble:
        behaviour = MODES[mode] if isinstance(mode, str) else mode
        double = OpenAIDouble(behaviour, lifetime=20.0).start()
        if changes:
            double.set(**changes)
        started.append(double)
        return double

    yield start
    for double in started:
        double.stop()


def chat_target(double: OpenAIDouble, **fields: Any) -> v.Target:
    return v.Target(**{"model": "test-model", "baseUrl": double.base_url, "toolCalling": True, "maxModelLen": 4096,
                       **fields})


def statuses(report: v.Report) -> dict[str, str]:
    return {r.check: r.status for r in report.results}


def no_key_anywhere(*texts: str) -> None:
    for text in texts:
        assert KEY not in text
        assert KEY[:12] not in text  # not even a cut-off prefix


# ---------------------------------------------------------------------------------------------- modes


def test_healthy_server_passes_every_chat_check(serve: Serve) -> None:
    double = serve("healthy")
    report = v.verify(chat_target(double), FAST)
    assert statuses(report) == {"dns": "pass", "tcp": "pass", "models": "pass", "completion": "pass",
                                "tool-calling": "pass", "context-length": "pass", "embeddings": "skip",
                                "transcription": "skip"}
    assert report.ok
    assert "get_weather(location='San Francisco')" in report.result("tool-calling").detail
    context = report.result("context-length").detail
    assert "counted by the server's /tokenize" in context and "the server counted" in context
    # The long prompt really was near the limit: 90% of 4096, minus at most one sentence, within what fits.
    longest = max(count_tokens(body["messages"][0]["content"]) for method, path, body in double.requests
                  if path == "/v1/chat/completions" and "tools" not in body)
    assert 0.9 * 4096 - 12 <= longest <= 0.9 * 4096
    assert all(r.diagnosis == "" for r in report.results)


def test_runbook_requests_are_sent_verbatim(serve: Serve) -> None:
    double = serve("healthy")
    v.verify(chat_target(double), FAST)
    chats = [body for _, path, body in double.requests if path == "/v1/chat/completions"]
    completion = next(b for b in chats if b["messages"][0]["content"] == v.COMPLETION_PROMPT)
    assert (completion["max_tokens"], completion["temperature"]) == (32, 0)
    tool = next(b for b in chats if "tools" in b)
    assert tool["tool_choice"] == "auto" and tool["tools"][0]["function"]["name"] == "get_weather"
    assert tool["tools"][0]["function"]["parameters"]["required"] == ["location"] and tool["max_tokens"] == 256


def test_reasoning_model_gets_room_to_think(serve: Serve) -> None:
    double = serve("healthy")
    v.verify(chat_target(double, reasoning=True), FAST)
    budgets = {b["max_tokens"] for _, path, b in double.requests if path == "/v1/chat/completions"}
    assert v.REASONING_MAX_TOKENS in budgets and v.COMPLETION_MAX_TOKENS not in budgets


def test_reasoning_budget_fits_a_small_context(serve: Serve) -> None:
    # vLLM refuses prompt + max_tokens beyond its max model length: 2048 tokens to think do not fit in 2048.
    double = serve("small-context")
    report = v.verify(chat_target(double, reasoning=True, maxModelLen=2048), FAST)
    assert report.ok, report.results
    budgets = {b["max_tokens"] for _, path, b in double.requests if path == "/v1/chat/completions" and b["max_tokens"] > 16}
    assert budgets == {2048 - v.PROMPT_ROOM}


def test_a_context_too_small_for_even_the_short_requests(serve: Serve) -> None:
    report = v.verify(chat_target(serve("healthy", max_context=40), maxModelLen=None), FAST)
    for check in ("completion", "tool-calling"):
        result = report.result(check)
        assert result.status == "fail" and result.diagnosis.startswith("--max-model-len too low"), result


def test_wrong_served_name_fails_models_and_lists_what_is_served(serve: Serve) -> None:
    report = v.verify(chat_target(serve("wrong-name")), FAST)
    models = report.result("models")
    assert models.status == "fail"
    assert "--served-model-name differs from litellmModelName" in models.diagnosis
    assert "'some-other-model'" in models.detail and "'some-other-model'" in models.diagnosis
    assert {r.status for r in report.results[3:]} == {"skip"}
    assert not report.ok


def test_no_tool_parser_gives_text_and_the_parser_diagnosis(serve: Serve) -> None:
    report = v.verify(chat_target(serve("no-tool-parser")), FAST)
    tool = report.result("tool-calling")
    assert tool.status == "fail"
    assert tool.diagnosis.startswith("--tool-call-parser missing or wrong")
    assert "plain text instead of tool_calls" in tool.detail and "did not parse" in tool.detail
    assert statuses(report)["completion"] == "pass" and statuses(report)["context-length"] == "pass"


def test_auto_tool_choice_refused_is_the_parser_diagnosis(serve: Serve) -> None:
    report = v.verify(chat_target(serve("healthy", auto_tool_choice=False)), FAST)
    tool = report.result("tool-calling")
    assert tool.status == "fail" and "HTTP 400" in tool.detail and "--enable-auto-tool-choice" in tool.detail
    assert tool.diagnosis.startswith("--tool-call-parser missing or wrong")


@pytest.mark.parametrize(("changes", "words"), [
    ({"tool_name": "get_time"}, "called get_time, not get_weather"),
    ({"tool_arguments": '{"city": "San Francisco"}'}, "without a location"),
    ({"tool_arguments": '{"location": "San Fran'}, "without a location"),  # cut JSON: a parser that mis-reads the syntax
])
def test_mangled_tool_calls_are_the_parser_diagnosis(serve: Serve, changes: dict[str, Any], words: str) -> None:
    tool = v.verify(chat_target(serve("healthy", **changes)), FAST).result("tool-calling")
    assert tool.status == "fail" and words in tool.detail and tool.diagnosis.startswith("--tool-call-parser")


def test_tool_calling_only_when_asked(serve: Serve) -> None:
    double = serve("no-tool-parser")
    report = v.verify(chat_target(double, toolCalling=False), FAST)
    assert report.result("tool-calling").status == "skip" and report.ok
    assert not any("tools" in b for _, path, b in double.requests if path == "/v1/chat/completions")


def test_context_too_small_is_vllms_400_with_the_diagnosis(serve: Serve) -> None:
    report = v.verify(chat_target(serve("small-context")), FAST)
    context = report.result("context-length")
    assert context.status == "fail"
    assert context.diagnosis.startswith("--max-model-len too low or GPU memory too small")
    assert "HTTP 400: This model's maximum context length is 2048 tokens" in context.detail
    assert "the server holds 2,048 tokens, below the configured 4,096" in context.detail
    assert [s for c, s in statuses(report).items() if c != "context-length" and s == "fail"] == []


def test_slow_server_times_out_within_the_bound(serve: Serve) -> None:
    start = time.monotonic()
    report = v.verify(chat_target(serve("slow")), FAST)
    assert time.monotonic() - start < 2.5
    models = report.result("models")
    assert models.status == "fail" and "no answer within 0.5 s" in models.detail
    assert models.diagnosis.startswith("No complete answer within 0.5 s")


def test_trickling_server_is_cut_at_the_total_bound(serve: Serve) -> None:
    # Each byte comes in 50 ms (no read timeout trips); the whole answer would take seconds.
    start = time.monotonic()
    report = v.verify(chat_target(serve("trickle")), v.Options(connectTimeout=0.3, readTimeout=0.3))
    assert time.monotonic() - start < 2.0
    assert report.result("models").status == "fail"
    assert "no complete answer within 0.6 s" in report.result("models").detail


def test_garbage_body_is_a_clear_failure_without_the_echoed_key(serve: Serve) -> None:
    report = v.verify(chat_target(serve("garbage"), apiKey=KEY), FAST)
    models = report.result("models")
    assert models.status == "fail" and "a body that is not JSON" in models.detail and "502 Bad Gateway" in models.detail
    assert "not the OpenAI API's" in models.diagnosis
    no_key_anywhere(json.dumps(report.to_json()), repr(report))


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_garbage_or_wrong_shape_on_one_endpoint(serve: Serve, path: str) -> None:
    kind = "embeddings" if "embeddings" in path else "chat"
    check = "embeddings" if kind == "embeddings" else "completion"
    for fault, words in (({"garbage": (path,)}, "not JSON"), ({"wrong_shape": (path,)}, "JSON of the wrong shape")):
        double = serve("healthy", **fault)
        report = v.verify(chat_target(double, kind=kind), FAST)
        result = report.result(check)
        assert result.status == "fail" and words in result.detail, result
        assert "the check itself failed" not in result.detail


def test_wrong_shape_models_list(serve: Serve) -> None:
    models = v.verify(chat_target(serve("wrong-shape")), FAST).result("models")
    assert models.status == "fail" and "wrong shape (no data[].id)" in models.detail


@pytest.mark.parametrize(("changes", "words", "diagnosis"), [
    ({"answer": "5"}, "no 4 in the answer", "garbled or wrong"),
    ({"answer": "44"}, "no 4 in the answer", "garbled or wrong"),
    ({"answer": "The answer is", "finish_reason": "length"}, "after max_tokens 32", "did not finish within max_tokens 32"),
    ({"answer": "4", "finish_reason": "abort"}, "expected 'stop'", "garbled or wrong"),
])
def test_wrong_answers(serve: Serve, changes: dict[str, Any], words: str, diagnosis: str) -> None:
    completion = v.verify(chat_target(serve("healthy", **changes), toolCalling=False), FAST).result("completion")
    assert completion.status == "fail" and words in completion.detail and diagnosis in completion.diagnosis


@pytest.mark.parametrize("answer", ["4", "4.", "2 + 2 = 4", "Four"])
def test_right_answers(serve: Serve, answer: str) -> None:
    completion = v.verify(chat_target(serve("healthy", answer=answer), toolCalling=False), FAST).result("completion")
    assert completion.status == "pass", completion


def test_without_tokenizer_the_estimate_never_overshoots(serve: Serve) -> None:
    double = serve("healthy", tokenize=False, max_context=8192)
    report = v.verify(chat_target(double, maxModelLen=8192), FAST)
    context = report.result("context-length")
    assert context.status == "pass" and "tokens estimated (no /tokenize: HTTP 404)" in context.detail
    prompt = max(count_tokens(b["messages"][0]["content"]) for _, path, b in double.requests
                 if path == "/v1/chat/completions" and "tools" not in b)
    target = 0.9 * 8192
    # The double's tokenizer gives 10 tokens a sentence (a large BPE vocabulary): the estimate, sized for 13,
    # sends about 10/13 of the target, never more than the target.
    assert 10 / 13 * target * 0.97 <= prompt <= target


def test_key_is_sent_and_never_shown(serve: Serve) -> None:
    double = serve("healthy", api_key=KEY)
    report = v.verify(chat_target(double, apiKey=KEY, keySource="--api-key"), FAST)
    assert report.ok and report.keySource == "--api-key"
    wrong = v.verify(chat_target(double, apiKey="sk-wrong"), FAST).result("models")
    assert wrong.status == "fail" and "HTTP 401" in wrong.detail and "rejected the API key" in wrong.diagnosis
    target = chat_target(double, apiKey=KEY)
    no_key_anywhere(repr(target), json.dumps(report.to_json()), repr(report))


def test_embedding_model(serve: Serve) -> None:
    double = serve(Behaviour(served=("bge-m3",), max_context=512, embedding_dim=1024))
    report = v.verify(v.Target("bge-m3", double.base_url, kind="embeddings", maxModelLen=512), FAST)
    assert statuses(report) == {"dns": "pass", "tcp": "pass", "models": "pass", "completion": "skip",
                                "tool-calling": "skip", "context-length": "pass", "embeddings": "pass",
                                "transcription": "skip"}
    assert report.result("embeddings").detail == "2 vectors of dimension 1024"
    pairs = [b["input"] for _, path, b in double.requests if path == "/v1/embeddings" and isinstance(b["input"], list)]
    assert len(pairs) == 1 and len(pairs[0]) == 2 and len(pairs[0][0]) != len(pairs[0][1])  # different lengths


# ---------------------------------------------------------------------------------------------- transcription (issue 16)


def whisper_target(double: OpenAIDouble, **fields: Any) -> v.Target:
    return v.Target(**{"model": "test-whisper", "baseUrl": double.base_url, "kind": "transcription", **fields})


def test_transcription_model_sends_the_clip_and_passes_on_a_transcript(serve: Serve) -> None:
    double = serve("whisper", api_key=KEY)
    report = v.verify(whisper_target(double, apiKey=KEY), FAST)
    assert statuses(report) == {"dns": "pass", "tcp": "pass", "models": "pass", "completion": "skip",
                                "tool-calling": "skip", "context-length": "skip", "embeddings": "skip",
                                "transcription": "pass"}
    assert "Kindo verifies this endpoint" in report.result("transcription").detail
    [form] = [body for method, path, body in double.requests if path == "/v1/audio/transcriptions"]
    assert form["model"] == "test-whisper" and form["language"] == "en" and form["response_format"] == "json"
    assert form["file"] == (ROOT / "checker" / v.CLIP_NAME).read_bytes() and form["file"][:4] == b"RIFF"
    no_key_anywhere(json.dumps(report.to_json()))


@pytest.mark.parametrize(("behaviour", "diagnosis"), [
    # A chat model on recent vLLM: no transcription route (FastAPI's 404), on 0.11 a 400 that says so.
    ({"transcript": None}, "No speech-to-text behind this name"),
    ({"transcription_error": (400, "The model does not support Transcriptions API")}, "No speech-to-text behind this name"),
    ({"transcription_error": (500, "Please install vllm[audio] for audio support")}, "lacks vLLM's audio extra"),
    ({"transcript": "  "}, "not a working speech-to-text model"),
])
def test_transcription_failures_are_diagnosed(serve: Serve, behaviour: dict[str, Any], diagnosis: str) -> None:
    double = serve("whisper", **behaviour)
    result = v.verify(whisper_target(double), FAST).result("transcription")
    assert result.status == "fail" and diagnosis in result.diagnosis, result


def test_transcription_with_the_wrong_served_name_fails_at_models(serve: Serve) -> None:
    double = serve("whisper")
    report = v.verify(whisper_target(double, model="whisper-large-v3"), FAST)
    assert report.result("models").status == "fail" and "--served-model-name" in report.result("models").diagnosis
    assert report.result("transcription").status == "skip"
    assert not [p for _, p, _ in double.requests if p.endswith("/transcriptions")]


def test_a_chat_target_never_posts_audio(serve: Serve) -> None:
    double = serve("healthy")
    assert v.verify(chat_target(double), FAST).result("transcription").status == "skip"
    assert not [p for _, p, _ in double.requests if p.endswith("/transcriptions")]


def test_embedding_model_too_long_for_its_server(serve: Serve) -> None:
    double = serve(Behaviour(served=("bge-m3",), max_context=256))
    context = v.verify(v.Target("bge-m3", double.base_url, kind="embeddings", maxModelLen=1024), FAST).result(
        "context-length")
    assert context.status == "fail" and "--max-model-len too low" in context.diagnosis


def test_max_model_len_from_the_server_when_not_configured(serve: Serve) -> None:
    report = v.verify(chat_target(serve("healthy", max_context=3000), maxModelLen=None), FAST)
    assert "max model length 3,000" in report.result("context-length").detail and report.ok


# ---------------------------------------------------------------------------------------------- network


def test_dns_failure_says_the_name_does_not_resolve() -> None:
    report = v.verify(v.Target("m", "http://no-such-host.invalid:8000/v1"), FAST)
    dns = report.result("dns")
    assert dns.status == "fail" and "no-such-host.invalid does not resolve" in dns.detail
    assert dns.diagnosis.startswith("Name resolution failed") and "nslookup" in dns.diagnosis
    assert [r.status for r in report.results[1:]] == ["skip"] * (len(v.CHECKS) - 1)


def test_in_cluster_name_tells_how_to_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*_: Any, **__: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    dns, _ = v.check_dns("qwen3-8b.inference.svc.cluster.local", 8000, 1.0)
    assert "kubectl port-forward -n inference svc/qwen3-8b 8000" in dns.diagnosis
    assert v.in_cluster_service("api.openai.com") is None


def test_dns_lookup_is_time_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(3))
    start = time.monotonic()
    dns, _ = v.check_dns("slow-dns.example", 80, 0.2)
    assert time.monotonic() - start < 1.0
    assert dns.status == "fail" and "did not finish within 0.2 s" in dns.detail


def test_connection_refused_on_a_closed_port() -> None:
    report = v.verify(v.Target("m", f"http://127.0.0.1:{closed_port()}/v1"), FAST)
    tcp = report.result("tcp")
    assert tcp.status == "fail" and tcp.detail.startswith("connection refused")
    assert tcp.diagnosis.startswith("Connection refused: the inference server is not running or the port is wrong")


def test_connect_timeout_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def black_hole(self: socket.socket, address: Any) -> None:
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket.socket, "connect", black_hole)
    tcp = v.check_tcp("10.0.0.1", 8000, [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 8000))], 0.2)
    assert tcp.status == "fail" and tcp.detail.startswith("connection timed out")
    assert "firewall" in tcp.diagnosis


def test_invalid_base_url() -> None:
    report = v.verify(v.Target("m", "ftp:/nowhere"), FAST)
    assert report.result("dns").status == "fail" and "not an http(s) URL" in report.result("dns").detail


def test_redirect_and_server_error_diagnoses() -> None:
    detail, diagnosis = v.failure(v.Reply(301, location="https://m.example/v1/models"), "http://m.example/v1", "/models")
    assert "301" in detail and "https://m.example/v1/models" in diagnosis
    _, diagnosis = v.failure(v.Reply(503, body={"message": "loading"}), "http://m/v1", "/models")
    assert "HTTP 503" in diagnosis and "kubectl logs" in diagnosis


# ---------------------------------------------------------------------------------------------- sizing the prompt


@settings(max_examples=60, deadline=None)
@given(max_len=st.integers(256, 2_000_000), fraction=st.floats(0.05, 1.0), max_tokens=st.integers(1, 64))
def test_context_budget_always_leaves_room(max_len: int, fraction: float, max_tokens: int) -> None:
    budget = v.context_budget(max_len, fraction, max_tokens)
    assert budget + v.TEMPLATE_RESERVE + max_tokens <= max_len
    assert budget <= max_len * fraction


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(64, 2_000_000), per_sentence=st.integers(v.SENTENCE_TOKENS_LOWER, v.SENTENCE_TOKENS_UPPER))
def test_estimate_stays_within_budget_for_any_plausible_tokenizer(budget: int, per_sentence: int) -> None:
    filler = v.estimated_filler(budget)
    real = filler.sentences * per_sentence + 11  # instruction and BOS
    assert real <= budget
    assert filler.tokensLow <= real <= filler.tokensHigh
    assert filler.method == "estimate"


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(200, 500_000), per_sentence=st.integers(5, 50), fixed=st.integers(0, 40),
       wobble=st.integers(0, 3))
def test_tokenizer_sizing_lands_just_under_the_budget(budget: int, per_sentence: int, fixed: int, wobble: int) -> None:
    # The filler sentence is 9+ tokens in any real tokenizer (one per word at best, bytes at worst ~45): rates of
    # 5-50 with a jitter of up to 18 tokens cover them; a 1-token sentence with a 12-token jitter exists nowhere.
    def count(text: str) -> int:
        sentences = text.count(v.FILLER_SENTENCE)
        return fixed + sentences * per_sentence + (sentences % 7) * wobble  # merges across borders shift it a little

    filler = v.counted_filler(budget, count)
    if filler is None:  # only when not even one sentence fits
        assert fixed + per_sentence + 7 * wobble > budget
        return
    assert filler.method == "tokenizer" and filler.tokensLow == filler.tokensHigh == count(filler.text)
    assert budget - 2 * per_sentence - 7 * wobble <= filler.tokensHigh <= budget


def test_tokenizer_that_fails_falls_back_to_the_estimate() -> None:
    assert v.counted_filler(1000, lambda text: None) is None
    assert v.counted_filler(1000, lambda text: 5) is None  # counts that do not grow with the text


# ---------------------------------------------------------------------------------------------- from a plan


def verify_stack() -> dict[str, Any]:
    raw = base_config()
    raw["credentials"]["openai"] = {"secure": "v1:pqr"}
    raw["models"] += [
        {"litellmModelName": "qwen3-8b", "displayName": "Qwen3 8B", "provider": "Self-Hosted", "type": "CHAT",
         "metadataType": "Text Generation", "contextWindow": 8192, "maxTokens": 4096,
         "vllm": {"model": "Qwen/Qwen3-8B", "gpuPool": "l40s"}},
        {"litellmModelName": "llama-small", "displayName": "Llama", "provider": "Self-Hosted", "type": "CHAT",
         "metadataType": "Text Generation", "contextWindow": 8192, "apiKey": "${MY_VLLM_KEY}", "verify": False,
         "vllm": {"model": "meta-llama/Llama-3.1-8B-Instruct", "gpuPool": "l40s"}},
        {"litellmModelName": "gpt-4o", "litellmModel": "openai/gpt-4o-2024-08-06", "displayName": "GPT-4o",
         "provider": "OpenAI", "type": "CHAT", "metadataType": "Text Generation", "contextWindow": 128000,
         "apiKey": "${OPENAI_API_KEY}"},
    ]
    return raw


def test_targets_follow_the_plan() -> None:
    plan = plan_of(verify_stack())
    env = {"VLLM_API_KEY": KEY, "OPENAI_API_KEY": "sk-openai"}
    targets = {t.name if isinstance(t, v.Skip) else t.label: t for t in targets_for(plan, environ=env)}
    qwen = targets["qwen3-8b"]
    assert isinstance(qwen, v.Target)
    server = next(s for s in plan.servers if s.litellmModelName == "qwen3-8b")
    assert qwen.baseUrl == server.url == f"http://qwen3-8b-{server.generation}.inference.svc.cluster.local:8000/v1"
    assert qwen.model == "qwen3-8b"
    assert qwen.toolCalling and qwen.kind == "chat" and qwen.maxModelLen == 8192 and qwen.reasoning
    assert (qwen.apiKey, qwen.keySource) == (KEY, "$VLLM_API_KEY") and qwen.skipContext is None
    bge = targets["bge-m3"]
    assert isinstance(bge, v.Target) and bge.kind == "embeddings" and not bge.toolCalling
    gpt = targets["gpt-4o"]
    assert isinstance(gpt, v.Target)
    assert (gpt.baseUrl, gpt.model, gpt.name) == ("https://api.openai.com/v1", "gpt-4o-2024-08-06", "gpt-4o")
    assert gpt.keySource == "${OPENAI_API_KEY}" and gpt.skipContext and gpt.toolCalling
    assert "verify: false" in targets["llama-small"].reason  # type: ignore[union-attr]
    # Transcription is checked now (issue 16); Deepgram's own API is not OpenAI's, so this cloud model is skipped.
    assert "Deepgram has no OpenAI-compatible endpoint" in targets["transcription-generator"].reason  # type: ignore[union-attr]
    assert "Anthropic has no OpenAI-compatible endpoint" in targets["claude-sonnet-4-6"].reason  # type: ignore[union-attr]


def test_key_sources_in_order() -> None:
    raw = verify_stack()
    next(m for m in raw["models"] if m["litellmModelName"] == "llama-small")["verify"] = True
    plan = plan_of(raw)
    env = {"VLLM_API_KEY": "from-vllm", "MY_VLLM_KEY": "from-ref"}
    llama = targets_for(plan, ["llama-small"], environ=env)[0]
    assert isinstance(llama, v.Target) and (llama.apiKey, llama.keySource) == ("from-ref", "${MY_VLLM_KEY}")
    given_key = targets_for(plan, ["llama-small"], api_key="from-flag", environ=env)[0]
    assert isinstance(given_key, v.Target) and given_key.keySource == "--api-key"
    nothing = targets_for(plan, ["qwen3-8b"], environ={})[0]
    assert isinstance(nothing, v.Target) and nothing.apiKey is None and nothing.keySource == "none"
    cloud = targets_for(plan, ["gpt-4o"], environ={})[0]
    assert isinstance(cloud, v.Skip) and "${OPENAI_API_KEY} is not set" in cloud.reason


def test_unknown_model_names_what_the_stack_has() -> None:
    with pytest.raises(t.UnknownModel, match=r"Did you mean 'qwen3-8b'\?.*The stack has: .*bge-m3"):
        targets_for(plan_of(verify_stack()), ["qwen3-8"])


def test_script_args_reproduce_the_target(serve: Serve, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    double = serve("healthy", api_key=KEY)
    target = chat_target(double, apiKey=KEY, name="test-model-litellm", reasoning=True)
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    assert v.main(v.script_args(target, FAST)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["model"] == "test-model-litellm" and out["keySource"] == "$VLLM_API_KEY"
    assert KEY not in " ".join(v.script_args(target, FAST))


def test_standalone_checker_transcribes_with_the_clip_beside_it(serve: Serve, tmp_path: Path) -> None:
    # The check Job mounts the ConfigMap's two keys side by side: the script and the clip.
    for name in ("endpoint_checker.py", v.CLIP_NAME):
        shutil.copy(ROOT / "checker" / name, tmp_path / name)
    double = serve("whisper", api_key=KEY)
    result = subprocess.run(
        [sys.executable, str(tmp_path / "endpoint_checker.py"), "--base-url", double.base_url, "--model", "test-whisper",
         "--kind", "transcription", "--timeout", "2"],
        cwd=tmp_path, env={**os.environ, "VLLM_API_KEY": KEY, "PYTHONPATH": ""}, capture_output=True, text=True, timeout=30)
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {c["check"]: c["status"] for c in report["checks"]}["transcription"] == "pass"


def test_checker_runs_as_a_standalone_script(serve: Serve, tmp_path: Path) -> None:
    # What the in-cluster gate does: the file alone, no planner package, no rich, no Pulumi.
    script = tmp_path / "endpoint_checker.py"
    shutil.copy(ROOT / "checker" / "endpoint_checker.py", script)
    double = serve("no-tool-parser", api_key=KEY)
    probe = "import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-c", probe + "\nassert not {'rich', 'pulumi', 'planner'} & set(sys.modules)", str(script),
         "--base-url", double.base_url, "--model", "test-model", "--tool-calling", "--max-model-len", "4096",
         "--timeout", "2"],
        cwd=tmp_path, env={**os.environ, "VLLM_API_KEY": KEY, "PYTHONPATH": ""}, capture_output=True, text=True,
        timeout=30)
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert next(c for c in out["checks"] if c["check"] == "tool-calling")["status"] == "fail"
    no_key_anywhere(result.stdout, result.stderr)


# ---------------------------------------------------------------------------------------------- CLI


def write_stack(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"kindo-models:{k}": val for k, val in raw.items()}}))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_for_one_model(serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    double = serve(Behaviour(served=("qwen3-8b",), max_context=8192, api_key=KEY))
    code, out, err = run_cli(capsys, "--config-file", str(write_stack(tmp_path, verify_stack())), "--model", "qwen3-8b",
                             "--base-url", double.base_url, "--api-key", KEY, "--json", "--timeout", "2")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["stack"] == "test" and result["ok"] and result["failed"] == 0 and result["passed"] == 6
    (model,) = result["models"]
    assert (model["model"], model["baseUrl"], model["keySource"]) == ("qwen3-8b", double.base_url, "--api-key")
    assert [c["check"] for c in model["checks"]] == list(v.CHECKS)
    assert set(model["checks"][0]) == {"check", "status", "detail", "diagnosis", "seconds"}
    no_key_anywhere(out, err)


def test_cli_table_and_failure_exit_1(serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    double = serve(Behaviour(served=("qwen3-8b",), max_context=8192, tool_parser=False))
    code, out, err = run_cli(capsys, "--config-file", str(write_stack(tmp_path, verify_stack())), "--model", "qwen3-8b",
                             "--base-url", double.base_url, "--api-key", KEY, "--timeout", "2")
    assert code == 1
    for text in ("Endpoint checks", "tool-calling", "FAIL", "--tool-call-parser missing or wrong", "FAILED stack test",
                 "key from: --api-key"):
        assert text in out, text
    no_key_anywhere(out, err)


def test_cli_all_models_through_the_double(serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    double = serve(Behaviour(served=("qwen3-8b", "bge-m3"), max_context=8192, api_key=KEY))
    raw = verify_stack()
    for entry in raw["models"]:
        if entry["litellmModelName"] in ("qwen3-8b", "bge-m3"):
            entry["apiBase"] = double.base_url  # a plan error (localhost), which verify does not mind
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, err = run_cli(capsys, "--config-file", str(write_stack(tmp_path, raw)), "--all", "--json",
                             "--timeout", "2", "--context-fraction", "0.5")
    assert code == 0, out + err
    result = json.loads(out)
    by_name = {m["model"]: m for m in result["models"]}
    assert set(by_name) == {m["litellmModelName"] for m in raw["models"]}
    assert by_name["qwen3-8b"]["ok"] and by_name["bge-m3"]["ok"] and by_name["qwen3-8b"]["keySource"] == "$VLLM_API_KEY"
    assert "50% of max model length 8,192" in next(c["detail"] for c in by_name["qwen3-8b"]["checks"]
                                                    if c["check"] == "context-length")
    assert next(c for c in by_name["bge-m3"]["checks"] if c["check"] == "embeddings")["status"] == "pass"
    for skipped in ("claude-sonnet-4-6", "transcription-generator", "llama-small", "gpt-4o"):
        assert by_name[skipped]["skipped"] and by_name[skipped]["checks"] == []
    no_key_anywhere(out, err)


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "nope"], "model 'nope' is not in stack test"),
    (["--all", "--base-url", "http://127.0.0.1:1/v1"], "--base-url names one endpoint"),
    (["--model", "qwen3-8b", "--base-url", "127.0.0.1:8000"], "not an http(s) URL"),
])
def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, "--config-file", str(write_stack(tmp_path, verify_stack())), *args)
    assert code == 2 and message in err and out == ""
    code, out, _ = run_cli(capsys, "--config-file", str(write_stack(tmp_path, verify_stack())), *args, "--json")
    assert code == 2 and message in json.loads(out)["error"]


def test_cli_unreadable_stack_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config: [unclosed\n")
    code, _, err = run_cli(capsys, "--config-file", str(bad), "--all")
    assert code == 2 and "Pulumi.bad.yaml" in err


def test_cli_rejects_a_bad_fraction(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--stack", "dev", "--all", "--context-fraction", "1.5"])
    assert exit_info.value.code == 2 and "not a fraction" in capsys.readouterr().err


def test_plan_command_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "dev", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stack"] == "dev"


def test_options_are_validated() -> None:
    for bad in ({"contextFraction": 0}, {"contextFraction": 1.01}, {"readTimeout": 0}, {"connectTimeout": -1}):
        with pytest.raises(ValueError):
            v.Options(**bad)
