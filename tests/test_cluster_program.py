"""Issue 13 under Pulumi's mocks: what a first `pulumi up` on a fresh EKS cluster needs, for both stacks and a
generated 1,000-model stack; and the preflight that stops before anything is created when the cluster lacks it."""

from __future__ import annotations

import base64
import json
import sys
from functools import lru_cache
from typing import Any

import kubernetes_validate
import pytest

from planner import catalogs
from planner.config import parse_settings
from planner.plan import Plan, make_plan
from tests.conftest import ALL_REQUIRED, BASE
from tests.pulumi_harness import ROOT, LiveCluster, Run, named, run_program, server_key, stack_config
from tests.test_program import EKS_KUBERNETES, by_name, unwrap

sys.path.insert(0, str(ROOT / "bench"))
from plan_scale import generated_stack  # noqa: E402

MIRROR = "123456789012.dkr.ecr.us-west-2.amazonaws.com/mirror"
PUBLIC = ("docker.io", "nvcr.io", "registry.k8s.io", "quay.io", "ghcr.io", "public.ecr.aws", "github.io",
          "vllm/vllm-openai", "python:")
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
ADDON = "aws:eks/addon:Addon"


def committed(stack: str) -> dict[str, Any]:
    return stack_config(ROOT / f"Pulumi.{stack}.yaml")


def generated() -> dict[str, Any]:
    """bench/plan_scale.py's 1,000 models (50 self-hosted), made deployable: the required flags and a transcription
    model routed, its pool on EBS in one subnet, and every image from a mirror."""
    config = generated_stack(1000, 50)["config"]
    config["kindo-models:models"][50]["flags"] = list(ALL_REQUIRED)
    config["kindo-models:models"].append(dict(BASE["models"][2]))
    config["kindo-models:gpuPools"][0].update(weightsCache="ebs", subnetIds=["subnet-a"])
    config["kindo-models:images"] = {"registry": MIRROR}
    return config


def ebs_variant(stack: str) -> dict[str, Any]:
    """The stack with every pool's weights on EBS (one subnet each) and every image mirrored."""
    config = committed(stack)
    for pool in config["kindo-models:gpuPools"]:
        pool.update(weightsCache="ebs", subnetIds=["subnet-a" if stack == "dev" else "subnet-use1a"])
    config["kindo-models:images"] = {"registry": MIRROR}
    return config


VARIANTS = {"dev": lambda: committed("dev"), "prod": lambda: committed("prod"), "dev-ebs": lambda: ebs_variant("dev"),
            "prod-ebs": lambda: ebs_variant("prod"), "generated": generated}


@lru_cache(maxsize=None)
def run(variant: str) -> Run:
    result = run_program(VARIANTS[variant](), "prod" if variant.startswith("prod") else "dev")
    assert result.error is None, result.error
    return result


@lru_cache(maxsize=None)
def plan(variant: str) -> Plan:
    raw = {key.split(":", 1)[1]: value for key, value in VARIANTS[variant]().items() if key.startswith("kindo-models:")}
    settings, findings = parse_settings(raw, "prod" if variant.startswith("prod") else "dev")
    return make_plan(settings, findings)


def claim_classes(result: Run) -> list[str | None]:
    """The storage class of every PersistentVolumeClaim and every generic ephemeral volume's claim template."""
    classes = [c["spec"].get("storageClassName") for c in by_name(result, CLAIM).values()]
    for deployment in by_name(result, DEPLOYMENT).values():
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "ephemeral" in volume:
                classes.append(volume["ephemeral"]["volumeClaimTemplate"]["spec"].get("storageClassName"))
    return classes


