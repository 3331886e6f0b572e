"""GpuNodePool: an EKS managed node group of GPU instances on the stack's existing cluster."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pulumi
import pulumi_aws as aws

from planner.pools import PlannedPool


@dataclass
class GpuNodePoolArgs:
    cluster_name: pulumi.Input[str]
    pool: PlannedPool
    node_role_arn: pulumi.Input[str]
    cluster_subnet_ids: pulumi.Input[Sequence[str]]  # the cluster's own, for a pool whose plan names none
    plan_input: dict[str, Any] = field(default_factory=dict)  # planner.policy_input: what a policy pack checks


class GpuNodePool(pulumi.ComponentResource):
    node_group_name: pulumi.Output[str]
    node_group: aws.eks.NodeGroup
    launch_template: aws.ec2.LaunchTemplate

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:GpuNodePool", name, args.plan_input or None, opts)
        pool = args.pool
        tags = pool.tags
        self.launch_template = self._launch_template(name, pool)
        self.node_group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args.cluster_name,
            node_group_name_prefix=f"kindo-{pool.name}-",
            node_role_arn=args.node_role_arn,
            subnet_ids=pool.subnetIds or args.cluster_subnet_ids,
            instance_types=[pool.instanceType],
            ami_type=pool.amiType,
            capacity_type=pool.capacityType,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=pool.minSize, max_size=pool.maxSize, desired_size=pool.desiredSize,
            ),
            labels=pool.labels,
            taints=[aws.eks.NodeGroupTaintArgs(**taint) for taint in pool.taints],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id, version=self.launch_template.latest_version.apply(str),
            ),
            # One node at a time, replaced rather than surged: GPU capacity is scarce (a reservation is often sized to the
            # pool), and the DEFAULT strategy first adds up to 2 nodes per zone that may never come (MINIMAL: EKS API
            # NodegroupUpdateConfig.updateStrategy, "useful ... with hardware accelerators such as GPUs").
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1, update_strategy="MINIMAL"),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Without an autoscaler the program sets the desired size on every up; with one, the autoscaler owns it.
                ignore_changes=[] if pool.desiredSizeOwner == "program" else ["scalingConfig.desiredSize"],
            ),
        )
        self.node_group_name = self.node_group.node_group_name
        self.register_outputs({**args.plan_input, "node_group_name": self.node_group_name,
                               "launch_template_id": self.launch_template.id})

    def _launch_template(self, name: str, pool: PlannedPool) -> aws.ec2.LaunchTemplate:
        tags = pool.tags
        capacity_block = pool.capacityType == "CAPACITY_BLOCK"
        return aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"kindo-models GPU pool {pool.name}: weights cache on {pool.weightsCache}",
            # NVMe pools: the node configuration that puts the kubelet's and containerd's directories on the instance
            # store (merged by EKS with its own part); EC2 takes user data base64-encoded.
            user_data=base64.b64encode(pool.userData.encode()).decode() if pool.userData else None,
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=pool.dataDevice,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=pool.diskSizeGiB, volume_type="gp3", encrypted="true", delete_on_termination="true",
                ),
            )],
            # IMDSv2 only; hop limit 2 so pods on the node (aws-node, the device plugin) still reach IMDS.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_tokens="required", http_put_response_hop_limit=2, http_endpoint="enabled",
            ),
            instance_market_options=aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type="capacity-block")
            if capacity_block else None,
            capacity_reservation_specification=aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                    capacity_reservation_id=pool.capacityReservationId,
                ),
            ) if pool.capacityReservationId else None,
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tags)],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
