"""`python -m planner plan [STACK | FILE] [--stack NAME | --config-file PATH] [--json]`
`python -m planner verify --stack NAME (--model LITELLM_NAME | --all) [--base-url URL] [--api-key KEY] [--json] ...`

plan exit codes: 0 the plan has no errors; 1 it has errors; 2 the file cannot be read or parsed.
verify exit codes: 0 every check passed (skips allowed); 1 a check failed; 2 unreadable stack, unknown model or bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from planner.findings import Finding
from planner.loading import StackFileError, read_stack_document, stack_name_from_path
from planner.migration import add_routing_parser, run_routing

# planner.config (pydantic) and planner.plan are imported when a file has been read: a file that cannot be read
# is refused before they load, in a tenth of the time.

if TYPE_CHECKING:
    from checker.endpoint_checker import Summary


EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2
UNREADABLE_CODE = "stack-file-unreadable"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def stack_path(stack: str) -> Path:
    """Pulumi.<stack>.yaml in the project directory: the current one if it is a Pulumi project, else this repo."""
    root = Path.cwd() if (Path.cwd() / "Pulumi.yaml").exists() else PROJECT_ROOT
    return root / f"Pulumi.{stack}.yaml"


PLAN_EPILOG = """STACK or FILE: a stack name (reads Pulumi.<STACK>.yaml from the project directory) or a path to a stack
file (anything with a / or ending in .yaml/.yml), the same as --stack / --config-file.
scripts/plan [STACK | FILE] [--json] runs this with the project's .venv, installing the planner's packages on
first use; with neither it plans the dev stack.
exit codes: 0 no errors, 1 the plan has errors, 2 the file cannot be read or parsed (the message says where)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m planner", description="Plan and check a kindo-models stack without Pulumi.")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="validate a stack and show what it would deploy",
                               description="Validate a kindo-models stack and show what it would deploy.",
                               epilog=PLAN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan.add_argument("target", nargs="?", metavar="STACK | FILE", help="a stack name or a stack file")
    source = plan.add_mutually_exclusive_group()
    source.add_argument("--stack", metavar="NAME", help="stack name: reads Pulumi.<NAME>.yaml from the project directory")
    source.add_argument("--config-file", metavar="PATH", type=Path,
                        help="a stack file (or a bare mapping of kindo-models keys)")
    plan.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    plan.set_defaults(command_parser=plan)
    add_verify_parser(commands)
    add_routing_parser(commands)
    return parser


def looks_like_a_path(target: str) -> bool:
    return "/" in target or target.endswith((".yaml", ".yml")) or Path(target).is_file()


def plan_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, str | None]:
    """The stack file to read and the stack name (None: from the file's name), from the target or the options."""
    if args.target and (args.stack or args.config_file):
        parser.error(f"name the stack once: {args.target!r} and --stack/--config-file both given")
    if args.target:
        if looks_like_a_path(args.target):
            return Path(args.target), None
        return stack_path(args.target), args.target
    if args.config_file:
        return args.config_file, None
    if args.stack:
        return stack_path(args.stack), args.stack
    parser.error("name a stack (dev, prod, ...) or a stack file: python -m planner plan dev")
    raise AssertionError  # parser.error exits


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in (0, 1], e.g. 0.9")
    return value


def add_verify_parser(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser("verify", help="run the runbook's endpoint checks against a model's server",
                                 description="DNS, TCP, /v1/models, a completion, tool calling, a near-limit context "
                                             "and embeddings, as the runbook's 'Verifying Your Model' does by hand.")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="stack name: reads Pulumi.<NAME>.yaml from the project directory")
    source.add_argument("--config-file", type=Path, help="a stack file (or a bare mapping of kindo-models keys)")
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="the model's litellmModelName")
    which.add_argument("--all", action="store_true", help="every model of the stack")
    verify.add_argument("--base-url", help="OpenAI-compatible base URL to use instead of the stack's, e.g. "
                                           "http://127.0.0.1:8000/v1 through kubectl port-forward")
    verify.add_argument("--api-key", help="bearer key instead of $VLLM_API_KEY or the model's ${ENV} reference "
                                          "(never printed)")
    verify.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    verify.add_argument("--timeout", type=positive_seconds, default=60.0,
                        help="seconds for each whole answer (default 60; a long prefill needs time)")
    verify.add_argument("--connect-timeout", type=positive_seconds, default=5.0,
                        help="seconds for the DNS lookup and the TCP connect, each (default 5)")
    verify.add_argument("--context-fraction", type=fraction, default=0.9,
                        help="size of the context-length request, as a fraction of the max model length (default 0.9)")


