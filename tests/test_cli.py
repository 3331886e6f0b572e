"""The CLI as a user runs it: exit codes 0/1/2, JSON shape, messages that say where."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import base_config, model

ROOT = Path(__file__).resolve().parent.parent
SERVER_KEYS = {"name", "gpu", "gpuMemoryGiB", "gpusPerReplica", "tensorParallelSize", "maxModelLen", "maxContextThatFits",
               "fits", "weightsGiB", "kvBytesPerToken", "instanceType", "args"}


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "planner", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def write_stack(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"kindo-models:{k}": v for k, v in raw.items()}}))
    return path


def test_dev_stack_plans_with_exit_0_and_json_shape() -> None:
    result = run("plan", "--stack", "dev", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["stack"] == "dev" and out["ok"] is True
    assert {"findings", "models", "flags", "servers"} <= set(out)
    for server in out["servers"]:
        assert SERVER_KEYS <= set(server)
    for finding in out["findings"]:
        assert set(finding) == {"severity", "code", "subject", "message"}
        assert finding["severity"] in ("error", "warning", "info")
    assert all({"litellmModelName", "flags"} <= set(m) for m in out["models"])
    assert out["flags"]["EMBEDDING_MODELS"] == ["bge-m3"]


def test_human_output_shows_tables_and_findings() -> None:
    result = run("plan", "--stack", "prod")
    assert result.returncode == 0, result.stderr
    for text in ("vLLM servers", "vLLM command lines", "GPU pools", "Unleash flags", "Catalog (Kindo Models page)",
                 "gpt-oss-120b", "Budget", "OK stack prod"):
        assert text in result.stdout


def test_errors_exit_1_and_name_the_model(tmp_path: Path) -> None:
    raw = base_config()
    model(raw, "bge-m3")["vllm"]["gpuPool"] = "nowhere"
    result = run("plan", "--config-file", str(write_stack(tmp_path, raw)), "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    assert {(f["code"], f["subject"]) for f in out["findings"] if f["severity"] == "error"} == {("unknown-pool", "bge-m3")}
    human = run("plan", "--config-file", str(write_stack(tmp_path, raw)))
    assert human.returncode == 1 and "unknown-pool" in human.stdout and "ERRORS" in human.stdout


def test_missing_file_exits_2_with_the_path(tmp_path: Path) -> None:
    result = run("plan", "--config-file", str(tmp_path / "Pulumi.nope.yaml"))
    assert result.returncode == 2
    assert "Pulumi.nope.yaml: no such file" in result.stderr and "Traceback" not in result.stderr


def test_unknown_stack_exits_2() -> None:
    result = run("plan", "--stack", "staging")
    assert result.returncode == 2 and "Pulumi.staging.yaml" in result.stderr


def test_yaml_syntax_error_exits_2_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  kindo-models:models:\n    - litellmModelName: a\n   bad: [\n")
    result = run("plan", "--config-file", str(path), "--json")
    assert result.returncode == 2
    out = json.loads(result.stdout)
    (finding,) = out["findings"]
    assert out["ok"] is False and f"{path}:4:" in finding["message"] and "Traceback" not in result.stderr


def test_non_mapping_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.list.yaml"
    path.write_text("- just\n- a list\n")
    result = run("plan", "--config-file", str(path))
    assert result.returncode == 2 and "mapping" in result.stderr


def test_stack_is_found_from_a_project_directory(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: kindo-models\nruntime: python\n")
    write_stack(tmp_path, base_config())
    result = run("plan", "--stack", "test", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["stack"] == "test"


# ---------------------------------------------------------------- every form the README shows


def script(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / "plan"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_scripts_plan_help_lists_the_forms() -> None:
    result = script("--help")
    assert result.returncode == 0, result.stderr
    for text in ("STACK | FILE", "--config-file PATH", "--stack NAME", "--json", "scripts/plan"):
        assert text in result.stdout


def test_scripts_plan_json_alone_plans_dev() -> None:
    result = script("--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "dev"


def test_scripts_plan_stack_then_json() -> None:
    result = script("prod", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "prod"


def test_scripts_plan_takes_a_file_by_option_or_by_path(tmp_path: Path) -> None:
    by_option = script("--config-file", "Pulumi.prod.yaml", "--json")
    by_path = script("Pulumi.dev.yaml", "--json")
    elsewhere = script(str(write_stack(tmp_path, base_config())), "--json", cwd=tmp_path)
    assert (by_option.returncode, by_path.returncode, elsewhere.returncode) == (0, 0, 0), by_path.stderr
    assert json.loads(by_option.stdout)["stack"] == "prod" and json.loads(by_path.stdout)["stack"] == "dev"
    assert json.loads(elsewhere.stdout)["stack"] == "test"


def test_a_stack_named_twice_is_a_usage_error() -> None:
    result = run("plan", "dev", "--stack", "prod")
    assert result.returncode == 2 and "name the stack once" in result.stderr and "Traceback" not in result.stderr


def test_python_m_planner_without_its_packages_says_how_to_run_it(tmp_path: Path) -> None:
    # A python that has none of the planner's packages: a bare venv (no site-packages of ours).
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "planner", "plan", "dev"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "scripts/plan" in lines[0] and "is missing" in lines[0]


def test_a_closed_pipe_ends_quietly() -> None:
    for args in (("plan", "prod"), ("plan", "prod", "--json")):
        process = subprocess.Popen([sys.executable, "-m", "planner", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"})
        assert process.stdout is not None and process.stderr is not None
        process.stdout.read(20)  # like `| head -c 20`: read a little, then go away
        process.stdout.close()
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=60) in (0, 141) and "Traceback" not in stderr and "BrokenPipe" not in stderr


# ---------------------------------------------------------------- one JSON shape


def test_unreadable_file_gets_the_documented_json_shape(tmp_path: Path) -> None:
    result = run("plan", "--config-file", str(tmp_path / "Pulumi.nope.yaml"), "--json")
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert out == {"stack": "nope", "ok": False, "findings": out["findings"], "models": [], "flags": {}, "servers": [],
                   "pools": [], "catalog": []}
    (finding,) = out["findings"]
    assert finding["severity"] == "error" and "unreadable" in finding["code"]
    assert finding["subject"] == str(tmp_path / "Pulumi.nope.yaml") and "no such file" in finding["message"]
    planned = json.loads(run("plan", "dev", "--json").stdout)
    assert set(out) == set(planned)


def test_summary_counts_read_right() -> None:
    from planner.findings import error, info, warning
    from tests.conftest import plan_of

    plan = plan_of(base_config())
    plan.findings = [error("a", "x", "m"), warning("b", "x", "m"), info("c", "x", "m")]
    assert plan.summary().endswith("; 1 error, 1 warning, 1 info")
    plan.findings = [info("c", "x", "m"), info("d", "x", "m")]
    assert plan.summary().endswith("; 0 errors, 0 warnings, 2 info")
    assert "3 models, 1 vLLM server, 2 GPU pools" in plan.summary()


# ---------------------------------------------------------------- human output at any width


def human(*args: str, columns: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    if columns:
        env["COLUMNS"] = columns
    result = subprocess.run([sys.executable, "-m", "planner", "plan", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


def test_piped_output_honours_columns_and_defaults_to_80() -> None:
    assert max(len(line) for line in human("prod", columns="80").splitlines() if "vllm serve" not in line
               and "pulumi " not in line) <= 80
    assert max(len(line) for line in human("prod", columns=None).splitlines() if "vllm serve" not in line
               and "pulumi " not in line) <= 80
    wide = human("prod", columns="250")
    assert "┏" in wide.splitlines()[1] and max(len(line) for line in wide.splitlines()) > 120  # tables at 250


@pytest.fixture(scope="module")
def prod_plan():
    from planner.config import load_settings
    from planner.plan import make_plan

    return make_plan(*load_settings(ROOT / "Pulumi.prod.yaml"))


def rendered(plan, width: int) -> str:
    """What print_plan writes on a console of that width (a pipe or a terminal alike)."""
    from planner.report import PlanConsole, print_plan

    buffer = io.StringIO()
    print_plan(plan, PlanConsole(file=buffer, width=width, highlight=False, color_system=None))
    return buffer.getvalue()


@pytest.mark.parametrize("width", [60, 80, 120, 250])
def test_nothing_is_truncated_at_any_width(prod_plan, width: int) -> None:
    out = rendered(prod_plan, width)
    assert "…" not in out
    flat, unfolded = " ".join(out.split()), out.replace("\n", "")  # folding splits a value, never drops a character
    for server in prod_plan.servers:
        for value in (server.name, server.model, f"{server.maxModelLen:,}", f"{server.maxContextThatFits:,}"):
            assert value in flat or value in unfolded, (width, value)
    for model in prod_plan.models:
        assert model.litellmModelName in flat or model.litellmModelName in unfolded, (width, model.litellmModelName)


@pytest.mark.parametrize("width", [60, 80, 200])
def test_commands_are_never_wrapped(prod_plan, width: int) -> None:
    from tests.conftest import plan_of

    raw = base_config()
    raw["credentials"] = {}  # every credential missing: findings with `pulumi config set ...` commands
    del raw["kindoApiKey"]
    plan = plan_of(raw)
    lines = [line.strip() for line in rendered(plan, width).splitlines()]
    commands = [c for f in plan.findings for c in re.findall(r"`(pulumi [^`]+)`", f.message) if len(c.split()) > 2]
    assert len(commands) >= 3
    for command in commands:
        assert command in lines, (width, command)  # whole, alone on its line: copy and paste it
    prod_lines = [line.strip() for line in rendered(prod_plan, width).splitlines()]
    for server in prod_plan.servers:
        assert shlex.join(["vllm", "serve", *server.args]) in prod_lines


def test_pool_table_and_command_lines_show_what_the_plan_decided(prod_plan) -> None:
    out = rendered(prod_plan, 250)
    assert "GPU pools" in out and "┏" in out
    for pool in prod_plan.pools:
        assert pool.name in out and pool.instanceType in out and f"{pool.diskSizeGiB}" in out
    for server in prod_plan.servers:
        assert server.image in out and server.url in out


def test_every_scripts_plan_form_in_the_readme_works() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    forms = sorted(set(re.findall(r"`(scripts/plan(?: [^`<>]*)?)`", readme)) | {"scripts/plan"})
    assert len(forms) >= 7, forms
    for form in forms:
        args = shlex.split(form)[1:]
        result = script(*[arg if arg != "PATH" else "Pulumi.prod.yaml" for arg in args])
        assert result.returncode == 0 and "Traceback" not in result.stderr, (form, result.stderr[-500:])
    assert ".venv/bin/python -m planner plan dev" in readme
    assert run("plan", "dev").returncode == 0


def test_a_named_command_stays_in_the_sentence_and_a_command_to_run_gets_its_line() -> None:
    from planner.report import split_commands

    prose, commands = split_commands("`pulumi up` cannot register models without it. Run "
                                     "`pulumi config set --secret kindo-models:kindoApiKey <value>`.")
    assert prose == "`pulumi up` cannot register models without it. Run the command below."
    assert commands == ["pulumi config set --secret kindo-models:kindoApiKey <value>"]
    prose, commands = split_commands("Store it with `pulumi config set --path --secret a.b <key>` and write "
                                     "`apiKey: {credential: b}`, or `pulumi env open org/env` to see it.")
    assert prose == "Store it with command 1 below and write `apiKey: {credential: b}`, or command 2 below to see it."
    assert len(commands) == 2
