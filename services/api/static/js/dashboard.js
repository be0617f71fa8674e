// The queue dashboard: photos and jobs counted as such, a job browser (jobs by state in
// pages, each job's detail: payload, runs with their errors and stage times, trace id, its
// photo), pause and resume, charts with units and tooltips, and the bus processes. Polls.

import { api, auth, ApiError, esc } from "./api.js";
import { barChart, lineChart } from "./chart.js";

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;
const QUEUE = "/v1/queues/photo-processing";
const PAGE = 20;
// An operator's token lives under its own key, so signing in here never signs the
// gallery out; without one, the gallery's token is tried (it may be an admin's).
const ADMIN_KEY = "filmstrip.adminToken";
if (localStorage.getItem(ADMIN_KEY)) auth.use(ADMIN_KEY);
let timer = null;
const browser = { state: "failed", offset: 0, shown: "" };
const STATE_WORDS = {
  waiting: "waiting",
  active: "running now",
  delayed: "delayed",
  retrying: "failed once, will run again",
  completed: "completed",
  failed: "failed for good (dead-lettered)",
};

function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("show"), 4000);
}

function showSignIn(message = "") {
  clearTimeout(timer);
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#token").focus();
}

function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

const moment = (ms) =>
  ms ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" }).format(ms) : "–";
const duration = (ms) =>
  ms >= 1000 ? `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(ms / 1000)} s` : `${Math.round(ms)} ms`;

function renderCounts(data) {
  $("#queue-name").textContent = data.queue;
  for (const [state, value] of Object.entries(data.photos)) {
    const dd = document.querySelector(`#photo-counts .count[data-state="${state}"] dd`);
    if (dd) dd.textContent = new Intl.NumberFormat().format(value);
  }
  for (const tab of document.querySelectorAll("#job-tabs [role=tab]")) {
    const n = data.counts[tab.dataset.state];
    tab.querySelector(".tab-count").textContent = n === undefined ? "" : new Intl.NumberFormat().format(n);
  }
  const pill = $("#paused-state");
  pill.textContent = data.paused ? "Paused" : "Running";
  pill.dataset.state = data.paused ? "reconnecting" : "open";
  $("#pause").disabled = data.paused;
  $("#resume").disabled = !data.paused;
}

function renderCharts(data) {
  const t = data.throughput;
  const total = (xs) => xs.reduce((a, b) => a + b, 0);
  barChart($("#throughput-chart"), {
    completed: t.completed,
    failed: t.failed,
    startMs: t.start_ms,
    yUnit: "jobs / min",
    xTitle: "time (each bar one minute)",
    label: `Jobs finished per minute over the last hour: ${total(t.completed)} completed, ${total(t.failed)} failed`,
  });
  lineChart($("#stages-chart"), {
    series: data.stages.map((s) => ({
      name: s.stage,
      values: s.mean_ms.map((v, i) => (s.runs[i] ? v : null)),
    })),
    startMs: t.start_ms,
    yUnit: "ms",
    unit: "ms",
    xTitle: "time (each point one minute's mean)",
    label: "Mean time per stage, in milliseconds, for each minute of the last hour",
  });
}

