#!/usr/bin/env python3
"""Generate planner/data/litellm_models.json from the model map inside one pinned LiteLLM wheel.

Usage (from the repository root)::

    .venv/bin/python scripts/gen_cloud_models.py           # download (if missing), verify, write the file
    .venv/bin/python scripts/gen_cloud_models.py --check   # exit 1 when the committed file differs

What it does, in order:
1. ``pip download litellm==<PINNED> --no-deps --only-binary=:all:`` for one fixed platform tag into
   ``.cache/litellm/`` (pip itself checks the hash too: ``--require-hashes``). LiteLLM ships one wheel per
   platform since it carries a native extension, so the platform is pinned to get one file and one hash on
   every machine; the JSON map inside is the same in every wheel of a release.
2. Checks the wheel's sha256 against the pinned one BEFORE opening it, and refuses on a mismatch.
3. Reads ``litellm/model_prices_and_context_window_backup.json`` out of the zip. LiteLLM is never installed
   or imported: its install-time and import-time code never runs here.
4. Keeps the entries of the providers Kindo uses (``planner/data/providers.yaml``; ``KINDO_PROVIDERS`` maps each
   display name to LiteLLM's ``litellm_provider`` values) and the modes Kindo registers, keeps the fields the
   planner checks, and writes them with the release, the wheel's hash and the date.

The pinned release, and why (searched 2026-11-30: GitHub issues and advisories, OSV, release notes):
- LiteLLM 1.110.2, uploaded to PyPI 2026-11-20, the newest release on PyPI on 2026-11-30.
  Wheel ``litellm-1.110.2-cp310-abi3-manylinux_2_28_x86_64.whl``, sha256 from PyPI's JSON API
  (https://pypi.org/pypi/litellm/1.110.2/json, ``digests.sha256``), and the same value measured with
  ``sha256sum`` on the file ``pip download`` fetched.
- It carries the backported fix "/key/info letting a key with no user read other userless keys by hash or
  alias" (#52838, #52925), released the same day in 1.106.12, 1.108.13, 1.109.3 and 1.110.2
  (https://newreleases.io/project/github/BerriAI/litellm/release/v1.106.12); 1.110.0 and 1.110.1 lack it.
  No advisory found names 1.110.2. 1.106.12 (the proxy the team measured, facts.md) is on the same fixed level.
- Versions to avoid:
  * 1.82.7 and 1.82.8: COMPROMISED, published with a stolen maintainer token (TeamPCP, 2026-03-24):
    a credential stealer in ``litellm/proxy/proxy_server.py``, and in 1.82.8 also ``litellm_init.pth``
    (34,628 bytes), which runs on every Python start without any import. Deleted from PyPI.
    https://github.com/BerriAI/litellm/issues/24518 , https://github.com/BerriAI/litellm/issues/24512 ,
    OSV MAL-2026-2144, CVE-2026-33634, https://docs.litellm.ai/blog/security-update-march-2026
  * < 1.83.0: GHSA-jjhc-v7c2-5hh6 (critical, OIDC userinfo cache-key auth bypass), GHSA-69x8-hrgq-fjj8.
  * >= 1.81.16, < 1.83.7: GHSA-r75f-5x8p-qvmc / CVE-2026-42208 (critical, SQL injection in proxy API-key
    checks); >= 1.74.2, < 1.83.7: GHSA-v4p8-mg3p-g94g; >= 1.80.5, < 1.83.7: GHSA-xqmj-j6mv-4862
    (https://github.com/volcengine/OpenViking/pull/1882 lists all five with their ranges).
  * >= 1.81.8, < 1.83.10: GHSA-wxxx-gvqv-xp7p / CVE-2026-40217 (guardrail sandbox escape, RCE).
  * < 1.84.0: GHSA-4xpc-pv4p-pm3w (critical, auth bypass via Host header injection).
  * < 1.101.1: GHSA-v247-6f48-mgcj / CVE-2026-102999 (OSV MINI-6m45-7w2f-cjxg).
  * 1.110.0, 1.110.1 (and 1.108.0-1.108.12, 1.109.0-1.109.2, 1.106.0-1.106.11): without the /key/info fix above.
  These are proxy-server flaws; this script only reads a JSON file from the wheel, but the pin is the
  newest clean release so that the map matches what a current LiteLLM proxy uses.

To move to a newer release: check its advisories, take ``digests.sha256`` of the same platform wheel from
``https://pypi.org/pypi/litellm/<version>/json``, update ``PINNED``, run this script, review the diff.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "planner" / "data" / "litellm_models.json"
PROVIDERS_YAML = REPO / "planner" / "data" / "providers.yaml"
CACHE_DIR = REPO / ".cache" / "litellm"


@dataclass(frozen=True)
class PinnedWheel:
    version: str
    filename: str
    sha256: str
    platform: str  # the pip --platform tag of `filename`
    python_version: str = "3.11"
    map_member: str = "litellm/model_prices_and_context_window_backup.json"


PINNED = PinnedWheel(
    version="1.110.2",
    filename="litellm-1.110.2-cp310-abi3-manylinux_2_28_x86_64.whl",
    sha256="9d94d1c7d524b6fd10c14f9c8c6c4f0ac31705f9964ac59dcfd8337c046d8917",
    platform="manylinux_2_28_x86_64",
)

# Kindo ModelProvider display name -> LiteLLM `litellm_provider` values of the models it can route to.
# A value ending in "*" is a prefix: Vertex AI spreads its models over vertex_ai-anthropic_models,
# vertex_ai-language-models and more. Bedrock models are `bedrock` (invoke) or `bedrock_converse` (converse);
# both are reached with the `bedrock/` prefix. Azure AI Foundry (`azure_ai/`) and Bedrock Mantle are other
# prefixes that providers.yaml does not offer, so they are left out. Self-Hosted models are not in the map.
KINDO_PROVIDERS: dict[str, tuple[str, ...]] = {
    "Anthropic": ("anthropic",),
    "OpenAI": ("openai",),
    "Google": ("gemini",),
    "Vertex AI": ("vertex_ai", "vertex_ai-*"),
    "Azure OpenAI": ("azure",),
    "AWS Bedrock": ("bedrock", "bedrock_converse"),
    "Groq": ("groq",),
    "Deepgram": ("deepgram",),
}

# Modes Kindo registers: chat (and OpenAI's Responses-only models, which LiteLLM bridges from chat),
# embeddings, and transcription. Image, video, speech, realtime, rerank, ... models are left out.
KEPT_MODES = frozenset({"chat", "responses", "embedding", "audio_transcription"})

# Fields kept per model, in output order, with the type each must have. `max_tokens` is LiteLLM's legacy
# field (absent from every entry of 1.110.2's map); it is kept when a release has it.
KEPT_FIELDS: dict[str, type] = {
    "mode": str,
    "max_input_tokens": int,
    "max_output_tokens": int,
    "max_tokens": int,
    "supports_vision": bool,
    "supports_function_calling": bool,
    "deprecation_date": str,
    "successor_model": str,
}


class GenerationError(Exception):
    """A problem the person running the generator must fix; main() prints it without a traceback."""


class WheelHashMismatch(GenerationError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_wheel(path: Path, expected_sha256: str) -> None:
    """Refuse a wheel whose sha256 is not the pinned one (a tampered, truncated or different file)."""
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise WheelHashMismatch(
            f"{path} has sha256 {actual}, but the pinned LiteLLM wheel has {expected_sha256}. The file was not "
            f"opened. Delete it and run scripts/gen_cloud_models.py again to download it from PyPI; if the hash "
            f"still differs, do not use that file and check the release on https://pypi.org/project/litellm/.")


def download_wheel(pinned: PinnedWheel, cache_dir: Path) -> Path:
    """The pinned wheel in cache_dir, downloaded with pip (hash-checked by pip) when it is not there yet."""
    target = cache_dir / pinned.filename
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        requirement = Path(scratch) / "requirements.txt"
        requirement.write_text(f"litellm=={pinned.version} --hash=sha256:{pinned.sha256}\n", encoding="utf-8")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--require-hashes", "--platform", pinned.platform, "--python-version", pinned.python_version,
                   "--implementation", "cp", "--abi", "abi3", "--dest", str(cache_dir), "-r", str(requirement)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not target.exists():
        raise GenerationError(f"pip could not download {pinned.filename} (exit {result.returncode}):\n"
                              f"{(result.stderr or result.stdout).strip()}\nCheck the network access to PyPI.")
    return target


def read_model_map(wheel: Path, pinned: PinnedWheel) -> dict[str, Any]:
    """LiteLLM's model map from the wheel, after the wheel's hash is checked. Nothing from it is executed."""
    verify_wheel(wheel, pinned.sha256)
    with zipfile.ZipFile(wheel) as archive:
        try:
            raw = archive.read(pinned.map_member)
        except KeyError:
            raise GenerationError(f"{wheel.name} has no {pinned.map_member}; the map moved in this release. "
                                  "Find the model_prices_and_context_window*.json member and set map_member.") from None
    model_map = json.loads(raw)
    if not isinstance(model_map, dict):
        raise GenerationError(f"{pinned.map_member} is not a JSON object")
    return model_map


def provider_matches(litellm_provider: object, patterns: Iterable[str]) -> bool:
    if not isinstance(litellm_provider, str):
        return False
    return any(litellm_provider.startswith(p[:-1]) if p.endswith("*") else litellm_provider == p for p in patterns)


def kindo_provider_of(litellm_provider: object, kindo_providers: Mapping[str, tuple[str, ...]]) -> str | None:
    for name, patterns in kindo_providers.items():
        if provider_matches(litellm_provider, patterns):
            return name
    return None


def _checked_fields(key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": entry["litellm_provider"]}
    for field, kind in KEPT_FIELDS.items():
        if field not in entry or entry[field] is None:
            continue
        value = entry[field]
        # bool is an int in Python: a token count of True is as wrong as a vision flag of 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise GenerationError(f"model {key!r}: {field} is {value!r}, expected {kind.__name__}. LiteLLM's map "
                                  "changed shape; teach the generator the new form rather than guessing.")
        if field == "deprecation_date":
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise GenerationError(f"model {key!r}: deprecation_date {value!r} is not YYYY-MM-DD") from None
        out[field] = value
    return out


def select_models(model_map: Mapping[str, Any],
                  kindo_providers: Mapping[str, tuple[str, ...]] = KINDO_PROVIDERS) -> dict[str, dict[str, Any]]:
    """The map's entries for Kindo's providers and modes, reduced to KEPT_FIELDS, keyed by LiteLLM's own key.

    Alias entries (``{"alias_of": KEY}``, e.g. claude-sonnet-latest) are kept when their target is kept.
    """
    selected: dict[str, dict[str, Any]] = {}
    for key, entry in model_map.items():
        if not isinstance(entry, dict) or "alias_of" in entry:
            continue
        if entry.get("mode") in KEPT_MODES and kindo_provider_of(entry.get("litellm_provider"), kindo_providers):
            selected[key] = _checked_fields(key, entry)
    for key, entry in model_map.items():
        if isinstance(entry, dict) and isinstance(entry.get("alias_of"), str) and entry["alias_of"] in selected:
            selected[key] = {"alias_of": entry["alias_of"]}
    return dict(sorted(selected.items()))


def providers_section(selection: Mapping[str, Mapping[str, Any]],
                      kindo_providers: Mapping[str, tuple[str, ...]] = KINDO_PROVIDERS) -> dict[str, list[str]]:
    """Kindo display name -> the litellm_provider values present in the selection (what a reader matches on)."""
    present = sorted({entry["provider"] for entry in selection.values() if "provider" in entry})
    return {name: [value for value in present if provider_matches(value, patterns)]
            for name, patterns in kindo_providers.items()}


def check_kindo_providers(providers_yaml: Path, kindo_providers: Mapping[str, tuple[str, ...]] = KINDO_PROVIDERS) -> None:
    """Every cloud provider in providers.yaml is mapped, and every mapped name is a provider there."""
    with providers_yaml.open(encoding="utf-8") as handle:
        rows = yaml.safe_load(handle)["providers"]
    cloud = {row["displayName"] for row in rows if not row.get("selfHosted")}
    unmapped = sorted(cloud - set(kindo_providers))
    unknown = sorted(set(kindo_providers) - cloud)
    if unmapped or unknown:
        raise GenerationError(
            "KINDO_PROVIDERS in scripts/gen_cloud_models.py is out of step with planner/data/providers.yaml: "
            + (f"not mapped: {', '.join(unmapped)} (add their litellm_provider values). " if unmapped else "")
            + (f"not in providers.yaml: {', '.join(unknown)} (remove them or add the provider)." if unknown else ""))


def render(selection: Mapping[str, Mapping[str, Any]], pinned: PinnedWheel, generated_on: dt.date,
           kindo_providers: Mapping[str, tuple[str, ...]] = KINDO_PROVIDERS) -> str:
    """The file's text: JSON (json.loads takes ~2 ms where PyYAML's CSafeLoader takes ~100 ms), one model a line."""
    meta = {"note": "generated by scripts/gen_cloud_models.py; do not edit (fix LiteLLM's mistakes in "
                    "planner/data/cloud_model_overrides.yaml)",
            "litellm": pinned.version, "wheel": pinned.filename, "sha256": pinned.sha256, "map": pinned.map_member,
            "generated": generated_on.isoformat(),
            "modes": sorted(KEPT_MODES), "fields": ["provider", *KEPT_FIELDS, "alias_of"]}

    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    providers = providers_section(selection, kindo_providers)
    parts = ["{", f'"_generated": {line(meta)},', '"providers": {']
    parts.append(",\n".join(f"  {line(name)}: {line(values)}" for name, values in providers.items()))
    parts.append("},")
    parts.append('"models": {')
    parts.append(",\n".join(f"  {line(key)}: {line(entry)}" for key, entry in selection.items()))
    parts.append("}")
    parts.append("}")
    return "\n".join(parts) + "\n"


def generate(pinned: PinnedWheel, cache_dir: Path, generated_on: dt.date, providers_yaml: Path = PROVIDERS_YAML) -> str:
    check_kindo_providers(providers_yaml)
    wheel = download_wheel(pinned, cache_dir)
    selection = select_models(read_model_map(wheel, pinned))
    empty = [name for name, values in providers_section(selection).items() if not values]
    if empty:
        raise GenerationError(f"LiteLLM {pinned.version}'s map has no {', '.join(empty)} model in modes "
                              f"{', '.join(sorted(KEPT_MODES))}; its provider names changed. Fix KINDO_PROVIDERS.")
    return render(selection, pinned, generated_on)


def committed_date(path: Path) -> dt.date:
    return dt.date.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["_generated"]["generated"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed file (regenerated with its own date); exit 1 when it differs")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = parser.parse_args(argv)
    try:
        if args.check:
            if not args.output.exists():
                raise GenerationError(f"{args.output} does not exist; run scripts/gen_cloud_models.py")
            expected = generate(PINNED, args.cache_dir, committed_date(args.output))
            if expected != args.output.read_text(encoding="utf-8"):
                print(f"{args.output} differs from what LiteLLM {PINNED.version}'s map gives; run "
                      "scripts/gen_cloud_models.py and commit the result.", file=sys.stderr)
                return 1
            print(f"{args.output} matches LiteLLM {PINNED.version}")
            return 0
        text = generate(PINNED, args.cache_dir, dt.date.today())
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {text.count(chr(10))} lines, {len(text.encode()):,} bytes, "
              f"from LiteLLM {PINNED.version}")
        return 0
    except GenerationError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
