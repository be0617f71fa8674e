// Upload cards: one per file, with its byte progress, then its processing stages live from
// the bus, then its thumbnail; a failure shows the reason, and a retry button only where a
// retry can help (canRetry for a refused upload, the error's retryable for processing).

import { api, canRetry, esc, uploadFile } from "./api.js";
import { photoFailure } from "./photo.js";

const STAGES = ["validation", "metadata", "thumbnails", "optimization"];
const PARALLEL = 3;
// If the bus is down or an event was missed, the catalog is the truth: ask it this often.
const RESYNC_MS = 4000;

export class Uploads {
  constructor(list, bus, { onDone, newSession }) {
    this.list = list;
    this.bus = bus;
    this.onDone = onDone;
    this.newSession = newSession;
    this.queue = [];
    this.running = 0;
    this.byPhoto = new Map(); // photo_id -> item
    this.seq = 0;
  }

  async add(files) {
    let sessionId = null;
    if (files.length > 1) {
      try {
        sessionId = await this.newSession();
      } catch {
        sessionId = null; // a batch without a session still uploads
      }
    }
    for (const file of files) {
      const item = this.render(file);
      item.sessionId = sessionId;
      this.queue.push(item);
    }
    this.pump();
  }

  render(file) {
    const id = `up-${++this.seq}`;
    const li = document.createElement("li");
    li.className = "upload";
    li.id = id;
    li.innerHTML = `
      <div class="upload-thumb" aria-hidden="true"></div>
      <div class="upload-body">
        <div class="upload-name">${esc(file.name)}</div>
        <progress class="upload-progress" max="100" value="0"
                  aria-label="Upload of ${esc(file.name)}"></progress>
        <ol class="stages" aria-label="Processing stages">
          ${STAGES.map((s) => `<li data-stage="${s}">${s}</li>`).join("")}
        </ol>
        <p class="upload-status" aria-live="polite">Waiting…</p>
        <div class="upload-actions"></div>
      </div>`;
    this.list.prepend(li);
    return { file, li, photoId: null, done: false, timer: null };
  }

