"""What the client scenarios here share: the records of the codec topics
(written by one client, read by another, see cross_read.py) and the default
partitioners the clients document, computed here from their documented hashes
so that a test never asks a client where its own keys should land.
"""

import sys
import time
import zlib

CODECS = ("gzip", "snappy", "lz4", "zstd")
CODEC_PARTITIONS = 4
CODEC_RECORDS = 200


def codec_topic(prefix, writer, codec):
    return f"{prefix}-codec-{writer}-{codec}"


def codec_record(writer, codec, i):
    """Record i of a codec topic: (key, value). The writers in other languages
    (kafkajs_admin.js, go/scenario) build the same bytes."""
    key = f"key-{i % 50}".encode()
    value = (f"{writer}/{codec}/{i:04d}/" + "abc" * (i % 200)).encode()
    return key, value


def murmur2(data):
    """Kafka's murmur2 (the Java client's Utils.murmur2), a signed 32-bit int."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length - length % 4
    rest = length % 4
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2_partition(key, partitions):
    """The Java client's default for a keyed record (also kafka-python's,
    aiokafka's and kafkajs's DefaultPartitioner): toPositive(murmur2) % n."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def crc32_partition(key, partitions):
    """librdkafka's default, consistent_random, for a keyed record: CRC32 % n."""
    return zlib.crc32(key) % partitions


def fnv1a32(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def fnv1a_partition(key, partitions):
    """sarama's default hash partitioner: int32(FNV-1a 32) % n, negated when
    negative (Go's % keeps the dividend's sign), so |int32(hash)| % n."""
    h = fnv1a32(key)
    return abs(h - (1 << 32) if h & 0x80000000 else h) % partitions


# The documented default partitioner of each writer.
PARTITIONERS = {
    "confluent-kafka": crc32_partition,
    "kcat": crc32_partition,
    "confluent-kafka-go": crc32_partition,
    "kafka-python": murmur2_partition,
    "aiokafka": murmur2_partition,
    "kafkajs": murmur2_partition,
    "sarama": fnv1a_partition,
}


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def self_test():
    # Known answers of the Java client's murmur2 (its unit test's values).
    assert murmur2(b"21") == -973932308, murmur2(b"21")
    assert murmur2(b"foobar") == -790332482, murmur2(b"foobar")
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107
    # FNV-1a 32 known answers.
    assert fnv1a32(b"a") == 0xE40C292C and fnv1a32(b"foobar") == 0xBF9CF968
    print("ok compat: murmur2 and FNV-1a known answers")


if __name__ == "__main__":
    # compat.py records WRITER CODEC: the records of a codec topic as KEY:VALUE
    # lines (for kcat -K:); compat.py alone: the hashes' known answers.
    if sys.argv[1:2] == ["records"]:
        for i in range(CODEC_RECORDS):
            key, value = codec_record(sys.argv[2], sys.argv[3], i)
            print(f"{key.decode()}:{value.decode()}")
    else:
        self_test()


def confluent_produce(conf, topic, values, timeout, pace=0.0):
    """Produces `values` (strings, keyed by index % 7) with confluent-kafka,
    pausing `pace` seconds after each; returns (delivered count, errors seen)."""
    from confluent_kafka import Producer

    delivered, errors = [], []
    producer = Producer({"error_cb": errors.append, "message.timeout.ms": 20000, **conf})
    for i, value in enumerate(values):
        producer.produce(topic, key=str(i % 7), value=value,
                         on_delivery=lambda err, msg: errors.append(err) if err else delivered.append(msg.value()))
        producer.poll(0)
        if pace:
            time.sleep(pace)
    producer.flush(timeout)
    return len(delivered), errors


def confluent_consume(conf, topic, n, timeout):
    """Up to `n` values of `topic` read by a confluent-kafka group member within `timeout` seconds."""
    from confluent_kafka import Consumer

    consumer = Consumer({**conf, "group.id": f"{topic}-group", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        msg = consumer.poll(1)
        if msg is not None and not msg.error():
            got.append(msg.value().decode())
    consumer.close()
    return got


def confluent_refused(conf):
    """The errors a confluent-kafka client with `conf` meets on its first
    metadata request, None if it gets an answer."""
    from confluent_kafka import KafkaException, Producer

    errors = []
    # log_level 2: librdkafka's own error line for each retry stays out of the output.
    producer = Producer({**conf, "error_cb": errors.append, "log_level": 2})
    try:
        producer.list_topics(timeout=5)
        return None
    except KafkaException as e:
        producer.poll(1)  # serves error_cb
        return errors + [e.args[0]]
