export const num = (n: number | null | undefined) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US"));

export function rate(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString("en-US");
  return n.toFixed(n >= 10 ? 1 : 2);
}

export function age(seconds: number): string {
  if (seconds <= 0) return "–";
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

/** Time left until a nanosecond deadline, or "no expiry". */
export function ttl(expiresAtNs: number | null): string {
  if (expiresAtNs === null) return "no expiry";
  const left = Math.round(expiresAtNs / 1e6 - Date.now()) / 1000;
  return left <= 0 ? "expired" : `${left.toFixed(left < 10 ? 1 : 0)} s`;
}

export function when(rfc3339: string | null | undefined): string {
  if (!rfc3339) return "–";
  const d = new Date(rfc3339);
  return isNaN(d.getTime()) ? rfc3339 : d.toLocaleString();
}

/** Escapes text for innerHTML templates. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
