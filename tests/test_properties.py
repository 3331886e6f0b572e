"""Arbitrary and malformed configs never raise: they give findings, or exit code 2 with a clear message."""

from __future__ import annotations

import copy
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.config import KNOWN_KEYS
from tests.conftest import base_config, plan_of

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["", "${X}", "${}", "auto", "fp8", "h100", "l40s", "openai/x", "http://localhost"]),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += paths(child, prefix + (index,))
    return out


BASE_PATHS = [p for p in paths(base_config()) if p]


def replace_at(config: dict, path: tuple, value: Any) -> dict:
    config = copy.deepcopy(config)
    target = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(BASE_PATHS), value=json_like)
def test_any_value_anywhere_gives_findings_not_tracebacks(path: tuple, value: Any) -> None:
    plan = plan_of(replace_at(base_config(), path, value))
    plan.to_json()
    plan.catalog()
    for finding in plan.findings:
        assert finding.message and finding.subject is not None


@settings(max_examples=200, deadline=None)
@given(raw=st.dictionaries(st.sampled_from([*KNOWN_KEYS, "other", "modles"]), json_like, max_size=8))
def test_arbitrary_top_level_config_never_raises(raw: dict) -> None:
    plan_of(raw).to_json()


@settings(max_examples=150, deadline=None)
@given(models=st.lists(st.dictionaries(
    st.sampled_from(["litellmModelName", "litellmModel", "displayName", "provider", "type", "metadataType", "contextWindow",
                     "maxTokens", "apiKey", "credential", "apiBase", "apiVersion", "flags", "capabilities", "vllm", "awsRegion"]),
    json_like, max_size=10), max_size=5))
def test_arbitrary_model_entries_never_raise(models: list) -> None:
    raw = base_config()
    raw["models"] = raw["models"] + models
    plan_of(raw).to_json()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_file_content_gives_exit_0_1_or_2(tmp_path: Path, text: str) -> None:
    path = tmp_path / "Pulumi.fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["plan", "--config-file", str(path), "--json"])
    assert code in (0, 1, 2)
    if code == 2:
        assert "Pulumi.fuzz.yaml" in out.getvalue()


def test_binary_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bin.yaml"
    path.write_bytes(b"\xff\xfe\x00config")
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        assert main(["plan", "--config-file", str(path)]) == 2
    assert "cannot be read" in err.getvalue()


# ---------------------------------------------------------------- hostile shapes: deep, wide, aliased, duplicated
# The stack file is read by planner/loading.py within limits; these generate the shapes the limits are for and
# check that every file either plans or exits 2 naming its place, quickly, and never raises.

import json  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import yaml  # noqa: E402

from planner import loading  # noqa: E402
from planner.loading import StackFileError, parse_yaml  # noqa: E402

PLACE = re.compile(r"^f\.yaml:(\d+):(\d+): ")


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(min_value=0, max_value=3 * loading.MAX_DEPTH), flow=st.booleans())
def test_deep_input_parses_or_is_refused_with_its_place(depth: int, flow: bool) -> None:
    text = "a: " + "[" * depth + "x" + "]" * depth if flow else "a:\n" + "\n".join(
        f"{'  ' * (level + 1)}- " + ("" if level < depth - 1 else "x") for level in range(depth))
    try:
        value = parse_yaml(text, Path("f.yaml"))
    except StackFileError as refused:
        assert depth >= loading.MAX_DEPTH and "nested more than" in str(refused) and PLACE.match(str(refused))
    else:
        assert depth < loading.MAX_DEPTH and isinstance(value, dict)


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True), min_size=1, max_size=2000, unique=True),
       values=st.lists(scalars, min_size=1, max_size=5))
def test_wide_mappings_read_as_pyyaml_reads_them(keys: list[str], values: list[Any]) -> None:
    data = {key: values[index % len(values)] for index, key in enumerate(keys)}
    text = yaml.safe_dump(data)
    assert json.dumps(parse_yaml(text, Path("f.yaml")), default=str, sort_keys=True) == \
        json.dumps(yaml.safe_load(text), default=str, sort_keys=True)


@settings(max_examples=60, deadline=None)
@given(levels=st.integers(min_value=1, max_value=12), fan_out=st.integers(min_value=1, max_value=12))
def test_aliased_input_is_bounded_whatever_it_expands_to(levels: int, fan_out: int) -> None:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan_out) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan_out) + "]" for i in range(1, levels)]
    text = "\n".join(lines) + "\n"
    sizes = [fan_out + 1]  # each list: its items (an alias counts as the values it names) and itself
    for _ in range(1, levels):
        sizes.append(fan_out * sizes[-1] + 1)
    expanded = 1 + levels + sum(sizes)  # the mapping, its keys, its lists
    started = time.perf_counter()
    try:
        parse_yaml(text, Path("f.yaml"))
    except StackFileError as refused:
        assert "alias bomb" in str(refused) and PLACE.match(str(refused))
        assert expanded > loading.MAX_VALUES  # refused exactly when the expansion passes the limit
    else:
        assert expanded <= loading.MAX_VALUES
    assert time.perf_counter() - started < 0.5


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=2, max_size=30, unique=True),
       data=st.data())
def test_a_duplicated_key_is_refused_on_its_second_line(keys: list[str], data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=0, max_value=len(keys) - 1))
    second = data.draw(st.integers(min_value=first + 1, max_value=len(keys)))
    lines = [f"{key}: {index}" for index, key in enumerate(keys)]
    lines.insert(second, f"{keys[first]}: again")
    nested = data.draw(st.booleans())
    text = ("config:\n" + "".join(f"  {line}\n" for line in lines)) if nested else "\n".join(lines) + "\n"
    with pytest.raises(StackFileError) as refused:
        parse_yaml(text, Path("f.yaml"))
    place = PLACE.match(str(refused.value))
    assert place and int(place.group(1)) == second + 1 + nested
    assert f"duplicate key {keys[first]!r} (first on line {first + 1 + nested})" in str(refused.value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_like, depth=st.integers(min_value=0, max_value=100), anchors=st.booleans())
def test_any_generated_stack_file_plans_or_exits_2_with_the_file(tmp_path: Path, value: Any, depth: int,
                                                                 anchors: bool) -> None:
    config = base_config()
    config["models"][0]["description"] = value
    for _ in range(depth):
        config = {"config": config} if anchors else [config]
    text = yaml.safe_dump(config) if not anchors else "x: &x " + json.dumps(value) + "\nconfig: {a: *x, b: *x}\n"
    path = tmp_path / "Pulumi.gen.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["plan", "--config-file", str(path), "--json"])
    assert code in (0, 1, 2)
    result = json.loads(out.getvalue())
    assert set(result) == {"stack", "ok", "findings", "models", "flags", "servers", "pools", "catalog"}
    if code == 2:
        assert str(path) in result["findings"][0]["message"]
