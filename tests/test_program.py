"""The Pulumi program under Pulumi's mocks: what each committed stack registers, and its guarantees."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import kubernetes_validate
import pytest

from planner import catalogs
from planner.config import load_settings
from planner.plan import Plan, make_plan
from tests.pulumi_harness import (
    ROOT, TEST_CREDENTIAL_PREFIX, TEST_SECRETS, Run, find_values, is_secret, of_server, run_program, run_stack,
    server_key, stack_config,
)

STACKS = ("dev", "prod")
# A current EKS Kubernetes version the schemas must validate against, strictly (unknown fields are errors).
EKS_KUBERNETES = "1.34"
K8S_MANIFEST_TYPES = {
    "kubernetes:core/v1:Namespace", "kubernetes:core/v1:Secret", "kubernetes:core/v1:PersistentVolumeClaim",
    "kubernetes:core/v1:Service", "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ConfigMap",
    "kubernetes:batch/v1:Job", "kubernetes:storage.k8s.io/v1:StorageClass",
}


@lru_cache(maxsize=None)
def run(stack: str) -> Run:
    result = run_stack(stack)
    assert result.error is None, result.error
    return result


def plan(stack: str) -> Plan:
    settings, findings = load_settings(ROOT / f"Pulumi.{stack}.yaml")
    return make_plan(settings, findings)


def unwrap(value: Any) -> Any:
    """Inputs as a manifest: secret envelopes replaced by their value."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def by_name(result: Run, typ: str) -> dict[str, dict]:
    return {r.name: unwrap(r.inputs) for r in result.mocks.of_type(typ)}


@pytest.mark.parametrize("stack", STACKS)
def test_node_groups_render_the_pools(stack: str) -> None:
    expected = plan(stack)
    groups = by_name(run(stack), "aws:eks/nodeGroup:NodeGroup")
    templates = by_name(run(stack), "aws:ec2/launchTemplate:LaunchTemplate")
    assert set(groups) == {f"{p.name}-ng" for p in expected.pools}
    for pool in expected.pools:
        group = groups[f"{pool.name}-ng"]
        assert group["instanceTypes"] == [pool.instanceType] and group["amiType"] == pool.amiType
        assert group["scalingConfig"] == {"minSize": pool.minSize, "maxSize": pool.maxSize, "desiredSize": pool.desiredSize}
        assert group["labels"]["nvidia.com/gpu.present"] == "true" and group["labels"]["kindo-models/pool"] == pool.name
        assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        assert group["nodeRoleArn"] == "arn:aws:iam::123456789012:role/kindo-core-nodes"
        assert group["clusterName"] == expected.settings.cluster.name
        volume = templates[f"{pool.name}-lt"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]
        # The root volume holds the OS and the vLLM image; the weights live on the instance store or their own volume.
        assert volume == pool.diskSizeGiB >= catalogs.eks().osGiB + catalogs.eks().vllmImageGiB
        reservation = templates[f"{pool.name}-lt"].get("capacityReservationSpecification")
        if pool.capacityReservationId:
            assert reservation["capacityReservationTarget"]["capacityReservationId"] == pool.capacityReservationId
        else:
            assert reservation is None


@pytest.mark.parametrize("stack", STACKS)
def test_device_plugin_is_pinned_and_targets_our_pools(stack: str) -> None:
    (release,) = by_name(run(stack), "kubernetes:helm.sh/v3:Release").values()
    assert release["chart"] == "nvidia-device-plugin" and release["version"] == "0.17.1"
    assert release["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    values = release["values"]
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0] == {"key": "kindo-models/pool", "operator": "In",
                                               "values": sorted(p.name for p in plan(stack).pools)}


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_deployments_render_the_plan(stack: str) -> None:
    expected = plan(stack)
    deployments = by_name(run(stack), "kubernetes:apps/v1:Deployment")
    services = by_name(run(stack), "kubernetes:core/v1:Service")
    assert set(deployments) == {f"{s.name}-deployment" for s in expected.servers}
    for server in expected.servers:
        deployment = deployments[f"{server.name}-deployment"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == server.args
        assert container["args"][container["args"].index("--served-model-name") + 1] == server.litellmModelName
        assert container["image"] == server.image and container["command"] == ["vllm", "serve"]
        gpus = str(server.gpusPerReplica)
        assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus == container["resources"]["requests"]["nvidia.com/gpu"]
        assert deployment["spec"]["replicas"] == server.replicas
        assert pod["nodeSelector"] == {"kindo-models/pool": server.pool}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= server.startupBudgetSeconds - 10
        assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])
        service = services[f"{server.name}-service"]
        assert service["metadata"]["name"] == server.name and service["spec"]["ports"][0]["port"] == 8000
        assert run(stack).outputs["vllmServers"][server.litellmModelName] == server.url


