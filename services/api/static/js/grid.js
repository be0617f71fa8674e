// The timeline: photos grouped by the day they were taken (or, without a date taken, the
// day they were uploaded, labelled so), newest first, in the listing's keyset pages by date
// taken; filters; selecting several to delete; ThumbHash placeholders that give way to the
// thumbnails as they load.

import { api, esc } from "./api.js";
import { formatMoment, photoDay } from "./format.js";
import { photoName } from "./photo.js";
import { thumbHashDataURL } from "./thumbhash.js";

// Events after which a tile shows something new.
const REFRESHING_EVENTS = new Set([
  "photo.processing.completed",
  "photo.processing.failed",
  "photo.processing.deferred.completed",
]);
// Photos per page of the cursor API; `?page=N` in the address overrides it (1..100).
const PAGE = Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("page")) || 30));

/** The listing's order under sort=taken, as a comparable tuple: dated photos first, by
 * date taken, then undated ones by upload time; the id breaks ties (all descending). */
function sortKey(photo) {
  const taken = photo.metadata?.exif?.taken_at;
  return taken ? [1, taken, photo.photo_id] : [0, photo.uploaded_at, photo.photo_id];
}

/** >0 when ``a`` comes before ``b`` in the timeline. */
function compare(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] > b[i] ? 1 : -1;
  }
  return 0;
}

export class PhotoGrid {
  constructor(root, { empty, end, sentinel, sessionSelect, names, onOpen, onCount = () => {}, onSelect = () => {} }) {
    this.root = root;
    this.empty = empty;
    this.end = end;
    this.sessionSelect = sessionSelect;
    this.names = names;
    this.onOpen = onOpen;
    this.onCount = onCount;
    this.onSelect = onSelect;
    this.photos = new Map(); // photo_id -> {photo, li, key}
    this.selected = new Set();
    this.selecting = false;
    this.params = {};
    this.cursor = null;
    this.last = null; // the key of the last photo the pages have served
    this.loading = false;
    this.exhausted = false;
    this.generation = 0;
    this.sessions = new Set();
    this.nearEnd = false;
    new IntersectionObserver((entries) => {
      this.nearEnd = entries[entries.length - 1].isIntersecting;
      if (this.nearEnd) this.more();
    }, { rootMargin: "400px" }).observe(sentinel);
  }

  filter(params) {
    this.params = Object.fromEntries(Object.entries(params).filter(([, v]) => v));
    return this.reload();
  }

  async reload() {
    this.generation += 1;
    this.root.replaceChildren();
    this.photos.clear();
    this.clearSelection();
    this.cursor = null;
    this.last = null;
    this.exhausted = false;
    this.loading = false;
    await this.more();
  }

