"""Charts for report.html as inline SVG, drawn here in Python (no JavaScript, no network).

Each chart is built from data a probe put into a result (``result["data"]``) or into its
evidence (``evidence[i]["data"]``):

- ``histogram_ms``: ``[[upper_bound_ms, count], ...]`` -> latency distribution;
- ``series``: ``[{"t": s, "ok": n, "err": n, "p95_ms": x}, ...]`` -> throughput and latency
  over time;
- ``timeline`` (``[{"t": s, "ok": bool, "latency_ms": x}, ...]``) with optional ``marks``
  (``[{"t": s, "label": "..."}]``) -> failover timeline.

Every chart carries ``<title>`` and ``<desc>`` for screen readers and comes with a sentence
summary and a data table, so nothing is said only by a picture.  Output is deterministic:
the same data gives the same bytes (ids come from the caller, numbers are formatted with
fixed rules), which the golden-file tests rely on.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

W, H = 640, 240
ML, MR, MT, MB = 60, 16, 24, 42  # margins: room for the y labels on the left, x labels below
PW, PH = W - ML - MR, H - MT - MB
OK_COLOUR, ERR_COLOUR, LINE_COLOUR, MARK_COLOUR = "#1b7f3b", "#b3261e", "#0b57d0", "#6a3fb5"
MAX_TABLE_ROWS = 120


@dataclasses.dataclass(frozen=True)
class Chart:
    """One rendered chart: the SVG, its one-paragraph summary, and its data as a table."""

    kind: str
    title: str
    svg: str
    summary: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    rows_total: int


def fmt(x: float) -> str:
    """A number for people: integers without decimals, otherwise 3 significant digits-ish."""
    if isinstance(x, bool):
        return str(x)
    if math.isinf(x):
        return "∞"
    if float(x).is_integer():
        return str(int(x))
    ax = abs(x)
    digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    s = f"{x:.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def nice_max(v: float) -> float:
    """The smallest 1/2/5 x 10^k at or above ``v``."""
    if v <= 0:
        return 1.0
    exp = math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        top = m * 10.0 ** exp
        if top >= v - 1e-12:
            return top
    return 10.0 ** (exp + 1)


def axis(vmax: float, integers: bool = False) -> tuple[float, float]:
    """(top, step) for a y axis from 0: about 4 steps of 1, 2, 2.5 or 5 x 10^k."""
    if vmax <= 0:
        return (4.0, 1.0) if integers else (1.0, 0.25)
    raw = vmax / 4
    exp = math.floor(math.log10(raw))
    step = 10.0 ** (exp + 1)
    for m in (1, 2, 2.5, 5, 10):
        if m * 10.0 ** exp >= raw - 1e-12:
            step = m * 10.0 ** exp
            break
    if integers:
        step = max(1.0, math.ceil(step))
    return step * math.ceil(vmax / step - 1e-9), step


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"not a number: {v!r}")
    return float(v)


def _svg_open(cid: str, title: str, desc: str) -> list[str]:
    return [(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
             f'role="img" aria-labelledby="{cid}-t {cid}-d" focusable="false">'),
            f'<title id="{cid}-t">{escape(title)}</title>',
            f'<desc id="{cid}-d">{escape(desc)}</desc>']


def _axes(y_top: float, y_step: float, y_label: str, x_label: str) -> list[str]:
    """Frame, y grid at every ``y_step`` up to ``y_top``, axis titles."""
    out = ['<g class="axes" font-size="11" fill="#5f6368">']
    n = max(1, round(y_top / y_step))
    for i in range(n + 1):
        v = y_step * i
        y = MT + PH - PH * v / y_top
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + PW}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(v))}</text>')
    out.append(f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{MT + PH}" stroke="#5f6368"/>')
    out.append(f'<line x1="{ML}" y1="{MT + PH}" x2="{ML + PW}" y2="{MT + PH}" stroke="#5f6368"/>')
    out.append(f'<text x="14" y="{MT + PH / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {MT + PH / 2:.1f})">'
               f'{escape(y_label)}</text>')
    out.append(f'<text x="{ML + PW / 2:.1f}" y="{H - 4}" text-anchor="middle">{escape(x_label)}</text>')
    out.append("</g>")
    return out


def _x_ticks(t0: float, t1: float, xpos: Any) -> list[str]:
    span = t1 - t0 if t1 > t0 else 1.0
    step = nice_max(span / 6)
    out = ['<g class="xticks" font-size="11" fill="#5f6368">']
    k = math.ceil(t0 / step)
    while k * step <= t1 + 1e-9:
        t = k * step
        x = xpos(t)
        out.append(f'<line x1="{x:.1f}" y1="{MT + PH}" x2="{x:.1f}" y2="{MT + PH + 4}" stroke="#5f6368"/>')
        out.append(f'<text x="{x:.1f}" y="{MT + PH + 16}" text-anchor="middle">{escape(fmt(t))}</text>')
        k += 1
    out.append("</g>")
    return out


# ----------------------------------------------------------------------------- latency histogram

def histogram(cid: str, buckets: Sequence[Sequence[Any]], subject: str = "") -> Chart:
    """Bars per latency bucket; ``upper_bound_ms`` may be ``None``/``"inf"`` for the overflow bucket."""
    rows: list[tuple[float, int]] = []
    for b in buckets:
        ub_raw, count = b[0], b[1]
        ub = math.inf if ub_raw is None or (isinstance(ub_raw, str) and ub_raw.lower().lstrip("+") in ("inf", "infinity")) \
            else _num(ub_raw)
        rows.append((ub, int(_num(count))))
    if not rows:
        raise ValueError("empty histogram")
    rows.sort(key=lambda r: r[0])
    total = sum(c for _, c in rows)
    labels: list[str] = []
    prev = 0.0
    for ub, _ in rows:
        labels.append(f"> {fmt(prev)}" if math.isinf(ub) else f"≤ {fmt(ub)}")
        prev = ub if not math.isinf(ub) else prev

    def quantile(q: float) -> str:
        if total == 0:
            return "n/a"
        need, acc = q * total, 0
        for (_ub, c), label in zip(rows, labels, strict=False):
            acc += c
            if acc >= need - 1e-9:
                return f"{label} ms"
        return f"{labels[-1]} ms"

    top, ystep = axis(max(c for _, c in rows), integers=True)
    n = len(rows)
    slot = PW / n
    bar = max(1.0, slot * 0.8)
    title = "Latency distribution" + (f" - {subject}" if subject else "")
    summary = (f"{total} requests in {n} latency buckets; half took {quantile(0.5)}, "
               f"95 % took {quantile(0.95)}, 99 % took {quantile(0.99)} (bucket upper bounds).")
    svg = _svg_open(cid, title, summary)
    svg += _axes(top, ystep, "requests", "latency (ms, bucket upper bound)")
    svg.append(f'<g class="bars" fill="{LINE_COLOUR}">')
    every = max(1, math.ceil(n / 12))
    for i, ((_ub, c), label) in enumerate(zip(rows, labels, strict=False)):
        h = PH * c / top
        x = ML + i * slot + (slot - bar) / 2
        svg.append(f'<rect x="{x:.1f}" y="{MT + PH - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                   f'<title>{escape(label)} ms: {c}</title></rect>')
    svg.append("</g>")
    svg.append('<g class="xticks" font-size="10" fill="#5f6368">')
    for i, label in enumerate(labels):
        if i % every == 0 or i == n - 1:
            x = ML + i * slot + slot / 2
            svg.append(f'<text x="{x:.1f}" y="{MT + PH + 14}" text-anchor="middle">{escape(label.replace("≤ ", ""))}</text>')
    svg.append("</g></svg>")
    table = tuple((f"{label} ms", str(c)) for label, (_, c) in zip(labels, rows, strict=False))
    return Chart("histogram", title, "\n".join(svg), summary, ("latency", "requests"), table[:MAX_TABLE_ROWS], len(table))


# ----------------------------------------------------------------------------- throughput / latency over time

def series(cid: str, points: Sequence[dict[str, Any]], subject: str = "") -> list[Chart]:
    """Two charts: successful/failed requests per sample (stacked bars) and p95 latency (line)."""
    pts = sorted(((_num(p["t"]), int(_num(p.get("ok", 0))), int(_num(p.get("err", 0))),
                   None if p.get("p95_ms") is None else _num(p["p95_ms"])) for p in points), key=lambda p: p[0])
    if not pts:
        raise ValueError("empty series")
    t0, t1 = pts[0][0], pts[-1][0]
    interval = (t1 - t0) / (len(pts) - 1) if len(pts) > 1 else 1.0
    lo, hi = t0 - interval / 2, t1 + interval / 2  # half a sample of room so edge bars stay inside
    ok_total, err_total = sum(p[1] for p in pts), sum(p[2] for p in pts)
    peak = max(p[1] + p[2] for p in pts)
    suffix = f" - {subject}" if subject else ""

    def xpos(t: float) -> float:
        return ML + PW * (t - lo) / (hi - lo)

    charts: list[Chart] = []
    title = "Throughput over time" + suffix
    rate = ok_total / (t1 - t0 + interval) * 60 if (t1 - t0 + interval) > 0 else 0.0
    err_share = err_total / (ok_total + err_total) if ok_total + err_total else 0.0
    summary = (f"{len(pts)} samples over {fmt(t1 - t0 + interval)} s (one every {fmt(interval)} s): "
               f"{ok_total} successful and {err_total} failed requests ({fmt(100 * err_share)} % failed), "
               f"about {fmt(rate)} successful per minute; at most {peak} request{'' if peak == 1 else 's'} in one sample.")
    top, ystep = axis(peak, integers=True)
    bar = max(1.0, min(24.0, PW / len(pts) * 0.7))
    svg = _svg_open(cid, title, summary)
    svg += _axes(top, ystep, "requests per sample", "time since start (s)")
    svg += _x_ticks(t0, t1, xpos)
    svg.append('<g class="bars">')
    for t, ok, err, _ in pts:
        x = xpos(t) - bar / 2
        h_ok, h_err = PH * ok / top, PH * err / top
        svg.append(f'<rect x="{x:.1f}" y="{MT + PH - h_ok:.1f}" width="{bar:.1f}" height="{h_ok:.1f}" fill="{OK_COLOUR}">'
                   f'<title>t={escape(fmt(t))} s: {ok} ok</title></rect>')
        if err:
            svg.append(f'<rect x="{x:.1f}" y="{MT + PH - h_ok - h_err:.1f}" width="{bar:.1f}" height="{h_err:.1f}" '
                       f'fill="{ERR_COLOUR}"><title>t={escape(fmt(t))} s: {err} failed</title></rect>')
    svg.append("</g>")
    svg += _legend([(OK_COLOUR, "successful"), (ERR_COLOUR, "failed")])
    svg.append("</svg>")
    rows = tuple((fmt(t), str(ok), str(err), "" if p95 is None else fmt(p95)) for t, ok, err, p95 in pts)
    charts.append(Chart("throughput", title, "\n".join(svg), summary, ("time (s)", "successful", "failed", "p95 (ms)"),
                        rows[:MAX_TABLE_ROWS], len(rows)))

    lat = [(t, p95) for t, _, _, p95 in pts if p95 is not None]
    if lat:
        title = "p95 latency over time" + suffix
        vals = [v for _, v in lat]
        summary = (f"p95 latency per sample between {fmt(min(vals))} and {fmt(max(vals))} ms "
                   f"(first {fmt(vals[0])} ms, last {fmt(vals[-1])} ms).")
        top, ystep = axis(max(vals))
        svg = _svg_open(cid + "l", title, summary)
        svg += _axes(top, ystep, "p95 latency (ms)", "time since start (s)")
        svg += _x_ticks(t0, t1, xpos)
        path = " ".join(f"{xpos(t):.1f},{MT + PH - PH * v / top:.1f}" for t, v in lat)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{LINE_COLOUR}" stroke-width="2"/>')
        svg.append(f'<g fill="{LINE_COLOUR}">')
        for t, v in lat:
            svg.append(f'<circle cx="{xpos(t):.1f}" cy="{MT + PH - PH * v / top:.1f}" r="2.5">'
                       f'<title>t={escape(fmt(t))} s: p95 {escape(fmt(v))} ms</title></circle>')
        svg.append("</g></svg>")
        charts.append(Chart("latency", title, "\n".join(svg), summary, ("time (s)", "p95 (ms)"),
                            tuple((fmt(t), fmt(v)) for t, v in lat)[:MAX_TABLE_ROWS], len(lat)))
    return charts


def _legend(items: Iterable[tuple[str, str]]) -> list[str]:
    out = ['<g class="legend" font-size="11" fill="#1f1f1f">']
    x = ML + 8
    for colour, label in items:
        out.append(f'<rect x="{x}" y="{MT - 17}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{MT - 8}">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    out.append("</g>")
    return out


# ----------------------------------------------------------------------------- failover timeline

def outages(points: Sequence[tuple[float, bool, float | None]]) -> list[tuple[float, float | None, int]]:
    """Runs of failed probes: (first failed t, first successful t after it or None, failed probes)."""
    out: list[tuple[float, float | None, int]] = []
    start: float | None = None
    n = 0
    for t, ok, _ in points:
        if not ok:
            if start is None:
                start, n = t, 0
            n += 1
        elif start is not None:
            out.append((start, t, n))
            start = None
    if start is not None:
        out.append((start, None, n))
    return out


def timeline(cid: str, probes: Sequence[dict[str, Any]], marks: Sequence[dict[str, Any]] = (),
             subject: str = "") -> Chart:
    """Each probe as a dot (latency) or a red bar (failed); drill events as labelled lines."""
    pts = sorted(((_num(p["t"]), bool(p.get("ok")), None if p.get("latency_ms") is None else _num(p["latency_ms"]))
                  for p in probes), key=lambda p: p[0])
    if not pts:
        raise ValueError("empty timeline")
    mk = sorted(((_num(m["t"]), str(m.get("label", ""))) for m in marks), key=lambda m: m[0])
    t0 = min([pts[0][0]] + [m[0] for m in mk])
    t1 = max([pts[-1][0]] + [m[0] for m in mk])
    span = (t1 - t0) or 1.0
    failed = sum(1 for p in pts if not p[1])
    outs = outages(pts)
    title = "Failover timeline" + (f" - {subject}" if subject else "")
    parts = [f"{len(pts)} probes over {fmt(t1 - t0)} s, {failed} failed."]
    if outs:
        longest = max(outs, key=lambda o: ((o[1] if o[1] is not None else pts[-1][0]) - o[0]))
        if longest[1] is None:
            parts.append(f"Probes failed from {fmt(longest[0])} s until the end ({longest[2]} probes): "
                         "service did not recover while observed.")
        else:
            parts.append(f"Longest outage {fmt(longest[1] - longest[0])} s: first failed probe at {fmt(longest[0])} s, "
                         f"first successful probe after it at {fmt(longest[1])} s ({longest[2]} failed probes).")
    else:
        parts.append("No probe failed.")
    # labels written next to their lines overprint when events are close: then the lines
    # carry numbers and the summary (shown under the chart) says which number is what
    gaps = [(b[0] - a[0]) / span for a, b in itertools.pairwise(mk)]
    crowded = len(mk) > 4 or any(g < 0.15 for g in gaps)
    if mk:
        parts.append("Events: " + "; ".join((f"({i}) " if crowded else "") + f"{label} at {fmt(t)} s"
                                            for i, (t, label) in enumerate(mk, 1)) + ".")
    summary = " ".join(parts)
    lat = [p[2] for p in pts if p[2] is not None and p[1]]
    top, ystep = axis(max(lat) if lat else 1.0)

    def xpos(t: float) -> float:
        return ML + PW * (t - t0) / span

    svg = _svg_open(cid, title, summary)
    svg += _axes(top, ystep, "latency (ms)", "time since start (s)")
    svg += _x_ticks(t0, t1, xpos)
    for start, end, _ in outs:
        x0 = xpos(start)
        x1 = xpos(end if end is not None else pts[-1][0])
        svg.append(f'<rect x="{x0:.1f}" y="{MT}" width="{max(2.0, x1 - x0):.1f}" height="{PH}" fill="{ERR_COLOUR}" '
                   f'fill-opacity="0.12"/>')
    svg.append('<g class="probes">')
    for t, ok, latency in pts:
        if ok:
            y = MT + PH - PH * (latency or 0.0) / top
            svg.append(f'<circle cx="{xpos(t):.1f}" cy="{y:.1f}" r="2.5" fill="{OK_COLOUR}">'
                       f'<title>t={escape(fmt(t))} s: ok{"" if latency is None else ", " + escape(fmt(latency)) + " ms"}'
                       f'</title></circle>')
        else:
            svg.append(f'<rect x="{xpos(t) - 1.5:.1f}" y="{MT + PH - 14}" width="3" height="14" fill="{ERR_COLOUR}">'
                       f'<title>t={escape(fmt(t))} s: failed</title></rect>')
    svg.append("</g>")
    svg.append(f'<g class="marks" font-size="11" fill="{MARK_COLOUR}">')
    clusters: list[list[int]] = []  # marks within a few pixels share one number label ("1-3")
    for i, (t, label) in enumerate(mk):
        x = xpos(t)
        svg.append(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + PH}" stroke="{MARK_COLOUR}" '
                   f'stroke-dasharray="4 3"><title>{escape(label)} at {escape(fmt(t))} s</title></line>')
        if crowded:
            if clusters and x - xpos(mk[clusters[-1][0]][0]) < 16:
                clusters[-1].append(i)
            else:
                clusters.append([i])
        else:
            y = MT + 12 + 13 * (i % 3)  # stagger labels so neighbours do not overprint
            anchor = "end" if x > ML + PW * 0.75 else "start"
            dx = -4 if anchor == "end" else 4
            svg.append(f'<text x="{x + dx:.1f}" y="{y}" text-anchor="{anchor}">{escape(label)}</text>')
    for k, members in enumerate(clusters):
        x = xpos(mk[members[0]][0])
        text = str(members[0] + 1) if len(members) == 1 else f"{members[0] + 1}-{members[-1] + 1}"
        y = MT - 4 if k % 2 == 0 else MT + 10  # alternate above / inside the frame
        svg.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" font-weight="700">{text}</text>')
    svg.append("</g>")
    svg += _legend([(OK_COLOUR, "probe ok"), (ERR_COLOUR, "probe failed")]) if not mk else []
    svg.append("</svg>")
    rows = tuple((fmt(t), "ok" if ok else "FAILED", "" if latency is None else fmt(latency)) for t, ok, latency in pts)
    if len(rows) > MAX_TABLE_ROWS:
        # keep the rows that tell the story: around state changes, not the steady middle
        keep = {0, len(pts) - 1}
        for i in range(1, len(pts)):
            if pts[i][1] != pts[i - 1][1]:
                keep.update({i - 1, i})
        rows = tuple(rows[i] for i in sorted(keep))[:MAX_TABLE_ROWS]
    return Chart("timeline", title, "\n".join(svg), summary, ("time (s)", "probe", "latency (ms)"), rows, len(pts))


# ----------------------------------------------------------------------------- entry point for the report

def charts_for(result: dict[str, Any], cid: str) -> tuple[list[Chart], list[str]]:
    """All charts a result's data allows, and notes for data that could not be drawn.

    Looks in ``result["data"]`` and in each evidence's ``data``; ids are ``cid`` + a counter.
    """
    sources: list[tuple[str, dict[str, Any]]] = []
    if isinstance(result.get("data"), dict):
        sources.append(("", result["data"]))
    evidence = result.get("evidence") or []
    for ev in evidence:
        if isinstance(ev, dict) and isinstance(ev.get("data"), dict):
            sources.append((str(ev.get("subject", "")) if len(evidence) > 1 else "", ev["data"]))
    charts: list[Chart] = []
    notes: list[str] = []
    n = 0
    for subject, data in sources:
        for key in ("histogram_ms", "series", "timeline"):
            if key not in data or data[key] in (None, [], {}):  # nothing recorded: no chart, no note
                continue
            n += 1
            try:
                if key == "histogram_ms":
                    charts.append(histogram(f"{cid}-{n}", data[key], subject))
                elif key == "series":
                    charts.extend(series(f"{cid}-{n}", data[key], subject))
                else:
                    charts.append(timeline(f"{cid}-{n}", data[key], data.get("marks") or [], subject))
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                notes.append(f"'{key}' could not be drawn ({type(exc).__name__}: {exc}); the raw data is in report.json")
    return charts, notes
