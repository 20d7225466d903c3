#!/usr/bin/env python3
"""Replication figures on this machine: three brokers (tools/three_brokers.sh's
shape, release build, one shard each), then

1. RF 3 against RF 1, acks=all, with `weir bench produce` against each
   partition's leader in the same run: throughput, produce latency, and the
   three brokers' CPU seconds per GB produced; then the same with
   librdkafka's own load generator, examples/rdkafka_performance (COUNT
   messages of SIZE bytes, acks=all), where it is built: in the librdkafka
   tree of tools/tests/librdkafka/run.sh, `make -C
   target/librdkafka-tests/librdkafka-*/examples rdkafka_performance`;
2. failover: KILLS times, SIGKILL the leader of an RF 3 partition while a
   librdkafka (confluent-kafka) producer sends acks=all, and time the kill to
   the acknowledgement of the first message sent after it (by the new
   leader); the broker is restarted and back in the ISR before the next kill.

Usage: python3 bench/replication.py        (KILLS=20 DURATION=10 SIZE=1024 COUNT=1000000
                                            OUT=bench/results KEEP=0; KILLS=0 skips the failover)
Needs confluent-kafka (tools/tests/clients/.venv has it: run with that python).
"""
import glob
import json
import os
import re
import shutil
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
COUNT = os.environ.get("COUNT", "1000000")
RDKAFKA_PERFORMANCE = sorted(glob.glob(os.path.join(
    ROOT, "target", "librdkafka-tests", "librdkafka-*", "examples", "rdkafka_performance")))
OUT = os.environ.get("OUT", os.path.join(ROOT, "bench", "results"))
sys.path.insert(0, os.path.join(ROOT, "tools", "tests"))
from cluster import Cluster  # noqa: E402  (tools/tests/cluster.py)


def partition_state(cluster, topic):
    """(leader, isr) of partition 0 of `topic`."""
    return cluster.describe(topic)[0]


def bench(cluster, topic, leader, replicas):
    out = os.path.join(OUT, f"replication-rf{replicas}.json")
    before = cluster.cpu_seconds()
    cluster.weir("bench", "produce", "-b", cluster.address(leader), "-t", topic, "--acks", "all", "-d", DURATION,
         "-s", SIZE, "--json", out, timeout=None)
    used = cluster.cpu_seconds() - before
    with open(out) as f:
        result = json.load(f)
    result["broker_cpu_seconds_per_gb"] = used / (result["produce"]["bytes"] / 1e9)
    return result


def rdkafka_performance(cluster, topic, leader, binary):
    """(MB/s, msg/s, brokers' CPU s per GB) of librdkafka's generator producing COUNT messages, acks=all."""
    before = cluster.cpu_seconds()
    run = subprocess.run([binary, "-P", "-t", topic, "-p", "0", "-b", cluster.address(leader), "-s", SIZE, "-c", COUNT,
                          "-a", "-1", "-X", "linger.ms=5"], capture_output=True, text=True, check=True)
    used = cluster.cpu_seconds() - before
    # A line a second, the last one the whole run's.
    lines = re.findall(r"(\d+) delivered .* (\d+) msgs/s and ([\d.]+) MB/s", run.stdout)
    if not lines:
        raise RuntimeError(f"rdkafka_performance printed no summary: {run.stdout[-500:]}")
    delivered, per_s, mb_per_s = int(lines[-1][0]), int(lines[-1][1]), float(lines[-1][2])
    return mb_per_s, per_s, used / (delivered * int(SIZE) / 1e9)


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

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
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
            leader, _ = partition_state(cluster, topic)
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
            while len(partition_state(cluster, topic)[1]) < 3 and time.time() < deadline:
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
    cluster = Cluster(WEIR, "127.0.0", 19592, data=data, logs=data)
    try:
        cluster.start_all()
        cluster.weir("topics", "create", "rf1", "-p", "1", "-r", "1", "-b", cluster.address(1))
        cluster.weir("topics", "create", "rf3", "-p", "1", "-r", "3", "-b", cluster.address(1))
        time.sleep(2)
        results = {}
        for topic, replicas in (("rf1", 1), ("rf3", 3)):
            leader, _ = partition_state(cluster, topic)
            result = bench(cluster, topic, leader, replicas)
            produce, latency = result["produce"], result["produce_latency"]
            print(f"RF {replicas} acks=all (leader {leader}): {produce['mb_per_s']:.1f} MB/s, "
                  f"{produce['messages_per_s']:.0f} msg/s, p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
                  f"brokers {result['broker_cpu_seconds_per_gb']:.2f} CPU s/GB", flush=True)
            results[replicas] = produce["mb_per_s"]
        print(f"RF 3 / RF 1 throughput: {results[3] / results[1]:.2f}")
        if RDKAFKA_PERFORMANCE:
            for topic, replicas in (("rf1", 1), ("rf3", 3)):
                leader, _ = partition_state(cluster, topic)
                mb_per_s, per_s, cpu = rdkafka_performance(cluster, topic, leader, RDKAFKA_PERFORMANCE[-1])
                print(f"rdkafka_performance RF {replicas} acks=all (leader {leader}): {mb_per_s:.1f} MB/s, "
                      f"{per_s} msg/s, brokers {cpu:.2f} CPU s/GB", flush=True)
                results[replicas] = mb_per_s
            print(f"rdkafka_performance RF 3 / RF 1 throughput: {results[3] / results[1]:.2f}")
        if not KILLS:
            return
        cluster.weir("topics", "create", "failover", "-p", "1", "-r", "3", "-b", cluster.address(1))
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
