"""The cloud-model data generated from LiteLLM's model map: reproducible, tamper-proof, and true to the map.

(a) the committed planner/data/litellm_models.json is exactly what scripts/gen_cloud_models.py makes from the
    pinned wheel (downloaded into .cache/litellm on first use, about 44 MB);
(b) the generator refuses a wheel whose sha256 differs, before opening it;
(c) the filter and transform on a small synthetic map;
(d) facts about the committed data that come from the real map and the providers' pages.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import gen_cloud_models as gen

DATA = gen.REPO / "planner" / "data"
GENERATED = DATA / "litellm_models.json"
OVERRIDES = DATA / "cloud_model_overrides.yaml"


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return json.loads(GENERATED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def models(generated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return generated["models"]


@pytest.fixture(scope="module")
def overrides() -> dict[str, dict[str, Any]]:
    with OVERRIDES.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["overrides"]


def effective(key: str, models: dict[str, dict[str, Any]], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the planner's reader is to see: the map's entry updated with the hand-kept override."""
    return {**models.get(key, {}), **overrides.get(key, {})}


# --------------------------------------------------------------------------- (a) committed == generated


def test_committed_file_is_what_the_pinned_wheel_gives() -> None:
    started = time.perf_counter()
    expected = gen.generate(gen.PINNED, gen.CACHE_DIR, gen.committed_date(GENERATED))
    elapsed = time.perf_counter() - started
    assert expected == GENERATED.read_text(encoding="utf-8"), (
        "planner/data/litellm_models.json is not what scripts/gen_cloud_models.py gives; run it and commit")
    # A download (first run) took ~3 s here, a cached run ~0.2 s; a minute means something is wrong.
    assert elapsed < 60, f"generating took {elapsed:.1f} s"


def test_committed_header_names_the_pinned_release(generated: dict[str, Any]) -> None:
    meta = generated["_generated"]
    assert (meta["litellm"], meta["wheel"], meta["sha256"]) == (gen.PINNED.version, gen.PINNED.filename, gen.PINNED.sha256)
    assert "do not edit" in meta["note"]
    assert dt.date.fromisoformat(meta["generated"]) <= dt.date.today()


# --------------------------------------------------------------------------- (b) tampered wheels are refused


def _wheel_with_map(model_map: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(gen.PINNED.map_member, json.dumps(model_map))
    return buffer.getvalue()


def test_a_wheel_with_another_hash_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    wheel = tmp_path / gen.PINNED.filename
    wheel.write_bytes(b"not a zip file at all")  # opening it would raise BadZipFile, not the hash error
    with pytest.raises(gen.WheelHashMismatch) as refused:
        gen.read_model_map(wheel, gen.PINNED)
    assert gen.PINNED.sha256 in str(refused.value) and gen.sha256_of(wheel) in str(refused.value)
    assert "not opened" in str(refused.value)


def test_a_valid_wheel_with_a_changed_map_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / gen.PINNED.filename
    wheel.write_bytes(_wheel_with_map({"gpt-5": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 1}}))
    with pytest.raises(gen.WheelHashMismatch):
        gen.read_model_map(wheel, gen.PINNED)
    # The same file is read when its own hash is the pinned one: the refusal above is the hash, nothing else.
    own = gen.PinnedWheel(gen.PINNED.version, wheel.name, gen.sha256_of(wheel), gen.PINNED.platform)
    assert gen.read_model_map(wheel, own)["gpt-5"]["max_input_tokens"] == 1


