// The event bus over WebSocket: identify, join photo rooms, reconnect by itself and resume
// from the last event seen, so no event is missed across a drop. Events are deduplicated
// by id (a replay may overlap what already arrived live).
//
// The bus takes one `resume` per socket. It is spent right after `identify` when we have
// seen an event before (a reconnect); on a fresh socket it is kept for the first photo we
// watch, so that photo's processing events since its upload event are replayed. Later
// photos rely on live events, and the gallery resyncs from the api if one was missed.

const MAX_BACKOFF_MS = 10000;

export class Bus extends EventTarget {
  constructor(url, token) {
    super();
    this.url = url;
    this.token = token;
    this.photos = new Set(); // rooms to (re)join
    this.lastEventId = null;
    this.seen = new Set();
    this.state = "idle";
    this.attempt = 0;
    this.closed = false;
    this.ws = null;
    this.resumed = false; // this socket has spent its one resume
  }

  start() {
    this.closed = false;
    this.connect();
  }

  stop() {
    this.closed = true;
    if (this.ws) this.ws.close(1000, "bye");
  }

  /** Join a photo's room (and, if this socket still may, replay what it missed). */
  watch(photoId) {
    this.photos.add(photoId);
    if (this.state === "open") {
      this.send({ type: "subscribe", photo_id: photoId });
      this.resume();
    }
  }

  resume() {
    if (this.resumed || !this.lastEventId) return;
    this.resumed = true;
    this.send({ type: "resume", last_event_id: this.lastEventId });
  }

  unwatch(photoId) {
    if (this.photos.delete(photoId) && this.state === "open") {
      this.send({ type: "unsubscribe", photo_id: photoId });
    }
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  connect() {
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.retry(err.message);
      return;
    }
    this.ws = ws;
    this.resumed = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: "identify", token: this.token }));
    ws.onmessage = (msg) => this.receive(msg.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) {
        this.setState("closed");
      } else if (e.code === 1008) {
        // Policy: a bad token will not get better by retrying.
        this.setState("rejected", { reason: e.reason });
      } else {
        this.retry(e.reason || `closed (${e.code})`);
      }
    };
  }

  retry(reason) {
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.setState("reconnecting", { reason, delay });
    setTimeout(() => this.connect(), delay);
  }

  receive(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (msg.type === "identified") {
      this.attempt = 0;
      this.setState("open", { clientId: msg.client_id });
      for (const id of this.photos) this.send({ type: "subscribe", photo_id: id });
      this.resume();
      // Nothing seen yet: a later reconnect resumes from where this socket joined, so
      // what is published while it is away is replayed, not missed.
      if (!this.lastEventId && msg.last_event_id) this.lastEventId = msg.last_event_id;
      return;
    }
    if (msg.type === "error") {
      this.dispatchEvent(new CustomEvent("buserror", { detail: msg }));
      return;
    }
    if (!msg.event || !msg.id) return; // subscribed, resumed, pong
    if (this.seen.has(msg.id)) return;
    this.seen.add(msg.id);
    if (!this.lastEventId || compareIds(msg.id, this.lastEventId) > 0) this.lastEventId = msg.id;
    this.dispatchEvent(new CustomEvent("photo", { detail: msg }));
  }
}

/** Order two Redis stream ids ("ms-seq"). */
export function compareIds(a, b) {
  const [am, as = "0"] = a.split("-");
  const [bm, bs = "0"] = b.split("-");
  if (am.length !== bm.length) return am.length - bm.length;
  if (am !== bm) return am < bm ? -1 : 1;
  return Number(as) - Number(bs);
}
