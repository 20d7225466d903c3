"""Local Weir brokers run as one cluster, for the scripts that drive one
(bench/replication.py, tools/tests/history/driver.py): broker N listens on
NET.N:PORT, its voter on NET.N:PORT+1, with one shard pinned to a core, its
data in DATA/broker-N and its log in LOGS/broker-N.log."""
import os
import signal
import subprocess
import time


class ClusterError(Exception):
    """A broker that does not start, a `weir` command that fails: the run cannot go on."""


class Cluster:
    def __init__(self, weir, net, port, data, logs, brokers=(1, 2, 3)):
        self.weir_binary = weir
        self.net, self.port = net, port
        self.data, self.logs = data, logs
        self.brokers = brokers
        self.procs = {}
        self.paused = set()
        self.voters = ",".join(f"{b}@{net}.{b}:{port + 1}" for b in brokers)
        self.bootstrap = ",".join(self.address(b) for b in brokers)

    def address(self, broker):
        return f"{self.net}.{broker}:{self.port}"

    def start(self, broker):
        log = open(os.path.join(self.logs, f"broker-{broker}.log"), "a")
        cores = os.cpu_count() or 1
        self.procs[broker] = subprocess.Popen(
            [self.weir_binary, "serve", "--node-id", str(broker), "--listen", self.address(broker), "--shards", "1",
             "--cpuset", str((broker - 1) % cores), "--admin-listen", "",
             "--data-dir", os.path.join(self.data, f"broker-{broker}"), "--controller-quorum-voters", self.voters],
            stderr=log, stdout=subprocess.DEVNULL)
        log.close()

    def start_all(self):
        for broker in self.brokers:
            self.start(broker)
        for broker in self.brokers:
            self.wait_listening(broker)

    def wait_listening(self, broker, timeout=60):
        path = os.path.join(self.data, f"broker-{broker}", "listen.addr")
        deadline = time.monotonic() + timeout
        while not (os.path.exists(path) and os.path.getsize(path) > 0):
            if time.monotonic() > deadline or self.procs[broker].poll() is not None:
                raise ClusterError(f"broker {broker} did not start; see {self.logs}/broker-{broker}.log")
            time.sleep(0.1)

    def kill(self, broker):
        self.procs[broker].send_signal(signal.SIGKILL)
        self.procs[broker].wait()
        # The next start writes it anew; wait_listening waits for that.
        os.remove(os.path.join(self.data, f"broker-{broker}", "listen.addr"))

    def pause(self, broker):
        """SIGSTOP: a broker that neither answers nor knows it was away (a
        long GC pause, a frozen VM), until `resume`."""
        self.procs[broker].send_signal(signal.SIGSTOP)
        self.paused.add(broker)

    def resume(self, broker):
        self.procs[broker].send_signal(signal.SIGCONT)
        self.paused.discard(broker)

    def alive(self):
        """The brokers running and not paused."""
        return [b for b, proc in self.procs.items() if proc.poll() is None and b not in self.paused]

    def stop(self):
        """SIGTERM, then SIGKILL for a broker that has not exited 10 s later."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cpu_seconds(self):
        """User and system CPU seconds of the live brokers so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for broker in self.alive():
            with open(f"/proc/{self.procs[broker].pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    def weir(self, *args, timeout=30):
        """Runs the `weir` command line; its output."""
        run = subprocess.run([self.weir_binary, *args], capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise ClusterError(f"weir {' '.join(args)}: {run.stderr.strip()}")
        return run.stdout

    def describe(self, topic):
        """{partition: (leader, isr)} as the first live broker that answers sees it."""
        errors = []
        for broker in self.alive():
            try:
                text = self.weir("topics", "describe", topic, "-b", self.address(broker))
            except (ClusterError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
                continue
            state = {}
            for line in text.splitlines():
                columns = line.split()  # partition leader epoch replicas isr earliest latest messages
                if columns and columns[0].isdigit():
                    state[int(columns[0])] = (int(columns[1]), [int(b) for b in columns[4].split(",") if b])
            return state
        raise ClusterError(f"no live broker describes {topic}: {errors}")
