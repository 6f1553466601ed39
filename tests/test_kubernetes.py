"""Self-tests of the Kubernetes checks: probes (checks/kubernetes/probes.py), the declared
checks (checks/kubernetes/family.py, judged with golive.checkdef.evaluate) and the family end
to end (features/kubernetes.feature through the generic binding suites/test_families.py).

**The API server here is a stand-in.**  No real Kubernetes API server can run on the
machines golive is built and tested on (no kube-apiserver, k3s, kind or kwok can be
installed, and there is no container engine), so ``tests/k8s_fake/`` provides one: a local
HTTPS server on 127.0.0.1 that answers the API paths the official ``kubernetes`` client
calls with objects in the shapes a real cluster returns (``tests/k8s_fake/data/
compliant.json``: an EKS 1.29 cluster running the Oz High Load stack; the broken clusters
in ``tests/k8s_fake/clusters.py`` are derived from it), with ``Status`` objects for errors
and a bearer token it insists on.  The probe code under test is identical to what runs
against a real cluster: the official client, a real kubeconfig file (server
``https://127.0.0.1:PORT``, ``certificate-authority``, a bearer token), TLS verification
on, the same API calls.  What this cannot show is that a particular real cluster answers
exactly like the recorded data; docs/kubernetes.md says how to run the family against a
real cluster (kind, k3d), which was not done on these machines.

Every check passes on the compliant cluster and fails on its broken counterpart (status and
measured value asserted); an unreachable server, a TLS failure, 401 and 403 are ``error``;
the bearer token never appears in report.json, report.html, junit.xml or the output.
Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_fake.clusters import EVERYTHING_BROKEN, cluster
from k8s_fake.server import FakeApiServer

from checks.kubernetes import probes as k
from conftest import write_target
from golive.model import Measurement
from golive.target import load_target
from lab.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
# A token shaped like a service-account JWT, unique per run: the canary for the redaction tests.
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImdvbGl2ZSJ9." + secrets.token_urlsafe(24) + ".c2lnbmF0dXJl"

ALL_ON_PROFILE = """\
name: k8s-everything
description: every Kubernetes requirement switched on (golive self-test)
requirements:
  kubernetes:
    ref: [OZ-HL-K8S-01, OZ-HL-K8S-02, OZ-HL-K8S-03, OZ-HL-K8S-04, OZ-HL-K8S-05, OZ-HL-K8S-06, OZ-HL-HA-01,
          AW-EN-HA-01, AW-EN-HA-02, AW-EN-HA-03]
    min_version: "1.25"
    components: [ingress-nginx, cluster-issuer, metrics-server, prometheus, cluster-autoscaler]
    storage_rwx: true
    min_replicas: 2
    pdb: true
    hpa: true
    probes: true
    resources: true
    zones_min: 2
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeApiServer]:
    with FakeApiServer(tmp_path_factory.mktemp("k8s-fake"), TOKEN) as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    api.behaviour = cluster()
    return api.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def ref(kubeconfig: Path) -> k.ClusterRef:
    return k.ClusterRef(kubeconfig=str(kubeconfig), context="fake-cluster", namespace="oz", timeout_s=5)


def _value(m: Measurement) -> Any:
    assert m.error is None, m.error
    return m.value


# ----------------------------------------------------------------------------- probes: compliant vs broken

def _ingress_value(r: k.ClusterRef) -> Any:
    got = k.ingress_nginx(r)
    return (_value(got.controller)["ready_pods"],
            {name: _value(m)["controller"] for name, m in got.ingresses.items.items()})


def _each(fn: Any, key: str) -> Any:
    def read(r: k.ClusterRef) -> Any:
        each = fn(r)
        assert each.failure is None, each.failure.error
        return _value(each.items[key])
    return read


