"""`python -m planner routing --stack NAME`: the read-only migration helper.

Moving an installation that exists (set up by the runbook or `kindo install --apply`) starts from the truth: what
the stack's Unleash environment routes today. This command reads it (GET requests only, through
dynamic_providers/routing_report.py) for every model flag the stack knows, and prints a `kindo-models:models` snippet
with each model's `kindoModelId` and `flags`, to paste into the stack before its first `pulumi up`.

The connection comes from the stack (unleash.url, project, environment) and the token from UNLEASH_API_TOKEN: a
`secure:` value in the stack file can only be decrypted by Pulumi. Exit codes: 0 read, 2 unusable stack or
arguments, 3 Unleash could not be read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from planner.names import PROJECT

TOKEN_ENV = "UNLEASH_API_TOKEN"
EXIT_OK, EXIT_UNUSABLE, EXIT_UNREACHABLE = 0, 2, 3


def add_routing_parser(commands: argparse._SubParsersAction) -> None:
    routing = commands.add_parser(
        "routing", help="read the live Unleash routing of a stack's environment and print a stack snippet",
        description="Read which models each Kindo flag carries today in the stack's Unleash environment (GET requests "
                    "only) and print a kindo-models:models snippet with kindoModelId and flags, to adopt an existing "
                    f"installation. The token comes from ${TOKEN_ENV}.")
    source = routing.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="stack name: reads Pulumi.<NAME>.yaml from the project directory")
    source.add_argument("--config-file", type=Path, help="a stack file (or a bare mapping of kindo-models keys)")


def run_routing(args: argparse.Namespace, stack_path: Callable[[str], Path]) -> int:
    from planner.config import ConfigFileError, load_settings
    from planner.plan import make_plan

    path = args.config_file if args.config_file else stack_path(args.stack)
    try:
        settings, findings = load_settings(path, args.stack)
    except ConfigFileError as exc:
        return unusable(str(exc))
    if settings.unleash is None:
        return unusable(f"{path}: {PROJECT}:unleash {{url, project, environment}} is missing or invalid; run "
                        f"`python -m planner plan` to see why.")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return unusable(f"set {TOKEN_ENV} to an Unleash admin token (the stack's {PROJECT}:unleashApiToken is encrypted "
                        "for Pulumi); nothing is written, only read.")
    plan = make_plan(settings, findings)
    return read_and_print(settings.unleash.url, token, settings.unleash.project, settings.unleash.environment,
                          sorted(plan.flagSpecs), f"{PROJECT}/{settings.stack}")


def read_and_print(url: str, token: str, project: str, environment: str, flags: list[str], owner: str) -> int:
    # The Unleash client lives with the dynamic providers; this command is one of its callers, like the program.
    try:
        from dynamic_providers import routing_report
    except ImportError as exc:  # the planner's own packages do not include the HTTP client
        return unusable(f"the routing command needs the program's packages ({exc.name} is missing): "
                        "pip install -r requirements.txt, or run it as .venv/bin/python -m planner routing after scripts/test")

    try:
        routing = routing_report.read_routing(url, token, project, environment, flags)
    except Exception as exc:  # noqa: BLE001 - every failure of the read is reported as one line, never a traceback
        print(f"error: could not read the Unleash routing of {environment!r}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(routing_report.render_snippet(routing, owner), end="")
    return EXIT_OK


def unusable(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE
