// The gallery page: sign in, upload with live progress, browse, view and delete photos.

import { api, auth, ApiError } from "./api.js";
import { Bus } from "./bus.js";
import { PhotoGrid } from "./grid.js";
import { holdScroll } from "./steady.js";
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

const PHOTO_PATH = /^\/photos\/([0-9a-f-]{36})$/;
const photoInPath = () => PHOTO_PATH.exec(location.pathname)?.[1] || null;

// The filters live in the address (?status=…&session=…, on /photos/<id> too), so a reload,
// back/forward and a shared link keep them.
const STATUS = $("#filter-status");
const SESSION = $("#filter-session");

function filtersInAddress() {
  const q = new URLSearchParams(location.search);
  const status = q.get("status") || "";
  const session = q.get("session") || "";
  return {
    status: [...STATUS.options].some((o) => o.value === status) ? status : "",
    session_id: /^[0-9a-f-]{36}$/.test(session) ? session : "",
  };
}

function addressWith(filters) {
  const q = new URLSearchParams(location.search);
  for (const [name, value] of [["status", filters.status], ["session", filters.session_id]]) {
    if (value) q.set(name, value);
    else q.delete(name);
  }
  const query = q.toString();
  return `${location.pathname}${query ? `?${query}` : ""}`;
}

// history.back() is asynchronous: the promise of its popstate while one is on its way.
let goingBack = null;
function goBack() {
  goingBack = new Promise((resolve) => {
    addEventListener("popstate", () => {
      goingBack = null;
      resolve();
    }, { once: true });
  });
  history.back();
}

/** The address's filters on the form and the grid (reloaded only if they changed). */
function applyAddressFilters(grid) {
  const filters = filtersInAddress();
  if (filters.session_id) grid.addSession(filters.session_id);
  STATUS.value = filters.status;
  SESSION.value = filters.session_id;
  const same = (grid.params.status || "") === filters.status && (grid.params.session_id || "") === filters.session_id;
  return same && grid.generation ? Promise.resolve() : grid.filter(filters);
}

/** Select several photos (the Select button, then tiles), delete them in one go. */
function selecting(grid) {
  const toggle = $("#select-toggle");
  const bar = $("#selection-bar");
  const set = (on) => {
    grid.select(on);
    toggle.setAttribute("aria-pressed", String(on));
    bar.hidden = !on;
  };
  toggle.addEventListener("click", () => set(!grid.selecting));
  $("#selection-cancel").addEventListener("click", () => {
    set(false);
    toggle.focus();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && grid.selecting && !$("#viewer").open) set(false);
  });
  $("#selection-delete").addEventListener("click", async () => {
    const ids = [...grid.selected];
    const what = ids.length === 1 ? "this photo" : `these ${ids.length} photos`;
    if (!ids.length || !confirm(`Delete ${what} and all their renditions?`)) return;
    const failures = [];
    // A few at a time: the api's rate limit is per client.
    for (let i = 0; i < ids.length; i += 4) {
      await Promise.all(
        ids.slice(i, i + 4).map(async (id) => {
          try {
            await api(`/v1/photos/${id}`, { method: "DELETE" });
          } catch (err) {
            if (!(err instanceof ApiError && err.status === 404)) {
              failures.push(err.message);
              return;
            }
          }
          grid.remove(id);
        }),
      );
    }
    const done = ids.length - failures.length;
    toast(failures.length ? `Deleted ${done} of ${ids.length}: ${failures[0]}` : `Deleted ${done} photo${done === 1 ? "" : "s"}`);
    if (!failures.length) set(false);
  });
}

