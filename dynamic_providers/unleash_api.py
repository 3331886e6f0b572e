"""The Unleash admin API calls and the reading of model routing that UnleashModelFlag and the routing report share.

Reading a flag is ONE call in the common case: GET of the feature answers its `archived` state and every
environment with its `enabled` switch and strategies. Only a 404 costs a second call, to tell an archived flag
(its environment still answers 200) from a missing one. A 404 counts as "missing" only when it is Unleash's own
JSON error: a proxy's page is an error, never "gone".

Model routing on a flag, as `classify` sorts the strategies of one environment:
- ours: the strategy titled `kindo-models routing: <owner>` for this stack (or the one whose id our state holds);
- other stacks: titled `kindo-models routing: <another owner>`;
- hand: any other strategy whose variants carry values (model IDs or routing names), made by a person or a tool;
- the rest (strategies without variants) is not routing.

This module imports no Pulumi: the planner's CLI uses it (through routing_report) without the Pulumi SDK.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import quote

from dynamic_providers.http import HttpError, JsonClient

TITLE_PREFIX = "kindo-models routing: "
LEGACY_TITLE = "kindo-models: model routing"  # version 1 (no owner): ours only when its id is in our state
VARIANT_NAME = "kindo-models"  # the one variant of our strategy
_FLAG_NAME = re.compile(r"^[A-Za-z0-9_.~-]+$")  # Unleash feature names must be URL-friendly


class UnleashError(Exception):
    """An Unleash operation that failed; the first line says what and what to do."""


def base_url(url: str) -> str:
    """The server's base URL: a trailing /api (as in client SDK settings) is accepted and removed."""
    url = url.strip().rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


def title_of(owner: str) -> str:
    """The title of the one strategy a stack owns on a flag: it carries the stack's identity."""
    return f"{TITLE_PREFIX}{owner}"


@dataclass(frozen=True)
class Paths:
    project: str
    flag: str
    environment: str

    @staticmethod
    def valid_flag(name: str) -> bool:
        return bool(_FLAG_NAME.match(name))

    @property
    def features(self) -> str:
        return f"/api/admin/projects/{quote(self.project, safe='')}/features"

    @property
    def feature(self) -> str:
        return f"{self.features}/{quote(self.flag, safe='')}"

    @property
    def environment_path(self) -> str:
        return f"{self.feature}/environments/{quote(self.environment, safe='')}"

    @property
    def strategies(self) -> str:
        return f"{self.environment_path}/strategies"

    def strategy(self, strategy_id: str) -> str:
        return f"{self.strategies}/{quote(strategy_id, safe='')}"

    @property
    def revive(self) -> str:
        return f"/api/admin/projects/{quote(self.project, safe='')}/revive"


@dataclass(frozen=True)
class FlagView:
    """One flag in one environment, as Unleash answers now."""

    exists: bool  # live (not archived)
    archived: bool
    enabled: bool
    strategies: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------- reading routing
def payload_values(payload: Mapping[str, Any]) -> list[str]:
    """The values in a variant payload, whatever its type (a person or a tool may have chosen any)."""
    kind, text = payload.get("type"), str(payload.get("value", ""))
    if kind == "json":
        try:
            return _strings(json.loads(text))
        except ValueError:
            return [text] if text else []
    if kind == "csv":
        return [part.strip() for part in text.split(",") if part.strip()]
    return [text.strip()] if text.strip() else []


def _strings(data: Any) -> list[str]:
    if isinstance(data, Mapping):
        return [s for value in data.values() for s in _strings(value)]
    if isinstance(data, list):
        return [s for item in data for s in _strings(item)]
    return [] if data is None or data == "" else [str(data)]


def variant_values(strategy: Mapping[str, Any]) -> list[list[str]]:
    """Per variant, the values its payload carries."""
    return [payload_values(v.get("payload") or {}) for v in strategy.get("variants") or []]


def values_of(strategy: Mapping[str, Any], variant_name: Optional[str] = None) -> list[str]:
    """The values a strategy carries, in order, once each: of the named variant if it has one, else of all."""
    variants = list(strategy.get("variants") or [])
    named = [v for v in variants if variant_name and v.get("name") == variant_name]
    found: list[str] = []
    for variant in named or variants:
        found += [value for value in payload_values(variant.get("payload") or {}) if value not in found]
    return found


