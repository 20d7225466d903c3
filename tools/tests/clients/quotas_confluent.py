#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a producer_byte_rate quota.

Usage: quotas_confluent.py BOOTSTRAP TOPIC QUOTA

Two producers write 16 KiB records as fast as they can at once: client id
"throttled", which has a QUOTA bytes/s producer_byte_rate, for 8 s, and
client id "free", which has none, for 4 s. After the first seconds (the
burst the quota window allows a new client, as in Kafka) the throttled one's
acknowledged bytes per second must be within 10% of QUOTA, and librdkafka
must have reported throttle times above 0 (throttle_cb); the free one must
run far above the quota (over 5x) and never be throttled.
"""

import sys
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from compat import check

BOOTSTRAP, TOPIC, QUOTA = sys.argv[1], sys.argv[2], int(sys.argv[3])
VALUE = b"q" * 16384
# The quota window is 3 samples of 1 s (quotas.sh): by then the burst it
# allows a new client is spent and the rate is the quota's.
SETTLED_S = 3.0


def run(client_id, seconds, report):
    throttles = []
    acked = []  # (seconds since start, value bytes)
    start = time.monotonic()

    def delivered(err, msg):
        if err is None:
            acked.append((time.monotonic() - start, len(msg.value())))

    p = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "client.id": client_id,
        "linger.ms": 5,
        "batch.size": 65536,
        "compression.type": "none",
        # librdkafka reports throttle_time_ms in seconds.
        "throttle_cb": lambda event: throttles.append(event.throttle_time),
    })
    while time.monotonic() - start < seconds:
        try:
            p.produce(TOPIC, VALUE, on_delivery=delivered)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    # What is still queued after the run is not counted: only acknowledgements within it.
    p.purge()
    p.flush(10)
    report[client_id] = (acked, throttles)


admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)

report = {}
threads = [threading.Thread(target=run, args=(c, s, report)) for c, s in (("throttled", 8.0), ("free", 4.0))]
for t in threads:
    t.start()
for t in threads:
    t.join()

acked, throttles = report["throttled"]
settled = [size for at, size in acked if SETTLED_S <= at < 8.0]
rate = sum(settled) / (8.0 - SETTLED_S)
print(f"throttled: {rate / 1e6:.3f} MB/s from {SETTLED_S:.0f} s to 8 s (quota {QUOTA / 1e6:.3f} MB/s), "
      f"{len(throttles)} throttle events, largest {max(throttles, default=0) * 1000:.0f} ms")
check(abs(rate - QUOTA) <= 0.1 * QUOTA, f"throttled producer ran at {rate:.0f} B/s, quota {QUOTA}")
check(any(t > 0 for t in throttles), "no throttle_time_ms > 0 reported to the throttled producer")

acked, throttles = report["free"]
rate = sum(size for _, size in acked) / 4.0
print(f"free: {rate / 1e6:.3f} MB/s, {len(throttles)} throttle events")
check(rate > 5 * QUOTA, f"the unthrottled producer ran at only {rate:.0f} B/s")
check(not any(t > 0 for t in throttles), f"the unthrottled producer was throttled: {throttles[:5]}")
print("ok")
