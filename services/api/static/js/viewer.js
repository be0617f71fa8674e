// The photo view: preview, EXIF, download of the original, retry and delete.

import { api, ApiError } from "./api.js";

function formatExposure(seconds) {
  if (!seconds) return null;
  return seconds >= 1 ? `${seconds} s` : `1/${Math.round(1 / seconds)} s`;
}

function formatBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} B`;
}

export function exifRows(photo) {
  const meta = photo.metadata || {};
  const exif = meta.exif || {};
  // Many makers repeat their name in the model ("Canon" + "Canon EOS 7D").
  const camera =
    exif.make && exif.model && !exif.model.toLowerCase().startsWith(exif.make.split(" ")[0].toLowerCase())
      ? `${exif.make} ${exif.model}`
      : exif.model || exif.make;
  const settings = [
    exif.f_number ? `ƒ/${exif.f_number}` : null,
    formatExposure(exif.exposure_time),
    exif.iso ? `ISO ${exif.iso}` : null,
    exif.focal_length ? `${exif.focal_length} mm` : null,
  ].filter(Boolean);
  return [
    ["Camera", camera],
    ["Lens", exif.lens],
    ["Exposure", settings.join(" · ")],
    ["Taken", exif.taken_at ? exif.taken_at.replace("T", " ") : null],
    ["Dimensions", meta.width ? `${meta.width} × ${meta.height}` : null],
    ["Format", meta.format],
    ["Size", formatBytes(photo.bytes)],
    ["Status", photo.status],
    ["Error", photo.error && photo.error.message],
  ].filter(([, value]) => value);
}

export class Viewer {
  constructor(dialog, { onDeleted, onChanged }) {
    this.dialog = dialog;
    this.onDeleted = onDeleted;
    this.onChanged = onChanged;
    this.photo = null;
    this.q = (sel) => dialog.querySelector(sel);
    this.q("#viewer-close").addEventListener("click", () => dialog.close());
    this.q("#viewer-delete").addEventListener("click", () => this.delete());
    this.q("#viewer-retry").addEventListener("click", () => this.retry());
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
  }

  async open(photo) {
    this.show(photo);
    this.dialog.showModal();
    try {
      this.show(await api(`/v1/photos/${photo.photo_id}`)); // fresh signed URLs and status
    } catch {
      // keep what the grid had
    }
  }

  show(photo) {
    this.photo = photo;
    const preview = photo.derivatives.find((d) => d.name === "preview");
    const img = this.q("#viewer-img");
    if (preview) {
      img.src = preview.url;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
    const camera = (photo.metadata && photo.metadata.exif && photo.metadata.exif.model) || "";
    img.alt = camera ? `Photo taken with ${camera}` : "Photo preview";
    this.q("#viewer-title").textContent = camera || "Photo";
    const dl = this.q("#viewer-exif");
    dl.replaceChildren();
    for (const [term, value] of exifRows(photo)) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.field = term.toLowerCase();
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
    this.q("#viewer-retry").hidden = !(photo.error && photo.error.retryable);
    this.q("#viewer-error").textContent = "";
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
