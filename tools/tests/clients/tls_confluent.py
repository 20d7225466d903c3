#!/usr/bin/env python3
"""confluent-kafka (librdkafka) over SSL and SASL_SSL.

Usage: tls_confluent.py SSL_BOOTSTRAP SASL_SSL_BOOTSTRAP CERT_DIR PREFIX USER PASSWORD

CERT_DIR is what tools/tests/tls_certs.sh made. Against the SSL listener
(client certificates requested): a producer and a consumer group, with and
without a client certificate; a client trusting another CA fails with
librdkafka's SSL error and delivers nothing. Against the SASL_SSL listener:
the same produce and consume with SCRAM-SHA-256, and a wrong password fails
with an authentication error.
"""

import sys

from compat import confluent_consume, confluent_produce, confluent_refused
from confluent_kafka import KafkaError

SSL_BOOTSTRAP, SASL_SSL_BOOTSTRAP, CERTS, PREFIX, USER, PASSWORD = sys.argv[1:7]
TIMEOUT = 30
N = 500


def fail(why):
    print(f"FAIL tls_confluent: {why}", file=sys.stderr)
    sys.exit(1)


def ssl(ca="ca.pem", client_cert=False):
    conf = {"bootstrap.servers": SSL_BOOTSTRAP, "security.protocol": "SSL", "ssl.ca.location": f"{CERTS}/{ca}"}
    if client_cert:
        conf.update({"ssl.certificate.location": f"{CERTS}/client.pem", "ssl.key.location": f"{CERTS}/client.key"})
    return conf


def sasl_ssl(password=PASSWORD):
    return {"bootstrap.servers": SASL_SSL_BOOTSTRAP, "security.protocol": "SASL_SSL",
            "ssl.ca.location": f"{CERTS}/ca.pem", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": USER, "sasl.password": password}


def round_trip(name, conf):
    topic = f"{PREFIX}-{name}"
    values = [f"{topic}-{i}-" + "x" * (i % 2000) for i in range(N)]
    delivered, errors = confluent_produce({**conf, "acks": "1"}, topic, values, TIMEOUT)
    if delivered != N or errors:
        fail(f"{name}: {delivered}/{N} delivered, errors {errors}")
    got = confluent_consume(conf, topic, N, TIMEOUT)
    if sorted(got) != sorted(values):
        fail(f"{name}: consumed {len(got)} of {N}")
    print(f"ok tls_confluent [{name}]: {N} produced and consumed")


round_trip("ssl", ssl())
round_trip("ssl-client-cert", ssl(client_cert=True))
errors = confluent_refused(ssl(ca="other-ca.pem"))
if errors is None:
    fail("a client trusting another CA got an answer")
if not any(e.code() == KafkaError._SSL for e in errors):
    fail(f"untrusted certificate: {errors}, not an SSL error")
print(f"ok tls_confluent: untrusted certificate: {next(e.str() for e in errors if e.code() == KafkaError._SSL)}")

round_trip("sasl-ssl-scram-sha-256", sasl_ssl())
errors = confluent_refused(sasl_ssl(password=PASSWORD + "-wrong"))
if errors is None or not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
    fail(f"SASL_SSL with a wrong password: {errors}")
print(f"ok tls_confluent: SASL_SSL wrong password: {errors[0].str()}")
