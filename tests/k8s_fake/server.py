"""A local HTTPS server that answers the Kubernetes API paths golive's probes call.

No kube-apiserver, k3s, kind or kwok can run on the machines golive is developed on (see
docs/kubernetes.md), so the self-tests stand this server in for one.  It serves a data set
of API objects in the shapes a real API server returns (lists with ``kind``/``apiVersion``/
``metadata.resourceVersion``, ``Status`` objects for errors), over TLS with a certificate
signed by a throw-away CA, and insists on a bearer token like a real server does.  The
probes reach it through an ordinary kubeconfig file: the code under test is the same code
that runs against a real cluster.

Routing is generic, the way the API server's is: ``/api/v1/...`` and
``/apis/GROUP/VERSION/...``, namespaced (``namespaces/NS/RESOURCE[/NAME]``) or
cluster-wide (``RESOURCE[/NAME]``).  A data set holds, for each resource, the cluster-wide
list (``/apis/apps/v1/deployments``); namespaced lists and single objects are cut from it.
``labelSelector`` is honoured (equality, ``!=``, ``in``, ``notin``, existence).
"""
from __future__ import annotations

import copy
import http.server
import json
import re
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import trustme

Json = dict[str, Any]

_PREFIX = re.compile(r"^(?P<base>/api/v1|/apis/[^/]+/[^/]+)(?:/(?P<rest>.*))?$")


@dataclass
class Rule:
    """Answer ``status`` to every path matching ``pattern`` (a 403 for one resource...)."""

    pattern: str
    status: int
    message: str = ""


@dataclass
class Behaviour:
    """What the server answers: the objects, error rules and a delay."""

    data: dict[str, Json]
    rules: list[Rule] = field(default_factory=list)
    delay_s: float = 0.0


def status_object(code: int, reason: str, message: str, details: Json | None = None) -> Json:
    """A ``Status`` the way the API server writes errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details or {}, "code": code}


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in _split_terms(selector):
        term = term.strip()
        if not term:
            continue
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (op == "in") != (key in labels and labels[key] in values):
                return False
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", term)
        if m:
            key, op, value = m.groups()
            if (op == "!=") == (labels.get(key) == value):
                return False
            continue
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


class FakeApiServer:
    """``with FakeApiServer(tmp, token) as api: api.behaviour = Behaviour(data)``.

    ``api.url`` is ``https://127.0.0.1:PORT``; ``api.ca_file`` the CA that signs its
    certificate; ``api.requests`` the (method, path) pairs it was asked, in order;
    ``api.kubeconfig(path)`` writes a kubeconfig that reaches it with ``token``.
    """

    def __init__(self, workdir: Path, token: str, behaviour: Behaviour | None = None) -> None:
        self.workdir = workdir
        self.token = token
        self.behaviour = behaviour or Behaviour({})
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        ca = trustme.CA(organization_name="golive fake kube-apiserver CA")
        self.ca_file = workdir / "fake-apiserver-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        leaf = ca.issue_cert("127.0.0.1", "localhost", "kubernetes.default.svc")
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(self._ctx)
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.port = self._httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-apiserver", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def kubeconfig(self, path: Path, *, token: str | None = None, ca_file: Path | None = None,
                   server: str | None = None, context: str = "fake-cluster", namespace: str = "oz") -> Path:
        """A kubeconfig in the form ``kubectl config view --raw`` writes."""
        doc = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "fake-cluster", "cluster": {
                "server": server or self.url, "certificate-authority": str(ca_file or self.ca_file)}}],
            "users": [{"name": "golive-checker", "user": {"token": token if token is not None else self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "fake-cluster", "user": "golive-checker",
                                                       "namespace": namespace}}],
            "current-context": context,
        }
        path.write_text(json.dumps(doc, indent=2))  # JSON is YAML
        return path

    # ------------------------------------------------------------------ answering

    def answer(self, method: str, raw_path: str, headers: Any) -> tuple[int, Json]:
        with self._lock:
            self.requests.append((method, raw_path))
        beh = self.behaviour
        if beh.delay_s:
            time.sleep(beh.delay_s)
        if headers.get("Authorization", "") != f"Bearer {self.token}":
            return 401, status_object(401, "Unauthorized", "Unauthorized")
        url = urllib.parse.urlsplit(raw_path)
        path = url.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(url.query)
        if method != "GET":
            return 405, status_object(405, "MethodNotAllowed", f"the fake API server is read-only ({method})")
        for rule in beh.rules:
            if re.search(rule.pattern, path):
                return rule.status, status_object(rule.status, _REASONS.get(rule.status, "Unknown"),
                                                  rule.message or f"{rule.status} for {path}")
        if path in beh.data:  # /version, /apis, /api and anything stored verbatim
            return 200, self._select(beh.data[path], query)
        return self._route(path, query)

    def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Json]:
        data = self.behaviour.data
        m = _PREFIX.match(path)
        if not m:
            return _not_found(path)
        base, rest = m.group("base"), (m.group("rest") or "").split("/")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = rest[0] if rest and rest[0] else ""
        name = rest[1] if len(rest) > 1 else None
        collection = data.get(f"{base}/{resource}")
        if collection is None:
            group_known = any(k.startswith(base + "/") for k in data)
            if not group_known:
                return _not_found(path, page=True)
            return _not_found(path, resource=resource)
        items = [i for i in collection.get("items", [])
                 if namespace is None or i.get("metadata", {}).get("namespace") == namespace]
        if name is not None:
            for item in items:
                if item["metadata"]["name"] == name:
                    obj = copy.deepcopy(item)
                    obj.setdefault("kind", collection["kind"].removesuffix("List"))
                    obj.setdefault("apiVersion", collection["apiVersion"])
                    return 200, obj
            return _not_found(path, resource=resource, name=name)
        out = {k: v for k, v in collection.items() if k != "items"}
        out["items"] = items
        return 200, self._select(out, query)

    @staticmethod
    def _select(obj: Json, query: dict[str, list[str]]) -> Json:
        sel = (query.get("labelSelector") or [""])[0]
        if not sel or "items" not in obj:
            return obj
        out = dict(obj)
        out["items"] = [i for i in obj["items"] if _selector_matches(sel, i.get("metadata", {}).get("labels") or {})]
        return out


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 500: "InternalError", 503: "ServiceUnavailable"}


def _not_found(path: str, resource: str = "", name: str | None = None, page: bool = False) -> tuple[int, Json]:
    if page or not resource:
        # what the API server answers for an API group it does not serve (e.g. a CRD not installed)
        return 404, status_object(404, "NotFound", "the server could not find the requested resource")
    if name is None:
        return 404, status_object(404, "NotFound", "the server could not find the requested resource")
    return 404, status_object(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler: type, fake: FakeApiServer) -> None:
        self.fake = fake
        super().__init__(addr, handler)

    def get_request(self):  # type: ignore[no-untyped-def]
        sock, addr = super().get_request()
        # the TLS handshake happens in the handler thread (a client that rejects the
        # certificate must not stall the accept loop)
        return self.fake._ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:  # handshake failures are expected in tests
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = self.server.fake.answer(method, self.path, self.headers)
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Audit-Id", "00000000-0000-0000-0000-000000000000")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass
