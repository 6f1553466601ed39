"""The kubernetes family's profile block and target fragment.

Profile ``requirements.kubernetes`` (:class:`KubernetesReq`): the minimum version, the
platform components the tier names, and which workload properties it requires.  Target
``kubernetes:`` (:class:`KubernetesSpec`): the kubeconfig, context and namespace to read.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from golive.blocks import Block, Strict

Component = Literal["ingress-nginx", "cluster-issuer", "metrics-server", "prometheus", "cluster-autoscaler"]


class KubernetesReq(Block):
    """What the tier requires of the cluster (docs/kubernetes.md)."""

    min_version: str = "1.25"
    components: list[Component] = Field(default_factory=list)
    storage_rwx: bool = False
    min_replicas: int = Field(default=1, ge=1, le=10000)
    pdb: bool = False
    hpa: bool = False
    probes: bool = False
    resources: bool = False
    zones_min: int = Field(default=1, ge=1, le=100)


class KubernetesSpec(Strict):
    """The cluster (kubeconfig + context; the token stays in the kubeconfig) and the
    namespace of the workloads.  ``timeout_s`` bounds every API request."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    timeout_s: float = Field(default=10, gt=0, le=120)
