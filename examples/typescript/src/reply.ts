// The fields of a SWEEP.CLEAR, SWEEP.STATUS or SWEEP.CANCEL reply, whatever shape the client
// hands it over in: a RESP2 flat array [field, value, field, value, ...] (ioredis, node-redis by
// default), a RESP3 map as a plain object (node-redis with RESP: 3) or as a Map.

export interface SweepFields {
  scanned: number;
  matched: number;
  deleted: number;
  denied: number;
  expired: number;
  elapsed_ms: number;
  slices: number;
  // SWEEP.STATUS and SWEEP.CANCEL only:
  id?: number;
  state?: "running" | "done" | "cancelled" | "aborted";
  pattern?: string;
  db?: number;
  progress?: number;
}

const TEXT_FIELDS = new Set(["state", "pattern"]);

export function sweepFields(reply: unknown): SweepFields {
  let pairs: [unknown, unknown][];
  if (Array.isArray(reply)) {
    pairs = [];
    for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([reply[i], reply[i + 1]]);
  } else if (reply instanceof Map) {
    pairs = [...reply.entries()];
  } else if (reply !== null && typeof reply === "object") {
    pairs = Object.entries(reply);
  } else {
    throw new Error(`not a sweep reply: ${String(reply)}`);
  }
  const out: Record<string, string | number> = {};
  for (const [key, value] of pairs) {
    const name = String(key);
    // Doubles (progress) come as strings in RESP2; Buffers when the client returns raw bytes.
    out[name] = TEXT_FIELDS.has(name) ? String(value) : Number(String(value));
  }
  return out as unknown as SweepFields;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
