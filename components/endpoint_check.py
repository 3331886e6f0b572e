"""EndpointCheck: the runbook's endpoint checks, run from a pod inside the cluster before Kindo sees the model.

The seeds insist the checks run from inside the cluster (split DNS and firewalls make a laptop's curl prove
nothing). A Job runs checker/endpoint_checker.py (standard library only, shipped byte for byte in one ConfigMap
shared by the namespace's checks) on a stock python image, installing nothing, against the model's in-cluster URL
with the server's own API key. The model's KindoModel depends on this Job, and Pulumi waits for a Job to succeed,
so a failed check stops `pulumi up` before the model is registered; the checker's JSON report is the pod's log and,
on failure, its termination message (`kubectl describe pod`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from checker import endpoint_checker
from checker.endpoint_checker import VLLM_KEY_ENV
from planner.model_plan import CheckPlan

SCRIPT = Path(endpoint_checker.__file__).resolve()
SCRIPT_KEY = SCRIPT.name
CLIP = SCRIPT.with_name(endpoint_checker.CLIP_NAME)  # the transcription check's speech clip, mounted beside the script
COMPONENT = "kindo-models-endpoint-check"


@dataclass
class EndpointCheckArgs:
    check: CheckPlan  # the plan's check: the checker's arguments (no key: the Job reads it from the server's Secret)
    namespace: pulumi.Input[str]
    script_config_map: pulumi.Input[str]  # the ConfigMap holding the checker (check_script_config_map)
    api_key_secret: Optional[pulumi.Input[str]]  # Kubernetes Secret holding VLLM_API_KEY (a VllmServer's)


def check_script() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def check_script_config_map(namespace: pulumi.Input[str], opts: Optional[pulumi.ResourceOptions] = None) -> k8s.core.v1.ConfigMap:
    """One ConfigMap with the checker (and its speech clip) for every Job of the namespace; its name carries their
    digest, so a new checker is a new ConfigMap and the Jobs that mount it are new Jobs."""
    script, clip = check_script(), CLIP.read_bytes()
    digest = hashlib.sha256(script.encode() + clip).hexdigest()[:10]
    return k8s.core.v1.ConfigMap(
        "endpoint-check-script",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=f"kindo-models-verify-{digest}", namespace=namespace,
                                            labels={"app.kubernetes.io/name": COMPONENT,
                                                    "app.kubernetes.io/managed-by": "pulumi"}),
        data={SCRIPT_KEY: script},
        binary_data={CLIP.name: base64.b64encode(clip).decode()},
        opts=opts,
    )


class EndpointCheck(pulumi.ComponentResource):
    job: k8s.batch.v1.Job

    def __init__(self, name: str, args: EndpointCheckArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:EndpointCheck", name, None, opts)
        check = args.check
        digest = hashlib.sha256(json.dumps([check.fingerprint, check.args, check.image]).encode()).hexdigest()[:8]
        labels = {"app.kubernetes.io/name": COMPONENT, "app.kubernetes.io/instance": name,
                  "app.kubernetes.io/managed-by": "pulumi"}
        env = [] if args.api_key_secret is None else [k8s.core.v1.EnvVarArgs(
            name=VLLM_KEY_ENV, value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=args.api_key_secret, key=VLLM_KEY_ENV)))]
        container = k8s.core.v1.ContainerArgs(
            name="verify",
            image=check.image,  # a pinned stock Python (mirrored when the stack says): it runs the checker as shipped
            command=["python", f"/check/{SCRIPT_KEY}"],
            args=check.args,
            env=env,
            termination_message_policy="FallbackToLogsOnError",
            resources=k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "100m", "memory": "128Mi"},
                                                           limits={"memory": "256Mi"}),
            security_context=k8s.core.v1.SecurityContextArgs(allow_privilege_escalation=False,
                                                             capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="script", mount_path="/check", read_only=True)],
        )
        timeout = f"{check.deadlineSeconds // 60 + 5}m"
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            # A new name per server fingerprint: Jobs are immutable, and a changed server must be checked again.
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"verify-{name[:44]}-{digest}", namespace=args.namespace, labels=labels),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=1,  # one retry for a flaky network; a real misconfiguration fails twice
                active_deadline_seconds=check.deadlineSeconds,
                ttl_seconds_after_finished=7 * 24 * 3600,  # keep the report (pod log) a week
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        containers=[container],
                        volumes=[k8s.core.v1.VolumeArgs(name="script", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                            name=args.script_config_map))],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        self.register_outputs({"job": self.job.metadata.name})
