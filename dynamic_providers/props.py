"""Property-bag helpers shared by the dynamic providers: engine values in, comparable values out."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from pulumi.output import Unknown
from pulumi.runtime import rpc

from planner.names import PROJECT

PROVIDER_KEY = "__provider"  # the serialized provider the engine stores beside every dynamic resource's inputs
CONFIG_NAMESPACE = PROJECT  # the stack config namespace: one definition, planner/names.py


class ConfigShapeError(ValueError):
    """A structured stack config value that is not the object it should be."""


def config_object(value: Any, key: str, shape: str) -> dict[str, Any]:
    """A structured config value: the engine may hand it over as an object or as its JSON text."""
    value = rpc.unwrap_rpc_secret(value)
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigShapeError(f"{key} must be an object {shape}; it is not valid JSON. Fix it in the stack file.") from None
    if not isinstance(value, Mapping):
        raise ConfigShapeError(f"{key} must be an object {shape}, got {type(value).__name__}. Fix it in the stack file.")
    return dict(value)


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown) or value == rpc.UNKNOWN


def has_unknown(value: Any) -> bool:
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknown(v) for v in value)
    return False


def normalize(value: Any) -> Any:
    """Comparable, sendable values: secret envelopes opened, integral floats back to ints (the engine turns
    every number into a float), None entries dropped (the engine drops them too)."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: normalize(v) for k, v in value.items() if rpc.unwrap_rpc_secret(v) is not None}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


def resolve_connection(configured: Mapping[str, Any], sources: Mapping[str, tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Each connection field from stack config (what configure() stored), else its environment variable.

    sources: field -> (environment variable, config key as a person would write it). Returns the values found
    and, for the fields found nowhere, "config key / VARIABLE" for the error message.
    """
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, (env, config_key) in sources.items():
        value = configured.get(name) or os.environ.get(env)
        if value is None or not str(value).strip():
            missing.append(f"{config_key} / {env}")
        else:
            values[name] = str(value).strip()
    return values, missing
