// Queues: depth, in-flight, completed and dead-lettered jobs per queue (DLQs included), with rates over time;
// updated live from `queue.stats` feed events and re-read every 5 s.
import { QueueStats, ResourceConfig, listQueues, queueStats, shortName } from "../api";
import { RollingChart } from "../chart";
import { Feed } from "../feed";
import { age, esc, num } from "../format";

type Row = { tr: HTMLTableRowElement; stats: QueueStats; config: ResourceConfig };

export function mountQueues(el: HTMLElement, feed: Feed): () => void {
  el.innerHTML = `
    <div class="summary">
      <div class="tile"><div class="v" id="q-count">–</div><div class="k">queues</div></div>
      <div class="tile"><div class="v" id="q-depth">–</div><div class="k">jobs waiting or in flight</div></div>
      <div class="tile"><div class="v" id="q-dead">–</div><div class="k">dead-lettered</div></div>
    </div>
    <section><h2>Depth and rates</h2><div class="chart" id="q-chart"></div></section>
    <section><h2>Queues</h2>
      <table class="grid" id="queues"><thead><tr>
        <th>Queue</th><th class="num">Pending</th><th class="num">In flight</th><th class="num">Completed</th>
        <th class="num">Dead-lettered</th><th class="num">Total</th><th class="num">Oldest</th><th>Retry policy</th>
      </tr></thead><tbody></tbody></table>
      <p class="muted" id="q-empty" hidden>No queues yet.</p>
      <p class="error" id="q-error"></p>
    </section>`;
  const tbody = el.querySelector("#queues tbody") as HTMLElement;
  const rows = new Map<string, Row>();
  const chart = new RollingChart(
    el.querySelector("#q-chart") as HTMLElement,
    [
      { label: "depth", stroke: "#3461c1" },
      { label: "enqueued/s", stroke: "#1f9d55" },
      { label: "completed/s", stroke: "#d9a21b" },
    ],
    "jobs",
  );
  let previous: { total: number; completed: number } | null = null;

  function policy(c: ResourceConfig): string {
    const p = c.retry_policy;
    if (!p) return `<span class="muted">default</span>`;
    return esc(`${p.max_attempts} attempts, ${p.backoff_strategy} ${p.initial_backoff_seconds}–${p.max_backoff_seconds} s`);
  }

  function update(row: Row, stats: QueueStats) {
    row.stats = stats;
    const cells = row.tr.querySelectorAll("td");
    cells[1].textContent = num(stats.pending_jobs);
    cells[2].textContent = num(stats.in_flight_jobs);
    cells[3].textContent = num(stats.completed_jobs);
    cells[4].textContent = num(stats.failed_jobs);
    cells[5].textContent = num(stats.total_jobs);
    cells[6].textContent = age(stats.oldest_job_age_seconds);
    summary();
  }

  function totals() {
    let depth = 0, dead = 0, total = 0, completed = 0;
    rows.forEach((r) => {
      depth += r.stats.pending_jobs + r.stats.in_flight_jobs;
      dead += r.stats.failed_jobs;
      total += r.stats.total_jobs;
      completed += r.stats.completed_jobs;
    });
    return { depth, dead, total, completed };
  }

  function summary() {
    const t = totals();
    (el.querySelector("#q-count") as HTMLElement).textContent = num(rows.size);
    (el.querySelector("#q-depth") as HTMLElement).textContent = num(t.depth);
    (el.querySelector("#q-dead") as HTMLElement).textContent = num(t.dead);
  }

  async function refresh() {
    try {
      const queues = await listQueues();
      const all = await Promise.all(queues.map(async (q) => ({ q, stats: await queueStats(q) })));
      const seen = new Set<string>();
      for (const { q, stats } of all) {
        const key = shortName(q);
        seen.add(key);
        let row = rows.get(key);
        if (!row) {
          const tr = document.createElement("tr");
          tr.dataset.queue = key;
          const dlq = q.name.endsWith("-dlq") ? ` <span class="pill">DLQ</span>` : "";
          tr.innerHTML = `<td class="name">${esc(key)}${dlq}</td>` + `<td class="num"></td>`.repeat(6) + `<td class="policy"></td>`;
          tbody.appendChild(tr);
          row = { tr, stats, config: q };
          rows.set(key, row);
        }
        row.config = q;
        (row.tr.querySelector(".policy") as HTMLElement).innerHTML = policy(q);
        update(row, stats);
      }
      for (const [key, row] of rows) {
        if (!seen.has(key)) {
          row.tr.remove();
          rows.delete(key);
        }
      }
      (el.querySelector("#q-empty") as HTMLElement).hidden = rows.size > 0;
      (el.querySelector("#q-error") as HTMLElement).textContent = "";
    } catch (e) {
      (el.querySelector("#q-error") as HTMLElement).textContent = String(e);
    }
  }

  function sample() {
    const t = totals();
    const enq = previous ? Math.max(0, t.total - previous.total) : 0;
    const done = previous ? Math.max(0, t.completed - previous.completed) : 0;
    previous = { total: t.total, completed: t.completed };
    chart.push([t.depth, enq, done]);
  }

  const off = feed.on("queue.stats", (topic, payload) => {
    const row = rows.get(topic.replace(/^queue\.stats\./, ""));
    if (!row) {
      void refresh();
      return;
    }
    if (payload && typeof payload.total_jobs === "number") update(row, payload as QueueStats);
  });
  void refresh();
  const timers = [setInterval(refresh, 5000), setInterval(sample, 1000)];
  return () => {
    off();
    timers.forEach(clearInterval);
    chart.destroy();
  };
}
