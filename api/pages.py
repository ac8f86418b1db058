"""HTML pages: the live view of one job (/progress/show) and the recent-jobs overview
(/progress/). Each page is one self-contained document: inline CSS and JS, no external
resources. Every user string is escaped for its context: html.escape in markup, JSON with
<, >, & escaped inside script blocks, and the page's script only ever sets textContent."""

from __future__ import annotations

import html
import json
import math
import time

# Status colours, the same as the chart's (renderer/chart.py COLORS), so that the text panel
# and the picture agree. Copied rather than imported: api does not import the renderer.
_STATE_COLOURS = """
  --running: #4caf50; --done: #2e7d32; --failed: #d32f2f; --stale: #9e9e9e;"""

_BASE_CSS = (
    """
:root {
  color-scheme: light dark;
  --fg: #1f2328; --muted: #59636e; --bg: #f6f8fa; --card: #fff; --line: #d1d9e0;
  --link: #0969da; --soft: #eef1f4; --failed-text: #b71c1c;
  --warn-bg: #fff8c5; --warn-line: #d4a72c; --info-bg: #ddf4ff; --info-line: #54aeff;"""
    + _STATE_COLOURS
    + """
}
@media (prefers-color-scheme: dark) {
  :root {
    --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --card: #151b23; --line: #3d444d;
    --link: #4493f8; --soft: #262c36; --failed-text: #ff7b72;
    --warn-bg: #3a2f0b; --warn-line: #9e6a03; --info-bg: #0c2d4b; --info-line: #1f6feb;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
}
a { color: var(--link); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
.wrap { max-width: 1400px; margin: 0 auto; padding: 12px 16px 40px; }
.crumbs { font-size: .85rem; margin: 0 0 4px; }
h1 { font-size: 1.35rem; line-height: 1.25; margin: 0 0 2px; overflow-wrap: anywhere; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
.muted { color: var(--muted); }
.num { font-variant-numeric: tabular-nums; }
"""
)

