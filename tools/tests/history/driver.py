#!/usr/bin/env python3
"""A Jepsen-style run against a three-broker Weir cluster: idempotent acks=all
producers and assign-based consumers (confluent-kafka, i.e. librdkafka) work
on a topic with RF 3 and min.insync.replicas=2 while a nemesis SIGKILLs the
leader of a partition and restarts it (or pauses it, or cuts it off from
the other brokers), KILLS times over DURATION seconds.
Every send and poll goes into a history (format: checker.py), then a final
full read of each partition, then checker.py judges it.

Usage: tools/tests/clients/.venv/bin/python tools/tests/history/driver.py

Knobs (environment): DURATION (s, default 45), KILLS (3), DOWN (s a killed
broker stays down, default 4: past the 2 s broker session timeout, so
leadership moves), NEMESIS (kill: SIGKILL and start again; pause: SIGSTOP
and SIGCONT, a leader that comes back believing it still leads; partition:
the leader cut off from the other brokers, not from the clients, for DOWN
seconds, a zombie that clients still reach; wipe: SIGKILL, its data
directory deleted (a replaced disk), start again; restart: SIGTERM (a
controlled shutdown, which must end in exit 0 within 40 s), start again;
mixed: kill, pause, partition, wipe, restart in turn; default kill; partition and mixed run each broker in a network
namespace of its own, which needs root), PARTITIONS (3), PRODUCERS (2), CONSUMERS (2), RATE (sends
per second per producer, 100), TXN_PRODUCERS (transactional producers, 1),
TXN_SIZE (values per transaction, spread over the partitions, 6), TXN_RATE
(transactions per second per transactional producer, 5; one in four is
aborted), GROUP_CONSUMERS (subscribed read_committed consumers of one group
committing offsets, whose coordinator moves with the nemesis, 2), NET (the brokers' addresses are NET.1-3, default
127.0.1, or 10.77.X with namespaces, X from the process id; ports 9092 for clients, 9093 for the voters), WEIR (the broker binary,
default target/release/weir), OUT (where the history, broker logs and data go;
default a new temp dir), CLIENT_DEBUG (librdkafka debug contexts, e.g.
eos,msg, logged to OUT/client-debug.log). Exits 0 on a clean history, 1 on
violations or a producer's fatal error (this workload never breaks a
sequence against a correct broker), 2 when the run itself failed. Broker
data is removed after a clean run; the history and logs stay. The brokers
are run by tools/tests/cluster.py.
"""
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import checker  # noqa: E402  (next to this file, not installed)
from cluster import Cluster, ClusterError, Namespaces  # noqa: E402  (tools/tests/cluster.py)

DURATION = float(os.environ.get("DURATION", "45"))
KILLS = int(os.environ.get("KILLS", "3"))
DOWN = float(os.environ.get("DOWN", "4"))
NEMESIS = os.environ.get("NEMESIS", "kill")
NEMESES = {"kill": ["kill"], "pause": ["pause"], "partition": ["partition"], "wipe": ["wipe"],
           "restart": ["restart"], "mixed": ["kill", "pause", "partition", "wipe", "restart"]}
NAMESPACES = "partition" in NEMESES.get(NEMESIS, [])
PARTITIONS = int(os.environ.get("PARTITIONS", "3"))
PRODUCERS = int(os.environ.get("PRODUCERS", "2"))
CONSUMERS = int(os.environ.get("CONSUMERS", "2"))
RATE = float(os.environ.get("RATE", "100"))
TXN_PRODUCERS = int(os.environ.get("TXN_PRODUCERS", "1"))
GROUP_CONSUMERS = int(os.environ.get("GROUP_CONSUMERS", "2"))
TXN_SIZE = int(os.environ.get("TXN_SIZE", "6"))
TXN_RATE = float(os.environ.get("TXN_RATE", "5"))
NET = os.environ.get("NET", f"10.77.{os.getpid() % 250}" if NAMESPACES else "127.0.1")
WEIR = os.environ.get("WEIR", os.path.join(ROOT, "target", "release", "weir"))
# librdkafka logs each refused connection to stderr while a broker is down;
# the same errors reach error_cb and are summed up at the end instead.
QUIET = {"log_level": 2}
# CLIENT_DEBUG=eos,msg (librdkafka's debug contexts) writes the clients' debug
# logs to OUT/client-debug.log instead.
CLIENT_DEBUG = os.environ.get("CLIENT_DEBUG", "")
TOPIC = "history"


