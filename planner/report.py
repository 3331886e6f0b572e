"""Human output of a plan: rich tables for servers, flags, the catalog view, then findings."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from planner.plan import Plan

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def servers_table(plan: Plan) -> Table:
    table = Table(title="vLLM servers", title_justify="left")
    numeric = ("TP", "replicas", "max model len", "max context that fits", "KV cache tokens", "max concurrency",
               "weights GiB", "KV GiB/GPU")
    for column in ("server / model", "pool / instance", "GPU", *numeric):
        table.add_column(column, justify="right" if column in numeric else "left")
    for s in plan.servers:
        # What vLLM prints at start-up: `GPU KV cache size: N tokens`, `Maximum concurrency for L tokens per request: X`
        # (an encoder-only model keeps no KV cache: vLLM prints neither line)
        tokens = f"{s.kvCacheTokens:,}" if s.kvCacheTokens or not s.fits else "-"
        concurrency = "[bold red]does not fit[/]" if not s.fits else f"{s.maxConcurrency:.2f}x" if s.kvCacheTokens else "-"
        table.add_row(f"{s.name}\n[dim]{s.model}[/]", f"{s.pool} / {s.instanceType}", f"{s.gpusPerReplica}x {s.gpu}",
                      str(s.tensorParallelSize), str(s.replicas), f"{s.maxModelLen:,}", f"{s.maxContextThatFits:,}",
                      tokens, concurrency, f"{s.weightsGiB:.1f}", f"{s.kvCacheGiB:.1f}")
    return table


def flags_table(plan: Plan) -> Table:
    table = Table(title="Unleash flags", title_justify="left")
    table.add_column("flag")
    table.add_column("requirement")
    table.add_column("models")
    specs = plan.flagSpecs
    for key, models in plan.flags.items():
        requirement = specs[key].requirement if key in specs else "?"
        shown = ", ".join(models) if models else ("[bold red]none[/]" if requirement == "required" else "-")
        table.add_row(key, requirement, shown)
    return table


def catalog_table(plan: Plan) -> Table:
    table = Table(title="Catalog (Kindo Models page)", title_justify="left")
    for column in ("model", "provider", "category", "context", "max output", "credential", "status", "flags"):
        table.add_column(column, justify="right" if column in ("context", "max output") else "left")
    for row in plan.catalog():
        status = row.status if row.status == "ok" else f"[yellow]{row.status}[/]"
        table.add_row(f"{row.model}\n[dim]{row.modelId}[/]", row.provider, row.category,
                      f"{row.context:,}" if row.context else "-", f"{row.maxOutput:,}" if row.maxOutput else "-",
                      row.credential, status, "\n".join(row.flags) or "-")
    return table


def print_plan(plan: Plan, console: Console | None = None) -> None:
    # Piped output (CI logs, `| less`) gets a wide page instead of rich's 80-column default.
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    if plan.servers:
        console.print(servers_table(plan))
    console.print(flags_table(plan))
    console.print(catalog_table(plan))
    for finding in plan.findings:
        style = SEVERITY_STYLE[finding.severity]
        console.print(f"[{style}]{finding.severity:<7}[/] {finding.code} [bold]{finding.subject}[/]: {finding.message}",
                      highlight=False)
    console.print(("[green]OK[/] " if plan.ok else "[bold red]ERRORS[/] ") + plan.summary(), highlight=False)
