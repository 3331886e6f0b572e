"""Pulumi dynamic providers for a Kindo installation's models, and what they share.

- kindo_model: `KindoModel`, a Kindo global model (registered, or adopted by ID) through Kindo's admin API;
- unleash_flag: `UnleashModelFlag`, the one strategy a stack owns on an Unleash flag, carrying its models;
- unleash_api: the Unleash admin API calls and the reading of a flag's model routing (no Pulumi import);
- routing_report: the read-only migration helper (a stack environment's live routing, a snippet to paste);
- http: the JSON client (timeouts, safe retries, JSON-only answers, redaction); props: property-bag helpers.

Provider classes live in importable modules on purpose: dill pickles them BY REFERENCE into each resource's
`__provider` property, so the provider host (`python -m pulumi.dynamic`, run from the project root) imports
today's code, and module-level state (the successor registry in `kindo_model`) is shared by every resource of
one deployment, which the engine serves from one host process.
"""
