// What the pages say about one photo: its name and, when it failed, why and whether a
// retry can help.

/** The name the file was sent with when the api knows it, else what names it best. */
export function photoName(photo, known = null) {
  return photo.filename || known || photo.metadata?.exif?.model || null;
}

/** `{code, category, message, retryable}` of a failed photo, from the error object the api
 * sends or from its older string + error_category. */
export function photoFailure(photo) {
  if (photo.status !== "failed") return null;
  const raw = photo.error;
  const failure =
    raw && typeof raw === "object"
      ? { ...raw }
      : { code: null, category: photo.error_category || null, message: raw || "processing failed" };
  if (typeof failure.retryable !== "boolean") {
    // A DATA failure is the file's own: sent again, it fails the same way.
    failure.retryable = failure.category !== "DATA";
  }
  return failure;
}

/** The one line a person reads about a failure. */
export function failureText(failure) {
  const why = {
    DATA: "The file is damaged or not a photo we can read.",
    TEMPORARY: "A temporary problem on our side; trying again should work.",
    RESOURCE: "The server ran short of resources; trying again later should work.",
    LOGIC: "A fault on our side.",
  }[failure.category];
  const message = failure.message ? failure.message.charAt(0).toUpperCase() + failure.message.slice(1) : "";
  return [message && !message.endsWith(".") ? `${message}.` : message, why].filter(Boolean).join(" ");
}

/** Browsers draw these natively; the original of anything else (HEIC, TIFF) is not shown. */
export const SHOWABLE = new Set(["image/jpeg", "image/png", "image/webp", "image/gif", "image/avif"]);
