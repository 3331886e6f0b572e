"""The policy pack (policy/): the planner's error findings as mandatory policies, called directly.

Our components do not yet register their plan input, so these tests build the props a component would carry
under the proposed shape (`kindoModels`: README "Policy pack"), from the committed stacks through the planner.
The Kubernetes objects checked are the ones the program really renders (tests/pulumi_harness, under mocks).
Three levels are exercised: the rule functions, the pulumi_policy validate callbacks with ResourceValidationArgs /
StackValidationArgs, and pulumi_policy's own analyzer servicer fed the protobuf requests the engine sends.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    Secret,
    StackValidationArgs,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from planner.config import stack_config
from tests.pulumi_harness import Run, of_server, run_stack

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy"
if str(PACK) not in sys.path:
    sys.path.insert(0, str(PACK))  # as Pulumi runs the pack: its directory on sys.path

from kindo_policy import policies, rules  # noqa: E402

STACKS = ("dev", "prod")
PROJECT = "kindo-models"
# A model the catalog lacks, described by its architecture: it calls tools, and nobody named a parser.
BAD_MODEL = {
    "litellmModelName": "acme-agent-13b", "displayName": "Acme Agent 13B", "provider": "Self-Hosted", "creator": "Acme",
    "type": "CHAT", "metadataType": "Text Generation", "costTier": "LOW", "contextWindow": 32768, "maxTokens": 4096,
    "vllm": {"model": "acme/agent-13b", "gpuPool": "l40s", "architecture": {
        "parametersB": 13, "layers": 40, "attentionHeads": 40, "kvHeads": 8, "headDim": 128, "maxContext": 32768,
        "toolCalling": True}},
}
FAKE_HF_TOKEN = "hf_" + "Ab1" * 12  # token-shaped, not a token


# --------------------------------------------------------------------------- stacks as our components would register them


def urn(stack: str, typ: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{typ}::{name}"


def raw_config(stack: str) -> dict[str, Any]:
    path = ROOT / f"Pulumi.{stack}.yaml"
    raw, _ = stack_config(yaml.safe_load(path.read_text()), path)
    return raw


def component_resources(raw: dict[str, Any], stack: str, catalog: bool = True) -> list[tuple[str, str, str, dict]]:
    """(type, urn, name, props) of the GpuNodePools, VllmServers and (optionally) the ModelCatalog that the program
    builds for this config, each carrying its slice of the config as the `kindoModels` property."""
    plan = rules.plan_config(raw, stack)
    cluster = raw.get("cluster")
    pools = {p["name"]: p for p in raw.get("gpuPools", [])}
    models = {m["litellmModelName"]: m for m in raw.get("models", [])}
    out = []
    for pool in raw.get("gpuPools", []):
        props = rules.plan_input_props({"gpuPools": [pool], "cluster": cluster}, stack)
        out.append((rules.GPU_NODE_POOL, urn(stack, rules.GPU_NODE_POOL, pool["name"]), pool["name"], props))
    for server in plan.servers:
        config = {"models": [models[server.litellmModelName]], "gpuPools": [pools[server.pool]], "cluster": cluster}
        props = rules.plan_input_props(config, stack, server.args)
        out.append((rules.VLLM_SERVER, urn(stack, rules.VLLM_SERVER, server.name), server.name, props))
    if catalog:
        out.append((rules.MODEL_CATALOG, urn(stack, rules.MODEL_CATALOG, "catalog"), "catalog",
                    rules.plan_input_props(raw, stack)))
    return out


def with_bad_model(stack: str = "dev") -> dict[str, Any]:
    raw = raw_config(stack)
    raw["models"].append(copy.deepcopy(BAD_MODEL))
    raw["gpuPools"] = [dict(p, maxSize=4) if p["name"] == "l40s" else p for p in raw["gpuPools"]]  # room for it
    return raw


def planner_errors_from_cli(raw: dict[str, Any], stack: str, tmp_path: Path) -> list[str]:
    """What `python -m planner plan --json` says about a stack file holding this config."""
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in raw.items()}}))
    run = subprocess.run([sys.executable, "-m", "planner", "plan", "--config-file", str(path), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    result = json.loads(run.stdout)
    return [f"{f['code']} [{f['subject']}]: {f['message']}" for f in result["findings"] if f["severity"] == "error"]


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def resource_args(typ: str, urn_: str, name: str, props: dict) -> ResourceValidationArgs:
    """What pulumi_policy hands a validation: props behind its unknown-checking proxy."""
    return ResourceValidationArgs(typ, unknown_checking_proxy(copy.deepcopy(props)), urn_, name, options(), None)


def stack_args(resources: list[tuple[str, str, str, dict]]) -> StackValidationArgs:
    return StackValidationArgs([PolicyResource(t, unknown_checking_proxy(copy.deepcopy(p)), u, n, options(), None, None, [], {})
                                for t, u, n, p in resources])


class Violations(list):
    def __call__(self, message: str, urn_: str | None = None) -> None:
        self.append((urn_, message))


def validate(policy, args) -> Violations:
    found = Violations()
    try:
        policy.validate(args, found)
    except Exception as exc:  # not_applicable raises; record it as no violation
        if type(exc).__name__ != "_NotApplicableError":
            raise
    return found


def all_violations(resources: list[tuple[str, str, str, dict]]) -> list[str]:
    out = []
    for typ, urn_, name, props in resources:
        for policy in policies.POLICIES:
            if isinstance(policy, policies.ResourceValidationPolicy):
                out += [m for _, m in validate(policy, resource_args(typ, urn_, name, props))]
    out += [m for _, m in validate(policies.STACK_PLAN, stack_args(resources))]
    return out


# --------------------------------------------------------------------------- the engine's side: protobuf requests


def struct(props: dict) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(json.loads(json.dumps(props)))
    return value


def servicer() -> _PolicyAnalyzerServicer:
    return _PolicyAnalyzerServicer(policies.PACK_NAME, "0.1.0", policies.POLICIES, EnforcementLevel.MANDATORY)


def analyze(typ: str, urn_: str, name: str, props: dict):
    request = proto.AnalyzeRequest(type=typ, urn=urn_, name=name, properties=struct(props))
    return servicer().Analyze(request, None)


def analyze_stack(resources: list[tuple[str, str, str, dict]]):
    request = proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(type=t, urn=u, name=n, properties=struct(p)) for t, u, n, p in resources])
    return servicer().AnalyzeStack(request, None)


def messages(response) -> list[str]:
    """Violation texts as the engine receives them: the policy's description, then our message."""
    return [d.message.split("\n", 1)[1] for d in response.diagnostics]


