// Streams: every stream with its latest offset, write rate and consumer groups (lag), updated live from
// `stream.stats` feed events and re-read every 5 s (which also picks up new streams and groups).
import { ResourceConfig, GroupState, listStreams, shortName, streamGroups, streamLatest } from "../api";
import { RollingChart } from "../chart";
import { Feed } from "../feed";
import { esc, num, rate, when } from "../format";

type Row = { tr: HTMLTableRowElement; latest: number; sampled: number | null; groups: GroupState[] };

export function mountStreams(el: HTMLElement, feed: Feed): () => void {
  el.innerHTML = `
    <div class="summary">
      <div class="tile"><div class="v" id="s-count">–</div><div class="k">streams</div></div>
      <div class="tile"><div class="v" id="s-messages">–</div><div class="k">messages stored</div></div>
      <div class="tile"><div class="v" id="s-rate">–</div><div class="k">messages/s (all streams)</div></div>
      <div class="tile"><div class="v" id="s-lag">–</div><div class="k">largest consumer lag</div></div>
    </div>
    <section><h2>Write rate</h2><div class="chart" id="s-chart"></div></section>
    <section><h2>Streams</h2>
      <table class="grid" id="streams"><thead><tr>
        <th>Stream</th><th class="num">Partitions</th><th class="num">Latest offset</th><th class="num">Messages/s</th>
        <th>Consumer groups (lag)</th><th>Created</th></tr></thead><tbody></tbody></table>
      <p class="muted" id="s-empty" hidden>No streams yet. Provision one, or write with auto-create on.</p>
      <p class="error" id="s-error"></p>
    </section>`;
  const tbody = el.querySelector("#streams tbody") as HTMLElement;
  const rows = new Map<string, Row>();
  const chart = new RollingChart(el.querySelector("#s-chart") as HTMLElement, [{ label: "messages/s", stroke: "#3461c1" }], "msg/s");
  let lastRate = 0;

  function groupsHtml(groups: GroupState[]): string {
    if (!groups.length) return `<span class="muted">none</span>`;
    return groups
      .map((g) => `<span class="pill${g.lag > 0 ? " lagging" : ""}" title="committed ${g.committed_offset}">${esc(g.group)}: ${num(g.lag)}</span>`)
      .join("");
  }

  function setLatest(key: string, row: Row, latest: number) {
    if (latest === row.latest) return;
    row.latest = latest;
    (row.tr.querySelector(".latest") as HTMLElement).textContent = num(latest);
    row.tr.classList.remove("flash");
    void row.tr.offsetWidth; // restart the highlight animation
    row.tr.classList.add("flash");
    summary();
  }

  function summary() {
    let messages = 0;
    let lag = 0;
    rows.forEach((r) => {
      messages += r.latest + 1;
      r.groups.forEach((g) => (lag = Math.max(lag, g.lag)));
    });
    (el.querySelector("#s-count") as HTMLElement).textContent = num(rows.size);
    (el.querySelector("#s-messages") as HTMLElement).textContent = num(messages);
    (el.querySelector("#s-lag") as HTMLElement).textContent = num(lag);
    (el.querySelector("#s-rate") as HTMLElement).textContent = rate(lastRate);
  }

  async function refresh() {
    try {
      const streams = await listStreams();
      const details = await Promise.all(
        streams.map(async (s: ResourceConfig) => ({ s, latest: await streamLatest(s), groups: await streamGroups(s) })),
      );
      const seen = new Set<string>();
      for (const { s, latest, groups } of details) {
        const key = shortName(s);
        seen.add(key);
        let row = rows.get(key);
        if (!row) {
          const tr = document.createElement("tr");
          tr.dataset.stream = key;
          tr.innerHTML = `<td class="name">${esc(key)}</td><td class="num">${num(s.partitions)}</td>
            <td class="num latest">${num(latest)}</td><td class="num rate">0</td><td class="groups"></td>
            <td class="muted">${esc(when(s.created_at))}</td>`;
          tbody.appendChild(tr);
          row = { tr, latest, sampled: null, groups };
          rows.set(key, row);
        }
        row.groups = groups;
        (row.tr.querySelector(".groups") as HTMLElement).innerHTML = groupsHtml(groups);
        setLatest(key, row, Math.max(row.latest, latest));
      }
      for (const [key, row] of rows) {
        if (!seen.has(key)) {
          row.tr.remove();
          rows.delete(key);
        }
      }
      (el.querySelector("#s-empty") as HTMLElement).hidden = rows.size > 0;
      (el.querySelector("#s-error") as HTMLElement).textContent = "";
      summary();
    } catch (e) {
      (el.querySelector("#s-error") as HTMLElement).textContent = String(e);
    }
  }

  function sample() {
    let total = 0;
    rows.forEach((row) => {
      const delta = row.sampled === null ? 0 : Math.max(0, row.latest - row.sampled);
      row.sampled = row.latest;
      (row.tr.querySelector(".rate") as HTMLElement).textContent = rate(delta);
      total += delta;
    });
    lastRate = total;
    chart.push([total]);
    summary();
  }

  const off = feed.on("stream.stats", (topic, payload) => {
    const key = topic.replace(/^stream\.stats\./, "");
    const row = rows.get(key);
    if (!row) {
      void refresh(); // a stream this page has not listed yet
      return;
    }
    if (payload && typeof payload.latest_offset === "number") setLatest(key, row, payload.latest_offset);
  });
  void refresh();
  const timers = [setInterval(refresh, 5000), setInterval(sample, 1000)];
  return () => {
    off();
    timers.forEach(clearInterval);
    chart.destroy();
  };
}
