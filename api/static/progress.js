"use strict";
// The behaviour of the pages in api/templates/: show.html (one job, live) and overview.html
// (recent jobs). <body data-page="..."> says which page this is. Data from the server arrives
// as JSON (the show page's #config block, <html data-state-colours>) or in data-* attributes,
// never as script: the pages' Content-Security-Policy forbids inline script.

const $ = (id) => document.getElementById(id);

// ================================================================== both pages
// The status colours, from domain.model.STATE_COLOURS (the chart's), as CSS custom properties
// --running, --done, --failed, --stale for progress.css.
let colours = null;
function stateColours() {
  colours = colours || JSON.parse(document.documentElement.dataset.stateColours || "{}");
  return colours;
}
function applyStateColours() {
  for (const [state, colour] of Object.entries(stateColours())) {
    document.documentElement.style.setProperty("--" + state, colour);
  }
}

// ================================================================== the show page (one job)
// Everything it needs arrives in the page's #config JSON block (see show.html) and from
// /progress/status. It never puts user data into markup: textContent only.
let cfg = null;
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
  small: true,       // the job has at most PAGE_WORKERS workers: its status lists them all
};

// ---------------------------------------------------------------- formatting
const fmtInt = (n) => Number(n).toLocaleString("en-US");
// domain.formatting.percent_label, which the chart and the overview use, without its " %" (the
// page sets the unit apart): never "100" for an unfinished job. (A tie such as 0.25 rounds up
// here and to even in Python; tests/browser/test_page_security.py compares the two.)
function fmtPct(p) {
  if (typeof p !== "number" || !isFinite(p)) return "?";
  if (p >= 99.95 && p < 100) return "99.9";
  return Math.abs(p) < 1000 ? p.toFixed(1) : fmtInt(Math.round(p));
}
// Finer than domain.formatting.duration_label on purpose: a countdown that moves every second
// ("about 12 min 5 s") rather than a rounded age.
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
// Bidirectional controls (as api/pages.py BIDI_CONTROLS): left out of the labels (the title,
// the heading), so a name cannot make them read as something else; the title's label is
// isolated (FSI ... PDI) from the words around it. Values (<code>) stay exact, isolated by CSS.
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const label = (text) => String(text).replace(BIDI_CONTROLS, "");
const titleText = (text) => "\u2068" + label(text) + "\u2069";
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
  document.title = "Gone \u00b7 " + titleText(S.doc ? S.doc.desc || S.doc.jobid : cfg.jobid);
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
  setText("title", label(name));
  $("jobid-line").hidden = !doc.desc;  // without a description the title is the id already
  setText("percent", n ? fmtPct(doc.percent) : "\u2013");
  $("bar").style.width = Math.min(100, Math.max(0, doc.percent)) + "%";
  $("bar-wrap").setAttribute("aria-valuenow", fmtPct(doc.percent));
  setText("workers-total", workersText(doc, n));
  for (const state of cfg.states) {
    setText("count-" + state, fmtInt(c[state]));
    const li = $("tile-" + state);
    li.classList.toggle("zero", c[state] === 0);
    li.classList.toggle("alert", c[state] > 0 && cfg.problem_states.includes(state));
  }
  if (typeof doc.stale_after === "number") {
    $("tile-stale").title = "unfinished, and silent for more than " + fmtDur(doc.stale_after);
  }
  setText("created", fmtWhen(doc.created), fmtUTC(doc.created));
  setText("expires", fmtWhen(doc.created + doc.maxage), fmtUTC(doc.created + doc.maxage));
  renderProblems(doc);
  renderWorkers(doc);
  renderLifetimes(doc);
  renderJobFailed(doc.job_failed);
  const failed = c.failed ? " \u00b7 " + fmtInt(c.failed) + " failed" : "";
  const done = n ? fmtPct(doc.percent) + " %" : "waiting";
  document.title = done + failed + " \u00b7 " + titleText(name);
  setIcon(n ? doc : null);
  renderClock();
}

