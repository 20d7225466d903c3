#!/usr/bin/env python3
"""kafka-python and kafkajs keep producing and consuming through a leader
failover: three brokers (tools/tests/cluster.py), a topic of one partition
with three replicas and min.insync.replicas=2. Each client produces
numbered values one at a time (acks=all, idempotent) and consumes the topic
meanwhile (kafka-python by assignment, kafkajs in a group). Once both
produce, the partition's leader is SIGKILLed, started again DOWN seconds
later, and producing stops AFTER seconds after that. Then:
  * every acknowledged value was consumed, and some were acknowledged after
    the kill (the clients carried on);
  * a final read of the partition holds every acknowledged value, each
    client's values once each and in the order sent (idempotence).
(librdkafka's clients go through the same and worse in the history driver
and in the cluster tests of tools/tests/broker.)

Usage: failover.py (WEIR: the broker binary, default target/release/weir)
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
from cluster import Cluster, ClusterError  # noqa: E402  (tools/tests/cluster.py)

DOWN, AFTER = 6, 4
NET = "127.0.3"
TOPIC = "failover"


def fail(msg):
    print(f"FAIL failover: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port_pair():
    """A port free on the brokers' first address, with the next one (the voters') free too."""
    for _ in range(100):
        port = random.randrange(20000, 40000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind((f"{NET}.1", p))
            return port
        except OSError:
            continue
    fail("no free port pair")


def create_topic(cluster):
    """Once all three brokers have registered (RF 3 needs them)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.weir("topics", "create", TOPIC, "--partitions", "1", "--replication-factor", "3",
                         "--config", "min.insync.replicas=2", "-b", cluster.bootstrap)
            return
        except ClusterError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class KafkaPython:
    """kafka-python's producer and consumer, each on a thread."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap.split(",")
        self.acked, self.acked_at, self.failed, self.consumed = [], [], 0, []
        self.producing = threading.Event()
        self.produced = threading.Event()  # the producer's last send has its answer
        self.threads = [threading.Thread(target=self.produce), threading.Thread(target=self.consume)]

    def start(self):
        self.producing.set()
        for thread in self.threads:
            thread.start()

    def produce(self):
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                 request_timeout_ms=10000, retry_backoff_ms=200)
        n = 0
        while self.producing.is_set():
            try:
                producer.send(TOPIC, f"kafka-python-{n}".encode()).get(timeout=30)
                self.acked.append(n)
                self.acked_at.append(time.time())
            except Exception:  # not acknowledged: it may or may not be in the log
                self.failed += 1
            n += 1
        producer.close()
        self.produced.set()

    def consume(self):
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                 request_timeout_ms=10000, retry_backoff_ms=200)
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = None
        while True:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    value = record.value.decode()
                    if value.startswith("kafka-python-"):
                        self.consumed.append(int(value[len("kafka-python-"):]))
            # Not before the last send has its answer: its value may be acknowledged yet.
            if not self.produced.is_set():
                continue
            deadline = deadline or time.monotonic() + 60
            if set(self.acked) <= set(self.consumed) or time.monotonic() > deadline:
                break
        consumer.close()

    def stop(self):
        self.producing.clear()
        for thread in self.threads:
            thread.join()


def final_read(bootstrap):
    """Every value in the partition, in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    partition = TopicPartition(TOPIC, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    values = []
    deadline = time.monotonic() + 60
    while consumer.position(partition) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(record.value.decode() for record in records)
    consumer.close()
    if len(values) < end:
        fail(f"the final read got {len(values)} of the partition's {end} records")
    return values


def check(client, acked, acked_after_kill, failed, consumed, log):
    sent = [int(v[len(client) + 1:]) for v in log if v.startswith(client + "-")]
    print(f"{client}: {len(acked)} acknowledged ({acked_after_kill} after the kill), {failed} not, "
          f"{len(consumed)} consumed, {len(sent)} in the log")
    if acked_after_kill == 0:
        fail(f"{client}: nothing acknowledged after the leader was killed")
    if missing := sorted(set(acked) - set(consumed)):
        fail(f"{client}: acknowledged but never consumed: {missing[:20]}")
    if missing := sorted(set(acked) - set(sent)):
        fail(f"{client}: acknowledged but not in the log: {missing[:20]}")
    if sent != sorted(set(sent)):
        fail(f"{client}: the log holds its values duplicated or out of order: {sent}")


def main():
    weir = os.environ.get("WEIR", os.path.join(ROOT, "target/release/weir"))
    work = tempfile.mkdtemp(prefix="weir-failover-")
    cluster = Cluster(weir, NET, free_port_pair(), work, work)
    try:
        cluster.start_all()
        create_topic(cluster)
        kafka_python = KafkaPython(cluster.bootstrap)
        kafkajs = subprocess.Popen(["node", os.path.join(HERE, "failover_kafkajs.js"), cluster.bootstrap, TOPIC],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        kafka_python.start()
        if kafkajs.stdout.readline().strip() != "producing":
            fail(f"kafkajs did not start producing (exit {kafkajs.wait()})")
        while not kafka_python.acked:
            time.sleep(0.1)
        time.sleep(1)
        leader = cluster.describe(TOPIC)[0][0]
        cluster.kill(leader)
        killed = time.time()
        print(f"leader {leader} killed")
        time.sleep(DOWN)
        cluster.start(leader)
        time.sleep(AFTER)
        kafka_python.stop()
        out, _ = kafkajs.communicate(timeout=120)
        if kafkajs.returncode != 0:
            fail(f"kafkajs exited {kafkajs.returncode}")
        js = json.loads(out.strip().splitlines()[-1])
        log = final_read(cluster.bootstrap)
        check("kafka-python", kafka_python.acked, sum(t > killed for t in kafka_python.acked_at),
              kafka_python.failed, kafka_python.consumed, log)
        check("kafkajs", js["acked"], sum(t > killed * 1000 for t in js["acked_at"]), js["failed"], js["consumed"], log)
    finally:
        cluster.stop()
    shutil.rmtree(work)
    print("failover: passed")


if __name__ == "__main__":
    main()
