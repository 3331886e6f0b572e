"""Read-only migration helper: what the Unleash routing of one environment is TODAY, and a stack snippet to paste.

An installation set up by the runbook or by `kindo install --apply` already routes Kindo's flags to registered
models. Before its first `pulumi up`, a stack must say which models Kindo already has (`kindoModelId`, adopted,
not registered again) and which flags each model is routed to (`flags`), so that the first `up` takes the routing
over instead of adding a second one. This module reads that truth from Unleash, with GET requests only:
- `read_routing(...)`: per flag, whether it is live, archived or missing, whether the environment is on, and
  every strategy that carries model routing (IDs or routing names, from all of its variants), with whose it is
  (a stack's, by the owner in its title, or made by hand/another tool) and whether a stack can take it over as is;
- `render_snippet(...)`: a `kindo-models:models` fragment for Pulumi.<stack>.yaml, one entry per model the flags
  carry, with `kindoModelId` (when the variants carry IDs) or `litellmModelName` (when they carry routing names)
  and `flags`, plus comments for what the operator must complete or fix first.

Kindo cannot be read (no list endpoint), so the snippet cannot fill in a model's fields: the operator completes
each entry from Kindo's Models page. Values shaped like a UUID are taken as model IDs, anything else as routing
names (Kindo's IDs are UUIDs in its docs: seed global-model-management.txt).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from dynamic_providers.http import JsonClient, RetryPolicy, Timeout
from dynamic_providers.unleash_api import (
    LEGACY_TITLE, TITLE_PREFIX, VARIANT_NAME, Paths, UnleashApi, UnleashError, base_url, classify, describe, is_plain,
    title_of, values_of,
)

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
CONFIG_KEY = "kindo-models:models"
# The stack setting that makes flags carry routing names; the program wires it (see the report to the lead).
PAYLOAD_SETTING = "kindo-models:unleash.variantPayload"


@dataclass(frozen=True)
class StrategyRouting:
    id: str
    label: str  # title and id, as messages show it
    owner: Optional[str]  # the stack whose strategy it is (from its title), None when made by hand or a tool
    values: list[str]
    plain: bool  # a stack could take it over without changing what Kindo sees


@dataclass(frozen=True)
class FlagRouting:
    flag: str
    state: str  # "live" | "archived" | "missing"
    enabled: bool
    strategies: list[StrategyRouting] = field(default_factory=list)

    @property
    def values(self) -> list[str]:
        found: list[str] = []
        for strategy in self.strategies:
            found += [v for v in strategy.values if v not in found]
        return found


@dataclass(frozen=True)
class EnvironmentRouting:
    project: str
    environment: str
    flags: list[FlagRouting]

    def models(self) -> list[tuple[str, list[str]]]:
        """Each value the flags carry (a model ID or a routing name) with the flags that carry it, in first-seen order."""
        carried: dict[str, list[str]] = {}
        for flag in self.flags:
            for value in flag.values:
                carried.setdefault(value, []).append(flag.flag)
        return list(carried.items())


def value_kind(value: str) -> str:
    return "id" if UUID.match(value) else "name"


def read_routing(url: str, token: str, project: str, environment: str, flags: Optional[Sequence[str]] = None, *,
                 timeout: Timeout = Timeout(connect=5.0, read=30.0), retry: RetryPolicy = RetryPolicy()) -> EnvironmentRouting:
    """The routing of `environment` today, for the given flag keys (the planner's model flags), or for every live
    flag of the project that carries routing when `flags` is None. Only GET requests are sent."""
    client = JsonClient("Unleash", base_url(url), {"Authorization": token}, secrets=[token], timeout=timeout, retry=retry)
    with UnleashApi(client, UnleashError) as api:
        keys = list(flags) if flags is not None else api.feature_names(project)
        found = [_flag_routing(api, Paths(project, key, environment)) for key in keys]
    if flags is None:
        found = [f for f in found if f.strategies]
    return EnvironmentRouting(project, environment, found)


def _flag_routing(api: UnleashApi, paths: Paths) -> FlagRouting:
    view = api.flag(paths)
    state = "archived" if view.archived else "live" if view.exists else "missing"
    routing = classify(view.strategies, title_of("\0"), None, LEGACY_TITLE)  # no stack is "ours" here
    strategies = [StrategyRouting(str(s.get("id")), describe(s), _owner(s), values_of(s, _variant(s)), is_plain(s))
                  for s in routing.other_stacks + routing.hand]
    return FlagRouting(paths.flag, state, view.enabled, strategies)


def _owner(strategy: dict) -> Optional[str]:
    title = str(strategy.get("title") or "")
    return title[len(TITLE_PREFIX):] if title.startswith(TITLE_PREFIX) else None


def _variant(strategy: dict) -> Optional[str]:
    """A stack's strategy is read through its own variant; anything else through all of its variants."""
    return VARIANT_NAME if _owner(strategy) else None


# ------------------------------------------------------------------------------------------- render
def warnings(routing: EnvironmentRouting, owner: Optional[str] = None) -> list[str]:
    """What the first `pulumi up` will repair or stop on, one line each."""
    lines = []
    for flag in routing.flags:
        where = f"flag {flag.flag}"
        if flag.state == "archived":
            lines.append(f"{where} is archived: Kindo no longer sees it; `pulumi up` revives it.")
        elif flag.state == "live" and flag.strategies and not flag.enabled:
            lines.append(f"{where} is disabled in {routing.environment}: Kindo reads no model from it; `pulumi up` "
                         "enables it.")
        others = [s for s in flag.strategies if s.owner and s.owner != owner]
        if others:
            lines.append(f"{where} is routed by stack {others[0].owner}: two stacks must not share environment "
                         f"{routing.environment}; `pulumi up` stops on it.")
        hand = [s for s in flag.strategies if not s.owner]
        if len(hand) > 1 or (hand and not hand[0].plain):
            lines.append(f"{where} carries routing that cannot be taken over as is ({'; '.join(s.label for s in hand)}):"
                         " reduce it to one unconstrained strategy at 100% with one set of models, or `pulumi up` stops.")
    return lines


def render_snippet(routing: EnvironmentRouting, owner: Optional[str] = None) -> str:
    """A `kindo-models:models` fragment for Pulumi.<stack>.yaml (valid YAML; comments say what to complete)."""
    models = routing.models()
    kinds = {value_kind(value) for value, _ in models}
    header = [f"# Unleash routing of environment {routing.environment!r} (project {routing.project!r}), read just now.",
              "# Paste under `config:` in Pulumi.<stack>.yaml, then complete every entry with the model's fields as",
              "# Kindo has them (litellmModel, displayName, provider, type, metadataType, contextWindow, ...: Kindo's",
              "# Models page). kindoModelId makes the first `pulumi up` adopt the model instead of registering it again."]
    if kinds == {"name"}:
        header.append(f"# The flags carry routing names: set {PAYLOAD_SETTING}: names in the stack.")
    elif kinds == {"id", "name"}:
        header.append("# Some flags carry model IDs and some routing names: Kindo reads one kind; fix the flags first.")
    header += [f"# WARNING: {line}" for line in warnings(routing, owner)]
    if not models:
        return "\n".join(header + ["# No flag carries any model today.", f"{CONFIG_KEY}: []", ""])
    return "\n".join(header + [f"{CONFIG_KEY}:"] + [line for value, flags in models for line in _entry(value, flags)]
                     + [""])


def _entry(value: str, flags: list[str]) -> list[str]:
    if value_kind(value) == "id":
        first = [f"  - kindoModelId: {json.dumps(value)}",
                 '    litellmModelName: "TODO"  # the routing name of this model on Kindo\'s Models page']
    else:
        first = [f"  - litellmModelName: {json.dumps(value)}",
                 f'    kindoModelId: "TODO"  # the ID of {value!r} on Kindo\'s Models page']
    return first + [f"    flags: {json.dumps(flags)}"]
