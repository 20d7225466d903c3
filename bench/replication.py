#!/usr/bin/env python3
"""Replication figures on this machine: three brokers (tools/three_brokers.sh's
shape, release build, one shard each), then

1. RF 3 against RF 1, acks=all, with `weir bench produce` against each
   partition's leader in the same run: throughput, produce latency, and the
   three brokers' CPU seconds per GB produced;
2. failover: KILLS times, SIGKILL the leader of an RF 3 partition while a
   librdkafka (confluent-kafka) producer sends acks=all, and time the kill to
   the acknowledgement of the first message sent after it (by the new
   leader); the broker is restarted and back in the ISR before the next kill.

Usage: python3 bench/replication.py        (KILLS=20 DURATION=10 SIZE=1024 OUT=bench/results KEEP=0)
Needs confluent-kafka (tools/tests/clients/.venv has it: run with that python).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.path.join(ROOT, "target", "release", "weir")
KILLS = int(os.environ.get("KILLS", "20"))
DURATION = os.environ.get("DURATION", "10")
SIZE = os.environ.get("SIZE", "1024")
OUT = os.environ.get("OUT", os.path.join(ROOT, "bench", "results"))
VOTERS = ",".join(f"{i}@127.0.0.{i}:19593" for i in (1, 2, 3))


def address(broker):
    return f"127.0.0.{broker}:19592"


class Cluster:
    def __init__(self, data):
        self.data = data
        self.procs = {}

    def start(self, broker):
        log = open(os.path.join(self.data, f"broker-{broker}.log"), "a")
        cores = os.cpu_count() or 1
        self.procs[broker] = subprocess.Popen(
            [WEIR, "serve", "--node-id", str(broker), "--listen", address(broker), "--shards", "1",
             "--cpuset", str((broker - 1) % cores), "--admin-listen", "",
             "--data-dir", os.path.join(self.data, f"broker-{broker}"), "--controller-quorum-voters", VOTERS],
            stderr=log, stdout=subprocess.DEVNULL)

    def wait_listening(self, broker):
        path = os.path.join(self.data, f"broker-{broker}", "listen.addr")
        deadline = time.time() + 60
        while not (os.path.exists(path) and os.path.getsize(path) > 0):
            if time.time() > deadline or self.procs[broker].poll() is not None:
                sys.exit(f"broker {broker} did not start; see {self.data}/broker-{broker}.log")
            time.sleep(0.1)

    def kill(self, broker):
        self.procs[broker].send_signal(signal.SIGKILL)
        self.procs[broker].wait()
        os.remove(os.path.join(self.data, f"broker-{broker}", "listen.addr"))

    def stop(self):
        for proc in self.procs.values():
            proc.kill()


def weir(*args):
    return subprocess.run([WEIR, *args], check=True, capture_output=True, text=True).stdout


def partition_state(topic, via):
    """(leader, isr) of partition 0 of `topic`, as broker `via` describes it."""
    text = weir("topics", "describe", topic, "-b", address(via))
    for line in text.splitlines():
        columns = line.split()
        if columns and columns[0] == "0":
            return int(columns[1]), [int(b) for b in columns[4].split(",") if b]
    sys.exit(f"no partition 0 in:\n{text}")


def cpu_seconds(cluster):
    """User and system CPU seconds of the brokers so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in cluster.procs.values():
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def bench(cluster, topic, leader, replicas):
    out = os.path.join(OUT, f"replication-rf{replicas}.json")
    before = cpu_seconds(cluster)
    weir("bench", "produce", "-b", address(leader), "-t", topic, "--acks", "all", "-d", DURATION,
         "-s", SIZE, "--json", out)
    used = cpu_seconds(cluster) - before
    with open(out) as f:
        result = json.load(f)
    result["broker_cpu_seconds_per_gb"] = used / (result["produce"]["bytes"] / 1e9)
    return result


def failover_times(cluster, topic):
    from confluent_kafka import Producer

    acked = []  # (sent, acknowledged)
    lock = threading.Lock()

    def delivered_if_sent_at(sent):
        def delivered(err, _msg):
            if err is None:
                with lock:
                    acked.append((sent, time.monotonic()))

        return delivered

    producer = Producer({"bootstrap.servers": ",".join(address(b) for b in (1, 2, 3)), "acks": "all",
                         "linger.ms": 1, "message.timeout.ms": 60000})
    stop = threading.Event()

    def send():
        while not stop.is_set():
            producer.produce(topic, b"x" * 100, callback=delivered_if_sent_at(time.monotonic()))
            producer.poll(0.002)
        producer.flush(60)

    sender = threading.Thread(target=send)
    sender.start()
    times = []
    try:
        for _ in range(KILLS):
            leader, isr = partition_state(topic, 1 if cluster.procs[1].poll() is None else 2)
            survivor = next(b for b in (1, 2, 3) if b != leader)
            time.sleep(1)
            killed = time.monotonic()
            cluster.kill(leader)
            while True:
                with lock:
                    after = [done for sent, done in acked if sent > killed]
                if after:
                    times.append(min(after) - killed)
                    break
                if time.monotonic() - killed > 60:
                    times.append(float("inf"))
                    break
                time.sleep(0.01)
            print(f"kill {len(times)}: leader {leader} -> first ack after {times[-1]:.3f} s", flush=True)
            cluster.start(leader)
            cluster.wait_listening(leader)
            deadline = time.time() + 120
            while len(partition_state(topic, survivor)[1]) < 3 and time.time() < deadline:
                time.sleep(0.5)
    finally:
        stop.set()
        sender.join()
    return times


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    subprocess.run(["cargo", "build", "--release", "-p", "weir"], cwd=ROOT, check=True)
    os.makedirs(OUT, exist_ok=True)
    data = tempfile.mkdtemp(prefix="weir-replication-")
    cluster = Cluster(data)
    try:
        for broker in (1, 2, 3):
            cluster.start(broker)
        for broker in (1, 2, 3):
            cluster.wait_listening(broker)
        weir("topics", "create", "rf1", "-p", "1", "-r", "1", "-b", address(1))
        weir("topics", "create", "rf3", "-p", "1", "-r", "3", "-b", address(1))
        time.sleep(2)
        results = {}
        for topic, replicas in (("rf1", 1), ("rf3", 3)):
            leader, _ = partition_state(topic, 1)
            result = bench(cluster, topic, leader, replicas)
            produce, latency = result["produce"], result["produce_latency"]
            print(f"RF {replicas} acks=all (leader {leader}): {produce['mb_per_s']:.1f} MB/s, "
                  f"{produce['messages_per_s']:.0f} msg/s, p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
                  f"brokers {result['broker_cpu_seconds_per_gb']:.2f} CPU s/GB", flush=True)
            results[replicas] = produce["mb_per_s"]
        print(f"RF 3 / RF 1 throughput: {results[3] / results[1]:.2f}")
        weir("topics", "create", "failover", "-p", "1", "-r", "3", "-b", address(1))
        time.sleep(2)
        times = failover_times(cluster, "failover")
        print(f"failover over {len(times)} kills: p50 {percentile(times, 50):.3f} s, "
              f"p99 {percentile(times, 99):.3f} s, max {max(times):.3f} s")
        with open(os.path.join(OUT, "failover.json"), "w") as f:
            json.dump({"seconds": times}, f)
    finally:
        cluster.stop()
        # The benches write gigabytes; KEEP=1 keeps the brokers' data and logs.
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