_SHOW_CSS = """
.jobid { margin: 0; color: var(--muted); font-size: .85rem; overflow-wrap: anywhere; }
.notice {
  display: flex; gap: 12px; align-items: flex-start; margin: 12px 0 0; padding: 10px 14px;
  border: 1px solid var(--warn-line); background: var(--warn-bg); border-radius: 8px;
}
.notice.info { border-color: var(--info-line); background: var(--info-bg); }
.notice p { margin: 0; flex: 1; overflow-wrap: anywhere; }
.notice button {
  border: 0; background: transparent; color: inherit; font-size: 1.2rem; line-height: 1;
  cursor: pointer; padding: 0 2px;
}
.notice[hidden] { display: none; }
.layout { display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); margin-top: 14px; }
/* A phone shows the summary, then the chart, then the details; a wide screen shows the
   chart with summary and details beside it, kept in view while the chart scrolls. */
@media (max-width: 959px) {
  .side { display: contents; }
  #panel { order: 1; } .chart-col { order: 2; } #details { order: 3; }
}
@media (min-width: 960px) {
  .layout {
    grid-template-columns: minmax(0, 1002px) minmax(280px, 340px);
    justify-content: center; align-items: start;
  }
  .side { grid-column: 2; grid-row: 1; position: sticky; top: 12px; display: grid; gap: 12px;
    max-height: calc(100vh - 24px); overflow-y: auto; }
  .chart-col { grid-column: 1; grid-row: 1; }
}
.panel { padding: 14px 16px 12px; }
.gone .panel, .gone .chart-box img { opacity: .45; filter: grayscale(1); }
.big { display: flex; align-items: baseline; gap: 6px; margin: 0; }
.big #percent { font-size: 2.6rem; font-weight: 650; line-height: 1; letter-spacing: -.02em; }
.big .unit { font-size: 1.3rem; font-weight: 600; }
.big .what { color: var(--muted); margin-left: 4px; }
.bar { height: 10px; background: var(--soft); border-radius: 5px; overflow: hidden;
  margin: 10px 0 4px; }
.bar i { display: block; height: 100%; width: 0; background: var(--running);
  transition: width .25s; }
.sub { margin: 0 0 10px; color: var(--muted); font-size: .85rem; }
.counts { list-style: none; margin: 0 0 12px; padding: 0; display: grid; gap: 6px;
  grid-template-columns: repeat(2, minmax(0, 1fr)); }
.counts li { border: 1px solid var(--line); border-radius: 8px; padding: 5px 8px 5px 9px;
  border-left: 5px solid var(--c); min-width: 0; display: flex; align-items: baseline;
  gap: 6px; flex-wrap: wrap; }
.counts b { font-size: 1.2rem; line-height: 1.25; white-space: nowrap; }
.counts span { font-size: .82rem; color: var(--muted); }
.counts .zero b { color: var(--muted); font-weight: 500; }
.counts .running { --c: var(--running); } .counts .done { --c: var(--done); }
.counts .failed { --c: var(--failed); } .counts .stale { --c: var(--stale); }
.counts .failed.alert { background: color-mix(in srgb, var(--failed) 12%, transparent); }
.counts .failed.alert b { color: var(--failed-text); }
.counts .stale.alert { background: color-mix(in srgb, var(--stale) 16%, transparent); }
.counts .alert { cursor: pointer; }
.facts { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 4px 12px; margin: 0; }
.facts dt { color: var(--muted); font-size: .85rem; padding-top: 1px; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.facts small { display: block; color: var(--muted); font-size: .78rem; line-height: 1.35; }
.problems { margin-top: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
.problems summary { cursor: pointer; font-weight: 600; }
.problems .scroll { max-height: 22rem; overflow: auto; margin-top: 6px; }
.problems table { border-collapse: collapse; width: 100%; font-size: .82rem; }
.problems th, .problems td { text-align: left; padding: 4px 8px 4px 0; vertical-align: top;
  border-bottom: 1px solid var(--line); }
.problems th { color: var(--muted); font-weight: 500; position: sticky; top: 0;
  background: var(--card); }
.problems th:last-child, .problems td:last-child { padding-right: 0; }
.problems .w-id { font-weight: 600; overflow-wrap: anywhere; }
.problems .w-desc { display: block; color: var(--muted); overflow-wrap: anywhere; }
.problems .w-state, .problems .w-pct, .problems .w-ago { white-space: nowrap; }
.problems .w-pct { text-align: right; font-variant-numeric: tabular-nums; }
.problems .w-state.failed { color: var(--failed-text); font-weight: 600; }
.problems .w-state.stale { color: var(--muted); font-weight: 600; }
.refresh { margin: 10px 0 0; font-size: .8rem; color: var(--muted); }
#conn { color: var(--failed-text); margin: 10px 0 0; font-size: .85rem; }
#conn:empty { display: none; }
.chart-col { position: relative; }
#zoom { position: absolute; top: 8px; right: 8px; font: inherit; font-size: .8rem;
  color: var(--link); background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: 3px 9px; cursor: pointer; opacity: .92; }
#zoom[hidden] { display: none; }
@media (max-width: 600px) { #zoom { top: 6px; right: 6px; font-size: .72rem; padding: 2px 7px; } }
.chart-box { position: relative; padding: 1px; overflow: hidden; }
.chart-box img { display: block; width: 100%; height: auto; max-width: 1000px;
  border-radius: 9px; }
.chart-col:has(#zoom:not([hidden])) .chart-box img { cursor: zoom-in; }
.chart-box.actual { overflow-x: auto; }
.chart-box.actual img { width: auto; max-width: none; cursor: zoom-out; }
.chart-box img:not([src]) { display: none; }
#placeholder { padding: 3rem 1rem; text-align: center; color: var(--muted); }
#placeholder[hidden] { display: none; }
.stamp { position: absolute; top: 40%; left: 50%; transform: translate(-50%, -50%) rotate(-8deg);
  border: 3px solid var(--failed); color: var(--failed); background: var(--card);
  font-weight: 700; font-size: 1.4rem; letter-spacing: .08em; padding: 4px 16px;
  border-radius: 6px; text-transform: uppercase; }
.stamp[hidden] { display: none; }
"""