@pytest.mark.parametrize("stack", STACKS)
def test_model_cache_covers_the_weights(stack: str) -> None:
    """The committed stacks' pools have local NVMe: each cache is an emptyDir there, requested as node disk."""
    expected = plan(stack)
    deployments = by_name(run(stack), "kubernetes:apps/v1:Deployment")
    assert by_name(run(stack), "kubernetes:core/v1:PersistentVolumeClaim") == {}
    for server in expected.servers:
        pod = deployments[f"{server.name}-deployment"]["spec"]["template"]["spec"]
        cache = next(v for v in pod["volumes"] if v["name"] == "cache")
        limit = int(cache["emptyDir"]["sizeLimit"].removesuffix("Gi"))
        requested = int(pod["containers"][0]["resources"]["requests"]["ephemeral-storage"].removesuffix("Gi"))
        assert server.weightsGiB <= limit < requested


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_validates_strictly_against_kubernetes(stack: str) -> None:
    rendered = [r for r in run(stack).mocks.resources if r.type in K8S_MANIFEST_TYPES]
    assert len(rendered) >= 1 + 3 * len(plan(stack).servers)  # namespace; Secret, Deployment, Service per server
    for resource in rendered:
        manifest = unwrap(resource.inputs)
        assert manifest["apiVersion"] and manifest["kind"]
        kubernetes_validate.validate(manifest, EKS_KUBERNETES, strict=True)


