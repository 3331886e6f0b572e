"""The preflight: reads the live cluster at preview and stops, before anything is created, with one line per missing
prerequisite; adopts what exists and was not created by this stack. Under Pulumi's mocks (tests/pulumi_harness.py
LiveCluster answers the invokes and the Kubernetes GETs), and against a local API server for the reader itself."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from components.preflight import ApiServer, KubernetesUnreadable, read_cluster_facts
from planner.names import STACK_LABEL
from planner.preflight import AddonFact, ClusterFacts, StorageClassFact, decide_live
from tests.conftest import base_config, plan_of
from tests.pulumi_harness import ROOT, LiveCluster, named, run_program, stack_config
from tests.test_program import by_name

NAMESPACE_PATH = "/api/v1/namespaces/inference"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def dev(**cluster: Any) -> dict[str, Any]:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    config["kindo-models:cluster"].update(cluster)
    return config


def on_ebs(config: dict[str, Any], subnets: list[str] | None = None) -> dict[str, Any]:
    for pool in config["kindo-models:gpuPools"]:
        pool.update(weightsCache="ebs", subnetIds=subnets or ["subnet-a"])
    return config


def stopped(config: dict[str, Any], live: LiveCluster) -> str:
    """The preflight's message; it must have stopped the program before any resource was registered."""
    result = run_program(config, "dev", live=live)
    assert result.error is not None, "the preflight let the program through"
    assert result.mocks.resources == [], [r.name for r in result.mocks.resources]
    message = str(result.error)
    assert "nothing was created" in message
    return message


# ------------------------------------------------------------------------------------------ missing prerequisites


def test_a_class_on_the_ebs_driver_without_the_driver_is_a_missing_add_on() -> None:
    live = LiveCluster()
    live.add(CLASSES, named("team-gp3", provisioner="ebs.csi.aws.com", volumeBindingMode="WaitForFirstConsumer"))
    message = stopped(on_ebs(dev(storageClass="team-gp3")), live)
    assert "preflight-addon-missing [aws-ebs-csi-driver]" in message and "aws eks create-addon" in message
    assert message.count("\n  - ") == 1  # one line per missing prerequisite, and only the missing one
    live.add("/apis/storage.k8s.io/v1/csidrivers", named("ebs.csi.aws.com"))  # a self-managed driver is enough
    result = run_program(on_ebs(dev(storageClass="team-gp3")), "dev", live=live)
    assert result.error is None, result.error
    claims = by_name(result, "kubernetes:core/v1:PersistentVolumeClaim")
    assert claims and {c["spec"]["storageClassName"] for c in claims.values()} == {"team-gp3"}
    assert not by_name(result, "kubernetes:storage.k8s.io/v1:StorageClass") and not by_name(result, "aws:eks/addon:Addon")


def test_a_storage_class_the_stack_names_must_exist() -> None:
    message = stopped(dev(storageClass="fast-ssd"), LiveCluster())
    assert "preflight-storage-class-missing [cluster.storageClass]" in message
    assert "'fast-ssd'" in message and "it has: gp2" in message


def test_a_named_class_that_binds_immediately_strands_volumes_in_other_zones() -> None:
    live = LiveCluster()
    live.add(CLASSES, named("io2", provisioner="ebs.csi.aws.com", volumeBindingMode="Immediate"))
    live.add("/apis/storage.k8s.io/v1/csidrivers", named("ebs.csi.aws.com"))
    assert "preflight-storage-class-binding" in stopped(on_ebs(dev(storageClass="io2")), live)


def test_several_missing_prerequisites_are_listed_together() -> None:
    config = on_ebs(dev(storageClass="fast-ssd", autoscaler="karpenter"), ["subnet-a", "subnet-b"])
    message = stopped(config, LiveCluster())
    for code in ("preflight-storage-class-missing", "preflight-karpenter-missing", "preflight-ebs-zones"):
        assert code in message
    assert message.count("\n  - ") == 4  # the zones error once per pool