NGINX = "k8s.io/ingress-nginx"
PROBE_CASES = [
    # (id, read the value, broken cluster, value on the compliant cluster, value on the broken one)
    ("version", lambda r: _value(k.server_version(r)), "old_version", "1.29.4", "1.23.17"),
    ("ingress-nginx", _ingress_value, "ingress_broken",
     (2, {"oz-api": NGINX, "oz-web": NGINX}), (0, {"oz-api": NGINX, "oz-web": "traefik.io/ingress-controller"})),
    ("cluster-issuer", lambda r: _value(k.cluster_issuers(r)), "issuer_not_ready", ["letsencrypt-prod"], []),
    ("cert-manager-absent", lambda r: _value(k.cluster_issuers(r)), "no_cert_manager", ["letsencrypt-prod"], []),
    ("metrics-server", lambda r: _value(k.metrics_api(r)), "metrics_unavailable",
     {"available": True, "node_metrics": 3}, {"available": False, "node_metrics": 0}),
    ("prometheus", lambda r: _value(k.prometheus(r)), "prometheus_down", 1, 0),
    ("cluster-autoscaler", lambda r: {x: _value(k.cluster_autoscaler(r))[x] for x in ("ready_replicas", "health")},
     "no_autoscaler", {"ready_replicas": 1, "health": "Healthy"}, {"ready_replicas": 0, "health": None}),
    ("autoscaler-at-max", lambda r: _value(k.cluster_autoscaler(r))["headroom"], "autoscaler_at_max", True, False),
    ("storage-rwx", lambda r: _value(k.storage_classes(r)), "rwo_only", ["efs-sc"], []),
    ("pvc-rwx", lambda r: _each(k.shared_volumes, "oz-media")(r)["access_modes"], "rwo_only",
     ["ReadWriteMany"], ["ReadWriteOnce"]),
    ("replicas", _each(k.workload_replicas, "deploy/oz-api"), "single_replica", 3, 1),
    ("pdb", _each(k.workload_pdbs, "deploy/oz-api"), "single_replica", ["oz-api"], []),
    ("hpa", _each(k.workload_hpas, "deploy/oz-api"), "single_replica", ["oz-api"], []),
    ("probes", _each(k.workload_probes, "deploy/oz-web"), "no_probes_resources",
     [], ["web: readinessProbe", "web: livenessProbe"]),
    ("resources", _each(k.workload_resources, "deploy/oz-web"), "no_probes_resources",
     [], ["web: requests.cpu", "web: requests.memory", "web: limits.memory"]),
    ("zones", _each(k.workload_zones, "deploy/oz-api"), "one_zone", 3, 1),
]


@pytest.mark.parametrize(("read", "broken", "good_value", "bad_value"), [c[1:] for c in PROBE_CASES],
                         ids=[c[0] for c in PROBE_CASES])
def test_probe_measures_the_compliant_and_the_broken_cluster(api: FakeApiServer, ref: k.ClusterRef, read: Any,
                                                             broken: str, good_value: Any, bad_value: Any) -> None:
    assert read(ref) == good_value
    api.behaviour = cluster(broken)
    assert read(ref) == bad_value


def test_statefulset_claims_are_not_shared_volumes(ref: k.ClusterRef) -> None:
    each = k.shared_volumes(ref)
    assert set(each.items) == {"oz-media"}  # data-oz-bio-* (RWO, per replica) is not judged as shared
    assert each.items["oz-media"].display == "Bound, ReadWriteMany (class efs-sc), mounted by deploy/oz-api"


def test_evidence_names_api_paths_server_and_client(api: FakeApiServer, ref: k.ClusterRef) -> None:
    m = k.workload_pdbs(ref).items["deploy/oz-api"]
    ev = m.evidence
    assert ev.method == ("GET /apis/apps/v1/namespaces/oz/deployments; GET /apis/apps/v1/namespaces/oz/statefulsets; "
                         "GET /apis/policy/v1/namespaces/oz/poddisruptionbudgets")
    assert ev.data["server"] == api.url and ev.data["context"] == "fake-cluster"
    assert ev.tool.startswith("kubernetes Python client ") and ev.data["client_version"] != "not installed"
    assert "pdb oz-api: selector app.kubernetes.io/instance=oz,app.kubernetes.io/name=oz-api" in ev.raw
    assert m.display == "pdb/oz-api (minAvailable 2, 1 disruption allowed)"
    v = k.server_version(ref)
    assert v.evidence.data["api_calls"] == ["GET /version/"] and '"gitVersion": "v1.29.4-eks-036c24b"' in v.evidence.raw
    assert TOKEN not in repr(m) and TOKEN not in repr(v)


