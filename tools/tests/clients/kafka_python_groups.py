#!/usr/bin/env python3
"""Consumer groups with kafka-python (a pure-Python client nobody here wrote).

Usage: kafka_python_groups.py BOOTSTRAP TOPIC

Three consumers in one group split a 6-partition topic with no overlap, read
every message exactly once (no member joins or leaves while they read), and
commit; a new consumer of the group then reads only messages produced after
that; the admin client lists and describes the group.
"""
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

PARTITIONS = 6
MESSAGES = 3000


def fail(message):
    print(f"FAIL kafka-python groups: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    group = f"{topic}-group"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="weir-compat-groups")
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    for i in range(MESSAGES):
        producer.send(topic, key=f"k{i % 97}".encode(), value=str(i).encode())
    producer.flush()

    consumers = [
        KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        for _ in range(3)
    ]
    seen = {}  # value -> (consumer, partition, offset)
    lock = threading.Lock()
    errors = []

    def run(index, consumer):
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                with lock:
                    if len(seen) >= MESSAGES:
                        return
                for tp, records in consumer.poll(timeout_ms=200).items():
                    with lock:
                        for r in records:
                            if r.value in seen:
                                errors.append(f"message {r.value} read twice: {seen[r.value]} and {(index, tp.partition, r.offset)}")
                            seen[r.value] = (index, tp.partition, r.offset)
                    consumer.commit()
        except Exception as e:  # reported by the main thread
            errors.append(f"consumer {index}: {e!r}")

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail("; ".join(errors[:5]))
    if len(seen) != MESSAGES:
        fail(f"the group read {len(seen)} of {MESSAGES} messages")
    owners = {}
    for consumer_index, partition, _ in seen.values():
        owners.setdefault(partition, set()).add(consumer_index)
    if sorted(owners) != list(range(PARTITIONS)) or any(len(o) != 1 for o in owners.values()):
        fail(f"partitions were not split without overlap: {owners}")
    if sorted(len([p for p in owners if consumer_index in owners[p]]) for consumer_index in range(3)) != [2, 2, 2]:
        fail(f"six partitions over three consumers should be 2/2/2: {owners}")

    groups = [g["group_id"] for g in admin.list_groups()]
    if group not in groups:
        fail(f"list_groups lacks {group}: {groups}")
    described = admin.describe_groups([group])[group]
    if described["group_state"] != "Stable" or len(described["members"]) != 3 or described["error"]:
        fail(f"describe_groups: {described}")
    for c in consumers:
        c.close()

    # A new member of the group starts after the committed offsets.
    for i in range(MESSAGES, MESSAGES + 10):
        producer.send(topic, value=str(i).encode())
    producer.flush()
    late = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", consumer_timeout_ms=8000)
    values = sorted(int(r.value) for r in late)
    late.close()
    if values != list(range(MESSAGES, MESSAGES + 10)):
        fail(f"after the commits a new consumer should read only the 10 new messages, got {values[:20]}")
    print(f"ok kafka-python groups: {MESSAGES} messages over {PARTITIONS} partitions split 2/2/2 among 3 consumers, "
          "each once; a new member resumed after the commits")


if __name__ == "__main__":
    main()
