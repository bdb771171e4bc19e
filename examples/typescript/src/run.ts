// Runs one example against a server and prints what it returned, for the tests
// (tests/clients.rs) and for trying by hand:
//   node dist/run.js CLIENT EXAMPLE PORT [PATTERN] [DEADLINE_MS]
// CLIENT: ioredis | node-redis | node-redis-resp3; EXAMPLE: clear | progress | cancel.
// Prints one "progress ..." line per status read, then "result <JSON>".
import { Redis } from "ioredis";
import { createClient } from "redis";
import type { SweepFields } from "./reply.js";
import * as ioClear from "./ioredis/clear-all-image-caches.js";
import * as ioProgress from "./ioredis/progress.js";
import * as ioCancel from "./ioredis/cancel.js";
import * as nrClear from "./node-redis/clear-all-image-caches.js";
import * as nrProgress from "./node-redis/progress.js";
import * as nrCancel from "./node-redis/cancel.js";

const [clientName, example, portText, pattern = "image_proxy:*", deadlineText = "0"] =
  process.argv.slice(2);
const port = Number(portText);
const deadlineMs = Number(deadlineText);
const onProgress = (s: SweepFields) =>
  console.log(`progress ${s.state} ${s.progress} deleted ${s.deleted}`);

async function withIoredis(): Promise<unknown> {
  const redis = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
  await redis.connect();
  try {
    switch (example) {
      case "clear":
        return { deleted: await ioClear.clearAllImageCaches(redis) };
      case "progress":
        return { deleted: await ioProgress.clearWithProgress(redis, pattern, onProgress, 10) };
      case "cancel":
        return await ioCancel.clearWithDeadline(redis, pattern, deadlineMs, 10);
      default:
        throw new Error(`unknown example ${example}`);
    }
  } finally {
    redis.disconnect();
  }
}

async function withNodeRedis(resp: 2 | 3): Promise<unknown> {
  const client = createClient({ url: `redis://127.0.0.1:${port}`, RESP: resp });
  await client.connect();
  try {
    switch (example) {
      case "clear":
        return { deleted: await nrClear.clearAllImageCaches(client) };
      case "progress":
        return { deleted: await nrProgress.clearWithProgress(client, pattern, onProgress, 10) };
      case "cancel":
        return await nrCancel.clearWithDeadline(client, pattern, deadlineMs, 10);
      default:
        throw new Error(`unknown example ${example}`);
    }
  } finally {
    client.destroy();
  }
}

const run =
  clientName === "ioredis"
    ? withIoredis()
    : clientName === "node-redis"
      ? withNodeRedis(2)
      : clientName === "node-redis-resp3"
        ? withNodeRedis(3)
        : Promise.reject(new Error(`unknown client ${clientName}`));
run.then(
  (result) => console.log(`result ${JSON.stringify(result)}`),
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
