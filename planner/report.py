"""Human output of a plan: servers, their vLLM command lines, GPU pools, flags, the catalog view, then findings.

Nothing is cut at any width. The width is the terminal's, else $COLUMNS, else 80 (rich's rule). A table is printed
as a table when every column can keep its longest word; otherwise each row becomes a short record, so numbers and
model names are never truncated. Commands (the vLLM command lines, the `pulumi config set ...` of a finding) are
printed whole on their own lines and never wrapped by this program, so they copy and paste as they are.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from planner.findings import Finding
from planner.plan import Plan
from planner.pools import PlannedPool
from planner.servers import PlannedServer

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
# A backticked span of three words or more that starts with one of these is a command: it goes on its own line.
COMMAND_WORDS = ("pulumi ", "scripts/", "python ", "python3 ", "kubectl ", "pip ", "esc ", "export ", "vllm ")
INDENT = "    "


class PlanConsole(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 (the exit code of a plan with errors); planner/__main__.py ends quietly with 141.
        raise BrokenPipeError


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool = False


def fits(console: Console, table: Table) -> bool:
    """Whether the table can be printed without cutting a word: every column at least as wide as its longest word."""
    # Measured without the console's width: rich clamps a measurement to the width it is given.
    return Measurement.get(console, console.options.update_width(1_000_000), table).minimum <= console.width


def print_table(console: Console, title: str, columns: list[Column], rows: list[list[str]]) -> None:
    """A table when it fits the width, else one record per row (first cell as its heading). Cells are rich markup."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left", overflow="fold",
                         no_wrap=column.numeric)
    for row in rows:
        table.add_row(*row, end_section=False)
    if fits(console, table):
        console.print(table)
        return
    console.print(Text(title, style="italic"))
    for row in rows:
        console.print(Text.from_markup(row[0].replace("\n", "  "), style="bold"), overflow="fold")
        for column, cell in zip(columns[1:], row[1:]):
            console.print(Text.from_markup(f"{INDENT}{escape(column.header)}: ") + Text.from_markup(cell.replace("\n", ", ")),
                          overflow="fold")
    console.print()


# --------------------------------------------------------------------------------------------- sections


SERVER_COLUMNS = [Column("server / model"), Column("pool / instance"), Column("GPUs"), Column("TP", True),
                  Column("replicas", True), Column("max model len", True), Column("max context that fits", True),
                  Column("KV cache tokens", True), Column("max concurrency", True), Column("weights GiB", True),
                  Column("KV GiB/GPU", True)]


def server_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for s in plan.servers:
        # What vLLM prints at start-up: `GPU KV cache size: N tokens`, `Maximum concurrency for L tokens per request: X`
        # (an encoder-only model keeps no KV cache: vLLM prints neither line)
        tokens = f"{s.kvCacheTokens:,}" if s.kvCacheTokens or not s.fits else "-"
        concurrency = "[bold red]does not fit[/]" if not s.fits else f"{s.maxConcurrency:.2f}x" if s.kvCacheTokens else "-"
        rows.append([f"{escape(s.name)}\n[dim]{escape(s.model)}[/]", f"{escape(s.pool)} / {s.instanceType}",
                     f"{s.gpusPerReplica}x {s.gpu}", str(s.tensorParallelSize), str(s.replicas), f"{s.maxModelLen:,}",
                     f"{s.maxContextThatFits:,}", tokens, concurrency, f"{s.weightsGiB:.1f}", f"{s.kvCacheGiB:.1f}"])
    return rows


def command_line(server: PlannedServer) -> str:
    """The server's command as the container runs it (the image's `vllm serve` and the plan's arguments)."""
    return shlex.join(["vllm", "serve", *server.args])


def print_server_details(console: Console, plan: Plan) -> None:
    console.print(Text("vLLM command lines", style="italic"))
    for s in plan.servers:
        console.print(Text(f"{s.name}", style="bold") + Text(f"  {s.image}, {s.replicas} replica"
                                                              f"{'s' if s.replicas != 1 else ''}, {s.url}"), overflow="fold")
        console.print(f"{INDENT}per GPU: budget {s.budgetGiB:.1f} GiB = weights {s.weightsGiB / s.tensorParallelSize:.1f}"
                      f" + runtime {s.runtimeGiB:.1f} + KV cache {s.kvCacheGiB:.1f}; {s.kvBytesPerToken:,} KV bytes per "
                      "token", overflow="fold")
        print_command(console, command_line(s))
    console.print()