def producer_logging(out):
    """The producers' log settings: QUIET, or CLIENT_DEBUG's contexts into a file."""
    if not CLIENT_DEBUG:
        return QUIET
    logger = logging.getLogger("librdkafka")
    handler = logging.FileHandler(os.path.join(out, "client-debug.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return {"debug": CLIENT_DEBUG, "logger": logger}


class RunFailed(Exception):
    """The run could not go on (a broker that does not start, say): not a finding about the history."""


class History:
    """The history file, written as ops happen (a crashed run keeps what it had)."""

    def __init__(self, path):
        self.file = open(path, "w")
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.ids = 0

    def next_id(self):
        with self.lock:
            self.ids += 1
            return self.ids

    def record(self, process, type, f, **fields):
        op = {"time": round(time.monotonic() - self.start, 6), "process": process, "type": type, "f": f, **fields}
        line = json.dumps(op) + "\n"
        with self.lock:
            self.file.write(line)

    def close(self):
        self.file.close()


def wait_healthy(cluster, timeout):
    """Waits until every partition has a leader and all three brokers in its ISR; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = cluster.describe(TOPIC)
        except ClusterError:
            state = {}
        if len(state) == PARTITIONS and all(leader > 0 and len(isr) == 3 for leader, isr in state.values()):
            return True
        time.sleep(0.5)
    return False


class Stats:
    """Client errors by role and code (their texts vary with addresses and
    librdkafka's "N identical errors suppressed"), with the first text of each."""

    def __init__(self):
        self.lock = threading.Lock()
        self.errors = {}  # (role, code name) -> [count, first text]
        self.fatals = []

    def fatal(self, who, err):
        """A producer's fatal error: against a correct broker this workload
        never breaks an idempotent producer's sequence."""
        with self.lock:
            self.fatals.append(f"{who}: {err.str()}")

    def error(self, who, err):
        roles = {"f": "final", "p": "producer", "t": "transactional producer", "c": "consumer", "g": "group consumer"}
        role = roles[who[0]]
        key = (role, err.name())
        with self.lock:
            self.errors.setdefault(key, [0, err.str()])[0] += 1


def producer_loop(history, stats, index, stop, bootstrap):
    """Sends values PROCESS-N round-robin over the partitions at RATE per
    second; a producer that hits a fatal error (the idempotent producer's
    answer to a broken sequence) is replaced by a new process, so the history
    says which sends belong to which idempotent session."""
    generation = 0
    while not stop.is_set():
        process = f"p{index}" if generation == 0 else f"p{index}.{generation}"
        fatal = threading.Event()

        def on_error(err, process=process, fatal=fatal):
            if err.fatal():
                if not fatal.is_set():
                    stats.fatal(process, err)
                fatal.set()
            else:
                stats.error(process, err)

        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "linger.ms": 5, "message.timeout.ms": 30000, "error_cb": on_error, **PRODUCER_LOGGING})
        history.record(process, "ok", "open", role="producer", idempotent=True)

        def delivered(id, value, partition, process=process):
            def report(err, msg):
                if err is None:
                    history.record(process, "ok", "send", id=id, topic=TOPIC, partition=partition, key=None,
                                   value=value, offset=msg.offset())
                else:
                    # Timed out or refused after retries: librdkafka cannot
                    # say whether an attempt reached the log, so unknown.
                    history.record(process, "info", "send", id=id, topic=TOPIC, partition=partition, key=None,
                                   value=value, error=str(err))
            return report

        sent = 0
        begun = time.monotonic()
        while not stop.is_set() and not fatal.is_set():
            partition = sent % PARTITIONS
            value = f"{process}-{sent}"
            id = history.next_id()
            history.record(process, "invoke", "send", id=id, topic=TOPIC, partition=partition, key=None, value=value)
            try:
                producer.produce(TOPIC, value.encode(), partition=partition, on_delivery=delivered(id, value, partition))
            except (BufferError, KafkaException) as e:
                # Not queued, so never sent.
                history.record(process, "fail", "send", id=id, topic=TOPIC, partition=partition, key=None,
                               value=value, error=str(e))
            sent += 1
            try:
                producer.poll(0)
            except KafkaException as e:
                # librdkafka raises a fatal error here as well as to error_cb.
                on_error(e.args[0])
            pause = begun + sent / RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        # What is still queued after this is left without a completion: unknown.
        producer.flush(40)
        generation += 1


def txn_producer_loop(history, stats, index, stop, bootstrap):
    """Transactions of TXN_SIZE values PROCESS-N spread over the partitions,
    TXN_RATE per second, every fourth aborted. A commit that raises a
    retriable error is retried; one that needs an abort is aborted (then the
    transaction failed: none of its values may be read committed); after a
    fatal error the outcome is unknown and a new producer of the same
    transactional id, a new process in the history, fences the old one."""
    generation = 0
    transactional_id = f"history-t{index}"
    while not stop.is_set():
        process = f"t{index}" if generation == 0 else f"t{index}.{generation}"
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                             "transaction.timeout.ms": 60000, "linger.ms": 5,
                             "error_cb": lambda err, process=process: stats.error(process, err), **PRODUCER_LOGGING})
        try:
            producer.init_transactions(60)
        except KafkaException as e:
            stats.error(process, e.args[0])
            generation += 1
            continue
        history.record(process, "ok", "open", role="producer", idempotent=True)
        sent = 0
        begun = time.monotonic()
        fatal = False
        while not stop.is_set() and not fatal:
            id = history.next_id()
            sends = [{"topic": TOPIC, "partition": (sent + i) % PARTITIONS, "key": None, "value": f"{process}-{sent + i}"}
                     for i in range(TXN_SIZE)]
            commit = id % 4 != 0
            sent += TXN_SIZE
            history.record(process, "invoke", "txn", id=id, sends=sends)
            outcome, error = end_transaction(producer, sends, commit)
            if outcome == "info":
                stats.error(process, error)
                fatal = error.fatal()
            history.record(process, outcome, "txn", id=id, sends=sends,
                           **({"error": error.str()} if error is not None else {}))
            pause = begun + (sent / TXN_SIZE) / TXN_RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        generation += 1