function renderBus(data) {
  const body = $("#bus-instances");
  body.replaceChildren();
  for (const b of data.bus) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td><code>${esc(b.id)}</code></td><td>${b.sockets}</td>
      <td>${b.identified}</td><td>${b.rooms}</td><td>${b.delivered}</td>
      <td>${ago(b.updated_at_ms, data.now_ms)}</td>`;
    body.append(tr);
  }
  $("#bus-empty").hidden = data.bus.length > 0;
}

// --- the job browser ------------------------------------------------------------------

// The tab and page shown live in the address (?state=…&page=…), so a reload, back/forward
// and a shared link keep them.
function browserInAddress() {
  const q = new URLSearchParams(location.search);
  const state = q.get("state");
  const page = Math.max(1, Math.floor(Number(q.get("page"))) || 1);
  const known = [...document.querySelectorAll("#job-tabs [role=tab]")].some((t) => t.dataset.state === state);
  return { state: known ? state : "failed", offset: (page - 1) * PAGE };
}

/** The tab and page shown into the address: a new history entry, or in place (``replace``). */
function remember(replace = false) {
  const q = new URLSearchParams(location.search);
  q.set("state", browser.state);
  if (browser.offset) q.set("page", String(browser.offset / PAGE + 1));
  else q.delete("page");
  const url = `${location.pathname}?${q}${location.hash}`;
  if (url === location.pathname + location.search + location.hash) return;
  if (replace) history.replaceState(history.state, "", url);
  else history.pushState(null, "", url);
}

function showPage(offset) {
  browser.offset = offset;
  remember();
  return renderJobs();
}

/** Show the tab of ``state`` at ``offset``; ``remember`` says how the address learns it
 * ("push", "replace", or null: it came from the address). */
function selectTab(state, { focus = false, offset = 0, remember: how = "push" } = {}) {
  browser.state = state;
  browser.offset = offset;
  browser.shown = "";
  if (how) remember(how === "replace");
  for (const tab of document.querySelectorAll("#job-tabs [role=tab]")) {
    const on = tab.dataset.state === state;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on && focus) tab.focus();
  }
  $("#jobs-panel").setAttribute("aria-labelledby", `tab-${state}`);
  return renderJobs();
}

// Clock times, not "2 min ago": a row stays as it is until the job changes.
const clockTime = (ms) => new Intl.DateTimeFormat(undefined, { timeStyle: "medium" }).format(ms);

function jobWhen(job) {
  if (job.state === "delayed" && job.delayed_until_ms) return `runs again ${clockTime(job.delayed_until_ms)}`;
  if (job.finished_at_ms) return `finished ${clockTime(job.finished_at_ms)}`;
  if (job.processed_at_ms) return `started ${clockTime(job.processed_at_ms)}`;
  return `queued ${clockTime(job.created_at_ms)}`;
}

async function renderJobs() {
  const { state, offset } = browser;
  const page = await api(`${QUEUE}/jobs?state=${state}&offset=${offset}&limit=${PAGE}`);
  if (state !== browser.state || offset !== browser.offset) return; // the tab changed
  // Redrawn only when something changed: a redraw under the keyboard's focus loses it.
  const stamp = JSON.stringify(page.items.map((j) => [j.job_id, j.state, j.attempts_made, j.finished_at_ms, j.delayed_until_ms, j.error]));
  $("#jobs-caption").textContent = `Jobs ${STATE_WORDS[state]}`;
  $("#jobs-range").textContent = page.items.length ? `${offset + 1}–${offset + page.items.length}` : "";
  $("#jobs-prev").disabled = offset === 0;
  $("#jobs-next").disabled = page.next_offset === null;
  $("#jobs-empty").hidden = page.items.length > 0;
  $("#jobs-empty").textContent = `No jobs ${STATE_WORDS[state]}.`;
  if (stamp === browser.shown) return;
  browser.shown = stamp;
  const body = $("#jobs");
  body.replaceChildren();
  for (const job of page.items) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.job_id;
    tr.dataset.state = job.state;
    tr.innerHTML = `
      <td><button type="button" class="link open-job">${esc(job.job_id)}</button></td>
      <td>${job.attempts_made}/${job.attempts}</td>
      <td>${esc(jobWhen(job))}</td>
      <td>${job.error ? `<strong>${esc(job.error.code)}</strong> <span class="pill small">${esc(job.error.category)}</span><br>${esc(job.error.message)}` : ""}</td>
      <td><code class="trace">${esc(job.trace_id || "")}</code></td>
      <td><div class="row-actions"></div></td>`;
    const open = tr.querySelector(".open-job");
    open.setAttribute("aria-label", `Details of job ${job.job_id}`);
    open.addEventListener("click", () => openJob(job.job_id));
    if (job.state === "failed") tr.querySelector(".row-actions").append(...jobActions(job.job_id));
    body.append(tr);
  }
}

function jobActions(jobId) {
  const path = `${QUEUE}/jobs/${encodeURIComponent(jobId)}`;
  return [
    button("Retry", `Retry job ${jobId}`, () => act(`${path}/retry`, "POST", "Job sent back to waiting")),
    button("Remove", `Remove job ${jobId}`, () => act(path, "DELETE", "Job removed"), "danger"),
  ];
}

// --- one job --------------------------------------------------------------------------

async function openJob(jobId, { push = true } = {}) {
  const dialog = $("#job");
  let detail;
  try {
    detail = await api(`${QUEUE}/jobs/${encodeURIComponent(jobId)}`);
  } catch (err) {
    toast(err instanceof ApiError && err.status === 404 ? `No job ${jobId} any more.` : err.message);
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    return;
  }
  if (push) history.pushState({ job: jobId }, "", `#job=${encodeURIComponent(jobId)}`);
  const { job, runs, photo, payload } = detail;
  dialog.dataset.jobId = job.job_id;
  $("#job-title").textContent = `Job ${job.job_id}`;
  const phase = payload?.pipeline?.phase;
  const facts = [
    ["State", STATE_WORDS[job.state] || job.state],
    ["Makes", phase === "ready" ? "the photo ready (thumbnail, preview, metadata)" : phase ? "the photo's optimised copy" : null],
    // The job's own stages: a ready job's payload also lists those its follow-up job runs.
    ["Stages", (detail.stages?.length ? detail.stages : payload?.pipeline?.stages)?.join(", ")],
    ["Attempts", `${job.attempts_made} of ${job.attempts}`],
    ["Queued", moment(job.created_at_ms)],
    ["Started", moment(job.processed_at_ms)],
    ["Finished", moment(job.finished_at_ms)],
    ["Runs again", job.delayed_until_ms ? moment(job.delayed_until_ms) : null],
    ["Trace id", job.trace_id],
    ["Last error", job.error ? `${job.error.code} (${job.error.category}): ${job.error.message}` : null],
  ];
  const dl = $("#job-facts");
  dl.replaceChildren();
  for (const [term, value] of facts) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.dataset.field = term.toLowerCase().replace(" ", "-");
    if (term === "Trace id") dd.innerHTML = `<code>${esc(value)}</code>`;
    else dd.textContent = value;
    dl.append(dt, dd);
  }
  const figure = $("#job-photo");
  figure.hidden = !photo;
  if (photo) {
    const name = photo.filename || `photo ${photo.photo_id.slice(0, 8)}`;
    const img = $("#job-thumb");
    img.hidden = !photo.thumbnail_url;
    if (photo.thumbnail_url) img.src = photo.thumbnail_url;
    img.alt = `Thumbnail of ${name}`;
    $("#job-photo-caption").innerHTML = `<strong>${esc(name)}</strong><br>
      <span class="muted small">${esc(photo.status)}${photo.error ? ` · ${esc(photo.error_category || "")}` : ""} · client ${esc(photo.client_id.slice(0, 8))}</span><br>
      <a href="/photos/${encodeURIComponent(photo.photo_id)}">Open the photo</a>`;
  }
  const actions = $("#job-actions");
  actions.replaceChildren(...(job.state === "failed" ? jobActions(job.job_id) : []));
  $("#job-history").hidden = detail.history_complete;
  const list = $("#job-runs");
  list.replaceChildren();
  for (const run of runs) {
    const li = document.createElement("li");
    li.className = "run";
    li.dataset.outcome = run.outcome;
    const total = run.started_at_ms && run.finished_at_ms ? duration(run.finished_at_ms - run.started_at_ms) : null;
    const longest = Math.max(...run.stages.map((s) => s.ms), 1);
    li.innerHTML = `
      <div><strong>${run.attempt ? `Attempt ${run.attempt}` : "Run"}</strong> · <span class="outcome">${esc(run.outcome)}</span>
        <span class="muted small">${esc(moment(run.started_at_ms))}${total ? ` · ${total}` : ""}</span></div>
      <table class="stages-table"><caption class="visually-hidden">Time per stage</caption>
        <thead><tr><th scope="col">Stage</th><th scope="col">Time</th><th scope="col"><span class="visually-hidden">Share</span></th></tr></thead>
        <tbody>${run.stages
          .map((s) => `<tr data-stage="${esc(s.stage)}"><td>${esc(s.stage)}</td><td>${esc(duration(s.ms))}</td>
            <td class="stage-bar-cell"><meter min="0" max="${longest}" value="${s.ms}" aria-label="${esc(s.stage)}"></meter></td></tr>`)
          .join("")}</tbody></table>
      ${run.error ? `<p class="error"><strong>${esc(run.error.code)}</strong> (${esc(run.error.category)}): ${esc(run.error.message)}</p>` : ""}`;
    list.append(li);
  }
  if (!runs.length) list.innerHTML = `<li class="muted">No run recorded yet.</li>`;
  $("#job-payload").textContent = typeof payload === "string" ? payload : JSON.stringify(payload, null, 2);
  if (!dialog.open) dialog.showModal();
}

