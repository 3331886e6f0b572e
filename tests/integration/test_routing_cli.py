"""`python -m planner routing`: the migration helper as an operator runs it, against a REAL Unleash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.conftest import base_config
from tests.integration.test_routing_report import ENV, route
from tests.openai_double import closed_port

ROOT = Path(__file__).resolve().parents[2]


def stack_file(tmp_path: Path, url: str, project: str, flags: list[str]) -> Path:
    raw = base_config()
    raw["unleash"] = {"url": url, "project": project, "environment": ENV,
                      "flagRequirements": {flag: "optional" for flag in flags}}
    path = tmp_path / "Pulumi.migrate.yaml"
    path.write_text(yaml.safe_dump({"config": {f"kindo-models:{k}": v for k, v in raw.items()}}))
    return path


def routing(path: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "UNLEASH_API_TOKEN"}
    if token is not None:
        env["UNLEASH_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "planner", "routing", "--config-file", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_command_prints_what_the_flags_carry_as_a_snippet(unleash_server, unleash_project, tmp_path: Path) -> None:
    ns = unleash_project
    model = str(uuid.uuid4())
    route(unleash_server, ns, "TOOL_CALLING_MODELS", [model])
    path = stack_file(tmp_path, unleash_server.url, ns.project, [ns.name("TOOL_CALLING_MODELS")])
    result = routing(path, unleash_server.token)
    assert result.returncode == 0, result.stderr
    snippet = yaml.safe_load(result.stdout)
    [entry] = snippet["kindo-models:models"]
    assert entry["kindoModelId"] == model and entry["flags"] == [ns.name("TOOL_CALLING_MODELS")]
    assert unleash_server.token not in result.stdout + result.stderr


def test_without_a_token_or_a_reachable_unleash_it_says_so_in_one_line(tmp_path: Path) -> None:
    path = stack_file(tmp_path, f"http://127.0.0.1:{closed_port()}", "default", [])
    missing = routing(path, None)
    assert missing.returncode == 2 and "UNLEASH_API_TOKEN" in missing.stderr and "Traceback" not in missing.stderr
    unreachable = routing(path, "*:*.not-a-real-token")
    assert unreachable.returncode == 3 and "could not read the Unleash routing" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr and "not-a-real-token" not in unreachable.stderr
    assert json.dumps(unreachable.stderr)  # one readable message
