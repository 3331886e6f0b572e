"""ModelCatalog: every planned model registered in Kindo, and every flag routed to their IDs.

Pulumi orders the steps from the data flow: a flag's `modelIds` are the KindoModels' IDs, so models are
created before the flags that carry them; the engine deletes replaced or removed models last, after the
flags have moved. Each model's `replacementModelId` is the ID of its type's anchor (planner
assign_replacements), which has none itself: no dependency cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi

from dynamic_providers.kindo_model import KindoModel, KindoModelArgs
from dynamic_providers.unleash_flag import UnleashModelFlag, UnleashModelFlagArgs
from planner.config import SecretRef
from planner.model_plan import PlannedModel
from planner.names import PROJECT
from planner.plan import Plan


@dataclass
class ModelCatalogArgs:
    plan: Plan
    # kindo-models:credentials as a secret Output of {name: key}, or None when the stack has none
    credentials: Optional[pulumi.Output[Mapping[str, str]]] = None
    # each self-hosted model's vLLM server key (secret Output), by litellmModelName
    server_keys: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    # resources a model's registration waits for (its server, an endpoint check), by litellmModelName
    depends_on: Mapping[str, list[pulumi.Resource]] = field(default_factory=dict)
    plan_input: dict[str, Any] = field(default_factory=dict)  # planner.policy_input: what a policy pack checks


def secret_input(ref: SecretRef, credentials: Optional[pulumi.Output[Mapping[str, str]]], subject: str) -> pulumi.Output[str]:
    """The key a reference points at, as a secret Output. Missing keys fail `pulumi up` (not preview) clearly."""
    if ref.kind == "env":
        value = os.environ.get(ref.name)
        if value is None and not pulumi.runtime.is_dry_run():
            raise pulumi.RunError(f"{subject}: environment variable {ref.name} is not set where `pulumi up` runs; "
                                  f"export it, or store the key with `pulumi config set --path --secret "
                                  f"{PROJECT}:credentials.NAME <key>` and use `credential: NAME`.")
        return pulumi.Output.secret(value or "")
    if ref.kind == "credential":
        if credentials is None:
            if not pulumi.runtime.is_dry_run():
                raise pulumi.RunError(f"{subject}: credential {ref.name!r} is not set; run `pulumi config set --path "
                                      f"--secret {PROJECT}:credentials.{ref.name} <key>`.")
            return pulumi.Output.secret("")

        def pick(values: Mapping[str, str]) -> str:
            if ref.name not in values:
                if pulumi.runtime.is_dry_run():
                    return ""
                raise pulumi.RunError(f"{subject}: credential {ref.name!r} is not set; run `pulumi config set --path "
                                      f"--secret {PROJECT}:credentials.{ref.name} <key>`.")
            return values[ref.name]

        return pulumi.Output.secret(credentials.apply(pick))
    # `secure` inside a model entry and plain text are refused by the plan before anything is built.
    raise pulumi.RunError(f"{subject}: a key of kind {ref.kind!r} cannot be used; use `credential: NAME`.")


class ModelCatalog(pulumi.ComponentResource):
    models: dict[str, KindoModel]
    flags: dict[str, UnleashModelFlag]

    def __init__(self, name: str, args: ModelCatalogArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:ModelCatalog", name, args.plan_input or None, opts)
        plan = args.plan
        assert plan.settings.unleash is not None
        self.models = {}
        # Anchors first: the other models of their type take the anchor's ID as replacementModelId.
        for model in sorted(plan.models, key=lambda m: m.replacement is not None):
            self.models[model.litellmModelName] = self._register(model, args)

        self.flags = {}
        for flag in plan.routed_flags:
            self.flags[flag.key] = UnleashModelFlag(
                flag.key,
                UnleashModelFlagArgs(
                    flag=flag.key,
                    environment=plan.settings.unleash.environment,
                    project=plan.settings.unleash.project,
                    model_ids=[self.models[n].modelId for n in flag.models],
                    model_names=[self.models[n].routingName for n in flag.models],
                    payload=flag.payload,
                    required=flag.required,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({
            **args.plan_input,
            "modelIds": {name: model.modelId for name, model in self.models.items()},
            "flags": {flag: resource.strategyId for flag, resource in self.flags.items()},
        })

    def _register(self, model: PlannedModel, args: ModelCatalogArgs) -> KindoModel:
        body = model.body
        assert body is not None
        params: dict[str, Any] = dict(body.fields["litellmParams"])
        for param, ref in body.secret_slots.items():
            params[param] = secret_input(ref, args.credentials, model.litellmModelName)
        if body.server_key and model.litellmModelName in args.server_keys:
            params["api_key"] = pulumi.Output.secret(args.server_keys[model.litellmModelName])
        fields = {**body.fields, "litellmParams": params}
        replacement = self.models[model.replacement].modelId if model.replacement else None
        return KindoModel(
            model.litellmModelName,
            KindoModelArgs(fields, replacement_model_id=replacement, adopt_model_id=model.adoptModelId,
                           confirm_not_registered=model.confirmNotRegistered),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on.get(model.litellmModelName, []))),
        )
