"""ClusterAddons: the EKS add-ons the preflight found missing and the program provides.

The EBS CSI driver (its controller's IAM role through EKS Pod Identity, AmazonEBSCSIDriverPolicyV2) when a pool keeps
its weights on EBS and the cluster runs no driver, and the Pod Identity agent the roles go through. Each carries this
stack's tag, so a later preflight knows them as this stack's own and keeps managing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from planner.preflight import LivePlan


@dataclass
class ClusterAddonsArgs:
    cluster_name: str
    live: LivePlan
    ebs_csi_addon: str  # add-on names and the controller's service account, from planner/data/eks.yaml
    ebs_csi_service_account: str
    ebs_csi_policy_arn: str
    pod_identity_addon: str


class ClusterAddons(pulumi.ComponentResource):
    pod_identity_agent: Optional[aws.eks.Addon]
    ebs_csi_driver: Optional[aws.eks.Addon]

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:ClusterAddons", name, None, opts)
        live = args.live
        child = pulumi.ResourceOptions(parent=self)
        self.pod_identity_agent = aws.eks.Addon(
            f"{name}-pod-identity-agent", cluster_name=args.cluster_name, addon_name=args.pod_identity_addon,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE", tags=live.tags, opts=child,
        ) if live.podIdentityAgent else None
        self.ebs_csi_driver = self._ebs_csi(name, args) if live.ebsCsiAddon else None
        self.register_outputs({"ebs_csi_driver": self.ebs_csi_driver.arn if self.ebs_csi_driver else None})

    def _ebs_csi(self, name: str, args: ClusterAddonsArgs) -> aws.eks.Addon:
        live = args.live
        role = aws.iam.Role(f"{name}-ebs-csi-role", name_prefix="kindo-models-ebs-csi-", assume_role_policy=live.trustPolicy,
                            description="EBS CSI controller of the kindo-models weights caches (EKS Pod Identity)",
                            tags=live.tags, opts=pulumi.ResourceOptions(parent=self))
        attachment = aws.iam.RolePolicyAttachment(f"{name}-ebs-csi-policy", role=role.name, policy_arn=args.ebs_csi_policy_arn,
                                                  opts=pulumi.ResourceOptions(parent=self))
        return aws.eks.Addon(
            f"{name}-ebs-csi-driver", cluster_name=args.cluster_name, addon_name=args.ebs_csi_addon,
            pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                role_arn=role.arn, service_account=args.ebs_csi_service_account)],
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE", tags=live.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment, *([self.pod_identity_agent]
                                                                               if self.pod_identity_agent else [])]),
        )
