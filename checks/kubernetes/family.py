"""The kubernetes family, declared: the cluster's version, the platform components the
tier names, ReadWriteMany storage, and the replicas, PodDisruptionBudgets, autoscalers,
probes, resources and zone spread of the target namespace's workloads.

Reads ``requirements.kubernetes`` (:class:`KubernetesReq`) and the target's
``kubernetes:`` section (:class:`KubernetesSpec`: kubeconfig, context, namespace).  Every
measure function imports :mod:`checks.kubernetes.probes` (and through it the kubernetes
client) only when it runs, so a run that selects no Kubernetes check never loads them.
Checks that read the same objects share one probe run (``ctx.memo``).

Each platform component is a check of its own whose id carries the component
(``kubernetes.component[prometheus]``), as the report has always named them; per-object
checks (replicas, pdb, ...) report ``kubernetes.<check>[deploy/NAME]``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checks.kubernetes.spec import KubernetesReq, KubernetesSpec
from golive.checkdef import Check, CheckContext, Family, Judged
from golive.model import Measurement, Severity

if TYPE_CHECKING:
    from checks.kubernetes.probes import ClusterRef, Each

VERIFY_HINT = ("give golive read access to the cluster: the target's kubernetes section names a kubeconfig and "
               "context whose credentials hold the read-only ClusterRole in docs/kubernetes.md, and the API "
               "server is reachable from the checking host")


# ----------------------------------------------------------------------------- bridges

def _ref(ctx: CheckContext) -> ClusterRef:
    from checks.kubernetes.probes import ClusterRef

    k = ctx.spec
    return ClusterRef(kubeconfig=k.kubeconfig, context=k.context, namespace=k.namespace, timeout_s=k.timeout_s)


def _shared(ctx: CheckContext, probe: str) -> Any:
    """``probes.<probe>(ref)``, once per run and cluster (several checks read its answer)."""
    from checks.kubernetes import probes

    ref = _ref(ctx)
    return ctx.memo((f"kubernetes.{probe}", ref), lambda: getattr(probes, probe)(ref))


def _one(probe: str) -> Callable[[CheckContext], Measurement]:
    def measure(ctx: CheckContext) -> Measurement:
        m: Measurement = _shared(ctx, probe)
        return m
    return measure


def per_object(each: Each, req: KubernetesReq | None = None,
               none_expected: str = "") -> Measurement | dict[str, Measurement | Judged]:
    """One result per object (``check[object]``); one error when the objects could not be
    listed; with ``none_expected``, one result for the listing itself when there are none
    (value: how many, i.e. 0; it passes only when > 0)."""
    if each.failure is not None:
        return each.failure
    if not each.items and each.listed is not None and none_expected:
        return {"": Judged(each.listed, req, none_expected, passes=lambda n: n > 0)}
    return dict(each.items)


def _each(probe: str,
          none_expected: str = "") -> Callable[[CheckContext], Measurement | dict[str, Measurement | Judged]]:
    def measure(ctx: CheckContext) -> Measurement | dict[str, Measurement | Judged]:
        return per_object(_shared(ctx, probe), ctx.req, none_expected)
    return measure


def _controller(ctx: CheckContext) -> Measurement:
    m: Measurement = _shared(ctx, "ingress_nginx").controller
    return m


def _ingresses(ctx: CheckContext) -> Measurement | dict[str, Measurement | Judged]:
    return per_object(_shared(ctx, "ingress_nginx").ingresses, ctx.req,
                      ">= 1 Ingress in the namespace, served by ingress-nginx")


# ----------------------------------------------------------------------------- applicability

def _when(wanted: Callable[[KubernetesReq], bool], flag: str) -> Callable[[CheckContext], str | None]:
    def applies(ctx: CheckContext) -> str | None:
        if ctx.spec is None:
            return "target has no kubernetes section"
        if not wanted(ctx.req):
            return f"profile '{ctx.profile_name}' does not require this ({flag})"
        return None
    return applies


def _component(name: str) -> Callable[[CheckContext], str | None]:
    return _when(lambda req: name in req.components, f"components does not list {name}")


ALWAYS = _when(lambda req: True, "")


# ----------------------------------------------------------------------------- rules needing probe constants

def _version_ok(req: KubernetesReq, value: str) -> bool:
    from checks.kubernetes.probes import version_at_least

    return version_at_least(value, req.min_version)


def _ingress_expected(req: KubernetesReq) -> str:
    from checks.kubernetes.probes import INGRESS_NGINX_CONTROLLER

    return f">= 1 Ready controller pod and an IngressClass with controller {INGRESS_NGINX_CONTROLLER}"


def _class_expected(req: KubernetesReq) -> str:
    from checks.kubernetes.probes import INGRESS_NGINX_CONTROLLER

    return f"an IngressClass whose controller is {INGRESS_NGINX_CONTROLLER}"


def _class_ok(req: KubernetesReq, value: dict[str, Any]) -> bool:
    from checks.kubernetes.probes import INGRESS_NGINX_CONTROLLER

    return bool(value["controller"] == INGRESS_NGINX_CONTROLLER)


def _metrics_expected(req: KubernetesReq) -> str:
    from checks.kubernetes.probes import METRICS_APISERVICE

    return f"APIService {METRICS_APISERVICE} Available=True and node metrics served"


def _metrics_fix(req: KubernetesReq, m: Measurement) -> str:
    from checks.kubernetes.probes import METRICS_APISERVICE

    return f"install or repair metrics-server (kubectl get apiservice {METRICS_APISERVICE} shows the failure)"


def _resources_expected(req: KubernetesReq) -> str:
    from checks.kubernetes.probes import RESOURCE_KEYS

    return f"{', '.join(RESOURCE_KEYS)} on every container"


STORAGE = ("OZ-HL-HA-01", "OZ-ML-HA-02", "AW-EN-K8S-01", "AW-DB-04")

FAMILY = Family(
    name="kubernetes",
    title="Kubernetes platform checks",
    feature="kubernetes.feature",
    profile_block=KubernetesReq,
    target_block=KubernetesSpec,
    checks=(
        Check(
            id="kubernetes.version",
            title="Kubernetes server version",
            severity=Severity.CRITICAL,
            refs=("OZ-HL-K8S-01", "DS-CT-SW-09"),
            measures="the API server's version (GET /version)",
            applies=ALWAYS,
            measure=_one("server_version"),
            expected=lambda req: f">= {req.min_version}",
            passes=_version_ok,
            remediation=lambda req, m: f"upgrade the cluster to Kubernetes {req.min_version} or later",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.tls_verify",
            title="Kubernetes server version",
            severity=Severity.CRITICAL,
            refs=("OZ-HL-K8S-01", "DS-CT-SW-09"),
            measures="the kubeconfig's cluster entry: an https server whose certificate the client verifies "
                     "(no insecure-skip-tls-verify); no API call",
            applies=ALWAYS,
            measure=_one("tls_verification"),
            expected=lambda req: "the API server's certificate is verified (no insecure-skip-tls-verify)",
            passes=lambda req, v: v is True,
            remediation="remove insecure-skip-tls-verify from the kubeconfig's cluster and give its "
                        "certificate-authority (or certificate-authority-data)",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.component[ingress-nginx]",
            title="ingress-nginx controller serves the namespace's Ingresses",
            severity=Severity.HIGH,
            refs=("OZ-HL-K8S-02", "AW-EN-K8S-01"),
            measures="ingress-nginx controller pods (by their app labels, any namespace) and the IngressClasses "
                     "whose controller is k8s.io/ingress-nginx",
            applies=_component("ingress-nginx"),
            measure=_controller,
            expected=_ingress_expected,
            passes=lambda req, v: v["ready_pods"] >= 1 and bool(v["classes"]),
            remediation="install ingress-nginx (helm chart ingress-nginx/ingress-nginx) and fix its controller "
                        "pods",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.ingress_class",
            title="ingress-nginx controller serves the namespace's Ingresses",
            severity=Severity.HIGH,
            refs=("OZ-HL-K8S-02", "AW-EN-K8S-01"),
            measures="each Ingress of the namespace: its class (spec.ingressClassName, the legacy annotation or "
                     "the default IngressClass) and that class's controller",
            applies=_component("ingress-nginx"),
            measure=_ingresses,
            expected=_class_expected,
            passes=_class_ok,
            remediation="set spec.ingressClassName to the ingress-nginx IngressClass (e.g. nginx)",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.component[cluster-issuer]",
            title="A cert-manager ClusterIssuer is Ready",
            severity=Severity.HIGH,
            refs=("OZ-HL-K8S-03", "OZ-HL-TLS-01", "AW-TLS-03"),
            measures="cert-manager ClusterIssuers (cert-manager.io/v1) and their Ready condition",
            applies=_component("cluster-issuer"),
            measure=_one("cluster_issuers"),
            expected=">= 1 ClusterIssuer with Ready=True",
            passes=lambda req, ready: len(ready) >= 1,
            remediation="install cert-manager and fix the ClusterIssuer "
                        "(kubectl describe clusterissuer NAME shows why it is not Ready)",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.component[metrics-server]",
            title="The resource metrics API is available",
            severity=Severity.HIGH,
            refs=("OZ-HL-K8S-04", "OZ-HL-MON-01"),
            measures="the APIService v1beta1.metrics.k8s.io's Available condition and the node metrics it serves",
            applies=_component("metrics-server"),
            measure=_one("metrics_api"),
            expected=_metrics_expected,
            passes=lambda req, v: bool(v["available"]) and v["node_metrics"] >= 1,
            remediation=_metrics_fix,
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.component[prometheus]",
            title="Prometheus is running",
            severity=Severity.HIGH,
            refs=("OZ-HL-K8S-05", "OZ-HL-MON-01"),
            measures="Prometheus server pods (app.kubernetes.io/name=prometheus, any namespace) that are Ready",
            applies=_component("prometheus"),
            measure=_one("prometheus"),
            expected=">= 1 Ready Prometheus pod",
            passes=lambda req, ready: ready >= 1,
            remediation="deploy Prometheus (e.g. kube-prometheus-stack) and fix its pods",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.component[cluster-autoscaler]",
            title="The cluster autoscaler is running",
            severity=Severity.HIGH,
            refs=("OZ-HL-K8S-06", "OZ-HL-HA-03"),
            measures="the cluster-autoscaler Deployment's Ready replicas, the health in its status ConfigMap and "
                     "whether a node group is below its maximum size",
            applies=_component("cluster-autoscaler"),
            measure=_one("cluster_autoscaler"),
            expected=">= 1 Ready replica, status ConfigMap Healthy, a node group below its maximum size",
            passes=lambda req, v: v["ready_replicas"] >= 1 and v["health"] == "Healthy" and v["headroom"] is not False,
            remediation="deploy cluster-autoscaler with node-group auto-discovery; raise the node group's maximum "
                        "size",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.storage_rwx",
            title="A ReadWriteMany StorageClass exists",
            severity=Severity.HIGH,
            refs=STORAGE,
            measures="StorageClasses whose provisioner serves shared file systems, or that back a Bound "
                     "ReadWriteMany PersistentVolume",
            applies=_when(lambda req: req.storage_rwx, "storage_rwx: false"),
            measure=_one("storage_classes"),
            expected=">= 1 StorageClass that provisions ReadWriteMany volumes",
            passes=lambda req, capable: len(capable) >= 1,
            remediation="add an RWX StorageClass (NFS CSI, EFS, Azure Files, Filestore, CephFS, Longhorn)",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.pvc_rwx",
            title="Shared volumes of the workloads are ReadWriteMany and Bound",
            severity=Severity.HIGH,
            refs=STORAGE,
            measures="the PVCs (phase, access modes) and NFS volumes the namespace's Deployments mount",
            applies=_when(lambda req: req.storage_rwx, "storage_rwx: false"),
            measure=_each("shared_volumes", ">= 1 ReadWriteMany volume shared by the Deployments' replicas"),
            expected="Bound with access mode ReadWriteMany",
            passes=lambda req, v: v["phase"] == "Bound" and "ReadWriteMany" in v["access_modes"],
            remediation="put the shared data on a ReadWriteMany PVC (an RWX StorageClass) or an NFS share",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.replicas",
            title="Workloads run the minimum number of Ready replicas",
            severity=Severity.HIGH,
            refs=("AW-EN-HA-02", "OZ-HL-HA-02", "AW-HA-07"),
            measures="status.readyReplicas of each Deployment and StatefulSet of the namespace",
            applies=ALWAYS,
            measure=_each("workload_replicas"),
            expected=lambda req: f">= {req.min_replicas} Ready replicas",
            passes=lambda req, ready: ready >= req.min_replicas,
            remediation=lambda req, m: f"run at least {req.min_replicas} replicas and make them Ready",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.pdb",
            title="Workloads are covered by a PodDisruptionBudget",
            severity=Severity.HIGH,
            refs=("AW-EN-HA-02", "OZ-HL-HA-02"),
            measures="PodDisruptionBudgets (policy/v1) whose selector selects each workload's pods",
            applies=_when(lambda req: req.pdb, "pdb: false"),
            measure=_each("workload_pdbs"),
            expected=">= 1 PodDisruptionBudget selecting its pods",
            passes=lambda req, pdbs: len(pdbs) >= 1,
            remediation="add a PodDisruptionBudget (policy/v1) whose selector matches the pod labels",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.hpa",
            title="Workloads are scaled by a HorizontalPodAutoscaler",
            severity=Severity.HIGH,
            refs=("AW-EN-HA-01", "OZ-HL-HA-04", "AW-HA-06"),
            measures="HorizontalPodAutoscalers (autoscaling/v2) whose scaleTargetRef is each workload",
            applies=_when(lambda req: req.hpa, "hpa: false"),
            measure=_each("workload_hpas"),
            expected=">= 1 HorizontalPodAutoscaler targeting it",
            passes=lambda req, hpas: len(hpas) >= 1,
            remediation="add a HorizontalPodAutoscaler (autoscaling/v2) on CPU/memory utilisation",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.probes",
            title="Workload containers have readiness and liveness probes",
            severity=Severity.MEDIUM,
            refs=("AW-HA-10", "AW-EN-HA-02"),
            measures="readinessProbe and livenessProbe of every container in each workload's pod template",
            applies=_when(lambda req: req.probes, "probes: false"),
            measure=_each("workload_probes"),
            expected="readinessProbe and livenessProbe on every container",
            passes=lambda req, missing: missing == [],
            remediation="add readinessProbe and livenessProbe to every container",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.resources",
            title="Workload containers declare resource requests and limits",
            severity=Severity.MEDIUM,
            refs=("AW-EN-HA-01",),
            measures="resources.requests (cpu, memory) and resources.limits.memory of every container in each "
                     "workload's pod template",
            applies=_when(lambda req: req.resources, "resources: false"),
            measure=_each("workload_resources"),
            expected=_resources_expected,
            passes=lambda req, missing: missing == [],
            remediation="set resources.requests (cpu, memory) and resources.limits.memory on every container",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="kubernetes.zones",
            title="Workload pods are spread over availability zones",
            severity=Severity.HIGH,
            refs=("AW-EN-HA-03",),
            measures="distinct zones (topology.kubernetes.io/zone of their nodes) of each workload's Ready pods",
            applies=_when(lambda req: req.zones_min > 1, "zones_min: 1"),
            measure=_each("workload_zones"),
            expected=lambda req: f"Ready pods in >= {req.zones_min} zones",
            passes=lambda req, zones: zones >= req.zones_min,
            remediation="spread the pods with topologySpreadConstraints on topology.kubernetes.io/zone "
                        "(and nodes in several zones)",
            verify_hint=VERIFY_HINT,
        ),
    ),
)
