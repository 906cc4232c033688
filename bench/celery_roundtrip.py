"""Celery's own client round trip, for the latency comparison: `add.delay(1, 2).get()` W+N times
against a real Celery worker; prints {"p50": ms, "p99": ms} over the last N (argv: N, queue, W).
Run by bench/run.ts with the interop app (tasks.py) on PYTHONPATH and CELERY_BROKER_URL /
CELERY_RESULT_BACKEND set."""
import json
import sys
import time

from tasks import add

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
times = []
for i in range(warmup + n):
    t0 = time.perf_counter()
    value = add.apply_async((1, 2), queue=sys.argv[2] if len(sys.argv) > 2 else None).get(timeout=10)
    if value != 3:
        raise SystemExit("bad result %r" % (value,))
    if i >= warmup:
        times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(json.dumps({"p50": times[int((len(times) - 1) * 0.5)], "p99": times[int((len(times) - 1) * 0.99)]}))