# ------------------------------------------------------------------------------------------ storage


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_claim_names_a_class_the_program_creates_or_the_stack_names(variant: str) -> None:
    result, expected = run(variant), plan(variant)
    created = {c["metadata"]["name"] for c in by_name(result, STORAGE_CLASS).values()}
    classes = claim_classes(result)
    assert all(name is not None and name in created for name in classes), (classes, created)
    ebs_servers = [s for s in expected.servers if s.weightsCache == "ebs"]
    assert len(classes) == len(ebs_servers)  # a claim (or claim template) per EBS-cached server, none for NVMe
    if ebs_servers:
        (storage_class,) = by_name(result, STORAGE_CLASS).values()
        assert storage_class["parameters"]["encrypted"] == "true" and storage_class["parameters"]["type"] == "gp3"
        assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
        kubernetes_validate.validate(storage_class, EKS_KUBERNETES, strict=True)
    else:
        assert created == set() and not by_name(result, ADDON)


@pytest.mark.parametrize("variant", ["dev-ebs", "generated"])
def test_the_program_ensures_the_ebs_csi_driver_with_pod_identity(variant: str) -> None:
    addons = by_name(run(variant), ADDON)
    assert set(addons) == {"cluster-addons-pod-identity-agent", "cluster-addons-ebs-csi-driver"}
    driver = addons["cluster-addons-ebs-csi-driver"]
    assert driver["addonName"] == "aws-ebs-csi-driver" and driver["tags"]["kindo-models/stack"] == "dev"
    (association,) = driver["podIdentityAssociations"]
    assert association["serviceAccount"] == "ebs-csi-controller-sa"
    role = by_name(run(variant), "aws:iam/role:Role")["cluster-addons-ebs-csi-role"]
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    (attachment,) = by_name(run(variant), "aws:iam/rolePolicyAttachment:RolePolicyAttachment").values()
    assert attachment["policyArn"].endswith("/AmazonEBSCSIDriverPolicyV2")


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_nvme_pools_raid_their_instance_store_and_cache_weights_there(variant: str) -> None:
    templates = by_name(run(variant), "aws:ec2/launchTemplate:LaunchTemplate")
    for pool in plan(variant).pools:
        assert pool.weightsCache == "nvme"
        user_data = base64.b64decode(templates[f"{pool.name}-lt"]["userData"]).decode()
        assert "Content-Type: application/node.eks.aws" in user_data and "strategy: RAID0" in user_data
    for server in plan(variant).servers:
        pod = by_name(run(variant), DEPLOYMENT)[f"{server.name}-deployment"]["spec"]["template"]["spec"]
        cache = next(v for v in pod["volumes"] if v["name"] == "cache")
        assert cache["emptyDir"] == {"sizeLimit": f"{server.cacheVolumeGiB}Gi"}


# ------------------------------------------------------------------------------------------ node counts