def test_an_ebs_pool_in_subnets_of_two_zones_stops_and_one_zone_passes() -> None:
    message = stopped(on_ebs(dev(), ["subnet-a", "subnet-b"]), LiveCluster())
    assert "preflight-ebs-zones [l40s]" in message and "us-west-2a, us-west-2b" in message
    assert run_program(on_ebs(dev(), ["subnet-a"]), "dev").error is None


def test_an_unknown_subnet_is_named() -> None:
    assert "preflight-subnet-unknown" in stopped(on_ebs(dev(), ["subnet-zzz"]), LiveCluster())


def test_a_cluster_the_deployer_cannot_read_stops_with_the_reason() -> None:
    class Refusing(LiveCluster):
        def get(self, path: str) -> dict[str, Any] | None:
            raise KubernetesUnreadable("the API server answered 403 to GET /api/v1/namespaces/inference: ... access entry")

    message = stopped(dev(), Refusing())
    assert "preflight-cluster-unreadable [kindo-dev]" in message and "access entry" in message


def test_a_cluster_autoscaler_without_a_pin_for_the_clusters_minor_stops() -> None:
    message = stopped(dev(autoscaler="cluster-autoscaler"), LiveCluster(version="1.29"))
    assert "preflight-autoscaler-version" in message and "1.30" in message


# ------------------------------------------------------------------------------------------ adoption


def test_an_existing_namespace_is_adopted_not_recreated() -> None:
    live = LiveCluster()
    live.add(NAMESPACE_PATH, named("inference", labels={"team": "platform"}))
    result = run_program(dev(), "dev", live=live)
    assert result.error is None, result.error
    assert by_name(result, "kubernetes:core/v1:Namespace") == {}
    deployments = by_name(result, "kubernetes:apps/v1:Deployment")
    assert deployments and {d["metadata"]["namespace"] for d in deployments.values()} == {"inference"}
    assert {j["metadata"]["namespace"] for j in by_name(result, "kubernetes:batch/v1:Job").values()} == {"inference"}
    assert result.outputs["cluster"]["namespaceAdopted"] is True
    assert NAMESPACE_PATH in live.gets


def test_the_namespace_this_stack_created_stays_managed() -> None:
    live = LiveCluster()
    live.add(NAMESPACE_PATH, named("inference", labels={STACK_LABEL: "dev"}))
    result = run_program(dev(), "dev", live=live)
    assert result.error is None
    (namespace,) = by_name(result, "kubernetes:core/v1:Namespace").values()
    assert namespace["metadata"]["labels"][STACK_LABEL] == "dev" and result.outputs["cluster"]["namespaceAdopted"] is False
    fresh = run_program(dev(), "dev")
    assert list(by_name(fresh, "kubernetes:core/v1:Namespace").values())[0]["metadata"]["name"] == "inference"


def test_the_namespace_an_earlier_version_created_is_kept_declared_and_retained() -> None:
    # Earlier versions labelled the namespace only `managed-by: pulumi`, and it sits in the stack's state: adopting
    # it would drop the Namespace resource from the program, and Pulumi would delete it and everything in it.
    live = LiveCluster()
    live.add(NAMESPACE_PATH, named("inference", labels={"app.kubernetes.io/managed-by": "pulumi"}))
    result = run_program(dev(), "dev", live=live)
    assert result.error is None, result.error
    (namespace,) = by_name(result, "kubernetes:core/v1:Namespace").values()
    assert namespace["metadata"]["labels"][STACK_LABEL] == "dev" and result.outputs["cluster"]["namespaceAdopted"] is False
    assert result.retain_on_delete["inference"] is True


