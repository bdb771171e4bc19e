import type { RedisClientType } from "redis";

// Drop-in replacement for the client-side recipe (SCAN MATCH image_proxy:* COUNT 1000, then
// UNLINK in batches of 500), with node-redis: same name, same result, the number of keys deleted.
export async function clearAllImageCaches(
  client: Pick<RedisClientType, "sendCommand">,
): Promise<number> {
  const reply: unknown = await client.sendCommand(["SWEEP.CLEAR", "image_proxy:*"]);
  // RESP2 (the default): [field, value, ...]. RESP3 (createClient({ RESP: 3 })): an object.
  if (Array.isArray(reply)) return Number(reply[reply.indexOf("deleted") + 1]);
  return Number((reply as Record<string, unknown>)["deleted"]);
}