function closeJob() {
  const dialog = $("#job");
  if (dialog.open) dialog.close();
}

function jobInHash() {
  const m = /^#job=(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

// --- actions and polling ------------------------------------------------------------

function button(text, label, onClick, kind = "ghost") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `${kind} small`;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    await onClick();
  });
  return b;
}

async function act(path, method, done) {
  try {
    await api(path, { method });
    toast(done);
  } catch (err) {
    toast(err.message);
  }
  closeJob();
  browser.shown = "";
  await refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const data = await api("/v1/dashboard");
    renderCounts(data);
    renderCharts(data);
    renderBus(data);
    await renderJobs();
    $("#updated").textContent = `Updated ${new Date(data.now_ms).toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      // Forget only a dashboard token; the gallery's stays valid for the gallery.
      if (auth.key === ADMIN_KEY) auth.clear();
      showSignIn(
        err.status === 403 ? "That token is not an admin token." : "Sign in again.",
      );
      return;
    }
    $("#updated").textContent = `Update failed: ${err.message}`;
  }
  timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
}

async function start() {
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  const shown = browserInAddress();
  selectTab(shown.state, { offset: shown.offset, remember: null }).catch(() => {});
  await refresh();
  const id = jobInHash();
  if (id && !$("#app").hidden) await openJob(id, { push: false });
}

$("#job-tabs").addEventListener("click", (e) => {
  const tab = e.target.closest("[role=tab]");
  if (tab) selectTab(tab.dataset.state).catch((err) => toast(err.message));
});
// Arrow keys move between tabs, as in any tab list.
$("#job-tabs").addEventListener("keydown", (e) => {
  const tabs = [...document.querySelectorAll("#job-tabs [role=tab]")];
  const at = tabs.findIndex((t) => t.dataset.state === browser.state);
  const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  // In place: arrowing along the tabs is one move, not an entry per tab passed.
  selectTab(tabs[(to + tabs.length) % tabs.length].dataset.state, { focus: true, remember: "replace" });
});
$("#jobs-prev").addEventListener("click", () => showPage(Math.max(0, browser.offset - PAGE)));
$("#jobs-next").addEventListener("click", () => showPage(browser.offset + PAGE));
$("#job-close").addEventListener("click", closeJob);
$("#job").addEventListener("close", () => {
  if (jobInHash()) {
    if (history.state?.job) history.back();
    else history.replaceState(null, "", location.pathname + location.search);
  }
});
window.addEventListener("popstate", () => {
  const shown = browserInAddress();
  if (shown.state !== browser.state || shown.offset !== browser.offset) {
    selectTab(shown.state, { offset: shown.offset, remember: null }).catch((err) => toast(err.message));
  }
  const id = jobInHash();
  if (id) openJob(id, { push: false });
  else closeJob();
});
$("#pause").addEventListener("click", () => act(`${QUEUE}/pause`, "POST", "Queue paused"));
$("#resume").addEventListener("click", () => act(`${QUEUE}/resume`, "POST", "Queue resumed"));
$("#sign-out").addEventListener("click", () => {
  localStorage.removeItem(ADMIN_KEY);
  auth.clear();
  location.reload();
});
$("#sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  auth.use(ADMIN_KEY);
  auth.set($("#token").value.trim());
  $("#token").value = "";
  await start();
});

if (auth.token) start();
else showSignIn();
