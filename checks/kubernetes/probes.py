"""Kubernetes platform probes: read-only questions to a cluster's API server.

Every probe builds an ``ApiClient`` from the target's kubeconfig and context with the
official client (``kubernetes.config.new_client_from_config``), asks with GET only, bounds
every request in time (``_request_timeout``) and returns :class:`~golive.model.Measurement`
objects.  Nothing here decides pass or fail: the checks declared in
``checks/kubernetes/family.py`` compare the measured values with the profile.

Evidence names the API paths that were called (``GET /apis/apps/v1/namespaces/oz/deployments``),
the server, the context, the client version and a short summary of the objects read -- a
summary, never whole objects, so environment values or annotations cannot leak into a
report.  The bearer token (or any credential the kubeconfig yields) is registered with
:mod:`golive.redact` as soon as it is loaded, so it is masked wherever it might be written.

An unreachable server, a TLS failure, 401 and 403 are ``Measurement.failed`` with a reason
a person can act on ("forbidden (403): the credentials of context 'prod' cannot list
storageclasses ..."): they mean *could not verify*, never pass.  A 404 for something that
is simply absent (cert-manager not installed, the metrics APIService not registered) is a
measured value: the thing is not there.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from golive.model import Evidence, Measurement
from golive.redact import redact, register_secret

Obj = dict[str, Any]

#: Labels by which the components are found (first selector that finds pods wins).
INGRESS_NGINX_SELECTORS = ("app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller",
                           "app.kubernetes.io/name=ingress-nginx", "app=ingress-nginx", "app=nginx-ingress")
INGRESS_NGINX_CONTROLLER = "k8s.io/ingress-nginx"
PROMETHEUS_SELECTORS = ("app.kubernetes.io/name=prometheus", "app=prometheus,component=server")
AUTOSCALER_NAME = "cluster-autoscaler"
AUTOSCALER_STATUS_CONFIGMAP = "cluster-autoscaler-status"
METRICS_APISERVICE = "v1beta1.metrics.k8s.io"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")

#: Provisioners whose volumes can be mounted ReadWriteMany (file systems, not block devices).
RWX_PROVISIONERS = frozenset({
    "nfs.csi.k8s.io", "efs.csi.aws.com", "file.csi.azure.com", "kubernetes.io/azure-file",
    "filestore.csi.storage.gke.io", "cephfs.csi.ceph.com", "kubernetes.io/cephfs", "kubernetes.io/glusterfs",
    "driver.longhorn.io", "k8s-sigs.io/nfs-subdir-external-provisioner",
    "cluster.local/nfs-subdir-external-provisioner", "openebs.io/nfsrwx", "spectrumscale.csi.ibm.com",
    "csi.hpe.com/nfs", "fsx.csi.aws.com", "nfs.csi.ocp.io", "beegfs.csi.netapp.com", "juicefs.csi.juicedata.com",
})
_RWX_PROVISIONER_PATTERNS = (re.compile(r"(^|[./-])cephfs\.csi\.ceph\.com$"), re.compile(r"(^|[./-])nfs([./-]|$)"))


# ----------------------------------------------------------------------------- connection

@dataclasses.dataclass(frozen=True)
class ClusterRef:
    """Where the cluster is: a kubeconfig (None: ``$KUBECONFIG`` or ``~/.kube/config``, then
    in-cluster), a context (None: the kubeconfig's current context), the namespace of the
    workloads, and the time limit of every API request."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    timeout_s: float = 10.0


@dataclasses.dataclass(frozen=True)
class Each:
    """Measurements per object (``deploy/oz-api`` -> measurement), or one failed
    measurement when the objects could not be listed at all.  ``listed`` measures the
    listing itself (value: how many objects were found), so that "there are none" is a
    measured fact with its own evidence."""

    items: dict[str, Measurement]
    failure: Measurement | None = None
    listed: Measurement | None = None


class K8sError(Exception):
    """An API call gave no usable answer; ``reason`` is for people, ``status`` the HTTP
    status (0 when there was no HTTP answer)."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def client_version() -> str:
    try:
        import kubernetes
    except ImportError:
        return "not installed"
    return str(kubernetes.__version__)


class Session:
    """One ``ApiClient`` for one probe.  Records the API path of every call, gives each
    call a timeout, and turns every failure into a :class:`K8sError`."""

    def __init__(self, ref: ClusterRef, probe: str) -> None:
        self.ref = ref
        self.probe = probe
        self.calls: list[str] = []
        self.server = "(not connected)"
        self.context = ref.context or "(current context)"
        self.started = time.monotonic()
        self._api: Any = None
        self._cfg: Any = None

    # -- set-up
    def open(self) -> Session:
        try:
            from kubernetes import client
            from kubernetes import config as _config
            from kubernetes.config.config_exception import ConfigException
        except ImportError:
            raise K8sError("the kubernetes Python client is not installed: pip install 'golive[k8s]'") from None
        import urllib3

        config: Any = _config  # untyped module: its loaders are called through Any
        cfg = client.Configuration()
        # one retry to connect (a dropped keep-alive connection), none on a slow answer: a
        # request never takes much longer than timeout_s
        cfg.retries = urllib3.util.Retry(total=1, connect=1, read=0, redirect=0, status=0)
        path = os.path.expanduser(self.ref.kubeconfig) if self.ref.kubeconfig else None
        try:
            if path is None and not Path(os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)).exists() \
                    and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=cfg)
                self.context = "in-cluster service account"
                self._api = client.ApiClient(configuration=cfg)
            else:
                if path is not None and not Path(path).expanduser().is_file():
                    raise K8sError(f"kubeconfig {path} not found")
                contexts, active = config.list_kube_config_contexts(config_file=path)
                names = [c["name"] for c in contexts or []]
                if self.ref.context is not None and self.ref.context not in names:
                    raise K8sError(f"context '{self.ref.context}' is not in the kubeconfig "
                                   f"{path or config.KUBE_CONFIG_DEFAULT_LOCATION} (it has: {', '.join(names) or 'none'})")
                self.context = self.ref.context or (active or {}).get("name", "?")
                self._api = config.new_client_from_config(config_file=path, context=self.ref.context,
                                                          persist_config=False, client_configuration=cfg)
        except ConfigException as exc:
            raise K8sError(f"cannot use the kubeconfig {path or '(default)'}: {exc}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise K8sError(f"cannot load the kubeconfig {path or '(default)'}: {type(exc).__name__}: {exc}") from None
        finally:
            self._register_credentials(cfg)
        self._cfg = cfg
        self.server = str(cfg.host)
        self._record_calls()
        return self

    def _register_credentials(self, cfg: Any) -> None:
        for value in list((getattr(cfg, "api_key", None) or {}).values()):
            if isinstance(value, str) and value:
                register_secret(value)
                register_secret(value.split(" ", 1)[-1])  # "Bearer <token>" -> the token alone
        password = getattr(cfg, "password", None)
        if isinstance(password, str) and password:
            register_secret(password)

    def _record_calls(self) -> None:
        """Wrap the client's one exit to the network: note the path, insist on a timeout."""
        original = self._api.call_api
        host = self.server

        def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("_request_timeout") is None:
                kwargs["_request_timeout"] = self.timeout
            self.calls.append(f"{method} {url.removeprefix(host) or '/'}")
            return original(method, url, *args, **kwargs)

        self._api.call_api = call_api

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.ref.timeout_s, self.ref.timeout_s)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # -- API groups
    def api(self, name: str) -> Any:
        from kubernetes import client

        return getattr(client, name)(self._api)

    # -- calls
    def get(self, what: str, api: str, method: str, **kwargs: Any) -> Any:
        """``api.method(**kwargs)`` with a timeout; the answer as the JSON the server sent
        (camelCase keys).  ``what`` describes the call for error messages ("list pods")."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            result = getattr(self.api(api), method)(_request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            raise self._api_error(exc, what) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:  # transport; answers the models reject
            raise K8sError(self._transport_reason(exc, what)) from None
        finally:
            if self._cfg is not None:
                self._register_credentials(self._cfg)  # a refreshed token (exec plugin, OIDC)
        return self._api.sanitize_for_serialization(result)

    def _api_error(self, exc: Any, what: str) -> K8sError:
        status = int(exc.status or 0)
        message = ""
        try:
            body = json.loads(exc.body) if exc.body else {}
            message = str(body.get("message", "")) if isinstance(body, dict) else ""
        except (ValueError, TypeError):
            message = str(exc.body or "")[:300]
        if status == 0:
            return K8sError(self._transport_reason(exc, what))
        if status == 401:
            return K8sError(f"unauthorized (401): the API server {self.server} rejected the credentials of "
                            f"context '{self.context}' (token expired, revoked or wrong)", 401)
        if status == 403:
            return K8sError(f"forbidden (403): the credentials of context '{self.context}' cannot {what}"
                            + (f" -- the API server says: {message}" if message else "")
                            + " (grant the read-only ClusterRole in docs/kubernetes.md)", 403)
        if status == 404:
            return K8sError(f"not found (404): {what}" + (f": {message}" if message else ""), 404)
        return K8sError(f"the API server answered {status} {exc.reason or ''} to: {what}"
                        + (f" ({message})" if message else ""), status)

    def _transport_reason(self, exc: BaseException, what: str) -> str:
        inner: BaseException = exc
        reason = getattr(exc, "reason", None)
        if isinstance(reason, BaseException):  # urllib3 MaxRetryError wraps the real cause
            inner = reason
        text = str(inner) or type(inner).__name__
        name = type(inner).__name__
        low = text.lower()
        if "ssl" in name.lower() or "certificate" in low or "ssl" in low or "tls" in low:
            return (f"TLS failure talking to the API server {self.server}: {_one_line(text)} "
                    "(check certificate-authority in the kubeconfig)")
        if "refused" in low:
            return f"cannot reach the API server {self.server}: connection refused"
        if "ConnectTimeout" in name or "connect timeout" in low:
            return f"cannot reach the API server {self.server}: no answer within {self.ref.timeout_s:g} s"
        if "ReadTimeout" in name or "timed out" in low:
            return f"the API server {self.server} did not answer '{what}' within {self.ref.timeout_s:g} s"
        if "NameResolution" in name or "name or service not known" in low:
            return f"cannot resolve the API server's name in {self.server}: {_one_line(text)}"
        if "ValidationError" in name:
            return f"unexpected answer to '{what}' from {self.server}: {_one_line(text)[:300]}"
        return f"no usable answer from the API server {self.server} to '{what}': {name}: {_one_line(text)[:300]}"

    # -- evidence
    def evidence(self, subject: str = "", raw: str = "", data: Mapping[str, Any] | None = None) -> Evidence:
        return Evidence(
            probe=self.probe, subject=subject or f"{self.server} (context {self.context})",
            method="; ".join(self.calls) if self.calls else "no API call made",
            tool=f"kubernetes Python client {client_version()}", raw=redact(raw),
            duration_s=round(time.monotonic() - self.started, 3),
            data={"server": self.server, "context": self.context, "namespace": self.ref.namespace,
                  "api_calls": list(self.calls), "client_version": client_version(), **(data or {})})


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _run(ref: ClusterRef, probe: str, body: Callable[[Session], Measurement]) -> Measurement:
    session = Session(ref, probe)
    try:
        session.open()
        return body(session)
    except K8sError as exc:
        return Measurement.failed(redact(exc.reason), session.evidence())
    finally:
        session.close()


def _listed(s: Session, items: Mapping[str, Measurement], noun: str) -> Measurement:
    n = len(items)
    return Measurement(n, f"{n} {noun} in namespace {s.ref.namespace}",
                       s.evidence(subject=f"namespace {s.ref.namespace} @ {s.server}",
                                  raw="\n".join(sorted(items)) or f"no {noun}"))


def _run_each(ref: ClusterRef, probe: str, body: Callable[[Session], dict[str, Measurement]], noun: str) -> Each:
    session = Session(ref, probe)
    try:
        session.open()
        items = body(session)
        return Each(items, listed=_listed(session, items, noun))
    except K8sError as exc:
        return Each({}, Measurement.failed(redact(exc.reason), session.evidence()))
    finally:
        session.close()


# ----------------------------------------------------------------------------- object helpers

def _meta(obj: Obj) -> Obj:
    m = obj.get("metadata") or {}
    return m if isinstance(m, dict) else {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", "?"))


def _ns_name(obj: Obj) -> str:
    ns = _meta(obj).get("namespace")
    return f"{ns}/{_name(obj)}" if ns else _name(obj)


def _labels(obj: Obj) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def _items(listing: Any) -> list[Obj]:
    items = listing.get("items") if isinstance(listing, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]


def _condition(obj: Obj, kind: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def pod_ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return (pod.get("status") or {}).get("phase") == "Running" and cond is not None and cond.get("status") == "True"


def _pod_problem(pod: Obj) -> str:
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason", "waiting"))
    return str(status.get("phase", "unknown"))


def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` (matchLabels, matchExpressions) against labels.  ``None``
    selects nothing; ``{}`` selects everything (as policy/v1 PDBs define it)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _selector_text(selector: Obj | None) -> str:
    if not selector:
        return "(none)"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    parts += [f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip()
              for e in selector.get("matchExpressions") or []]
    return ",".join(parts) or "(everything)"


def _find_pods(s: Session, selectors: Iterable[str]) -> tuple[str, list[Obj]]:
    """Pods in every namespace selected by the first selector that finds any."""
    tried = ""
    for sel in selectors:
        tried = sel
        pods = _items(s.get(f"list pods in all namespaces (labelSelector {sel})", "CoreV1Api",
                            "list_pod_for_all_namespaces", label_selector=sel))
        if pods:
            return sel, pods
    return tried, []


def _pods_summary(pods: list[Obj]) -> str:
    return "\n".join(f"pod {_ns_name(p)}: phase={(p.get('status') or {}).get('phase')} "
                     f"ready={pod_ready(p)} node={(p.get('spec') or {}).get('nodeName')}" for p in pods[:20])


# ----------------------------------------------------------------------------- version

def parse_version(text: str) -> tuple[int, ...]:
    """``v1.29.4-eks-036c24b`` -> (1, 29, 4); ``1.25`` -> (1, 25).  ValueError otherwise."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a Kubernetes version")
    return tuple(int(g) for g in m.groups() if g is not None)


