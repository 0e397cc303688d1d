#!/usr/bin/env python3
"""Renders a Grafana dashboard from a real Prometheus, without Grafana.

Reads a dashboard's JSON model (default: examples/grafana/dashboard.json), evaluates every
panel's PromQL targets against the Prometheus HTTP API (`/api/v1/query_range` over
[--start, --end] with --step), and writes one self-contained HTML page (inline SVG drawn by
inline JavaScript, no external assets) that lays the panels out on Grafana's 24-column grid
(`gridPos`), dark-themed: time series (lines or bars, stacking, fill, thresholds as lines),
stat panels (last value, threshold colour as background, sparkline), row headers, legends
from `legendFormat`, and "No data" where a query returned nothing. With --png, headless
Chromium screenshots the page.

Template variables are substituted as Grafana would with "All" selected: `$job`,
`$instance` (any variable with `includeAll`) become its `allValue` (`.*` here);
`$__rate_interval` becomes --rate-interval (Grafana computes it from the data source's
scrape interval and the step), `$__interval` the step, `$__range` the window.

Prints, on stderr, each panel with the series it got, and the panels without data.

    python3 scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 \\
        --start 1700000000 --end 1700000090 --html /tmp/d.html --png docs/dashboard.png

Only the standard library (and a `chromium` or `chromium-browser` for --png).
"""

import argparse
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

GRID_COLUMNS = 24
CELL_HEIGHT = 30  # Grafana's grid: 30 px rows, 8 px margins
MARGIN = 8
HEADER_HEIGHT = 92
PAGE_PADDING = 16


def variable_values(dashboard):
    """The value each template variable takes with "All" selected."""
    values = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "datasource":
            continue
        if var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            current = var.get("current", {}).get("value")
            if isinstance(current, list):
                current = "|".join(current)
            values[var["name"]] = current or ".*"
    return values


