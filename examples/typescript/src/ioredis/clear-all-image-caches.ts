import type { Redis } from "ioredis";

// Drop-in replacement for the client-side recipe (SCAN MATCH image_proxy:* COUNT 1000, then
// UNLINK in batches of 500): same name, same result, the number of keys deleted. The server does
// the walk and the deletions itself, in short slices, so other clients keep being served.
export async function clearAllImageCaches(redis: Redis): Promise<number> {
  // Replies [field, value, ...]: scanned, matched, deleted, denied, expired, elapsed_ms, slices.
  const reply = (await redis.call("SWEEP.CLEAR", "image_proxy:*")) as (string | number)[];
  return Number(reply[reply.indexOf("deleted") + 1]);
}