def test_the_validator_does_reject_a_bad_manifest() -> None:
    manifest = copy.deepcopy(unwrap(run("dev").mocks.of_type("kubernetes:apps/v1:Deployment")[0].inputs))
    manifest["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, EKS_KUBERNETES, strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_every_child_has_a_parent_component_and_the_k8s_provider(stack: str) -> None:
    result = run(stack)
    for resource in result.mocks.resources:
        if resource.type.startswith("kubernetes:") and resource.custom:
            assert resource.provider and "pulumi:providers:kubernetes::eks" in resource.provider, resource.name


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_are_secret_everywhere_they_flow(stack: str) -> None:
    result = run(stack)
    everything = [r.inputs for r in result.mocks.resources]
    hf = TEST_SECRETS["kindo-models:huggingFaceToken"]
    places = find_values(everything, hf)
    assert places, "the Hugging Face token reaches the vLLM Secrets"
    assert all(secret for _, secret in places), places
    for server in plan(stack).servers:
        generated = f"generated-{server.name}-api-key"
        places = find_values(everything, generated)
        assert places and all(secret for _, secret in places), (server.name, places)
    for value in [*TEST_SECRETS.values(), TEST_CREDENTIAL_PREFIX, "generated-"]:
        assert not find_values(result.outputs, value), f"{value} leaked into stack outputs"
    for key in ("kindo-models:kindoApiKey", "kindo-models:unleashApiToken"):
        assert all(secret for _, secret in find_values(everything, TEST_SECRETS[key]))


def test_a_plan_with_an_error_registers_nothing_and_names_the_model() -> None:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    model = next(m for m in config["kindo-models:models"] if m["litellmModelName"] == "qwen3-8b")
    model["vllm"]["toolCallParser"] = "llama3"
    result = run_program(config, "dev")
    assert result.error is not None
    assert "qwen3-8b" in str(result.error) and "tool-parser-unknown" in str(result.error)
    assert result.mocks.resources == [] and result.mocks.calls == []


def test_a_plain_text_key_in_pulumi_config_stops_the_program() -> None:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    model = next(m for m in config["kindo-models:models"] if m["litellmModelName"] == "claude-sonnet-5-5")
    del model["credential"]
    model["apiKey"] = "sk-ant-plain-text-0123456789"
    result = run_program(config, "dev")
    assert result.error is not None and "plain-text-secret" in str(result.error)
    assert "sk-ant-plain-text" not in str(result.error) and result.mocks.resources == []


def test_secure_values_inside_models_stop_the_program_with_the_fix() -> None:
    # `pulumi config set --path --secret models[0].apiKey` marks the whole `models` key secret.
    result = run_program(stack_config(ROOT / "Pulumi.dev.yaml"), "dev", secret_keys=("kindo-models:models",))
    assert result.error is not None and result.mocks.resources == []
    message = str(result.error)
    assert "kindo-models:models holds secure values" in message and "credentials.NAME" in message


def test_rendering_twice_gives_the_same_names() -> None:
    first = run_stack("prod")
    second = run_stack("prod")
    identity = lambda r: [(x.type, x.name, x.provider) for x in r.mocks.resources]  # noqa: E731
    assert sorted(identity(first)) == sorted(identity(second))
    assert [unwrap(x.inputs) for x in sorted(first.mocks.resources, key=lambda x: (x.type, x.name))
            if x.type != "random:index/randomPassword:RandomPassword"] == \
           [unwrap(x.inputs) for x in sorted(second.mocks.resources, key=lambda x: (x.type, x.name))
            if x.type != "random:index/randomPassword:RandomPassword"]


def test_bottlerocket_pools_need_no_device_plugin_and_capacity_blocks_use_their_market() -> None:
    config = stack_config(ROOT / "Pulumi.prod.yaml")
    for pool in config["kindo-models:gpuPools"]:
        pool["amiType"] = "BOTTLEROCKET_x86_64_NVIDIA"
    config["kindo-models:gpuPools"][1].update(capacityType="CAPACITY_BLOCK", subnetIds=["subnet-use1a"])
    result = run_program(config, "prod")
    assert result.error is None, result.error
    assert result.mocks.of_type("kubernetes:helm.sh/v3:Release") == []
    templates = by_name(result, "aws:ec2/launchTemplate:LaunchTemplate")
    assert templates["h100-lt"]["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert templates["h100-lt"]["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"
    group = by_name(result, "aws:eks/nodeGroup:NodeGroup")["h100-ng"]
    assert group["capacityType"] == "CAPACITY_BLOCK" and group["subnetIds"] == ["subnet-use1a"]


def test_configured_node_role_skips_the_lookup() -> None:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    config["kindo-models:cluster"]["nodeRoleArn"] = "arn:aws:iam::123456789012:role/gpu-nodes"
    result = run_program(config, "dev")
    assert all(g["nodeRoleArn"] == "arn:aws:iam::123456789012:role/gpu-nodes"
               for g in by_name(result, "aws:eks/nodeGroup:NodeGroup").values())
    # The preflight lists the node groups (getNodeGroups); the role of the first one is not looked up.
    assert not [c for c, _ in result.mocks.calls if c == "aws:eks/getNodeGroup:getNodeGroup"]


# ---------------------------------------------------------------- Kindo models and Unleash flags

KINDO = "pulumi-python:dynamic/kindo:KindoModel"
FLAG = "pulumi-python:dynamic/unleash:UnleashModelFlag"


@pytest.mark.parametrize("stack", STACKS)
def test_every_model_is_registered_with_its_contract_body(stack: str) -> None:
    expected = plan(stack)
    models = by_name(run(stack), KINDO)
    assert set(models) == {m.litellmModelName for m in expected.models}
    for model in expected.models:
        registered = models[model.litellmModelName]
        body = model.body
        for key, value in body.fields.items():
            if key != "litellmParams":
                assert registered[key] == value, (model.litellmModelName, key)
        assert {k: v for k, v in registered["litellmParams"].items() if k not in body.secret_slots and k != "api_key"} == \
               {k: v for k, v in body.fields["litellmParams"].items()}
        assert registered.get("replacementModelId") == (f"{model.replacement}-id" if model.replacement else None)


@pytest.mark.parametrize("stack", STACKS)
def test_every_routed_flag_carries_the_model_ids_in_plan_order(stack: str) -> None:
    expected = plan(stack)
    flags = by_name(run(stack), FLAG)
    assert set(flags) == {flag for flag, names in expected.flags.items() if names}
    for flag, names in expected.flags.items():
        if names:
            assert flags[flag]["modelIds"] == [f"{n}-id" for n in names]
            assert flags[flag]["environment"] == expected.settings.unleash.environment
            assert flags[flag]["project"] == expected.settings.unleash.project
    assert flags["TOOL_CALLING_MODELS"]["required"] is True and flags["MULTIMODAL_MODELS"]["required"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_keys_reach_kindo_only_as_secrets(stack: str) -> None:
    result = run(stack)
    models = {r.name: r.inputs for r in result.mocks.of_type(KINDO)}
    for model in plan(stack).models:
        params = models[model.litellmModelName]["litellmParams"]
        key = unwrap(params).get("api_key")
        if key is not None:  # one secret inside makes the engine mark the whole litellmParams object secret
            assert is_secret(params), model.litellmModelName
        else:
            assert model.provider == "AWS Bedrock" and model.credential == "IRSA role"
        if model.entry.credential:
            assert key == f"{TEST_CREDENTIAL_PREFIX}{model.entry.credential}"
        if model.selfHosted:
            assert key == f"generated-{model.server}-api-key"
    everything = [r.inputs for r in result.mocks.resources]
    for name in {m.entry.credential for m in plan(stack).models if m.entry.credential}:
        places = find_values(everything, f"{TEST_CREDENTIAL_PREFIX}{name}")
        assert places and all(secret for _, secret in places), places


@pytest.mark.parametrize("stack", STACKS)
def test_serialized_providers_hold_no_secret(stack: str) -> None:
    import base64

    result = run(stack)
    secrets = [*TEST_SECRETS.values(), TEST_CREDENTIAL_PREFIX, "generated-"]
    providers = [r.inputs["__provider"] for r in result.mocks.resources if r.type in (KINDO, FLAG)]
    assert providers
    for serialized in providers:
        blob = base64.b64decode(unwrap(serialized))
        for secret in secrets:
            assert secret.encode() not in blob, secret


# ---------------------------------------------------------------- in-cluster endpoint checks

JOB = "kubernetes:batch/v1:Job"


@pytest.mark.parametrize("stack", STACKS)
def test_each_self_hosted_model_is_checked_in_cluster_before_kindo_sees_it(stack: str) -> None:
    from checker.endpoint_checker import Options, Target, script_args
    from components.endpoint_check import SCRIPT_KEY, check_script
    from planner.targets import target_for

    expected = plan(stack)
    result = run(stack)
    jobs = by_name(result, JOB)
    scripts = by_name(result, "kubernetes:core/v1:ConfigMap")
    for model in expected.models:
        if not model.selfHosted:
            continue
        server = next(s for s in expected.servers if s.name == model.server)
        job = jobs[f"{server.name}-job"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        target = target_for(model, server, environ={})
        assert isinstance(target, Target) and target.apiKey is None
        assert container["args"] == script_args(target, Options())
        # The checker is the standard library only: the Job runs it as shipped and installs nothing.
        assert container["command"] == ["python", f"/check/{SCRIPT_KEY}"]
        assert not any(word in " ".join(container["command"] + container["args"]) for word in ("pip", "install", "apt"))
        assert "--base-url" in container["args"] and server.url in container["args"]
        volume = job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        assert volume == scripts["endpoint-check-script"]["metadata"]["name"]
        key = container["env"][0]["valueFrom"]["secretKeyRef"]
        assert key == {"name": f"{server.name}-vllm", "key": "VLLM_API_KEY"}
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        depends = result.dependencies[model.litellmModelName]
        assert any(urn.endswith(f"kubernetes:batch/v1:Job::{server.name}-job") for urn in depends), depends
        assert any(urn.endswith(f"kubernetes:apps/v1:Deployment::{server.name}-deployment") for urn in depends), depends
    assert scripts["endpoint-check-script"]["data"][SCRIPT_KEY] == check_script()  # one copy for every Job
    cloud = [m for m in expected.models if not m.selfHosted]
    assert all(not any("batch/v1:Job" in urn for urn in result.dependencies[m.litellmModelName]) for m in cloud)


def test_verify_false_removes_the_job_and_the_dependency() -> None:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    model = next(m for m in config["kindo-models:models"] if m["litellmModelName"] == "qwen3-8b")
    model["verify"] = False
    result = run_program(config, "dev")
    assert result.error is None, result.error
    jobs = by_name(result, JOB)
    assert not [n for n in jobs if of_server(n, "qwen3-8b", "job")] and server_key(jobs, "bge-m3", "job")
    assert not any("batch/v1:Job" in urn for urn in result.dependencies["qwen3-8b"])
    assert any(of_server(urn.rsplit("::", 1)[1], "qwen3-8b", "deployment") for urn in result.dependencies["qwen3-8b"])


def test_a_changed_server_gets_a_new_job_name_so_the_check_runs_again() -> None:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    jobs = by_name(run_program(config, "dev"), JOB)
    before = jobs[server_key(jobs, "bge-m3", "job")]["metadata"]["name"]
    model = next(m for m in config["kindo-models:models"] if m["litellmModelName"] == "bge-m3")
    model["vllm"]["extraArgs"] = ["--max-num-seqs", "64"]
    jobs = by_name(run_program(config, "dev"), JOB)
    after = jobs[server_key(jobs, "bge-m3", "job")]["metadata"]["name"]
    assert before != after and before.startswith("verify-bge-m3-") and len(after) <= 63