POOL_COLUMNS = [Column("pool"), Column("instance / GPUs"), Column("min", True), Column("desired", True),
                Column("max", True), Column("nodes needed", True), Column("rollout", True), Column("capacity"),
                Column("disk GiB", True), Column("servers")]


def rollout_cell(pool: PlannedPool) -> str:
    """What a zero-downtime change of the pool's largest server adds: its GPUs, and the nodes the pool then needs."""
    if not pool.rolloutGpus:
        return "-"
    return f"+{pool.rolloutGpus} GPU{'s' if pool.rolloutGpus > 1 else ''}\n{pool.rolloutNodes} nodes"


def pool_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for p in plan.pools:
        capacity = p.capacityType + (f"\n{p.capacityReservationId}" if p.capacityReservationId else "")
        gpus = f"{p.gpusPerNode}x {p.gpu}" if p.gpu else "unknown"
        rows.append([escape(p.name), f"{p.instanceType}\n{gpus}", str(p.minSize), str(p.desiredSize), str(p.maxSize),
                     str(p.nodesNeeded), rollout_cell(p), escape(capacity), str(p.diskSizeGiB),
                     escape("\n".join(p.servers)) or "-"])
    return rows


def flag_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for key, models in plan.flags.items():
        requirement = plan.flagSpecs[key].requirement if key in plan.flagSpecs else "?"
        shown = escape("\n".join(models)) if models else ("[bold red]none[/]" if requirement == "required" else "-")
        rows.append([key, requirement, shown])
    return rows


CATALOG_COLUMNS = [Column("model"), Column("provider"), Column("category"), Column("context", True),
                   Column("max output", True), Column("credential"), Column("status"), Column("flags")]


def catalog_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for row in plan.catalog():
        status = escape(row.status) if row.status == "ok" else f"[yellow]{escape(row.status)}[/]"
        rows.append([f"{escape(row.model)}\n[dim]{escape(row.modelId)}[/]", escape(row.provider), row.category,
                     f"{row.context:,}" if row.context else "-", f"{row.maxOutput:,}" if row.maxOutput else "-",
                     escape(row.credential), status, escape("\n".join(row.flags)) or "-"])
    return rows


# --------------------------------------------------------------------------------------------- findings


def print_command(console: Console, command: str) -> None:
    """A command on its own line, never wrapped or cropped here (a long one runs past the width: copy it whole)."""
    console.print(Text(INDENT + command), no_wrap=True, overflow="ignore", crop=False, soft_wrap=True)


def split_commands(message: str) -> tuple[str, list[str]]:
    """The message with each backticked command replaced by a pointer, and the commands in order."""
    commands: list[str] = []

    def pointer(match: re.Match[str]) -> str:
        text = match.group(1)
        if not text.startswith(COMMAND_WORDS) or len(text.split()) < 3:  # `pulumi up` is named, not to be run
            return match.group(0)
        commands.append(text)
        return "the command below" if len(commands) == 1 else f"command {len(commands)} below"

    prose = re.sub(r"`([^`]+)`", pointer, message)
    if len(commands) > 1:
        prose = prose.replace("the command below", "command 1 below", 1)
    return prose, commands


def print_finding(console: Console, finding: Finding) -> None:
    prose, commands = split_commands(finding.message)
    head = Text(f"{finding.severity:<7} ", style=SEVERITY_STYLE[finding.severity]) + Text(f"{finding.code} ")
    console.print(head + Text(finding.subject, style="bold") + Text(f": {prose}"), overflow="fold")
    for command in commands:
        print_command(console, command)


def print_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or PlanConsole(highlight=False)
    if plan.servers:
        print_table(console, "vLLM servers", SERVER_COLUMNS, server_rows(plan))
        print_server_details(console, plan)
    if plan.pools:
        print_table(console, "GPU pools", POOL_COLUMNS, pool_rows(plan))
    print_table(console, "Unleash flags", [Column("flag"), Column("requirement"), Column("models")], flag_rows(plan))
    print_table(console, "Catalog (Kindo Models page)", CATALOG_COLUMNS, catalog_rows(plan))
    for finding in plan.findings:
        print_finding(console, finding)
    console.print(Text("OK " if plan.ok else "ERRORS ", style="green" if plan.ok else "bold red") + Text(plan.summary()))
