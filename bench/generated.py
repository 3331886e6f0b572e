"""Synthetic model entries for the benchmarks: `servers` self-hosted models on one pool, the rest cloud models."""

from __future__ import annotations

SELF_HOSTED = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B", "BAAI/bge-m3", "Qwen/Qwen2.5-7B-Instruct"]


def generated_models(count: int, servers: int, pool: str, prefix: str = "model") -> list[dict]:
    entries = []
    for index in range(count):
        name = f"{prefix}-{index:04d}"
        if index < servers:
            hf = SELF_HOSTED[index % len(SELF_HOSTED)]
            embedding = hf == "BAAI/bge-m3"
            context = 8192 if embedding else 32768
            entries.append({"litellmModelName": name, "displayName": name, "provider": "Self-Hosted",
                            "type": "INTERNAL" if embedding else "CHAT",
                            "metadataType": "Embeddings" if embedding else "Text Generation",
                            "contextWindow": context, "vllm": {"model": hf, "gpuPool": pool, "maxModelLen": context}})
        else:
            # A current model (no retirement date in LiteLLM's map), so the benchmark plans what a real stack has.
            entries.append({"litellmModelName": name, "litellmModel": "anthropic/claude-sonnet-5-5",
                            "displayName": name, "provider": "Anthropic", "type": "CHAT", "metadataType": "Text Generation",
                            "contextWindow": 1000000, "maxTokens": 16384, "credential": "anthropic"})
    return entries
