"""Hostile stack files: each exits 2, naming the file and line, within a second and 200 MB, with no traceback.

Each file is run through the real CLI in a fresh process; a small wrapper measures the wall time and the child's
peak RSS (getrusage RUSAGE_CHILDREN of a wrapper whose only child is the planner), so nothing else this test
session started counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from planner import loading
from planner.config import _shorten
from planner.loading import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, StackFileError, parse_yaml

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 1.0
RSS_MIB = 200

MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "seconds": time.perf_counter() - started, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "rss_mib": usage.ru_maxrss / 1024}))
"""


def measured(path: Path, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "planner", "plan", "--config-file", str(path), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(done.stdout)


def billion_laughs() -> str:
    """The classic alias bomb: 9 levels of 9 aliases, 387 million values from about 560 bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\nconfig:\n  kindo-models:models: *l8\n"


HOSTILE: dict[str, tuple[str, int, str]] = {
    # name: (file text, the line the error must name, what the message says)
    "alias bomb": (billion_laughs(), 6, "alias bomb"),
    "1,000 deep": ("config:\n  kindo-models:models: " + "[" * 1000 + "]" * 1000 + "\n", 2, "nested more than"),
    "100,000 deep": ("config:\n  kindo-models:models: " + "[" * 100_000 + "]" * 100_000 + "\n", 2, "nested more than"),
    "2,000 deep block": ("config:\n" + "".join(f"{' ' * (i + 2)}k{i}:\n" for i in range(2000)), 65, "nested more than"),
    "5,000-digit integer": ("config:\n  kindo-models:gpuPools:\n    - name: a\n      maxSize: " + "9" * 5000 + "\n", 4,
                            "a number of 5,000 characters"),
    "duplicate keys": ("config:\n  kindo-models:cluster: {name: a}\n  kindo-models:kindo: {}\n"
                       "  kindo-models:cluster: {name: b}\n", 4, "duplicate key 'kindo-models:cluster' (first on line 2)"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_exits_2_fast_naming_the_place(tmp_path: Path, name: str) -> None:
    text, line, says = HOSTILE[name]
    path = tmp_path / "Pulumi.hostile.yaml"
    path.write_text(text, encoding="utf-8")
    human, as_json = measured(path), measured(path, "--json")
    for run in (human, as_json):
        assert run["rc"] == 2, run
        assert "Traceback" not in run["stderr"], run["stderr"]
        assert run["seconds"] < SECONDS and run["cpu_seconds"] < SECONDS, f"{name}: {run['seconds']:.2f} s"
        assert run["rss_mib"] < RSS_MIB, f"{name}: {run['rss_mib']:.0f} MiB"
    if line:
        assert human["stderr"].startswith(f"error: {path}:{line}:") and says in human["stderr"], human["stderr"]
    (finding,) = json.loads(as_json["stdout"])["findings"]
    assert finding["code"] == "stack-file-unreadable" and finding["subject"] == str(path)
    assert finding["message"] == human["stderr"].removeprefix("error: ").strip()


def test_the_alias_bomb_is_refused_in_microseconds_not_after_expanding() -> None:
    text = billion_laughs()
    assert len(text.encode()) < 600
    with pytest.raises(StackFileError, match="alias bomb"):
        parse_yaml(text, Path("bomb.yaml"))


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.big.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: the size is what is refused, before any byte is read
    run = measured(path)
    assert run["rc"] == 2 and f"{MAX_FILE_BYTES:,} bytes" in run["stderr"] and run["seconds"] < SECONDS


@pytest.mark.parametrize(("text", "says"), [
    ("a: !!python/object:os.system [ls]\n", "tag"),
    ("a: *nothing\n", "names no anchor"),
    ("a: 1\n---\nb: 2\n", "second YAML document"),
    ("? [1, 2]\n: x\n", "plain value"),
    ("a: [1, 2\n", "not valid YAML"),
    ("a: &x [*x]\n", "names no anchor"),  # a structure that contains itself
])
def test_other_shapes_a_stack_file_never_has_are_refused_with_the_place(text: str, says: str) -> None:
    with pytest.raises(StackFileError, match=says) as refused:
        parse_yaml(text, Path("f.yaml"))
    assert refused.value.where.startswith("f.yaml:")


def test_limits_leave_room_for_real_stacks() -> None:
    # Merge keys work, explicit keys win; dates and numbers are YAML's; depth and counts well inside the limits.
    text = ("defaults: &d {instanceType: g6e.xlarge, maxSize: 2}\npools:\n  - <<: *d\n    name: a\n    maxSize: 4\n"
            "when: 2024-10-21\n")
    value = parse_yaml(text, Path("f.yaml"))
    assert value["pools"] == [{"instanceType": "g6e.xlarge", "maxSize": 4, "name": "a"}]
    assert str(value["when"]) == "2024-10-21"
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert parse_yaml(json.dumps(nested), Path("f.yaml")) == nested
    assert MAX_VALUES >= 10 * 30_000  # ten times the values of a 1,000-model stack


def test_the_value_limit_counts_every_value_and_every_alias_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_VALUES", 100)
    assert len(parse_yaml(json.dumps(list(range(98))), Path("f.yaml"))) == 98  # 98 values + the list itself
    with pytest.raises(StackFileError, match="more than 100 values"):
        parse_yaml(json.dumps(list(range(100))), Path("f.yaml"))
    with pytest.raises(StackFileError, match=r"f.yaml:3:\d+: alias \*a \(41 values each time\)"):
        parse_yaml("a: &a " + json.dumps(list(range(40))) + "\nb: *a\nc: *a\n", Path("f.yaml"))


def test_shorten_never_walks_a_huge_value() -> None:
    huge: Any = ["x"]
    for _ in range(9):
        huge = [huge] * 9  # 387 million leaves if walked
    assert len(_shorten(huge)) <= 60
    assert _shorten(10 ** 5000) == "<an integer of about 5,000 digits>"
    assert _shorten("y" * 10_000_000).endswith("...") and len(_shorten("y" * 10_000_000)) == 60
