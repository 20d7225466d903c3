"""Transactions with confluent-kafka (librdkafka): aborted transactions are
invisible to read_committed and visible to read_uncommitted consumers, a
second producer of a transactional id fences the first, and a
consume-transform-produce loop killed several times mid-transaction yields
each output exactly once for a read_committed consumer.

Usage: confluent_transactions.py BOOTSTRAP TOPIC_PREFIX
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
INPUT, OUTPUT, PLAIN = PREFIX + "-in", PREFIX + "-out", PREFIX + "-txn"
TOTAL = 300
TIMEOUT = 30


def create_topics():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(INPUT, 2, 1), NewTopic(OUTPUT, 1, 1), NewTopic(PLAIN, 1, 1)])
    for f in futures.values():
        f.result(TIMEOUT)


def txn_producer(transactional_id):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": transactional_id, "linger.ms": 5})
    p.init_transactions(TIMEOUT)
    return p


def messages(consumer, partitions, eof, timeout_message):
    """Yields what `consumer` polls until all its `partitions` partitions are at
    their end; `eof` holds those that are, and carries over between calls. Fails
    with timeout_message() after TIMEOUT seconds."""
    deadline = time.time() + TIMEOUT
    while len(eof) < partitions:
        assert time.time() < deadline, timeout_message()
        m = consumer.poll(0.1)
        if m is None:
            continue
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            eof.add(m.partition())
            continue
        eof.discard(m.partition())
        yield m


def read_values(topic, partitions, isolation):
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "readers",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values = []
    for m in messages(c, partitions, set(), lambda: f"reading {topic} timed out with {len(values)} values"):
        values.append(m.value().decode())
    c.close()
    return values


def aborted_invisible_and_fencing():
    p = txn_producer(PREFIX + "-basic")
    for label, commit in (("kept", True), ("dropped", False)):
        p.begin_transaction()
        for i in range(5):
            p.produce(PLAIN, f"{label}-{i}".encode(), partition=0)
        p.flush(TIMEOUT)
        (p.commit_transaction if commit else p.abort_transaction)(TIMEOUT)
    assert read_values(PLAIN, 1, "read_committed") == [f"kept-{i}" for i in range(5)]
    assert len(read_values(PLAIN, 1, "read_uncommitted")) == 10

    p.begin_transaction()
    p.produce(PLAIN, b"zombie", partition=0)
    p.flush(TIMEOUT)
    txn_producer(PREFIX + "-basic")  # fences p
    try:
        p.commit_transaction(TIMEOUT)
        raise AssertionError("the fenced producer committed")
    except KafkaException as e:
        assert e.args[0].fatal(), e
    assert "zombie" not in read_values(PLAIN, 1, "read_committed")


def transform_run(crash_after, batch, offsets_before_crash):
    """Returns True once the input is exhausted; False after a simulated crash."""
    producer = txn_producer(PREFIX + "-transformer")
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": PREFIX + "-transformers",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    consumer.assign([TopicPartition(INPUT, p) for p in range(2)])
    processed, eof = 0, set()
    while True:
        taken = []
        for m in messages(consumer, 2, eof, lambda: "input stalled"):
            taken.append(m)
            if len(taken) == batch:
                break
        if not taken:
            consumer.close()
            return True
        producer.begin_transaction()
        for m in taken:
            producer.produce(OUTPUT, m.value() + b"-out", partition=0)
        producer.flush(TIMEOUT)
        processed += len(taken)
        crashing = crash_after is not None and processed >= crash_after
        if crashing and not offsets_before_crash:
            return False  # dropped mid-transaction, like a killed process
        last = {}
        for m in taken:
            last[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(INPUT, p, o) for p, o in last.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT)
        if crashing:
            return False
        producer.commit_transaction(TIMEOUT)


def consume_transform_produce():
    plain = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(TOTAL):
        plain.produce(INPUT, f"in-{i}".encode(), partition=i % 2)
    plain.flush(TIMEOUT)
    for run, crash_after in enumerate([40, 70, 25, 55]):
        assert not transform_run(crash_after, 6 + run, offsets_before_crash=run % 2 == 1)
    assert transform_run(None, 20, False)
    outputs = sorted(read_values(OUTPUT, 1, "read_committed"))
    assert outputs == sorted(f"in-{i}-out" for i in range(TOTAL)), f"{len(outputs)} outputs"
    assert len(read_values(OUTPUT, 1, "read_uncommitted")) > TOTAL


create_topics()
aborted_invisible_and_fencing()
consume_transform_produce()
print("confluent-kafka transactions: ok")
