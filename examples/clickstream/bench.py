"""Figures for the click-stream pipeline (run.sh BENCH=1 drives it).

  bench.py probe --bootstrap HOST:PORT --out visible.jsonl
      Reads page-views-1m, sessions and top-pages-1m with isolation.level=read_committed
      from the start while the pipeline runs, and writes each record with the
      wall-clock time it became visible here, until SIGTERM.

  bench.py report --bootstrap HOST:PORT --group GROUP --input clicks.jsonl
                  --visible visible.jsonl --cpu cpu.txt [--preload 1]
      End-to-end latency of each output record: from the produce call of the
      click that closed its window or session (for a top-pages-1m update: the
      page window it adds) (weir demo clicks --out's `_sent`; which
      click that is, check.py's replay says) to the time the probe saw the
      record. Throughput: the clicks over the time from the first produce
      call (with --preload 1: from the processor being ready, the clicks
      all produced before it started) to the moment check.py wait found
      everything consumed. CPU: the
      broker's and the processor's user+system time (/proc/PID/stat) over the
      same span, from cpu.txt (run.sh writes it).
"""

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, TopicPartition

import check

OUTPUTS = ("page-views-1m", "sessions", "top-pages-1m")


def probe(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "clickstream-bench-probe",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    tps = []
    for topic in OUTPUTS:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps += [TopicPartition(topic, p, 0) for p in meta.partitions]
    consumer.assign(tps)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    with open(args.out, "w") as out:
        while not stopping:
            for m in consumer.consume(500, 0.1):
                if m.error():
                    continue
                out.write(json.dumps({"t": time.time(), "topic": m.topic(), "v": json.loads(m.value())}) + "\n")
            out.flush()
    consumer.close()


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(args):
    events, _ = check.load_events(args.input)
    sent = {check_identity(e): e["_sent"] for e in events}
    with contextlib.redirect_stdout(io.StringIO()):
        by_page, _ = check.repartitioned_events(args, events)
    view_triggers, session_triggers = {}, {}
    check.expected_page_views(by_page, view_triggers)
    check.expected_sessions(events, session_triggers)

    seen = {}
    for line in open(args.visible) if not args.preload else []:
        r = json.loads(line)
        v = r["v"]
        if r["topic"] == "sessions":
            key = (r["topic"], v["user_id"], v["start"])
        else:  # a page-view window, or the table update that adds it
            key = (r["topic"], v.get("added", v.get("page")), v["window_start"])
        seen.setdefault(key, r["t"])  # the first copy, if there are more
    latencies = {topic: [] for topic in OUTPUTS}
    for (topic, k, start), t in seen.items():
        trigger = (session_triggers if topic == "sessions" else view_triggers).get((k, start))
        if trigger is not None:
            latencies[topic].append(t - sent[check_identity(trigger)])

    cpu = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in open(args.cpu)}
    tick = os.sysconf("SC_CLK_TCK")

    def usage(a, b):
        (t0, b0, p0), (t1, b1, p1) = cpu[a][:3], cpu[b][:3]
        return t1 - t0, (b1 - b0) / tick, (p1 - p0) / tick

    wall, broker_s, proc_s = usage("start", "consumed")
    t1 = cpu["consumed"][0]
    if os.path.exists(args.settled):
        # bytewax: check.py wait saw everything read and then waited for the
        # outputs to stay still; they last grew at this time.
        t1 = float(open(args.settled).read())
        print(f"bench: the outputs last grew {cpu['consumed'][0] - t1:.1f} s before check.py wait returned; "
              "the throughput counts to then, the CPU to the return")
    if args.preload:
        first = cpu["start"][0]
        print(f"bench: {len(events)} clicks produced beforehand; from the processor ready to all consumed: "
              f"{t1 - first:.1f} s, {len(events) / (t1 - first):.0f} clicks/s through the pipeline")
    else:
        first = min(e["_sent"] for e in events)
        print(f"bench: {len(events)} clicks from the first produce call to all consumed: {t1 - first:.1f} s, "
              f"{len(events) / (t1 - first):.0f} clicks/s through the pipeline")
    for topic, values in latencies.items():
        if values:
            print(f"bench: {topic}: end-to-end latency (closing click's produce call to read_committed visibility) "
                  f"of {len(values)} records: p50 {percentile(values, 0.5) * 1000:.0f} ms, "
                  f"p99 {percentile(values, 0.99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")
    busy = t1 - cpu["start"][0]  # without bytewax's settling time, which is nearly idle
    print(f"bench: CPU over those {busy:.1f} s: broker {broker_s:.2f} s ({100 * broker_s / busy:.0f}% of one core), "
          f"processor {proc_s:.2f} s ({100 * proc_s / busy:.0f}% of one core); broker share of the two: "
          f"{100 * broker_s / max(broker_s + proc_s, 1e-9):.0f}%")
    broker_user = (cpu["consumed"][3] - cpu["start"][3]) / tick
    broker_system = (cpu["consumed"][4] - cpu["start"][4]) / tick
    print(f"bench: the broker's CPU: user {broker_user:.2f} s, system {broker_system:.2f} s")
    requests = {}
    for label, sign in (("start", -1), ("consumed", 1)):
        for line in open(args.metrics % label):
            if line.startswith("weir_requests_total{"):
                labels, value = line.rsplit(" ", 1)
                api = labels.split('api="', 1)[1].split('"', 1)[0]
                requests[api] = requests.get(api, 0) + sign * float(value)
    total = sum(requests.values())
    top = sorted(((n, api) for api, n in requests.items() if n), reverse=True)
    print(f"bench: the broker answered {total:.0f} requests in {wall:.1f} s ({total / wall:.0f}/s; "
          + ", ".join(f"{api} {n:.0f}" for n, api in top[:8])
          + f"): {1e6 * broker_s / max(total, 1):.0f} us of broker CPU per request, "
          f"{1e6 * broker_s / len(events):.0f} us per click")
    if "idle" in cpu:
        idle_wall, idle_broker, idle_proc = usage("idle", "start")
        print(f"bench: idle baseline (clients connected, no clicks, {idle_wall:.1f} s): "
              f"broker {100 * idle_broker / idle_wall:.0f}%, processor {100 * idle_proc / idle_wall:.0f}% of one core")


def check_identity(e):
    return (e["user_id"], e["ts"], e["page"], e["session_cookie"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--group", required=True)
    r.add_argument("--input", required=True)
    r.add_argument("--visible", required=True)
    r.add_argument("--cpu", required=True)
    r.add_argument("--metrics", required=True, help="the broker's /metrics at the samples, %%s: start or consumed")
    r.add_argument("--settled", default="", help="check.py wait --stamp's file, if it wrote one")
    r.add_argument("--preload", type=int, default=0, help="1: the clicks were produced before the processor started")
    args = ap.parse_args()
    (probe if args.command == "probe" else report)(args)


if __name__ == "__main__":
    sys.exit(main())
