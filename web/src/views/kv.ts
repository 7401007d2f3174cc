// KV stores: pick a store, filter its keys by prefix, see each key's size and time to live. Sizes and TTLs come from
// Herald's `/api/herald/kv/.../entries`; against a server without it the page falls back to FlowMesh's key listing.
// `kv.update` feed events for the open store re-read it.
import { KvEntry, ResourceConfig, kvEntries, kvKeys, listStores, shortName } from "../api";
import { Feed } from "../feed";
import { esc, num, ttl } from "../format";

export function mountKv(el: HTMLElement, feed: Feed): () => void {
  el.innerHTML = `
    <div class="split">
      <section><h2>Stores</h2><ul class="list" id="kv-stores"></ul><p class="muted" id="kv-none" hidden>No KV stores yet.</p></section>
      <section><h2 id="kv-title">Keys</h2>
        <input type="search" id="kv-prefix" placeholder="key prefix">
        <table class="grid" id="kv-keys"><thead><tr><th>Key</th><th class="num">Size</th><th class="num">Expires in</th></tr></thead><tbody></tbody></table>
        <p class="muted" id="kv-hint">Choose a store.</p>
        <p class="error" id="kv-error"></p>
      </section>
    </div>`;
  const list = el.querySelector("#kv-stores") as HTMLElement;
  const tbody = el.querySelector("#kv-keys tbody") as HTMLElement;
  const prefixInput = el.querySelector("#kv-prefix") as HTMLInputElement;
  let stores: ResourceConfig[] = [];
  let open: ResourceConfig | null = null;
  let entries: KvEntry[] = [];
  let pending: ReturnType<typeof setTimeout> | null = null;

  async function loadStores() {
    try {
      stores = await listStores();
      list.innerHTML = stores
        .map((s) => `<li><a href="#/kv" data-store="${esc(shortName(s))}">${esc(shortName(s))}</a></li>`)
        .join("");
      (el.querySelector("#kv-none") as HTMLElement).hidden = stores.length > 0;
      if (!open && stores.length) select(stores[0]);
      markActive();
    } catch (e) {
      (el.querySelector("#kv-error") as HTMLElement).textContent = String(e);
    }
  }

  function markActive() {
    list.querySelectorAll("a").forEach((a) => a.classList.toggle("active", !!open && a.dataset.store === shortName(open)));
  }

  function select(store: ResourceConfig) {
    open = store;
    (el.querySelector("#kv-title") as HTMLElement).textContent = `Keys of ${shortName(store)}`;
    (el.querySelector("#kv-hint") as HTMLElement).hidden = true;
    markActive();
    void loadKeys();
  }

  async function loadKeys() {
    if (!open) return;
    const prefix = prefixInput.value;
    try {
      try {
        entries = await kvEntries(open, prefix);
      } catch {
        entries = (await kvKeys(open, prefix)).map((key) => ({ key, size: -1, expires_at: null }));
      }
      render();
      (el.querySelector("#kv-error") as HTMLElement).textContent = "";
    } catch (e) {
      (el.querySelector("#kv-error") as HTMLElement).textContent = String(e);
    }
  }

  function render() {
    tbody.innerHTML = entries.length
      ? entries
          .map(
            (e) => `<tr data-key="${esc(e.key)}"><td>${esc(e.key)}</td><td class="num">${e.size < 0 ? "–" : num(e.size) + " B"}</td>
              <td class="num ttl">${esc(ttl(e.expires_at))}</td></tr>`,
          )
          .join("")
      : `<tr><td colspan="3" class="muted">no keys${prefixInput.value ? " with this prefix" : ""}</td></tr>`;
  }

  function tickTtls() {
    tbody.querySelectorAll("tr[data-key]").forEach((tr, i) => {
      const e = entries[i];
      if (e && e.expires_at !== null) (tr.querySelector(".ttl") as HTMLElement).textContent = ttl(e.expires_at);
    });
  }

  list.addEventListener("click", (ev) => {
    const a = (ev.target as HTMLElement).closest("a[data-store]") as HTMLAnchorElement | null;
    if (!a) return;
    ev.preventDefault();
    const store = stores.find((s) => shortName(s) === a.dataset.store);
    if (store) select(store);
  });
  prefixInput.addEventListener("input", () => void loadKeys());
  const off = feed.on("kv.update", (topic) => {
    const key = topic.replace(/^kv\.update\./, "");
    if (!stores.some((s) => shortName(s) === key)) {
      void loadStores();
      return;
    }
    if (open && shortName(open) === key && !pending) {
      // a burst of writes re-reads the store once
      pending = setTimeout(() => {
        pending = null;
        void loadKeys();
      }, 200);
    }
  });
  void loadStores();
  const timers = [setInterval(loadStores, 10000), setInterval(tickTtls, 1000)];
  return () => {
    off();
    timers.forEach(clearInterval);
    if (pending) clearTimeout(pending);
  };
}