# --------------------------------------------------------------------------- the program's rendered objects


@lru_cache(maxsize=None)
def rendered(stack: str) -> Run:
    run = run_stack(stack)
    assert run.error is None, run.error
    return run


def k8s(stack: str, typ: str) -> list[tuple[str, str, str, dict]]:
    return [(r.type, urn(stack, r.type, r.name), r.name, copy.deepcopy(r.inputs)) for r in rendered(stack).mocks.of_type(typ)]


def strip_secret_markers(value: Any) -> Any:
    """Props as a validation gets them from pulumi_policy 1.21.0: secret values unwrapped (no marker)."""
    if isinstance(value, dict):
        if value.get(rules.SIG_KEY) == rules.SECRET_SIG:
            return strip_secret_markers(value["value"])
        return {k: strip_secret_markers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_secret_markers(v) for v in value]
    return value


# =========================================================================== the pack's files


def test_pack_project_file_is_a_python_pack() -> None:
    project = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    runtime = project["runtime"]
    assert (runtime if isinstance(runtime, str) else runtime["name"]) == "python"
    assert project["description"] and project["version"]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_pack_requirements_pin_pulumi_policy_and_match_the_project() -> None:
    from importlib.metadata import version

    pack = _pins(PACK / "requirements.txt")
    assert pack["pulumi-policy"] == version("pulumi-policy"), "the tests run the pinned pulumi-policy"
    project = {**_pins(ROOT / "requirements-planner.txt"), **_pins(ROOT / "requirements.txt")}
    for name in ("pydantic", "pyyaml", "pulumi"):
        assert pack[name] == project[name], f"{name} differs between policy/requirements.txt and the project"