def expected_nodes(config: dict[str, Any], pool: dict[str, Any]) -> int:
    """Computed here from the stack alone: every instance type of these stacks has one GPU, and one small model's
    replica takes one GPU, so a pool needs one node per replica placed on it."""
    instance = catalogs.instances()[pool["instanceType"]]
    assert instance.gpus == 1
    return sum((m["vllm"].get("replicas", 1)) for m in config["kindo-models:models"]
               if m.get("vllm") and m["vllm"]["gpuPool"] == pool["name"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_node_group_desired_sizes_are_what_the_servers_need(variant: str) -> None:
    result, config = run(variant), VARIANTS[variant]()
    groups = by_name(result, NODE_GROUP)
    assert all(s.gpusPerReplica == 1 for s in plan(variant).servers)
    for pool in config["kindo-models:gpuPools"]:
        needed = expected_nodes(config, pool)
        desired = max(pool.get("minSize", 0), min(needed, pool["maxSize"]))
        assert groups[f"{pool['name']}-ng"]["scalingConfig"]["desiredSize"] == desired, pool["name"]
        assert result.ignore_changes[f"{pool['name']}-ng"] == []  # no autoscaler: the program owns it on every up


def with_autoscaler(mode: str, live: LiveCluster | None = None) -> Run:
    config = committed("dev")
    config["kindo-models:cluster"]["autoscaler"] = mode
    return run_program(config, "dev", live=live)


def test_cluster_autoscaler_owns_desired_size_and_the_program_installs_it_pinned() -> None:
    result = with_autoscaler("cluster-autoscaler")
    assert result.error is None, result.error
    groups = by_name(result, NODE_GROUP)
    assert all(result.ignore_changes[name] == ["scalingConfig.desiredSize"] for name in groups)
    assert groups["l40s-ng"]["scalingConfig"]["desiredSize"] == 2  # the size at creation: what the servers need
    assert groups["l40s-ng"]["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-l40s"
    assert groups["l40s-ng"]["tags"]["k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage"].endswith("Gi")
    release = by_name(result, RELEASE)["cluster-autoscaler-release"]
    assert (release["chart"], release["version"]) == ("cluster-autoscaler", "9.53.0")  # pinned for Kubernetes 1.34
    assert release["repositoryOpts"]["repo"] == "https://kubernetes.github.io/autoscaler"
    values = release["values"]
    assert values["image"] == {"repository": "registry.k8s.io/autoscaling/cluster-autoscaler", "tag": "v1.34.5"}
    assert values["autoDiscovery"]["clusterName"] == "kindo-dev" and values["awsRegion"] == "us-west-2"
    assert values["extraArgs"]["skip-nodes-with-local-storage"] == "false"
    association = by_name(result, "aws:eks/podIdentityAssociation:PodIdentityAssociation")["cluster-autoscaler-identity"]
    assert (association["namespace"], association["serviceAccount"]) == ("kube-system", values["rbac"]["serviceAccount"]["name"])
    policy = json.loads(by_name(result, "aws:iam/rolePolicy:RolePolicy")["cluster-autoscaler-policy"]["policy"])
    assert "eks:DescribeNodegroup" in policy["Statement"][0]["Action"]
    assert "aws:ResourceTag/k8s.io/cluster-autoscaler/kindo-dev" in json.dumps(policy["Statement"][1]["Condition"])
    assert "cluster-addons-pod-identity-agent" in by_name(result, ADDON)  # the role goes through Pod Identity
    deployments = by_name(result, DEPLOYMENT)
    pod = deployments[server_key(deployments, "qwen3-8b", "deployment")]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes": "cache"}


def test_an_autoscaler_the_cluster_runs_is_adopted_not_installed_twice() -> None:
    live = LiveCluster()
    live.add("/apis/apps/v1/deployments", named("cluster-autoscaler", namespace="kube-system", spec={"template": {"spec": {
        "containers": [{"image": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.2"}]}}}))
    result = with_autoscaler("cluster-autoscaler", live)
    assert result.error is None and RELEASE not in {r.type for r in result.mocks.resources if "autoscaler" in r.name}
    assert "cluster-autoscaler-release" not in by_name(result, RELEASE)


def test_karpenter_never_gets_desired_sizes_and_must_be_there() -> None:
    missing = with_autoscaler("karpenter")
    assert missing.error is not None and "preflight-karpenter-missing" in str(missing.error)
    assert missing.mocks.resources == []
    live = LiveCluster()
    live.add("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/nodepools.karpenter.sh", named("nodepools.karpenter.sh"))
    result = with_autoscaler("karpenter", live)
    assert result.error is None, result.error
    for name, group in by_name(result, NODE_GROUP).items():
        assert group["scalingConfig"]["desiredSize"] == group["scalingConfig"]["minSize"]
        assert result.ignore_changes[name] == ["scalingConfig.desiredSize"]
    assert not by_name(result, RELEASE).get("cluster-autoscaler-release")


# ------------------------------------------------------------------------------------------ images


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for child in value.values() for s in strings(child)]
    if isinstance(value, list):
        return [s for child in value for s in strings(child)]
    return [value] if isinstance(value, str) else []


def image_fields(value: Any) -> list[str]:
    """Every container image and every Helm `image.repository` in a rendered object."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "image" and isinstance(child, str):
                found.append(child)
            elif key == "image" and isinstance(child, dict) and "repository" in child:
                found.append(child["repository"])
            else:
                found += image_fields(child)
    elif isinstance(value, list):
        found += [image for child in value for image in image_fields(child)]
    return found


@pytest.mark.parametrize("variant", ["dev-ebs", "prod-ebs", "generated"])
def test_with_a_registry_nothing_refers_to_a_public_registry(variant: str) -> None:
    rendered = [unwrap(r.inputs) for r in run(variant).mocks.resources if r.type.startswith("kubernetes:")]
    images = [image for obj in rendered for image in image_fields(obj)]
    assert images and all(image.startswith(MIRROR + "/") for image in images), images
    releases = by_name(run(variant), RELEASE)
    assert releases and all(r["chart"].startswith(f"oci://{MIRROR}/charts/") and "repo" not in (r.get("repositoryOpts") or {})
                            for r in releases.values())
    # The checker's source shipped in a ConfigMap is code, not a reference (its messages may name an image).
    scanned = [{k: v for k, v in obj.items() if not (obj.get("kind") == "ConfigMap" and k in ("data", "binaryData"))}
               for obj in rendered]
    leaks = [s for obj in scanned for s in strings(obj) if any(public in s for public in PUBLIC) and MIRROR not in s]
    assert leaks == []


def test_the_autoscaler_chart_and_image_come_from_the_mirror_too() -> None:
    config = committed("dev")
    config["kindo-models:cluster"]["autoscaler"] = "cluster-autoscaler"
    config["kindo-models:images"] = {"registry": MIRROR, "mirrors": {"registry.k8s.io": "123456789012.dkr.ecr.us-west-2.amazonaws.com/k8s"}}
    result = run_program(config, "dev")
    assert result.error is None, result.error
    release = by_name(result, RELEASE)["cluster-autoscaler-release"]
    assert release["chart"] == f"oci://{MIRROR}/charts/cluster-autoscaler"
    assert release["values"]["image"]["repository"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/k8s/autoscaling/cluster-autoscaler"
    assert release["repositoryOpts"]["username"] == "AWS"  # logged in to ECR with a token, kept secret
    assert "ecr-token-TEST" not in json.dumps(run_program(config, "dev").outputs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_check_job_runs_the_shipped_checker_and_installs_nothing(variant: str) -> None:
    jobs = by_name(run(variant), "kubernetes:batch/v1:Job")
    assert len(jobs) == sum(1 for m in plan(variant).models if m.check is not None) > 0
    for job in jobs.values():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "/check/endpoint_checker.py"]
        words = " ".join(container["command"] + container["args"])
        assert not any(word in words for word in ("pip", "install", "apt-get", "curl", "uv "))
        assert container["image"].startswith(MIRROR + "/docker.io/library/python:") == (variant not in ("dev", "prod"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_manifest_still_validates(variant: str) -> None:
    kinds = {r.type for r in run(variant).mocks.resources}
    for resource in run(variant).mocks.resources:
        if resource.type.startswith("kubernetes:") and "helm.sh" not in resource.type:
            kubernetes_validate.validate(unwrap(resource.inputs), EKS_KUBERNETES, strict=True)
    assert "kubernetes:apps/v1:Deployment" in kinds


def test_cluster_parts_use_the_clusters_kubernetes_provider_and_aws_parts_the_default() -> None:
    results = [run("dev-ebs"), with_autoscaler("cluster-autoscaler")]
    for result in results:
        assert result.error is None, result.error
        for resource in result.mocks.resources:
            if resource.type.startswith("kubernetes:") and resource.custom:
                assert resource.provider and "pulumi:providers:kubernetes::eks" in resource.provider, resource.name
            elif resource.type.startswith("aws:") and resource.custom:
                assert not resource.provider or "providers:aws" in resource.provider, (resource.name, resource.provider)
    assert STORAGE_CLASS in {r.type for r in results[0].mocks.resources}
    assert "cluster-autoscaler-release" in by_name(results[1], RELEASE)