def end_transaction(producer, sends, commit):
    """Runs one transaction of `sends`: ("ok", None) committed, ("fail",
    error or None) aborted, ("info", error) unknown."""
    try:
        producer.begin_transaction()
        for send in sends:
            producer.produce(TOPIC, send["value"].encode(), partition=send["partition"])
        if not commit:
            producer.abort_transaction(60)
            return "fail", None
        for _ in range(5):
            try:
                producer.commit_transaction(60)
                return "ok", None
            except KafkaException as e:
                if not e.args[0].retriable():
                    raise
        return "info", KafkaError(KafkaError._TIMED_OUT, "commit kept failing with retriable errors")
    except KafkaException as e:
        error = e.args[0]
        if error.txn_requires_abort():
            try:
                producer.abort_transaction(60)
                return "fail", error
            except KafkaException as abort_error:
                return "info", abort_error.args[0]
        return "info", error


def poll_until_stopped(history, stats, process, consumer, stop):
    """Records what the consumer reads until `stop`, then closes it."""
    while not stop.is_set():
        records = []
        for msg in consumer.consume(num_messages=500, timeout=0.2):
            if msg.error():
                stats.error(process, msg.error())
            else:
                records.append({"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                                "value": msg.value().decode()})
        # An empty poll tells the checker nothing, so only polls that read something are recorded.
        if records:
            history.record(process, "ok", "poll", records=records)
    consumer.close()


def consumer_loop(history, stats, index, stop, bootstrap):
    """Reads every partition from offset 0 with an explicit assignment (no
    group: coordinators do not move with leadership yet, so a group would die
    with its coordinator's broker)."""
    process = f"c{index}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"history-{process}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest", "error_cb": lambda err: stats.error(process, err), **QUIET})
    history.record(process, "ok", "open", role="consumer", isolation="read_committed")
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    history.record(process, "ok", "assign", partitions=[{"topic": TOPIC, "partition": p, "offset": 0}
                                                         for p in range(PARTITIONS)])
    poll_until_stopped(history, stats, process, consumer, stop)


def group_consumer_loop(history, stats, index, stop, bootstrap):
    """A member of group history-group: reads the partitions the group gives
    it from the group's committed offsets (auto-committed every second), so
    a rebalance or a new coordinator may make it read some records again,
    never skip one. Each assignment is recorded with unknown start offsets."""
    process = f"g{index}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "history-group",
                         "enable.auto.commit": True, "auto.commit.interval.ms": 1000,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
                         "error_cb": lambda err: stats.error(process, err), **QUIET})
    history.record(process, "ok", "open", role="consumer", isolation="read_committed")

    def assigned(consumer, partitions):
        history.record(process, "ok", "assign", partitions=[{"topic": tp.topic, "partition": tp.partition,
                                                             "offset": None} for tp in partitions])

    consumer.subscribe([TOPIC], on_assign=assigned)
    poll_until_stopped(history, stats, process, consumer, stop)