def version_at_least(measured: str, minimum: str) -> bool:
    have, need = parse_version(measured), parse_version(minimum)
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def server_version(ref: ClusterRef) -> Measurement:
    """The API server's version (``GET /version``): value ``"1.29.4"``, display the
    gitVersion as the server reports it."""
    def body(s: Session) -> Measurement:
        info = s.get("read the server version", "VersionApi", "get_code")
        git = str(info.get("gitVersion") or "")
        try:
            value = ".".join(str(p) for p in parse_version(git))
        except ValueError:
            minor = re.sub(r"\D", "", str(info.get("minor", "")))
            value = f"{info.get('major', '?')}.{minor or '?'}"
        raw = json.dumps({k: info.get(k) for k in ("major", "minor", "gitVersion", "buildDate", "goVersion",
                                                   "platform")}, sort_keys=True)
        return Measurement(value, git or value, s.evidence(raw=raw, data={"server_version": info}))

    return _run(ref, "kubernetes.version", body)


def tls_verification(ref: ClusterRef) -> Measurement:
    """Whether the client verifies the API server's certificate, as the kubeconfig sets it
    up (no API call).  False when the cluster entry says ``insecure-skip-tls-verify``:
    every request -- bearer token included -- then goes to whoever answers at the address,
    and golive's own readings could come from an impostor.  Evidence names the CA used."""
    def body(s: Session) -> Measurement:
        cfg = s._cfg
        verify = bool(getattr(cfg, "verify_ssl", True))
        ca = getattr(cfg, "ssl_ca_cert", None)
        https = str(cfg.host).startswith("https://")
        if not https:
            value, display = False, f"plain HTTP to {s.server}: nothing is verified and the token travels in clear"
        elif verify:
            value, display = True, f"verified ({'CA file ' + str(ca) if ca else 'system CA store'})"
        else:
            value, display = False, "insecure-skip-tls-verify: the API server's certificate is not checked"
        raw = f"server {s.server}; verify_ssl={verify}; certificate-authority={ca or '(none)'}"
        return Measurement(value, display, s.evidence(subject=f"kubeconfig context {s.context}", raw=raw,
                                                      data={"verify_ssl": verify, "ca_file": ca, "https": https}))

    return _run(ref, "kubernetes.tls_verify", body)