def test_requests_are_read_only_and_every_one_has_a_timeout(api: FakeApiServer, ref: k.ClusterRef,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.client import rest

    timeouts: list[Any] = []
    original: Any = rest.RESTClientObject.request

    def spy(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs.get("_request_timeout"))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(rest.RESTClientObject, "request", spy)
    api.requests.clear()
    for probe in (k.server_version, k.cluster_issuers, k.metrics_api, k.prometheus, k.cluster_autoscaler,
                  k.storage_classes, k.ingress_nginx, k.shared_volumes, k.workload_zones, k.workload_hpas):
        probe(ref)
    assert len(timeouts) == len(api.requests) >= 15
    assert set(timeouts) == {(5, 5)}
    assert {method for method, _ in api.requests} == {"GET"}


# ----------------------------------------------------------------------------- probes: could not verify

def test_forbidden_is_an_error_naming_the_resource(api: FakeApiServer, ref: k.ClusterRef) -> None:
    api.behaviour = cluster("forbidden_storage")
    m = k.storage_classes(ref)
    assert m.value is None and m.error is not None
    assert m.error.startswith("forbidden (403): the credentials of context 'fake-cluster' cannot list storageclasses")
    assert 'cannot list resource "storageclasses"' in m.error  # the API server's own words
    assert m.evidence.method == "GET /apis/storage.k8s.io/v1/storageclasses"


def test_forbidden_listing_of_workloads_is_an_error_for_the_scenario(api: FakeApiServer, ref: k.ClusterRef) -> None:
    api.behaviour = cluster("forbidden_everything")
    each = k.workload_replicas(ref)
    assert each.items == {} and each.failure is not None and each.failure.error is not None
    assert each.failure.error.startswith("forbidden (403)")
    ing = k.ingress_nginx(ref)
    assert ing.controller.error is not None and ing.ingresses.failure is not None


def test_wrong_token_is_unauthorized(api: FakeApiServer, tmp_path: Path) -> None:
    kc = api.kubeconfig(tmp_path / "kc-bad-token", token="not-the-token")
    m = k.server_version(k.ClusterRef(str(kc), None, "oz", 5))
    assert m.error is not None and m.error.startswith("unauthorized (401)")


def test_untrusted_server_certificate_is_a_tls_error(api: FakeApiServer, tmp_path: Path) -> None:
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    kc = api.kubeconfig(tmp_path / "kc-other-ca", ca_file=other_ca)
    m = k.server_version(k.ClusterRef(str(kc), None, "oz", 5))
    assert m.error is not None and m.error.startswith(f"TLS failure talking to the API server {api.url}")
    assert "certificate verify failed" in m.error


def test_unreachable_server_is_an_error(api: FakeApiServer, tmp_path: Path) -> None:
    kc = api.kubeconfig(tmp_path / "kc-dead", server=f"https://127.0.0.1:{free_port()}")
    m = k.server_version(k.ClusterRef(str(kc), None, "oz", 5))
    assert m.error is not None and "cannot reach the API server" in m.error and "refused" in m.error


def test_a_server_slower_than_the_timeout_is_an_error(api: FakeApiServer, ref: k.ClusterRef) -> None:
    api.behaviour = cluster()
    api.behaviour.delay_s = 1.5
    m = k.server_version(k.ClusterRef(ref.kubeconfig, ref.context, "oz", timeout_s=0.3))
    assert m.error is not None and "did not answer 'read the server version' within 0.3 s" in m.error


@pytest.mark.parametrize(("path", "context", "fragment"), [
    ("/nonexistent/kubeconfig", None, "kubeconfig /nonexistent/kubeconfig not found"),
    (None, "prod", "context 'prod' is not in the kubeconfig"),
])
def test_kubeconfig_problems_are_errors(path: str | None, context: str | None, fragment: str,
                                        ref: k.ClusterRef) -> None:
    m = k.server_version(k.ClusterRef(path or ref.kubeconfig, context, "oz", 5))
    assert m.error is not None and fragment in m.error


def test_an_empty_namespace_cannot_be_verified(ref: k.ClusterRef) -> None:
    each = k.workload_probes(k.ClusterRef(ref.kubeconfig, ref.context, "no-such-namespace", 5))
    assert each.failure is not None and each.failure.error is not None
    assert "namespace 'no-such-namespace' has no Deployments or StatefulSets" in each.failure.error


def test_version_comparison() -> None:
    assert k.version_at_least("1.29.4", "1.25") and k.version_at_least("1.25.0", "1.25")
    assert not k.version_at_least("1.23.17", "1.25") and not k.version_at_least("1.9", "1.25")
    assert k.parse_version("v1.27.3-gke.100") == (1, 27, 3)


def test_autoscaler_status_yaml_format() -> None:
    text = ("time: 2024-05-20 10:11:38 +0000 UTC\nautoscalerStatus: Running\nclusterWide:\n  health:\n"
            "    status: Healthy\nnodeGroups:\n- name: ng-1\n  health:\n    status: Healthy\n"
            "    cloudProviderTarget: 4\n    minSize: 2\n    maxSize: 4\n")
    assert k.parse_autoscaler_status(text) == ("Healthy", [{"name": "ng-1", "target": 4, "min": 2, "max": 4}])


def test_example_target_validates() -> None:
    target = load_target(str(ROOT / "targets" / "example-k8s.yaml"))
    assert target.kubernetes is not None and target.kubernetes.namespace == "oz"


# ----------------------------------------------------------------------------- declared checks, no pytest-bdd

def _context(ref: k.ClusterRef, profile: str = ALL_ON_PROFILE) -> Any:
    import yaml

    from checks.kubernetes.spec import KubernetesReq, KubernetesSpec
    from golive.checkdef import CheckContext

    req = KubernetesReq(**yaml.safe_load(profile)["requirements"]["kubernetes"])
    spec = KubernetesSpec(kubeconfig=ref.kubeconfig, context=ref.context, namespace=ref.namespace, timeout_s=5)
    return CheckContext.for_test(req=req, spec=spec, target=None)


def test_declared_checks_pass_the_compliant_cluster_and_share_one_ingress_read(api: FakeApiServer,
                                                                               ref: k.ClusterRef) -> None:
    from checks.kubernetes.family import FAMILY
    from golive.checkdef import evaluate

    ctx = _context(ref)
    api.requests.clear()
    results = [r for check in FAMILY.checks for r in evaluate(check, ctx)]
    assert len(results) == 29 and {r.status.value for r in results} == {"pass"}, \
        [(r.id, r.status, r.reason) for r in results if r.status.value != "pass"]
    # the controller check and the Ingress check read the cluster once between them
    assert sum(1 for _, path in api.requests if path.endswith("/ingressclasses")) == 1


def test_declared_checks_fail_the_broken_cluster_with_the_measured_value(api: FakeApiServer,
                                                                         ref: k.ClusterRef) -> None:
    from checks.kubernetes.family import FAMILY
    from golive.checkdef import evaluate

    api.behaviour = cluster(*EVERYTHING_BROKEN)
    ctx = _context(ref)
    results = {r.id: r for check in FAMILY.checks for r in evaluate(check, ctx)}
    for check, measured in BROKEN_RESULTS:
        assert results[check].status.value == "fail" and results[check].measured.startswith(measured), check


def test_a_namespace_without_shared_volumes_fails_the_pvc_check_with_the_count() -> None:
    from checks.kubernetes.family import FAMILY, per_object
    from checks.kubernetes.spec import KubernetesReq
    from golive.checkdef import Judged, judge
    from golive.model import Evidence
    from golive.recorder import Checks, ScenarioInfo
    from golive.waivers import Waivers

    check = FAMILY.by_id("kubernetes.pvc_rwx")
    assert check is not None
    req = KubernetesReq(storage_rwx=True)
    none_found = k.Each({}, listed=Measurement(0, "0 volumes shared by Deployments (PVC or NFS) in namespace oz",
                                               Evidence(probe="kubernetes.shared_volumes", subject="oz",
                                                        method="GET /apis/apps/v1/namespaces/oz/deployments")))
    measured = per_object(none_found, req, ">= 1 ReadWriteMany volume shared by the Deployments' replicas")
    assert isinstance(measured, dict) and isinstance(measured[""], Judged)
    [r] = judge(check, _context_for(req), measured, Checks(ScenarioInfo(scenario=check.title), Waivers()))
    assert (r.id, r.status.value, r.measured) == ("kubernetes.pvc_rwx", "fail",
                                                  "0 volumes shared by Deployments (PVC or NFS) in namespace oz")
    assert r.expected == ">= 1 ReadWriteMany volume shared by the Deployments' replicas"


def _context_for(req: Any) -> Any:
    from golive.checkdef import CheckContext

    return CheckContext.for_test(req=req)


def test_declaring_the_family_imports_neither_the_probes_nor_the_kubernetes_client() -> None:
    import subprocess
    import sys

    code = ("import sys; from golive import registry; registry.families(); "
            "import checks.kubernetes.family; "
            "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith(('kubernetes.', "
            "'checks.kubernetes.probes'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ----------------------------------------------------------------------------- end to end

def _files(tmp_path: Path, api: FakeApiServer, *, server: str | None = None, profile: str = ALL_ON_PROFILE,
           section: bool = True) -> tuple[str, str]:
    kc = api.kubeconfig(tmp_path / "kubeconfig", server=server)
    body = (f"kubernetes:\n  kubeconfig: {kc}\n  context: fake-cluster\n  namespace: oz\n  timeout_s: 5\n"
            if section else "description: no cluster named\n")
    target = write_target(tmp_path, f"name: fake-k8s\n{body}", "k8s-target.yaml")
    prof = tmp_path / "k8s-profile.yaml"
    prof.write_text(profile)
    return str(prof), target


def _assert_token_absent(run: Any) -> None:
    assert run.run_dir is not None
    for name in ("report.json", "report.html", "junit.xml"):
        assert TOKEN not in (run.run_dir / name).read_text(), name
    assert TOKEN not in run.out


def test_compliant_cluster_is_go_with_every_check_passing(api: FakeApiServer, tmp_path: Path,
                                                          golive_run: Any) -> None:
    api.behaviour = cluster()
    profile, target = _files(tmp_path, api)
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "kubernetes")
    assert run.rc == 0, run.out[-3000:]
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # GO needs the whole profile; -m ran a part
    results = run.results("kubernetes.")
    assert {r["status"] for r in results.values()} == {"pass"}
    assert len(results) == 29
    assert run.one("kubernetes.tls_verify")["measured"].startswith("verified (CA file ")
    assert run.one("kubernetes.version")["measured"] == "v1.29.4-eks-036c24b"
    assert run.one("kubernetes.version")["requirement"]["ids"] == ["OZ-HL-K8S-01"]
    assert run.one("kubernetes.zones[deploy/oz-api]")["measured"].startswith("3 zones: eu-west-1a (1 pod)")
    assert run.one("kubernetes.replicas[sts/oz-bio]")["measured"] == "2 Ready of 2 desired"
    ev = run.one("kubernetes.storage_rwx")["evidence"][0]
    assert ev["method"] == "GET /apis/storage.k8s.io/v1/storageclasses; GET /api/v1/persistentvolumes"
    assert ev["data"]["server"] == api.url
    _assert_token_absent(run)


#: (check id, measured) for every check on the cluster with everything broken.
BROKEN_RESULTS = [
    ("kubernetes.version", "v1.23.17-eks-c12679a"),
    ("kubernetes.component[ingress-nginx]", "0 of 2 controller pods Ready ("),
    ("kubernetes.ingress_class[oz-web]", "class traefik (controller traefik.io/ingress-controller)"),
    ("kubernetes.component[cluster-issuer]", "none of 1 Ready (letsencrypt-prod: Ready=False, ErrRegisterACMEAccount)"),
    ("kubernetes.component[metrics-server]", "Available=False (FailedDiscoveryCheck: "),
    ("kubernetes.component[prometheus]",
     "0 of 1 pods Ready: monitoring/prometheus-kube-prometheus-stack-prometheus-0 (CrashLoopBackOff)"),
    ("kubernetes.component[cluster-autoscaler]", "no cluster-autoscaler Deployment in any namespace"),
    ("kubernetes.storage_rwx", "none of 2 StorageClasses is RWX-capable (gp2: kubernetes.io/aws-ebs, gp3: ebs.csi.aws.com)"),
    ("kubernetes.pvc_rwx[oz-media]", "Bound, ReadWriteOnce (class gp3), mounted by deploy/oz-api"),
    ("kubernetes.replicas[deploy/oz-api]", "1 Ready of 1 desired"),
    ("kubernetes.pdb[deploy/oz-api]", "no PodDisruptionBudget selects its pods"),
    ("kubernetes.hpa[deploy/oz-api]", "no HorizontalPodAutoscaler targets Deployment oz-api"),
    ("kubernetes.probes[deploy/oz-web]", "missing web: readinessProbe, web: livenessProbe"),
    ("kubernetes.resources[deploy/oz-web]", "missing web: requests.cpu, web: requests.memory, web: limits.memory"),
    ("kubernetes.zones[deploy/oz-api]", "1 zone: eu-west-1a (1 pod)"),
    ("kubernetes.zones[sts/oz-bio]", "1 zone: eu-west-1a (2 pods)"),
]


def test_broken_cluster_fails_every_check_with_the_measured_value(api: FakeApiServer, tmp_path: Path,
                                                                  golive_run: Any) -> None:
    api.behaviour = cluster(*EVERYTHING_BROKEN)
    profile, target = _files(tmp_path, api)
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "kubernetes")
    assert run.rc == 1, run.out[-3000:]
    assert run.report["verdict"]["decision"] == "NO-GO"
    for check, measured in BROKEN_RESULTS:
        r = run.one(check)
        assert r["status"] == "fail", (check, r)
        assert r["measured"].startswith(measured), (check, r["measured"])
        assert r["remediation"], check
    # what the breakages left alone still passes
    assert run.one("kubernetes.ingress_class[oz-api]")["status"] == "pass"
    assert run.one("kubernetes.pdb[deploy/oz-web]")["status"] == "pass"
    # every check of the family is there, and none of them passed where it was broken
    assert {r["status"] for r in run.results("kubernetes.").values()} == {"pass", "fail"}
    _assert_token_absent(run)