def test_an_ebs_csi_add_on_the_cluster_has_is_used_and_ours_stays_managed() -> None:
    theirs = LiveCluster(addons={"aws-ebs-csi-driver": {"tags": {}, "podIdentityAssociations": [{"roleArn": "r", "serviceAccount": "s"}]}})
    result = run_program(on_ebs(dev()), "dev", live=theirs)
    assert result.error is None and "cluster-addons-ebs-csi-driver" not in by_name(result, "aws:eks/addon:Addon")
    assert by_name(result, "kubernetes:storage.k8s.io/v1:StorageClass")  # the class is still the program's
    ours = LiveCluster(addons={"aws-ebs-csi-driver": {"tags": {STACK_LABEL: "dev"}}, "eks-pod-identity-agent": {"tags": {STACK_LABEL: "dev"}}})
    result = run_program(dev(), "dev", live=ours)  # NVMe only now: what this stack created is kept, not deleted
    assert set(by_name(result, "aws:eks/addon:Addon")) == {"cluster-addons-ebs-csi-driver", "cluster-addons-pod-identity-agent"}
    ours.add(CLASSES, named("team-gp3", provisioner="ebs.csi.aws.com", volumeBindingMode="WaitForFirstConsumer"))
    result = run_program(on_ebs(dev(storageClass="team-gp3")), "dev", live=ours)  # now the stack names its own class
    assert result.error is None, result.error
    assert "cluster-addons-ebs-csi-driver" in by_name(result, "aws:eks/addon:Addon")


def test_a_storage_class_of_our_name_that_is_not_ours_is_a_conflict() -> None:
    live = LiveCluster()
    live.add(CLASSES, named("kindo-models-gp3", provisioner="ebs.csi.aws.com", volumeBindingMode="WaitForFirstConsumer"))
    assert "preflight-storage-class-conflict" in stopped(on_ebs(dev()), live)


def test_the_preflight_only_reads() -> None:
    live = LiveCluster()
    result = run_program(dev(), "dev", live=live)
    assert result.error is None
    assert set(live.gets) >= {NAMESPACE_PATH, CLASSES, "/apis/storage.k8s.io/v1/csidrivers", "/apis/apps/v1/deployments",
                              "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/nodepools.karpenter.sh"}
    tokens = [token for token, _ in result.mocks.calls]
    assert tokens.count("aws:eks/getAddon:getAddon") == 2 and "aws:eks/getCluster:getCluster" in tokens


# ------------------------------------------------------------------------------------------ decisions (no Pulumi)


def test_a_cluster_autoscaler_running_while_the_stack_sizes_its_pools_is_a_warning() -> None:
    plan = plan_of(base_config())
    live, findings = decide_live(plan, ClusterFacts(version="1.34", autoscalers=("kube-system/cluster-autoscaler",)), "us-west-2")
    assert [f.code for f in findings] == ["preflight-autoscaler-running"] and live.autoscaler is None


def test_an_add_on_without_identity_is_a_warning_and_an_unreadable_one_an_error() -> None:
    raw = base_config()
    raw["gpuPools"][1].update(weightsCache="ebs", subnetIds=["subnet-a"])
    plan = plan_of(raw)
    facts = ClusterFacts(version="1.34", addons={"aws-ebs-csi-driver": AddonFact(True)}, subnetZones={"subnet-a": "z1"},
                         storageClasses={})
    live, findings = decide_live(plan, facts, "us-west-2")
    assert [f.code for f in findings] == ["preflight-addon-identity"] and not live.ebsCsiAddon
    assert live.storageClass is not None and live.storageClass.name == "kindo-models-gp3"
    broken = ClusterFacts(version="1.34", addons={"aws-ebs-csi-driver": AddonFact(False, error="AccessDenied")},
                          subnetZones={"subnet-a": "z1"})
    assert [f.code for f in decide_live(plan, broken, "us-west-2")[1]] == ["preflight-addon-unreadable"]


def test_the_pod_identity_agent_is_added_only_when_a_role_needs_it_and_none_runs() -> None:
    raw = base_config()
    raw["gpuPools"][1].update(weightsCache="ebs", subnetIds=["subnet-a"])
    plan = plan_of(raw)
    zones = {"subnet-a": "z1"}
    assert decide_live(plan, ClusterFacts(version="1.34", subnetZones=zones), "r")[0].podIdentityAgent is True
    running = ClusterFacts(version="1.34", subnetZones=zones, daemonSets=frozenset({"eks-pod-identity-agent"}))
    assert decide_live(plan, running, "r")[0].podIdentityAgent is False
    assert decide_live(plan_of(base_config()), ClusterFacts(version="1.34"), "r")[0].podIdentityAgent is False


