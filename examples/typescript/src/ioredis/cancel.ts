import type { Redis } from "ioredis";
import { sleep, sweepFields, type SweepFields } from "../reply.js";

// Runs a background sweep for at most `deadlineMs`, then cancels it with SWEEP.CANCEL. Resolves
// to the job's final fields: state "done" if it finished in time, else "cancelled", with the
// keys deleted until then (those stay deleted).
export async function clearWithDeadline(
  redis: Redis,
  pattern: string,
  deadlineMs: number,
  pollMs = 50,
): Promise<SweepFields> {
  const id = (await redis.call("SWEEP.CLEAR", pattern, "ASYNC")) as number;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const status = sweepFields(await redis.call("SWEEP.STATUS", id));
    if (status.state !== "running") return status;
    if (Date.now() >= deadline) {
      try {
        return sweepFields(await redis.call("SWEEP.CANCEL", id));
      } catch (err) {
        // It ended between STATUS and CANCEL: the next STATUS tells how.
        if (!String(err).includes("has already ended")) throw err;
      }
    } else {
      await sleep(pollMs);
    }
  }
}
