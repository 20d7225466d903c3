#!/usr/bin/env python3
"""Round trip through the broker with kafka-python (a real third-party client).

Usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC

Creates TOPIC with 3 partitions (KafkaAdminClient / CreateTopics), produces
2,000 keyed messages with headers and values from 1 byte to ~20 KiB
(acks=all, idempotent: the kafka-python 3.x default), then reads everything back with a group-less
KafkaConsumer (assign + seek_to_beginning) and checks that:
  * every message comes back exactly once, byte-identical (key, value,
    headers, CreateTime timestamp);
  * it comes back at the offset and partition the Produce response reported;
  * offsets in each partition are contiguous from 0;
  * per-partition and per-key produce order is preserved;
  * end_offsets (ListOffsets latest) sum to 2,000.
Exits non-zero with a message on the first class of mismatch found.
"""
import logging
import random
import sys
import time
from collections import defaultdict

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

N_MESSAGES = 2000
N_PARTITIONS = 3
N_KEYS = 37
MAX_VALUE = 20 * 1024


def fail(msg):
    print(f"FAIL kafka-python: {msg}", file=sys.stderr)
    sys.exit(1)


def build_messages():
    rng = random.Random(20240601)
    base_ts = int(time.time() * 1000) - 60_000
    msgs = []
    for seq in range(N_MESSAGES):
        key = b"key-%02d-" % (seq % N_KEYS) + bytes([0x00, 0xFF, seq % N_KEYS])
        # Sizes spread over 1 B .. 20 KiB, with the extremes always present.
        if seq % 250 == 0:
            size = 1
        elif seq % 250 == 1:
            size = MAX_VALUE
        else:
            size = int(rng.triangular(1, MAX_VALUE, 200))
        value = rng.randbytes(size)
        headers = [
            ("seq", str(seq).encode()),
            ("bin", bytes([seq & 0xFF, 0x00, 0x80, 0xFF])),
            ("empty", b""),
        ]
        if seq % 3 == 0:
            headers.append(("seq", b"dup-" + str(seq).encode()))  # repeated header key
        msgs.append((seq, key, value, headers, base_ts + seq))
    return msgs


