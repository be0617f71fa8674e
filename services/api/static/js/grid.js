// The photo grid: newest first, infinite scroll over the cursor API, filters, and
// ThumbHash placeholders that give way to the real thumbnails as they load.

import { api, esc } from "./api.js";
import { thumbHashDataURL } from "./thumbhash.js";
import { formatMoment } from "./format.js";
import { photoName } from "./photo.js";

// Photos per page of the cursor API; `?page=N` in the address overrides it (1..100).
// Events after which a tile shows something new.
const REFRESHING_EVENTS = new Set([
  "photo.processing.completed",
  "photo.processing.failed",
  "photo.processing.deferred.completed",
]);
const PAGE = Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("page")) || 30));

export class PhotoGrid {
  constructor(list, { empty, end, sentinel, sessionSelect, names, onOpen, onCount = () => {} }) {
    this.list = list;
    this.empty = empty;
    this.end = end;
    this.sessionSelect = sessionSelect;
    this.onOpen = onOpen;
    this.onCount = onCount;
    this.names = names;
    this.photos = new Map();
    this.params = {};
    this.cursor = null;
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
    this.list.replaceChildren();
    this.photos.clear();
    this.cursor = null;
    this.exhausted = false;
    this.loading = false;
    await this.more();
  }

  async more() {
    if (this.loading || this.exhausted) return;
    this.loading = true;
    const generation = this.generation;
    const query = new URLSearchParams({ limit: String(PAGE), ...this.params });
    if (this.cursor) query.set("cursor", this.cursor);
    try {
      const page = await api(`/v1/photos?${query}`);
      if (generation !== this.generation) return; // a filter changed meanwhile
      for (const photo of page.items) this.upsert(photo);
      this.cursor = page.next_cursor;
      this.exhausted = !page.next_cursor;
      this.end.textContent = this.exhausted && this.photos.size ? `${this.photos.size} photos` : "";
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

  upsert(photo, { prepend = false } = {}) {
    if (photo.session_id) this.addSession(photo.session_id);
    if (!this.matches(photo)) {
      this.remove(photo.photo_id);
      return;
    }
    const old = this.photos.get(photo.photo_id);
    const li = this.tile(photo);
    this.photos.set(photo.photo_id, { photo, li });
    if (old) old.li.replaceWith(li);
    else if (prepend) this.insertByDate(li, photo);
    else this.list.append(li);
    this.counted();
  }

  /** Photos finish in any order; keep the grid newest-uploaded first, as pages list it. */
  insertByDate(li, photo) {
    const key = `${photo.uploaded_at} ${photo.photo_id}`;
    for (const other of this.list.children) {
      if (`${other.dataset.uploadedAt} ${other.dataset.photoId}` < key) {
        other.before(li);
        return;
      }
    }
    this.list.append(li);
  }

  remove(photoId) {
    const entry = this.photos.get(photoId);
    if (!entry) return;
    entry.li.remove();
    this.photos.delete(photoId);
    this.counted();
  }

  counted() {
    this.empty.hidden = this.photos.size > 0;
    this.onCount(this.photos.size, Object.keys(this.params).length > 0);
  }

  /** Completion events for photos uploaded elsewhere (another tab) refresh their tile, and
   * so does the follow-up job's (the optimised copy appears). */
  async handle(event) {
    if (!REFRESHING_EVENTS.has(event.event)) return;
    if (!this.photos.has(event.photo_id)) return;
    try {
      this.upsert(await api(`/v1/photos/${event.photo_id}`));
    } catch {
      // the tile stays as it was
    }
  }

  /** The photo ``delta`` places from ``photoId`` in the grid's order, paging on at the
   * end; with ``peek``, only whether there is one (true when more pages may hold it). */
  async step(photoId, delta, { peek = false } = {}) {
    const order = () => [...this.list.querySelectorAll(".tile")].map((li) => li.dataset.photoId);
    let ids = order();
    const at = ids.indexOf(photoId);
    if (at < 0) return null;
    while (at + delta >= ids.length && !this.exhausted) {
      if (peek) return true;
      await this.more();
      ids = order();
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
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile-button";
    button.setAttribute("aria-label", `Open ${name}${photo.status === "failed" ? " (failed)" : ""}`);
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
    button.append(frame);
    const caption = document.createElement("span");
    caption.className = "tile-caption";
    caption.textContent = name;
    button.append(caption);
    button.addEventListener("click", () => this.onOpen(photo));
    li.append(button);
    return li;
  }
}
