// The queue dashboard: live counts, throughput and stage-time charts, failed jobs with
// retry and remove, pause and resume, and the bus processes. Polls one admin endpoint.

import { api, auth, ApiError, esc } from "./api.js";
import { barChart, lineChart } from "./chart.js";

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;
const QUEUE = "/v1/queues/photo-processing";
// An operator's token lives under its own key, so signing in here never signs the
// gallery out; without one, the gallery's token is tried (it may be an admin's).
const ADMIN_KEY = "filmstrip.adminToken";
if (localStorage.getItem(ADMIN_KEY)) auth.use(ADMIN_KEY);
let timer = null;

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

function renderCounts(data) {
  $("#queue-name").textContent = data.queue;
  for (const [state, value] of Object.entries(data.counts)) {
    const dd = document.querySelector(`.count[data-state="${state}"] dd`);
    if (dd) dd.textContent = state === "paused" ? (value ? "yes" : "no") : String(value);
  }
  const pill = $("#paused-state");
  pill.textContent = data.paused ? "Paused" : "Running";
  pill.dataset.state = data.paused ? "reconnecting" : "open";
  $("#pause").disabled = data.paused;
  $("#resume").disabled = !data.paused;
}

function renderCharts(data) {
  const t = data.throughput;
  barChart($("#throughput-chart"), {
    completed: t.completed,
    failed: t.failed,
    label: `Jobs finished per minute over the last hour: ${t.completed.reduce((a, b) => a + b, 0)} completed, ${t.failed.reduce((a, b) => a + b, 0)} failed`,
  });
  lineChart($("#stages-chart"), {
    series: data.stages.map((s) => ({
      name: s.stage,
      values: s.mean_ms.map((v, i) => (s.runs[i] ? v : null)),
    })),
    label: "Mean processing time per stage per minute",
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

async function renderFailed(now) {
  const [failed, delayed] = await Promise.all([
    api(`${QUEUE}/jobs?state=failed&limit=50`),
    api(`${QUEUE}/jobs?state=delayed&limit=50`),
  ]);
  const jobs = [...failed.items, ...delayed.items.filter((j) => j.error)];
  const body = $("#failed-jobs");
  body.replaceChildren();
  for (const job of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.job_id;
    tr.dataset.state = job.state;
    const when = job.finished_at_ms || job.created_at_ms;
    tr.innerHTML = `
      <td><code>${esc(job.job_id)}</code>${job.state === "delayed" ? ' <span class="pill">retrying</span>' : ""}</td>
      <td><strong>${esc(job.error?.code)}</strong><br>${esc(job.error?.message)}</td>
      <td>${esc(job.error?.category)}</td>
      <td>${job.attempts_made}/${job.attempts}</td>
      <td><code>${esc(job.trace_id || "")}</code></td>
      <td>${when ? ago(when, now) : ""}</td>
      <td><div class="row-actions"></div></td>`;
    if (job.state === "failed") {
      const actions = tr.querySelector(".row-actions");
      actions.append(
        button("Retry", `Retry job ${job.job_id}`, () => act(`${QUEUE}/jobs/${encodeURIComponent(job.job_id)}/retry`, "POST", "Job sent back to waiting")),
        button("Remove", `Remove job ${job.job_id}`, () => act(`${QUEUE}/jobs/${encodeURIComponent(job.job_id)}`, "DELETE", "Job removed"), "danger"),
      );
    }
    body.append(tr);
  }
  $("#failed-empty").hidden = jobs.length > 0;
}

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
  await refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const data = await api("/v1/dashboard");
    renderCounts(data);
    renderCharts(data);
    renderBus(data);
    await renderFailed(data.now_ms);
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
  await refresh();
}

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
