#!/usr/bin/env python3
"""Reads the codec topics the other client tests wrote, each with a client
other than its writer, and checks every record: exactly the records of
compat.codec_record, each once, at contiguous offsets, on the partition its
writer's documented default partitioner gives its key.

Usage: cross_read.py BOOTSTRAP WRITER:PREFIX:CODEC,CODEC... ...
(each writer's topics are codec_topic(PREFIX, WRITER, CODEC))

Topics written through librdkafka (confluent-kafka, kcat, confluent-kafka-go)
are read by kafka-python, the others by confluent-kafka.
"""

import sys
from collections import Counter

from confluent_kafka import Consumer, KafkaError, TopicPartition as CkPartition
from kafka import KafkaConsumer, TopicPartition as KpPartition

from compat import CODEC_PARTITIONS, CODEC_RECORDS, PARTITIONERS, check, codec_record, codec_topic

BOOTSTRAP = sys.argv[1]
LIBRDKAFKA = {"confluent-kafka", "kcat", "confluent-kafka-go"}
TIMEOUT = 30


def read_with_kafka_python(topic):
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    tps = [KpPartition(topic, p) for p in range(CODEC_PARTITIONS)]
    c.assign(tps)
    ends = c.end_offsets(tps)
    c.seek_to_beginning(*tps)
    records = []
    for r in c:
        records.append((r.key, r.value, r.partition, r.offset))
        if len(records) >= sum(ends.values()):
            break
    c.close()
    return records


def read_with_confluent_kafka(topic):
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "cross-read", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([CkPartition(topic, p, 0) for p in range(CODEC_PARTITIONS)])
    records, eof = [], set()
    while len(eof) < CODEC_PARTITIONS:
        m = c.poll(TIMEOUT)
        check(m is not None, f"{topic}: confluent-kafka read nothing for {TIMEOUT} s")
        if m.error():
            check(m.error().code() == KafkaError._PARTITION_EOF, f"{topic}: {m.error()}")
            eof.add(m.partition())
            continue
        records.append((m.key(), m.value(), m.partition(), m.offset()))
    c.close()
    return records


def main():
    checked = []
    for arg in sys.argv[2:]:
        writer, prefix, codecs = arg.split(":")
        partitioner = PARTITIONERS[writer]
        reader = "kafka-python" if writer in LIBRDKAFKA else "confluent-kafka"
        for codec in codecs.split(","):
            topic = codec_topic(prefix, writer, codec)
            read = read_with_kafka_python if writer in LIBRDKAFKA else read_with_confluent_kafka
            records = read(topic)
            want = Counter(codec_record(writer, codec, i) for i in range(CODEC_RECORDS))
            got = Counter((k, v) for k, v, _, _ in records)
            check(got == want, f"{topic} read by {reader}: {sum((want - got).values())} records missing, "
                               f"{sum((got - want).values())} unexpected, of {len(records)} read")
            for key, _, partition, _ in records:
                check(partition == partitioner(key, CODEC_PARTITIONS),
                      f"{topic}: key {key} on partition {partition}, {writer}'s partitioner "
                      f"({partitioner.__name__}) says {partitioner(key, CODEC_PARTITIONS)}")
            for p in range(CODEC_PARTITIONS):
                offsets = [o for _, _, q, o in records if q == p]
                check(offsets == list(range(len(offsets))), f"{topic} partition {p}: offsets {offsets[:10]}...")
            checked.append(f"{writer}/{codec} by {reader}")
    print("ok cross-read: " + "; ".join(checked))


if __name__ == "__main__":
    main()
