"""Scheduling feasibility, the weights cache, node counts, mirrored images and placeholders: the planner's side."""

from __future__ import annotations

import email
import tomllib
from dataclasses import replace
from typing import Any

import pytest
import yaml

from planner import catalogs
from planner.catalogs import InstanceType
from planner.images import chart_source, image_ref, parse_image
from planner.config import Images
from planner.scheduling import NodeShape, Resources, check_replica_fits, node_shape, nodes_needed
from planner.servers import replica_resources
from planner.storage import AL2023_RAID0, BOTTLEROCKET_EPHEMERAL
from tests.conftest import add_model, base_config, only, plan_of

AMIS = ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA")

# Allocatable as Karpenter's generated instance-type reference publishes it for AL2023 (EC2 data run through the same
# kubelet reservations): https://github.com/aws/karpenter-provider-aws/blob/1d927085dd81a9df9301e613f371dac5b4d16bfe/
# website/content/en/v1.14/reference/instance-types.md (cpu, memory, pods). An independent source for our formulas.
KARPENTER_PUBLISHED = {
    "g5.xlarge": (3920, 14162, 58), "g6e.xlarge": (3920, 29317, 58), "g6.12xlarge": (47810, 178933, 234),
    "g6e.48xlarge": (191450, 1449132, 492), "p4d.24xlarge": (95690, 1082712, 737), "p5.48xlarge": (191450, 1938410, 100),
}


@pytest.mark.parametrize("name", sorted(KARPENTER_PUBLISHED))
def test_allocatable_matches_what_eks_publishes(name: str) -> None:
    shape = node_shape(catalogs.instances()[name], "AL2023_x86_64_NVIDIA", True, 90, True)
    cpu, memory, eni_pods = KARPENTER_PUBLISHED[name]
    assert shape.allocatable.cpuMilli == cpu and shape.memoryEstimateMiB == memory
    # Managed node groups cap the kubelet's max pods at 110 (<= 30 vCPUs) or 250; the reservation uses the ENI figure.
    assert shape.allocatable.pods == min(eni_pods, 110 if catalogs.instances()[name].vcpus <= 30 else 250)


