// The api client: the bearer token kept in localStorage, JSON errors as exceptions.

// The gallery's token; the dashboard may keep an admin token under its own key (use()).
let tokenKey = "filmstrip.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Whether sending the same request again can succeed. Yes when the server did not answer
 * (status 0), timed out (408), was limited or busy (429, any 5xx: Retry-After says when) or
 * asks for the bytes again (409 upload_conflict); no for every other refusal, which is of
 * the request itself (a file that is not a photo, an empty or too large one, a bad token)
 * and would be refused the same way again. */
export function canRetry(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500) return true;
  return err.code === "upload_conflict";
}

export const auth = {
  get token() {
    return localStorage.getItem(tokenKey);
  },
  set(token) {
    localStorage.setItem(tokenKey, token);
  },
  clear() {
    localStorage.removeItem(tokenKey);
  },
  /** Keep the token under another storage key from now on. */
  use(key) {
    tokenKey = key;
  },
  get key() {
    return tokenKey;
  },
};

/** fetch() with the token; parses JSON; throws ApiError with the server's code. */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (auth.token) init.headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `the server did not answer (${err.message})`);
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = data && data.error;
    throw new ApiError(resp.status, e ? e.code : "http_error", e ? e.message : resp.statusText);
  }
  return data;
}

/** Upload one file with progress callbacks (fetch cannot report upload progress). */
export function uploadFile(file, { sessionId, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/photos");
    if (auth.token) xhr.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      const data = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(1);
        resolve(data);
      } else {
        const e = data && data.error;
        reject(new ApiError(xhr.status, e ? e.code : "http_error", e ? e.message : xhr.statusText));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was cut off"));
    const form = new FormData();
    if (sessionId) form.append("session_id", sessionId);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/** Escape text for insertion into HTML built with template strings. */
export function esc(value) {
  return String(value ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}
