"""nginx for the lab: the TLS-terminating reverse proxy in front of the inference instances.

:func:`render_config` writes a self-contained ``nginx.conf`` (every path -- pid, logs, temp
folders -- inside the run folder, so nothing under /etc or /var is touched and several labs
can run side by side).  nginx runs in the foreground (``daemon off``) as a child in its own
process group, so stopping it is a signal to that group and cannot miss a worker.

What the compliant config asserts, and each variant's knob breaks one of:
TLS 1.2/1.3 with AEAD ciphers; a certificate for localhost/127.0.0.1/127.0.0.2; HSTS and the
usual security headers on every HTTPS response; CORS for exactly one origin
(``https://app.golive.test``, credentials allowed, preflight answered 204, no
Access-Control-Allow-Origin for anyone else); the plain-HTTP listener redirecting every path
to ``https://localhost:<https port>``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.procs import LabError
from lab.variants import ALLOWED_ORIGIN, Knobs

INSTALL_HINT = "install it with `apt-get install nginx-light` (Debian/Ubuntu)"

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
HSTS_VALUE = "max-age=31536000; includeSubDomains"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type, Authorization"
#: Key-exchange groups of Mozilla's intermediate profile (OpenSSL's default adds X448 and
#: secp521r1, which the profile rejects).
TLS_CURVES = "X25519:prime256v1:secp384r1"


def find_nginx() -> str:
    """Path of the nginx binary (PATH, then /usr/sbin); :class:`LabError` with the install
    command when it is missing."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise LabError(f"nginx not found: {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class NginxLayout:
    """Where nginx's files go inside its run folder."""

    run_dir: Path

    @property
    def conf(self) -> Path:
        return self.run_dir / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.run_dir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.run_dir / "access.log"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "nginx.pid"

    @property
    def temp_dir(self) -> Path:
        return self.run_dir / "tmp"


def argv(nginx_bin: str, layout: NginxLayout) -> list[str]:
    """Command line that runs nginx with the lab's config and prefix."""
    return [nginx_bin, "-p", f"{layout.run_dir}/", "-c", str(layout.conf), "-e", str(layout.error_log)]


def _cors_maps(knobs: Knobs) -> str:
    """``map`` blocks computing the CORS header values from the request's Origin.

    An empty value makes ``add_header`` send nothing, which is how "no ACAO for other
    origins" is expressed without ``if`` blocks (which would break header inheritance).
    """
    origin = f'"{ALLOWED_ORIGIN}"'
    if knobs.cors_preflight == "reflect":  # whatever the preflight asks for is allowed
        allowed_methods, allowed_headers = "$http_access_control_request_method", "$http_access_control_request_headers"
    else:
        allowed_methods, allowed_headers = f'"{CORS_METHODS}"', f'"{CORS_HEADERS}"'
    if knobs.cors == "allowlist":
        allow_origin = f'default ""; {origin} "{ALLOWED_ORIGIN}";'
        credentials = f'default ""; {origin} "true";'
        methods = f'default ""; {origin} {allowed_methods};'
        headers = f'default ""; {origin} {allowed_headers};'
    elif knobs.cors == "regex":
        # The classic mistake: dots unescaped, no end anchor, any subdomain, http or https.
        host = ALLOWED_ORIGIN.split("://", 1)[1]
        pattern = f'"~^https?://([a-z0-9.-]*\\.)?{host}"'
        allow_origin = f'default ""; {pattern} $http_origin;'
        credentials = f'default ""; {pattern} "true";'
        methods = f'default ""; {pattern} {allowed_methods};'
        headers = f'default ""; {pattern} {allowed_headers};'
    elif knobs.cors == "wildcard_credentials":
        allow_origin = 'default "*";'
        credentials = 'default "true";'
        methods = f'default "{CORS_METHODS}";'
        headers = f'default "{CORS_HEADERS}";'
    elif knobs.cors == "null_origin":  # the allowlist plus the opaque origin "null"
        allow_origin = f'default ""; {origin} "{ALLOWED_ORIGIN}"; "null" "null";'
        credentials = f'default ""; {origin} "true"; "null" "true";'
        methods = f'default ""; {origin} "{CORS_METHODS}"; "null" "{CORS_METHODS}";'
        headers = f'default ""; {origin} "{CORS_HEADERS}"; "null" "{CORS_HEADERS}";'
    elif knobs.cors == "reflect":
        allow_origin = '"" ""; default $http_origin;'
        credentials = '"" ""; default "true";'
        methods = f'"" ""; default "{CORS_METHODS}";'
        headers = f'"" ""; default "{CORS_HEADERS}";'
    else:  # pragma: no cover - Knobs is typed
        raise ValueError(f"unknown CORS mode {knobs.cors!r}")
    return (
        f"    map $http_origin $cors_allow_origin {{ {allow_origin} }}\n"
        f"    map $http_origin $cors_allow_credentials {{ {credentials} }}\n"
        f"    map $http_origin $cors_allow_methods {{ {methods} }}\n"
        f"    map $http_origin $cors_allow_headers {{ {headers} }}\n"
    )


_PROXY = """\
            proxy_pass http://inference;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout http_502 http_503;
"""


def _api_guard(knobs: Knobs | None) -> str:
    """Directives for ``location /v1/``: the bearer-token check (rewrite phase, so an
    anonymous request gets 401 before it is counted) and the rate limit (429 beyond it)."""
    out = ""
    if knobs is not None and knobs.api_auth == "bearer":
        out += "            if ($golive_api_authorized = 0) { return 401; }\n"
    if knobs is not None and knobs.rate_limit:
        out += (f"            limit_req zone=golive_api burst={knobs.rate_limit_burst} nodelay;\n"
                "            limit_req_status 429;\n")
    return out


def _auth_maps(knobs: Knobs, api_token: str | None) -> str:
    """``map`` of the Authorization header to 1/0 and the limit_req zone (http level)."""
    out = ""
    if knobs.api_auth == "bearer":
        if not api_token:
            raise ValueError("api_auth 'bearer' needs api_token")
        out += (f'    map $http_authorization $golive_api_authorized {{ default 0; "Bearer {api_token}" 1; }}\n')
    if knobs.rate_limit:
        out += f"    limit_req_zone $binary_remote_addr zone=golive_api:1m rate={knobs.rate_limit};\n"
    return out


def _health_location(knobs: Knobs | None) -> str:
    """``location = /health``: proxied to the instances, or (``health_body`` knob) answered
    by nginx itself with 200 and a fixed body -- a health URL that says "up" whatever."""
    if knobs is not None and knobs.health_body:
        body = knobs.health_body.replace("\\", "\\\\").replace("'", "\\'")
        return ("        location = /health {\n"
                "            default_type application/json;\n"
                f"            return 200 '{body}';\n"
                "        }\n")
    return f"        location = /health {{\n{_PROXY}        }}\n"


#: The Oz front's static content (OZ-NET-02 "Nginx serves static media files", OZ-NET-03 the
#: Web UI): a stand-in page for the Web UI and one known media file, served by nginx itself
WEB_UI_TITLE = "Oz Forensics Web UI"
MEDIA_SAMPLE = "sample-001.png"


def png_1x1() -> bytes:
    """A valid 1x1 grey PNG (signature, IHDR, IDAT, IEND with their CRCs)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def write_static_site(root: Path) -> None:
    """``root/ui/index.html`` (the Web UI's page) and ``root/media/`` with :data:`MEDIA_SAMPLE`,
    world-readable: nginx's workers run as nobody."""
    for sub in ("ui", "media"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub).chmod(0o755)
    (root / "ui" / "index.html").write_text(
        f"<!doctype html><html><head><title>{WEB_UI_TITLE}</title></head>"
        "<body><h1>Oz Forensics</h1><p>Upload media for liveness and biometry analyses.</p></body></html>\n")
    (root / "media" / MEDIA_SAMPLE).write_bytes(png_1x1())
    for f in (root / "ui" / "index.html", root / "media" / MEDIA_SAMPLE):
        f.chmod(0o644)


def static_pages(base_url: str) -> dict[str, Any]:
    """The target's ``http.pages`` for :func:`write_static_site`'s content behind ``base_url``:
    OZ-NET-02 a known media URL served by nginx, OZ-NET-03 the Web UI's page (its title)."""
    return {"media": {"url": f"{base_url}/media/{MEDIA_SAMPLE}", "content_type": "image/png"},
            "web_ui": {"url": f"{base_url}/ui/", "content_type": "text/html",
                       "body": {"pattern": f"<title>{WEB_UI_TITLE}</title>"}}}


def _static_locations(static_root: Path | None) -> str:
    if static_root is None:
        return ""
    # the http block's default_type is application/octet-stream: each location names its types
    return (f"        location /media/ {{\n            types {{ image/png png; image/jpeg jpg jpeg; }}\n"
            f"            alias {static_root}/media/;\n        }}\n"
            f"        location /ui/ {{\n            types {{ text/html html; }}\n"
            f"            alias {static_root}/ui/;\n        }}\n")


def _app_locations(knobs: Knobs | None = None, static_root: Path | None = None) -> str:
    return (
        f"        location /v1/ {{\n{_api_guard(knobs)}{_PROXY}        }}\n"
        f"{_health_location(knobs)}"
        f"{_static_locations(static_root)}"
        "        location / { return 404; }\n"
    )


def render_config(
    layout: NginxLayout,
    *,
    https_port: int,
    http_port: int,
    upstreams: Sequence[tuple[str, int]],
    chain_file: Path,
    key_file: Path,
    knobs: Knobs,
    api_token: str | None = None,
    dhparam_file: Path | None = None,
    static_root: Path | None = None,
) -> str:
    """The nginx.conf text for one lab (see the module docstring for what it asserts);
    ``static_root``: :func:`write_static_site`'s folder, served under /ui/ and /media/."""
    if not upstreams:
        raise ValueError("nginx needs at least one upstream instance")
    tmp = layout.temp_dir
    # As root, nginx workers drop to an unprivileged user; they never need the run folder
    # (logs are opened by the master, bodies and responses stay in memory: see below).
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    servers = "".join(
        f"        server {host}:{port} max_fails=1 fail_timeout=2s;\n" for host, port in upstreams
    )
    dhparam = f"        ssl_dhparam {dhparam_file};\n" if dhparam_file else ""
    headers = ""
    if knobs.hsts:
        headers += f'        add_header Strict-Transport-Security "{knobs.hsts_value or HSTS_VALUE}" always;\n'
    for name, value in SECURITY_HEADERS:
        headers += f'        add_header {name} "{value}" always;\n'
    headers += (
        "        add_header Access-Control-Allow-Origin $cors_allow_origin always;\n"
        "        add_header Access-Control-Allow-Credentials $cors_allow_credentials always;\n"
        "        add_header Access-Control-Allow-Methods $cors_allow_methods always;\n"
        "        add_header Access-Control-Allow-Headers $cors_allow_headers always;\n"
    )
    if knobs.cors_vary:
        headers += '        add_header Vary "Origin" always;\n'

    if knobs.http_mode == "redirect":
        http_servers = (
            "    server {\n"
            f"        listen 127.0.0.1:{http_port} default_server;\n"
            "        server_name localhost;\n"
            # $host: the name the client asked for (localhost, or a pinned name such as api.golive.test)
            f"        return 301 https://$host:{https_port}$request_uri;\n"
            "    }\n"
        )
    elif knobs.http_mode == "plain":
        http_servers = (
            "    server {\n"
            f"        listen 127.0.0.1:{http_port} default_server;\n"
            "        server_name localhost;\n"
            f"{_app_locations()}"
            "    }\n"
        )
    elif knobs.http_mode == "redirect_to_http":
        # A redirect that never reaches HTTPS: localhost -> http://127.0.0.1, which serves
        # the content over plain HTTP (so a client following it ends on a 200, not a loop).
        http_servers = (
            "    server {\n"
            f"        listen 127.0.0.1:{http_port} default_server;\n"
            "        server_name localhost;\n"
            f"        return 301 http://127.0.0.1:{http_port}$request_uri;\n"
            "    }\n"
            "    server {\n"
            f"        listen 127.0.0.1:{http_port};\n"
            "        server_name 127.0.0.1;\n"
            f"{_app_locations()}"
            "    }\n"
        )
    else:  # pragma: no cover - Knobs is typed
        raise ValueError(f"unknown http mode {knobs.http_mode!r}")

    return f"""\
# golive lab nginx config (generated; variant knobs: {knobs.description})
{user}worker_processes 1;
daemon off;
master_process on;
pid {layout.pid_file};
error_log {layout.error_log} notice;

events {{
    worker_connections 4096;
}}

http {{
    default_type application/octet-stream;
    server_tokens off;
    access_log {layout.access_log} combined buffer=32k flush=1s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # Keep bodies and responses in memory: workers never write into the run folder.
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    proxy_max_temp_file_size 0;
    keepalive_timeout 30s;

{_cors_maps(knobs)}{_auth_maps(knobs, api_token)}
    upstream inference {{
{servers}        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{https_port} ssl http2;
        server_name localhost;
        ssl_certificate {chain_file};
        ssl_certificate_key {key_file};
        ssl_protocols {knobs.tls_protocols};
        ssl_ciphers {knobs.tls_ciphers};
        ssl_ecdh_curve {TLS_CURVES};
{dhparam}        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:golive_lab_tls:1m;
        ssl_session_tickets off;

{headers}
        # CORS preflight: answered here with the headers above (allowed origin only).
        if ($request_method = OPTIONS) {{
            return 204;
        }}

{_app_locations(knobs, static_root)}    }}

{http_servers}}}
"""


def render_app_proxy(layout: NginxLayout, *, lab: str, variant: str, https_port: int, http_port: int,
                     status_port: int, upstream: str, chain_file: Path, key_file: Path, protocols: str,
                     ciphers: str, hsts: bool = True, cors_wildcard: bool = False, listen: str = "127.0.0.1",
                     http_extra: str = "") -> str:
    """nginx.conf of a seed-system lab's front (ALwrity, DocuSnap, STRV): 80 -> 301 https;
    443 TLS (``protocols``, ``ciphers``) proxying every path to one ``upstream`` app
    (host:port) with HSTS (unless ``hsts`` is False), the security headers and CORS for
    the one allowed origin (``cors_wildcard``: ``*`` for everyone, a broken variant);
    /metrics is not public; a JSON access log named after ``lab`` and stub_status on the
    status port.  ``listen`` is the address nginx binds (0.0.0.0 inside a container, whose
    published ports are bound on the host's loopback); ``http_extra``: more directives for
    the http block."""
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    tmp = layout.temp_dir
    if cors_wildcard:
        maps = ""
        cors = ('        add_header Access-Control-Allow-Origin "*" always;\n'
                f'        add_header Access-Control-Allow-Methods "{CORS_METHODS}" always;\n'
                f'        add_header Access-Control-Allow-Headers "{CORS_HEADERS}" always;\n')
    else:
        origin = f'"{ALLOWED_ORIGIN}"'
        maps = (f'    map $http_origin $cors_origin {{ default ""; {origin} "{ALLOWED_ORIGIN}"; }}\n'
                f'    map $http_origin $cors_credentials {{ default ""; {origin} "true"; }}\n'
                f'    map $http_origin $cors_methods {{ default ""; {origin} "{CORS_METHODS}"; }}\n'
                f'    map $http_origin $cors_headers {{ default ""; {origin} "{CORS_HEADERS}"; }}\n')
        cors = ("        add_header Access-Control-Allow-Origin $cors_origin always;\n"
                "        add_header Access-Control-Allow-Credentials $cors_credentials always;\n"
                "        add_header Access-Control-Allow-Methods $cors_methods always;\n"
                "        add_header Access-Control-Allow-Headers $cors_headers always;\n"
                '        add_header Vary "Origin" always;\n')
    headers = (f'        add_header Strict-Transport-Security "{HSTS_VALUE}" always;\n' if hsts else "") + "".join(
        f'        add_header {name} "{value}" always;\n' for name, value in SECURITY_HEADERS)
    return f"""\
# golive {lab} lab nginx config (generated; variant: {variant})
{user}worker_processes 1;
daemon off;
pid {layout.pid_file};
error_log {layout.error_log} notice;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    server_tokens off;
    log_format {lab.lower()}_json escape=json '{{"time":"$time_iso8601","remote_addr":"$remote_addr",'
        '"request":"$request","status":$status,"bytes":$body_bytes_sent,"request_time":$request_time,'
        '"upstream_response_time":"$upstream_response_time","level":"info"}}';
    access_log {layout.access_log} {lab.lower()}_json;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 2m;
{http_extra}{maps}
    upstream {lab.lower()}_app {{
        server {upstream};
    }}

    server {{
        listen {listen}:{https_port} ssl;
        server_name localhost;
        ssl_certificate {chain_file};
        ssl_certificate_key {key_file};
        ssl_protocols {protocols};
        ssl_ciphers {ciphers};
        ssl_ecdh_curve {TLS_CURVES};
        ssl_session_tickets off;
{headers}{cors}
        if ($request_method = OPTIONS) {{
            return 204;
        }}
        location = /metrics {{
            return 404;  # the app's metrics are for Prometheus on loopback, not the public
        }}
        location / {{
            proxy_pass http://{lab.lower()}_app;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}

    server {{
        listen {listen}:{status_port};
        access_log off;
        location = /nginx_status {{
            stub_status;
        }}
    }}

    server {{
        listen {listen}:{http_port} default_server;
        server_name localhost;
        return 301 https://localhost:{https_port}$request_uri;
    }}
}}
"""


def prepare(layout: NginxLayout) -> None:
    """Create the run folder and its temp folders; remove a stale pid file."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (layout.temp_dir / sub).mkdir(parents=True, exist_ok=True)
    layout.pid_file.unlink(missing_ok=True)