def is_plain(strategy: Mapping[str, Any]) -> bool:
    """A strategy another can take over without changing what Kindo sees: active, unconstrained, at 100%, and
    every variant carrying the same models (so one variant with them routes every user the same way)."""
    parameters = strategy.get("parameters") or {}
    rollout = str(parameters.get("rollout", "100")).strip()
    carried = {tuple(sorted(values)) for values in variant_values(strategy)}
    return (not strategy.get("disabled") and not strategy.get("constraints") and not strategy.get("segments")
            and rollout == "100" and len(carried) == 1)


def describe(strategy: Mapping[str, Any]) -> str:
    title = strategy.get("title")
    name = f"'{title}'" if title else f"a {strategy.get('name', 'unnamed')} strategy"
    return f"{name} ({strategy.get('id', '?')})"


@dataclass
class Routing:
    ours: Optional[dict[str, Any]] = None
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # more strategies with our title
    other_stacks: list[dict[str, Any]] = field(default_factory=list)
    hand: list[dict[str, Any]] = field(default_factory=list)


def classify(strategies: Sequence[dict[str, Any]], title: str, strategy_id: Optional[str] = None,
             legacy_title: Optional[str] = None) -> Routing:
    """Sort one environment's strategies (see the module docstring). A strategy with `legacy_title` (a version
    without owners) is ours only when its id is the one in our state."""
    by_id = [s for s in strategies if strategy_id and str(s.get("id")) == strategy_id]
    titled = [s for s in strategies if s.get("title") == title]
    ours = (by_id or titled or [None])[0]
    routing = Routing(ours=ours, duplicates=[s for s in titled if s is not ours])
    for strategy in strategies:
        if strategy is ours or strategy in routing.duplicates:
            continue
        if str(strategy.get("title") or "").startswith(TITLE_PREFIX):
            routing.other_stacks.append(strategy)
        elif values_of(strategy) or (legacy_title and strategy.get("title") == legacy_title):
            routing.hand.append(strategy)
    return routing


