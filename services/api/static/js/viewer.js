// The photo view: the preview fitted to the screen or the original at its own pixels,
// previous / next (buttons, arrow keys, a swipe), the facts in the reader's language, and
// download, retry (only when it can help) and delete.

import { api, ApiError } from "./api.js";
import { formatBytes, formatCoordinates, formatExposure, formatMoment, formatName, formatTaken, mapLink } from "./format.js";
import { failureText, photoFailure, photoName, SHOWABLE } from "./photo.js";

const SWIPE_PX = 50;

export function exifRows(photo, filename) {
  const meta = photo.metadata || {};
  const exif = meta.exif || {};
  // Many makers repeat their name in the model ("Canon" + "Canon EOS 7D").
  const camera =
    exif.make && exif.model && !exif.model.toLowerCase().startsWith(exif.make.split(" ")[0].toLowerCase())
      ? `${exif.make} ${exif.model}`
      : exif.model || exif.make;
  const gps = exif.gps && Number.isFinite(exif.gps.lat) && Number.isFinite(exif.gps.lon) ? exif.gps : null;
  return [
    ["File", filename],
    ["Taken", exif.taken_at ? formatTaken(exif.taken_at) : null],
    ["Camera", camera],
    ["Lens", exif.lens],
    ["Exposure", formatExposure(exif)],
    ["Location", gps ? { text: formatCoordinates(gps), href: mapLink(gps) } : null],
    ["Dimensions", meta.width ? `${meta.width} × ${meta.height}` : null],
    ["Format", formatName(meta.format)],
    ["Size", formatBytes(photo.bytes)],
    ["Uploaded", formatMoment(photo.uploaded_at)],
  ].filter(([, value]) => value);
}

export class Viewer {
  constructor(dialog, { onDeleted, onChanged, onClosed, onStep, step, nameOf }) {
    this.dialog = dialog;
    this.onDeleted = onDeleted;
    this.onChanged = onChanged;
    this.onClosed = onClosed;
    this.onStep = onStep; // a neighbour was asked for: show it (and say so in the address)
    this.step = step; // (photo_id, ±1) => the neighbour photo or null
    this.nameOf = nameOf;
    this.photo = null;
    this.zoomed = false;
    this.q = (sel) => dialog.querySelector(sel);
    this.img = this.q("#viewer-img");
    this.stage = this.q("#viewer-stage");
    this.q("#viewer-close").addEventListener("click", () => dialog.close());
    this.q("#viewer-delete").addEventListener("click", () => this.delete());
    this.q("#viewer-retry").addEventListener("click", () => this.retry());
    this.q("#viewer-prev").addEventListener("click", () => this.go(-1));
    this.q("#viewer-next").addEventListener("click", () => this.go(1));
    this.q("#viewer-zoom").addEventListener("click", () => this.zoom(!this.zoomed));
    this.img.addEventListener("dblclick", () => this.zoom(!this.zoomed));
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
    dialog.addEventListener("close", () => {
      // The event comes a task after close(): a view opened again meanwhile (back, then
      // forward, on a busy page) is not closed by it.
      if (dialog.open) return;
      this.lastId = this.photo?.photo_id;
      this.zoom(false);
      this.photo = null;
      this.onClosed();
    });
    // On the document: a button that became disabled under the focus leaves it on <body>.
    document.addEventListener("keydown", (e) => {
      if (!dialog.open || e.target.closest?.("input, select, textarea") || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === "ArrowLeft") this.go(-1);
      else if (e.key === "ArrowRight") this.go(1);
      else if (e.key === "z" || e.key === "+" || e.key === "-") this.zoom(e.key === "z" ? !this.zoomed : e.key === "+");
      else return;
      e.preventDefault();
    });
    this.swipes();
  }

