"""Run the Pulumi program under Pulumi's own mocks (no CLI, no cloud) and record what it registers."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
# pulumi.dynamic.serialize_provider (SDK 3.272.0) wraps pickle._Pickler._batch_setitems once per dynamic resource and
# never restores it, so the nesting grows across every run in one process. `pulumi up` is a fresh process; so is
# each run here (program.main allows the recursion one large stack needs).
PICKLER_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
SECRET_ENVELOPE = "4dabf18193072939515e22adb298388d"  # Pulumi's wire marker for a secret value
# What the tests pass as secrets: each must arrive only inside secret envelopes.
TEST_SECRETS = {
    "kindo-models:kindoApiKey": "kindo-key-TEST-0001",
    "kindo-models:unleashApiToken": "*:development.unleash-TEST-0002",
    "kindo-models:huggingFaceToken": "hf_TEST0003abcdefghijklmnop",
}
TEST_CREDENTIAL_PREFIX = "credential-TEST-"
# The program's pulumi.log findings go here instead of the test output.
QUIET = logging.getLogger("kindo-models.mocks")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    provider: str | None


# The Kubernetes API list paths the preflight reads; a path not set answers an empty list.
LIST_PATHS = ("/apis/storage.k8s.io/v1/storageclasses", "/apis/storage.k8s.io/v1/csidrivers",
              "/apis/apps/v1/namespaces/kube-system/daemonsets", "/apis/apps/v1/deployments")


def named(name: str, **fields: Any) -> dict[str, Any]:
    """A Kubernetes object with metadata.name (and labels/namespace when given)."""
    metadata = {"name": name, **{k: fields.pop(k) for k in ("labels", "namespace") if k in fields}}
    return {"metadata": metadata, **fields}


@dataclass
class LiveCluster:
    """The live cluster the mocks answer for: a fresh EKS cluster unless a test changes it.

    AWS side (invokes): Kubernetes version, the EKS add-ons the cluster has (name -> DescribeAddon fields; absent ones
    fail like the AWS provider's data source) and subnet zones. Kubernetes side (the preflight's GETs): objects by path.
    """

    version: str = "1.34"
    addons: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnets: dict[str, str] = field(default_factory=lambda: {"subnet-a": "us-west-2a", "subnet-b": "us-west-2b",
                                                             "subnet-c": "us-west-2c", "subnet-use1a": "us-east-1a"})
    objects: dict[str, Any] = field(default_factory=lambda: {
        "/apis/storage.k8s.io/v1/storageclasses": {"items": [named("gp2", provisioner="kubernetes.io/aws-ebs",
                                                                   volumeBindingMode="WaitForFirstConsumer")]},
        "/apis/apps/v1/namespaces/kube-system/daemonsets": {"items": [named("aws-node"), named("kube-proxy")]},
    })
    nodeGroups: list[str] = field(default_factory=lambda: ["kindo-core"])  # the cluster's own managed node groups
    gets: list[str] = field(default_factory=list)  # every path the preflight read

    def get(self, path: str) -> dict[str, Any] | None:
        self.gets.append(path)
        if path in self.objects:
            return self.objects[path]
        return {"items": []} if path in LIST_PATHS else None

    def add(self, path: str, obj: dict[str, Any]) -> None:
        """Add an object to a list path (or set a single object)."""
        if path in LIST_PATHS:
            self.objects.setdefault(path, {"items": []})["items"].append(obj)
        else:
            self.objects[path] = obj


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    live: LiveCluster = field(default_factory=LiveCluster)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.resources.append(Registered(args.typ, args.name, args.inputs, bool(args.custom), args.provider))
        state = dict(args.inputs)
        if args.typ == "aws:eks/nodeGroup:NodeGroup":
            state["nodeGroupName"] = f"{args.inputs.get('nodeGroupNamePrefix', '')}0001"
        elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = f"generated-{args.name}"
        elif args.typ.endswith("/kindo:KindoModel"):
            state["modelId"] = f"{args.name}-id"  # the provider returns the new ID as modelId and as the id
            state["routingName"] = state.get("litellmModelName")  # ...and the routing name Kindo has
        elif args.typ.endswith("/unleash:UnleashModelFlag"):
            state["strategyId"] = f"{args.name}-id"
        return (f"{args.name}-id" if args.custom else None), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:eks/getCluster:getCluster":
            return {"name": args.args["name"], "endpoint": "https://ABCDEF.gr7.us-west-2.eks.amazonaws.com",
                    "certificateAuthorities": [{"data": "LS0tLS1CRUdJTi1DRVJU"}], "id": args.args["name"],
                    "version": self.live.version, "vpcConfig": {"subnetIds": ["subnet-a", "subnet-b", "subnet-c"]}}, []
        if args.token == "aws:eks/getAddon:getAddon":
            name = args.args["addonName"]
            if name not in self.live.addons:  # the AWS provider's data source on a missing add-on
                return {}, [("", f"reading EKS Add-On ({args.args['clusterName']}:{name}): couldn't find resource")]
            return {"addonName": name, "clusterName": args.args["clusterName"], "id": name, **self.live.addons[name]}, []
        if args.token == "aws:ec2/getSubnet:getSubnet":
            if args.args["id"] not in self.live.subnets:
                return {}, [("", f"no matching EC2 Subnet found ({args.args['id']})")]
            return {"id": args.args["id"], "availabilityZone": self.live.subnets[args.args["id"]]}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "ecr-token-TEST", "id": "x", "authorizationToken": "x",
                    "proxyEndpoint": "https://123456789012.dkr.ecr.us-west-2.amazonaws.com", "expiresAt": "x"}, []
        if args.token == "aws:eks/getNodeGroups:getNodeGroups":
            return {"clusterName": args.args["clusterName"], "names": list(self.live.nodeGroups), "id": "x"}, []
        if args.token == "aws:eks/getNodeGroup:getNodeGroup":
            return {"nodeRoleArn": "arn:aws:iam::123456789012:role/kindo-core-nodes", "id": "x"}, []
        return {}, []

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The mock monitor, also recording what only the engine sees: each resource's dependencies (URNs)."""

    def __init__(self, mocks: Recorder) -> None:
        super().__init__(mocks)
        self.dependencies: dict[str, list[str]] = {}  # resource name -> URNs it depends on
        self.ignore_changes: dict[str, list[str]] = {}  # resource name -> its ignoreChanges option
        self.retain_on_delete: dict[str, bool] = {}  # resource name -> its retainOnDelete option

    def RegisterResource(self, request):  # noqa: N802 - the gRPC method's name
        self.dependencies[request.name] = list(request.dependencies)
        self.ignore_changes[request.name] = list(request.ignoreChanges)
        self.retain_on_delete[request.name] = bool(request.retainOnDelete)
        return super().RegisterResource(request)