# ----------------------------------------------------------------------------------------- the calls
class UnleashApi:
    """The calls, with errors of the caller's class that say what failed; no secret ever reaches them (the
    client redacts). Use as a context manager: the client's connection is closed afterwards."""

    def __init__(self, client: JsonClient, error: type[Exception] = UnleashError) -> None:
        self.client = client
        self.error = error

    def __enter__(self) -> "UnleashApi":
        return self

    def __exit__(self, *_: Any) -> None:
        self.client.close()

    def _fail(self, what: str, e: HttpError) -> Exception:
        return self.error(f"could not {what}.\n{e}")

    # -- reads
    def flag(self, paths: Paths) -> FlagView:
        try:
            data = self.client.get(paths.feature).data
        except HttpError as e:
            if e.status == 404 and e.from_api:
                return self._archived_or_missing(paths)
            raise self._fail(f"read flag {paths.flag} in project {paths.project}", e) from None
        return self._view(paths, data, archived=bool(isinstance(data, Mapping) and data.get("archived")))

    def _archived_or_missing(self, paths: Paths) -> FlagView:
        try:
            data = self.client.get(paths.environment_path).data
        except HttpError as e:
            if e.status == 404 and e.from_api:
                return FlagView(exists=False, archived=False, enabled=False)
            raise self._fail(f"read flag {paths.flag} in {paths.environment}", e) from None
        return self._view(paths, {"environments": [{**data, "name": paths.environment}]}, archived=True)

    def _view(self, paths: Paths, data: Any, archived: bool) -> FlagView:
        environments = data.get("environments") if isinstance(data, Mapping) else None
        if not isinstance(environments, list) or not all(isinstance(e, Mapping) for e in environments):
            raise self.error(f"Unleash answered the read of flag {paths.flag} with JSON that is not a feature (no "
                             "environments list); check that the URL points at the Unleash server itself.")
        found = [e for e in environments if e.get("name") == paths.environment]
        if not found:
            names = ", ".join(str(e.get("name")) for e in environments) or "none"
            raise self.error(f"environment {paths.environment!r} does not exist on flag {paths.flag} in Unleash "
                             f"(it has: {names}); set the stack's Unleash environment to one of them.")
        strategies = [dict(s) for s in found[0].get("strategies") or [] if isinstance(s, Mapping)]
        return FlagView(exists=not archived, archived=archived, enabled=bool(found[0].get("enabled")),
                        strategies=strategies)

    def feature_names(self, project: str) -> list[str]:
        """The live flags of a project."""
        path = f"/api/admin/projects/{quote(project, safe='')}/features"
        try:
            data = self.client.get(path).data
        except HttpError as e:
            raise self._fail(f"list the flags of project {project}", e) from None
        features = data.get("features") if isinstance(data, Mapping) else None
        if not isinstance(features, list):
            raise self.error(f"Unleash answered the list of flags of project {project} without a features list.")
        return sorted(str(f.get("name")) for f in features if isinstance(f, Mapping))

    # -- writes
    def ensure_live(self, paths: Paths) -> FlagView:
        """The flag, created if missing and revived if archived (both leave its environment disabled)."""
        view = self.flag(paths)
        if view.archived:
            self.revive(paths)
            return FlagView(exists=True, archived=False, enabled=False, strategies=view.strategies)
        if not view.exists:
            self._create_feature(paths)
            return self.flag(paths)
        return view

    def _create_feature(self, paths: Paths) -> None:
        body = {"name": paths.flag, "type": "release",
                "description": "Kindo model routing (variants managed by kindo-models)"}
        try:
            self.client.post(paths.features, body, idempotent=True)  # a second create answers 409
        except HttpError as e:
            if e.status == 409 and e.from_api and "archived" in e.server_message.lower():
                self.revive(paths)  # archived between our read and our create
            elif not (e.status == 409 and e.from_api):
                raise self._fail(f"create flag {paths.flag} in project {paths.project}", e) from None

    def revive(self, paths: Paths) -> None:
        try:
            self.client.post(paths.revive, {"features": [paths.flag]}, idempotent=True, empty_ok=True)
        except HttpError as e:
            raise self._fail(f"revive the archived flag {paths.flag} (archived by hand; Kindo no longer sees it)", e) from None

    def add_strategy(self, paths: Paths, title: str, variants: list[dict[str, Any]]) -> str:
        body = {"name": "flexibleRollout", "title": title,
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": paths.flag},
                "constraints": [], "variants": variants}
        try:
            data = self.client.post(paths.strategies, body).data
        except HttpError as e:
            if e.maybe_processed:  # the answer was lost: the strategy may exist, find it by its title
                found = [s for s in self.flag(paths).strategies if s.get("title") == title]
                if found:
                    return str(found[0]["id"])
            raise self._fail(f"add the model routing strategy to {paths.flag} in {paths.environment}", e) from None
        if not isinstance(data, Mapping) or not data.get("id"):
            raise self.error(f"Unleash answered the new strategy on {paths.flag} without its id; check that the URL "
                             "points at the Unleash server itself.")
        return str(data["id"])

    def patch_strategy(self, paths: Paths, strategy_id: str, title: Optional[str],
                       variants: Optional[list[dict[str, Any]]]) -> None:
        patch = ([{"op": "add", "path": "/title", "value": title}] if title is not None else []) + \
                ([{"op": "replace", "path": "/variants", "value": variants}] if variants is not None else [])
        try:
            self.client.request("PATCH", paths.strategy(strategy_id), patch, idempotent=True)
        except HttpError as e:
            raise self._fail(f"update the model routing of {paths.flag} in {paths.environment}", e) from None

    def remove_strategy(self, paths: Paths, strategy_id: str) -> None:
        try:
            self.client.request("DELETE", paths.strategy(strategy_id), empty_ok=True)
        except HttpError as e:
            if not (e.status == 404 and e.from_api):
                raise self._fail(f"remove our strategy from {paths.flag} in {paths.environment}", e) from None

    def enable(self, paths: Paths) -> None:
        try:
            self.client.post(f"{paths.environment_path}/on", None, idempotent=True, empty_ok=True)
        except HttpError as e:
            raise self._fail(f"enable {paths.flag} in {paths.environment}", e) from None
