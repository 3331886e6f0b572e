"""The kindo-models policy pack: the planner's rules, enforced on any Pulumi program that uses our components.

`rules` holds the checks as plain functions (props in, messages out; it only reads pulumi_policy's property
proxies and registers nothing), `policies` wraps them as pulumi_policy policies. The planner itself is imported, never copied: see `planner_path`.
"""
