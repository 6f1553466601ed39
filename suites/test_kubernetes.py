"""Bindings for features/kubernetes.feature: read the cluster with checks.kubernetes, judge
against the profile's ``requirements.kubernetes`` block.

Which scenarios measure anything is decided by the profile: no ``kubernetes`` block skips
the family; a component not in ``components``, ``storage_rwx: false``, ``pdb/hpa/probes/
resources: false`` or ``zones_min: 1`` skip their scenario with the reason.  A target
without a ``kubernetes:`` section is skipped too (nothing to read), never passed.  When a
scenario is skipped, its When step makes no API call.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_bdd import scenarios, then, when

from checks import kubernetes as probe
from golive.model import Measurement
from golive.profile import KubernetesReq

scenarios("kubernetes.feature")

#: Catalogue ids each check answers; a result cites those of the profile's ``ref`` that
#: apply to it (all of them when none does).
REFS: dict[str, frozenset[str]] = {
    "version": frozenset({"OZ-HL-K8S-01", "DS-CT-SW-09"}),
    "ingress-nginx": frozenset({"OZ-HL-K8S-02", "AW-EN-K8S-01"}),
    "cluster-issuer": frozenset({"OZ-HL-K8S-03", "OZ-HL-TLS-01", "AW-TLS-03"}),
    "metrics-server": frozenset({"OZ-HL-K8S-04", "OZ-HL-MON-01"}),
    "prometheus": frozenset({"OZ-HL-K8S-05", "OZ-HL-MON-01"}),
    "cluster-autoscaler": frozenset({"OZ-HL-K8S-06", "OZ-HL-HA-03"}),
    "storage": frozenset({"OZ-HL-HA-01", "OZ-ML-HA-02", "AW-EN-K8S-01", "AW-DB-04"}),
    "replicas": frozenset({"AW-EN-HA-02", "OZ-HL-HA-02", "AW-HA-07"}),
    "pdb": frozenset({"AW-EN-HA-02", "OZ-HL-HA-02"}),
    "hpa": frozenset({"AW-EN-HA-01", "OZ-HL-HA-04", "AW-HA-06"}),
    "probes": frozenset({"AW-HA-10", "AW-EN-HA-02"}),
    "resources": frozenset({"AW-EN-HA-01"}),
    "zones": frozenset({"AW-EN-HA-03"}),
}


def _req(golive: Any) -> KubernetesReq | None:
    return golive.req.kubernetes if golive.req else None


def _block(golive: Any, topic: str) -> KubernetesReq | None:
    req = _req(golive)
    if req is None:
        return None
    narrowed = [r for r in req.ref if r in REFS[topic]]
    return req.model_copy(update={"ref": narrowed}) if narrowed else req


def _ref(golive: Any) -> probe.ClusterRef:
    k = golive.target.kubernetes
    return probe.ClusterRef(kubeconfig=k.kubeconfig, context=k.context, namespace=k.namespace, timeout_s=k.timeout_s)


def _why_not(golive: Any, wanted: Callable[[KubernetesReq], bool], flag: str) -> str | None:
    """Why this scenario measures nothing, or None when it applies."""
    req = _req(golive)
    if req is None:
        return f"profile '{golive.profile.name}' sets no Kubernetes requirements"
    if golive.target.kubernetes is None:
        return "target has no kubernetes section"
    if not wanted(req):
        return f"profile '{golive.profile.name}' does not require this ({flag})"
    return None


def _skipped(golive: Any, check: str, wanted: Callable[[KubernetesReq], bool], flag: str) -> bool:
    reason = _why_not(golive, wanted, flag)
    if reason is not None:
        golive.checks.skip(check, reason, block=_req(golive))
        return True
    return False


def _component(name: str) -> tuple[Callable[[KubernetesReq], bool], str]:
    return (lambda req: name in req.components), f"components does not list {name}"


ALWAYS: Callable[[KubernetesReq], bool] = lambda req: True


def _record_each(golive: Any, check: str, topic: str, each: probe.Each | None, *, expected: str,
                 ok: Callable[[Any], bool], remediation: str, none_ok: bool = False,
                 none_expected: str = "") -> None:
    """One result per object; an error when the objects could not be listed; a fail
    (or nothing, with ``none_ok``) when there are none."""
    assert each is not None
    block = _block(golive, topic)
    if each.failure is not None:
        golive.checks.record(check, block=block, expected=expected, measurement=each.failure, ok=ok)
        return
    if not each.items and each.listed is not None and not none_ok:
        golive.checks.record(check, block=block, expected=none_expected or expected, measurement=each.listed,
                             ok=lambda n: n > 0, remediation=remediation)
        return
    for key, m in each.items.items():
        golive.checks.record(f"{check}[{key}]", block=block, expected=expected, measurement=m, ok=ok,
                             remediation=remediation)


# ----------------------------------------------------------------------------- version

@when("the API server's version is read", target_fixture="measured")
def read_version(golive: Any) -> Measurement | None:
    return None if _why_not(golive, ALWAYS, "") else probe.server_version(_ref(golive))


@then("the server version is at least the profile's minimum")
def judge_version(golive: Any, measured: Measurement | None) -> None:
    if _skipped(golive, "kubernetes.version", ALWAYS, ""):
        return
    req = _req(golive)
    assert req is not None and measured is not None
    golive.checks.record("kubernetes.version", block=_block(golive, "version"), expected=f">= {req.min_version}",
                         measurement=measured, ok=lambda v: probe.version_at_least(v, req.min_version),
                         remediation=f"upgrade the cluster to Kubernetes {req.min_version} or later")


# ----------------------------------------------------------------------------- ingress-nginx

INGRESS = _component("ingress-nginx")


@when("the ingress-nginx controller and the namespace's Ingresses are read", target_fixture="measured")
def read_ingress(golive: Any) -> probe.IngressNginx | None:
    return None if _why_not(golive, *INGRESS) else probe.ingress_nginx(_ref(golive))


@then("the ingress-nginx controller is Ready")
def judge_ingress_controller(golive: Any, measured: probe.IngressNginx | None) -> None:
    if _skipped(golive, "kubernetes.component[ingress-nginx]", *INGRESS):
        return
    assert measured is not None
    golive.checks.record(
        "kubernetes.component[ingress-nginx]", block=_block(golive, "ingress-nginx"),
        expected=f">= 1 Ready controller pod and an IngressClass with controller {probe.INGRESS_NGINX_CONTROLLER}",
        measurement=measured.controller, ok=lambda v: v["ready_pods"] >= 1 and bool(v["classes"]),
        remediation="install ingress-nginx (helm chart ingress-nginx/ingress-nginx) and fix its controller pods")


@then("every Ingress of the namespace uses an ingress-nginx IngressClass")
def judge_ingress_class(golive: Any, measured: probe.IngressNginx | None) -> None:
    if _skipped(golive, "kubernetes.ingress_class", *INGRESS):
        return
    assert measured is not None
    _record_each(golive, "kubernetes.ingress_class", "ingress-nginx", measured.ingresses,
                 expected=f"an IngressClass whose controller is {probe.INGRESS_NGINX_CONTROLLER}",
                 none_expected=">= 1 Ingress in the namespace, served by ingress-nginx",
                 ok=lambda v: v["controller"] == probe.INGRESS_NGINX_CONTROLLER,
                 remediation="set spec.ingressClassName to the ingress-nginx IngressClass (e.g. nginx)")


# ----------------------------------------------------------------------------- cert-manager, metrics, Prometheus

ISSUER = _component("cluster-issuer")


@when("the cert-manager ClusterIssuers are read", target_fixture="measured")
def read_issuers(golive: Any) -> Measurement | None:
    return None if _why_not(golive, *ISSUER) else probe.cluster_issuers(_ref(golive))


@then("at least one ClusterIssuer is Ready")
def judge_issuers(golive: Any, measured: Measurement | None) -> None:
    if _skipped(golive, "kubernetes.component[cluster-issuer]", *ISSUER):
        return
    assert measured is not None
    golive.checks.record("kubernetes.component[cluster-issuer]", block=_block(golive, "cluster-issuer"),
                         expected=">= 1 ClusterIssuer with Ready=True", measurement=measured, ok=lambda v: len(v) >= 1,
                         remediation="install cert-manager and fix the ClusterIssuer "
                                     "(kubectl describe clusterissuer NAME shows why it is not Ready)")


METRICS = _component("metrics-server")


@when("the metrics APIService and the node metrics are read", target_fixture="measured")
def read_metrics(golive: Any) -> Measurement | None:
    return None if _why_not(golive, *METRICS) else probe.metrics_api(_ref(golive))


@then("the metrics API is Available and reports node metrics")
def judge_metrics(golive: Any, measured: Measurement | None) -> None:
    if _skipped(golive, "kubernetes.component[metrics-server]", *METRICS):
        return
    assert measured is not None
    golive.checks.record("kubernetes.component[metrics-server]", block=_block(golive, "metrics-server"),
                         expected=f"APIService {probe.METRICS_APISERVICE} Available=True and node metrics served",
                         measurement=measured, ok=lambda v: v["available"] and v["node_metrics"] >= 1,
                         remediation="install or repair metrics-server (kubectl get apiservice "
                                     f"{probe.METRICS_APISERVICE} shows the failure)")


PROMETHEUS = _component("prometheus")


@when("the Prometheus pods are read", target_fixture="measured")
def read_prometheus(golive: Any) -> Measurement | None:
    return None if _why_not(golive, *PROMETHEUS) else probe.prometheus(_ref(golive))


@then("at least one Prometheus pod is Ready")
def judge_prometheus(golive: Any, measured: Measurement | None) -> None:
    if _skipped(golive, "kubernetes.component[prometheus]", *PROMETHEUS):
        return
    assert measured is not None
    golive.checks.record("kubernetes.component[prometheus]", block=_block(golive, "prometheus"),
                         expected=">= 1 Ready Prometheus pod", measurement=measured, ok=lambda v: v >= 1,
                         remediation="deploy Prometheus (e.g. kube-prometheus-stack) and fix its pods")


AUTOSCALER = _component("cluster-autoscaler")


@when("the cluster autoscaler and its status are read", target_fixture="measured")
def read_autoscaler(golive: Any) -> Measurement | None:
    return None if _why_not(golive, *AUTOSCALER) else probe.cluster_autoscaler(_ref(golive))


@then("the cluster autoscaler is Ready, healthy and can add nodes")
def judge_autoscaler(golive: Any, measured: Measurement | None) -> None:
    if _skipped(golive, "kubernetes.component[cluster-autoscaler]", *AUTOSCALER):
        return
    assert measured is not None
    golive.checks.record(
        "kubernetes.component[cluster-autoscaler]", block=_block(golive, "cluster-autoscaler"),
        expected=">= 1 Ready replica, status ConfigMap Healthy, a node group below its maximum size",
        measurement=measured,
        ok=lambda v: v["ready_replicas"] >= 1 and v["health"] == "Healthy" and v["headroom"] is not False,
        remediation="deploy cluster-autoscaler with node-group auto-discovery; raise the node group's maximum size")


# ----------------------------------------------------------------------------- storage

STORAGE: tuple[Callable[[KubernetesReq], bool], str] = (lambda req: req.storage_rwx, "storage_rwx: false")


@when("the StorageClasses are read", target_fixture="measured")
def read_storage(golive: Any) -> Measurement | None:
    return None if _why_not(golive, *STORAGE) else probe.storage_classes(_ref(golive))


@then("at least one StorageClass can provision ReadWriteMany volumes")
def judge_storage(golive: Any, measured: Measurement | None) -> None:
    if _skipped(golive, "kubernetes.storage_rwx", *STORAGE):
        return
    assert measured is not None
    golive.checks.record("kubernetes.storage_rwx", block=_block(golive, "storage"),
                         expected=">= 1 StorageClass that provisions ReadWriteMany volumes", measurement=measured,
                         ok=lambda v: len(v) >= 1,
                         remediation="add an RWX StorageClass (NFS CSI, EFS, Azure Files, Filestore, CephFS, Longhorn)")


@when("the volumes the namespace's Deployments share are read", target_fixture="measured")
def read_shared(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, *STORAGE) else probe.shared_volumes(_ref(golive))


@then("every shared volume is Bound and ReadWriteMany")
def judge_shared(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.pvc_rwx", *STORAGE):
        return
    _record_each(golive, "kubernetes.pvc_rwx", "storage", measured, expected="Bound with access mode ReadWriteMany",
                 none_expected=">= 1 ReadWriteMany volume shared by the Deployments' replicas",
                 ok=lambda v: v["phase"] == "Bound" and "ReadWriteMany" in v["access_modes"],
                 remediation="put the shared data on a ReadWriteMany PVC (an RWX StorageClass) or an NFS share")


# ----------------------------------------------------------------------------- workloads

def _min_replicas(golive: Any) -> int:
    req = _req(golive)
    return req.min_replicas if req else 1


@when("the replicas of the namespace's workloads are read", target_fixture="measured")
def read_replicas(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, ALWAYS, "") else probe.workload_replicas(_ref(golive))


@then("every workload has at least the profile's minimum of Ready replicas")
def judge_replicas(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.replicas", ALWAYS, ""):
        return
    need = _min_replicas(golive)
    _record_each(golive, "kubernetes.replicas", "replicas", measured, expected=f">= {need} Ready replicas",
                 ok=lambda v: v >= need, remediation=f"run at least {need} replicas and make them Ready")


PDB: tuple[Callable[[KubernetesReq], bool], str] = (lambda req: req.pdb, "pdb: false")


@when("the PodDisruptionBudgets of the namespace's workloads are read", target_fixture="measured")
def read_pdbs(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, *PDB) else probe.workload_pdbs(_ref(golive))


@then("every workload is covered by a PodDisruptionBudget")
def judge_pdbs(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.pdb", *PDB):
        return
    _record_each(golive, "kubernetes.pdb", "pdb", measured, expected=">= 1 PodDisruptionBudget selecting its pods",
                 ok=lambda v: len(v) >= 1,
                 remediation="add a PodDisruptionBudget (policy/v1) whose selector matches the pod labels")


HPA: tuple[Callable[[KubernetesReq], bool], str] = (lambda req: req.hpa, "hpa: false")


@when("the HorizontalPodAutoscalers of the namespace's workloads are read", target_fixture="measured")
def read_hpas(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, *HPA) else probe.workload_hpas(_ref(golive))


@then("every workload is the target of a HorizontalPodAutoscaler")
def judge_hpas(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.hpa", *HPA):
        return
    _record_each(golive, "kubernetes.hpa", "hpa", measured, expected=">= 1 HorizontalPodAutoscaler targeting it",
                 ok=lambda v: len(v) >= 1,
                 remediation="add a HorizontalPodAutoscaler (autoscaling/v2) on CPU/memory utilisation")


PROBES: tuple[Callable[[KubernetesReq], bool], str] = (lambda req: req.probes, "probes: false")


@when("the probes of the namespace's workload containers are read", target_fixture="measured")
def read_probes(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, *PROBES) else probe.workload_probes(_ref(golive))


@then("every container has a readiness and a liveness probe")
def judge_probes(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.probes", *PROBES):
        return
    _record_each(golive, "kubernetes.probes", "probes", measured,
                 expected="readinessProbe and livenessProbe on every container", ok=lambda v: v == [],
                 remediation="add readinessProbe and livenessProbe to every container")


RESOURCES: tuple[Callable[[KubernetesReq], bool], str] = (lambda req: req.resources, "resources: false")


@when("the resources of the namespace's workload containers are read", target_fixture="measured")
def read_resources(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, *RESOURCES) else probe.workload_resources(_ref(golive))


@then("every container requests CPU and memory and limits memory")
def judge_resources(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.resources", *RESOURCES):
        return
    _record_each(golive, "kubernetes.resources", "resources", measured,
                 expected=f"{', '.join(probe.RESOURCE_KEYS)} on every container", ok=lambda v: v == [],
                 remediation="set resources.requests (cpu, memory) and resources.limits.memory on every container")


ZONES: tuple[Callable[[KubernetesReq], bool], str] = (lambda req: req.zones_min > 1, "zones_min: 1")


@when("the zones of the nodes that run the namespace's pods are read", target_fixture="measured")
def read_zones(golive: Any) -> probe.Each | None:
    return None if _why_not(golive, *ZONES) else probe.workload_zones(_ref(golive))


@then("every workload's Ready pods run in at least the profile's number of zones")
def judge_zones(golive: Any, measured: probe.Each | None) -> None:
    if _skipped(golive, "kubernetes.zones", *ZONES):
        return
    req = _req(golive)
    assert req is not None
    need = req.zones_min
    _record_each(golive, "kubernetes.zones", "zones", measured, expected=f"Ready pods in >= {need} zones",
                 ok=lambda v: v >= need,
                 remediation="spread the pods with topologySpreadConstraints on topology.kubernetes.io/zone "
                             "(and nodes in several zones)")