@pytest.mark.parametrize("name", sorted(catalogs.instances()))
def test_todays_requests_fit_every_catalogued_instance_for_every_replica_size(name: str) -> None:
    """The request decision is kept (planner/servers.py) because it fits every node the catalog has, on both AMIs,
    however the node's GPUs are split into replicas."""
    instance = catalogs.instances()[name]
    for ami in AMIS:
        shape = node_shape(instance, ami, True, 90, ami.startswith("AL2023"))
        gpus = 1
        while gpus <= instance.gpus:
            cpu, memory, shm = replica_resources(instance, gpus)
            request = Resources(gpus, cpu * 1000, memory * 1024, 20.0, 1)
            assert check_replica_fits("m", request, shape, shm) == [], (name, ami, gpus)
            assert nodes_needed([request] * (instance.gpus // gpus), shape) == 1, (name, ami, gpus)
            gpus *= 2


def test_every_gpu_instance_in_the_catalog_has_local_nvme() -> None:
    assert all(i.nvmeGB >= 250 for i in catalogs.instances().values())


def tiny(name: str, **fields: Any) -> InstanceType:
    base = catalogs.instances()["g6.xlarge"]
    return replace(base, name=name, **fields)


@pytest.fixture
def with_instance(monkeypatch: pytest.MonkeyPatch):
    """Add an instance type to the catalog for one test (a node too small for its pod in one resource)."""
    table = dict(catalogs.instances())

    def add(instance: InstanceType) -> None:
        table[instance.name] = instance
        monkeypatch.setattr(catalogs, "instances", lambda: table)

    return add


def stack_on(instance: str, **pool: Any) -> dict[str, Any]:
    raw = base_config()
    raw["gpuPools"][1].update(instanceType=instance, **pool)
    return raw


@pytest.mark.parametrize("resource,fields,code,fix", [
    ("cpu", {"vcpus": 1}, "pod-cpu-does-not-fit", "more vCPUs per GPU"),
    ("memory", {"memoryGiB": 4}, "pod-memory-does-not-fit", "more memory per GPU"),
    ("disk", {"nvme": (1, 50)}, "pod-disk-does-not-fit", "weightsCache: ebs"),
])
def test_a_server_that_cannot_fit_its_node_is_an_error_naming_the_resource(with_instance, resource: str,
                                                                           fields: dict[str, Any], code: str, fix: str) -> None:
    with_instance(tiny("x9.test", **fields))
    plan = plan_of(stack_on("x9.test"))
    finding = only(plan, code, "bge-m3")
    assert finding.severity == "error" and fix in finding.message and "x9.test" in finding.message
    others = {f.code for f in plan.errors} - {code}
    assert not {c for c in others if c.startswith("pod-")}, others  # the one resource, named


def test_a_disk_error_on_an_ebs_pool_asks_for_a_larger_root_volume(with_instance) -> None:
    with_instance(tiny("x9.test", nvme=(0, 0)))
    raw = stack_on("x9.test", subnetIds=["subnet-a"], diskSizeGiB=90)
    assert plan_of(raw).ok
    raw["gpuPools"][1]["diskSizeGiB"] = 60
    plan = plan_of(raw)
    assert only(plan, "pool-disk-too-small", "l40s").severity == "error"
    assert "diskSizeGiB" in only(plan, "pod-disk-does-not-fit", "bge-m3").message


def test_shm_above_the_pods_memory_is_an_error() -> None:
    shape = node_shape(catalogs.instances()["g6e.xlarge"], "AL2023_x86_64_NVIDIA", True, 90, True)
    findings = check_replica_fits("m", Resources(1, 1000, 4096, 20.0, 1), shape, shm_gib=4)
    assert [f.code for f in findings] == ["pod-shm-above-memory"]


def test_nodes_needed_packs_every_resource_not_only_gpus() -> None:
    shape = NodeShape("x", "AL2023_x86_64_NVIDIA", Resources(4, 48000, 190000, 200.0, 110), Resources(0, 180, 104, 0, 5),
                      42.0, 170000)
    small = Resources(1, 1000, 1000, 60.0, 1)
    assert nodes_needed([small] * 2, shape) == 1
    assert nodes_needed([small] * 3, shape) == 2  # 3 x 60 GiB exceed the 158 GiB a node leaves, though 3 GPUs fit
    assert nodes_needed([Resources(4, 1000, 1000, 1.0, 1), small], shape) == 2


# ------------------------------------------------------------------------------------------ the weights cache


def test_cache_defaults_to_nvme_and_ebs_needs_one_zones_subnets(with_instance) -> None:
    plan = plan_of(base_config())
    assert {p.weightsCache for p in plan.pools} == {"nvme"} and all(p.userData for p in plan.pools)
    server = next(s for s in plan.servers if s.litellmModelName == "bge-m3")
    assert server.weightsCache == "nvme" and server.storageClass is None
    assert server.diskRequestGiB == server.cacheVolumeGiB + catalogs.eks().writableLayerGiB
    raw = base_config()
    raw["gpuPools"][1]["weightsCache"] = "ebs"
    assert only(plan_of(raw), "pool-ebs-zone", "l40s").severity == "error"
    raw["gpuPools"][1]["subnetIds"] = ["subnet-a"]
    ebs = plan_of(raw)
    assert ebs.ok and ebs.ebs_pools[0].userData is None
    server = next(s for s in ebs.servers if s.litellmModelName == "bge-m3")
    assert server.storageClass == "kindo-models-gp3" and server.diskRequestGiB == catalogs.eks().writableLayerGiB
    with_instance(tiny("x8.test", nvme=(0, 0)))
    no_store = stack_on("x8.test", subnetIds=["subnet-a"])
    assert plan_of(no_store).pools[1].weightsCache == "ebs"
    no_store["gpuPools"][1]["weightsCache"] = "nvme"
    assert "x8.test has no local NVMe" in only(plan_of(no_store), "pool-no-instance-store").message


def test_the_node_configurations_are_what_nodeadm_and_bottlerocket_read() -> None:
    message = email.message_from_string(AL2023_RAID0)
    assert message.is_multipart()
    (part,) = message.get_payload()
    assert part.get_content_type() == "application/node.eks.aws"
    config = yaml.safe_load(part.get_payload())
    assert config["kind"] == "NodeConfig" and config["spec"]["instance"]["localStorage"] == {"strategy": "RAID0"}
    settings = tomllib.loads(BOTTLEROCKET_EPHEMERAL)["settings"]["bootstrap-commands"]["k8s-ephemeral-storage"]
    assert settings["commands"][0] == ["apiclient", "ephemeral-storage", "init"]
    assert "/var/lib/kubelet" in settings["commands"][1] and settings["essential"] is True


# ------------------------------------------------------------------------------------------ node counts


def test_desired_size_is_what_the_servers_need_unless_an_autoscaler_owns_it() -> None:
    raw = base_config()
    raw["models"][1]["vllm"]["replicas"] = 2
    pool = next(p for p in plan_of(raw).pools if p.name == "l40s")
    assert (pool.nodesNeeded, pool.desiredSize, pool.desiredSizeOwner) == (2, 2, "program")
    raw["gpuPools"][1]["desiredSize"] = 1
    assert only(plan_of(raw), "pool-desired-below-need", "l40s").severity == "warning"
    del raw["gpuPools"][1]["desiredSize"]
    raw["cluster"]["autoscaler"] = "karpenter"
    karpenter = plan_of(raw)
    pool = next(p for p in karpenter.pools if p.name == "l40s")
    assert (pool.desiredSize, pool.desiredSizeOwner) == (0, "karpenter")
    assert "kindo-models/pool=l40s" in only(karpenter, "pool-karpenter", "l40s").message


# ------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize("image,host,path,tag", [
    ("vllm/vllm-openai:v0.33.0", "docker.io", "vllm/vllm-openai", ":v0.33.0"),
    ("python:3.12.8-slim", "docker.io", "library/python", ":3.12.8-slim"),
    ("docker.io/library/python:3.12", "docker.io", "library/python", ":3.12"),
    ("nvcr.io/nvidia/k8s-device-plugin:v0.17.1", "nvcr.io", "nvidia/k8s-device-plugin", ":v0.17.1"),
    ("localhost:5000/vllm:dev", "localhost:5000", "vllm", ":dev"),
    ("ghcr.io/o/img@sha256:" + "a" * 64, "ghcr.io", "o/img", "@sha256:" + "a" * 64),
])
def test_image_references_split_like_a_container_runtime(image: str, host: str, path: str, tag: str) -> None:
    ref = parse_image(image)
    assert (ref.host, ref.path, ref.tag) == (host, path, tag)