# ----------------------------------------------------------------------------- ingress-nginx

@dataclasses.dataclass(frozen=True)
class IngressNginx:
    controller: Measurement
    ingresses: Each


def ingress_nginx(ref: ClusterRef) -> IngressNginx:
    """The ingress-nginx controller (Ready pods, IngressClasses whose controller is
    ``k8s.io/ingress-nginx``) and, per Ingress of the namespace, the class it uses and
    that class's controller."""
    session = Session(ref, "kubernetes.ingress_nginx")
    try:
        session.open()
    except K8sError as exc:
        failed = Measurement.failed(redact(exc.reason), session.evidence())
        return IngressNginx(failed, Each({}, failed))
    try:
        try:
            classes = _items(session.get("list ingressclasses", "NetworkingV1Api", "list_ingress_class"))
            controller = _ingress_controller(session, classes)
        except K8sError as exc:
            classes, controller = [], Measurement.failed(redact(exc.reason), session.evidence())
        try:
            items = _ingress_classes(session, classes)
            ingresses = Each(items, listed=_listed(session, items, "Ingresses"))
        except K8sError as exc:
            ingresses = Each({}, Measurement.failed(redact(exc.reason), session.evidence()))
        return IngressNginx(controller, ingresses)
    finally:
        session.close()


def _ingress_controller(s: Session, classes: list[Obj]) -> Measurement:
    nginx = sorted(_name(c) for c in classes if (c.get("spec") or {}).get("controller") == INGRESS_NGINX_CONTROLLER)
    selector, pods = _find_pods(s, INGRESS_NGINX_SELECTORS)
    ready = [p for p in pods if pod_ready(p)]
    if pods:
        shown = f"{len(ready)} of {len(pods)} controller pods Ready"
        if len(ready) < len(pods):
            shown += " (" + ", ".join(f"{_ns_name(p)}: {_pod_problem(p)}" for p in pods if not pod_ready(p))[:200] + ")"
    else:
        shown = "no ingress-nginx controller pod"
    shown += f"; IngressClass {', '.join(nginx)}" if nginx else f"; no IngressClass with controller {INGRESS_NGINX_CONTROLLER}"
    raw = _pods_summary(pods) + "\n" + "\n".join(
        f"ingressclass {_name(c)}: controller={(c.get('spec') or {}).get('controller')}" for c in classes)
    value = {"ready_pods": len(ready), "pods": len(pods), "classes": nginx}
    return Measurement(value, shown, s.evidence(raw=raw.strip(), data={"selector": selector, "value": value}))