@dataclass
class Run:
    mocks: Recorder
    error: BaseException | None
    outputs: dict[str, Any]
    built: dict[str, Any] | None
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    ignore_changes: dict[str, list[str]] = field(default_factory=dict)
    retain_on_delete: dict[str, bool] = field(default_factory=dict)


def stack_config(stack_file: Path) -> dict[str, Any]:
    document = yaml.safe_load(stack_file.read_text())
    return document["config"]


def pulumi_config(config: dict[str, Any], with_secrets: bool = True) -> tuple[dict[str, str], list[str]]:
    """Config as the engine hands it to a program: strings (objects JSON-encoded) plus the secret keys."""
    out = {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
    secret_keys: list[str] = []
    if with_secrets:
        for key, value in TEST_SECRETS.items():
            out[key] = value
            secret_keys.append(key)
        names = sorted({m["credential"] for m in config.get("kindo-models:models", []) if isinstance(m, dict) and m.get("credential")})
        if names:
            out["kindo-models:credentials"] = json.dumps({n: f"{TEST_CREDENTIAL_PREFIX}{n}" for n in names})
            secret_keys.append("kindo-models:credentials")
    return out, secret_keys


def run_program(config: dict[str, Any], stack: str = "dev", with_secrets: bool = True,
                secret_keys: tuple[str, ...] = (), live: LiveCluster | None = None) -> Run:
    import program  # imported here so that each run uses the runtime state set below

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime_settings.ROOT.set(None)
    pickle._Pickler._batch_setitems = PICKLER_BATCH_SETITEMS  # type: ignore[attr-defined]  # as in a fresh process
    mocks = Recorder(live=live or LiveCluster())
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="kindo-models", stack=stack, preview=False, logger=QUIET, monitor=monitor)
    values, secrets = pulumi_config(config, with_secrets)
    pulumi.runtime.set_all_config(values, [*secrets, *secret_keys])
    built: dict[str, Any] = {}
    error: BaseException | None = None

    def body() -> None:
        built.update(program.main(mocks.live))

    try:
        _sync_await(run_pulumi_func(body))
    except pulumi.RunError as exc:
        error = exc
    root = runtime_settings.get_root_resource()
    outputs = {}
    for name, value in (getattr(root, "outputs", {}) or {}).items():
        outputs[name] = _sync_await(pulumi.Output.from_input(value).future())
    loop.close()
    return Run(mocks, error, outputs, built if error is None else None, monitor.dependencies, monitor.ignore_changes,
               monitor.retain_on_delete)


def run_stack(stack: str) -> Run:
    return run_program(stack_config(ROOT / f"Pulumi.{stack}.yaml"), stack)


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_ENVELOPE in value


def find_values(value: Any, needle: str, path: str = "", inside_secret: bool = False) -> list[tuple[str, bool]]:
    """Every place a string containing `needle` occurs, and whether it sits inside a secret envelope."""
    found: list[tuple[str, bool]] = []
    if isinstance(value, dict):
        secret = inside_secret or is_secret(value)
        for key, child in value.items():
            found += find_values(child, needle, f"{path}.{key}", secret)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += find_values(child, needle, f"{path}[{index}]", inside_secret)
    elif isinstance(value, str) and needle in value:
        found.append((path, inside_secret))
    return found


GENERATION = r"(-[0-9a-f]{6})?"  # planner/rollout.py: blue-green names carry the generation of what the pods run


def of_server(name: str, base: str, suffix: str = "") -> bool:
    """Whether a resource name is a server's (`base`, with its generation in blue-green) plus the suffix."""
    return re.fullmatch(re.escape(base) + GENERATION + (re.escape(f"-{suffix}") if suffix else ""), name) is not None


def server_key(names: Iterable[str], base: str, suffix: str = "") -> str:
    """The one name of `names` that is the server `base`'s (with the suffix); fails when there is none or several."""
    [found] = [name for name in names if of_server(name, base, suffix)]
    return found
