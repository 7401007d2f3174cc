// The admin listener's HTTP API as the dashboard reads it: FlowMesh's REST routes (compat/flowmesh.md §5) and
// Herald's own `/api/herald/...` additions for what FlowMesh has no route for (relay, NATS, addressed events, KV TTLs).

export type RetryPolicy = {
  max_attempts: number;
  initial_backoff_seconds: number;
  max_backoff_seconds: number;
  backoff_multiplier: number;
  backoff_strategy: string;
};

export type ResourceConfig = {
  tenant: string;
  namespace: string;
  name: string;
  type: string;
  partitions: number;
  created_at: string;
  updated_at: string;
  dlq?: { enabled: boolean; dlq_path: string };
  retry_policy?: RetryPolicy;
};

export type QueueStats = {
  total_jobs: number;
  pending_jobs: number;
  in_flight_jobs: number;
  completed_jobs: number;
  failed_jobs: number;
  oldest_job_age_seconds: number;
};

export type GroupState = { group: string; partition: number; committed_offset: number; latest_offset: number; lag: number };

export type KvEntry = { key: string; size: number; expires_at: number | null };

export type Overview = {
  relay: { topics: { name: string; messages: number; last_message_at: string | null }[] };
  nats: {
    connections: { id: number; addr: string; name: string; subscriptions: number; in_msgs: number; out_msgs: number }[];
    subscriptions: { subject: string; queue: string | null; connection: number }[];
  };
  events: { recipients: { recipient: string; pending: number; in_flight: number; deferred: number; sessions: number }[] };
};

/** Thrown for a non-2xx answer; carries the server's `message` when the body has one (FlowMesh's JSON error form). */
export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

/** The token for a server started with HTTP authentication (`--http-auth`), kept where FlowMesh's UI keeps it. */
export const TOKEN_KEY = "flowmesh_api_token";
export const token = () => localStorage.getItem(TOKEN_KEY) || "";

/** Called when the server answers 401, so the page can ask for a token. */
export let onUnauthorized: () => void = () => {};
export function setOnUnauthorized(f: () => void) {
  onUnauthorized = f;
}

export async function get<T>(path: string): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const res = await fetch(path, { headers });
  if (res.status === 401) onUnauthorized();
  if (!res.ok) {
    let message = `HTTP ${res.status}`;
    try {
      const body = await res.json();
      if (body && typeof body.message === "string") message = body.message;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(res.status, `${path}: ${message}`);
  }
  return (await res.json()) as T;
}

const seg = encodeURIComponent;

/** `tenant/namespace/name`: how the feed's topics and the dashboard name a resource. */
export const shortName = (r: { tenant: string; namespace: string; name: string }) => `${r.tenant}/${r.namespace}/${r.name}`;

export const resourceUrl = (kind: "streams" | "queues" | "kv", r: { tenant: string; namespace: string; name: string }) =>
  `/api/v1/${kind}/${seg(r.tenant)}/${seg(r.namespace)}/${seg(r.name)}`;

export const listStreams = () => get<{ streams: ResourceConfig[] | null }>("/api/v1/streams").then((b) => b.streams ?? []);
export const listQueues = () => get<{ queues: ResourceConfig[] | null }>("/api/v1/queues").then((b) => b.queues ?? []);
export const listStores = () => get<{ stores: ResourceConfig[] | null }>("/api/v1/kv").then((b) => b.stores ?? []);

export const streamLatest = (r: ResourceConfig) =>
  get<{ stats: { latest_offset: number } }>(`${resourceUrl("streams", r)}/stats`).then((b) => b.stats.latest_offset);
export const streamGroups = (r: ResourceConfig) =>
  get<{ consumer_groups: GroupState[] | null }>(`${resourceUrl("streams", r)}/consumer-groups`).then((b) => b.consumer_groups ?? []);
export const queueStats = (r: ResourceConfig) => get<{ stats: QueueStats }>(`${resourceUrl("queues", r)}/stats`).then((b) => b.stats);

export const kvKeys = (r: ResourceConfig, prefix: string) =>
  get<{ keys: string[] | null }>(`${resourceUrl("kv", r)}/keys?prefix=${seg(prefix)}`).then((b) => b.keys ?? []);
export const kvEntries = (r: ResourceConfig, prefix: string) =>
  get<{ entries: KvEntry[] }>(
    `/api/herald/kv/${seg(r.tenant)}/${seg(r.namespace)}/${seg(r.name)}/entries?prefix=${seg(prefix)}&limit=500`,
  ).then((b) => b.entries);

export const overview = () => get<Overview>("/api/herald/overview");
