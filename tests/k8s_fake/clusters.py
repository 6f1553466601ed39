"""Cluster data sets for the fake API server: the compliant Oz High Load cluster
(``data/compliant.json``, in the shapes the API server returns) and broken clusters
derived from it, each breaking one requirement the way real clusters break it."""
from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k8s_fake.server import Behaviour, Rule

Json = dict[str, Any]
DATA = Path(__file__).resolve().parent / "data"
NS = "oz"
CHECKER = "system:serviceaccount:golive:golive-checker"


@functools.lru_cache(maxsize=1)
def _compliant() -> Json:
    data: Json = json.loads((DATA / "compliant.json").read_text())
    data.pop("_comment", None)
    return data


def compliant() -> Behaviour:
    return Behaviour(copy.deepcopy(_compliant()))


def _items(b: Behaviour, path: str) -> list[Json]:
    items: list[Json] = b.data[path]["items"]
    return items


def _named(b: Behaviour, path: str, name: str, ns: str | None = None) -> Json:
    for item in _items(b, path):
        if item["metadata"]["name"] == name and (ns is None or item["metadata"].get("namespace") == ns):
            return item
    raise KeyError(f"{path}: {name}")


def _drop(b: Behaviour, path: str, pred: Callable[[Json], bool]) -> None:
    b.data[path]["items"] = [i for i in _items(b, path) if not pred(i)]


def _unready_pod(pod: Json, reason: str = "CrashLoopBackOff") -> None:
    for cond in pod["status"]["conditions"]:
        if cond["type"] in ("Ready", "ContainersReady"):
            cond.update(status="False", reason="ContainersNotReady",
                        message=f"containers with unready status: [{pod['spec']['containers'][0]['name']}]")
    for cs in pod["status"]["containerStatuses"]:
        cs.update(ready=False, started=False, restartCount=17,
                  state={"waiting": {"reason": reason, "message": f"back-off 5m0s restarting failed container={cs['name']} "
                                                                  f"pod={pod['metadata']['name']}"}},
                  lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2024-05-20T10:02:11Z",
                                            "finishedAt": "2024-05-20T10:02:13Z"}})


# ----------------------------------------------------------------------------- broken clusters

def old_version(b: Behaviour) -> None:
    """Kubernetes 1.23 (below the tier's 1.25)."""
    b.data["/version"] = {"major": "1", "minor": "23+", "gitVersion": "v1.23.17-eks-c12679a",
                          "gitCommit": "953be8927e9ac3d9b8d6b5b1d1f9c1a7e1e0d1c2", "gitTreeState": "clean",
                          "buildDate": "2023-09-29T16:34:35Z", "goVersion": "go1.19.13", "compiler": "gc",
                          "platform": "linux/amd64"}


def ingress_broken(b: Behaviour) -> None:
    """The ingress-nginx controller crash-loops, and oz-web is served by another class."""
    deps = _named(b, "/apis/apps/v1/deployments", "ingress-nginx-controller", "ingress-nginx")
    deps["status"].update(readyReplicas=0, availableReplicas=0, unavailableReplicas=2)
    for pod in _items(b, "/api/v1/pods"):
        if pod["metadata"]["namespace"] == "ingress-nginx":
            _unready_pod(pod)
    _items(b, "/apis/networking.k8s.io/v1/ingressclasses").append(
        {"metadata": {"name": "traefik", "uid": "5e9b6c1a-0d3f-4b8e-a2c7-9f1d3e5b7a90", "resourceVersion": "4291877",
                      "generation": 1, "creationTimestamp": "2024-05-14T08:12:31Z",
                      "labels": {"app.kubernetes.io/instance": "traefik-kube-system", "app.kubernetes.io/name": "traefik"}},
         "spec": {"controller": "traefik.io/ingress-controller"}})
    _named(b, "/apis/networking.k8s.io/v1/ingresses", "oz-web", NS)["spec"]["ingressClassName"] = "traefik"


def issuer_not_ready(b: Behaviour) -> None:
    """The only ClusterIssuer cannot register its ACME account."""
    iss = _named(b, "/apis/cert-manager.io/v1/clusterissuers", "letsencrypt-prod")
    iss["status"] = {"acme": {}, "conditions": [{
        "lastTransitionTime": "2024-05-20T09:58:02Z", "observedGeneration": 1, "reason": "ErrRegisterACMEAccount",
        "status": "False", "type": "Ready",
        "message": 'Failed to register ACME account: Get "https://acme-v02.api.letsencrypt.org/directory": '
                   "dial tcp: lookup acme-v02.api.letsencrypt.org on 172.20.0.10:53: i/o timeout"}]}


def no_cert_manager(b: Behaviour) -> None:
    """cert-manager is not installed: the API group is not served at all."""
    del b.data["/apis/cert-manager.io/v1/clusterissuers"]


def metrics_unavailable(b: Behaviour) -> None:
    """metrics-server is registered but its APIService is not Available."""
    svc = _named(b, "/apis/apiregistration.k8s.io/v1/apiservices", "v1beta1.metrics.k8s.io")
    svc["status"]["conditions"] = [{
        "type": "Available", "status": "False", "lastTransitionTime": "2024-05-20T09:41:17Z",
        "reason": "FailedDiscoveryCheck",
        "message": "failing or missing response from https://10.0.2.15:10250/apis/metrics.k8s.io/v1beta1: "
                   'Get "https://10.0.2.15:10250/apis/metrics.k8s.io/v1beta1": dial tcp 10.0.2.15:10250: i/o timeout'}]
    b.rules.append(Rule(r"^/apis/metrics\.k8s\.io/", 503, "the server is currently unable to handle the request"))