def _default_class(classes: list[Obj]) -> str | None:
    for c in classes:
        if (_meta(c).get("annotations") or {}).get("ingressclass.kubernetes.io/is-default-class") == "true":
            return _name(c)
    return None


def _ingress_classes(s: Session, classes: list[Obj]) -> dict[str, Measurement]:
    ns = s.ref.namespace
    ingresses = _items(s.get(f"list ingresses in namespace {ns}", "NetworkingV1Api", "list_namespaced_ingress",
                             namespace=ns))
    controllers = {_name(c): (c.get("spec") or {}).get("controller") for c in classes}
    out: dict[str, Measurement] = {}
    for ing in ingresses:
        spec = ing.get("spec") or {}
        cls = spec.get("ingressClassName") or (_meta(ing).get("annotations") or {}).get("kubernetes.io/ingress.class")
        how = "spec.ingressClassName" if spec.get("ingressClassName") else "annotation kubernetes.io/ingress.class"
        if not cls:
            cls, how = _default_class(classes), "the default IngressClass"
        controller = controllers.get(cls) if cls else None
        if cls is None:
            shown = "no IngressClass (none set, and no default class)"
        elif controller is None:
            shown = f"class {cls} (no such IngressClass)"
        else:
            shown = f"class {cls} (controller {controller})"
        hosts = sorted({r.get("host", "*") for r in spec.get("rules") or [] if isinstance(r, dict)})
        raw = f"ingress {_ns_name(ing)}: class={cls} via {how}; hosts={','.join(hosts)}; tls={bool(spec.get('tls'))}"
        out[_name(ing)] = Measurement({"class": cls, "controller": controller}, shown,
                                      s.evidence(subject=f"ingress {ns}/{_name(ing)} @ {s.server}", raw=raw,
                                                 data={"hosts": hosts, "class_source": how}))
    return out


# ----------------------------------------------------------------------------- cert-manager

def cluster_issuers(ref: ClusterRef) -> Measurement:
    """ClusterIssuers (cert-manager.io/v1) with condition Ready=True: value is their names."""
    def body(s: Session) -> Measurement:
        try:
            listing = s.get("list clusterissuers.cert-manager.io", "CustomObjectsApi", "list_cluster_custom_object",
                            group="cert-manager.io", version="v1", plural="clusterissuers")
        except K8sError as exc:
            if exc.status != 404:
                raise
            return Measurement([], "no ClusterIssuer API: cert-manager.io/v1 is not served (cert-manager not installed)",
                               s.evidence(raw=exc.reason))
        issuers = _items(listing)
        ready, lines, problems = [], [], []
        for iss in issuers:
            cond = _condition(iss, "Ready") or {}
            kind = next(iter((iss.get("spec") or {}).keys()), "?")
            lines.append(f"clusterissuer {_name(iss)} ({kind}): Ready={cond.get('status', 'unknown')} "
                         f"{cond.get('reason', '')}: {cond.get('message', '')}".rstrip(": "))
            if cond.get("status") == "True":
                ready.append(_name(iss))
            else:
                problems.append(f"{_name(iss)}: Ready={cond.get('status', 'unknown')}, {cond.get('reason', 'no reason')}")
        if ready:
            shown = f"{len(ready)} Ready: {', '.join(ready)}"
        elif issuers:
            shown = f"none of {len(issuers)} Ready ({'; '.join(problems)})"
        else:
            shown = "no ClusterIssuer defined"
        return Measurement(sorted(ready), shown, s.evidence(raw="\n".join(lines)))

    return _run(ref, "kubernetes.cluster_issuer", body)


# ----------------------------------------------------------------------------- metrics API

