#!/usr/bin/env python3
"""confluent-kafka (librdkafka): listing every topic, a regex subscription,
the admin API, and the codec topics.

Usage: confluent_admin.py BOOTSTRAP PREFIX

  * AdminClient.list_topics() with no topic: librdkafka's all-topics Metadata
    (Weir once closed the connection on it) lists the topics created here;
  * a consumer subscribed to "^PREFIX-re-.*" reads what was produced to the two
    topics that match and nothing of the one that does not;
  * admin: create a topic with configs, describe, alter (incremental: set one,
    delete one back to its default), create partitions (and fewer: refused),
    an unknown config (refused), delete the topic;
  * one topic per codec (gzip, snappy, lz4, zstd) of compat.CODEC_RECORDS keyed
    records, each landing on the partition of librdkafka's default
    partitioner (consistent_random: CRC32 of the key); cross_read.py reads them
    with another client.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, ResourceType)

from compat import CODEC_PARTITIONS, CODEC_RECORDS, CODECS, check, codec_record, codec_topic, crc32_partition

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
TIMEOUT = 30


def wait(futures):
    return {k: f.result(TIMEOUT) for k, f in futures.items()}


def produce(topic, records, **conf):
    """Produces (key, value) records; returns [(key, value, partition)] as delivered."""
    delivered, errors = [], []

    def report(err, msg):
        if err:
            errors.append(err)
        else:
            delivered.append((msg.key(), msg.value(), msg.partition()))

    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 20, **conf})
    for key, value in records:
        p.produce(topic, value, key, on_delivery=report)
    check(p.flush(TIMEOUT) == 0, f"{topic}: records left unsent")
    check(not errors, f"{topic}: delivery errors {errors[:3]}")
    return delivered


def list_all_topics(admin):
    md = admin.list_topics(timeout=TIMEOUT)  # no topic: all topics
    for name, t in md.topics.items():
        check(t.error is None, f"list_topics: {name}: {t.error}")
    return md


def regex_subscription(admin):
    topics = [f"{PREFIX}-re-a", f"{PREFIX}-re-b", f"{PREFIX}-other"]
    wait(admin.create_topics([NewTopic(t, 2, 1) for t in topics]))
    md = list_all_topics(admin)
    check(set(topics) <= set(md.topics), f"list_topics() lacks {set(topics) - set(md.topics)}")
    check(all(len(md.topics[t].partitions) == 2 for t in topics), "list_topics(): not 2 partitions each")
    check(len(md.brokers) == 1, f"list_topics(): brokers {md.brokers}")
    for t in topics:
        produce(t, [(f"k{i}".encode(), f"{t}/{i}".encode()) for i in range(50)])

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"{PREFIX}-regex", "auto.offset.reset": "earliest",
                  "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe([f"^{PREFIX}-re-.*"])
    got = {}
    deadline = time.time() + TIMEOUT
    while len(got) < 100 and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        check(m.error() is None, f"regex consumer: {m.error()}")
        got[m.value().decode()] = m.topic()
    extra = c.consume(100, 1.0)
    c.close()
    want = {f"{t}/{i}": t for t in topics[:2] for i in range(50)}
    check(got == want and not extra,
          f"regex subscription read {len(got)} records ({sorted(set(got.values()))}), extra {len(extra)}; want the 100 of {topics[:2]}")


def configs_of(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return wait(admin.describe_configs([res]))[res]


def admin_scenario(admin):
    topic = f"{PREFIX}-admin"
    wanted = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.3", "retention.ms": "86400000"}
    wait(admin.create_topics([NewTopic(topic, 2, 1, config=wanted)]))

    configs = configs_of(admin, topic)
    for name, value in wanted.items():
        e = configs[name]
        check(e.value == value and e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and not e.is_default,
              f"describe_configs {name}: {e.value!r} source {e.source} default {e.is_default}")
    check("segment.bytes" in configs and "max.message.bytes" in configs,
          f"describe_configs lacks the topic's other configs: {sorted(configs)}")

    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    wait(admin.incremental_alter_configs([res]))
    configs = configs_of(admin, topic)
    check(configs["retention.ms"].value == "3600000", f"after alter: retention.ms {configs['retention.ms'].value}")
    ratio = configs["min.cleanable.dirty.ratio"]
    check(ratio.value == "0.5" and ratio.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
          f"after delete: min.cleanable.dirty.ratio {ratio.value} source {ratio.source}, want the default 0.5")
    check(configs["cleanup.policy"].value == "compact", "alter changed cleanup.policy")

    wait(admin.create_partitions([NewPartitions(topic, 5)]))
    md = admin.list_topics(topic, timeout=TIMEOUT)
    check(len(md.topics[topic].partitions) == 5, f"after create_partitions: {len(md.topics[topic].partitions)} partitions")
    try:
        wait(admin.create_partitions([NewPartitions(topic, 3)]))
        check(False, "create_partitions to fewer partitions succeeded")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.INVALID_PARTITIONS, f"create_partitions to fewer: {e}")
    try:
        wait(admin.create_topics([NewTopic(f"{PREFIX}-bad-config", 1, 1, config={"no.such.config": "1"})]))
        check(False, "create_topics with an unknown config succeeded")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.INVALID_CONFIG, f"create_topics with an unknown config: {e}")

    wait(admin.delete_topics([topic]))
    deadline = time.time() + TIMEOUT
    while topic in list_all_topics(admin).topics:
        check(time.time() < deadline, f"{topic} still listed after delete_topics")
        time.sleep(0.2)


def codec_topics(admin):
    topics = {codec: codec_topic(PREFIX, "confluent-kafka", codec) for codec in CODECS}
    wait(admin.create_topics([NewTopic(t, CODEC_PARTITIONS, 1) for t in topics.values()]))
    for codec, topic in topics.items():
        records = [codec_record("confluent-kafka", codec, i) for i in range(CODEC_RECORDS)]
        for key, _, partition in produce(topic, records, **{"compression.type": codec}):
            check(partition == crc32_partition(key, CODEC_PARTITIONS),
                  f"{codec}: key {key} delivered to partition {partition}, CRC32 says {crc32_partition(key, CODEC_PARTITIONS)}")


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    regex_subscription(admin)
    admin_scenario(admin)
    codec_topics(admin)
    print("ok confluent-kafka: list_topics() of all topics, regex subscription, admin (create with configs, "
          "describe, incremental alter, create partitions, delete), codec topics " + ", ".join(CODECS))


if __name__ == "__main__":
    main()
