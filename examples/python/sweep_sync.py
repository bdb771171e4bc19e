"""SWEEP.CLEAR from redis-py (sync): the drop-in, a progress report, and a deadline with cancel.

Run one against REDIS_URL (add ?protocol=2 for RESP2):
    python sweep_sync.py clear|progress|cancel [PATTERN] [DEADLINE_SECONDS]
"""

import json
import os
import sys
import time

import redis

from sweep_reply import sweep_fields


def clear_all_image_caches(r: redis.Redis) -> int:
    """Deletes every image_proxy:* key in the server; returns how many were deleted."""
    return sweep_fields(r.execute_command("SWEEP.CLEAR", "image_proxy:*"))["deleted"]


def clear_with_progress(r: redis.Redis, pattern: str, on_progress, poll_seconds=0.1) -> int:
    """Runs the sweep as a background job (ASYNC), reporting SWEEP.STATUS until it ends."""
    job = r.execute_command("SWEEP.CLEAR", pattern, "ASYNC")
    while True:
        status = sweep_fields(r.execute_command("SWEEP.STATUS", job))
        on_progress(status)
        if status["state"] == "done":
            return status["deleted"]
        if status["state"] != "running":
            raise RuntimeError(f"sweep {job} ended {status['state']}")
        time.sleep(poll_seconds)


def clear_with_deadline(r: redis.Redis, pattern: str, seconds: float, poll_seconds=0.05) -> dict:
    """Runs a background sweep for at most `seconds`, then cancels it; returns its last fields
    (state "done" if it finished in time, else "cancelled"; what was deleted stays deleted)."""
    job = r.execute_command("SWEEP.CLEAR", pattern, "ASYNC")
    deadline = time.monotonic() + seconds
    while True:
        status = sweep_fields(r.execute_command("SWEEP.STATUS", job))
        if status["state"] != "running":
            return status
        if time.monotonic() >= deadline:
            try:
                return sweep_fields(r.execute_command("SWEEP.CANCEL", job))
            except redis.ResponseError as e:
                if "has already ended" not in str(e):  # else the next STATUS says how
                    raise
        else:
            time.sleep(poll_seconds)


def main(example, pattern="image_proxy:*", deadline="0"):
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379"))
    show = lambda s: print(f"progress {s['state']} {s['progress']} deleted {s['deleted']}")
    if example == "clear":
        result = {"deleted": clear_all_image_caches(r)}
    elif example == "progress":
        result = {"deleted": clear_with_progress(r, pattern, show, poll_seconds=0.01)}
    elif example == "cancel":
        result = clear_with_deadline(r, pattern, float(deadline), poll_seconds=0.01)
    else:
        sys.exit(f"unknown example {example}")
    print("result", json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
