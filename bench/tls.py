#!/usr/bin/env python3
"""TLS against plaintext in the same run (issue 15): one broker per security
protocol (PLAINTEXT, then SSL on certificates from tools/tests/tls_certs.sh),
each with the same shards and cores, and against each:

1. produce: a confluent-kafka (librdkafka) producer, acks=1, VALUE-byte
   values, linger 5 ms, sends MB megabytes to a topic of PARTITIONS
   partitions;
2. consume: a consumer (assign, from the beginning) reads them all back.

For each phase: MB/s of record values and the broker's CPU seconds (utime +
stime from /proc) per GB moved. The client runs in Python over librdkafka
and shares the machine, so MB/s is the client's ceiling as much as the
broker's; CPU per GB is the broker's own cost of TLS.

Usage: tools/tests/clients/.venv/bin/python bench/tls.py
Environment: MB=1024 VALUE=1024 PARTITIONS=4 SHARDS=1 CPUSET=0
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.path.join(ROOT, "target", "release", "weir")
MB = int(os.environ.get("MB", "1024"))
VALUE = int(os.environ.get("VALUE", "1024"))
PARTITIONS = int(os.environ.get("PARTITIONS", "4"))
SHARDS = os.environ.get("SHARDS", "1")
CPUSET = os.environ.get("CPUSET", "0")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(protocol, certs, data_dir):
    port = free_port()
    args = [WEIR, "serve", "--listeners", f"{protocol}://127.0.0.1:{port}", "--data-dir", data_dir,
            "--shards", SHARDS, "--cpuset", CPUSET, "--admin-listen", ""]
    if protocol == "SSL":
        args += ["--ssl-certificate-location", f"{certs}/server.pem", "--ssl-key-location", f"{certs}/server.key"]
    broker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert broker.stdout.readline().startswith("listening on"), "broker did not start"
    return broker, f"127.0.0.1:{port}"


def run(protocol, certs):
    data_dir = tempfile.mkdtemp(prefix=f"weir-tls-bench-{protocol}.")
    broker, bootstrap = start(protocol, certs, data_dir)
    conf = {"bootstrap.servers": bootstrap, "security.protocol": protocol}
    if protocol == "SSL":
        conf["ssl.ca.location"] = f"{certs}/ca.pem"
    conf["log_level"] = 3  # not the disconnections when the broker stops
    try:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient(conf)  # kept: the result needs the handle
        admin.create_topics([NewTopic("bench", PARTITIONS, 1)])["bench"].result(30)
        value = os.urandom(VALUE)
        count = MB * 1024 * 1024 // VALUE
        producer = Producer({**conf, "acks": "1", "linger.ms": 5, "batch.size": 1 << 20,
                             "queue.buffering.max.kbytes": 1 << 20})
        cpu, started = cpu_seconds(broker.pid), time.time()
        for i in range(count):
            while True:
                try:
                    producer.produce("bench", value, partition=i % PARTITIONS)
                    break
                except BufferError:
                    producer.poll(0.001)
        producer.flush(120)
        produce = (time.time() - started, cpu_seconds(broker.pid) - cpu)
        del producer, admin

        consumer = Consumer({**conf, "group.id": "bench", "enable.auto.commit": False,
                             "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 8 << 20})
        consumer.assign([TopicPartition("bench", p, 0) for p in range(PARTITIONS)])
        got, cpu, started = 0, cpu_seconds(broker.pid), time.time()
        while got < count:
            for message in consumer.consume(1000, 0.2):
                if not message.error():
                    got += 1
        consume = (time.time() - started, cpu_seconds(broker.pid) - cpu)
        consumer.close()
        return produce, consume
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    certs = tempfile.mkdtemp(prefix="weir-tls-bench-certs.")
    subprocess.run(["bash", os.path.join(ROOT, "tools", "tests", "tls_certs.sh"), certs], check=True)
    gb = MB / 1024
    print(f"{MB} MB of {VALUE}-byte values, acks=1, {PARTITIONS} partitions, {SHARDS} shard(s) on cores {CPUSET}")
    print(f"{'protocol':10} {'phase':8} {'MB/s':>8} {'broker CPU s/GB':>16} {'broker CPU %':>13}")
    try:
        for protocol in ("PLAINTEXT", "SSL"):
            for phase, (seconds, cpu) in zip(("produce", "consume"), run(protocol, certs)):
                print(f"{protocol:10} {phase:8} {MB / seconds:8.1f} {cpu / gb:16.2f} {100 * cpu / seconds:12.0f}%")
                sys.stdout.flush()
    finally:
        shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    main()
