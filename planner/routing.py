"""Flag routing: which Unleash flags carry which models."""

from __future__ import annotations

from dataclasses import replace

from planner.catalogs import FlagSpec, Route


def default_flags(metadata_type: str, capabilities: dict[str, bool], routes: tuple[Route, ...]) -> list[str]:
    out: list[str] = []
    for route in routes:
        if route.metadataType != metadata_type:
            continue
        if route.capability and not capabilities.get(route.capability, False):
            continue
        out += [flag for flag in route.flags if flag not in out]
    return out


def model_flags(
    metadata_type: str, capabilities: dict[str, bool], explicit: list[str], routes: tuple[Route, ...]
) -> list[str]:
    """Defaults from metadataType and capabilities first, then the model's explicit `flags`, once each."""
    out = default_flags(metadata_type, capabilities, routes)
    out += [flag for flag in dict.fromkeys(explicit) if flag not in out]
    return out


def flag_table(model_flag_lists: dict[str, list[str]], specs: dict[str, FlagSpec]) -> dict[str, list[str]]:
    """FLAG -> [litellmModelName ...], every known flag present (empty when nothing routes to it)."""
    table: dict[str, list[str]] = {key: [] for key in sorted(specs)}
    for model, keys in model_flag_lists.items():
        for key in keys:
            table.setdefault(key, []).append(model)
    return table


def flag_specs(specs: dict[str, FlagSpec], overrides: dict[str, str]) -> dict[str, FlagSpec]:
    """The catalog's flags with the stack's requirement overrides (Kindo versions differ on what is required)."""
    out = dict(specs)
    for key, requirement in overrides.items():
        base = out.get(key) or FlagSpec(key=key, requirement=requirement, accepts=(), description=key)
        out[key] = replace(base, requirement=requirement)
    return out


def replacements(models: list[tuple[str, str]], table: dict[str, list[str]], specs: dict[str, FlagSpec]) -> dict[str, str | None]:
    """Each model's delete-with-replacement target, by litellmModelName: the anchor of its metadataType.

    models: (litellmModelName, metadataType) in declaration order. Anchors: for chat models the model of the
    fallback flag (flags.yaml `fallback: true`, when exactly one model holds it), else the first declared model of
    the type. An anchor has no replacement, so the wiring has no cycle (KindoModel inputs depend on the anchor's
    ID); removing an anchor takes making another model the anchor first.
    """
    anchors: dict[str, str] = {}
    for key, spec in specs.items():
        holders = table.get(key, [])
        if spec.fallback and len(holders) == 1 and "Text Generation" in spec.accepts:
            anchors.setdefault("Text Generation", holders[0])
    for name, metadata_type in models:
        anchors.setdefault(metadata_type, name)
    return {name: (anchors[kind] if anchors[kind] != name else None) for name, kind in models}