# The show page's script: static text; everything it needs arrives in the #config JSON block
# and from /progress/status. It never puts user data into markup (textContent only).
_SHOW_JS = r"""
"use strict";
const cfg = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const S = {
  etag: null,        // ETag of the chart on screen: an unchanged chart then costs a 304
  created: null,     // the job's creation time; a change means it was re-created
  gone: false,       // the job no longer exists
  doc: null,         // the last status document
  fetchedAt: 0,      // local time (s) the last status document arrived
  offset: 0,         // server clock minus local clock, s
  sig: "",           // what the last status said, to notice changes
  timer: null, catchUpTimer: null, busy: false, lastTick: 0, retrySoon: false,
  chartStale: false, lastIcon: "",
};

// ---------------------------------------------------------------- formatting
const fmtInt = (n) => Number(n).toLocaleString("en-US");
function fmtPct(p) {
  if (typeof p !== "number" || !isFinite(p)) return "\u2013";
  if (p >= 99.95 && p < 100) return "99.9";  // never "100" for an unfinished job
  return p.toFixed(1);
}
function fmtDur(sec) {
  let s = Math.max(0, Math.round(sec));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min" + (m < 10 && s % 60 ? " " + (s % 60) + " s" : "");
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
  const d = Math.floor(h / 24);
  if (d > 365) return "more than a year";
  return d + " d" + (h % 24 ? " " + (h % 24) + " h" : "");
}
function fmtAgo(t) {
  const s = serverNow() - t;
  return s < 3 ? "just now" : fmtDur(s) + " ago";
}
function fmtWhen(t) {  // an absolute time in the viewer's time zone
  const d = new Date(t * 1000);
  const today = d.toDateString() === new Date().toDateString();
  return today
    ? d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"})
    : d.toLocaleString([], {dateStyle: "medium", timeStyle: "short"});
}
function fmtUTC(t) {
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
const serverNow = () => Date.now() / 1000 + S.offset;
const plural = (n, one, many) => fmtInt(n) + " " + (n === 1 ? one : many);

function setText(id, text, title) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
  if (title !== undefined) el.title = title;
}

// ---------------------------------------------------------------- notices
function notice(kind, text) {
  const box = $("notice");
  box.className = "notice " + kind;
  $("notice-text").textContent = text;
  box.hidden = false;
}
function clearNotice() { $("notice").hidden = true; }
$("notice-close").addEventListener("click", clearNotice);

function showGone() {
  if (!S.gone) {
    S.gone = true;
    const d = S.doc;
    let why = "It was deleted, or it expired.";
    if (d && serverNow() >= d.created + d.maxage - 2) {
      why = "It expired: a job is kept for its maxage (" + fmtDur(d.maxage) +
            " for this one) after it is created, and this one was created " +
            fmtWhen(d.created) + ".";
    }
    const last = S.etag ? " The chart below is the last one received." : "";
    notice("warn", "This job no longer exists. " + why + last +
           " The page keeps checking and shows the job again if it is re-created.");
  }
  $("layout").classList.add("gone");
  $("stamp").hidden = !S.etag;
  if (!S.etag) placeholder("No chart: this job no longer exists.");
  document.title = "Gone \u00b7 " + (S.doc ? S.doc.desc || S.doc.jobid : cfg.jobid);
  setIcon(null);
}
function clearGone() {
  S.gone = false;
  $("layout").classList.remove("gone");
  $("stamp").hidden = true;
}
function placeholder(text) {
  const p = $("placeholder");
  p.textContent = text;
  p.hidden = !text;
}

// ---------------------------------------------------------------- the text panel
function renderDoc(doc) {
  const c = doc.counts;
  const n = c.running + c.done + c.failed + c.stale;
  const name = doc.desc || doc.jobid;
  setText("title", name);
  $("jobid-line").hidden = !doc.desc;  // without a description the title is the id already
  setText("percent", n ? fmtPct(doc.percent) : "\u2013");
  $("bar").style.width = Math.min(100, Math.max(0, doc.percent)) + "%";
  $("bar-wrap").setAttribute("aria-valuenow", fmtPct(doc.percent));
  setText("workers-total", n ? plural(n, "worker", "workers") : "no workers yet");
  for (const state of ["running", "done", "failed", "stale"]) {
    setText("count-" + state, fmtInt(c[state]));
    const li = $("tile-" + state);
    li.classList.toggle("zero", c[state] === 0);
    li.classList.toggle("alert", c[state] > 0 && (state === "failed" || state === "stale"));
  }
  if (typeof doc.stale_after === "number") {
    $("tile-stale").title = "unfinished, and silent for more than " + fmtDur(doc.stale_after);
  }
  setText("created", fmtWhen(doc.created), fmtUTC(doc.created));
  setText("expires", fmtWhen(doc.created + doc.maxage), fmtUTC(doc.created + doc.maxage));
  renderProblems(doc);
  const failed = c.failed ? " \u00b7 " + fmtInt(c.failed) + " failed" : "";
  document.title = (n ? fmtPct(doc.percent) + " %" : "waiting") + failed + " \u00b7 " + name;
  setIcon(n ? doc : null);
  renderClock();
}

// What changes with the clock alone: ages and the ETA, re-drawn every second.
function renderClock() {
  const doc = S.doc;
  if (!doc) return;
  const c = doc.counts;
  const n = c.running + c.done + c.failed + c.stale;
  if (doc.last_update == null) {
    setText("last-update", "none yet", "");
  } else {
    const at = fmtWhen(doc.last_update) + " (" + fmtUTC(doc.last_update) + ")";
    setText("last-update", fmtAgo(doc.last_update), at);
  }
  let eta = "\u2013", note;
  if (doc.eta_seconds != null) {
    // The estimate was made when the status was read; count it down since.
    const left = doc.eta_seconds - (Date.now() / 1000 - S.fetchedAt);
    const finish = S.fetchedAt + S.offset + doc.eta_seconds;
    eta = left > 0 ? "about " + fmtDur(left) : "any moment now";
    note = "Done around " + fmtWhen(finish) + ", if each running worker keeps the average " +
           "rate it has shown since the job was created (the slowest one decides).";
  } else if (n === 0) {
    note = "No estimate until workers report.";
  } else if (c.running === 0 && c.done === n) {
    eta = "finished";
    note = "Every worker is done.";
  } else if (c.running === 0) {
    note = "No estimate: no worker is running.";
  } else {
    note = "Not enough data for an estimate yet: it needs progress from every running " +
           "worker, reported at least 5 s after the job was created.";
  }
  setText("eta", eta);
  setText("eta-note", note);
  const since = Date.now() / 1000 - S.fetchedAt;
  const ago = since < 3 ? "just now" : fmtDur(since) + " ago";
  setText("checked", S.gone ? "job gone" : "last read " + ago);
}

const PROBLEM_ROWS = 100;
function renderProblems(doc) {
  const c = doc.counts;
  const count = c.failed + c.stale;
  const box = $("problems");
  box.hidden = count === 0 || !Array.isArray(doc.workers);
  if (box.hidden) return;
  setText("problems-count", fmtInt(count));
  const rows = doc.workers.filter((w) => w.state === "failed")
    .concat(doc.workers.filter((w) => w.state === "stale")).slice(0, PROBLEM_ROWS);
  const body = document.createElement("tbody");
  body.id = "problems-body";
  const add = (parent, tag, cls, text) => {
    const el = parent.appendChild(document.createElement(tag));
    el.className = cls;
    el.textContent = text;
    return el;
  };
  for (const w of rows) {
    const tr = body.appendChild(document.createElement("tr"));
    const who = add(tr, "td", "", "");
    add(who, "span", "w-id", w.workid);
    if (w.desc) add(who, "span", "w-desc", w.desc);
    add(tr, "td", "w-state " + w.state, w.state);
    add(tr, "td", "w-pct", fmtPct(w.percent) + " %");
    add(tr, "td", "w-ago", fmtAgo(w.updated)).title = fmtWhen(w.updated);
  }
  $("problems-body").replaceWith(body);
  setText("problems-more", count > rows.length
    ? "Showing the first " + fmtInt(rows.length) + " of " + fmtInt(count) + ", failed first." : "");
}

// A tab left open for hours shows the progress in its icon.
function setIcon(doc) {
  const key = doc ? fmtPct(doc.percent) + "/" + doc.counts.failed : "gone";
  if (key === S.lastIcon) return;
  S.lastIcon = key;
  const cv = document.createElement("canvas");
  cv.width = cv.height = 32;
  const g = cv.getContext("2d");
  if (!g) return;
  g.lineWidth = 6;
  g.strokeStyle = "#d0d7de";
  g.beginPath(); g.arc(16, 16, 12, 0, 2 * Math.PI); g.stroke();
  if (doc) {
    g.strokeStyle = doc.counts.failed ? "#d32f2f" : "#2e7d32";
    g.beginPath();
    g.arc(16, 16, 12, -Math.PI / 2, -Math.PI / 2 + 2 * Math.PI * Math.min(100, doc.percent) / 100);
    g.stroke();
  }
  $("icon").href = cv.toDataURL("image/png");
}

// ---------------------------------------------------------------- fetching
async function get(url, headers) {
  try {
    return await fetch(url, {headers, cache: "no-store"});
  } catch (err) {  // no answer at all: the server is down or restarting, or the network is
    throw new Error("the progress service cannot be reached");
  }
}

async function refreshStatus() {
  const resp = await get(cfg.status, {});
  if (resp.status === 404) { showGone(); return false; }
  if (!resp.ok) throw new Error("the status request was answered " + resp.status);
  let doc;
  try {
    doc = JSON.parse(await resp.text());
  } catch (err) {
    throw new Error("the status could not be read (" + err.message + ")");
  }
  const local = Date.now() / 1000;
  let now = typeof doc.now === "number" ? doc.now : NaN;
  if (isNaN(now)) now = Date.parse(resp.headers.get("Date") || "") / 1000 + 0.5;  // 1 s resolution
  if (!isNaN(now)) S.offset = now - local;
  S.fetchedAt = local;
  if (S.created !== null && doc.created !== S.created) {
    notice("info", "This job was re-created " + fmtWhen(doc.created) + ": the progress " +
           "reported before that was discarded, and the page now shows the new job.");
  } else if (S.gone) {
    clearNotice();
  }
  if (S.gone) clearGone();
  // The chart is drawn a moment after the state changes: when it changed, look again soon.
  const c = doc.counts;
  const sig = [doc.created, doc.last_update, c.running, c.done, c.failed, c.stale].join();
  if (sig !== S.sig) catchUp();
  S.sig = sig;
  S.created = doc.created;
  S.doc = doc;
  renderDoc(doc);
  return true;
}

// Extra chart checks 1.5 s and 3.5 s after a change (each an If-None-Match request), so that
// the picture follows the text panel within seconds even when the interval is long.
const CATCH_UP_MS = [1500, 3500];
function catchUp() {
  clearTimeout(S.catchUpTimer);
  if (cfg.interval * 1000 <= CATCH_UP_MS[0]) return;
  let i = 0;
  const step = async () => {
    if (!S.busy && !S.gone && !document.hidden) {
      S.busy = true;
      try { await refreshChart(); } catch (err) { /* the next tick reports it */ }
      finally { S.busy = false; }
    }
    i += 1;
    if (i < CATCH_UP_MS.length && CATCH_UP_MS[i] < cfg.interval * 1000) {
      S.catchUpTimer = setTimeout(step, CATCH_UP_MS[i] - CATCH_UP_MS[i - 1]);
    }
  };
  S.catchUpTimer = setTimeout(step, CATCH_UP_MS[0]);
}

async function refreshChart() {
  const headers = S.etag ? {"If-None-Match": S.etag} : {};
  const resp = await get(cfg.render, headers);
  if (resp.status === 304) return;
  if (resp.status === 404) { showGone(); return; }
  if (resp.status === 503) { S.retrySoon = true; return; }  // the first chart is being drawn
  if (!resp.ok) throw new Error("the chart request was answered " + resp.status);
  const tag = resp.headers.get("ETag");
  const url = URL.createObjectURL(await resp.blob());
  // Swap only once the new picture is decoded: the old one stays until then, no flicker.
  const next = new Image();
  next.src = url;
  try {
    await next.decode();
  } catch (err) {
    URL.revokeObjectURL(url);
    throw new Error("the chart could not be decoded");
  }
  const old = $("chart");
  next.id = "chart";
  next.alt = old.alt;
  next.dataset.etag = tag || "";
  old.replaceWith(next);
  if (old.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
  S.etag = tag;
  placeholder("");
  updateZoom();
}

async function tick() {
  clearTimeout(S.timer);
  if (S.busy) {  // a catch-up chart check is under way: come back when it is done
    S.timer = setTimeout(tick, 250);
    return;
  }
  S.timer = null;
  S.busy = true;
  S.retrySoon = false;
  try {
    const alive = await refreshStatus();
    // A hidden tab keeps its title and icon current but leaves the picture for later.
    if (alive && !document.hidden) await refreshChart();
    S.chartStale = alive && document.hidden;
    setText("conn", "");
  } catch (err) {
    setText("conn", "Not up to date: " + err.message + "; retrying every " +
            fmtDur(cfg.interval) + ".");
  } finally {
    S.busy = false;
    S.lastTick = Date.now();
    const wait = S.retrySoon ? Math.min(1, cfg.interval) : cfg.interval;
    S.timer = setTimeout(tick, wait * 1000);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && (S.chartStale || Date.now() - S.lastTick >= cfg.interval * 1000)) tick();
});

// Tap or click a scaled-down chart: actual size (scrolls sideways on a phone), or back.
function toggleSize() {
  const actual = $("chart-box").classList.toggle("actual");
  $("zoom").textContent = actual ? "Fit to width" : "Actual size";
  updateZoom();
}
function updateZoom() {
  const img = $("chart");
  const actual = $("chart-box").classList.contains("actual");
  $("zoom").hidden = !(img.naturalWidth && (actual || img.clientWidth < img.naturalWidth * 0.97));
}
$("chart-box").addEventListener("click", (e) => {
  if (e.target.id === "chart" && !$("zoom").hidden) toggleSize();
});
$("zoom").addEventListener("click", toggleSize);
window.addEventListener("resize", updateZoom);

// The failed and stale tiles lead to the list of those workers.
for (const id of ["tile-failed", "tile-stale"]) {
  $(id).addEventListener("click", () => {
    const list = $("problems");
    if (!$(id).classList.contains("alert") || list.hidden) return;
    list.open = true;
    list.scrollIntoView({behavior: "smooth", block: "nearest"});
  });
}

setInterval(renderClock, 1000);
tick();
"""