def main():
    if len(sys.argv) != 3:
        fail("usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC")
    bootstrap, topic = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.WARNING)

    # --- CreateTopics ---------------------------------------------------
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="weir-compat-admin",
                             request_timeout_ms=10_000)
    try:
        admin.create_topics({topic: {"num_partitions": N_PARTITIONS, "replication_factor": 1}},
                            timeout_ms=10_000)
    except Exception as e:  # noqa: BLE001
        fail(f"CreateTopics failed: {e!r}")
    try:
        described = admin.describe_topics([topic])
    except Exception as e:  # noqa: BLE001
        fail(f"describe_topics (Metadata) failed: {e!r}")
    admin.close()
    parts = described[0].get("partitions", []) if described else []
    if described[0].get("error_code", 0) != 0 or len(parts) != N_PARTITIONS:
        fail(f"Metadata after CreateTopics does not show {N_PARTITIONS} partitions: {described!r}")

    # --- Produce --------------------------------------------------------
    msgs = build_messages()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="weir-compat-producer",
        acks="all",
        enable_idempotence=True,
        max_in_flight_requests_per_connection=1,  # so produce order == log order even on retry
        linger_ms=5,
        max_request_size=1_048_576,
        request_timeout_ms=15_000,
    )
    futures = []
    for seq, key, value, headers, ts in msgs:
        futures.append(producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=ts))
    producer.flush(timeout=60)
    reported = {}  # seq -> (partition, offset) from the Produce response
    for (seq, *_), fut in zip(msgs, futures):
        try:
            md = fut.get(timeout=30)
        except Exception as e:  # noqa: BLE001
            fail(f"produce of message seq={seq} failed: {e!r}")
        reported[seq] = (md.partition, md.offset)
    producer.close()

    # --- Consume (no group) ---------------------------------------------
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="weir-compat-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        request_timeout_ms=30_000,
    )
    tps = [TopicPartition(topic, p) for p in range(N_PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)

    end = consumer.end_offsets(tps)
    total_end = sum(end.values())
    if total_end != N_MESSAGES:
        fail(f"end_offsets sum to {total_end}, expected {N_MESSAGES}: {end!r}")
    begin = consumer.beginning_offsets(tps)
    if any(v != 0 for v in begin.values()):
        fail(f"beginning_offsets not all 0: {begin!r}")

    got = []
    deadline = time.monotonic() + 60
    for rec in consumer:  # stops after consumer_timeout_ms without records
        got.append(rec)
        if len(got) >= N_MESSAGES:
            break
        if time.monotonic() > deadline:
            break
    # Anything more would be a duplicate or an extra record: poll a little longer.
    extra = consumer.poll(timeout_ms=1500)
    for recs in extra.values():
        got.extend(recs)
    consumer.close()

    # --- Checks ---------------------------------------------------------
    by_seq = {m[0]: m for m in msgs}
    seen = {}
    per_partition = defaultdict(list)
    errors = []
    for rec in got:
        hdrs = list(rec.headers or [])
        seq_hdr = [v for k, v in hdrs if k == "seq"]
        try:
            seq = int(seq_hdr[0])
        except (IndexError, ValueError):
            errors.append(f"record p{rec.partition}@{rec.offset} has no usable seq header: {hdrs!r}")
            continue
        if seq in seen:
            errors.append(f"seq {seq} consumed twice (p{seen[seq][0]}@{seen[seq][1]} and p{rec.partition}@{rec.offset})")
            continue
        seen[seq] = (rec.partition, rec.offset)
        per_partition[rec.partition].append((rec.offset, seq, rec.key))
        _, key, value, headers, ts = by_seq.get(seq, (None, None, None, None, None))
        if key is None:
            errors.append(f"unknown seq {seq}")
            continue
        if rec.key != key:
            errors.append(f"seq {seq}: key {rec.key!r} != {key!r}")
        if rec.value != value:
            errors.append(f"seq {seq}: value differs (len {len(rec.value or b'')} vs {len(value)})")
        if hdrs != headers:
            errors.append(f"seq {seq}: headers {hdrs!r} != {headers!r}")
        if rec.timestamp != ts or rec.timestamp_type != 0:
            errors.append(f"seq {seq}: timestamp {rec.timestamp} (type {rec.timestamp_type}) != {ts} (CreateTime)")
        if reported[seq] != (rec.partition, rec.offset):
            errors.append(f"seq {seq}: consumed at p{rec.partition}@{rec.offset}, "
                          f"Produce response said p{reported[seq][0]}@{reported[seq][1]}")
    missing = sorted(set(by_seq) - set(seen))
    if missing:
        errors.append(f"{len(missing)} messages never consumed, e.g. seq {missing[:10]}")

    for p in range(N_PARTITIONS):
        recs = per_partition.get(p, [])
        offsets = [o for o, _, _ in recs]
        if offsets != list(range(len(recs))):
            errors.append(f"partition {p}: offsets not contiguous from 0 in consume order: {offsets[:20]}...")
        seqs = [s for _, s, _ in recs]
        if seqs != sorted(seqs):
            errors.append(f"partition {p}: produce order not preserved")
        if end.get(TopicPartition(topic, p)) != len(recs):
            errors.append(f"partition {p}: end offset {end.get(TopicPartition(topic, p))} != {len(recs)} records consumed")
        if not recs:
            errors.append(f"partition {p}: received no messages (partitioner spread expected)")
    per_key = defaultdict(list)
    for p in range(N_PARTITIONS):
        for _, seq, key in per_partition.get(p, []):
            per_key[key].append(seq)
    for key, seqs in per_key.items():
        if seqs != sorted(seqs):
            errors.append(f"key {key!r}: per-key order not preserved")

    if errors:
        for e in errors[:30]:
            print(f"  {e}", file=sys.stderr)
        fail(f"{len(errors)} mismatches ({len(got)} records consumed)")
    sizes = [len(m[2]) for m in msgs]
    print(f"ok kafka-python: {N_MESSAGES} messages over {N_PARTITIONS} partitions "
          f"({dict(sorted((p, len(v)) for p, v in per_partition.items()))}), values {min(sizes)}..{max(sizes)} B, "
          f"keys/values/headers/timestamps identical, offsets contiguous, order preserved")


if __name__ == "__main__":
    main()
