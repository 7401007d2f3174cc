// Herald's dashboard: one page at /ui on the admin listener. Views are picked by the URL hash; the header shows
// /health, /ready and whether the live feed (/ws) is connected.
import { TOKEN_KEY, get, setOnUnauthorized } from "./api";
import { Feed } from "./feed";
import { mountKv } from "./views/kv";
import { mountOverview } from "./views/overview";
import { mountQueues } from "./views/queues";
import { mountStreams } from "./views/streams";

const feed = new Feed();
const view = document.getElementById("view") as HTMLElement;
let unmount: (() => void) | null = null;

function light(id: string, ok: boolean | null) {
  const el = document.getElementById(id) as HTMLElement;
  el.classList.toggle("ok", ok === true);
  el.classList.toggle("bad", ok === false);
}

async function checkHealth() {
  try {
    const h = await get<{ status: { code: number } }>("/health");
    light("health", h.status.code === 200 || h.status.code === 0);
  } catch {
    light("health", false);
  }
  try {
    const r = await get<{ ready: boolean; status: { code: number } }>("/ready");
    light("ready", r.ready === true && r.status.code === 200);
  } catch {
    light("ready", false);
  }
}

function route() {
  const name = location.hash.replace(/^#\/?/, "") || "streams";
  unmount?.();
  view.innerHTML = "";
  document.querySelectorAll<HTMLAnchorElement>("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
  switch (name) {
    case "queues":
      unmount = mountQueues(view, feed);
      break;
    case "kv":
      unmount = mountKv(view, feed);
      break;
    case "relay":
    case "nats":
    case "events":
      unmount = mountOverview(view, name);
      break;
    default:
      unmount = mountStreams(view, feed);
  }
}

// A server with HTTP authentication answers 401 until the page has a token: ask once, keep it, reload.
let asked = false;
setOnUnauthorized(() => {
  if (asked) return;
  asked = true;
  const t = window.prompt("This Herald requires a token for its admin API (Authorization: Bearer <token>):");
  if (t) {
    localStorage.setItem(TOKEN_KEY, t.trim());
    location.reload();
  }
});

feed.onStatus = (live) => light("live", live);
feed.onEvent = () => {
  const el = document.getElementById("live") as HTMLElement;
  el.dataset.events = String(feed.received);
  el.title = `live feed (/ws): ${feed.received} events received`;
};
feed.start();
window.addEventListener("hashchange", route);
route();
void checkHealth();
setInterval(checkHealth, 5000);