def _script_json(value) -> str:
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_STATE_HINTS = {
    "running": "reporting, not finished yet",
    "done": "reached its total",
    "failed": "reported ok=0",
    "stale": "unfinished, and silent for too long",
}


def _interval_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:.3g} h"


def show_page(jobid: str, interval: float, urls: dict[str, str], *, overview: bool = True) -> str:
    """The live view of one job. `urls` holds the job's show, render and status URLs;
    `overview` says whether to link the recent-jobs page (off when listing is switched off)."""
    config = _script_json({"jobid": jobid, "interval": interval, **urls})
    esc_jobid = html.escape(jobid)
    tiles = "".join(
        f'<li id="tile-{state}" class="{state} zero" title="{hint}">'
        f'<b id="count-{state}" class="num">\u2013</b><span>{state}</span></li>'
        for state, hint in _STATE_HINTS.items()
    )
    crumbs = ""
    if overview:
        home = urls["show"].split("/progress/show", 1)[0] + "/progress/"
        crumbs = f'<p class="crumbs"><a href="{html.escape(home)}">\u2190 All jobs</a></p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Progress: {esc_jobid}</title>
<link id="icon" rel="icon" href="data:,">
<style>{_BASE_CSS}{_SHOW_CSS}</style></head>
<body><div class="wrap">
<header>
{crumbs}
<h1 id="title">{esc_jobid}</h1>
<p id="jobid-line" class="jobid">Job <code id="jobid">{esc_jobid}</code></p>
</header>
<div id="notice" class="notice" role="alert" hidden><p id="notice-text"></p>
<button id="notice-close" type="button" aria-label="Dismiss">\u00d7</button></div>
<main id="layout" class="layout">
<div class="side">
<section id="panel" class="panel card" aria-label="Summary">
<p class="big"><span id="percent" class="num">\u2013</span><span class="unit">%</span>
<span class="what">done</span></p>
<div id="bar-wrap" class="bar" role="progressbar" aria-label="Percent done" aria-valuemin="0"
 aria-valuemax="100"><i id="bar"></i></div>
