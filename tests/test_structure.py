"""The code's shape holds what issue 9 asked: one direction of imports, small functions, a standalone checker."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("planner", "components", "dynamic_providers", "checker", "policy")
# Where every function stays within MAX_FUNCTION_LINES (a long function hides decisions that deserve names).
SMALL_FUNCTION_PLACES = ("planner", "components", "dynamic_providers", "checker", "program.py")
MAX_FUNCTION_LINES = 60


def project_modules() -> dict[str, Path]:
    modules = {"program": ROOT / "program.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports anywhere (module level, inside functions, under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in modules}
    return found


def test_no_import_circle_among_the_projects_modules() -> None:
    modules = project_modules()
    graph = {name: imported(path, modules) - {name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            assert cycle is None, " -> ".join(cycle)
    assert "planner.report" not in graph["planner.cli"] or "planner.cli" not in graph["planner.report"]


# The command-line tool that reads Unleash for a migration is a caller of the Unleash client, like the program: the
# one planner module allowed to reach it (lazily, inside the command).
CALLS_THE_UNLEASH_CLIENT = {"planner.migration"}


def test_the_planner_and_the_checker_import_no_pulumi_and_nothing_downstream() -> None:
    modules = project_modules()
    for name, path in modules.items():
        if name in CALLS_THE_UNLEASH_CLIENT:
            assert imported(path, modules) - {"dynamic_providers", "dynamic_providers.routing_report"} <= {
                m for m in modules if m.startswith("planner")}, name
            continue
        if name.split(".")[0] in ("planner", "checker"):
            downstream = {m for m in imported(path, modules) if m.split(".")[0] in ("components", "dynamic_providers", "program")}
            assert not downstream, (name, downstream)
            assert "import pulumi" not in path.read_text(encoding="utf-8"), name


def test_components_import_only_the_plans_types_from_the_planner() -> None:
    """Components render the plan: they take its types and decide nothing, so they call no planner function."""
    modules = project_modules()
    allowed = {"planner.servers", "planner.pools", "planner.model_plan", "planner.plan", "planner.config", "planner.names",
               "planner.storage", "planner.preflight", "planner.images", "planner.weights",
               "planner.scheduling", "planner.observability"}
    for name, path in modules.items():
        if name.startswith("components."):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("planner"):
                    assert node.module in allowed, (name, node.module)
                    for alias in node.names:
                        assert alias.name[0].isupper() or alias.name.isupper(), (name, node.module, alias.name)


def test_no_function_is_longer_than_sixty_lines() -> None:
    long: list[str] = []
    for place in SMALL_FUNCTION_PLACES:
        paths = [ROOT / place] if place.endswith(".py") else sorted((ROOT / place).rglob("*.py"))
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_shipped_checker_imports_only_the_standard_library() -> None:
    path = ROOT / "checker" / "endpoint_checker.py"
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import needs the package"
            tops.add((node.module or "").split(".")[0])
    assert tops and tops <= set(sys.stdlib_module_names) | {"__future__"}, tops - set(sys.stdlib_module_names)
