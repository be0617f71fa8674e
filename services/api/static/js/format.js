// Dates, sizes, exposure and places in the reader's own language (Intl), one home for each.

const nf = (options = {}) => new Intl.NumberFormat(undefined, options);
const ISO = /^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d))?(?:\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

// The pipeline names a format as its decoder does (HEIC and AVIF are both "heif" files to
// libvips, told apart by their compression); a reader knows a file by its kind.
const FORMAT_NAMES = { jpeg: "JPEG", png: "PNG", webp: "WebP", gif: "GIF", tiff: "TIFF", heif: "HEIC", avif: "AVIF" };

/** A format as a reader names it: "HEIC", not "heif". */
export function formatName(format) {
  return FORMAT_NAMES[format] || (format ? String(format).toUpperCase() : null);
}

/** A camera's date taken: the wall-clock time the camera wrote, in the reader's words (an
 * offset, when the camera recorded one, is said rather than applied). */
export function formatTaken(iso) {
  const m = ISO.exec(iso || "");
  if (!m) return iso || null;
  const [, y, mo, d, h = "0", mi = "0", s = "0", offset] = m;
  const at = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s));
  const text = new Intl.DateTimeFormat(undefined, {
    dateStyle: "long",
    timeStyle: "short",
    timeZone: "UTC",
  }).format(at);
  return offset && offset !== "Z" ? `${text} (UTC${offset})` : text;
}

/** A moment the server recorded (UTC), in the reader's time zone. */
export function formatMoment(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(at);
}

/** The calendar day a photo belongs to: its date taken (the camera's wall clock) or, when
 * it has none, the reader's local day of its upload; `{key, label, taken}`. */
export function photoDay(photo) {
  const taken = photo.metadata?.exif?.taken_at;
  const m = ISO.exec(taken || "");
  let date;
  if (m) {
    date = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  } else {
    const up = new Date(photo.uploaded_at);
    date = new Date(Date.UTC(up.getFullYear(), up.getMonth(), up.getDate()));
  }
  const key = date.toISOString().slice(0, 10);
  const day = new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    day: "numeric",
    month: "long",
    year: "numeric",
    timeZone: "UTC",
  }).format(date);
  return m
    ? { key: `t${key}`, label: day, taken: true }
    : { key: `u${key}`, label: `Uploaded ${day} · no date taken`, taken: false };
}

export function formatBytes(n) {
  const [value, unit] = n >= 1e6 ? [n / 1e6, "megabyte"] : n >= 1e3 ? [n / 1e3, "kilobyte"] : [n, "byte"];
  return nf({ style: "unit", unit, unitDisplay: "short", maximumFractionDigits: 1 }).format(value);
}

/** ƒ-number · shutter · ISO · focal length, each as photographers write it. */
export function formatExposure(exif) {
  const num = nf({ maximumFractionDigits: 1 });
  const shutter = (s) =>
    s >= 1 || !s ? `${num.format(s)} s` : `1/${nf({ maximumFractionDigits: 0 }).format(Math.round(1 / s))} s`;
  return [
    exif.f_number ? `ƒ/${num.format(exif.f_number)}` : null,
    exif.exposure_time ? shutter(exif.exposure_time) : null,
    exif.iso ? `ISO ${nf().format(exif.iso)}` : null,
    exif.focal_length
      ? nf({ style: "unit", unit: "millimeter", maximumFractionDigits: 1 }).format(exif.focal_length)
      : null,
  ]
    .filter(Boolean)
    .join(" · ");
}

/** `48.85837° N, 2.29448° E`, in the reader's digits. */
export function formatCoordinates({ lat, lon }) {
  const deg = nf({ minimumFractionDigits: 5, maximumFractionDigits: 5 });
  return `${deg.format(Math.abs(lat))}° ${lat < 0 ? "S" : "N"}, ${deg.format(Math.abs(lon))}° ${lon < 0 ? "W" : "E"}`;
}

export function mapLink({ lat, lon }) {
  const [a, b] = [lat.toFixed(5), lon.toFixed(5)];
  return `https://www.openstreetmap.org/?mlat=${a}&mlon=${b}#map=15/${a}/${b}`;
}

export function formatCount(n, one, many) {
  return `${nf().format(n)} ${n === 1 ? one : many}`;
}
