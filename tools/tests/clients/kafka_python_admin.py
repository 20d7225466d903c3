#!/usr/bin/env python3
"""kafka-python: listing every topic, a pattern subscription, the admin API,
and the codec topics.

Usage: kafka_python_admin.py BOOTSTRAP PREFIX

  * KafkaAdminClient.list_topics() and KafkaConsumer.topics() (all-topics
    Metadata) list the topics created here;
  * a consumer subscribed with pattern "^PREFIX-re-.*" reads what was produced
    to the two topics that match, nothing of the third;
  * admin: create a topic with configs, describe, alter (set one, reset one to
    its default), create partitions (and fewer: INVALID_PARTITIONS), an unknown
    config (INVALID_CONFIG), delete the topic;
  * one topic per codec of compat.CODEC_RECORDS keyed records, each on the
    partition of the Java-compatible default partitioner (murmur2); cross_read.py
    reads them with another client.
"""

import sys
import time

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from compat import CODEC_PARTITIONS, CODEC_RECORDS, CODECS, check, codec_record, codec_topic, murmur2_partition

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
TIMEOUT = 30


def produce(topic, records, **conf):
    """Produces (key, value) records; returns [(key, partition)] as acknowledged."""
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=20, **conf)
    futures = [(key, p.send(topic, key=key, value=value)) for key, value in records]
    p.flush(TIMEOUT)
    acked = [(key, f.get(TIMEOUT).partition) for key, f in futures]
    p.close()
    return acked


def regex_subscription(admin):
    topics = [f"{PREFIX}-re-a", f"{PREFIX}-re-b", f"{PREFIX}-other"]
    admin.create_topics({t: {"num_partitions": 2, "replication_factor": 1} for t in topics})
    listed = admin.list_topics()
    check(set(topics) <= set(listed), f"list_topics() lacks {set(topics) - set(listed)}")
    for t in topics:
        produce(t, [(f"k{i}".encode(), f"{t}/{i}".encode()) for i in range(50)])

    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=f"{PREFIX}-regex", auto_offset_reset="earliest",
                      metadata_max_age_ms=1000)
    check(set(topics) <= c.topics(), f"KafkaConsumer.topics() lacks {set(topics) - c.topics()}")
    c.subscribe(pattern=f"^{PREFIX}-re-.*")
    got = {}
    deadline = time.time() + TIMEOUT
    while len(got) < 100 and time.time() < deadline:
        for records in c.poll(timeout_ms=200).values():
            for r in records:
                got[r.value.decode()] = r.topic
    extra = sum(len(v) for v in c.poll(timeout_ms=1000).values())
    c.close()
    want = {f"{t}/{i}": t for t in topics[:2] for i in range(50)}
    check(got == want and not extra,
          f"pattern subscription read {len(got)} records ({sorted(set(got.values()))}), extra {extra}; want the 100 of {topics[:2]}")


def configs_of(admin, topic):
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    return described["topic"][topic]


def expect_error(error, what, fn):
    try:
        fn()
    except Errors.KafkaError as e:
        check(isinstance(e, error), f"{what}: {e!r}, want {error.__name__}")
        return
    check(False, f"{what} succeeded, want {error.__name__}")


def admin_scenario(admin):
    topic = f"{PREFIX}-admin"
    wanted = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.3", "retention.ms": "86400000"}
    admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1, "configs": wanted}})

    configs = configs_of(admin, topic)
    for name, value in wanted.items():
        c = configs[name]
        check(c["value"] == value and c["config_source"] == "DYNAMIC_TOPIC_CONFIG",
              f"describe_configs {name}: {c}")
    check("segment.bytes" in configs and configs["segment.bytes"]["config_source"] != "DYNAMIC_TOPIC_CONFIG",
          f"describe_configs: segment.bytes {configs.get('segment.bytes')}")

    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {
        "retention.ms": "3600000",
        "min.cleanable.dirty.ratio": (AlterConfigOp.DELETE, None),
    })])
    configs = configs_of(admin, topic)
    check(configs["retention.ms"]["value"] == "3600000", f"after alter: retention.ms {configs['retention.ms']}")
    ratio = configs["min.cleanable.dirty.ratio"]
    check(ratio["value"] == "0.5" and ratio["config_source"] != "DYNAMIC_TOPIC_CONFIG",
          f"after the reset: min.cleanable.dirty.ratio {ratio}, want the default 0.5")
    check(configs["cleanup.policy"]["value"] == "compact", "alter changed cleanup.policy")

    admin.create_partitions({topic: 5})
    parts = admin.describe_topics([topic])[0]["partitions"]
    check(len(parts) == 5, f"after create_partitions: {len(parts)} partitions")
    expect_error(Errors.InvalidPartitionsError, "create_partitions to fewer", lambda: admin.create_partitions({topic: 3}))
    expect_error(Errors.InvalidConfigurationError, "create_topics with an unknown config",
                 lambda: admin.create_topics({f"{PREFIX}-bad-config": {"num_partitions": 1, "replication_factor": 1,
                                                                      "configs": {"no.such.config": "1"}}}))

    admin.delete_topics([topic])
    deadline = time.time() + TIMEOUT
    while topic in admin.list_topics():
        check(time.time() < deadline, f"{topic} still listed after delete_topics")
        time.sleep(0.2)


def codec_topics(admin):
    topics = {codec: codec_topic(PREFIX, "kafka-python", codec) for codec in CODECS}
    admin.create_topics({t: {"num_partitions": CODEC_PARTITIONS, "replication_factor": 1} for t in topics.values()})
    for codec, topic in topics.items():
        records = [codec_record("kafka-python", codec, i) for i in range(CODEC_RECORDS)]
        for key, partition in produce(topic, records, compression_type=codec):
            want = murmur2_partition(key, CODEC_PARTITIONS)
            check(partition == want, f"{codec}: key {key} acknowledged on partition {partition}, murmur2 says {want}")


def main():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=TIMEOUT * 1000)
    regex_subscription(admin)
    admin_scenario(admin)
    codec_topics(admin)
    admin.close()
    print("ok kafka-python: list_topics()/topics() of all topics, pattern subscription, admin (create with configs, "
          "describe, alter, create partitions, delete), codec topics " + ", ".join(CODECS))


if __name__ == "__main__":
    main()