def test_a_cluster_without_untainted_node_groups_is_warned_about() -> None:
    plan = plan_of(base_config())
    lonely = ClusterFacts(version="1.34", nodeGroups=("kindo-l40s-20260101",))
    assert [f.code for f in decide_live(plan, lonely, "r")[1]] == ["preflight-no-system-nodes"]
    assert decide_live(plan, replace(lonely, nodeGroups=("kindo-l40s-1", "core")), "r")[1] == []
    assert decide_live(plan, replace(lonely, karpenter=True), "r")[1] == []  # Karpenter brings its own nodes


def test_a_named_class_on_another_provisioner_needs_no_ebs_driver() -> None:
    raw = base_config()
    raw["cluster"]["storageClass"] = "fsx"
    facts = ClusterFacts(version="1.34", storageClasses={"fsx": StorageClassFact("fsx.csi.aws.com", "WaitForFirstConsumer", False)})
    live, findings = decide_live(plan_of(raw), facts, "r")
    assert findings == [] and live.storageClass is None and not live.ebsCsiAddon


# ------------------------------------------------------------------------------------------ the reader


class Api(http.server.BaseHTTPRequestHandler):
    objects: dict[str, Any] = {}
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Api.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.path == "/api/v1/namespaces/forbidden":
            self.send_response(403)
            self.end_headers()
            return
        found = Api.objects.get(self.path)
        self.send_response(200 if found is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(found or {"kind": "Status", "code": 404}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local API server (127.0.0.1) and a fake `aws` CLI on PATH that prints a token as `aws eks get-token` does."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    aws = tmp_path / "aws"
    aws.write_text('#!/bin/sh\necho \'{"kind": "ExecCredential", "status": {"token": "k8s-aws-v1.TEST"}}\'\n')
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    Api.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_reader_sends_the_eks_token_and_maps_404_to_absent(api: str) -> None:
    Api.objects = {CLASSES: {"items": [named("gp2", provisioner="kubernetes.io/aws-ebs")]}}
    reads = ApiServer(api, "LS0tLS1CRUdJTi1DRVJU", "kindo-dev", "us-west-2")
    assert reads.get(CLASSES)["items"][0]["metadata"]["name"] == "gp2"
    assert reads.get(NAMESPACE_PATH) is None
    assert all(auth == "Bearer k8s-aws-v1.TEST" for _, auth in Api.seen)


def test_the_reader_says_what_to_do_when_refused_or_unreachable(api: str, tmp_path: Path) -> None:
    with pytest.raises(KubernetesUnreadable, match="access entry"):
        ApiServer(api, "LS0t", "kindo-dev", None).get("/api/v1/namespaces/forbidden")
    with pytest.raises(KubernetesUnreadable, match="cannot reach the cluster's API server"):
        ApiServer("http://127.0.0.1:9", "LS0t", "kindo-dev", None).get(CLASSES)
    (tmp_path / "aws").unlink()
    os.environ["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != str(tmp_path))
    if not any(Path(p, "aws").exists() for p in os.environ["PATH"].split(os.pathsep)):
        with pytest.raises(KubernetesUnreadable, match="AWS CLI"):
            ApiServer(api, "LS0t", "kindo-dev", None).get(CLASSES)


def test_facts_read_from_the_api_tell_ours_from_theirs(api: str) -> None:
    from planner.preflight import PreflightQuery

    Api.objects = {
        NAMESPACE_PATH: named("inference", labels={STACK_LABEL: "dev"}),
        CLASSES: {"items": [named("kindo-models-gp3", provisioner="ebs.csi.aws.com", volumeBindingMode="WaitForFirstConsumer",
                                  labels={STACK_LABEL: "dev"})]},
        "/apis/apps/v1/deployments": {"items": [named("cluster-autoscaler", namespace="kube-system", spec={"template": {"spec": {
            "containers": [{"image": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.2"}]}}})]},
    }
    query = PreflightQuery("kindo-dev", "dev", "inference", (), ())
    facts = read_cluster_facts(query, "1.34", ApiServer(api, "LS0t", "kindo-dev", None))
    assert facts.namespace == "ours" and facts.storageClasses["kindo-models-gp3"].ours
    assert facts.autoscalers == ("kube-system/cluster-autoscaler",) and facts.karpenter is False
    assert facts.unreadable is None
