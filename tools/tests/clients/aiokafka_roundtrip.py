#!/usr/bin/env python3
"""aiokafka (asyncio): produce, consume, a group that commits, and the codec
topics.

Usage: aiokafka_roundtrip.py BOOTSTRAP PREFIX

  * 1,000 keyed records with headers to a 3-partition topic (acks=all,
    idempotent), each acknowledged on the partition of the Java-compatible
    default partitioner (murmur2) and at the offset it is then read back from;
  * two consumers of one group split the partitions, read every record once,
    commit; committed() and end_offsets() agree; a new member of the group then
    reads only what was produced after the commits;
  * one topic per codec of compat.CODEC_RECORDS keyed records (murmur2
    partitions); cross_read.py reads them with another client.
"""

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from compat import CODEC_PARTITIONS, CODEC_RECORDS, CODECS, check, codec_record, codec_topic, murmur2_partition

BOOTSTRAP, PREFIX = sys.argv[1], sys.argv[2]
TOPIC = f"{PREFIX}-roundtrip"
PARTITIONS = 3
RECORDS = 1000
TIMEOUT = 30


async def produce(topic, records, **conf):
    """Sends (key, value, headers) records; returns [(key, value, partition, offset)]."""
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=20, **conf)
    await p.start()
    try:
        futures = [(key, value, await p.send(topic, value, key=key, headers=headers)) for key, value, headers in records]
        acked = []
        for key, value, f in futures:
            md = await asyncio.wait_for(f, TIMEOUT)
            acked.append((key, value, md.partition, md.offset))
        return acked
    finally:
        await p.stop()


async def consume_group(group, stop_at, members=2):
    """Members of `group` read until they have `stop_at` records together,
    committing after each batch; returns {value: (member, partition, offset)}."""
    consumers = [AIOKafkaConsumer(TOPIC, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                                  enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=1000)
                 for _ in range(members)]
    for c in consumers:
        await c.start()
    seen, duplicates = {}, []

    async def run(index, c):
        while len(seen) < stop_at:
            batch = await c.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if r.value in seen:
                        duplicates.append((r.value, seen[r.value], (index, tp.partition, r.offset)))
                    seen[r.value] = (index, tp.partition, r.offset)
            if batch:
                await c.commit()

    try:
        await asyncio.wait_for(asyncio.gather(*(run(i, c) for i, c in enumerate(consumers))), TIMEOUT * 2)
    except asyncio.TimeoutError:
        check(False, f"group {group} read {len(seen)} of {stop_at} records")
    check(not duplicates, f"records read twice: {duplicates[:3]}")
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    ends = await consumers[0].end_offsets(tps)
    for c in consumers:
        for tp in c.assignment():
            committed = await c.committed(tp)
            check(committed == ends[tp], f"{tp}: committed {committed}, end offset {ends[tp]}")
    for c in consumers:
        await c.stop()
    return seen


async def roundtrip(admin):
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    records = [(f"key-{i % 31}".encode(), f"value-{i}".encode() * (1 + i % 40), [("seq", str(i).encode())])
               for i in range(RECORDS)]
    acked = await produce(TOPIC, records, enable_idempotence=True)
    where = {}
    for key, value, partition, offset in acked:
        want = murmur2_partition(key, PARTITIONS)
        check(partition == want, f"key {key} acknowledged on partition {partition}, murmur2 says {want}")
        where[value] = (partition, offset)

    group = f"{PREFIX}-group"
    seen = await consume_group(group, RECORDS)
    check(len(seen) == RECORDS, f"the group read {len(seen)} of {RECORDS}")
    owners = {}
    for value, (member, partition, offset) in seen.items():
        check(where[value] == (partition, offset), f"{value[:20]} read at {partition}@{offset}, acknowledged at {where[value]}")
        owners.setdefault(partition, set()).add(member)
    check(all(len(m) == 1 for m in owners.values()) and len({m for s in owners.values() for m in s}) == 2,
          f"partitions were not split between the two members: {owners}")

    late = [(b"late", f"late-{i}".encode(), []) for i in range(10)]
    await produce(TOPIC, late)
    seen = await consume_group(group, 10, members=1)
    check(sorted(seen) == sorted(v for _, v, _ in late), f"after the commits the group read {sorted(seen)[:12]}")


async def codecs(admin):
    topics = {codec: codec_topic(PREFIX, "aiokafka", codec) for codec in CODECS}
    await admin.create_topics([NewTopic(t, CODEC_PARTITIONS, 1) for t in topics.values()])
    for codec, topic in topics.items():
        records = [(*codec_record("aiokafka", codec, i), []) for i in range(CODEC_RECORDS)]
        for key, _, partition, _ in await produce(topic, records, compression_type=codec):
            want = murmur2_partition(key, CODEC_PARTITIONS)
            check(partition == want, f"{codec}: key {key} acknowledged on partition {partition}, murmur2 says {want}")


async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await roundtrip(admin)
        await codecs(admin)
    finally:
        await admin.close()
    print(f"ok aiokafka: {RECORDS} records produced and read back at their acknowledged offsets on murmur2 partitions, "
          "a group of 2 split and committed, a new member resumed after the commits, codec topics " + ", ".join(CODECS))


if __name__ == "__main__":
    asyncio.run(main())
