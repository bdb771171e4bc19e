import type { RedisClientType } from "redis";
import { sleep, sweepFields, type SweepFields } from "../reply.js";

// Starts the sweep as a background job (ASYNC) and reports its progress from SWEEP.STATUS until
// it ends. Resolves to the number of keys deleted; rejects if the job was cancelled or aborted.
export async function clearWithProgress(
  client: Pick<RedisClientType, "sendCommand">,
  pattern: string,
  onProgress: (status: SweepFields) => void,
  pollMs = 100,
): Promise<number> {
  const id = String(await client.sendCommand(["SWEEP.CLEAR", pattern, "ASYNC"]));
  for (;;) {
    const status = sweepFields(await client.sendCommand(["SWEEP.STATUS", id]));
    onProgress(status);
    if (status.state === "done") return status.deleted;
    if (status.state !== "running") throw new Error(`sweep ${id} ended ${status.state}`);
    await sleep(pollMs);
  }
}
