import os

import redis

from sweep_reply import sweep_fields

r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379"))
counts = sweep_fields(r.execute_command("SWEEP.CLEAR", "image_proxy:*", "BATCH", 1000))
print(f"deleted {counts['deleted']} of {counts['scanned']} keys in {counts['elapsed_ms']} ms")
