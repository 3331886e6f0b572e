"""ModelStorage: the StorageClass the EBS weights caches name, when the program provides it (encrypted gp3,
WaitForFirstConsumer so a volume is made in its pod's zone). A stack that names its own class gets none."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from planner.storage import StorageClassPlan


class ModelStorage(pulumi.ComponentResource):
    storage_class: k8s.storage.v1.StorageClass

    def __init__(self, name: str, plan: StorageClassPlan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("kindo-models:index:ModelStorage", name, None, opts)
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, labels=plan.labels),
            provisioner=plan.provisioner,
            parameters=plan.parameters,
            reclaim_policy="Delete",  # a cache: its volume goes with its claim
            allow_volume_expansion=True,
            volume_binding_mode=plan.bindingMode,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"storage_class": self.storage_class.metadata.name})