// A job failed as a whole (/progress/fail): who failed it, why and when, in the red banner.
function renderJobFailed(failure) {
  $("job-failed").hidden = !failure;
  if (!failure) return;
  const who = failure.by === "worker" ? "by worker " + failure.workid : "by the launcher";
  const why = failure.reason ? ": " + failure.reason : "";
  setText("job-failed-text", who + " at " + fmtWhen(failure.at) + why +
          ". Workers that start now skip their parts.", fmtUTC(failure.at));
}

// How many workers reported, against how many the job expects (create's workers=, if given).
function workersText(doc, n) {
  const expected = doc.workers_expected;
  if (typeof expected !== "number") return n ? plural(n, "worker", "workers") : "no workers yet";
  if (n > expected) return fmtInt(n) + " workers reported, " + fmtInt(expected) + " expected";
  if (doc.workers_silent) {
    return fmtInt(doc.workers_silent) + " of " + plural(expected, "worker", "workers") +
           (doc.workers_silent === 1 ? " has" : " have") + " not reported yet";
  }
  return plural(n, "worker", "workers");
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
  } else if (doc.job_failed) {
    note = "No estimate: the job failed as a whole.";
  } else if (n === 0) {
    note = "No estimate until workers report.";
  } else if (doc.workers_silent) {
    note = "No estimate while " + plural(doc.workers_silent, "worker has", "workers have") +
           " not reported yet.";
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

const PROBLEM_ROWS = 50;  // the status poll lists 25 failed and 25 stale (PAGE_PROBLEMS)
function renderProblems(doc) {
  const c = doc.counts;
  const count = c.failed + c.stale;
  const box = $("problems");
  box.hidden = count === 0 || !Array.isArray(doc.workers);
  if (box.hidden) return;
  setText("problems-count", fmtInt(count));
  const rows = cfg.problem_states
    .flatMap((state) => doc.workers.filter((w) => w.state === state)).slice(0, PROBLEM_ROWS);
  $("problems-body").replaceWith(workerRows("problems-body", rows));
  setText("problems-more", count > rows.length
    ? "Showing the first " + fmtInt(rows.length) + " of " + fmtInt(count) + ", failed first." : "");
}

// Every worker of a small job (status_all, see refreshStatus), when any has counters.
function renderWorkers(doc) {
  const workers = S.small && Array.isArray(doc.workers) ? doc.workers : [];
  const box = $("workers");
  box.hidden = !workers.some((w) => Array.isArray(w.counters) && w.counters.length);
  if (box.hidden) return;
  setText("workers-count", fmtInt(workers.length));
  $("workers-body").replaceWith(workerRows("workers-body", workers));
}

function add(parent, tag, cls, text) {
  const el = parent.appendChild(document.createElement(tag));
  el.className = cls;
  el.textContent = text;
  return el;
}

// A table body of workers: id and desc, state, percent, counters, when last heard from.
function workerRows(id, workers) {
  const body = document.createElement("tbody");
  body.id = id;
  for (const w of workers) {
    const tr = body.appendChild(document.createElement("tr"));
    const who = add(tr, "td", "", "");
    add(who, "span", "w-id", w.workid);
    if (w.desc) add(who, "span", "w-desc", w.desc);
    add(tr, "td", "w-state " + w.state, w.state);
    add(tr, "td", "w-pct", fmtPct(w.percent) + " %");
    addCounters(add(tr, "td", "w-counters", ""), w.counters || []);
    add(tr, "td", "w-ago", fmtAgo(w.updated)).title = fmtWhen(w.updated);
  }
  return body;
}

// Each counter as "name value", the value in the counter's colour (a CSS colour name or
// #rrggbb, checked by the service; set through the CSSOM, which the CSP allows).
function addCounters(td, counters) {
  for (const c of counters) {
    const item = add(td, "span", "counter", "");
    add(item, "span", "c-name", c.name);
    const value = add(item, "b", "c-value", String(c.value));
    if (c.colour) value.style.color = c.colour;
  }
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
    g.strokeStyle = stateColours()[doc.counts.failed ? "failed" : "done"];
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

// A small job is read with all its workers (their counters), a larger one with its problems:
// when a job crosses PAGE_WORKERS, it is read again the other way at once.
async function refreshStatus(again = true) {
  const resp = await get(S.small ? cfg.status_all : cfg.status, {});
  if (resp.status === 404) { showGone(); return false; }
  if (!resp.ok) throw new Error("the status request was answered " + resp.status);
  let doc;
  try {
    doc = JSON.parse(await resp.text());
  } catch (err) {
    throw new Error("the status could not be read (" + err.message + ")");
  }
  const small = doc.workers_reported <= cfg.page_workers;
  if (small !== S.small && again) {
    S.small = small;
    return refreshStatus(false);
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
  S.etag = await swapImage("chart", resp, "the chart");
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
    const refreshView = S.view === "lifetimes" ? refreshLifetimes : refreshChart;
    if (alive && !document.hidden) await refreshView();
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

function startShow() {
  cfg = JSON.parse($("config").textContent);
  $("notice-close").addEventListener("click", clearNotice);
  document.addEventListener("visibilitychange", () => {
    const due = Date.now() - S.lastTick >= cfg.interval * 1000;
    if (!document.hidden && (S.chartStale || due)) tick();
  });
  $("chart-box").addEventListener("click", (e) => {
    if (e.target.id === "chart" && !$("zoom").hidden) toggleSize();
  });
  $("zoom").addEventListener("click", toggleSize);
  window.addEventListener("resize", updateZoom);

  // The failed and stale tiles lead to the list of those workers.
  for (const state of cfg.problem_states) {
    const tile = $("tile-" + state);
    tile.addEventListener("click", () => {
      const list = $("problems");
      if (!tile.classList.contains("alert") || list.hidden) return;
      list.open = true;
      list.scrollIntoView({behavior: "smooth", block: "nearest"});
    });
  }

  placeholder("Loading the chart\u2026");  // not in the HTML: without a script it never loads
  startLifetimes();
  setInterval(renderClock, 1000);
  setInterval(renderRunningFor, 1000);
  tick();
}

// ---------------------------------------------------------------- the lifetimes view
// A second tab beside the chart: the histogram of how long the finished workers took
// (/progress/render?view=lifetimes, asked for only while the tab is open), the median, the
// slowest five, and the running workers that have already run longer than any finished one
// (status's lifetimes). The badge on the tab counts those in either view.
S.view = "chart";
S.lifetimesEtag = null;

// domain.lifetimes.lifetime_label: finer than fmtDur for short lifetimes (0.23 s, 4.5 s).
function fmtLifetime(sec) {
  if (typeof sec !== "number" || !isFinite(sec) || sec < 0) return "?";
  if (sec < 1) return Number(sec.toPrecision(2)) + " s";
  if (sec < 10) return sec.toFixed(1) + " s";
  return fmtDur(sec);
}

function startLifetimes() {
  document.querySelector(".views").hidden = false;
  $("view-chart").addEventListener("click", () => showView("chart"));
  $("view-lifetimes").addEventListener("click", () => showView("lifetimes"));
  window.addEventListener("hashchange", () => showView(viewOfHash(), false));
  showView(viewOfHash(), false);
}
const viewOfHash = () => (location.hash === "#lifetimes" ? "lifetimes" : "chart");

function showView(view, remember = true) {
  const lifetimes = view === "lifetimes";
  const changed = S.view !== view;
  S.view = view;
  $("view-chart").setAttribute("aria-selected", String(!lifetimes));
  $("view-lifetimes").setAttribute("aria-selected", String(lifetimes));
  $("chart-box").hidden = lifetimes;
  $("lifetimes").hidden = !lifetimes;
  if (lifetimes) $("zoom").hidden = true; else updateZoom();
  const here = location.pathname + location.search;
  if (remember) history.replaceState(null, "", lifetimes ? "#lifetimes" : here);
  if (changed && S.doc && !S.gone) {
    (lifetimes ? refreshLifetimes() : refreshChart()).catch(() => { /* the next tick says */ });
  }
}

async function refreshLifetimes() {
  const headers = S.lifetimesEtag ? {"If-None-Match": S.lifetimesEtag} : {};
  const resp = await get(cfg.render + "&view=lifetimes", headers);
  if (resp.status === 304) return;
  if (resp.status === 404) { showGone(); return; }
  if (!resp.ok) throw new Error("the lifetimes chart request was answered " + resp.status);
  S.lifetimesEtag = await swapImage("lifetimes-chart", resp, "the lifetimes chart");
}

// Put the PNG of `resp` in place of the image `id`, only once it is decoded: the old one stays
// until then, no flicker. Returns the new picture's ETag.
async function swapImage(id, resp, what) {
  const tag = resp.headers.get("ETag");
  const url = URL.createObjectURL(await resp.blob());
  const next = new Image();
  next.src = url;
  try {
    await next.decode();
  } catch (err) {
    URL.revokeObjectURL(url);
    throw new Error(what + " could not be decoded");
  }
  const old = $(id);
  next.id = id;
  next.alt = old.alt;
  next.dataset.etag = tag || "";
  old.replaceWith(next);
  if (old.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
  return tag;
}

function renderLifetimes(doc) {
  const lt = doc.lifetimes;
  if (!lt) return;
  const badge = $("overstaying-badge");
  badge.hidden = !lt.overstaying;
  badge.textContent = "\u26a0 " + fmtInt(lt.overstaying);
  badge.title = plural(lt.overstaying, "worker", "workers") + " " + cfg.overstaying_text;
  setText("lifetimes-summary", lt.finished
    ? plural(lt.finished, "finished worker", "finished workers") + " \u00b7 median " +
      fmtLifetime(lt.median_seconds) + " \u00b7 longest " + fmtLifetime(lt.longest_seconds)
    : "No worker has finished yet: the median, the slowest and the workers running longer " +
      "than any finished one appear once one is done or failed.");
  const cell = (tr, text, cls) => {
    const td = tr.appendChild(document.createElement("td"));
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };
  const over = document.createElement("tbody");
  over.id = "overstaying-body";
  for (const w of lt.overstaying_workers) {
    const tr = over.appendChild(document.createElement("tr"));
    tr.title = cfg.overstaying_text;
    cell(tr, "\u26a0 " + w.workid, "w-id");
    cell(tr, fmtLifetime(w.running_seconds), "w-running").dataset.base = String(w.running_seconds);
    cell(tr, fmtWhen(w.started), "w-when").title = fmtUTC(w.started);
  }
  $("overstaying-body").replaceWith(over);
  $("overstaying").hidden = !lt.overstaying;
  setText("overstaying-count", fmtInt(lt.overstaying));
  setText("overstaying-more", lt.overstaying > lt.overstaying_workers.length
    ? "Showing the " + fmtInt(lt.overstaying_workers.length) + " running longest." : "");
  const slow = document.createElement("tbody");
  slow.id = "slowest-body";
  for (const w of lt.slowest) {
    const tr = slow.appendChild(document.createElement("tr"));
    cell(tr, w.workid, "w-id");
    cell(tr, fmtLifetime(w.duration), "w-took");
    cell(tr, fmtWhen(w.finished), "w-when").title = fmtUTC(w.finished);
  }
  $("slowest-body").replaceWith(slow);
  $("slowest").hidden = lt.slowest.length === 0;
}

// The overstaying workers' "running for" counts on between reads of the status.
function renderRunningFor() {
  const since = Date.now() / 1000 - S.fetchedAt;
  for (const td of document.querySelectorAll("#overstaying-body .w-running")) {
    const text = fmtLifetime(Number(td.dataset.base) + since);
    if (td.textContent !== text) td.textContent = text;
  }
}

// ================================================================== the overview
function startOverview() {
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
  // Each job's small bar: its percent, from data-percent (no style attribute: the CSP).
  for (const el of document.querySelectorAll(".mini i[data-percent]")) {
    el.style.width = Math.min(100, Math.max(0, Number(el.dataset.percent) || 0)) + "%";
  }
}

// ================================================================== start
applyStateColours();
if (document.body.dataset.page === "show") startShow();
if (document.body.dataset.page === "overview") startOverview();
