// The gallery page: sign in, upload with live progress, browse, view and delete photos.

import { api, auth, ApiError } from "./api.js";
import { Bus } from "./bus.js";
import { PhotoGrid } from "./grid.js";
import { Uploads } from "./uploads.js";
import { Viewer } from "./viewer.js";

const $ = (sel) => document.querySelector(sel);

export function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("show"), 4000);
}

function showSignIn(message = "") {
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#bus-status").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#token").focus();
}

async function signIn(token) {
  auth.set(token);
  try {
    await api("/v1/photos?limit=1");
  } catch (err) {
    auth.clear();
    throw err;
  }
}

function busStatus(bus) {
  const el = $("#bus-status");
  const labels = {
    connecting: "Connecting…",
    open: "Live",
    reconnecting: "Reconnecting…",
    rejected: "Live updates refused",
    closed: "Offline",
  };
  bus.addEventListener("state", (e) => {
    el.hidden = false;
    el.textContent = labels[e.detail.state] || e.detail.state;
    el.dataset.state = e.detail.state;
  });
}

async function start() {
  const config = await api("/v1/config");
  const bus = new Bus(config.bus_url, auth.token);
  busStatus(bus);
  const grid = new PhotoGrid($("#grid"), {
    empty: $("#grid-empty"),
    end: $("#grid-end"),
    sentinel: $("#sentinel"),
    sessionSelect: $("#filter-session"),
    onOpen: (photo) => viewer.open(photo),
    // With photos to show (or a filter hiding them), the drop zone shrinks to its button.
    onCount: (n, filtered) => $("#drop").classList.toggle("compact", n > 0 || filtered),
  });
  const viewer = new Viewer($("#viewer"), {
    onDeleted: (id) => {
      grid.remove(id);
      toast("Photo deleted");
    },
    onChanged: (photo) => grid.upsert(photo),
  });
  const uploads = new Uploads($("#uploads"), bus, {
    onDone: (photo) => grid.upsert(photo, { prepend: true }),
    newSession: async () => {
      const s = await api("/v1/sessions", { method: "POST" });
      grid.addSession(s.session_id);
      return s.session_id;
    },
  });
  bus.addEventListener("photo", (e) => {
    uploads.handle(e.detail);
    grid.handle(e.detail);
  });
  bus.start();

  const input = $("#file-input");
  input.addEventListener("change", () => {
    uploads.add([...input.files]);
    input.value = "";
  });
  // Files dropped anywhere on the page upload; the zone only says where while it is big.
  const drop = $("#drop");
  let depth = 0;
  const dragging = (on) => {
    document.body.classList.toggle("dragging", on);
    drop.classList.toggle("over", on);
  };
  document.addEventListener("dragenter", (e) => {
    e.preventDefault();
    depth += 1;
    dragging(true);
  });
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    dragging(true);
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) dragging(false);
  });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    dragging(false);
    const files = [...e.dataTransfer.files].filter((f) => f.size > 0);
    if (files.length) uploads.add(files);
  });

  $("#filters").addEventListener("change", () => {
    const form = new FormData($("#filters"));
    grid.filter({ status: form.get("status"), session_id: form.get("session_id") });
  });
  // Shown only now that every control is wired: a file picked earlier would be lost.
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  await grid.reload();
}

$("#sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("#token").value.trim();
  try {
    await signIn(token);
    $("#token").value = "";
    await start();
  } catch (err) {
    showSignIn(err instanceof ApiError && err.status === 401 ? "That token is not valid." : err.message);
  }
});

$("#sign-out").addEventListener("click", () => {
  auth.clear();
  location.reload();
});

if (auth.token) {
  start().catch((err) => {
    if (err instanceof ApiError && err.status === 401) {
      auth.clear();
      showSignIn("Your token is no longer valid; sign in again.");
    } else {
      toast(err.message);
    }
  });
} else {
  showSignIn();
}
