#!/usr/bin/env python3
"""kafka-python over SSL and SASL_SSL (its own TLS and SCRAM code, not
librdkafka's).

Usage: tls_kafka_python.py SSL_BOOTSTRAP SASL_SSL_BOOTSTRAP CERT_DIR PREFIX USER PASSWORD

CERT_DIR is what tools/tests/tls_certs.sh made. Against each listener: N
messages produced (acks=all) and read back with an assigned consumer, byte
for byte; over SSL a client trusting another CA, and over SASL_SSL one
with a wrong password, deliver nothing (kafka-python reports both as a
bootstrap that timed out, after logging why).
"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, SaslAuthenticationFailedError

SSL_BOOTSTRAP, SASL_SSL_BOOTSTRAP, CERTS, PREFIX, USER, PASSWORD = sys.argv[1:7]
N = 300


def fail(why):
    print(f"FAIL tls_kafka_python: {why}", file=sys.stderr)
    sys.exit(1)


def ssl(ca="ca.pem"):
    return {"bootstrap_servers": SSL_BOOTSTRAP, "security_protocol": "SSL", "ssl_cafile": f"{CERTS}/{ca}"}


def sasl_ssl(password=PASSWORD):
    return {"bootstrap_servers": SASL_SSL_BOOTSTRAP, "security_protocol": "SASL_SSL",
            "ssl_cafile": f"{CERTS}/ca.pem", "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": USER, "sasl_plain_password": password}


def round_trip(name, conf):
    topic = f"{PREFIX}-{name}"
    values = [f"{topic}-{i}-".encode() + b"y" * (i * 37 % 3000) for i in range(N)]
    producer = KafkaProducer(acks="all", **conf)
    futures = [producer.send(topic, value, partition=0) for value in values]
    producer.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    if offsets != list(range(N)):
        fail(f"{name}: offsets {offsets[:5]}... not 0..{N}")
    consumer = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=10000, **conf)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    got = [m.value for _, m in zip(range(N), consumer)]
    consumer.close()
    if got != values:
        fail(f"{name}: read back {len(got)} of {N} (or different bytes)")
    print(f"ok tls_kafka_python [{name}]: {N} produced and read back")


def refused(name, conf, expected):
    try:
        producer = KafkaProducer(request_timeout_ms=5000, max_block_ms=5000, **conf)
        producer.send(f"{PREFIX}-{name}", b"never").get(timeout=10)
    except expected as e:
        print(f"ok tls_kafka_python [{name}]: refused: {type(e).__name__}")
        return
    except KafkaError as e:
        fail(f"{name}: {type(e).__name__}: {e}, not {expected}")
    fail(f"{name}: a message was delivered")


round_trip("ssl", ssl())
round_trip("sasl-ssl", sasl_ssl())
refused("untrusted", ssl(ca="other-ca.pem"), (KafkaConnectionError, KafkaTimeoutError))
# kafka-python logs the authentication error and reports a bootstrap that timed out.
refused("wrong-password", sasl_ssl(password="not-" + PASSWORD), (SaslAuthenticationFailedError, KafkaTimeoutError))