<p class="sub"><span id="workers-total">loading\u2026</span>
\u00b7 mean of each worker's percent</p>
<ul class="counts">{tiles}</ul>
<dl class="facts">
<dt>Last update</dt><dd id="last-update">\u2013</dd>
<dt>Time left</dt><dd><span id="eta">\u2013</span><small id="eta-note"></small></dd>
</dl>
<p id="conn" role="status"></p>
</section>
<section id="details" class="panel card" aria-label="Details">
<dl class="facts">
<dt>Created</dt><dd id="created">\u2013</dd>
<dt>Expires</dt><dd id="expires">\u2013</dd>
</dl>
<details id="problems" class="problems" hidden>
<summary>Failed and stale workers (<span id="problems-count">0</span>)</summary>
<div class="scroll"><table><thead><tr><th>Worker</th><th>State</th><th>Done</th>
<th>Heard</th></tr></thead><tbody id="problems-body"></tbody></table></div>
<p id="problems-more" class="muted"></p>
</details>
<p class="refresh">Refreshes every {_interval_text(interval)}
\u00b7 <span id="checked">loading</span></p>
</section>
</div>
<section class="chart-col" aria-label="Chart">
<div id="chart-box" class="chart-box card">
<img id="chart" alt="Progress chart: one bar per worker">
<noscript><img src="{html.escape(urls["render"])}" alt="Progress chart"></noscript>
<p id="placeholder">Loading the chart\u2026</p>
<div id="stamp" class="stamp" hidden>Job gone</div>
</div>
<button id="zoom" type="button" hidden>Actual size</button>
</section>
</main>
</div>
<script type="application/json" id="config">{config}</script>
<script>{_SHOW_JS}</script>
</body></html>
"""


# --------------------------------------------------------------------------- overview

_OVERVIEW_CSS = """
.wrap { max-width: 1120px; }
.intro { margin: 0 0 12px; color: var(--muted); }
table.jobs { width: 100%; border-collapse: collapse; }
.jobs th, .jobs td { padding: 8px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
.jobs th { font-size: .8rem; color: var(--muted); font-weight: 500; }
.jobs tbody tr:last-child td { border-bottom: 0; }
.jobs td.n, .jobs th.n { text-align: right; font-variant-numeric: tabular-nums; }
.jobs .job a { font-weight: 600; overflow-wrap: anywhere; }
.jobs .job code { display: block; color: var(--muted); font-size: .78rem; overflow-wrap: anywhere; }
.jobs .desc { overflow-wrap: anywhere; }
.jobs .pct { display: inline-flex; align-items: center; gap: 8px; }
.jobs .mini { display: inline-block; width: 64px; height: 6px; background: var(--soft);
  border-radius: 3px; overflow: hidden; }
.jobs .mini i { display: block; height: 100%; background: var(--running); }
.jobs td.bad { color: var(--failed-text); font-weight: 700; }
.jobs td.warn { color: var(--muted); font-weight: 700; }
.jobs td.zero { color: var(--muted); }
.pager { display: flex; justify-content: space-between; align-items: center; gap: 12px;
  margin: 12px 2px; font-size: .9rem; }
.pager .off { color: var(--muted); opacity: .6; }
.empty { padding: 2rem 1rem; text-align: center; color: var(--muted); }
@media (max-width: 700px) {
  .jobs thead { display: none; }
  .jobs, .jobs tbody, .jobs tr, .jobs td { display: block; }
  .jobs tr { border-bottom: 1px solid var(--line); padding: 8px 12px; }
  .jobs tbody tr:last-child { border-bottom: 0; }
  .jobs td { border: 0; padding: 2px 0; }
  .jobs td.n { text-align: left; display: inline-block; margin-right: 12px; }
  .jobs .mini { display: none; }
  .jobs td.n::after, .jobs td.created::before { content: " " attr(data-label);
    color: var(--muted); font-weight: 400; font-size: .8rem; }
  .jobs td.created::before { content: attr(data-label) " "; }
}
"""

_OVERVIEW_JS = r"""
"use strict";
// Creation times: the viewer's own time zone, and how long ago.
for (const el of document.querySelectorAll("time[data-t]")) {
  const t = Number(el.dataset.t) * 1000;
  const d = new Date(t);
  const s = Math.max(0, (Date.now() - t) / 1000);
  const ago = s < 60 ? "just now" : s < 3600 ? Math.floor(s / 60) + " min ago"
    : s < 172800 ? Math.floor(s / 3600) + " h ago" : Math.floor(s / 86400) + " d ago";
  el.title = el.textContent;
  const when = d.toLocaleString([], {dateStyle: "medium", timeStyle: "short"});
  el.textContent = when + " (" + ago + ")";
}
"""


def _pct_text(percent: float) -> str:
    if not math.isfinite(percent):
        return "?"
    if 99.95 <= percent < 100:
        return "99.9"  # never "100" for an unfinished job
    return f"{percent:.1f}"


def _utc(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return "?"


def _count_cell(label: str, value: int, nonzero_class: str) -> str:
    cls = nonzero_class if value else "zero"
    return f'<td class="n {cls}" data-label="{label}">{value:,}</td>'


def _overview_row(job: dict) -> str:
    jobid = html.escape(job["jobid"])
    desc = html.escape(job["desc"])
    link = f'<a href="{html.escape(job["show"])}">{desc or jobid}</a>'
    ident = f"<code>{jobid}</code>" if desc else ""
    percent = job["percent"]
    width = min(100.0, max(0.0, percent)) if math.isfinite(percent) else 0.0
    created = job["created"]
    return (
        "<tr>"
        f'<td class="job" data-label="Job">{link}{ident}</td>'
        f'<td class="created" data-label="Created"><time data-t="{created!r}">'
        f"{_utc(created)}</time></td>"
        f'<td class="n" data-label="workers">{job["workers"]:,}</td>'
        f'<td class="n" data-label="done"><span class="pct">{_pct_text(percent)} %'
        f'<span class="mini" aria-hidden="true"><i style="width:{width:.1f}%"></i></span>'
        "</span></td>"
        + _count_cell("failed", job["failed"], "bad")
        + _count_cell("stale", job["stale"], "warn")
        + "</tr>"
    )


def _page_link(text: str, rel: str, offset: int | None, limit: int) -> str:
    if offset is None:
        return f'<span class="off">{text}</span>'
    return f'<a rel="{rel}" href="?offset={offset}&amp;limit={limit}">{text}</a>'


def overview_page(listing: dict) -> str:
    """Recent jobs, newest first, one page of `listing` (the /progress/jobs document)."""
    jobs, total = listing["jobs"], listing["total"]
    limit, offset = listing["limit"], listing["offset"]
    newer = max(0, offset - limit) if offset > 0 else None
    older = offset + limit if offset + limit < total else None
    if jobs:
        body = (
            '<table class="jobs"><thead><tr><th>Job</th><th>Created</th>'
            '<th class="n">Workers</th><th class="n">Done</th><th class="n">Failed</th>'
            '<th class="n">Stale</th></tr></thead><tbody>'
            + "".join(_overview_row(job) for job in jobs)
            + "</tbody></table>"
        )
        shown = f"Jobs {offset + 1:,}\u2013{offset + len(jobs):,} of {total:,}"
    elif total:
        body = (
            '<p class="empty">No jobs on this page. '
            f'<a href="?offset=0&amp;limit={limit}">Back to the newest jobs</a></p>'
        )
        shown = f"{total:,} jobs"
    else:
        body = (
            '<p class="empty">No jobs yet. Create one with '
            "<code>/progress/create?jobid=\u2026&amp;desc=\u2026</code>.</p>"
        )
        shown = "No jobs"

    def pager(where: str) -> str:
        return (
            f'<nav class="pager" aria-label="{where} pages">'
            + _page_link("\u2190 Newer", "prev", newer, limit)
            + f'<span class="muted">{shown}</span>'
            + _page_link("Older \u2192", "next", older, limit)
            + "</nav>"
        )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Progress: recent jobs</title>
<link rel="icon" href="data:,">
<style>{_BASE_CSS}{_OVERVIEW_CSS}</style></head>
<body><div class="wrap">
<h1>Recent jobs</h1>
<p class="intro">Newest first. Open a job for its live chart.</p>
{pager("Top")}
<div class="card">{body}</div>
{pager("Bottom") if len(jobs) > 10 else ""}
</div>
<script>{_OVERVIEW_JS}</script>
</body></html>
"""