  /** A horizontal swipe on the picture (fitted, not zoomed) shows the neighbour. */
  swipes() {
    let start = null;
    this.stage.addEventListener("pointerdown", (e) => {
      start = this.zoomed || !e.isPrimary ? null : { x: e.clientX, y: e.clientY };
    });
    this.stage.addEventListener("pointerup", (e) => {
      if (!start) return;
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      start = null;
      if (Math.abs(dx) >= SWIPE_PX && Math.abs(dy) < Math.abs(dx) * 0.6) this.go(dx < 0 ? 1 : -1);
    });
    this.stage.addEventListener("pointercancel", () => {
      start = null;
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  async open(photo) {
    this.show(photo);
    if (!this.dialog.open) this.dialog.showModal();
    try {
      const fresh = await api(`/v1/photos/${photo.photo_id}`); // fresh signed URLs and status
      if (this.photo?.photo_id === fresh.photo_id) this.show(fresh);
    } catch {
      // keep what the grid had
    }
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  async go(delta) {
    if (!this.photo) return;
    const next = await this.step(this.photo.photo_id, delta);
    if (next) this.onStep(next);
  }

  show(photo) {
    const same = this.photo?.photo_id === photo.photo_id;
    if (!same) this.zoom(false);
    this.photo = photo;
    this.dialog.dataset.photoId = photo.photo_id;
    this.dialog.dataset.status = photo.status;
    const name = photoName(photo, this.nameOf(photo.photo_id));
    const failure = photoFailure(photo);
    const preview = photo.derivatives.find((d) => d.name === "preview");
    const img = this.img;
    if (preview && !this.zoomed) img.src = preview.url;
    img.hidden = !preview;
    img.alt = name ? `Photo ${name}` : "Photo";
    this.q("#viewer-title").textContent = name || "Photo";
    const empty = this.q("#viewer-empty");
    empty.hidden = Boolean(preview);
    empty.dataset.state = photo.status;
    this.q("#viewer-empty-title").textContent = failure
      ? "This photo could not be processed"
      : "Still being processed…";
    const reason = this.q("#viewer-reason");
    reason.textContent = failure ? failureText(failure) : "";
    reason.hidden = !failure;
    this.q("#viewer-zoom").hidden = !preview || !this.fullSource();

    const dl = this.q("#viewer-exif");
    dl.replaceChildren();
    for (const [term, value] of exifRows(photo, photo.filename || this.nameOf(photo.photo_id))) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.dataset.field = term.toLowerCase();
      if (value.href) {
        const a = document.createElement("a");
        a.href = value.href;
        a.textContent = value.text;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        a.setAttribute("aria-label", `${value.text} on OpenStreetMap (opens a new tab)`);
        dd.append(a);
      } else {
        dd.textContent = value;
      }
      dl.append(dt, dd);
    }
    this.q("#viewer-download").href = photo.original_url;
    // The optimised copy comes from the follow-up job, after the photo is ready: reopening
    // the view shows it once it exists.
    const smaller = photo.derivatives.find((d) => d.name.startsWith("optimized"));
    const link = this.q("#viewer-optimized");
    link.hidden = !smaller;
    if (smaller) {
      link.href = smaller.url;
      const format = smaller.content_type.split("/")[1].toUpperCase();
      const saved = Math.round(100 * (1 - smaller.bytes / photo.bytes));
      link.textContent = `Download smaller copy (${format}, ${saved}% smaller)`;
    }
    this.q("#viewer-retry").hidden = !failure?.retryable;
    if (!same) this.q("#viewer-error").textContent = "";
    document.title = `${name || "Photo"} · Filmstrip`;
    this.neighbours();
  }

  async neighbours() {
    const id = this.photo.photo_id;
    for (const [sel, delta] of [["#viewer-prev", -1], ["#viewer-next", 1]]) {
      const has = Boolean(await this.step(id, delta, { peek: true }));
      if (this.photo?.photo_id !== id) return;
      const button = this.q(sel);
      if (!has && document.activeElement === button) this.q("#viewer-close").focus();
      button.disabled = !has;
    }
  }

  /** The picture at its own pixels: the original when a browser can draw it, else a
   * derivative of the same size. */
  fullSource() {
    const photo = this.photo;
    if (!photo || !photo.metadata?.width) return null;
    if (SHOWABLE.has(photo.content_type)) return photo.original_url;
    const same = photo.derivatives.find((d) => d.width === photo.metadata.width && SHOWABLE.has(d.content_type));
    return same ? same.url : null;
  }

  zoom(on) {
    const full = on ? this.fullSource() : null;
    if (on && !full) return;
    this.zoomed = Boolean(on);
    const button = this.q("#viewer-zoom");
    button.setAttribute("aria-pressed", String(this.zoomed));
    button.textContent = this.zoomed ? "Fit to screen" : "Actual pixels";
    this.stage.classList.toggle("zoomed", this.zoomed);
    const img = this.img;
    if (this.zoomed) {
      // One pixel of the photo on one pixel of the screen.
      img.style.width = `${this.photo.metadata.width / devicePixelRatio}px`;
      img.src = full;
    } else {
      img.style.width = "";
      const preview = this.photo?.derivatives.find((d) => d.name === "preview");
      if (preview && img.src !== new URL(preview.url, location.href).href) img.src = preview.url;
    }
  }

  async delete() {
    if (!this.photo || !confirm("Delete this photo and all its renditions?")) return;
    const id = this.photo.photo_id;
    try {
      await api(`/v1/photos/${id}`, { method: "DELETE" });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) {
        this.q("#viewer-error").textContent = err.message;
        return;
      }
    }
    this.dialog.close();
    this.onDeleted(id);
  }

  async retry() {
    try {
      await api(`/v1/photos/${this.photo.photo_id}/retry`, { method: "POST" });
      const fresh = await api(`/v1/photos/${this.photo.photo_id}`);
      this.show(fresh);
      this.onChanged(fresh);
    } catch (err) {
      this.q("#viewer-error").textContent = err.message;
    }
  }
}