def metrics_api(ref: ClusterRef) -> Measurement:
    """The APIService ``v1beta1.metrics.k8s.io``: its Available condition and, when
    available, how many nodes ``/apis/metrics.k8s.io/v1beta1/nodes`` reports (what
    ``kubectl top nodes`` reads).  Value ``{"available": bool, "node_metrics": int}``."""
    def body(s: Session) -> Measurement:
        try:
            svc = s.get(f"read apiservice {METRICS_APISERVICE}", "ApiregistrationV1Api", "read_api_service",
                        name=METRICS_APISERVICE)
        except K8sError as exc:
            if exc.status != 404:
                raise
            return Measurement({"available": False, "node_metrics": 0},
                               f"APIService {METRICS_APISERVICE} not registered (metrics-server not installed)",
                               s.evidence(raw=exc.reason))
        cond = _condition(svc, "Available") or {}
        service = (svc.get("spec") or {}).get("service") or {}
        backend = f"{service.get('namespace')}/{service.get('name')}" if service else "local"
        raw = [(f"apiservice {METRICS_APISERVICE}: service={backend} Available={cond.get('status', 'unknown')} "
                f"{cond.get('reason', '')}: {cond.get('message', '')}")]
        available = cond.get("status") == "True"
        nodes = 0
        note = ""
        if available:
            try:
                nm = _items(s.get("list node metrics (metrics.k8s.io/v1beta1 nodes)", "CustomObjectsApi",
                                  "list_cluster_custom_object", group="metrics.k8s.io", version="v1beta1",
                                  plural="nodes"))
                nodes = len(nm)
                raw += [f"nodemetrics {_name(n)}: cpu={(n.get('usage') or {}).get('cpu')} "
                        f"memory={(n.get('usage') or {}).get('memory')} window={n.get('window')}" for n in nm[:10]]
            except K8sError as exc:
                if exc.status in (0, 401, 403):
                    raise
                note = f"; but listing node metrics failed: {exc.reason}"
        if available:
            shown = f"Available=True (service {backend}), metrics for {nodes} nodes{note}"
        else:
            shown = f"Available={cond.get('status', 'unknown')} ({cond.get('reason', 'no reason')}: {cond.get('message', '')})"
        return Measurement({"available": available, "node_metrics": nodes}, shown[:400],
                           s.evidence(raw="\n".join(raw), data={"service": backend}))

    return _run(ref, "kubernetes.metrics_api", body)


# ----------------------------------------------------------------------------- Prometheus

def prometheus(ref: ClusterRef) -> Measurement:
    """Prometheus server pods (``app.kubernetes.io/name=prometheus``, or the older
    ``app=prometheus,component=server``) in any namespace: value is how many are Ready."""
    def body(s: Session) -> Measurement:
        selector, pods = _find_pods(s, PROMETHEUS_SELECTORS)
        ready = [p for p in pods if pod_ready(p)]
        if not pods:
            shown = f"no pod labelled {' or '.join(PROMETHEUS_SELECTORS)}"
        else:
            shown = f"{len(ready)} of {len(pods)} pods Ready: " + ", ".join(
                _ns_name(p) + ("" if pod_ready(p) else f" ({_pod_problem(p)})") for p in pods[:5])
        owners = sorted({f"{o.get('kind')}/{o.get('name')}" for p in pods for o in _meta(p).get("ownerReferences") or []})
        return Measurement(len(ready), shown, s.evidence(raw=_pods_summary(pods), data={"selector": selector,
                                                                                          "owners": owners}))

    return _run(ref, "kubernetes.prometheus", body)


# ----------------------------------------------------------------------------- cluster autoscaler

def _autoscaler_deployments(s: Session) -> list[Obj]:
    deps = _items(s.get("list deployments in all namespaces", "AppsV1Api", "list_deployment_for_all_namespaces"))

    def is_ca(d: Obj) -> bool:
        labels = _labels(d)
        names = [_name(d), labels.get("app", ""), labels.get("app.kubernetes.io/name", ""), labels.get("k8s-app", "")]
        return any(AUTOSCALER_NAME in n for n in names)

    return [d for d in deps if is_ca(d)]


def _status_configmap_name(dep: Obj) -> str:
    for c in ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        for arg in list(c.get("command") or []) + list(c.get("args") or []):
            m = re.match(r"--status-config-map-name=(\S+)", str(arg))
            if m:
                return m.group(1)
    return AUTOSCALER_STATUS_CONFIGMAP