def test_entry_point_builds_one_pack_of_mandatory_policies(tmp_path: Path) -> None:
    """Run policy/__main__.py as Pulumi does (runpy.run_path on the pack directory), from elsewhere, with PolicyPack
    replaced by a recorder instead of a gRPC server: the planner is found and every policy is MANDATORY."""
    script = tmp_path / "run_pack.py"
    script.write_text(
        "import json, runpy, sys\n"
        "import pulumi_policy\n"
        "seen = {}\n"
        "class Recorder:\n"
        "    def __init__(self, **kwargs): seen.update(kwargs)\n"
        "pulumi_policy.PolicyPack = Recorder\n"
        f"runpy.run_path({str(PACK)!r}, run_name='__main__')\n"
        "print(json.dumps({'name': seen['name'], 'level': seen['enforcement_level'].value,\n"
        "                  'policies': [[p.name, p.enforcement_level.value, type(p).__name__] for p in seen['policies']]}))\n")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    pack = json.loads(run.stdout)
    assert pack["name"] == "kindo-models" and pack["level"] == "mandatory"
    assert {level for _, level, _ in pack["policies"]} == {"mandatory"}
    assert {kind for _, _, kind in pack["policies"]} == {"ResourceValidationPolicy", "StackValidationPolicy"}
    assert len({name for name, _, _ in pack["policies"]}) == len(pack["policies"]) == 5


# =========================================================================== a bad model: the planner's message


def test_bad_model_is_rejected_with_the_message_the_planner_gives(tmp_path: Path) -> None:
    raw = with_bad_model()
    expected = planner_errors_from_cli(raw, "dev", tmp_path)
    assert expected == ["tool-parser-missing [acme-agent-13b]: acme/agent-13b is routed to tool calling but has no "
                        "--tool-call-parser: Kindo agents cannot call tools. Set vllm.toolCallParser."]
    resources = component_resources(raw, "dev")
    server = next(r for r in resources if r[0] == rules.VLLM_SERVER and of_server(r[2], "acme-agent-13b"))
    assert "--tool-call-parser" not in server[3]["kindoModels"]["server"]["args"]

    # the rule, the pulumi_policy validation, and the analyzer servicer with the engine's request
    assert rules.vllm_server_messages(rules.plan_input(*server)) == expected
    assert [m for _, m in validate(policies.VLLM_SERVER_PLAN, resource_args(*server))] == expected
    response = analyze(*server)
    assert messages(response) == expected
    assert [d.policyName for d in response.diagnostics] == ["kindo-models-vllm-server"]
    assert response.diagnostics[0].enforcementLevel == proto.MANDATORY

    # the stack policy reports it too, on the VllmServer's URN, with or without a ModelCatalog
    for catalog in (True, False):
        stack_resources = component_resources(raw, "dev", catalog=catalog)
        found = validate(policies.STACK_PLAN, stack_args(stack_resources))
        assert [m for _, m in found] == expected
        assert [u for u, _ in found] == [server[1]]
        response = analyze_stack(stack_resources)
        assert messages(response) == expected and [d.urn for d in response.diagnostics] == [server[1]]


