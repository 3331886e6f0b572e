"""Issue 14: zero-downtime server changes (generations), the pools' headroom for them, and weights from S3.

Planner decisions on small stacks, and the program under Pulumi's mocks for what it renders. The step order of a
change through Kindo and Unleash is tests/integration/test_rollout_lifecycle.py.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

import kubernetes_validate
import pytest

from components.preflight import live_server, live_servers, quantity
from planner.config import parse_settings
from planner.plan import Plan, make_plan
from planner.preflight import ClusterFacts, LiveServer, decide_live, decide_rollout_sizes
from planner.rollout import BASE_NAME_LENGTH, base_name
from planner.weights import startup_budget
from tests.conftest import add_model, base_config, only, plan_of
from tests.pulumi_harness import ROOT, TEST_SECRETS, LiveCluster, Run, find_values, run_program, server_key, stack_config
from tests.test_program import EKS_KUBERNETES, by_name, unwrap

def codes(plan: Plan) -> set[str]:
    return {f.code for f in plan.findings}


MODEL = "qwen3-8b"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a test value shaped like a Hub commit
BUCKET, PREFIX = "acme-model-weights", "hub/qwen3-8b"
DEPLOYMENT, SERVICE, JOB = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service", "kubernetes:batch/v1:Job"
KINDO = "pulumi-python:dynamic/kindo:KindoModel"
ROLE_POLICY, ASSOCIATION = "aws:iam/rolePolicy:RolePolicy", "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def dev_config(**vllm: Any) -> dict[str, Any]:
    config = stack_config(ROOT / "Pulumi.dev.yaml")
    next(m for m in config["kindo-models:models"] if m["litellmModelName"] == MODEL)["vllm"].update(vllm)
    return config


def dev_plan(config: dict[str, Any]) -> Plan:
    raw = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("kindo-models:")}
    settings, findings = parse_settings(copy.deepcopy(raw), "dev", config.get("aws:region"))
    return make_plan(settings, findings)


def rendered(config: dict[str, Any], live: LiveCluster | None = None) -> Run:
    result = run_program(config, "dev", live=live)
    assert result.error is None, result.error
    return result


def server_of(plan: Plan, name: str = MODEL):
    return next(s for s in plan.servers if s.litellmModelName == name)


def api_base(result: Run, model: str = MODEL) -> str:
    return unwrap(by_name(result, KINDO)[model])["litellmParams"]["api_base"]


# ------------------------------------------------------------------------------------------ generations


@pytest.mark.parametrize("change", [{"image": "vllm/vllm-openai:v0.32.0"}, {"extraArgs": ["--max-num-seqs", "64"]}])
def test_a_change_that_restarts_vllm_renders_a_new_server_and_a_kindo_model_pointing_at_it(change: dict) -> None:
    before, after = rendered(dev_config()), rendered(dev_config(**change))
    old, new = server_of(dev_plan(dev_config())), server_of(dev_plan(dev_config(**change)))
    assert old.generation != new.generation and new.name == f"qwen3-8b-{new.generation}"
    for result, server in ((before, old), (after, new)):
        deployments, services = by_name(result, DEPLOYMENT), by_name(result, SERVICE)
        assert server_key(deployments, "qwen3-8b", "deployment") == f"{server.name}-deployment"
        assert deployments[f"{server.name}-deployment"]["metadata"]["name"] == server.name
        assert services[f"{server.name}-service"]["metadata"]["name"] == server.name
        assert api_base(result) == server.url == f"http://{server.name}.inference.svc.cluster.local:8000/v1"
    # The other servers are untouched: same names, same Kindo apiBase.
    assert server_of(dev_plan(dev_config()), "bge-m3").name == server_of(dev_plan(dev_config(**change)), "bge-m3").name
    assert api_base(before, "bge-m3") == api_base(after, "bge-m3")


def test_recreate_keeps_the_names_and_the_kindo_model() -> None:
    before = rendered(dev_config(rollout="recreate"))
    after = rendered(dev_config(rollout="recreate", extraArgs=["--max-num-seqs", "64"]))
    for result in (before, after):
        assert "qwen3-8b-deployment" in by_name(result, DEPLOYMENT) and "qwen3-8b-service" in by_name(result, SERVICE)
    assert api_base(before) == api_base(after) == "http://qwen3-8b.inference.svc.cluster.local:8000/v1"
    args = lambda r: by_name(r, DEPLOYMENT)["qwen3-8b-deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]  # noqa: E731
    assert "--max-num-seqs" in args(after) and "--max-num-seqs" not in args(before)  # updated in place
    finding = only(dev_plan(dev_config(rollout="recreate")), "rollout-recreate", MODEL)
    assert finding.severity == "warning" and "down for the reload" in finding.message


def test_replicas_scale_the_running_generation_and_labels_carry_it() -> None:
    raw = base_config()
    raw["gpuPools"][1]["maxSize"] = 6
    one = server_of(plan_of(raw), "bge-m3")
    raw["models"][1]["vllm"]["replicas"] = 2
    two = server_of(plan_of(raw), "bge-m3")
    assert one.name == two.name and one.generation == two.generation
    assert two.labels["kindo-models/generation"] == two.generation and two.labels["kindo-models/model"] == "bge-m3"
    assert two.selector == {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": two.name}


def test_long_names_keep_room_for_the_generation() -> None:
    long = "a-very-long-routing-name-that-someone-chose-for-their-model-v2-instruct"
    assert len(base_name(long)) == BASE_NAME_LENGTH and not base_name(long).endswith("-")
    raw = base_config()
    add_model(raw, litellmModelName=long, provider="Self-Hosted", contextWindow=8192,
              vllm={"model": "BAAI/bge-m3", "gpuPool": "h100"})
    raw["models"][-1]["type"], raw["models"][-1]["metadataType"] = "INTERNAL", "Embeddings"
    server = server_of(plan_of(raw), long)
    assert len(server.name) <= 63 and server.name.endswith(server.generation)


# ------------------------------------------------------------------------------------------ headroom


def test_a_pool_without_room_for_a_second_generation_is_an_error_naming_both_fixes() -> None:
    raw = base_config()
    raw["gpuPools"][1]["maxSize"] = 1  # bge-m3 fits, its next generation does not
    finding = only(plan_of(raw), "pool-rollout-headroom", "l40s")
    assert finding.severity == "error"
    assert "needs 2 nodes, but maxSize is 1" in finding.message and "Raise maxSize to 2" in finding.message
    assert "vllm.rollout: recreate" in finding.message
    raw["models"][1]["vllm"]["rollout"] = "recreate"
    plan = plan_of(raw)
    assert plan.ok and "pool-rollout-headroom" not in codes(plan)
    assert only(plan, "rollout-recreate", "bge-m3").severity == "warning"


def test_the_plan_shows_the_extra_gpus_a_rollout_needs_per_pool() -> None:
    raw = base_config()
    plan = plan_of(raw)
    pool = next(p for p in plan.pools if p.name == "l40s")
    assert (pool.rolloutGpus, pool.rolloutNodes) == (1, 2) and pool.to_json()["rolloutGpus"] == 1
    assert next(p for p in plan.pools if p.name == "h100").rolloutGpus == 0  # no server there


def test_every_server_changing_at_once_above_max_size_is_a_warning() -> None:
    raw = base_config()
    add_model(raw, litellmModelName="qwen3-8b", provider="Self-Hosted", contextWindow=32768, maxTokens=8192,
              vllm={"model": "Qwen/Qwen3-8B", "gpuPool": "l40s"})
    raw["gpuPools"][1]["maxSize"] = 3  # 2 servers + one next generation; both at once would need 4
    plan = plan_of(raw)
    assert "pool-rollout-headroom" not in codes(plan)
    assert "raise maxSize to 4" in only(plan, "pool-rollout-all-at-once", "l40s").message


# ------------------------------------------------------------------------------------------ the running rollout


@lru_cache(maxsize=1)
def dev_deployments() -> dict[str, dict]:
    """The Deployments the program renders for the committed dev stack (one program run for every test here)."""
    return by_name(rendered(dev_config()), DEPLOYMENT)


def live_deployment(server, namespace: str = "inference") -> dict[str, Any]:
    """A vLLM Deployment as the API server returns it, from what the program renders for a planned server."""
    manifest = unwrap(copy.deepcopy(dev_deployments()[f"{server.name}-deployment"]))
    manifest["metadata"].setdefault("namespace", namespace)
    return manifest


def test_the_preflight_reads_a_running_server_as_the_plan_requested_it() -> None:
    plan = dev_plan(dev_config())
    server = server_of(plan)
    found = live_server(live_deployment(server))
    assert found == LiveServer(server.name, server.pool, server.replicas, server.request)
    assert live_servers([live_deployment(server)], "inference", "prod") == ()  # another stack's
    assert live_servers([live_deployment(server)], "other", "dev") == ()  # another namespace
    assert (quantity("7500m"), quantity("30Gi"), quantity("100G"), quantity("junk")) == (7.5, 30 * 2**30, 1e11, 0.0)


def test_a_pool_the_program_sizes_holds_the_old_generation_until_it_is_deleted() -> None:
    before = dev_plan(dev_config())
    after = dev_plan(dev_config(extraArgs=["--max-num-seqs", "64"]))
    old = server_of(before)
    facts = ClusterFacts(version="1.34", servers=tuple(LiveServer(s.name, s.pool, s.replicas, s.request)
                                                       for s in before.servers))
    sizes, findings = decide_rollout_sizes(after, facts)
    steady = next(p for p in after.pools if p.name == "l40s").desiredSize
    assert sizes == {"l40s": steady + 1}
    [note] = findings
    assert note.code == "preflight-rollout-nodes" and old.name in note.message and "pulumi up` again" in note.message
    assert decide_rollout_sizes(before, facts) == ({}, [])  # nothing is leaving: the plan's size
    result = rendered(dev_config(extraArgs=["--max-num-seqs", "64"]), live=live_with(before))
    group = next(g for name, g in by_name(result, "aws:eks/nodeGroup:NodeGroup").items() if name.startswith("l40s"))
    assert group["scalingConfig"]["desiredSize"] == steady + 1


def live_with(plan: Plan) -> LiveCluster:
    live = LiveCluster()
    for server in plan.servers:
        live.add("/apis/apps/v1/deployments", live_deployment(server))
    return live


def test_an_autoscaler_sizes_rollouts_itself() -> None:
    config = dev_config(extraArgs=["--max-num-seqs", "64"])
    config["kindo-models:cluster"] = {**config["kindo-models:cluster"], "autoscaler": "cluster-autoscaler"}
    before = dev_plan(dev_config())
    facts = ClusterFacts(version="1.34", servers=tuple(LiveServer(s.name, s.pool, s.replicas, s.request)
                                                       for s in before.servers))
    assert decide_rollout_sizes(dev_plan(config), facts) == ({}, [])


# ------------------------------------------------------------------------------------------ weights from S3


def s3_config() -> dict[str, Any]:
    return dev_config(weights=f"s3://{BUCKET}/{PREFIX}", revision=COMMIT)


def test_s3_weights_render_the_streamer_the_pods_iam_and_no_hugging_face_token() -> None:
    plan = dev_plan(s3_config())
    server = server_of(plan)
    assert plan.ok, [f.line for f in plan.errors]
    dest = f"s3://{BUCKET}/{PREFIX}/{COMMIT}"
    assert server.args[0] == dest  # `vllm serve <model>`: the prefix instead of the Hub id
    load = server.args[server.args.index("--load-format") + 1]
    extra = json.loads(server.args[server.args.index("--model-loader-extra-config") + 1])
    assert load == "runai_streamer" and extra["concurrency"] == 32 and 0 < extra["memory_limit"] < server.memoryRequestGiB * 2**30
    assert "--revision" not in server.args  # the mirror pins it; vLLM resolves no revision for an object store
    result = rendered(s3_config())
    deployment = by_name(result, DEPLOYMENT)[f"{server.name}-deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["AWS_REGION"]["value"] == "us-west-2" and env["HF_HUB_OFFLINE"]["value"] == "1"
    assert "HF_TOKEN" not in env and "HF_TOKEN" not in json.dumps(by_name(result, "kubernetes:core/v1:Secret")[f"{server.name}-secret"])
    hf = TEST_SECRETS["kindo-models:huggingFaceToken"]
    pods = [r.inputs for r in result.mocks.resources if r.name.startswith(server.name)]
    assert not find_values(pods, hf)  # the server's objects never hold the token
    # Its identity may list and read the prefix, nothing more, through EKS Pod Identity.
    assert pod["serviceAccountName"] == server.name
    policy = json.loads(by_name(result, ROLE_POLICY)[f"{server.name}-s3"]["policy"])
    actions = sorted(a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert actions == ["s3:GetObject", "s3:ListBucket"]
    assert policy["Statement"][1]["Resource"] == f"arn:aws:s3:::{BUCKET}/{PREFIX}/*"
    association = by_name(result, ASSOCIATION)[f"{server.name}-identity"]
    assert (association["namespace"], association["serviceAccount"], association["clusterName"]) == (
        "inference", server.name, "kindo-dev")
    deps = result.dependencies[f"{server.name}-deployment"]
    assert any(urn.endswith(f"::{server.name}-identity") for urn in deps), deps
    # The Pod Identity agent the association needs is ensured (the fresh cluster runs none).
    assert "cluster-addons-pod-identity-agent" in by_name(result, "aws:eks/addon:Addon")


def test_the_mirror_job_copies_the_pinned_commit_with_the_token_and_the_server_waits_for_it() -> None:
    result = rendered(s3_config())
    server = server_of(dev_plan(s3_config()))
    mirror = server.weights.mirror
    assert mirror is not None and mirror.name == f"mirror-qwen3-8b-{COMMIT[:8]}"
    job = by_name(result, JOB)[f"{mirror.name}-job"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == server.image and container["command"] == ["python3", "/mirror/mirror_weights.py"]
    assert container["args"] == ["--repo", "Qwen/Qwen3-8B", "--revision", COMMIT, "--dest",
                                 f"s3://{BUCKET}/{PREFIX}/{COMMIT}", "--work-dir", "/work"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{mirror.name}-hf"
    [token] = [r.inputs for r in result.mocks.resources if r.name == f"{mirror.name}-hf-token"]  # as registered
    places = find_values(token, TEST_SECRETS["kindo-models:huggingFaceToken"])
    assert places and all(secret for _, secret in places), places
    script = by_name(result, "kubernetes:core/v1:ConfigMap")[f"{mirror.name}-script"]["data"]["mirror_weights.py"]
    assert script == (ROOT / "mirror" / "mirror_weights.py").read_text()
    work = job["spec"]["template"]["spec"]["volumes"][1]["emptyDir"]["sizeLimit"]
    assert work == container["resources"]["requests"]["ephemeral-storage"] == f"{mirror.workGiB}Gi"
    assert "tolerations" not in job["spec"]["template"]["spec"]  # a CPU node: no GPU taint tolerated
    policy = json.loads(by_name(result, ROLE_POLICY)[f"{mirror.name}-s3"]["policy"])
    assert "s3:PutObject" in policy["Statement"][1]["Action"]
    deps = result.dependencies[f"{server.name}-deployment"]
    assert any(urn.endswith(f"WeightsMirror$kubernetes:batch/v1:Job::{mirror.name}-job") for urn in deps), deps
    for resource in result.mocks.resources:
        if resource.type.startswith("kubernetes:") and "helm.sh" not in resource.type:
            kubernetes_validate.validate(unwrap(resource.inputs), EKS_KUBERNETES, strict=True)


def test_s3_cold_starts_get_a_shorter_startup_budget() -> None:
    hub, s3 = server_of(dev_plan(dev_config())), server_of(dev_plan(s3_config()))
    assert s3.startupBudgetSeconds < hub.startupBudgetSeconds
    assert startup_budget(15.0, "s3") == 600 + 30 and startup_budget(15.0, "huggingface") == 600 + 300


@pytest.mark.parametrize(("vllm", "region", "missing"), [
    ({"weights": f"s3://{BUCKET}/{PREFIX}"}, "us-west-2", "vllm.revision"),
    ({"weights": f"s3://{BUCKET}/{PREFIX}", "revision": COMMIT}, None, "aws:region"),
])
def test_an_incomplete_s3_source_is_an_error_naming_what_is_missing(vllm: dict, region: str | None, missing: str) -> None:
    config = dev_config(**vllm)
    if region is None:
        config.pop("aws:region")
    finding = only(dev_plan(config), "weights-incomplete", MODEL)
    assert finding.severity == "error" and missing in finding.message


@pytest.mark.parametrize(("field", "value", "says"), [
    ("revision", "main", "40-hex commit"),
    ("revision", "0123456", "40-hex commit"),
    ("weights", "https://bucket.s3.amazonaws.com/x", "s3://BUCKET/PREFIX"),
    ("weights", "s3://bucket-only", "s3://BUCKET/PREFIX"),
    ("rollout", "canary", "blue-green"),
])
def test_bad_rollout_and_weights_values_name_the_field_and_the_fix(field: str, value: str, says: str) -> None:
    plan = dev_plan(dev_config(**{field: value}))
    messages = [f.message for f in plan.errors]
    assert any(field in m and says in m for m in messages), messages


def test_a_pinned_hub_revision_is_passed_to_vllm_and_an_unpinned_one_is_noted() -> None:
    pinned = server_of(dev_plan(dev_config(revision=COMMIT)))
    assert pinned.args[pinned.args.index("--revision") + 1] == COMMIT and pinned.weights.needsHuggingFaceToken
    assert "vllm-revision-unpinned" in codes(dev_plan(dev_config()))
    assert "vllm-revision-unpinned" not in [f.code for f in dev_plan(dev_config(revision=COMMIT)).findings
                                            if f.subject == MODEL]


def test_the_preflight_ensures_the_pod_identity_agent_only_when_an_identity_needs_it() -> None:
    live_hub, _ = decide_live(dev_plan(dev_config()), ClusterFacts(version="1.34"), "us-west-2")
    live_s3, _ = decide_live(dev_plan(s3_config()), ClusterFacts(version="1.34"), "us-west-2")
    assert (live_hub.podIdentityAgent, live_s3.podIdentityAgent) == (False, True)
    running = ClusterFacts(version="1.34", daemonSets=frozenset({"eks-pod-identity-agent"}))
    assert decide_live(dev_plan(s3_config()), running, "us-west-2")[0].podIdentityAgent is False