def unreadable_plan(stack: str, problem: StackFileError) -> dict[str, object]:
    """`plan --json` for a file that cannot be read: the documented shape, with one error finding that says where."""
    finding = Finding("error", UNREADABLE_CODE, problem.path, str(problem))
    return {"stack": stack, "ok": False, "findings": [finding.to_json()], "models": [], "flags": {}, "servers": [],
            "pools": [], "catalog": []}


def run_plan(args: argparse.Namespace, path: Path, stack: str | None) -> int:
    try:
        document = read_stack_document(path)
        from planner.config import settings_from_document

        settings, findings = settings_from_document(document, path, stack)
    except StackFileError as exc:
        if args.json:
            print(json.dumps(unreadable_plan(stack or stack_name_from_path(path), exc), separators=(",", ":")))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    from planner.plan import make_plan

    plan = make_plan(settings, findings)
    if args.json:
        # Compact on purpose: indentation switches json to its pure-Python encoder (3x slower on 1,000 models).
        print(json.dumps(plan.to_json(), separators=(",", ":")))
    else:
        from planner.report import print_plan  # rich is only imported for people

        print_plan(plan)
    return EXIT_OK if plan.ok else EXIT_ERRORS


def verify_unusable(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"stack": args.stack or str(args.config_file), "ok": False, "error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_UNREADABLE


def run_verify(args: argparse.Namespace) -> int:
    from checker import endpoint_checker as checker
    from planner import targets
    from planner.config import ConfigFileError, load_settings
    from planner.plan import make_plan

    if args.all and args.base_url:
        return verify_unusable(args, "--base-url names one endpoint: use it with --model, not --all")
    if args.base_url:
        try:
            checker.split_base_url(args.base_url)
        except ValueError as exc:
            return verify_unusable(args, str(exc))
    path = args.config_file if args.config_file else stack_path(args.stack)
    try:
        settings, findings = load_settings(path, args.stack)
    except ConfigFileError as exc:
        return verify_unusable(args, str(exc))
    # The endpoint checks do not depend on the plan being free of errors (a missing Unleash flag does not make a
    # server wrong), so a plan with errors is still verified; `plan` reports those.
    plan = make_plan(settings, findings)
    try:
        chosen = targets.targets_for(plan.models, plan.servers, plan.stack, None if args.all else [args.model],
                                     base_url=args.base_url, api_key=args.api_key, environ=os.environ)
    except targets.UnknownModel as exc:
        return verify_unusable(args, str(exc))
    options = checker.Options(connectTimeout=args.connect_timeout, readTimeout=args.timeout,
                              contextFraction=args.context_fraction)
    result = checker.run_all(chosen, options)
    if args.json:
        print(json.dumps({"stack": plan.stack, **result.to_json()}, separators=(",", ":")))
    else:
        print_verify(plan.stack, result)
    return EXIT_OK if result.ok else EXIT_ERRORS


STATUS_STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[dim]skip[/]"}


def print_verify(stack: str, result: Summary) -> None:
    from rich.console import Console  # rich is only imported for people
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title="Endpoint checks", title_justify="left")
    for column in ("model", "check", "result", "detail / diagnosis"):
        table.add_column(column)
    for report in result.reports:
        # Server text can hold [brackets]: escaped, so rich prints it instead of reading it as markup.
        model = escape(report.name) + (f"\n[dim]{escape(report.baseUrl)}[/]" if report.baseUrl else "")
        if report.skipped:
            table.add_row(model, "-", STATUS_STYLE["skip"], escape(report.skipped), end_section=True)
            continue
        for index, check in enumerate(report.results):
            text = escape(check.detail) + (f"\n[red]{escape(check.diagnosis)}[/]" if check.diagnosis else "")
            table.add_row(model if index == 0 else "", check.check, STATUS_STYLE[check.status], text,
                          end_section=index == len(report.results) - 1)
    console.print(table)
    keys = sorted({r.keySource for r in result.reports if not r.skipped})
    console.print(f"key from: {', '.join(keys) or '-'}", highlight=False)
    console.print(("[green]OK[/] " if result.ok else "[bold red]FAILED[/] ") + verify_summary(stack, result), highlight=False)


def verify_summary(stack: str, result: Summary) -> str:
    checked = sum(1 for r in result.reports if not r.skipped)
    skipped = len(result.reports) - checked
    return (f"stack {stack}: {checked} models checked, {skipped} skipped; {result.count('pass')} checks passed, "
            f"{result.count('fail')} failed, {result.count('skip')} skipped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "plan":
        path, stack = plan_source(args.command_parser, args)
        return run_plan(args, path, stack)
    if args.command == "verify":
        return run_verify(args)
    if args.command == "routing":
        return run_routing(args, stack_path)
    return EXIT_UNREADABLE  # argparse rejects unknown commands before this