def substitute(expr, values, rate_interval, step, window):
    builtins = {
        "__rate_interval": rate_interval,
        "__interval": f"{step}s",
        "__range": f"{window}s",
    }

    def replace(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in builtins:
            return builtins[name]
        if name in values:
            return values[name]
        raise SystemExit(f"unknown template variable ${name} in {expr}")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", replace, expr)


def query(prometheus, expr, start, end, step, instant=False):
    """A range query, or an instant one at `end` (its one sample as `values`)."""
    if instant:
        params = urllib.parse.urlencode({"query": expr, "time": end})
        url = f"{prometheus.rstrip('/')}/api/v1/query?{params}"
    else:
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        url = f"{prometheus.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as err:
        body = json.load(err)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    result = body["data"]["result"]
    if instant:
        result = [{"metric": r["metric"], "values": [r["value"]]} for r in result]
    return result, None


def legend(fmt, labels):
    if not fmt or fmt == "__auto":
        name = labels.get("__name__", "")
        rest = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
        return f"{name}{{{rest}}}" if rest or not name else name
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def number(value):
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else v


def panels_of(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def collect(dashboard, args):
    values = variable_values(dashboard)
    times = list(range(args.start, args.end + 1, args.step))
    index = {t: i for i, t in enumerate(times)}
    out = []
    for panel in panels_of(dashboard):
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        item = {
            "id": panel.get("id"),
            "type": panel["type"],
            "title": panel.get("title", ""),
            "gridPos": panel["gridPos"],
            "unit": defaults.get("unit", "short"),
            "decimals": defaults.get("decimals"),
            "custom": defaults.get("custom", {}),
            "thresholds": defaults.get("thresholds", {}).get("steps", []),
            "options": panel.get("options", {}),
            "series": [],
            "errors": [],
        }
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            expr = substitute(
                target["expr"], values, args.rate_interval, args.step, args.end - args.start
            )
            # Grafana's "Instant" query type: one value, at the end of the time range.
            instant = bool(target.get("instant")) and not target.get("range", False)
            result, error = query(args.prometheus, expr, args.start, args.end, args.step, instant)
            if error:
                item["errors"].append(f"{target.get('refId')}: {error}")
                continue
            for series in result:
                points = [None] * len(times)
                for t, v in series["values"]:
                    i = index.get(int(round(float(t))))
                    if i is not None:
                        points[i] = number(v)
                if all(p is None for p in points):
                    continue
                item["series"].append(
                    {
                        "name": legend(target.get("legendFormat"), series["metric"]),
                        "refId": target.get("refId"),
                        "points": points,
                    }
                )
        out.append(item)
    return times, out


def report(panels):
    empty = []
    for p in panels:
        if p["type"] == "row":
            continue
        names = ", ".join(s["name"] or "(no name)" for s in p["series"])
        state = f"{len(p['series'])} series: {names}" if p["series"] else "NO DATA"
        for err in p["errors"]:
            state += f" [error {err}]"
        print(f"  {p['title']}: {state}", file=sys.stderr)
        if not p["series"]:
            empty.append(p["title"])
    if empty:
        print(f"panels without data: {', '.join(empty)}", file=sys.stderr)
    else:
        print("every panel has data", file=sys.stderr)


def page_height(panels):
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    return HEADER_HEIGHT + rows * (CELL_HEIGHT + MARGIN) + PAGE_PADDING


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
* { box-sizing: border-box; }
html, body { margin: 0; background: #111217; color: #ccccdc;
  font-family: Inter, "Helvetica Neue", Arial, "Liberation Sans", sans-serif; font-size: 12px; }
#header { height: __HEADER__px; padding: 12px __PAD__px 0; }
#title { font-size: 18px; font-weight: 500; color: #d8d9da; display: flex; align-items: center; gap: 12px; }
#title .range { margin-left: auto; font-size: 13px; font-weight: 400; border: 1px solid #2c3235;
  border-radius: 2px; padding: 4px 10px; background: #181b1f; }
#vars { margin-top: 10px; display: flex; gap: 8px; align-items: center; }
.var { display: flex; white-space: nowrap; border: 1px solid #2c3235; border-radius: 2px; overflow: hidden; }
.var b { background: #22252b; padding: 5px 8px; font-weight: 500; color: #6e9fff; }
.var span { background: #111217; padding: 5px 10px; }
#note { margin-top: 8px; color: #8e8e9e; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#grid { position: relative; margin: 0 __PAD__px; }
.panel { position: absolute; background: #181b1f; border: 1px solid #26292f; border-radius: 2px;
  display: flex; flex-direction: column; overflow: hidden; }
.panel .t { height: 32px; line-height: 32px; padding: 0 8px; font-size: 14px; font-weight: 500;
  color: #d8d9da; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; flex: none; }
.panel .plot { flex: 1; position: relative; min-height: 0; }
.panel .legend { flex: none; padding: 2px 8px 6px; display: flex; flex-wrap: wrap; gap: 2px 14px; }
.legend .item { display: flex; align-items: center; gap: 6px; white-space: nowrap; }
.legend .swatch { width: 14px; height: 4px; border-radius: 1px; }
.nodata { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: #8e8e9e; font-size: 14px; }
.error { color: #f2495c; font-size: 11px; padding: 4px 8px; }
.row { position: absolute; font-size: 15px; font-weight: 500; color: #d8d9da; display: flex;
  align-items: center; gap: 8px; }
.row svg { flex: none; }
.stat { position: absolute; inset: 0; display: flex; gap: 4px; padding: 0 4px 4px; }
.tile { flex: 1; position: relative; border-radius: 2px; overflow: hidden; display: flex;
  flex-direction: column; align-items: center; justify-content: center; color: #fff; }
.tile .name { font-size: 14px; z-index: 1; }
.tile .value { font-size: 44px; font-weight: 500; z-index: 1; }
.tile svg { position: absolute; left: 0; bottom: 0; }
</style></head>
<body>
<div id="header">
  <div id="title">__TITLE__<span class="range">__RANGE__</span></div>
  <div id="vars">__VARS__</div>
  <div id="note">__NOTE__</div>
</div>
<div id="grid"></div>
<script>
const DATA = __DATA__;
const PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9",
  "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62",
  "#584477", "#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F", "#F29191", "#82B5D8", "#E5A8E2"];
const NAMED = { green: "#73BF69", red: "#F2495C", orange: "#FF9830", yellow: "#FADE2A",
  blue: "#5794F2", purple: "#B877D9", "dark-red": "#C4162A", "dark-green": "#37872D" };
const SVG = "http://www.w3.org/2000/svg";
const grid = document.getElementById("grid");
const width = DATA.width - 2 * DATA.pad;
const col = (width - DATA.margin * (DATA.columns - 1)) / DATA.columns;

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function div(cls, parent, text) {
  const d = document.createElement("div");
  if (cls) d.className = cls;
  if (text !== undefined) d.textContent = text;
  if (parent) parent.appendChild(d);
  return d;
}
function color(name) { return NAMED[name] || name; }

// Units, as Grafana formats them (the ones this dashboard uses, and a few more).
const SI = [[1e12, " T"], [1e9, " B"], [1e6, " Mil"], [1e3, " K"]];
function fixed(v, decimals) {
  if (decimals === undefined || decimals === null) {
    const a = Math.abs(v);
    decimals = a === 0 ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(6, 1 - Math.floor(Math.log10(a)) + 1);
  }
  let s = v.toFixed(Math.max(0, decimals));
  if (s.includes(".")) s = s.replace(/\\.?0+$/, "");
  return s;
}
function count(v, suffix, decimals) {
  for (const [f, s] of SI) if (Math.abs(v) >= f) return fixed(v / f, decimals) + s + suffix;
  return fixed(v, decimals) + (suffix ? " " + suffix.trim() : "");
}
function format(unit, v, decimals) {
  if (v === null || v === undefined) return "-";
  switch (unit) {
    case "percentunit": return fixed(v * 100, decimals) + "%";
    case "percent": return fixed(v, decimals) + "%";
    case "reqps": return count(v, " req/s", decimals);
    case "ops": return count(v, " ops/s", decimals);
    case "bytes": {
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
      return fixed(v, decimals) + " " + units[i];
    }
    case "s": {
      const a = Math.abs(v);
      if (a === 0) return "0 s";
      if (a < 1e-6) return fixed(v * 1e9, decimals) + " ns";
      if (a < 1e-3) return fixed(v * 1e6, decimals) + " µs";
      if (a < 1) return fixed(v * 1e3, decimals) + " ms";
      if (a < 60) return fixed(v, decimals) + " s";
      if (a < 3600) return fixed(v / 60, decimals) + " min";
      return fixed(v / 3600, decimals) + " hour";
    }
    default: return count(v, "", decimals);
  }
}
// Decimals for axis ticks: enough to tell the ticks apart, in the unit's own scale.
function tickDecimals(unit, step, max) {
  let scale = 1;
  if (unit === "percentunit") scale = 100;
  else if (unit === "s") { const a = Math.abs(max); scale = a < 1e-3 ? 1e6 : a < 1 ? 1e3 : a < 60 ? 1 : 1 / 60; }
  else if (unit === "bytes") { let m = Math.abs(max); while (m >= 1024) { m /= 1024; scale /= 1024; } }
  else { const a = Math.abs(max); for (const [f] of SI) if (a >= f) { scale = 1 / f; break; } }
  const s = step * scale;
  return s >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(s) - 1e-9));
}
function niceStep(range, target) {
  const raw = range / Math.max(1, target);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function pad2(n) { return String(n).padStart(2, "0"); }
function clock(t) { const d = new Date(t * 1000); return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()); }

function place(node, g) {
  node.style.left = g.x * (col + DATA.margin) + "px";
  node.style.top = g.y * (DATA.cell + DATA.margin) + "px";
  node.style.width = g.w * col + (g.w - 1) * DATA.margin + "px";
  node.style.height = g.h * DATA.cell + (g.h - 1) * DATA.margin + "px";
}

function stacked(panel) {
  const mode = ((panel.custom.stacking || {}).mode) || "none";
  const n = DATA.times.length;
  const base = new Array(n).fill(0);
  return panel.series.map((s, i) => {
    const lo = base.slice();
    const hi = s.points.map((v, k) => v === null ? null : (mode === "normal" ? base[k] + v : v));
    if (mode === "normal") s.points.forEach((v, k) => { if (v !== null) base[k] += v; });
    return { name: s.name, color: PALETTE[i % PALETTE.length], lo: mode === "normal" ? lo : new Array(n).fill(null), hi };
  });
}

function timeseries(panel, plot) {
  const W = plot.clientWidth, H = plot.clientHeight;
  const svg = el("svg", { width: W, height: H }, null);
  plot.appendChild(svg);
  const layers = stacked(panel);
  let max = -Infinity, min = Infinity;
  for (const l of layers) for (const v of l.hi) if (v !== null) { max = Math.max(max, v); min = Math.min(min, v); }
  const soft = panel.custom.axisSoftMin;
  if (soft !== undefined && soft !== null) min = Math.min(min, soft);
  if (!(max > min)) max = min + 1;
  const ticksWanted = Math.max(2, Math.floor((H - 24) / 42));
  const step = niceStep(max - min, ticksWanted);
  min = Math.floor(min / step + 1e-9) * step;
  max = Math.ceil(max / step - 1e-9) * step;
  const dec = tickDecimals(panel.unit, step, max);
  const ticks = [];
  for (let v = min; v <= max + step / 2; v += step) ticks.push(v);
  const labels = ticks.map(v => format(panel.unit, Math.abs(v) < step / 1e6 ? 0 : v, dec));
  // Axis width from the longest label.
  const probe = el("text", { "font-size": 12 }, svg);
  let axis = 0;
  for (const s of labels) { probe.textContent = s; axis = Math.max(axis, probe.getComputedTextLength()); }
  probe.remove();
  const L = Math.ceil(axis) + 14, R = 12, T = 6, B = 22;
  const pw = W - L - R, ph = H - T - B;
  const t0 = DATA.times[0], t1 = DATA.times[DATA.times.length - 1];
  const x = t => L + (t - t0) / (t1 - t0) * pw;
  const y = v => T + ph - (v - min) / (max - min) * ph;
  ticks.forEach((v, i) => {
    el("line", { x1: L, x2: L + pw, y1: y(v), y2: y(v), stroke: "rgba(240,250,255,0.09)" }, svg);
    const t = el("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end", fill: "#9fa0a8", "font-size": 12 }, svg);
    t.textContent = labels[i];
  });
  const spacing = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const every = spacing.find(s => s / (t1 - t0) * pw >= 100) || 3600;
  for (let t = Math.ceil(t0 / every) * every; t <= t1; t += every) {
    el("line", { x1: x(t), x2: x(t), y1: T, y2: T + ph, stroke: "rgba(240,250,255,0.09)" }, svg);
    const lab = el("text", { x: x(t), y: H - 6, "text-anchor": "middle", fill: "#9fa0a8", "font-size": 12 }, svg);
    lab.textContent = clock(t);
    // A label that would run into the y axis's or past the right edge is left out.
    const half = lab.getComputedTextLength() / 2;
    if (x(t) - half < L - 2 || x(t) + half > W - 2) lab.remove();
  }
  // Thresholds drawn as lines, when asked for and within the axis.
  if ((panel.custom.thresholdsStyle || {}).mode === "line") {
    for (const s of panel.thresholds) {
      if (s.value === null || s.value < min || s.value > max) continue;
      el("line", { x1: L, x2: L + pw, y1: y(s.value), y2: y(s.value), stroke: color(s.color), "stroke-dasharray": "4 4" }, svg);
    }
  }
  const fill = (panel.custom.fillOpacity || 0) / 100;
  const bars = panel.custom.drawStyle === "bars";
  const n = DATA.times.length;
  const dx = pw / Math.max(1, n - 1);
  layers.forEach(l => {
    if (bars) {
      const w = Math.max(1, dx * 0.7);
      for (let k = 0; k < n; k++) {
        if (l.hi[k] === null) continue;
        const lo = l.lo[k] === null ? Math.max(min, 0) : l.lo[k];
        const top = y(l.hi[k]), bot = y(lo);
        if (bot - top < 0.5) continue;
        el("rect", { x: x(DATA.times[k]) - w / 2, y: top, width: w, height: bot - top, fill: l.color, "fill-opacity": Math.max(fill, 0.5) + 0.3, stroke: l.color, "stroke-width": 0.5 }, svg);
      }
      return;
    }
    // Runs of consecutive points (spanNulls: false).
    let run = [];
    const runs = [];
    for (let k = 0; k < n; k++) {
      if (l.hi[k] === null) { if (run.length) runs.push(run); run = []; } else run.push(k);
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      const top = r.map(k => `${x(DATA.times[k]).toFixed(1)},${y(l.hi[k]).toFixed(1)}`);
      if (fill > 0) {
        const bottom = r.slice().reverse().map(k => `${x(DATA.times[k]).toFixed(1)},${y(l.lo[k] === null ? Math.max(min, 0) : l.lo[k]).toFixed(1)}`);
        el("polygon", { points: top.concat(bottom).join(" "), fill: l.color, "fill-opacity": fill }, svg);
      }
      if (r.length === 1) el("circle", { cx: x(DATA.times[r[0]]), cy: y(l.hi[r[0]]), r: 1.5, fill: l.color }, svg);
      el("polyline", { points: top.join(" "), fill: "none", stroke: l.color, "stroke-width": panel.custom.lineWidth || 1 }, svg);
    }
  });
}

function thresholdColor(steps, v) {
  let c = "green";
  for (const s of steps) if (s.value === null || v >= s.value) c = s.color;
  return color(c);
}
function reduce(points, calc) {
  const vs = points.filter(v => v !== null);
  if (!vs.length) return null;
  switch (calc) {
    case "mean": return vs.reduce((a, b) => a + b, 0) / vs.length;
    case "max": return Math.max(...vs);
    case "min": return Math.min(...vs);
    case "sum": return vs.reduce((a, b) => a + b, 0);
    default: return vs[vs.length - 1]; // lastNotNull, last
  }
}
function stat(panel, plot) {
  const box = div("stat", plot);
  const calc = (((panel.options.reduceOptions || {}).calcs) || ["lastNotNull"])[0];
  const many = panel.series.length > 1;
  panel.series.forEach(s => {
    const v = reduce(s.points, calc);
    const tile = div("tile", box);
    const c = thresholdColor(panel.thresholds, v);
    const bg = panel.options.colorMode === "background";
    if (bg) tile.style.background = `linear-gradient(120deg, ${c}, ${c}cc)`;
    else tile.style.color = c;
    if (many) div("name", tile, s.name || "Value");
    div("value", tile, format(panel.unit, v, panel.decimals));
    if (panel.options.graphMode === "area") {
      const W = tile.clientWidth || plot.clientWidth, H = Math.round(plot.clientHeight * 0.45);
      const svg = el("svg", { width: W, height: H }, tile);
      const vs = s.points.filter(p => p !== null);
      const lo = Math.min(...vs), hi = Math.max(...vs);
      const span = hi > lo ? hi - lo : 1;
      const n = DATA.times.length;
      const pts = [];
      s.points.forEach((p, k) => { if (p !== null) pts.push([k / (n - 1) * W, H - 2 - (p - lo) / span * (H - 6)]); });
      if (pts.length > 1) {
        const line = pts.map(p => p[0].toFixed(1) + "," + p[1].toFixed(1));
        el("polygon", { points: line.concat([`${pts[pts.length - 1][0]},${H}`, `${pts[0][0]},${H}`]).join(" "), fill: bg ? "rgba(255,255,255,0.18)" : c, "fill-opacity": bg ? 1 : 0.2 }, svg);
        el("polyline", { points: line.join(" "), fill: "none", stroke: bg ? "rgba(255,255,255,0.55)" : c, "stroke-width": 1 }, svg);
      }
    }
  });
}

grid.style.height = DATA.rows * (DATA.cell + DATA.margin) + "px";
for (const panel of DATA.panels) {
  if (panel.type === "row") {
    const row = div("row", grid);
    place(row, panel.gridPos);
    const chevron = el("svg", { width: 14, height: 14, viewBox: "0 0 24 24" }, row);
    el("path", { d: "M6 9l6 6 6-6", fill: "none", stroke: "#ccccdc", "stroke-width": 2.5 }, chevron);
    row.appendChild(document.createTextNode(panel.title));
    continue;
  }
  const node = div("panel", grid);
  place(node, panel.gridPos);
  div("t", node, panel.title);
  for (const e of panel.errors) div("error", node, e);
  const plot = div("plot", node);
  if (!panel.series.length) { div("nodata", plot, "No data"); continue; }
  if (panel.type === "stat") { stat(panel, plot); continue; }
  const legend = (panel.options.legend || {}).showLegend !== false;
  if (legend) {
    const box = div("legend", node);
    panel.series.forEach((s, i) => {
      const item = div("item", box);
      div("swatch", item).style.background = PALETTE[i % PALETTE.length];
      item.appendChild(document.createTextNode(s.name || "Value"));
    });
  }
  timeseries(panel, plot);
}
</script>
</body></html>
"""


def page(dashboard, times, panels, args):
    values = variable_values(dashboard)
    chips = ['<span class="var"><b>Data source</b><span>Prometheus</span></span>']
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "datasource":
            continue
        shown = "All" if var.get("includeAll") else values[var["name"]]
        label = html.escape(var.get("label") or var["name"])
        chips.append(f'<span class="var"><b>{label}</b><span>{html.escape(shown)}</span></span>')
    fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    tz = time.strftime("%Z", time.localtime(args.start))
    note = (
        f"Rendered by scripts/render_dashboard.py (not Grafana) from Prometheus query_range, "
        f"step {args.step} s, $__rate_interval = {args.rate_interval}"
    )
    if args.note:
        note = f"{args.note}. {note}"
    data = {
        "width": args.width,
        "pad": PAGE_PADDING,
        "columns": GRID_COLUMNS,
        "cell": CELL_HEIGHT,
        "margin": MARGIN,
        "rows": max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels),
        "times": times,
        "panels": panels,
    }
    replacements = {
        "__TITLE__": html.escape(dashboard.get("title", "dashboard")),
        "__RANGE__": html.escape(f"{fmt(args.start)} to {fmt(args.end)} {tz}"),
        "__VARS__": "".join(chips),
        "__NOTE__": html.escape(note),
        "__HEADER__": str(HEADER_HEIGHT),
        "__PAD__": str(PAGE_PADDING),
        # `</` cannot end the script early once escaped.
        "__DATA__": json.dumps(data).replace("</", "<\\/"),
    }
    text = PAGE
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def screenshot(html_path, png, width, height):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        raise SystemExit("no chromium to take the screenshot")
    command = [
        browser, "--headless", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
        "--virtual-time-budget=3000", f"--window-size={width},{height}",
        f"--screenshot={os.path.abspath(png)}", "file://" + os.path.abspath(html_path),
    ]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboard", default="examples/grafana/dashboard.json")
    parser.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    parser.add_argument("--start", type=int, required=True, help="Unix seconds")
    parser.add_argument("--end", type=int, required=True, help="Unix seconds")
    parser.add_argument("--step", type=int, default=2, help="seconds (default 2)")
    parser.add_argument("--rate-interval", default="10s", help="$__rate_interval (default 10s)")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--html", required=True, help="the page to write")
    parser.add_argument("--png", help="screenshot it here (headless Chromium)")
    parser.add_argument("--note", help="a line on the header: where the data comes from")
    args = parser.parse_args()
    # Align on the step, as Grafana does, so that every query answers on the same instants.
    args.start -= args.start % args.step
    args.end -= args.end % args.step

    with open(args.dashboard) as f:
        dashboard = json.load(f)
    times, panels = collect(dashboard, args)
    report(panels)
    with open(args.html, "w") as f:
        f.write(page(dashboard, times, panels, args))
    if args.png:
        height = page_height(panels)
        screenshot(args.html, args.png, args.width, height)
        print(f"wrote {args.png} ({args.width}x{height})", file=sys.stderr)


if __name__ == "__main__":
    main()