def test_high_load_profile_with_a_forbidden_resource(api: FakeApiServer, tmp_path: Path, golive_run: Any) -> None:
    api.behaviour = cluster("forbidden_storage")
    # a front proxy that echoes request headers into its error: the token must still not leak
    api.behaviour.rules[-1].message += f" (request header Authorization: Bearer {TOKEN})"
    _, target = _files(tmp_path, api)
    run = golive_run("--profile", "high-load", f"--target={target}", "-m", "kubernetes")
    assert run.rc == 1, run.out[-3000:]
    storage = run.one("kubernetes.storage_rwx")
    assert storage["status"] == "error" and storage["measured"] == "could not measure"
    assert storage["reason"].startswith("forbidden (403): the credentials of context 'fake-cluster' cannot list "
                                        "storageclasses")
    assert "(request header Authorization: ***)" in storage["reason"]
    assert storage["requirement"]["ids"] == ["OZ-HL-HA-01"]
    assert run.one("kubernetes.pvc_rwx[oz-media]")["status"] == "pass"  # PVCs may still be read
    # high-load asks for no PDB, HPA, probes, resources or zones: those scenarios say so
    for check, flag in [("kubernetes.pdb", "pdb: false"), ("kubernetes.hpa", "hpa: false"),
                        ("kubernetes.probes", "probes: false"), ("kubernetes.resources", "resources: false"),
                        ("kubernetes.zones", "zones_min: 1")]:
        r = run.one(check)
        assert r["status"] == "skip" and r["reason"] == f"profile 'high-load' does not require this ({flag})", r
    assert run.one("kubernetes.version")["status"] == "pass"
    assert run.one("kubernetes.replicas[deploy/oz-api]")["status"] == "pass"
    _assert_token_absent(run)