def test_mirrors_map_each_upstream_registry() -> None:
    images = Images(registry="reg.internal/mirror", mirrors={"docker.io": "123.dkr.ecr.us-east-1.amazonaws.com/docker-hub"})
    assert image_ref("python:3.12.8-slim", images) == "123.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/python:3.12.8-slim"
    assert image_ref("nvcr.io/nvidia/k8s-device-plugin:v0.17.1", images) == "reg.internal/mirror/nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    assert image_ref("vllm/vllm-openai:v0.33.0", Images()) == "vllm/vllm-openai:v0.33.0"
    chart = chart_source("cluster-autoscaler", "https://kubernetes.github.io/autoscaler", "9.53.0", images)
    assert (chart.chart, chart.repository, chart.ecrRegistry) == ("oci://reg.internal/mirror/charts/cluster-autoscaler", None, None)
    ecr = chart_source("x", "https://r", "1", Images(charts="oci://123.dkr.ecr.us-east-1.amazonaws.com/charts"))
    assert ecr.ecrRegistry == "123.dkr.ecr.us-east-1.amazonaws.com"


def test_the_plan_decides_the_final_image_references() -> None:
    raw = base_config()
    raw["images"] = {"registry": "reg.internal/mirror"}
    add_model(raw, litellmModelName="qwen3-8b", provider="Self-Hosted", contextWindow=40960,
              vllm={"model": "Qwen/Qwen3-8B", "gpuPool": "l40s", "image": "ghcr.io/acme/vllm:v0.33.0"})
    plan = plan_of(raw)
    images = {s.litellmModelName: s.image for s in plan.servers}
    assert images == {"bge-m3": "reg.internal/mirror/docker.io/vllm/vllm-openai:v0.33.0",
                      "qwen3-8b": "reg.internal/mirror/ghcr.io/acme/vllm:v0.33.0"}
    assert {m.check.image for m in plan.models if m.check} == {"reg.internal/mirror/docker.io/library/python:3.12.8-slim"}
    plugin = plan.device_plugin
    assert plugin is not None and plugin.imageRepository == "reg.internal/mirror/nvcr.io/nvidia/k8s-device-plugin"
    assert plugin.imageTag == "v0.17.1" and plugin.chart.chart == "oci://reg.internal/mirror/charts/nvidia-device-plugin"


@pytest.mark.parametrize("images,field", [
    ({"registry": "https://reg.internal"}, "images.registry"),
    ({"charts": "https://charts.internal"}, "images.charts"),
    ({"mirrors": {"docker.io": "https://x"}}, "images.mirrors"),
    ({"registy": "x"}, "images.registy"),
])
def test_a_bad_images_setting_names_the_field(images: dict[str, Any], field: str) -> None:
    raw = base_config()
    raw["images"] = images
    errors = plan_of(raw).errors
    assert errors and any(f.code.startswith("config-") and field in f.message for f in errors), errors


# ------------------------------------------------------------------------------------------ placeholders


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stacks_placeholders_are_warned_about(stack: str) -> None:
    from tests.test_stacks import plan as stack_plan

    plan = stack_plan(stack)
    fields = {f.subject for f in plan.findings if f.code == "placeholder-value"}
    assert {"kindo.apiUrl", "unleash.url", "kindo.orgId", "kindo.userId"} <= fields
    assert all(f.severity == "warning" for f in plan.findings if f.code == "placeholder-value")
    if stack == "prod":
        assert "gpuPools[h100].capacityReservationId" in fields


def test_real_looking_values_are_not_placeholders() -> None:
    raw = base_config()
    raw["kindo"] = {"apiUrl": "https://kindo.acme.io", "orgId": "3b7e5c1a-0d4f-4a57-9a57-6f1c2d9e8b10", "userId": "u-1"}
    raw["unleash"]["url"] = "https://flags.acme.io"
    assert not [f for f in plan_of(raw).findings if f.code == "placeholder-value"]
    raw["cluster"]["nodeRoleArn"] = "arn:aws:iam::123456789012:role/gpu"
    raw["unleash"]["url"] = "https://unleash.kindo.test"
    assert {f.subject for f in plan_of(raw).findings if f.code == "placeholder-value"} == {"cluster.nodeRoleArn", "unleash.url"}