def parse_autoscaler_status(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Cluster-wide health and node groups (name, target, min, max) from the status
    ConfigMap, in the text format (cluster-autoscaler <= 1.29) or the YAML one (>= 1.30)."""
    groups: list[dict[str, Any]] = []
    if re.search(r"^clusterWide:", text, re.MULTILINE):
        import yaml

        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            return None, []
        health = ((doc.get("clusterWide") or {}).get("health") or {}).get("status")
        for g in doc.get("nodeGroups") or []:
            h = g.get("health") or {}
            groups.append({"name": g.get("name"), "target": h.get("cloudProviderTarget"),
                           "min": h.get("minSize"), "max": h.get("maxSize")})
        return (str(health) if health else None), groups
    m = re.search(r"Cluster-wide:\s*\n\s*Health:\s*(\w+)", text)
    health = m.group(1) if m else None
    for block in re.split(r"\n\s*Name:\s*", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        g = re.search(r"cloudProviderTarget=(\d+)\s*\(minSize=(\d+),\s*maxSize=(\d+)\)", block)
        if g:
            groups.append({"name": name, "target": int(g.group(1)), "min": int(g.group(2)), "max": int(g.group(3))})
    return health, groups


def cluster_autoscaler(ref: ClusterRef) -> Measurement:
    """The cluster-autoscaler Deployment (found by name or app labels in any namespace):
    Ready replicas, the health in its status ConfigMap, and whether some node group can
    still grow.  Value ``{"ready_replicas", "health", "headroom", "node_groups"}``."""
    def body(s: Session) -> Measurement:
        deps = _autoscaler_deployments(s)
        if not deps:
            value: dict[str, Any] = {"ready_replicas": 0, "health": None, "headroom": None, "node_groups": []}
            return Measurement(value, "no cluster-autoscaler Deployment in any namespace",
                               s.evidence(raw="no Deployment named or labelled *cluster-autoscaler*"))
        dep = max(deps, key=lambda d: int((d.get("status") or {}).get("readyReplicas") or 0))
        st = dep.get("status") or {}
        ready, desired = int(st.get("readyReplicas") or 0), int((dep.get("spec") or {}).get("replicas") or 0)
        ns, cm_name = _meta(dep).get("namespace", "kube-system"), _status_configmap_name(dep)
        raw = [f"deployment {_ns_name(dep)}: replicas={desired} ready={ready}"]
        health: str | None = None
        groups: list[dict[str, Any]] = []
        try:
            cm = s.get(f"read configmap {ns}/{cm_name}", "CoreV1Api", "read_namespaced_config_map",
                       name=cm_name, namespace=ns)
            text = str((cm.get("data") or {}).get("status", ""))
            health, groups = parse_autoscaler_status(text)
            raw.append(f"configmap {ns}/{cm_name}:")
            raw += [line for line in text.splitlines() if re.search(r"Health|Name:|health|status:|name:", line)][:12]
        except K8sError as exc:
            if exc.status != 404:
                raise
            raw.append(f"configmap {ns}/{cm_name}: not found")
        headroom = None if not groups else any(
            g.get("max") is not None and g.get("target") is not None and g["max"] > g["target"] for g in groups)
        shown = f"{ready} of {desired} Ready ({_ns_name(dep)})"
        shown += f", health {health}" if health else f", no status ConfigMap {ns}/{cm_name}"
        if groups:
            shown += "; node groups: " + ", ".join(f"{g['name']} {g['target']} of max {g['max']}" for g in groups[:4])
        value = {"ready_replicas": ready, "health": health, "headroom": headroom, "node_groups": groups}
        return Measurement(value, shown, s.evidence(raw="\n".join(raw), data={"status_configmap": f"{ns}/{cm_name}"}))

    return _run(ref, "kubernetes.cluster_autoscaler", body)


# ----------------------------------------------------------------------------- storage

def provisioner_supports_rwx(provisioner: str) -> bool:
    return provisioner in RWX_PROVISIONERS or any(p.search(provisioner) for p in _RWX_PROVISIONER_PATTERNS)


def storage_classes(ref: ClusterRef) -> Measurement:
    """StorageClasses that can give ReadWriteMany volumes: a provisioner known to serve a
    shared file system (NFS, EFS, Azure Files, Filestore, CephFS, Longhorn...), or a class
    with a Bound ReadWriteMany PersistentVolume already.  Value: their names."""
    def body(s: Session) -> Measurement:
        classes = _items(s.get("list storageclasses", "StorageV1Api", "list_storage_class"))
        pvs = _items(s.get("list persistentvolumes", "CoreV1Api", "list_persistent_volume"))
        rwx_pv_classes = {(pv.get("spec") or {}).get("storageClassName") for pv in pvs
                          if "ReadWriteMany" in ((pv.get("spec") or {}).get("accessModes") or [])
                          and (pv.get("status") or {}).get("phase") == "Bound"}
        capable, lines, basis = [], [], {}
        for sc in classes:
            name, prov = _name(sc), str(sc.get("provisioner", ""))
            why = ("RWX provisioner" if provisioner_supports_rwx(prov) else
                   "has a Bound ReadWriteMany volume" if name in rwx_pv_classes else "")
            default = (_meta(sc).get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
            lines.append(f"storageclass {name}: provisioner={prov}{' (default)' if default else ''}"
                         f"{' -> ' + why if why else ' -> no RWX'}")
            if why:
                capable.append(name)
                basis[name] = f"{prov}: {why}"
        if capable:
            shown = "RWX-capable: " + ", ".join(f"{n} ({basis[n].split(':')[0]})" for n in sorted(capable))
        elif classes:
            shown = f"none of {len(classes)} StorageClasses is RWX-capable (" + ", ".join(
                f"{_name(c)}: {c.get('provisioner')}" for c in classes[:6]) + ")"
        else:
            shown = "no StorageClass defined"
        return Measurement(sorted(capable), shown, s.evidence(raw="\n".join(lines), data={"basis": basis}))

    return _run(ref, "kubernetes.storage_rwx", body)


def shared_volumes(ref: ClusterRef) -> Each:
    """The volumes the namespace's Deployments share between their replicas -- PVCs (phase,
    access modes granted, class) and direct NFS mounts -- keyed by PVC name or
    ``nfs:server:/path``.  StatefulSet volumeClaimTemplates are per replica and left out."""
    def body(s: Session) -> dict[str, Measurement]:
        ns = s.ref.namespace
        deps = _items(s.get(f"list deployments in namespace {ns}", "AppsV1Api", "list_namespaced_deployment",
                            namespace=ns))
        claims: dict[str, list[str]] = {}
        nfs: dict[str, list[str]] = {}
        for d in deps:
            for vol in (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []:
                pvc = (vol.get("persistentVolumeClaim") or {}).get("claimName")
                if pvc:
                    claims.setdefault(pvc, []).append(f"deploy/{_name(d)}")
                if vol.get("nfs"):
                    nfs.setdefault(f"nfs:{vol['nfs'].get('server')}:{vol['nfs'].get('path')}", []).append(
                        f"deploy/{_name(d)}")
        if not claims and not nfs:
            return {}
        pvcs = {_name(p): p for p in _items(s.get(f"list persistentvolumeclaims in namespace {ns}", "CoreV1Api",
                                                  "list_namespaced_persistent_volume_claim", namespace=ns))}
        out: dict[str, Measurement] = {}
        for claim, users in sorted(claims.items()):
            pvc = pvcs.get(claim)
            if pvc is None:
                value: dict[str, Any] = {"phase": "Missing", "access_modes": [], "storage_class": None}
                shown = f"PVC {claim} does not exist (mounted by {', '.join(users)})"
            else:
                st, spec = pvc.get("status") or {}, pvc.get("spec") or {}
                modes = list(st.get("accessModes") or spec.get("accessModes") or [])
                value = {"phase": st.get("phase", "Unknown"), "access_modes": modes,
                         "storage_class": spec.get("storageClassName")}
                shown = f"{value['phase']}, {'/'.join(modes) or 'no access modes'} (class {value['storage_class']}), " \
                        f"mounted by {', '.join(users)}"
            raw = f"pvc {ns}/{claim}: {json.dumps(value, sort_keys=True)}; used by {', '.join(users)}"
            out[claim] = Measurement(value, shown, s.evidence(subject=f"pvc {ns}/{claim} @ {s.server}", raw=raw,
                                                              data={"mounted_by": users}))
        for key, users in sorted(nfs.items()):
            value = {"phase": "Bound", "access_modes": ["ReadWriteMany"], "storage_class": "nfs (direct)"}
            out[key] = Measurement(value, f"NFS volume {key[4:]} mounted directly by {', '.join(users)} (shared)",
                                   s.evidence(subject=f"{key} @ {s.server}", raw=f"volume {key}; used by {users}"))
        return out

    return _run_each(ref, "kubernetes.shared_volumes", body, "volumes shared by Deployments (PVC or NFS)")


# ----------------------------------------------------------------------------- workloads

def _workloads(s: Session) -> list[tuple[str, Obj]]:
    ns = s.ref.namespace
    deps = _items(s.get(f"list deployments in namespace {ns}", "AppsV1Api", "list_namespaced_deployment", namespace=ns))
    sts = _items(s.get(f"list statefulsets in namespace {ns}", "AppsV1Api", "list_namespaced_stateful_set",
                       namespace=ns))
    out = [(f"deploy/{_name(d)}", d) for d in deps] + [(f"sts/{_name(x)}", x) for x in sts]
    if not out:
        raise K8sError(f"namespace '{ns}' has no Deployments or StatefulSets (is kubernetes.namespace in the "
                       "target right?)")
    return out


def _template_labels(obj: Obj) -> dict[str, str]:
    return dict(((((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {})


def _containers(obj: Obj) -> list[Obj]:
    return list((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])


def _per_workload(ref: ClusterRef, probe: str,
                  judge: Callable[[Session, str, Obj], tuple[Any, str, str, dict[str, Any]]],
                  prepare: Callable[[Session], None] | None = None) -> Each:
    """``judge(session, key, workload) -> (value, display, raw, data)`` for every
    Deployment and StatefulSet of the namespace."""
    def body(s: Session) -> dict[str, Measurement]:
        workloads = _workloads(s)
        if prepare is not None:
            prepare(s)
        out = {}
        for key, obj in workloads:
            value, shown, raw, data = judge(s, key, obj)
            out[key] = Measurement(value, shown, s.evidence(subject=f"{key} (namespace {s.ref.namespace}) @ {s.server}",
                                                            raw=raw, data=data))
        return out

    return _run_each(ref, probe, body, "Deployments and StatefulSets")


def workload_replicas(ref: ClusterRef) -> Each:
    """Ready replicas of every Deployment and StatefulSet (value: ``status.readyReplicas``)."""
    def judge(s: Session, key: str, obj: Obj) -> tuple[Any, str, str, dict[str, Any]]:
        st, desired = obj.get("status") or {}, int((obj.get("spec") or {}).get("replicas") or 0)
        ready = int(st.get("readyReplicas") or 0)
        raw = f"{key}: spec.replicas={desired} status.readyReplicas={ready} availableReplicas={st.get('availableReplicas')}"
        return ready, f"{ready} Ready of {desired} desired", raw, {"desired": desired}

    return _per_workload(ref, "kubernetes.replicas", judge)


def workload_pdbs(ref: ClusterRef) -> Each:
    """PodDisruptionBudgets whose selector selects the workload's pods (value: their names)."""
    pdbs: list[Obj] = []

    def prepare(s: Session) -> None:
        ns = s.ref.namespace
        pdbs.extend(_items(s.get(f"list poddisruptionbudgets in namespace {ns}", "PolicyV1Api",
                                 "list_namespaced_pod_disruption_budget", namespace=ns)))

    def judge(s: Session, key: str, obj: Obj) -> tuple[Any, str, str, dict[str, Any]]:
        labels = _template_labels(obj)
        covering = [p for p in pdbs if selector_matches((p.get("spec") or {}).get("selector"), labels)]
        parts = []
        for p in covering:
            spec, st = p.get("spec") or {}, p.get("status") or {}
            rule = (f"minAvailable {spec['minAvailable']}" if "minAvailable" in spec else
                    f"maxUnavailable {spec.get('maxUnavailable')}")
            allowed = st.get("disruptionsAllowed", "?")
            parts.append(f"pdb/{_name(p)} ({rule}, {allowed} disruption{'' if allowed == 1 else 's'} allowed)")
        shown = ", ".join(parts) if parts else "no PodDisruptionBudget selects its pods"
        raw = f"{key}: pod labels {_selector_text({'matchLabels': labels})}\n" + "\n".join(
            f"pdb {_name(p)}: selector {_selector_text((p.get('spec') or {}).get('selector'))}" for p in pdbs)
        return sorted(_name(p) for p in covering), shown, raw, {}

    return _per_workload(ref, "kubernetes.pdb", judge, prepare)