def final_read(history, stats, bootstrap, timeout=60):
    """Reads each partition from offset 0 to its high watermark, fetching from its leader."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "history-final", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "error_cb": lambda err: stats.error("final", err), **QUIET})
    deadline = time.monotonic() + timeout
    ends = {}
    for p in range(PARTITIONS):
        while p not in ends:
            try:
                ends[p] = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5, cached=False)[1]
            except KafkaException as e:
                # A new leader answers OFFSET_NOT_AVAILABLE until its high watermark catches up.
                if time.monotonic() > deadline:
                    raise RunFailed(f"no high watermark for partition {p}: {e}")
                time.sleep(0.5)
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    read = {p: [] for p in range(PARTITIONS)}
    done = {p for p in range(PARTITIONS) if ends[p] == 0}
    while len(done) < PARTITIONS and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            if msg.error():
                stats.error("final", msg.error())
                continue
            read[msg.partition()].append({"offset": msg.offset(), "value": msg.value().decode()})
        # The position passes transaction markers and aborted records, which
        # are not returned: a partition whose last batch is a marker is read
        # once the position reaches its end.
        positions = consumer.position([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        done |= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    consumer.close()
    for p in range(PARTITIONS):
        history.record("final", "ok", "final-read", topic=TOPIC, partition=p, isolation="read_committed",
                       records=read[p])
    short = {p: (len(read[p]), ends[p]) for p in range(PARTITIONS) if p not in done}
    return ends, short


def nemesis(cluster, history, stop, kills):
    """KILLS times, evenly over DURATION: SIGKILL (or SIGSTOP, or cut off
    from the other brokers, per NEMESIS) the leader of the next partition,
    leave it so DOWN seconds, then start (or continue, or reconnect) it."""
    interval = DURATION / (KILLS + 1)
    begun = time.monotonic()
    for k in range(KILLS):
        if stop.wait(max(0.0, begun + (k + 1) * interval - time.monotonic())):
            return
        partition = k % PARTITIONS
        leader = cluster.describe(TOPIC).get(partition, (-1, []))[0]
        if leader not in cluster.alive():
            kills.append((partition, None, None))
            continue
        fault = NEMESES[NEMESIS][k % len(NEMESES[NEMESIS])]
        if fault == "pause":
            cluster.pause(leader)
        elif fault == "partition":
            for other in cluster.brokers:
                if other != leader:
                    cluster.namespaces.cut(leader, other)
        elif fault == "restart":
            cluster.terminate(leader)
        else:
            cluster.kill(leader)
            if fault == "wipe":
                shutil.rmtree(os.path.join(cluster.data, f"broker-{leader}"))
        history.record("nemesis", "info", fault, broker=leader, partition=partition)
        kills.append((partition, leader, fault))
        time.sleep(DOWN)
        if fault == "pause":
            cluster.resume(leader)
            history.record("nemesis", "info", "resume", broker=leader)
        elif fault == "partition":
            cluster.namespaces.heal()
            history.record("nemesis", "info", "heal", broker=leader)
        else:
            cluster.start(leader)
            cluster.wait_listening(leader)
            history.record("nemesis", "info", "start", broker=leader)


def run(out):
    namespaces = Namespaces(NET, (1, 2, 3)) if NAMESPACES else None
    cluster = Cluster(WEIR, NET, 9092, data=os.path.join(out, "data"), logs=out, namespaces=namespaces)
    os.makedirs(cluster.data)
    history = History(os.path.join(out, "history.jsonl"))
    stats = Stats()
    kills = []
    try:
        if namespaces:
            namespaces.create()
        cluster.start_all()
        cluster.weir("topics", "create", TOPIC, "-p", str(PARTITIONS), "-r", "3", "--config",
                     "min.insync.replicas=2", "-b", cluster.address(1))
        if not wait_healthy(cluster, 30):
            raise RunFailed(f"{TOPIC} never had a leader and a full ISR per partition")
        stop = threading.Event()
        workers = [threading.Thread(target=producer_loop, args=(history, stats, i, stop, cluster.bootstrap)) for i in range(PRODUCERS)]
        workers += [threading.Thread(target=txn_producer_loop, args=(history, stats, i, stop, cluster.bootstrap))
                    for i in range(TXN_PRODUCERS)]
        workers += [threading.Thread(target=group_consumer_loop, args=(history, stats, i, stop, cluster.bootstrap))
                    for i in range(GROUP_CONSUMERS)]
        workers += [threading.Thread(target=consumer_loop, args=(history, stats, i, stop, cluster.bootstrap)) for i in range(CONSUMERS)]
        for worker in workers:
            worker.start()
        nemesis_failed = []

        def nemesis_thread():
            try:
                nemesis(cluster, history, stop, kills)
            except (RunFailed, ClusterError) as e:
                nemesis_failed.append(e)
            except Exception as e:  # a bug here must not pass for a clean run
                nemesis_failed.append(RunFailed(f"the nemesis failed: {e!r}"))

        chaos = threading.Thread(target=nemesis_thread)
        chaos.start()
        time.sleep(DURATION)
        stop.set()
        chaos.join()
        for worker in workers:
            worker.join()
        if nemesis_failed:
            raise nemesis_failed[0]
        healthy = wait_healthy(cluster, 30)
        ends, short = final_read(history, stats, cluster.bootstrap)
    finally:
        cluster.stop()
        if namespaces:
            namespaces.remove()
        history.close()
    return kills, stats, healthy, ends, short


def main():
    out = os.environ.get("OUT") or tempfile.mkdtemp(prefix="weir-history-")
    os.makedirs(out, exist_ok=True)
    global PRODUCER_LOGGING
    PRODUCER_LOGGING = producer_logging(out)
    if NEMESIS not in NEMESES:
        print(f"NEMESIS must be one of {', '.join(NEMESES)}, not {NEMESIS!r}", file=sys.stderr)
        return 2
    print(f"history run: {DURATION:.0f} s, {KILLS} leader {NEMESIS} faults, {PARTITIONS} partitions, "
          f"{PRODUCERS} producers, {TXN_PRODUCERS} transactional, {CONSUMERS} consumers, "
          f"{GROUP_CONSUMERS} in a group; output in {out}", flush=True)
    try:
        kills, stats, healthy, ends, short = run(out)
    except (RunFailed, ClusterError) as e:
        print(f"run failed: {e}", file=sys.stderr)
        return 2
    print("faults (partition, leader): " + ", ".join(f"({p}, {f'{f} {b}' if b else 'no live leader'})"
                                                     for p, b, f in kills))
    if not healthy:
        print("warning: the ISR was not full again 30 s after the workload (final read taken anyway)")
    print(f"high watermarks: {ends}")
    for p, (got, end) in short.items():
        print(f"warning: the final read of partition {p} stopped at {got} records of {end}")
    for (role, code), (count, text) in sorted(stats.errors.items(), key=lambda item: -item[1][0]):
        print(f"{role} errors {code} x{count}, first: {text}")
    ops = checker.read_history(os.path.join(out, "history.jsonl"))
    result = checker.check(ops)
    print(f"ops {len(ops)}")
    print(result.report())
    for fatal in stats.fatals:
        print(f"fatal producer error: {fatal}")
    print(f"history: {os.path.join(out, 'history.jsonl')}")
    ok = result.ok and not stats.fatals
    if ok:
        shutil.rmtree(os.path.join(out, "data"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