@pytest.mark.parametrize("stack", STACKS)
def test_good_stack_passes_every_policy(stack: str) -> None:
    raw = raw_config(stack)
    assert rules.plan_config(raw, stack).ok
    resources = component_resources(raw, stack)
    resources += k8s(stack, "kubernetes:apps/v1:Deployment") + k8s(stack, "kubernetes:core/v1:Secret")
    assert len([r for r in resources if r[0] == rules.VLLM_SERVER]) == len(rules.plan_config(raw, stack).servers)
    assert all_violations(resources) == []
    for resource in resources:
        assert messages(analyze(*resource)) == [], resource[2]
    assert messages(analyze_stack(resources)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_good_stack_without_a_catalog_passes_too(stack: str) -> None:
    """A program using only our infrastructure components: no kindo/unleash/flags in sight, nothing spurious."""
    resources = component_resources(raw_config(stack), stack, catalog=False)
    assert validate(policies.STACK_PLAN, stack_args(resources)) == []
    assert messages(analyze_stack(resources)) == []


def test_server_whose_args_lost_the_parser_is_rejected_with_the_planners_message() -> None:
    raw = raw_config("dev")
    resources = component_resources(raw, "dev")
    typ, urn_, name, props = next(r for r in resources if r[0] == rules.VLLM_SERVER and of_server(r[2], "qwen3-8b"))
    args = props["kindoModels"]["server"]["args"]
    assert args[args.index("--tool-call-parser") + 1] == "hermes"
    props["kindoModels"]["server"]["args"] = [a for a in args if a not in ("--tool-call-parser", "hermes",
                                                                          "--enable-auto-tool-choice")]
    assert messages(analyze(typ, urn_, name, props)) == [
        "tool-parser-missing [qwen3-8b]: Qwen/Qwen3-8B is routed to tool calling but has no --tool-call-parser: "
        "Kindo agents cannot call tools. Set vllm.toolCallParser."]
    # the same server with another family's parser: the planner's wrong-family error
    props["kindoModels"]["server"]["args"] = [("llama3_json" if a == "hermes" else a) for a in args]
    assert [m.split(":", 1)[0] for m in messages(analyze(typ, urn_, name, props))] == ["tool-parser-wrong-family [qwen3-8b]"]


def test_server_args_are_judged_as_served_context_and_tensor_parallel_size() -> None:
    raw = raw_config("prod")
    typ, urn_, name, props = next(r for r in component_resources(raw, "prod")
                                  if r[0] == rules.VLLM_SERVER and of_server(r[2], "gpt-oss-120b"))
    args = props["kindoModels"]["server"]["args"]
    props["kindoModels"]["server"]["args"] = [("3" if a == args[args.index("--tensor-parallel-size") + 1]
                                               and i == args.index("--tensor-parallel-size") + 1 else a)
                                              for i, a in enumerate(args)]
    codes = [m.split(" ", 1)[0] for m in rules.vllm_server_messages(rules.plan_input(typ, urn_, name, props))]
    assert codes == ["tensor-parallel-invalid"]


def test_catalog_makes_whole_stack_errors_count() -> None:
    """With a ModelCatalog the stack's whole input is known: a required flag nothing routes to is an error."""
    raw = raw_config("dev")
    for model in raw["models"]:
        model["flags"] = [f for f in model.get("flags", []) if f != "DEFAULT_WORKFLOW_STEP_MODEL"]
    resources = component_resources(raw, "dev")
    found = validate(policies.STACK_PLAN, stack_args(resources))
    assert [m.split(":", 1)[0] for _, m in found] == ["flag-required-empty [DEFAULT_WORKFLOW_STEP_MODEL]"]
    assert [u for u, _ in found] == [urn("dev", rules.MODEL_CATALOG, "catalog")]
    assert validate(policies.STACK_PLAN, stack_args(component_resources(raw, "dev", catalog=False))) == []


def test_pool_errors_are_reported_on_the_pool() -> None:
    raw = raw_config("dev")
    raw["gpuPools"][0]["minSize"] = 5  # above maxSize 4
    pool = next(r for r in component_resources(raw, "dev") if r[0] == rules.GPU_NODE_POOL and r[2] == "l40s")
    assert messages(analyze(*pool)) == ["pool-size-invalid [l40s]: minSize 5 is above maxSize 4."]


@pytest.mark.parametrize("stack", STACKS)
def test_what_the_program_registers_passes_the_pack(stack: str) -> None:
    """Every resource the program registers for a committed stack (under mocks, inputs as the engine gets them)
    passes every policy, and every policy applies: each of our components carries its `kindoModels` slice."""
    run = rendered(stack)
    resources = [(r.type, urn(stack, r.type, r.name), r.name, copy.deepcopy(r.inputs)) for r in run.mocks.resources]
    carrying = {r[0] for r in resources if r[0] in rules.PLAN_INPUT_TYPES and rules.PLAN_INPUT in r[3]}
    assert carrying == set(rules.PLAN_INPUT_TYPES)
    assert all_violations(resources) == []
    response = analyze_stack(resources)
    assert list(response.diagnostics) == [] and list(response.not_applicable) == []
    for resource in resources:
        if resource[0] in rules.PLAN_INPUT_TYPES:
            assert rules.plan_input(*resource) is not None and list(analyze(*resource).not_applicable) == []


def test_a_bad_model_in_the_program_is_caught_by_the_pack_from_the_components_alone() -> None:
    """The pack sees only what the components carry; a tool-calling vLLM model without a parser, rendered by
    the program, is rejected with the planner's own message."""
    from planner.config import parse_settings
    from planner.plan import make_plan

    run = rendered("dev")
    resources = [(r.type, urn("dev", r.type, r.name), r.name, copy.deepcopy(r.inputs)) for r in run.mocks.resources]
    catalog = next(r for r in resources if r[0] == rules.MODEL_CATALOG)
    config = catalog[3][rules.PLAN_INPUT]["config"]
    config["models"].append({"litellmModelName": "mystery-tools", "displayName": "x", "provider": "Self-Hosted",
                             "type": "CHAT", "metadataType": "Text Generation", "contextWindow": 32768,
                             "capabilities": {"toolCalling": True},
                             "vllm": {"model": "acme/mystery-7b", "gpuPool": "l40s", "architecture": {
                                 "parametersB": 7, "layers": 32, "attentionHeads": 32, "kvHeads": 8, "headDim": 128,
                                 "maxContext": 32768, "toolCalling": True}}})
    settings, findings = parse_settings(copy.deepcopy(config), "dev")
    expected = [f"{f.code} [{f.subject}]: {f.message}" for f in make_plan(settings, findings).errors]
    assert any(e.startswith("tool-parser-missing [mystery-tools]") for e in expected)
    reported = [d.message for d in analyze_stack(resources).diagnostics]
    assert reported and all(any(e in message for message in reported) for e in expected)


def test_unknown_plan_input_during_preview_is_not_applicable() -> None:
    typ, urn_, name, props = next(r for r in component_resources(raw_config("dev"), "dev") if r[0] == rules.VLLM_SERVER)
    props["kindoModels"]["config"]["cluster"]["namespace"] = UNKNOWN_STRING_VALUE
    response = analyze(typ, urn_, name, props)
    assert list(response.diagnostics) == []
    assert "not known until the update runs" in response.not_applicable[0].reason


def test_policies_are_all_mandatory() -> None:
    assert {p.enforcement_level for p in policies.POLICIES} == {EnforcementLevel.MANDATORY}


# =========================================================================== GPU requests of vLLM containers


def _vllm_deployment(stack: str = "dev", server: str = "gpt-oss-120b") -> tuple[str, str, str, dict]:
    return next(r for r in k8s(stack, "kubernetes:apps/v1:Deployment") if of_server(r[2], server, "deployment"))


def _container(props: dict) -> dict:
    return props["spec"]["template"]["spec"]["containers"][0]


def test_rendered_vllm_deployments_request_their_tensor_parallel_size() -> None:
    for stack in STACKS:
        plan = rules.plan_config(raw_config(stack), stack)
        for server in plan.servers:
            typ, urn_, name, props = _vllm_deployment(stack, server.baseName)
            assert _container(props)["resources"]["requests"]["nvidia.com/gpu"] == str(server.tensorParallelSize)
            assert rules.gpu_request_messages(typ, name, props) == []


@pytest.mark.parametrize("change, expected", [
    (lambda c: c["resources"]["requests"].update({"nvidia.com/gpu": "2"}) or c["resources"]["limits"].update({"nvidia.com/gpu": "2"}),
     "requests nvidia.com/gpu 2 but vLLM runs on 1"),
    (lambda c: c["resources"]["requests"].pop("nvidia.com/gpu") and c["resources"]["limits"].pop("nvidia.com/gpu"),
     "requests no nvidia.com/gpu"),
    (lambda c: c["resources"]["limits"].update({"nvidia.com/gpu": "2"}), "differs from its limit"),
    (lambda c: c["args"].__setitem__(c["args"].index("--tensor-parallel-size") + 1, "2"), "but vLLM runs on 2"),
    (lambda c: c["args"].extend(["--pipeline-parallel-size", "2"]), "but vLLM runs on 2"),
    (lambda c: c["args"].__setitem__(c["args"].index("--tensor-parallel-size") + 1, "two"), "not a positive whole number"),
])
def test_vllm_gpu_request_must_equal_the_gpus_the_command_line_uses(change, expected: str) -> None:
    typ, urn_, name, props = _vllm_deployment()
    change(_container(props))
    found = messages(analyze(typ, urn_, name, props))
    assert any(expected in m for m in found), found
    assert all(m.startswith(f"vllm-gpu-request [{name}/vllm]: ") for m in found)


def test_gpu_check_ignores_other_containers_and_limit_only_requests() -> None:
    typ, urn_, name, props = _vllm_deployment()
    _container(props)["resources"]["requests"].pop("nvidia.com/gpu")  # Kubernetes takes the limit as the request
    assert rules.gpu_request_messages(typ, name, props) == []
    other = copy.deepcopy(props)
    _container(other).update(image="nginx:1.27", command=["nginx"], args=[])
    _container(other)["resources"] = {}
    assert rules.gpu_request_messages(typ, name, other) == []
    _container(other).update(image="ghcr.io/example/vllm-router:0.1", command=["router"])  # not a server
    assert rules.gpu_request_messages(typ, name, other) == []
    _container(other).update(image="vllm/vllm-openai:v0.33.0", command=None, args=["--model", "m", "-tp", "2"])
    assert any("requests no nvidia.com/gpu" in m and "runs on 2 GPUs" in m
               for m in rules.gpu_request_messages(typ, name, other))
    pod = {"spec": copy.deepcopy(props["spec"]["template"]["spec"])}
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "4"
    assert any("but vLLM runs on 1" in m for m in rules.gpu_request_messages("kubernetes:core/v1:Pod", "p", pod))


# =========================================================================== Hugging Face tokens


def test_rendered_secrets_and_deployments_carry_no_plain_hf_token() -> None:
    for stack in STACKS:
        for typ, urn_, name, props in k8s(stack, "kubernetes:core/v1:Secret") + k8s(stack, "kubernetes:apps/v1:Deployment"):
            # as raw state keeps them (markers visible) and as a validation sees them (markers removed)
            assert rules.hf_token_messages(typ, name, props, markers_visible=True) == []
            assert rules.hf_token_messages(typ, name, strip_secret_markers(props)) == []
            assert messages(analyze(typ, urn_, name, strip_secret_markers(props))) == []


def test_secret_marker_as_pulumi_policy_exposes_it() -> None:
    """pulumi_policy.Secret (what a remediation's props hold) and the wire envelope both count as marked; a token
    without either, where markers are visible, is reported. Validations get no markers (pulumi-policy#241)."""
    marked = {"stringData": {"HF_TOKEN": Secret(FAKE_HF_TOKEN)}}
    wire = {"stringData": {rules.SIG_KEY: rules.SECRET_SIG, "value": {"HF_TOKEN": FAKE_HF_TOKEN}}}
    bare = {"stringData": {"HF_TOKEN": FAKE_HF_TOKEN}}
    data = {"data": {"token": __import__("base64").b64encode(FAKE_HF_TOKEN.encode()).decode()}}
    for props in (marked, wire):
        assert rules.hf_token_messages(rules.K8S_SECRET, "s", props, markers_visible=True) == []
    for props in (bare, data):
        found = rules.hf_token_messages(rules.K8S_SECRET, "s", props, markers_visible=True)
        assert [m.split(" ", 1)[0] for m in found] == ["hf-token-not-secret"], found
        assert rules.hf_token_messages(rules.K8S_SECRET, "s", props) == []  # the provider marks data/stringData itself


@pytest.mark.parametrize("typ, props, where", [
    ("kubernetes:apps/v1:Deployment",
     {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "env": [{"name": "HF_TOKEN", "value": "abc123"}]}]}}}},
     "spec.template.spec.containers[0].env[0].value"),
    ("kubernetes:apps/v1:Deployment",
     {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "args": ["--hf-token", FAKE_HF_TOKEN]}]}}}},
     "spec.template.spec.containers[0].args[1]"),
    ("kubernetes:core/v1:ConfigMap", {"data": {"HUGGING_FACE_HUB_TOKEN": "abc123"}}, "data.HUGGING_FACE_HUB_TOKEN"),
    (rules.K8S_SECRET, {"metadata": {"annotations": {"note": f"token {FAKE_HF_TOKEN}"}}, "stringData": {}},
     "metadata.annotations.note"),
    (rules.VLLM_SERVER, {"kindoModels": {"config": {"huggingFaceToken": FAKE_HF_TOKEN}}}, "kindoModels.config.huggingFaceToken"),
])
def test_plain_hf_token_outside_a_secret_is_rejected(typ: str, props: dict, where: str) -> None:
    found = messages(analyze(typ, urn("dev", typ, "x"), "x", props))
    hf = [m for m in found if m.startswith("hf-token-in-plain-text")]
    assert hf == [m for m in hf if f"[x:{where}]" in m] and hf, found
    assert not any(FAKE_HF_TOKEN in m or "abc123" in m for m in found), "a violation never repeats the value"