def prometheus_down(b: Behaviour) -> None:
    """Prometheus crash-loops (e.g. its volume is full)."""
    sts = _named(b, "/apis/apps/v1/statefulsets", "prometheus-kube-prometheus-stack-prometheus", "monitoring")
    sts["status"].update(readyReplicas=0, availableReplicas=0)
    for pod in _items(b, "/api/v1/pods"):
        if pod["metadata"]["labels"].get("app.kubernetes.io/name") == "prometheus":
            _unready_pod(pod)


def no_autoscaler(b: Behaviour) -> None:
    """No cluster-autoscaler is deployed."""
    def is_ca(i: Json) -> bool:
        return "cluster-autoscaler" in i["metadata"]["name"]
    for path in ("/apis/apps/v1/deployments", "/api/v1/pods", "/api/v1/configmaps"):
        _drop(b, path, is_ca)


def autoscaler_at_max(b: Behaviour) -> None:
    """The autoscaler runs, but its only node group is at its maximum size."""
    cm = _named(b, "/api/v1/configmaps", "cluster-autoscaler-status", "kube-system")
    cm["data"]["status"] = cm["data"]["status"].replace("cloudProviderTarget=3 (minSize=3, maxSize=6)",
                                                        "cloudProviderTarget=6 (minSize=3, maxSize=6)")


def single_replica(b: Behaviour) -> None:
    """oz-api runs one replica, without PodDisruptionBudget or HorizontalPodAutoscaler."""
    dep = _named(b, "/apis/apps/v1/deployments", "oz-api", NS)
    dep["spec"]["replicas"] = 1
    dep["status"].update(replicas=1, readyReplicas=1, availableReplicas=1, updatedReplicas=1)
    api_pods = [p for p in _items(b, "/api/v1/pods") if p["metadata"]["name"].startswith("oz-api-")]
    _drop(b, "/api/v1/pods", lambda p: p in api_pods[1:])
    _drop(b, "/apis/policy/v1/poddisruptionbudgets", lambda p: p["metadata"]["name"] == "oz-api")
    _drop(b, "/apis/autoscaling/v2/horizontalpodautoscalers", lambda h: h["metadata"]["name"] == "oz-api")


def no_probes_resources(b: Behaviour) -> None:
    """oz-web's container declares no probes, no requests and no limits."""
    dep = _named(b, "/apis/apps/v1/deployments", "oz-web", NS)
    for c in dep["spec"]["template"]["spec"]["containers"]:
        c.pop("readinessProbe", None)
        c.pop("livenessProbe", None)
        c["resources"] = {}


def rwo_only(b: Behaviour) -> None:
    """Only block storage (EBS): no RWX StorageClass, and the media PVC is ReadWriteOnce."""
    _drop(b, "/apis/storage.k8s.io/v1/storageclasses", lambda s: s["metadata"]["name"] == "efs-sc")
    pvc = _named(b, "/api/v1/persistentvolumeclaims", "oz-media", NS)
    pvc["spec"].update(accessModes=["ReadWriteOnce"], storageClassName="gp3")
    pvc["status"]["accessModes"] = ["ReadWriteOnce"]
    for key in ("volume.beta.kubernetes.io/storage-provisioner", "volume.kubernetes.io/storage-provisioner"):
        pvc["metadata"]["annotations"][key] = "ebs.csi.aws.com"
    pv = _named(b, "/api/v1/persistentvolumes", pvc["spec"]["volumeName"])
    pv["spec"].update(accessModes=["ReadWriteOnce"], storageClassName="gp3",
                      csi={"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0c4d5e6f7a8b9c0d1", "fsType": "ext4"})


def one_zone(b: Behaviour) -> None:
    """Every pod of the namespace runs on one node, in one zone."""
    node = b.data["/api/v1/nodes"]["items"][0]
    for pod in _items(b, "/api/v1/pods"):
        if pod["metadata"]["namespace"] == NS:
            pod["spec"]["nodeName"] = node["metadata"]["name"]
            pod["status"]["hostIP"] = node["status"]["addresses"][0]["address"]


def forbidden_storage(b: Behaviour) -> None:
    """The checker's service account may not list StorageClasses."""
    b.rules.append(Rule(r"^/apis/storage\.k8s\.io/v1/storageclasses", 403,
                        f'storageclasses.storage.k8s.io is forbidden: User "{CHECKER}" cannot list resource '
                        '"storageclasses" in API group "storage.k8s.io" at the cluster scope'))


def forbidden_everything(b: Behaviour) -> None:
    """A service account without any binding: every read is forbidden."""
    b.rules.append(Rule(r"^/(api|apis)/", 403, f'User "{CHECKER}" cannot list this resource'))


BREAKERS: dict[str, Callable[[Behaviour], None]] = {
    "old_version": old_version, "ingress_broken": ingress_broken, "issuer_not_ready": issuer_not_ready,
    "no_cert_manager": no_cert_manager, "metrics_unavailable": metrics_unavailable,
    "prometheus_down": prometheus_down, "no_autoscaler": no_autoscaler, "autoscaler_at_max": autoscaler_at_max,
    "single_replica": single_replica, "no_probes_resources": no_probes_resources, "rwo_only": rwo_only,
    "one_zone": one_zone, "forbidden_storage": forbidden_storage, "forbidden_everything": forbidden_everything,
}

#: One cluster with every requirement broken once (for one end-to-end run).
EVERYTHING_BROKEN = ("old_version", "ingress_broken", "issuer_not_ready", "metrics_unavailable", "prometheus_down",
                     "no_autoscaler", "single_replica", "no_probes_resources", "rwo_only", "one_zone")


def cluster(*broken: str) -> Behaviour:
    """The compliant cluster with the named breakages applied."""
    b = compliant()
    for name in broken:
        BREAKERS[name](b)
    return b
