"""Click generator: seeded, reproducible JSON click events keyed by user_id.

Writes the events to a Kafka topic (default `clicks`) and, in the same order,
to a JSONL file that check.py recomputes the expected results from.

Usage: generate.py --bootstrap HOST:PORT [--topic clicks] [--events N]
                   [--seed S] [--rate EVENTS_PER_S] [--out clicks.jsonl] [--dry-run]

The rate only paces the producing: the events and their (synthetic) event
times are the same at any rate.

The model (all times are synthetic event times, never wall-clock):
- the simulated period starts at 2026-01-01T00:00:00Z;
- there are N/20 users, whose first visits are spread over 0.6 s of event
  time per event; each user visits in sessions: a session is a run of clicks
  2 s to 10 minutes apart, and the next session of the same user starts 31
  minutes to 4 hours after the previous one ended (so more than the 30-minute
  inactivity gap);
- pages are drawn from a Zipf-like law (weight 1/rank^1.1) over 40 pages; the
  first page of a session comes with an external referrer, later pages have
  the previous page as referrer;
- events are produced in event-time order except for about 2% of them,
  which are held back and produced 1 to 150 s of event time later (out of
  order; those held back longer than the window grace are late);
- every timestamp is distinct, so "entry" and "exit" pages are well defined;
- the N events are the N earliest of the sessions generated, so the last
  sessions of the period may be cut short.
"""

import argparse
import heapq
import json
import random
import sys
import time
import uuid

T0_MS = 1767225600000  # 2026-01-01T00:00:00Z
PAGES = ["/"] + [f"/{section}/{i}" for section in ("product", "blog", "docs", "cart") for i in range(10)][:39]
REFERRERS = ["https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/", "https://duckduckgo.com/", ""]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Mobile Safari/537.36",
]
MIN_SESSION_GAP_MS = 31 * 60_000
MAX_SESSION_GAP_MS = 4 * 3600_000
MAX_CLICK_GAP_MS = 10 * 60_000
OUT_OF_ORDER_SHARE = 0.02
MAX_HOLD_BACK_MS = 150_000


def generate_session(rng, heap, events, weights):
    """Pops the next session start off `heap`, appends that session's clicks
    to `events` and schedules the user's next session."""
    start, u, user = heapq.heappop(heap)
    cookie = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    ts = start
    referrer = rng.choice(REFERRERS)
    for i in range(max(1, min(40, int(rng.expovariate(1 / 6)) + 1))):
        if i:
            ts += min(MAX_CLICK_GAP_MS, 2000 + int(rng.expovariate(1 / 45_000)))
        page = rng.choices(PAGES, weights)[0]
        events.append({
            "user_id": user["user_id"],
            "session_cookie": cookie,
            "page": page,
            "referrer": referrer,
            "ts": ts,
            "user_agent": user["agent"],
        })
        referrer = "https://shop.example" + page
    heapq.heappush(heap, (ts + MIN_SESSION_GAP_MS + rng.randrange(MAX_SESSION_GAP_MS - MIN_SESSION_GAP_MS), u, user))


def generate(n_events, seed):
    """Returns the events in production order (a list of dicts)."""
    rng = random.Random(seed)
    weights = [1 / (rank ** 1.1) for rank in range(1, len(PAGES) + 1)]
    n_users = max(5, n_events // 20)
    # Users first arrive over a span of 0.6 s of event time per event, and
    # come back in further sessions.
    span_ms = max(600_000, n_events * 600)
    heap = []
    for u in range(n_users):
        user = {
            "user_id": f"u{u:05d}",
            "agent": rng.choice(AGENTS),
        }
        heapq.heappush(heap, (T0_MS + rng.randrange(span_ms), u, user))

    events = []
    # Generate sessions in start order. Every event before the next session
    # start is then final, so stop once there are N of them.
    while len(events) < n_events or sum(e["ts"] < heap[0][0] for e in events) < n_events:
        for _ in range(max(1, n_events // 20)):
            generate_session(rng, heap, events, weights)

    events.sort(key=lambda e: (e["ts"], e["user_id"]))
    # The generation above stops at a count, so the tail of the period is
    # thin; keep the N earliest events, which form a complete prefix.
    events = events[:n_events]
    # Distinct timestamps everywhere (bumping keeps event-time order).
    last = None
    for e in events:
        if last is not None and e["ts"] <= last:
            e["ts"] = last + 1
        last = e["ts"]

    # Out of order: hold a few events back, to be produced after the events
    # up to MAX_HOLD_BACK_MS of event time later.
    order = []
    held = []  # (release_at_ts, seq, event)
    for seq, e in enumerate(events):
        while held and held[0][0] <= e["ts"]:
            order.append(heapq.heappop(held)[2])
        if rng.random() < OUT_OF_ORDER_SHARE:
            heapq.heappush(held, (e["ts"] + rng.randint(1000, MAX_HOLD_BACK_MS), seq, e))
        else:
            order.append(e)
    while held:
        order.append(heapq.heappop(held)[2])
    return order


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="clicks")
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out", default="clicks.jsonl")
    ap.add_argument("--rate", type=float, default=0, help="events per second of wall-clock time (0: as fast as it can)")
    ap.add_argument("--dry-run", action="store_true", help="write only the JSONL file")
    args = ap.parse_args()

    events = generate(args.events, args.seed)
    started = time.monotonic()
    delivered = {}
    sent = {}  # seq -> wall-clock time of the produce call (for bench.py's latencies)
    if not args.dry_run:
        from confluent_kafka import Producer

        producer = Producer({
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Small batches: a consumer gets at least a whole batch of a
            # partition at a time, so big ones would make the input partitions
            # interleave coarsely in event time downstream.
            "batch.num.messages": 10,
            "partitioner": "murmur2_random",  # what the Java client does with keys
        })
        errors = []

        def report(err, msg, seq):
            if err is not None:
                errors.append(err)
            else:
                delivered[seq] = (msg.partition(), msg.offset())

        for seq, e in enumerate(events):
            if args.rate > 0:
                ahead = started + seq / args.rate - time.monotonic()
                if ahead > 0:
                    producer.poll(ahead)
            while True:
                try:
                    sent[seq] = time.time()
                    producer.produce(
                        args.topic,
                        key=e["user_id"].encode(),
                        value=json.dumps(e, separators=(",", ":")).encode(),
                        timestamp=e["ts"],
                        on_delivery=lambda err, msg, seq=seq: report(err, msg, seq),
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        left = producer.flush(60)
        if errors or left:
            sys.exit(f"generate: {len(errors)} delivery errors ({errors[:3]}), {left} undelivered")

    with open(args.out, "w") as f:
        for seq, e in enumerate(events):
            partition, offset = delivered.get(seq, (None, None))
            f.write(json.dumps({**e, "_partition": partition, "_offset": offset, "_sent": sent.get(seq)},
                               separators=(",", ":")) + "\n")
    late = sum(1 for a, b in zip(events, events[1:]) if b["ts"] < a["ts"])
    print(
        f"generate: {len(events)} events, {len({e['user_id'] for e in events})} users, "
        f"{len({e['page'] for e in events})} pages, event time "
        f"{(events[-1]['ts'] - T0_MS) / 3600_000:.2f} h simulated, {late} out-of-order steps, "
        f"produced in {time.monotonic() - started:.2f} s -> {args.topic}, {args.out}"
    )


if __name__ == "__main__":
    main()