def workload_hpas(ref: ClusterRef) -> Each:
    """HorizontalPodAutoscalers (autoscaling/v2) whose scaleTargetRef is the workload."""
    hpas: list[Obj] = []

    def prepare(s: Session) -> None:
        ns = s.ref.namespace
        hpas.extend(_items(s.get(f"list horizontalpodautoscalers in namespace {ns}", "AutoscalingV2Api",
                                 "list_namespaced_horizontal_pod_autoscaler", namespace=ns)))

    kinds = {"deploy": "Deployment", "sts": "StatefulSet"}

    def judge(s: Session, key: str, obj: Obj) -> tuple[Any, str, str, dict[str, Any]]:
        kind = kinds[key.split("/", 1)[0]]
        mine = [h for h in hpas if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("kind") == kind
                and ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == _name(obj)]
        parts = []
        for h in mine:
            spec = h.get("spec") or {}
            metrics = []
            for m in spec.get("metrics") or []:
                res = m.get("resource") or m.get("containerResource") or {}
                target = res.get("target") or {}
                metrics.append(f"{res.get('name') or m.get('type')} {target.get('averageUtilization', '')}"
                               f"{'%' if target.get('averageUtilization') is not None else target.get('averageValue', '')}")
            parts.append(f"hpa/{_name(h)}: {spec.get('minReplicas', 1)}-{spec.get('maxReplicas')} replicas on "
                         f"{', '.join(metrics) or 'default metrics'}")
        shown = "; ".join(parts) if parts else f"no HorizontalPodAutoscaler targets {kind} {_name(obj)}"
        raw = "\n".join(f"hpa {_name(h)}: scaleTargetRef={json.dumps((h.get('spec') or {}).get('scaleTargetRef'))}"
                        for h in hpas) or "no HorizontalPodAutoscaler in the namespace"
        return sorted(_name(h) for h in mine), shown, raw, {}

    return _per_workload(ref, "kubernetes.hpa", judge, prepare)


