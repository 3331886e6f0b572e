"""ClusterAutoscaler: the Cluster Autoscaler the program installs when `cluster.autoscaler: cluster-autoscaler` and
the cluster runs none: the chart pinned for the cluster's Kubernetes minor, auto-discovery of the managed node groups
(EKS tags their Auto Scaling groups for it), and its IAM role through EKS Pod Identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from planner.preflight import AutoscalerPlan


@dataclass
class ClusterAutoscalerArgs:
    plan: AutoscalerPlan
    trust_policy: str  # the Pod Identity trust policy (LivePlan.trustPolicy)
    tags: dict[str, str]
    repository_opts: Optional[k8s.helm.v3.RepositoryOptsArgs] = None  # upstream repo, or OCI registry credentials
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the Pod Identity agent, when the program adds it


def chart_values(plan: AutoscalerPlan) -> dict[str, object]:
    return {
        "cloudProvider": "aws",
        "awsRegion": plan.region,
        "autoDiscovery": {"clusterName": plan.clusterName},
        "fullnameOverride": "cluster-autoscaler",
        "rbac": {"serviceAccount": {"name": plan.serviceAccount}},
        "image": {"repository": plan.imageRepository, "tag": plan.imageTag},
        "extraArgs": dict(plan.extraArgs),
        "additionalLabels": dict(plan.labels),
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:ClusterAutoscaler", name, None, opts)
        plan = args.plan
        aws_child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{name}-role", name_prefix="kindo-models-ca-", assume_role_policy=args.trust_policy,
                            description="Cluster Autoscaler of the kindo-models GPU pools (EKS Pod Identity)",
                            tags=args.tags, opts=aws_child)
        policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=plan.policy, opts=aws_child)
        association = aws.eks.PodIdentityAssociation(
            f"{name}-identity", cluster_name=plan.clusterName, namespace=plan.namespace,
            service_account=plan.serviceAccount, role_arn=role.arn, tags=args.tags, opts=aws_child)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="cluster-autoscaler",
            chart=plan.chart.chart,
            version=plan.chart.version,
            repository_opts=args.repository_opts,
            namespace=plan.namespace,
            values=chart_values(plan),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, association, *args.depends_on]),
        )
        self.register_outputs({"release_name": self.release.name, "chart_version": plan.chart.version})
