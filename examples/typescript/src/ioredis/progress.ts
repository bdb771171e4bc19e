import type { Redis } from "ioredis";
import { sleep, sweepFields, type SweepFields } from "../reply.js";

// Starts the sweep as a background job (ASYNC) and reports its progress from SWEEP.STATUS until
// it ends. Resolves to the number of keys deleted; rejects if the job was cancelled or aborted.
export async function clearWithProgress(
  redis: Redis,
  pattern: string,
  onProgress: (status: SweepFields) => void,
  pollMs = 100,
): Promise<number> {
  const id = (await redis.call("SWEEP.CLEAR", pattern, "ASYNC")) as number;
  for (;;) {
    const status = sweepFields(await redis.call("SWEEP.STATUS", id));
    onProgress(status);
    if (status.state === "done") return status.deleted;
    if (status.state !== "running") throw new Error(`sweep ${id} ended ${status.state}`);
    await sleep(pollMs);
  }
}