def test_hf_token_from_a_secret_reference_is_fine() -> None:
    props = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "env": [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "m-vllm", "key": "HF_TOKEN"}}}]}]}}}}
    assert rules.hf_token_messages("kubernetes:apps/v1:Deployment", "d", props) == []
    assert rules.hf_token_messages(rules.K8S_SECRET, "s", {"stringData": {"HF_TOKEN": UNKNOWN_STRING_VALUE}},
                                   markers_visible=True) == []


# =========================================================================== the pack as the CLI runs it: a plugin


def test_pack_serves_the_analyzer_protocol_as_a_plugin_process() -> None:
    """Start the pack the way Pulumi's analyzer plugin does (`python -u -m pulumi.policy <engine> <pack dir>`), read
    the port it prints, and speak the Analyzer gRPC protocol to it: what the engine asks, what it answers."""
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2_grpc

    process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PACK)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), (port, process.stderr.read() if process.poll() is not None else "")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
            assert info.name == "kindo-models"
            assert {p.name: p.enforcementLevel for p in info.policies} == {
                p.name: proto.MANDATORY for p in policies.POLICIES}
            resources = component_resources(with_bad_model(), "dev")
            server = next(r for r in resources if of_server(r[2], "acme-agent-13b"))
            request = proto.AnalyzeRequest(type=server[0], urn=server[1], name=server[2], properties=struct(server[3]))
            answer = stub.Analyze(request, timeout=60)
            assert messages(answer) == ["tool-parser-missing [acme-agent-13b]: acme/agent-13b is routed to tool calling "
                                        "but has no --tool-call-parser: Kindo agents cannot call tools. Set vllm.toolCallParser."]
            stack = stub.AnalyzeStack(proto.AnalyzeStackRequest(resources=[
                proto.AnalyzerResource(type=t, urn=u, name=n, properties=struct(p)) for t, u, n, p in resources]), timeout=60)
            assert messages(stack) == messages(answer)
    finally:
        process.kill()
        process.wait(timeout=30)