def workload_probes(ref: ClusterRef) -> Each:
    """Containers of the workload without a readinessProbe or livenessProbe (value: a
    list like ``["web: readinessProbe"]``; empty when every container has both)."""
    def judge(s: Session, key: str, obj: Obj) -> tuple[Any, str, str, dict[str, Any]]:
        missing, lines = [], []
        containers = _containers(obj)
        for c in containers:
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    missing.append(f"{c.get('name')}: {probe}")
            lines.append(f"container {c.get('name')}: readinessProbe={_probe_text(c.get('readinessProbe'))} "
                         f"livenessProbe={_probe_text(c.get('livenessProbe'))}")
        shown = (f"every container ({len(containers)}) has readiness and liveness probes" if not missing
                 else "missing " + ", ".join(missing))
        return missing, shown, f"{key}\n" + "\n".join(lines), {}

    return _per_workload(ref, "kubernetes.probes", judge)


def _probe_text(p: Obj | None) -> str:
    if not p:
        return "none"
    for kind in ("httpGet", "tcpSocket", "exec", "grpc"):
        if kind in p:
            detail = p[kind]
            if kind == "httpGet":
                return f"httpGet {detail.get('path')}:{detail.get('port')}"
            if kind == "tcpSocket":
                return f"tcpSocket {detail.get('port')}"
            return kind
    return "set"


#: What every container must declare.  CPU limits are not required: they throttle a
#: container that has idle CPU next to it and are commonly left unset on purpose.
RESOURCE_KEYS = ("requests.cpu", "requests.memory", "limits.memory")


def workload_resources(ref: ClusterRef) -> Each:
    """Containers missing resource requests (cpu, memory) or a memory limit (value: a
    list like ``["web: limits.memory"]``)."""
    def judge(s: Session, key: str, obj: Obj) -> tuple[Any, str, str, dict[str, Any]]:
        missing, lines = [], []
        containers = _containers(obj)
        for c in containers:
            res = c.get("resources") or {}
            for item in RESOURCE_KEYS:
                section, name = item.split(".")
                if not (res.get(section) or {}).get(name):
                    missing.append(f"{c.get('name')}: {item}")
            lines.append(f"container {c.get('name')}: requests={json.dumps(res.get('requests') or {}, sort_keys=True)} "
                         f"limits={json.dumps(res.get('limits') or {}, sort_keys=True)}")
        shown = (f"every container ({len(containers)}) sets {', '.join(RESOURCE_KEYS)}" if not missing
                 else "missing " + ", ".join(missing))
        return missing, shown, f"{key}\n" + "\n".join(lines), {}

    return _per_workload(ref, "kubernetes.resources", judge)


def workload_zones(ref: ClusterRef) -> Each:
    """Zones (``topology.kubernetes.io/zone`` of their nodes) that the workload's Ready
    pods run in (value: how many distinct zones)."""
    pods: list[Obj] = []
    zones_of: dict[str, str | None] = {}

    def prepare(s: Session) -> None:
        ns = s.ref.namespace
        pods.extend(_items(s.get(f"list pods in namespace {ns}", "CoreV1Api", "list_namespaced_pod", namespace=ns)))
        for n in _items(s.get("list nodes", "CoreV1Api", "list_node")):
            labels = _labels(n)
            zones_of[_name(n)] = next((labels[k] for k in ZONE_LABELS if labels.get(k)), None)

    def judge(s: Session, key: str, obj: Obj) -> tuple[Any, str, str, dict[str, Any]]:
        selector = (obj.get("spec") or {}).get("selector")
        mine = [p for p in pods if selector_matches(selector, _labels(p)) and pod_ready(p)]
        spread: dict[str, int] = {}
        lines = []
        for p in mine:
            node = (p.get("spec") or {}).get("nodeName") or "?"
            zone = zones_of.get(node)
            lines.append(f"pod {_name(p)}: node={node} zone={zone or 'unknown'}")
            if zone:
                spread[zone] = spread.get(zone, 0) + 1
        if not mine:
            shown = "no Ready pods"
        else:
            shown = f"{len(spread)} zone{'s' if len(spread) != 1 else ''}: " + ", ".join(
                f"{z} ({n} pod{'s' if n != 1 else ''})" for z, n in sorted(spread.items()))
            unknown = sum(1 for p in mine if not zones_of.get((p.get("spec") or {}).get("nodeName") or ""))
            if unknown:
                shown += f"; {unknown} pods on nodes without a zone label"
        return len(spread), shown, f"{key}\n" + "\n".join(lines), {"pods_per_zone": spread}

    return _per_workload(ref, "kubernetes.zones", judge, prepare)