def test_unreachable_api_server_is_error_not_pass(api: FakeApiServer, tmp_path: Path, golive_run: Any) -> None:
    profile, target = _files(tmp_path, api, server=f"https://127.0.0.1:{free_port()}")
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "kubernetes")
    assert run.rc == 1
    assert run.report["verdict"]["decision"] == "NO-GO"
    results = run.results("kubernetes.")
    # 14 scenarios, 16 results: the ingress-nginx scenario judges the controller and the Ingresses,
    # the version scenario the version and the kubeconfig's TLS verification (read without a call)
    assert len(results) == 16 and results.pop("kubernetes.tls_verify")["status"] == "pass"
    assert {r["status"] for r in results.values()} == {"error"}, results
    assert "cannot reach the API server https://127.0.0.1:" in run.one("kubernetes.version")["reason"]
    _assert_token_absent(run)


def test_target_without_kubernetes_section_is_skipped(api: FakeApiServer, tmp_path: Path, golive_run: Any) -> None:
    profile, target = _files(tmp_path, api, section=False)
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "kubernetes")
    results = run.results("kubernetes.")
    assert len(results) == 16
    assert {(r["status"], r["reason"]) for r in results.values()} == {("skip", "target has no kubernetes section")}


def test_profile_without_kubernetes_block_skips_the_family(api: FakeApiServer, tmp_path: Path,
                                                           golive_run: Any) -> None:
    _, target = _files(tmp_path, api)
    api.requests.clear()
    run = golive_run("--profile", "poc", f"--target={target}", "-m", "kubernetes")
    results = run.results("kubernetes.")
    assert len(results) == 16
    assert {(r["status"], r["reason"]) for r in results.values()} == {
        ("skip", "profile 'poc' does not require kubernetes (no requirements.kubernetes)")}
    assert api.requests == []  # a skipped scenario asks the cluster nothing


