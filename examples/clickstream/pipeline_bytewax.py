"""The click-stream pipeline on bytewax: the same three outputs as
pipeline_quix.py, checked by the same check.py.

Reads JSON clicks keyed by user_id from `clicks` and writes
  (a) `page-views-1m`: page views per page per 1-minute tumbling event-time
      window (grace 10 s), one record per closed window; key: the page;
      value: {page, window_start, window_end, views};
  (b) `sessions`: user sessions with a 30-minute inactivity gap, one record
      per closed session; key: the user_id; value: {user_id, start, end,
      pages, entry_page, exit_page} (end: the last click's time + 1 ms);
  (c) `top-pages-1m`: the top 5 pages of each minute, one update per closed
      page window; key: the window start; value: {window_start, window_end,
      added, top, pages, views}.

The dataflow, its partitioned Kafka input and output, the routing by key and
the per-key state are bytewax's (bytewax.connectors.kafka, key_on,
stateful_flat_map). The window rules are written out here, per key, as
quixstreams applies them with its closing strategy "key" (see check.py):
bytewax's own window operators take their watermark from the system clock as
well as from event times (EventClock adds the system time elapsed since it
saw the largest timestamp), so their late-event decisions would depend on the
timing of the run and no recomputation from the input could check them
exactly.

Like quixstreams, the page-view branch re-keys the clicks by page through a
Kafka topic, `repartition__clickstream-bytewax--clicks--by-page`, which this
same dataflow reads back; check.py replays the windows in that topic's order.

bytewax does not use consumer groups or Kafka transactions: it assigns itself
all partitions and keeps its input offsets in its own recovery store, and its
Kafka sink is an idempotent (not transactional) producer. Its guarantee is
at-least-once: after a crash it resumes from its last snapshot and writes the
outputs since then again. With --recovery-dir it snapshots every epoch
(--epoch-interval seconds); without, a restart starts from the beginning.

It also writes, to --progress, the next offset it will read of every input
partition (every 0.2 s), for check.py wait --progress.

Usage: pipeline_bytewax.py --bootstrap HOST:PORT [--progress FILE]
                           [--recovery-dir DIR] [--epoch-interval S]
Runs until SIGTERM/SIGINT.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow

from common import PAGE_VIEWS_GRACE_MS, SESSION_GAP_MS, SESSION_GRACE_MS, WINDOW_MS, top_pages_row

NAME = "clickstream-bytewax"
REPARTITION = f"repartition__{NAME}--clicks--by-page"

PROGRESS = {}  # "topic/partition" -> next offset
LATE = {"page-views-1m": 0, "sessions": 0}


def track(step_id, msg):
    PROGRESS[f"{msg.topic}/{msg.partition}"] = msg.offset + 1


def write_progress(path):
    while True:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"offsets": dict(PROGRESS), "late": dict(LATE), "at": time.time()}, f)
        os.replace(tmp, path)
        time.sleep(0.2)


def sessions_step(state, click):
    """One user's clicks, in input-partition order -> the sessions they
    close. A click is late when it is more than gap + grace before the
    user's latest click; it joins (and may merge) the open sessions it is
    within one gap of; a session closes once it ends 2 gaps + grace before
    the latest click."""
    state = state or {"latest": 0, "open": []}
    ts, gap = click["ts"], SESSION_GAP_MS
    latest = max(ts, state["latest"])
    late_before = latest - gap - SESSION_GRACE_MS
    if ts < late_before:
        LATE["sessions"] += 1
        return state, []
    merged = {"start": ts, "end": ts + 1, "pages": 1, "entry": (click["page"], ts), "exit": (click["page"], ts)}
    keep = []
    for s in state["open"]:
        if s["start"] - gap <= ts < s["end"] + gap:
            merged = {
                "start": min(merged["start"], s["start"]),
                "end": max(merged["end"], s["end"]),
                "pages": merged["pages"] + s["pages"],
                "entry": min(merged["entry"], s["entry"], key=lambda p: p[1]),
                "exit": max(merged["exit"], s["exit"], key=lambda p: p[1]),
            }
        else:
            keep.append(s)
    keep.append(merged)
    keep.sort(key=lambda s: s["start"])
    state["latest"] = latest
    closed = [s for s in keep if s["end"] <= late_before - gap]
    state["open"] = [s for s in keep if s["end"] > late_before - gap]
    out = [
        {
            "user_id": click["user_id"],
            "start": s["start"],
            "end": s["end"],
            "pages": s["pages"],
            "entry_page": s["entry"][0],
            "exit_page": s["exit"][0],
        }
        for s in closed
    ]
    return state, out


def page_views_step(state, click):
    """One page's clicks, in repartition-topic order -> the 1-minute windows
    they close. A click is late when its window ended more than the grace
    before the page's latest click; a window closes once it has."""
    state = state or {"latest": 0, "open": {}}
    ts = click["ts"]
    latest = max(ts, state["latest"])
    expired_end = latest - PAGE_VIEWS_GRACE_MS
    start = ts - ts % WINDOW_MS
    if start + WINDOW_MS <= expired_end:
        LATE["page-views-1m"] += 1
    else:
        state["open"][start] = state["open"].get(start, 0) + 1
        state["latest"] = latest
    out = []
    for s in sorted(s for s in state["open"] if s + WINDOW_MS <= expired_end):
        out.append({"page": click["page"], "window_start": s, "window_end": s + WINDOW_MS, "views": state["open"].pop(s)})
    return state, out


