"""report.html: one self-contained file an auditor can read and print (no network assets)."""
from __future__ import annotations

import json
from collections import OrderedDict
from importlib import resources
from typing import Any

import jinja2

STATUS_ORDER = {"fail": 0, "error": 1, "waived": 2, "skip": 3, "pass": 4}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    return env


def render_html(doc: dict[str, Any]) -> str:
    features: "OrderedDict[str, list[dict[str, Any]]]" = OrderedDict()
    for r in sorted(doc["results"], key=lambda r: (r.get("feature") or "", STATUS_ORDER.get(r["status"], 9), r["id"])):
        features.setdefault(r.get("feature") or "Other checks", []).append(r)
    feature_status = {}
    for name, rs in features.items():
        worst = min((STATUS_ORDER.get(r["status"], 9) for r in rs), default=4)
        feature_status[name] = [k for k, v in STATUS_ORDER.items() if v == worst][0]
    template = resources.files("reports").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    css = resources.files("reports").joinpath("templates/report.css").read_text(encoding="utf-8")
    return _env().from_string(template).render(doc=doc, features=features, feature_status=feature_status, css=css)
