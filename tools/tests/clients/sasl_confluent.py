#!/usr/bin/env python3
"""confluent-kafka (librdkafka) over SASL_PLAINTEXT.

Usage: sasl_confluent.py BOOTSTRAP PREFIX USER PASSWORD REAUTH_MS

  * for each of PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512: a producer writes
    records and a consumer group reads them all back, authenticated as USER;
    the same with a wrong password fails with librdkafka's authentication
    error (KafkaError._AUTHENTICATION), and nothing is delivered;
  * the admin API (KIP-554): describe USER's SCRAM credentials; add a user
    with alter_user_scram_credentials (SCRAM-SHA-256, only SaltedPassword
    travels), who then produces with SCRAM-SHA-256 and PLAIN (PLAIN checks
    against the SCRAM credential); delete it, and it can no longer connect;
  * re-authentication (KIP-368): a producer keeps writing for three session
    lifetimes (REAUTH_MS) and every record is delivered (librdkafka
    re-authenticates before the broker would close the connection).
"""

import sys

from compat import confluent_consume, confluent_produce, confluent_refused
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

BOOTSTRAP, PREFIX, USER, PASSWORD, REAUTH_MS = sys.argv[1:5] + [int(sys.argv[5])]
TIMEOUT = 30
N = 200


def fail(why):
    print(f"FAIL sasl_confluent: {why}", file=sys.stderr)
    sys.exit(1)


def sasl(mechanism, user=USER, password=PASSWORD):
    return {"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
    topic = f"{PREFIX}-{mechanism.lower()}"
    delivered, errors = confluent_produce(sasl(mechanism), topic, [f"{topic}-{i}" for i in range(N)], TIMEOUT)
    if delivered != N or errors:
        fail(f"{mechanism}: {delivered}/{N} delivered, errors {errors}")
    got = confluent_consume(sasl(mechanism), topic, N, TIMEOUT)
    if sorted(got) != sorted(f"{topic}-{i}" for i in range(N)):
        fail(f"{mechanism}: consumed {len(got)} of {N}")
    errors = confluent_refused(sasl(mechanism, password=PASSWORD + "-wrong"))
    if errors is None:
        fail(f"{mechanism}: a wrong password was let in")
    if not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        fail(f"{mechanism}: a wrong password gave {errors}, not an authentication error")
    print(f"ok sasl_confluent [{mechanism}]: {N} produced and consumed; wrong password: {errors[0].str()}")

admin = AdminClient(sasl("SCRAM-SHA-512"))
described = admin.describe_user_scram_credentials([USER])[USER].result(TIMEOUT)
mechanisms = sorted(info.mechanism for info in described.scram_credential_infos)
if mechanisms != sorted([ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512]):
    fail(f"describe {USER}: {described}")
carol = f"{PREFIX}-carol"
upsert = UserScramCredentialUpsertion(carol, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-pw")
admin.alter_user_scram_credentials([upsert])[carol].result(TIMEOUT)
for mechanism in ("SCRAM-SHA-256", "PLAIN"):
    carol_topic = f"{PREFIX}-carol"
    delivered, errors = confluent_produce(sasl(mechanism, carol, "carol-pw"), carol_topic, ["c"] * 10, TIMEOUT)
    if delivered != 10 or errors:
        fail(f"new user {carol} with {mechanism}: {delivered}/10 delivered, errors {errors}")
if confluent_refused(sasl("SCRAM-SHA-512", carol, "carol-pw")) is None:
    fail(f"{carol} has no SCRAM-SHA-512 credential but was let in with it")
deletion = UserScramCredentialDeletion(carol, ScramMechanism.SCRAM_SHA_256)
admin.alter_user_scram_credentials([deletion])[carol].result(TIMEOUT)
if confluent_refused(sasl("SCRAM-SHA-256", carol, "carol-pw")) is None:
    fail(f"deleted user {carol} was let in")
try:
    admin.describe_user_scram_credentials([carol])[carol].result(TIMEOUT)
    fail(f"deleted user {carol} is still described")
except KafkaException as e:
    if e.args[0].code() != KafkaError.RESOURCE_NOT_FOUND:
        fail(f"describing deleted user {carol}: {e}")
print(f"ok sasl_confluent: admin described {USER}, added {carol} (SCRAM-SHA-256 and PLAIN work), deleted it")

seconds = 3 * REAUTH_MS / 1000
count = int(seconds / 0.05)
values = [f"{PREFIX}-reauth-{i}" for i in range(count)]
delivered, errors = confluent_produce(sasl("SCRAM-SHA-256"), f"{PREFIX}-reauth", values, TIMEOUT, pace=0.05)
if delivered != count or errors:
    fail(f"re-authentication: {delivered}/{count} delivered over {seconds} s, errors {errors}")
print(f"ok sasl_confluent: {count} records over {seconds:.0f} s (3 session lifetimes), all delivered")
