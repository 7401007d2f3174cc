// The live feed: one WebSocket to `/ws` (compat/flowmesh.md §5.8) with no topics, so it receives every event, and
// reconnects with backoff. Views register handlers by event type and unregister when they unmount.
import { TOKEN_KEY } from "./api";

export type FeedHandler = (topic: string, payload: any) => void;

export class Feed {
  private handlers = new Map<string, Set<FeedHandler>>();
  private retryMs = 500;
  /** Events received since the page loaded (shown on the header's "live" light, which tests read too). */
  received = 0;
  onEvent: () => void = () => {};
  /** Called with true when the socket opens and false when it closes. */
  onStatus: (live: boolean) => void = () => {};

  start(): void {
    this.connect();
  }

  on(type: string, handler: FeedHandler): () => void {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler);
    return () => set!.delete(handler);
  }

  private connect(): void {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    // A browser cannot set headers on a WebSocket: the token, if any, travels as `?token=`.
    const t = localStorage.getItem(TOKEN_KEY);
    const ws = new WebSocket(scheme + location.host + "/ws" + (t ? `?token=${encodeURIComponent(t)}` : ""));
    ws.onopen = () => {
      this.retryMs = 500;
      this.onStatus(true);
    };
    ws.onmessage = (e) => {
      let event: { type?: string; topic?: string; payload?: unknown };
      try {
        event = JSON.parse(String(e.data));
      } catch {
        return; // the server sends one JSON object per frame; anything else is not for us
      }
      if (!event.type) return;
      this.received += 1;
      this.onEvent();
      this.handlers.get(event.type)?.forEach((h) => h(event.topic ?? "", event.payload));
    };
    ws.onclose = () => {
      this.onStatus(false);
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
  }
}

/**
 * A second socket for one opt-in topic: Herald sends `herald.overview` only to connections that subscribed to it,
 * and subscribing switches a connection from "every event" to "only these topics", so the main feed cannot ask for
 * it without losing FlowMesh's events. Returns a function that closes the socket for good.
 */
export function followTopic(topic: string, onPayload: (payload: any) => void, onStatus: (live: boolean) => void): () => void {
  let closed = false;
  let retryMs = 500;
  let ws: WebSocket | null = null;
  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const t = localStorage.getItem(TOKEN_KEY);
    ws = new WebSocket(scheme + location.host + "/ws" + (t ? `?token=${encodeURIComponent(t)}` : ""));
    ws.onopen = () => {
      retryMs = 500;
      ws!.send(JSON.stringify({ type: "subscribe", payload: { topics: [topic] } }));
      onStatus(true);
    };
    ws.onmessage = (e) => {
      try {
        const event = JSON.parse(String(e.data));
        if (event.topic === topic) onPayload(event.payload);
      } catch {
        // one JSON object per frame; anything else is not for us
      }
    };
    ws.onclose = () => {
      onStatus(false);
      if (closed) return;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10_000);
    };
  };
  connect();
  return () => {
    closed = true;
    ws?.close();
  };
}