  pump() {
    while (this.running < PARALLEL && this.queue.length) {
      const item = this.queue.shift();
      this.running += 1;
      this.upload(item).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  status(item, text, state) {
    item.li.querySelector(".upload-status").textContent = text;
    if (state) item.li.dataset.state = state;
  }

  async upload(item) {
    const bar = item.li.querySelector(".upload-progress");
    this.status(item, "Uploading…", "uploading");
    try {
      const res = await uploadFile(item.file, {
        sessionId: item.sessionId,
        onProgress: (f) => {
          bar.value = Math.round(f * 100);
        },
      });
      bar.value = 100;
      item.photoId = res.photo_id;
      item.li.dataset.photoId = res.photo_id;
      this.byPhoto.set(res.photo_id, item);
      if (res.duplicate) {
        this.status(item, "Already uploaded", "duplicate");
        await this.resync(item);
        return;
      }
      this.status(item, "Queued for processing", "queued");
      this.bus.watch(res.photo_id);
      this.scheduleResync(item);
    } catch (err) {
      // A refusal of the file itself (415 not a photo, 400 empty, 413 too large) would come
      // back the same: no button for it.
      this.fail(item, err.message, canRetry(err) ? () => this.retryUpload(item) : null);
    }
  }

  retryUpload(item) {
    item.li.querySelector(".upload-actions").innerHTML = "";
    item.li.querySelector(".upload-status").classList.remove("error");
    this.queue.push(item);
    this.pump();
  }

  scheduleResync(item) {
    clearTimeout(item.timer);
    item.timer = setTimeout(() => this.resync(item), RESYNC_MS);
  }

  async resync(item) {
    if (!item.photoId) return;
    try {
      const photo = await api(`/v1/photos/${item.photoId}`);
      if (photo.status === "completed") return this.completed(item, photo);
      if (photo.status === "failed") return this.failed(item, photoFailure(photo), photo);
    } catch {
      // try again later
    }
    if (!item.done) this.scheduleResync(item);
  }

  handle(event) {
    const item = this.byPhoto.get(event.photo_id);
    if (!item) return;
    // How many bus events this card saw, replayed ones included (tests tell live updates
    // and replays from api resyncs by it).
    item.li.dataset.events = String(Number(item.li.dataset.events || 0) + 1);
    if (item.done) {
      if (event.event === "photo.processing.completed" || event.event === "photo.processing.failed") {
        this.bus.unwatch(event.photo_id);
      }
      return;
    }
    if (event.event === "photo.deleted") {
      // Deleted (elsewhere) before its outcome: nothing more will come, nor need asking.
      item.done = true;
      clearTimeout(item.timer);
      this.status(item, "Deleted", "deleted");
      return;
    }
    const stageEls = item.li.querySelectorAll(".stages li");
    switch (event.event) {
      case "photo.processing.started":
        this.status(item, "Processing…", "processing");
        stageEls[0].classList.add("active");
        break;
      case "photo.processing.stage.completed": {
        const index = STAGES.indexOf(event.data.stage);
        stageEls.forEach((el, i) => {
          el.classList.toggle("done", i <= index);
          el.classList.toggle("active", i === index + 1);
        });
        this.status(item, `${event.data.stage} done`, "processing");
        break;
      }
      case "photo.processing.completed":
        this.resync(item);
        break;
      case "photo.processing.failed": {
        const e = event.data.error || {};
        this.failed(item, {
          message: e.message || "processing failed",
          retryable: typeof e.retryable === "boolean" ? e.retryable : e.category !== "DATA",
        });
        break;
      }
      default:
        break;
    }
    if (!item.done) this.scheduleResync(item);
  }

  completed(item, photo) {
    if (item.done) return;
    item.done = true;
    clearTimeout(item.timer);
    item.li.querySelectorAll(".stages li").forEach((el) => {
      el.classList.add("done");
      el.classList.remove("active");
    });
    const thumb = photo.derivatives.find((d) => d.name === "thumbnail");
    if (thumb) {
      const img = document.createElement("img");
      img.src = thumb.url;
      img.alt = `Thumbnail of ${item.file.name}`;
      img.className = "upload-img";
      item.li.querySelector(".upload-thumb").replaceChildren(img);
    }
    this.status(item, "Done", "completed");
    // While the bus is away keep the room: its events replay on reconnect, and the
    // replayed completion unwatches it then.
    if (this.bus.state === "open") this.bus.unwatch(photo.photo_id);
    this.onDone(photo, item.file.name);
  }

  /** Processing failed: the reason, and a retry only when one can help (a damaged file
   * fails the same way every time). */
  failed(item, failure, photo = null) {
    if (item.done) return;
    item.done = true;
    clearTimeout(item.timer);
    this.fail(item, `Failed: ${failure.message}`, failure.retryable ? () => this.retryProcessing(item) : null);
    // Failed photos belong in the grid too (marked), so they can be found and retried.
    const shown = photo ? Promise.resolve(photo) : api(`/v1/photos/${item.photoId}`);
    shown.then((p) => this.onDone(p, item.file.name)).catch(() => {});
  }

  fail(item, text, retry) {
    this.status(item, text, "failed");
    item.li.querySelector(".upload-status").classList.add("error");
    const actions = item.li.querySelector(".upload-actions");
    actions.innerHTML = "";
    if (!retry) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ghost small";
    button.textContent = "Retry";
    button.setAttribute("aria-label", `Retry ${item.file.name}`);
    button.addEventListener("click", retry);
    actions.append(button);
  }

  async retryProcessing(item) {
    try {
      await api(`/v1/photos/${item.photoId}/retry`, { method: "POST" });
    } catch (err) {
      this.status(item, `Retry refused: ${err.message}`, "failed");
      return;
    }
    item.done = false;
    item.li.querySelector(".upload-actions").innerHTML = "";
    item.li.querySelector(".upload-status").classList.remove("error");
    item.li.querySelectorAll(".stages li").forEach((el) => el.classList.remove("done", "active"));
    this.status(item, "Queued again", "queued");
    this.bus.watch(item.photoId);
    this.scheduleResync(item);
  }
}
