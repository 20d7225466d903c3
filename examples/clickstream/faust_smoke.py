"""A faust-streaming smoke test of Weir (faust_smoke.sh drives it): not the
click-stream pipeline, but the Kafka surface faust uses, under a SIGKILL.

faust 0.15.3 talks to Kafka through aiokafka 0.14.0 (not librdkafka). With
processing_guarantee="exactly_once" it opens one transactional producer per
assigned partition, with a stable transactional.id (`<app>-<group>-<partition>`),
so a restarted worker's InitProducerId fences the killed one and aborts its
open transaction at once. The app copies `fin` to `fout` partition by
partition and counts records per key in a Table (a compacted changelog topic
it creates), all inside those transactions.

  faust_smoke.py worker            the faust worker (BOOTSTRAP in the environment)
  faust_smoke.py produce A B       produces v<A>..v<B-1> to fin, paced (0.2 s per 50)
  faust_smoke.py check N [--wait S]
      reads fout read_committed until it holds v0..v<N-1> (or S seconds pass)
      and prints records, distinct, duplicated, missing; exits 1 unless
      exactly v0..v<N-1>, each once
"""

import collections
import os
import sys
import time

BOOTSTRAP = os.environ.get("BOOTSTRAP", "127.0.0.1:9092")


def worker():
    import faust

    app = faust.App(
        "clickstream-faust-smoke",
        broker=f"kafka://{BOOTSTRAP}",
        processing_guarantee="exactly_once",
        web_enabled=False,
        store="memory://",
        topic_partitions=2,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        datadir=os.environ.get("FAUST_DATADIR", "faust-data"),
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=2)
    src, dst = app.topic("fin", **raw), app.topic("fout", **raw)
    counts = app.Table("counts", default=int, partitions=2)

    @app.agent(src)
    async def copy(stream):
        async for event in stream.events():
            counts[event.key.decode()] += 1
            await dst.send(key=event.key, value=event.value, partition=event.message.partition)

    @app.agent(dst)
    async def drain(stream):  # so that fout is in the app's topic group (faust routes sends by it)
        async for _ in stream:
            pass

    sys.argv = [sys.argv[0], "worker", "-l", "info", "--without-web"]
    app.main()


def produce(a, b):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
    for i in range(a, b):
        p.produce("fin", key=f"k{i % 37}".encode(), value=f"v{i}".encode())
        if i % 50 == 49:
            p.poll(0)
            time.sleep(0.2)
    if p.flush(30):
        sys.exit("produce: undelivered records")


def read_fout():
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "faust-smoke-check",
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    parts = c.list_topics("fout", timeout=10).topics["fout"].partitions
    c.assign([TopicPartition("fout", p, 0) for p in parts])
    values, eof = collections.Counter(), set()
    deadline = time.time() + 30
    while len(eof) < len(parts) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        eof.discard(m.partition())
        values[m.value().decode()] += 1
    c.close()
    return values


def check(n, wait):
    want = {f"v{i}" for i in range(n)}
    deadline = time.time() + wait
    while True:
        values = read_fout()
        if want <= set(values) or time.time() > deadline:
            break
        time.sleep(1)
    duplicated = sum(1 for v, k in values.items() if k > 1)
    missing, extra = len(want - set(values)), len(set(values) - want)
    print(f"fout (read_committed): {sum(values.values())} records, {len(values)} distinct, "
          f"{duplicated} duplicated, {missing} missing, {extra} extra")
    return duplicated + missing + extra


def main():
    command = sys.argv[1]
    if command == "worker":
        worker()
    elif command == "produce":
        produce(int(sys.argv[2]), int(sys.argv[3]))
    elif command == "check":
        wait = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--wait" else 0
        sys.exit(1 if check(int(sys.argv[2]), wait) else 0)


if __name__ == "__main__":
    main()
