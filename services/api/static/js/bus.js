// The event bus over WebSocket: identify, join photo rooms, reconnect by itself and resume
// from the last event seen, so no event is missed across a drop. Events are deduplicated
// by id (a replay may overlap what already arrived live).
//
// A reconnect is one `identify` with the last event id and the photos watched (the bus
// replays what they missed, in order); a photo watched later is subscribed, and the bus
// sends what it published since this socket joined.

const MAX_BACKOFF_MS = 10000;
// Photos one identify may name (MAX_IDENTIFY_PHOTOS in protocols/ws.py); more are subscribed.
const MAX_IDENTIFY_PHOTOS = 100;

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
  }

  start() {
    this.closed = false;
    this.connect();
  }

  stop() {
    this.closed = true;
    if (this.ws) this.ws.close(1000, "bye");
  }

  /** Join a photo's room; the bus sends what it published since this socket joined. */
  watch(photoId) {
    this.photos.add(photoId);
    if (this.state === "open") this.send({ type: "subscribe", photo_id: photoId });
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
    ws.onopen = () => {
      const identify = { type: "identify", token: this.token };
      if (this.lastEventId) {
        identify.last_event_id = this.lastEventId;
        identify.photo_ids = [...this.photos].slice(0, MAX_IDENTIFY_PHOTOS);
      }
      ws.send(JSON.stringify(identify));
    };
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
      const joined = new Set(msg.photo_ids || []);
      for (const id of this.photos) if (!joined.has(id)) this.send({ type: "subscribe", photo_id: id });
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
    // A deleted photo brings nothing more, and a reconnect asking for it would be refused.
    if (msg.event === "photo.deleted") this.photos.delete(msg.photo_id);
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
