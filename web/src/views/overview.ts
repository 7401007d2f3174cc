// Relay topics, NATS connections and subscriptions, and addressed-event recipients: what Herald serves besides
// FlowMesh: pushed once a second as Herald's opt-in `herald.overview` feed event, and read from
// `/api/herald/overview` at first and whenever the feed is down.
import { Overview, overview } from "../api";
import { followTopic } from "../feed";
import { RollingChart } from "../chart";
import { esc, num, when } from "../format";

type Kind = "relay" | "nats" | "events";

export function mountOverview(el: HTMLElement, kind: Kind): () => void {
  const titles = { relay: "Relay topics", nats: "NATS connections", events: "Event recipients" };
  el.innerHTML = `
    <div class="summary" id="o-summary"></div>
    <section><h2>${titles[kind]} over time</h2><div class="chart" id="o-chart"></div></section>
    <section><h2>${titles[kind]}</h2><div id="o-body"></div><p class="error" id="o-error"></p></section>
    ${kind === "nats" ? `<section><h2>Subscriptions</h2><div id="o-subs"></div></section>` : ""}`;
  const series = {
    relay: [{ label: "messages stored", stroke: "#3461c1" }],
    nats: [
      { label: "connections", stroke: "#3461c1" },
      { label: "messages in/s", stroke: "#1f9d55" },
      { label: "messages out/s", stroke: "#d9a21b" },
    ],
    events: [
      { label: "pending", stroke: "#3461c1" },
      { label: "in flight", stroke: "#d9a21b" },
    ],
  }[kind];
  const chart = new RollingChart(el.querySelector("#o-chart") as HTMLElement, series, kind === "nats" ? "count" : "events");
  let prevIO: { inMsgs: number; outMsgs: number; at: number } | null = null;

  const tile = (v: number, k: string) => `<div class="tile"><div class="v">${num(v)}</div><div class="k">${esc(k)}</div></div>`;
  const table = (head: string[], rows: string[][]) =>
    rows.length
      ? `<table class="grid"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
          .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`)
          .join("")}</tbody></table>`
      : `<p class="muted">none</p>`;

  function render(o: Overview) {
    const summary = el.querySelector("#o-summary") as HTMLElement;
    const body = el.querySelector("#o-body") as HTMLElement;
    if (kind === "relay") {
      const total = o.relay.topics.reduce((n, t) => n + t.messages, 0);
      summary.innerHTML = tile(o.relay.topics.length, "topics") + tile(total, "messages stored");
      body.innerHTML = table(
        ["Topic", "Messages", "Last message"],
        o.relay.topics.map((t) => [esc(t.name), num(t.messages), esc(when(t.last_message_at))]),
      );
      chart.push([total]);
    } else if (kind === "nats") {
      const inMsgs = o.nats.connections.reduce((n, c) => n + c.in_msgs, 0);
      const outMsgs = o.nats.connections.reduce((n, c) => n + c.out_msgs, 0);
      const now = Date.now() / 1000;
      const dt = prevIO ? Math.max(0.001, now - prevIO.at) : 1;
      const inRate = prevIO ? Math.max(0, inMsgs - prevIO.inMsgs) / dt : 0;
      const outRate = prevIO ? Math.max(0, outMsgs - prevIO.outMsgs) / dt : 0;
      prevIO = { inMsgs, outMsgs, at: now };
      summary.innerHTML = tile(o.nats.connections.length, "connections") + tile(o.nats.subscriptions.length, "subscriptions");
      body.innerHTML = table(
        ["Id", "Address", "Name", "Subscriptions", "Messages in", "Messages out"],
        o.nats.connections.map((c) => [String(c.id), esc(c.addr), esc(c.name || "–"), num(c.subscriptions), num(c.in_msgs), num(c.out_msgs)]),
      );
      (el.querySelector("#o-subs") as HTMLElement).innerHTML = table(
        ["Subject", "Queue group", "Connection"],
        o.nats.subscriptions.map((s) => [esc(s.subject), esc(s.queue ?? "–"), String(s.connection)]),
      );
      chart.push([o.nats.connections.length, inRate, outRate]);
    } else {
      const pending = o.events.recipients.reduce((n, r) => n + r.pending, 0);
      const inFlight = o.events.recipients.reduce((n, r) => n + r.in_flight, 0);
      summary.innerHTML = tile(o.events.recipients.length, "recipients") + tile(pending, "pending") + tile(inFlight, "in flight");
      body.innerHTML = table(
        ["Recipient", "Pending", "In flight", "Deferred", "Sessions"],
        o.events.recipients.map((r) => [`<code>${esc(r.recipient)}</code>`, num(r.pending), num(r.in_flight), num(r.deferred), num(r.sessions)]),
      );
      chart.push([pending, inFlight]);
    }
  }

  async function refresh() {
    try {
      render(await overview());
      (el.querySelector("#o-error") as HTMLElement).textContent = "";
    } catch (e) {
      (el.querySelector("#o-error") as HTMLElement).textContent = String(e);
    }
  }
  let live = false;
  const stop = followTopic(
    "herald.overview",
    (o: Overview) => {
      render(o);
      (el.querySelector("#o-error") as HTMLElement).textContent = "";
    },
    (up) => (live = up),
  );
  void refresh();
  // Only while the feed is down: the pushed snapshots arrive every second otherwise.
  const timer = setInterval(() => {
    if (!live) void refresh();
  }, 2000);
  return () => {
    stop();
    clearInterval(timer);
    chart.destroy();
  };
}