def top_pages_step(state, window):
    """One minute's closed page windows -> its table row after each."""
    state = state or {}
    state[window["page"]] = window["views"]
    return state, [top_pages_row(window, state)]


def to_sink(topic, key_field):
    def encode(value):
        return KafkaSinkMessage(
            key=str(value[key_field]).encode(),
            value=json.dumps(value, separators=(",", ":")).encode(),
            topic=topic,
        )

    return encode


def build_flow(bootstrap):
    brokers = [bootstrap]
    flow = Dataflow(NAME)
    # Small batches interleave the input partitions finely (as the small
    # fetches of pipeline_quix.py do).
    source_config = {"max.partition.fetch.bytes": os.environ.get("FETCH_BYTES", "4096")}
    clicks = op.input("clicks", flow, KafkaSource(brokers, ["clicks"], add_config=source_config, batch_size=100))
    op.inspect("clicks-progress", clicks, track)
    clicks = op.map("parse", clicks, lambda m: json.loads(m.value))

    by_user = op.key_on("by-user", clicks, lambda c: c["user_id"])
    sessions = op.key_rm("sessions-unkey", op.stateful_flat_map("sessions", by_user, sessions_step))

    repartition = op.map("to-repartition", clicks, lambda c: KafkaSinkMessage(
        # JSON keys, as quixstreams writes them to its repartition topics.
        key=json.dumps(c["page"]).encode(), value=json.dumps(c, separators=(",", ":")).encode(), topic=REPARTITION))

    by_page_in = op.input("by-page", flow, KafkaSource(brokers, [REPARTITION], add_config=source_config, batch_size=100))
    op.inspect("by-page-progress", by_page_in, track)
    by_page = op.key_on("by-page-key", op.map("parse-by-page", by_page_in, lambda m: json.loads(m.value)),
                        lambda c: c["page"])
    views = op.key_rm("views-unkey", op.stateful_flat_map("page-views-1m", by_page, page_views_step))

    by_window = op.key_on("by-window", views, lambda v: str(v["window_start"]))
    top = op.key_rm("top-unkey", op.stateful_flat_map("top-pages-1m", by_window, top_pages_step))

    out = op.merge(
        "outputs",
        repartition,
        op.map("views-out", views, to_sink("page-views-1m", "page")),
        op.map("sessions-out", sessions, to_sink("sessions", "user_id")),
        op.map("top-out", top, to_sink("top-pages-1m", "window_start")),
    )
    op.output("kafka", out, KafkaSink(brokers, None, add_config={"enable.idempotence": "true", "linger.ms": "5"}))
    return flow


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--progress", default=None)
    ap.add_argument("--recovery-dir", default=None)
    ap.add_argument("--epoch-interval", type=float, default=1.0)
    args = ap.parse_args()

    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    recovery = None
    if args.recovery_dir:
        db = Path(args.recovery_dir)
        if not db.exists():
            db.mkdir(parents=True)
            from bytewax.recovery import init_db_dir

            init_db_dir(db, 1)
        recovery = RecoveryConfig(db)
    if args.progress:
        threading.Thread(target=write_progress, args=(args.progress,), daemon=True).start()

    def stop(signum, frame):
        print(f"clickstream: late events dropped by this process: {LATE}", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"clickstream: bytewax pipeline starting (pid {os.getpid()})", flush=True)
    print("clickstream: is now processing incoming messages", flush=True)
    cli_main(
        build_flow(args.bootstrap),
        epoch_interval=timedelta(seconds=args.epoch_interval),
        recovery_config=recovery,
    )


if __name__ == "__main__":
    sys.exit(main())