def test_the_cli_stops_on_a_tampered_cached_wheel_with_a_message(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    real = gen.CACHE_DIR / gen.PINNED.filename
    tampered = cache / gen.PINNED.filename
    if real.exists():  # a copy of the real wheel with one byte changed
        shutil.copyfile(real, tampered)
        with tampered.open("r+b") as handle:
            handle.seek(1000)
            byte = handle.read(1)
            handle.seek(1000)
            handle.write(bytes([byte[0] ^ 0xFF]))
    else:
        tampered.write_bytes(b"tampered")
    output = tmp_path / "out.json"
    assert gen.main(["--cache-dir", str(cache), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "Delete it" in err
    assert not output.exists()


# --------------------------------------------------------------------------- (c) filter and transform

SYNTHETIC_MAP: dict[str, Any] = {
    "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers", "mode": "one of: chat"},
    "claude-x-1": {"litellm_provider": "anthropic", "mode": "chat", "max_input_tokens": 200000,
                   "max_output_tokens": 64000, "supports_vision": True, "supports_function_calling": True,
                   "deprecation_date": "2026-06-15", "successor_model": "claude-x-2", "input_cost_per_token": 3e-06},
    "claude-x-2": {"litellm_provider": "anthropic", "mode": "chat", "max_input_tokens": 1000000,
                   "max_output_tokens": 128000, "supports_vision": False},
    "claude-x-latest": {"alias_of": "claude-x-2"},
    "azure_ai/claude-x-2": {"litellm_provider": "azure_ai", "mode": "chat", "max_input_tokens": 1000000},
    "azure_ai/claude-x-latest": {"alias_of": "azure_ai/claude-x-2"},
    "gpt-image-9": {"litellm_provider": "openai", "mode": "image_generation"},
    "text-embedding-9": {"litellm_provider": "openai", "mode": "embedding", "max_input_tokens": 8191},
    "vertex_ai/claude-x-2": {"litellm_provider": "vertex_ai-anthropic_models", "mode": "chat",
                             "max_input_tokens": 1000000, "max_output_tokens": 64000, "max_tokens": 64000},
    "us.anthropic.claude-x-2": {"litellm_provider": "bedrock_converse", "mode": "chat", "max_input_tokens": 1000000},
    "deepgram/nova-9": {"litellm_provider": "deepgram", "mode": "audio_transcription"},
    "deepgram/aura-9": {"litellm_provider": "deepgram"},  # text to speech, no mode
    "groq/some-tts": {"litellm_provider": "groq", "mode": "audio_speech"},
}


def test_select_keeps_kindo_providers_and_modes_under_litellm_keys() -> None:
    selection = gen.select_models(SYNTHETIC_MAP)
    assert list(selection) == sorted(["claude-x-1", "claude-x-2", "claude-x-latest", "text-embedding-9",
                                      "vertex_ai/claude-x-2", "us.anthropic.claude-x-2", "deepgram/nova-9"])
    assert selection["claude-x-1"] == {"provider": "anthropic", "mode": "chat", "max_input_tokens": 200000,
                                       "max_output_tokens": 64000, "supports_vision": True,
                                       "supports_function_calling": True, "deprecation_date": "2026-06-15",
                                       "successor_model": "claude-x-2"}  # costs and other fields dropped
    assert selection["claude-x-2"]["supports_vision"] is False  # an explicit false is kept, not dropped
    assert "supports_function_calling" not in selection["claude-x-2"]  # unknown stays unknown
    assert selection["claude-x-latest"] == {"alias_of": "claude-x-2"}
    assert selection["vertex_ai/claude-x-2"]["max_tokens"] == 64000
    assert selection["deepgram/nova-9"] == {"provider": "deepgram", "mode": "audio_transcription"}


def test_providers_section_lists_the_values_present_per_kindo_provider() -> None:
    section = gen.providers_section(gen.select_models(SYNTHETIC_MAP))
    assert section["Vertex AI"] == ["vertex_ai-anthropic_models"]
    assert section["AWS Bedrock"] == ["bedrock_converse"]
    assert section["Groq"] == [] and section["Anthropic"] == ["anthropic"]


def test_render_is_json_with_the_header_and_one_model_a_line() -> None:
    selection = gen.select_models(SYNTHETIC_MAP)
    text = gen.render(selection, gen.PINNED, dt.date(2026, 1, 2))
    data = json.loads(text)
    assert data["models"] == selection and data["_generated"]["generated"] == "2026-01-02"
    assert data["_generated"]["sha256"] == gen.PINNED.sha256
    assert sum(1 for line in text.splitlines() if line.startswith('  "claude-x-')) == 3
    assert gen.render(selection, gen.PINNED, dt.date(2026, 1, 2)) == text  # deterministic


@pytest.mark.parametrize(("field", "value"), [("max_input_tokens", "200k"), ("max_output_tokens", True),
                                              ("supports_vision", 1), ("deprecation_date", "15 June 2026")])
def test_a_map_of_another_shape_stops_the_generator_naming_model_and_field(field: str, value: Any) -> None:
    bad = {"claude-x-1": {"litellm_provider": "anthropic", "mode": "chat", field: value}}
    with pytest.raises(gen.GenerationError, match=rf"'claude-x-1': {field}"):
        gen.select_models(bad)


def test_the_provider_mapping_must_cover_providers_yaml(tmp_path: Path) -> None:
    gen.check_kindo_providers(gen.PROVIDERS_YAML)  # the committed files agree
    rows = yaml.safe_load(gen.PROVIDERS_YAML.read_text(encoding="utf-8"))
    rows["providers"].append({"displayName": "Mistral", "prefixes": ["mistral/"]})
    changed = tmp_path / "providers.yaml"
    changed.write_text(yaml.safe_dump(rows), encoding="utf-8")
    with pytest.raises(gen.GenerationError, match="not mapped: Mistral"):
        gen.check_kindo_providers(changed)


# --------------------------------------------------------------------------- (d) the committed data


def test_every_cloud_provider_of_kindo_has_models(generated: dict[str, Any], models: dict[str, Any]) -> None:
    for name, values in generated["providers"].items():
        assert values, name
        assert any(m.get("provider") in values for m in models.values()), name


def test_aliases_point_at_kept_models(models: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, entry in {**models, **overrides}.items():
        if "alias_of" in entry:
            assert entry["alias_of"] in models or entry["alias_of"] in overrides, key


def test_anthropic_retired_models_come_out_retired_with_successors(models: dict[str, Any],
                                                                   overrides: dict[str, Any]) -> None:
    # LiteLLM drops a retired Anthropic model from its map; the override is what keeps it a finding.
    for key, retired_by, successor in [("claude-sonnet-4-20250514", "2026-06-15", "claude-sonnet-4-6"),
                                       ("claude-opus-4-1-20250805", "2026-08-05", "claude-opus-4-8")]:
        assert key not in models
        entry = effective(key, models, overrides)
        assert entry["deprecation_date"] <= retired_by and entry["successor_model"] == successor
        assert successor in models and "deprecation_date" not in models[successor]
    assert effective("claude-3-5-haiku-latest", models, overrides)["alias_of"] == "claude-3-5-haiku-20241022"


def test_sonnet_4_5_retires_on_the_date_anthropic_gives(models: dict[str, Any]) -> None:
    for key in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"):
        assert models[key]["deprecation_date"] == "2026-11-30" and models[key]["successor_model"] == "claude-sonnet-5-5"


def test_bedrock_keeps_its_own_schedule_for_the_same_model(models: dict[str, Any]) -> None:
    bedrock = models["us.anthropic.claude-sonnet-4-20250514-v1:0"]
    assert bedrock["provider"] == "bedrock_converse" and bedrock["deprecation_date"] == "2026-10-14"
    assert bedrock["successor_model"] in models


def test_pinned_dateless_anthropic_models_are_current(models: dict[str, Any]) -> None:
    for key in ("claude-sonnet-4-6", "claude-sonnet-5-5", "claude-opus-4-8"):
        assert models[key]["max_input_tokens"] == 1_000_000 and models[key]["max_output_tokens"] == 128_000, key
        assert "deprecation_date" not in models[key], key
    assert models["us.anthropic.claude-sonnet-4-6"]["max_output_tokens"] == 64_000  # Bedrock's own limit


def test_gpt_5_has_a_272k_prompt_limit_in_a_400k_window(models: dict[str, Any], overrides: dict[str, Any]) -> None:
    gpt5 = effective("gpt-5", models, overrides)
    assert (gpt5["max_input_tokens"], gpt5["max_output_tokens"], gpt5["context_window"]) == (272_000, 128_000, 400_000)
    assert gpt5["context_window"] == gpt5["max_input_tokens"] + gpt5["max_output_tokens"]
    assert gpt5["deprecation_date"] == "2026-12-11"


def test_the_seed_and_stack_models_resolve(models: dict[str, Any]) -> None:
    assert models["azure/gpt-4o"]["max_input_tokens"] == 128_000 and models["azure/gpt-4o"]["max_output_tokens"] == 16_384
    assert models["deepgram/nova-2"]["mode"] == "audio_transcription"
    assert models["gemini/gemini-2.5-pro"]["max_input_tokens"] == 1_048_576


def test_overrides_cite_a_page_and_change_something(models: dict[str, Any], overrides: dict[str, Any]) -> None:
    allowed = set(gen.KEPT_FIELDS) | {"provider", "alias_of", "context_window", "source", "note"}
    for key, entry in overrides.items():
        assert set(entry) <= allowed, (key, set(entry) - allowed)
        assert str(entry.get("source", "")).startswith("https://"), key
        changes = {field: value for field, value in entry.items() if field not in ("source", "note")}
        assert changes, key
        in_map = models.get(key, {})
        repeated = [field for field, value in changes.items() if in_map.get(field) == value]
        assert not repeated, f"{key}: {repeated} already say the same in litellm_models.json; drop them"
        if "deprecation_date" in entry:
            dt.date.fromisoformat(entry["deprecation_date"])
        if "successor_model" in entry:
            assert entry["successor_model"] in models, (key, entry["successor_model"])
        if key not in models and "alias_of" not in entry:
            assert entry.get("provider") and entry.get("mode"), f"{key} is not in the map: give provider and mode"


def test_the_generated_file_loads_in_a_few_milliseconds() -> None:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        json.loads(GENERATED.read_text(encoding="utf-8"))
        timings.append(time.perf_counter() - started)
    # ~1.3 ms measured; PyYAML's CSafeLoader takes ~55-100 ms for the same data, which this bound catches.
    assert min(timings) < 0.03, f"{min(timings) * 1000:.1f} ms"