# ----------------------------------------------------------------------------- TLS verification of the API server

def _insecure_kubeconfig(api: FakeApiServer, path: Path) -> Path:
    kc = api.kubeconfig(path)
    doc = json.loads(kc.read_text())
    doc["clusters"][0]["cluster"] = {"server": api.url, "insecure-skip-tls-verify": True}
    kc.write_text(json.dumps(doc))
    return kc


def test_a_kubeconfig_that_skips_tls_verification_is_measured_false(api: FakeApiServer, ref: k.ClusterRef,
                                                                      tmp_path: Path) -> None:
    good = k.tls_verification(ref)
    assert good.error is None and good.value is True and good.display.startswith("verified (CA file ")
    kc = _insecure_kubeconfig(api, tmp_path / "insecure")
    bad = k.tls_verification(k.ClusterRef(kubeconfig=str(kc), context="fake-cluster", namespace="oz", timeout_s=5))
    assert bad.error is None and bad.value is False
    assert "insecure-skip-tls-verify" in bad.display and bad.evidence.data["verify_ssl"] is False


def test_insecure_kubeconfig_is_a_failing_finding_end_to_end(api: FakeApiServer, tmp_path: Path,
                                                             golive_run: Any) -> None:
    api.behaviour = cluster()
    kc = _insecure_kubeconfig(api, tmp_path / "insecure-kubeconfig")
    target = write_target(tmp_path, f"name: fake-k8s\nkubernetes:\n  kubeconfig: {kc}\n  context: fake-cluster\n"
                                    "  namespace: oz\n  timeout_s: 5\n", "k8s-target.yaml")
    prof = tmp_path / "k8s-profile.yaml"
    prof.write_text(ALL_ON_PROFILE)
    run = golive_run(f"--profile={prof}", f"--target={target}", "-m", "kubernetes", "-k", "version")
    tls = run.one("kubernetes.tls_verify")
    assert tls["status"] == "fail" and "insecure-skip-tls-verify" in tls["measured"], tls
    assert "certificate-authority" in tls["remediation"]
    assert run.report["verdict"]["decision"] == "NO-GO"
    _assert_token_absent(run)