  async more() {
    if (this.loading || this.exhausted) return;
    this.loading = true;
    const generation = this.generation;
    const query = new URLSearchParams({ limit: String(PAGE), sort: "taken", ...this.params });
    if (this.cursor) query.set("cursor", this.cursor);
    try {
      const page = await api(`/v1/photos?${query}`);
      if (generation !== this.generation) return; // a filter changed meanwhile
      if (page.items.length) this.last = sortKey(page.items[page.items.length - 1]);
      this.cursor = page.next_cursor;
      this.exhausted = !page.next_cursor;
      for (const photo of page.items) this.upsert(photo);
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    this.counted();
    // The observer only reports changes: if a page did not push the sentinel out of
    // reach (a tall window, a short page), nothing would ever ask for the next one.
    if (this.nearEnd && !this.exhausted && generation === this.generation) {
      requestAnimationFrame(() => this.more());
    }
  }

  matches(photo) {
    const { status, session_id: session } = this.params;
    return (!status || photo.status === status) && (!session || photo.session_id === session);
  }

  /** Show ``photo`` where the listing has it: a new upload joins its day; one that sorts
   * past the pages served so far waits for its page (shown once, never twice). */
  upsert(photo) {
    if (photo.session_id) this.addSession(photo.session_id);
    if (!this.matches(photo)) {
      this.remove(photo.photo_id);
      return;
    }
    const key = sortKey(photo);
    const old = this.photos.get(photo.photo_id);
    if (!old && !this.exhausted && (!this.last || compare(key, this.last) < 0)) return;
    const li = this.tile(photo);
    if (old && compare(old.key, key) === 0) {
      old.li.replaceWith(li);
    } else {
      if (old) this.detach(old.li);
      this.place(li, photo, key);
    }
    this.photos.set(photo.photo_id, { photo, li, key });
    this.counted();
  }

  place(li, photo, key) {
    const day = photoDay(photo);
    let section = this.root.querySelector(`section.day[data-day="${day.key}"]`);
    if (!section) {
      section = document.createElement("section");
      section.className = "day";
      section.dataset.day = day.key;
      section.dataset.kind = day.taken ? "taken" : "uploaded";
      const id = `day-${day.key}`;
      section.setAttribute("aria-labelledby", id);
      section.innerHTML = `<h3 class="day-head" id="${id}">${esc(day.label)}</h3><ul class="grid"></ul>`;
      // Days in the listing's order: taken days newest first, then upload days.
      const rank = (s) => [s.dataset.kind === "taken" ? 1 : 0, s.dataset.day.slice(1)];
      const mine = rank(section);
      const after = [...this.root.children].find((s) => compare(mine, rank(s)) > 0);
      this.root.insertBefore(section, after || null);
    }
    const list = section.querySelector("ul");
    const before = [...list.children].find((other) => compare(key, this.photos.get(other.dataset.photoId).key) > 0);
    list.insertBefore(li, before || null);
  }

  detach(li) {
    const section = li.closest("section.day");
    li.remove();
    if (section && !section.querySelector(".tile")) section.remove();
  }

  remove(photoId) {
    const entry = this.photos.get(photoId);
    if (!entry) return;
    this.detach(entry.li);
    this.photos.delete(photoId);
    if (this.selected.delete(photoId)) this.onSelect(this.selected.size);
    this.counted();
  }

  counted() {
    this.empty.hidden = this.photos.size > 0;
    this.end.textContent = this.exhausted && this.photos.size ? `${this.photos.size} photos` : "";
    this.onCount(this.photos.size, Object.keys(this.params).length > 0);
  }

  /** Completion events for photos uploaded elsewhere (another tab) refresh their tile, and
   * so does the follow-up job's (the optimised copy appears); a photo deleted elsewhere
   * leaves the grid. */
  async handle(event) {
    if (event.event === "photo.deleted") {
      this.remove(event.photo_id);
      return;
    }
    if (!REFRESHING_EVENTS.has(event.event)) return;
    if (!this.photos.has(event.photo_id)) return;
    try {
      const photo = await api(`/v1/photos/${event.photo_id}`);
      // Deleted (photo.deleted) while this was asked: it stays gone.
      if (this.photos.has(event.photo_id)) this.upsert(photo);
    } catch {
      // the tile stays as it was
    }
  }

  /** The ids in the order shown. */
  order() {
    return [...this.root.querySelectorAll(".tile")].map((li) => li.dataset.photoId);
  }

  /** The photo ``delta`` places from ``photoId`` in the grid's order, paging on at the
   * end; with ``peek``, only whether there is one (true when more pages may hold it). */
  async step(photoId, delta, { peek = false } = {}) {
    let ids = this.order();
    const at = ids.indexOf(photoId);
    if (at < 0) return null;
    while (at + delta >= ids.length && !this.exhausted) {
      if (peek) return true;
      await this.more();
      ids = this.order();
      if (this.loading) break;
    }
    const id = ids[at + delta];
    if (!id) return null;
    return peek ? true : this.photos.get(id).photo;
  }

  /** Keyboard focus back on a photo's tile (after its view closes). */
  focus(photoId) {
    this.photos.get(photoId)?.li.querySelector("button")?.focus();
  }

  // --- selecting several ----------------------------------------------------------------

  select(on) {
    this.selecting = on;
    this.root.classList.toggle("selecting", on);
    if (!on) this.clearSelection();
    for (const { photo, li } of this.photos.values()) this.label(li, photo);
  }

  clearSelection() {
    this.selected.clear();
    for (const li of this.root.querySelectorAll(".tile.selected")) {
      li.classList.remove("selected");
      li.querySelector("button").setAttribute("aria-pressed", "false");
    }
    this.onSelect(0);
  }

  toggle(photoId) {
    const entry = this.photos.get(photoId);
    if (!entry) return;
    const on = !this.selected.has(photoId);
    if (on) this.selected.add(photoId);
    else this.selected.delete(photoId);
    entry.li.classList.toggle("selected", on);
    entry.li.querySelector("button").setAttribute("aria-pressed", String(on));
    this.onSelect(this.selected.size);
  }

  label(li, photo) {
    const button = li.querySelector("button");
    const name = li.dataset.name;
    if (this.selecting) {
      button.setAttribute("aria-label", `Select ${name}`);
      button.setAttribute("aria-pressed", String(this.selected.has(photo.photo_id)));
    } else {
      button.setAttribute("aria-label", `Open ${name}${photo.status === "failed" ? " (failed)" : ""}`);
      button.removeAttribute("aria-pressed");
    }
  }

  addSession(sessionId) {
    if (this.sessions.has(sessionId)) return;
    this.sessions.add(sessionId);
    const option = document.createElement("option");
    option.value = sessionId;
    option.textContent = `Session ${sessionId.slice(0, 8)}`;
    this.sessionSelect.append(option);
  }

  tile(photo) {
    const li = document.createElement("li");
    li.className = "tile";
    li.dataset.photoId = photo.photo_id;
    li.dataset.status = photo.status;
    li.dataset.uploadedAt = photo.uploaded_at;
    const meta = photo.metadata || {};
    const name = photoName(photo, this.names.get(photo.photo_id)) || formatMoment(photo.uploaded_at);
    li.dataset.name = name;
    if (this.selected.has(photo.photo_id)) li.classList.add("selected");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile-button";
    button.title = name;
    const placeholder = thumbHashDataURL(meta.thumbhash);
    const thumb = photo.derivatives.find((d) => d.name === "thumbnail");
    const frame = document.createElement("div");
    frame.className = "tile-frame";
    if (placeholder) frame.style.backgroundImage = `url("${placeholder}")`;
    if (thumb) {
      const img = document.createElement("img");
      img.alt = "";
      img.loading = "lazy";
      img.decoding = "async";
      img.className = "tile-img";
      img.addEventListener("load", () => img.classList.add("loaded"));
      img.src = thumb.url;
      frame.append(img);
    } else {
      frame.insertAdjacentHTML(
        "beforeend",
        photo.status === "failed"
          ? `<span class="tile-state"><span aria-hidden="true">⚠</span> Couldn’t process</span>`
          : `<span class="tile-state">${esc(photo.status)}…</span>`,
      );
    }
    frame.insertAdjacentHTML("beforeend", `<span class="tile-check" aria-hidden="true">✓</span>`);
    button.append(frame);
    const caption = document.createElement("span");
    caption.className = "tile-caption";
    caption.textContent = name;
    button.append(caption);
    button.addEventListener("click", () => {
      if (this.selecting) this.toggle(photo.photo_id);
      else this.onOpen(this.photos.get(photo.photo_id)?.photo || photo);
    });
    li.append(button);
    this.label(li, photo);
    return li;
  }
}
