"""Local Weir brokers run as one cluster, for the scripts that drive one
(bench/replication.py, tools/tests/history/driver.py): broker N listens on
NET.N:PORT, its voter on NET.N:PORT+1, with one shard pinned to a core, its
data in DATA/broker-N and its log in LOGS/broker-N.log. With `Namespaces`,
each broker runs in a network namespace of its own, so that the network
between brokers can be cut."""
import os
import signal
import subprocess
import time


class ClusterError(Exception):
    """A broker that does not start, a `weir` command that fails: the run cannot go on."""


def ip(*args):
    run = subprocess.run(["ip", *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {run.stderr.strip()}")


class Namespaces:
    """Broker N in network namespace weir-TAG-N, at NET.N on a veth pair to
    a bridge that holds NET.254, this process's side, where the clients
    run. `cut` drops the packets between two of them silently, as a failed
    link does: each namespace's first routing rule blackholes what comes
    from the other (the rule that delivers local addresses is moved behind
    it, or it would match first). Needs root and iproute2; no kernel module
    beyond what network namespaces need."""

    CLIENTS = 254

    def __init__(self, net, brokers):
        tag = os.getpid() % 100000
        self.net = net
        self.bridge = f"weirbr{tag}"
        self.names = {b: f"weir-{tag}-{b}" for b in brokers}
        self.cuts = set()

    def create(self):
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.net}.{self.CLIENTS}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for broker, name in self.names.items():
            ip("netns", "add", name)
            ip("link", "add", f"{self.bridge}-{broker}", "type", "veth", "peer", "name", "eth0", "netns", name)
            ip("link", "set", f"{self.bridge}-{broker}", "master", self.bridge, "up")
            ip("-n", name, "addr", "add", f"{self.net}.{broker}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "rule", "add", "pref", "100", "lookup", "local")
            ip("-n", name, "rule", "del", "pref", "0", "lookup", "local")

    def exec_prefix(self, broker):
        return ["ip", "netns", "exec", self.names[broker]]

    def cut(self, a, b):
        """No packet between broker a and b (or CLIENTS) any more."""
        for here, there in ((a, b), (b, a)):
            if here in self.names:
                ip("-n", self.names[here], "rule", "add", "pref", "10", "from", f"{self.net}.{there}", "blackhole")
                self.cuts.add((here, there))

    def heal(self):
        """Every cut mended."""
        for here, there in sorted(self.cuts):
            ip("-n", self.names[here], "rule", "del", "pref", "10", "from", f"{self.net}.{there}", "blackhole")
        self.cuts.clear()

    def remove(self):
        """The namespaces and the bridge gone (their veth pairs go with them);
        what does not exist is skipped."""
        for name in self.names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class Cluster:
    def __init__(self, weir, net, port, data, logs, brokers=(1, 2, 3), namespaces=None):
        self.weir_binary = weir
        self.namespaces = namespaces
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
        # `ip netns exec` execs the broker: the pid stays the broker's.
        prefix = self.namespaces.exec_prefix(broker) if self.namespaces else []
        self.procs[broker] = subprocess.Popen(
            [*prefix, self.weir_binary, "serve", "--node-id", str(broker), "--listen", self.address(broker), "--shards", "1",
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

    def terminate(self, broker, timeout=40):
        """SIGTERM, as an operator's restart: a cluster broker first hands its
        leaderships over (controlled shutdown, 30 s at most), then exits 0."""
        self.procs[broker].terminate()
        try:
            code = self.procs[broker].wait(timeout)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"broker {broker} still runs {timeout} s after SIGTERM")
        if code != 0:
            raise ClusterError(f"broker {broker} exited {code} after SIGTERM")

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
