"""The STRV frontend stand-in for the STRV lab (the document's Streamlit app on 8501): a
standard-library HTTP server in the lab's ``frontend`` container.  ``GET /`` renders a page
with the API's status, fetched server-side from ``API_URL`` (``http://api:8000`` on the
Compose network, as the document configures it); ``GET /_stcore/health`` answers ``ok`` as
Streamlit's health endpoint does.  No key is needed: the page only shows ``/health``.
"""
from __future__ import annotations

import html
import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_URL = os.environ.get("API_URL", "http://localhost:8000")
PORT = int(os.environ.get("FRONTEND_PORT", "8501"))


def api_status() -> str:
    try:
        with urllib.request.urlopen(f"{API_URL}/health", timeout=3) as resp:
            body = json.load(resp)
        return f"API up: {body.get('images')} images, dimension {body.get('dimension')}"
    except (OSError, ValueError) as exc:
        return f"API unreachable at {API_URL}: {exc}"


class Handler(BaseHTTPRequestHandler):
    server_version = "strv-frontend"

    def do_GET(self) -> None:
        if self.path == "/_stcore/health":
            body, ctype = b"ok", "text/plain"
        elif self.path in ("/", "/index.html"):
            page = (f"<!doctype html><title>STRV Similarity Search</title><h1>STRV Similarity Search</h1>"
                    f"<p>{html.escape(api_status())}</p>")
            body, ctype = page.encode(), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stdout.write(f"frontend {self.address_string()} {fmt % args}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    print(f"frontend on :{PORT}, API_URL={API_URL}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
