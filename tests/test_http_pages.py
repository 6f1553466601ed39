"""http.pages against a real nginx (loopback): each page the profile requires answers as the
target declares it.  The compliant pages pass; each way a page can be missing while something
still answers fails with its measured value -- the textbook 404, and the bypasses a
status-only check lets through: a redirect to a login page, a catch-all that answers 200 with
the wrong page (an SPA fallback, a default page), a media URL answered with HTML, a JSON
status that says "down".  A required page the target does not locate, and a port where
nothing listens, are error (could not verify), never pass.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from golive import registry
from golive.checkdef import CheckContext, evaluate
from golive.model import CheckResult, Status

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                reason="needs nginx (scripts/setup.sh)")

JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx on 127.0.0.1: a Web UI, a media file, a JSON status, and the broken answers."""
    from lab import nginx
    from lab.procs import free_port, http_status, spawn, stop_processes, wait_until

    run = tmp_path_factory.mktemp("pages")
    layout = nginx.NginxLayout(run)
    nginx.prepare(layout)
    # nginx's workers run as nobody: the document root lives outside pytest's 0700 tmp folder
    root = Path(tempfile.mkdtemp(prefix="golive-pages-"))
    root.chmod(0o755)
    (root / "media").mkdir()
    (root / "index.html").write_text("<!doctype html><title>Oz Web UI</title><div id=app></div>")
    (root / "shell.html").write_text("<!doctype html><title>Welcome to nginx!</title>")
    (root / "media" / "known.jpg").write_bytes(JPEG)
    (root / "media").chmod(0o755)
    port = free_port()
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    layout.conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {layout.pid_file};
error_log {layout.error_log} notice;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {layout.temp_dir}/client_body;
    proxy_temp_path {layout.temp_dir}/proxy;
    fastcgi_temp_path {layout.temp_dir}/fastcgi;
    uwsgi_temp_path {layout.temp_dir}/uwsgi;
    scgi_temp_path {layout.temp_dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /ui/ {{ try_files /index.html =404; }}
        location /media/ {{ try_files $uri =404; }}
        location = /status {{ default_type application/json; return 200 '{{"status": "ok"}}'; }}
        location = /status-down {{ default_type application/json; return 200 '{{"status": "down"}}'; }}
        location = /login-wall {{ return 302 /login; }}
        # a single-page app's fallback: every unknown path answers 200 with a shell page
        location /spa/ {{ try_files /shell.html =404; }}
        location /gone/ {{ return 404; }}
    }}
}}
""")
    proc = spawn("nginx", nginx.argv(nginx.find_nginx(), layout), run / "nginx.out")
    try:
        wait_until("nginx", lambda: http_status("127.0.0.1", port, "/ui/") == 200, timeout_s=20, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_processes([proc])
        shutil.rmtree(root, ignore_errors=True)


def _run(pages: dict[str, Any], required: list[str] | dict[str, Any],
         block_ref: tuple[str, ...] = ()) -> dict[str, CheckResult]:
    from checks.http.family import HttpReq, HttpSpec
    from golive.target import Target

    fam = registry.load("http")
    check = fam.by_id("http.pages")
    assert check is not None
    spec = HttpSpec.model_validate({"pages": pages})
    target = Target.model_validate({"name": "pages-test"})
    req = HttpReq.model_validate({"pages": required, "ref": list(block_ref)})
    ctx = CheckContext.for_test(req=req, spec=spec, target=target)
    return {r.id: r for r in evaluate(check, ctx)}


UI_PATTERN = {"pattern": "<title>Oz Web UI</title>"}


def test_the_declared_pages_pass(site: str) -> None:
    results = _run({"web_ui": {"url": f"{site}/ui/", "body": UI_PATTERN},
                    "media": {"url": f"{site}/media/known.jpg", "content_type": "image/"},
                    "status": {"url": f"{site}/status", "body": {"json_field": "status", "equals": "ok"}}},
                   required=["web_ui", "media"])
    assert {k: r.status for k, r in results.items()} == {
        "http.pages[web_ui]": Status.PASS, "http.pages[media]": Status.PASS, "http.pages[status]": Status.PASS}
    ui, media = results["http.pages[web_ui]"], results["http.pages[media]"]
    assert ui.measured == "HTTP 200, body as expected" and ui.value["status"] == 200
    assert ui.expected == "HTTP 200; body matches /<title>Oz Web UI</title>/"
    assert media.measured == "HTTP 200, image/jpeg" and media.value["content_type_ok"] is True
    assert media.evidence[0].method.startswith(f"GET {site}/media/known.jpg (no redirects followed")
    assert set(ui.requirement.ids) >= {"ST-NET-02", "OZ-NET-02", "OZ-NET-03"}


@pytest.mark.parametrize(("page", "measured", "value"), [
    # the textbook failure
    ({"url": "{site}/gone/ui"}, "HTTP 404", {"status": 404}),
    # a redirect (to a login wall) is not the page: redirects are not followed
    ({"url": "{site}/login-wall"}, "HTTP 302", {"status": 302}),
    # a catch-all answering 200 with another page: only the declared pattern tells
    ({"url": "{site}/spa/ui", "body": UI_PATTERN},
     "HTTP 200, body not as expected: no match for /<title>Oz Web UI</title>/", {"status": 200, "body_ok": False}),
    # the media URL answered with an HTML page
    ({"url": "{site}/spa/media/known.jpg", "content_type": "image/"}, "HTTP 200, text/html",
     {"status": 200, "content_type_ok": False}),
    # a JSON status page that answers 200 and says it is down
    ({"url": "{site}/status-down", "body": {"json_field": "status", "equals": "ok"}},
     'HTTP 200, body not as expected: status = "down", not "ok"', {"status": 200, "body_ok": False}),
    # the page exists, but the target expects another status (e.g. 401 for a protected UI)
    ({"url": "{site}/ui/", "status": 401}, "HTTP 200", {"status": 200}),
], ids=["404", "redirect", "catch_all_200", "media_as_html", "json_down", "status_mismatch"])
def test_a_page_that_is_not_served_as_declared_fails(site: str, page: dict[str, Any], measured: str,
                                                     value: dict[str, Any]) -> None:
    page = {**page, "url": page["url"].format(site=site)}
    (r,) = _run({"web_ui": page}, required=["web_ui"]).values()
    assert r.status is Status.FAIL, (r.measured, r.reason)
    assert r.measured == measured
    assert {k: r.value[k] for k in value} == value
    assert r.remediation.startswith("serve the page at the declared URL")


def test_a_required_page_the_target_does_not_locate_is_error(site: str) -> None:
    results = _run({"media": {"url": f"{site}/media/known.jpg"}}, required=["web_ui", "media"])
    assert results["http.pages[media]"].status is Status.PASS
    missing = results["http.pages[web_ui]"]
    assert missing.status is Status.ERROR
    assert missing.reason == ("the profile requires the page 'web_ui' and the target does not say where it is "
                              "(http.pages.web_ui.url)")
    assert missing.remediation.startswith("declare the page's URL in the target")


def test_a_page_where_nothing_listens_is_error() -> None:
    from lab.procs import free_port

    (r,) = _run({"web_ui": {"url": f"http://127.0.0.1:{free_port()}/ui/"}}, required=["web_ui"]).values()
    assert r.status is Status.ERROR and "refused" in (r.reason or "").lower(), r.reason


def test_no_pages_required_or_declared_is_skip() -> None:
    (r,) = _run({}, required=[]).values()
    assert r.status is Status.SKIP and r.id == "http.pages"
    assert r.reason == "the profile requires no pages and the target declares none (http.pages)"


def test_page_urls_are_validated() -> None:
    from pydantic import ValidationError

    from checks.http.family import PageSpec

    for bad, why in (("ftp://host/x", "is not an https/http URL"), ("http:///x", "has no host"),
                     ("https://h:99999/ui", "invalid port"),
                     ("https://admin:hunter2@host/ui", "must not carry credentials"),
                     ("https://admin:hunter2@host:99999/ui", "must not carry credentials")):
        with pytest.raises(ValidationError, match=why) as exc:
            PageSpec(url=bad)
        assert "hunter2" not in str(exc.value).split("input_value")[0]


def test_each_required_page_cites_its_own_requirement(site: str) -> None:
    """The profile's mapping form: media answers OZ-NET-02 and the Web UI OZ-NET-03, not both
    of them each (the list form cites the block's ids)."""
    block = ("DS-NET-01", "AW-TLS-04", "OZ-NET-02", "OZ-NET-03")
    results = _run({"media": {"url": f"{site}/media/known.jpg", "content_type": "image/"}},
                   required={"media": {"ref": "OZ-NET-02"}, "web_ui": {"ref": "OZ-NET-03"}}, block_ref=block)
    media, ui = results["http.pages[media]"], results["http.pages[web_ui]"]
    assert media.status is Status.PASS and media.requirement.ids == ("OZ-NET-02",)
    assert ui.status is Status.ERROR and ui.requirement.ids == ("OZ-NET-03",)  # required, not located
    listed = _run({"media": {"url": f"{site}/media/known.jpg"}}, required=["media"], block_ref=block)
    assert listed["http.pages[media]"].requirement.ids == ("OZ-NET-02", "OZ-NET-03")