async function start() {
  const config = await api("/v1/config");
  const bus = new Bus(config.bus_url, auth.token);
  busStatus(bus);
  // Names the files were uploaded under in this tab, for photos the api names no file for.
  const names = new Map();
  const grid = new PhotoGrid($("#grid"), {
    empty: $("#grid-empty"),
    end: $("#grid-end"),
    sentinel: $("#sentinel"),
    sessionSelect: $("#filter-session"),
    names,
    onOpen: (photo) => openPhoto(photo),
    // With photos to show (or a filter hiding them), the drop zone shrinks to its button.
    onCount: (n, filtered) => $("#drop").classList.toggle("compact", n > 0 || filtered),
    onSelect: (n) => {
      $("#selection-count").textContent = `${n} selected`;
      $("#selection-delete").disabled = n === 0;
    },
  });
  selecting(grid);
  holdScroll($("#grid"));
  // A photo open in the view has its own address, /photos/<id>: back closes it, forward
  // opens it again, a reload or a shared link opens it at once.
  const title = document.title;
  // A close the address asked for (going back) must not move the address again when its
  // event comes after the address moved on (going forward at once).
  let closingForAddress = false;
  function openPhoto(photo, { replace = false } = {}) {
    const path = `/photos/${photo.photo_id}`;
    if (location.pathname !== path) {
      const url = path + location.search; // the filters it was opened under
      if (replace || photoInPath()) history.replaceState({ photo: photo.photo_id, pushed: history.state?.pushed }, "", url);
      else history.pushState({ photo: photo.photo_id, pushed: true }, "", url);
    }
    closingForAddress = false;
    viewer.open(photo);
  }
  async function openFromPath() {
    const id = photoInPath();
    if (!id) {
      if (viewer.isOpen) closingForAddress = true;
      viewer.close();
      return;
    }
    try {
      const photo = await api(`/v1/photos/${id}`);
      closingForAddress = false;
      viewer.open(photo);
    } catch (err) {
      history.replaceState(null, "", `/${location.search}`);
      toast(err instanceof ApiError && err.status === 404 ? "That photo is not here (deleted, or another account's)." : err.message);
    }
  }
  const viewer = new Viewer($("#viewer"), {
    onDeleted: (id) => {
      grid.remove(id);
      toast("Photo deleted");
    },
    onChanged: (photo) => grid.upsert(photo),
    onStep: (photo) => openPhoto(photo, { replace: true }),
    step: (id, delta, options) => grid.step(id, delta, options),
    nameOf: (id) => names.get(id),
    onClosed: () => {
      document.title = title;
      if (closingForAddress || !photoInPath()) {
        closingForAddress = false;
        return; // closed by going back
      }
      // Opened from the grid: go back to it; opened from a link: the gallery's address.
      if (history.state?.pushed) goBack();
      else history.replaceState(null, "", `/${location.search}`);
      // After the dialog's own focus restore (to the tile it opened from), which may come
      // later than this event: the focus goes to the tile of the photo last shown.
      const last = viewer.lastId;
      setTimeout(() => grid.focus(last), 0);
    },
  });
  window.addEventListener("popstate", () => {
    applyAddressFilters(grid);
    openFromPath();
  });
  const uploads = new Uploads($("#uploads"), bus, {
    onDone: (photo, name) => {
      names.set(photo.photo_id, name);
      grid.upsert(photo);
    },
    newSession: async () => {
      const s = await api("/v1/sessions", { method: "POST" });
      grid.addSession(s.session_id);
      return s.session_id;
    },
  });
  bus.addEventListener("photo", (e) => {
    uploads.handle(e.detail);
    grid.handle(e.detail);
    // Open here, deleted on another device: the view shows nothing that exists any more.
    if (e.detail.event === "photo.deleted" && viewer.photo?.photo_id === e.detail.photo_id) {
      viewer.close();
      toast("That photo was deleted on another device.");
    }
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

  $("#filters").addEventListener("change", async () => {
    const form = new FormData($("#filters"));
    const filters = { status: form.get("status"), session_id: form.get("session_id") };
    // A back from the photo view still on its way would land after this entry and put
    // the address's older filters back: this change waits for it.
    if (goingBack) {
      await goingBack;
      STATUS.value = filters.status;
      SESSION.value = filters.session_id;
    }
    history.pushState(null, "", addressWith(filters));
    grid.filter(filters);
  });
  // Shown only now that every control is wired: a file picked earlier would be lost.
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  await Promise.all([applyAddressFilters(grid), openFromPath()]);
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
