"""Checker for the click-stream pipeline.

  check.py verify --bootstrap HOST:PORT --input clicks.jsonl
      Recomputes the expected page-view windows and sessions from the JSONL
      file `weir demo clicks --out` wrote, reads `page-views-1m` and `sessions` with
      isolation.level=read_committed, and compares: missing, extra, wrong
      (same window, different value) and duplicate results. Exits 1 on any
      difference.

  check.py wait --bootstrap HOST:PORT --group GROUP [--timeout S] [--progress FILE]
      Waits until the consumer group has committed everything on its input
      topics (clicks and quixstreams' repartition topic), i.e. until the
      pipeline has consumed all there is. Exits 1 on timeout.

The expected results follow quixstreams' documented event-time rules with the
closing strategy "key" (see pipeline_quix.py), replayed per key in the order
the records sit in the input partition:
  - tumbling window [s, s+60000) of a page: an event is late and dropped when
    s + 60000 <= latest - grace, `latest` being the largest event time seen
    for that page; a window is emitted once latest - grace >= its end;
  - sessions of a user: an event is late when ts < latest - gap - grace; it
    joins (and may merge) the sessions it is within one gap of; a session
    [start, end) is emitted once end <= latest - 2 * gap - grace.
Those decisions depend on the order the records of one key arrive in. For
sessions (keyed by user, as the input is) that is the order of the user's
input partition, known from the generator's JSONL (`_partition`, `_offset`). The page-view
branch re-keys by page through quixstreams' repartition topic, which
interleaves the input partitions in an order only the run decides; the
checker therefore reads that topic (read_committed), checks that it holds
every input event exactly once, and replays the windows in its order.
"""

import argparse
import collections
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

WINDOW_MS = 60_000
PAGE_VIEWS_GRACE_MS = 10_000
SESSION_GAP_MS = 30 * 60_000
SESSION_GRACE_MS = 0
TOP_N = 5


def load_events(path):
    events = [json.loads(line) for line in open(path)]
    partitions = {e["_partition"] for e in events}
    if None not in partitions:
        events.sort(key=lambda e: (e["_partition"], e["_offset"]))
    return events, partitions


def expected_page_views(events, triggers=None):
    """{(page, start): (end, views)} of the closed windows, and stats.
    triggers, if given, gets {(page, start): the event that closed it}."""
    latest = {}
    open_windows = collections.defaultdict(dict)  # page -> {start: views}
    closed = {}
    late = 0
    for e in events:
        page, ts = e["page"], e["ts"]
        top = max(ts, latest.get(page, 0))
        max_expired_end = top - PAGE_VIEWS_GRACE_MS
        start = ts - ts % WINDOW_MS
        if start + WINDOW_MS <= max_expired_end:
            late += 1
        else:
            windows = open_windows[page]
            windows[start] = windows.get(start, 0) + 1
            latest[page] = top
        windows = open_windows[page]
        for s in sorted(s for s in windows if s + WINDOW_MS <= max_expired_end):
            closed[(page, s)] = (s + WINDOW_MS, windows.pop(s))
            if triggers is not None:
                triggers[(page, s)] = e
    still_open = sum(len(w) for w in open_windows.values())
    return closed, {"late events dropped": late, "windows left open": still_open}


def expected_sessions(events, triggers=None):
    """{(user, start): (end, pages, entry_page, exit_page)} of the closed
    sessions, and stats. triggers, if given, gets {(user, start): the event
    that closed it}."""
    latest = {}
    open_sessions = collections.defaultdict(list)  # user -> [session dict], by start
    closed = {}
    late = 0
    gap, grace = SESSION_GAP_MS, SESSION_GRACE_MS
    for e in events:
        user, ts = e["user_id"], e["ts"]
        watermark = max(ts, latest.get(user, 0))
        late_before = watermark - gap - grace
        close_before = late_before - gap
        sessions = open_sessions[user]
        if ts < late_before:
            late += 1
            continue
        matched = [s for s in sessions if s["start"] - gap <= ts < s["end"] + gap]
        assert len(matched) <= 2, matched
        new = {"start": ts, "end": ts + 1, "pages": 1, "entry": (e["page"], ts), "exit": (e["page"], ts)}
        for s in matched:
            sessions.remove(s)
            new = {
                "start": min(new["start"], s["start"]),
                "end": max(new["end"], s["end"]),
                "pages": new["pages"] + s["pages"],
                "entry": min(new["entry"], s["entry"], key=lambda p: p[1]),
                "exit": max(new["exit"], s["exit"], key=lambda p: p[1]),
            }
        sessions.append(new)
        sessions.sort(key=lambda s: s["start"])
        latest[user] = watermark
        while sessions and sessions[0]["end"] <= close_before:
            s = sessions.pop(0)
            closed[(user, s["start"])] = (s["end"], s["pages"], s["entry"][0], s["exit"][0])
            if triggers is not None:
                triggers[(user, s["start"])] = e
    still_open = sum(len(s) for s in open_sessions.values())
    return closed, {"late events dropped": late, "sessions left open": still_open}


def expected_top_pages(views):
    """{window_start: (window_end, closed page windows, their views, top)}
    from the closed page-view windows ({(page, start): (end, views)}), top
    being the TOP_N (page, views) by views descending, then page."""
    minutes = collections.defaultdict(dict)
    for (page, start), (end, n) in views.items():
        minutes[start][page] = n
    expected = {}
    for start, pages in minutes.items():
        top = sorted(pages.items(), key=lambda pv: (-pv[1], pv[0]))[:TOP_N]
        expected[start] = (start + WINDOW_MS, len(pages), sum(pages.values()), top)
    return expected


def compare_top_pages(expected, views, records):
    """The top-pages-1m table: each window's updates must number 1 to K
    (K: its closed page windows), each once, and add each of its closed page
    windows (`added`); every update lists pages with
    their exact closed-window views, in order, at most TOP_N of them; the
    last (pages == K) is the window's expected top-N with its total views.
    Prints the differences and returns their counts by kind (a Counter)."""
    updates = collections.defaultdict(list)  # start -> [(pages, value, partition, offset)]
    bad_keys = 0
    for partition, offset, kafka_key, v in records:
        if kafka_key != str(v["window_start"]):
            bad_keys += 1
        updates[v["window_start"]].append((v["pages"], v, partition, offset))
    pages_of = collections.defaultdict(set)  # start -> its closed page windows' pages
    for page, start in views:
        pages_of[start].add(page)
    missing, extra, duplicated, wrong = [], [], [], []
    for start in sorted(set(expected) | set(updates)):
        got = updates.get(start, [])
        if start not in expected:
            extra.append((start, [u[0] for u in got]))
            continue
        end, k, total, top = expected[start]
        counts = collections.Counter(u[0] for u in got)
        missing += [(start, i) for i in range(1, k + 1) if i not in counts]
        extra += [(start, i) for i in counts if not 1 <= i <= k]
        duplicated += [(start, i) for i, c in counts.items() if c > 1]
        added = {u[1]["added"] for u in got}
        missing += [(start, p) for p in sorted(pages_of[start] - added)]
        extra += [(start, p) for p in sorted(added - pages_of[start])]
        for pages, v, partition, offset in got:
            listed = [(t["page"], t["views"]) for t in v["top"]]
            ok = (
                v["window_end"] == end
                and len(listed) == min(pages, TOP_N)
                and listed == sorted(listed, key=lambda pv: (-pv[1], pv[0]))
                and all(views.get((p, start), (None, None))[1] == n for p, n in listed)
            )
            if pages == k:
                ok = ok and listed == top and v["views"] == total
            if not ok:
                wrong.append((start, pages, listed, v["views"], "expected last", top, total))
    n_updates = sum(e[1] for e in expected.values())
    return report(
        f"top-pages-1m: expected {len(expected)} windows with {n_updates} updates, got {len(records)} records",
        {"missing": missing, "extra": extra, "duplicated": duplicated, "wrong": wrong}, bad_keys,
        lambda label, item: f"  {label} (window start, update): {item}",
    )


def report(heading, found, bad_keys, describe):
    """Prints `heading` with the count of each kind of difference in `found`
    ({kind: [difference]}) and the first five of each (as describe(kind,
    difference) words them); returns the counts by kind (a Counter)."""
    print(f"{heading}: " + "".join(f"{len(items)} {label}, " for label, items in found.items())
          + f"{bad_keys} with a wrong message key")
    for label, items in found.items():
        for item in items[:5]:
            print(describe(label, item))
        if len(items) > 5:
            print(f"  ... {len(items) - 5} more {label}")
    return collections.Counter({**{label: len(items) for label, items in found.items()}, "wrong key": bad_keys})


def read_committed(bootstrap, topic, json_key=False):
    """All records of `topic` visible to a read_committed consumer, as
    (partition, offset, key, value) tuples."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "clickstream-checker",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    })
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        sys.exit(f"check: topic {topic}: {metadata.error}")
    partitions = sorted(metadata.partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    records, at_end = [], set()
    deadline = time.time() + 60
    while len(at_end) < len(partitions):
        if time.time() > deadline:
            sys.exit(f"check: reading {topic} timed out ({len(records)} records)")
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
                continue
            sys.exit(f"check: reading {topic}: {m.error()}")
        at_end.discard(m.partition())
        key = m.key().decode() if m.key() is not None else None
        records.append((m.partition(), m.offset(), json.loads(key) if json_key else key, json.loads(m.value())))
    consumer.close()
    return records


def compare(name, expected, records, key_of, value_of, record_key):
    """Prints the differences between `expected` ({key: value}) and the
    output `records`; returns their counts by kind (a Counter)."""
    seen = collections.defaultdict(list)
    bad_keys = 0
    for partition, offset, kafka_key, value in records:
        k = key_of(value)
        if kafka_key != record_key(value):
            bad_keys += 1
        seen[k].append((value_of(value), partition, offset))
    missing = sorted(k for k in expected if k not in seen)
    extra = sorted(k for k in seen if k not in expected)
    duplicates = sorted(k for k, v in seen.items() if len(v) > 1)
    wrong = sorted(k for k, v in seen.items() if k in expected and any(x[0] != expected[k] for x in v))
    return report(
        f"{name}: expected {len(expected)}, got {len(records)} records",
        {"missing": missing, "extra": extra, "duplicated": duplicates, "wrong": wrong}, bad_keys,
        lambda label, k: f"  {label} {k}: expected {expected.get(k)}, got {[x for x in seen.get(k, [])]}",
    )


def repartitioned_events(args, events):
    """The page-view branch's input in the order it consumed it: quixstreams'
    repartition topic (read_committed) when there is one, which must then hold
    every input event exactly once; else (one input partition, where
    quixstreams re-keys in place) the input order. Returns (events,
    differences by kind). Duplicated records stay in the returned events:
    the windows counted them, so the replay does too, and the duplicates are
    reported here."""
    topics = AdminClient({"bootstrap.servers": args.bootstrap}).list_topics(timeout=10).topics
    names = [t for t in topics if t.startswith(f"repartition__{args.group}--") and t.endswith("--by-page")]
    if not names:
        print("check: no repartition topic (one input partition): page views replayed in input order")
        return events, collections.Counter()
    assert len(names) == 1, names
    records = read_committed(args.bootstrap, names[0], json_key=True)
    identity = lambda e: (e["user_id"], e["ts"], e["page"], e["session_cookie"])
    want = collections.Counter(identity(e) for e in events)
    got = collections.Counter(identity(v) for _, _, _, v in records)
    lost, doubled = want - got, got - want
    duplicated = sum(n for e, n in doubled.items() if e in want)
    bad_keys = sum(1 for _, _, k, v in records if k != v["page"])
    print(
        f"{names[0]}: {len(records)} records for {len(events)} input events: "
        f"{sum(lost.values())} missing, {sum(doubled.values())} extra or duplicated "
        f"({duplicated} copies of input events), {bad_keys} with a wrong key"
    )
    for e in list(lost)[:5]:
        print(f"  missing {e}")
    for e in list(doubled)[:5]:
        print(f"  extra {e} x{doubled[e]}")
    records.sort(key=lambda r: (r[0], r[1]))
    return [v for _, _, _, v in records], collections.Counter({
        "missing": sum(lost.values()), "duplicated": duplicated,
        "extra": sum(doubled.values()) - duplicated, "wrong key": bad_keys,
    })


def verify(args):
    events, partitions = load_events(args.input)
    by_page, differences = repartitioned_events(args, events)
    views, view_stats = expected_page_views(by_page)
    sessions, session_stats = expected_sessions(events)
    print(f"check: {len(events)} input events in {len(partitions)} partition(s); "
          f"page views: {view_stats}; sessions: {session_stats}")
    differences += compare(
        "page-views-1m", views, read_committed(args.bootstrap, "page-views-1m"),
        key_of=lambda v: (v["page"], v["window_start"]),
        value_of=lambda v: (v["window_end"], v["views"]),
        record_key=lambda v: v["page"],
    )
    differences += compare(
        "sessions", sessions, read_committed(args.bootstrap, "sessions"),
        key_of=lambda v: (v["user_id"], v["start"]),
        value_of=lambda v: (v["end"], v["pages"], v["entry_page"], v["exit_page"]),
        record_key=lambda v: v["user_id"],
    )
    differences += compare_top_pages(expected_top_pages(views), views, read_committed(args.bootstrap, "top-pages-1m"))
    total_views = sum(v[1] for v in views.values())
    print(f"check: {total_views} page views in {len(views)} closed windows, {len(sessions)} closed sessions")
    total = sum(differences.values())
    if total:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(differences.items()) if n)
        only_duplicates = total == differences["duplicated"]
        print(f"VERDICT: FAIL, {total} differences ({kinds})"
              + (": duplicates only, as at-least-once processing gives after a crash" if only_duplicates else ""))
        sys.exit(1)
    print("VERDICT: PASS, 0 differences")


def wait_progress(args):
    """For a processor without consumer groups (bytewax): waits until the
    progress file it writes says it has read every record of its inputs
    (clicks and its repartition topic), no transaction is open, and the
    output topics' high watermarks have not moved for --settle seconds."""
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "clickstream-wait"})
    deadline = time.time() + args.timeout
    pending, outputs, since = "nothing checked yet", None, time.time()
    while time.time() < deadline:
        topics = admin.list_topics(timeout=10).topics
        try:
            progress = json.load(open(args.progress))["offsets"]
        except (OSError, ValueError):
            progress = {}
        inputs = [args.input.split(",")[0]] + sorted(t for t in topics if t.startswith(f"repartition__{args.group}--"))
        pending = None
        for t in inputs:
            for p in topics[t].partitions:
                high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                if progress.get(f"{t}/{p}", 0) < high:
                    pending = f"{t}[{p}] read up to {progress.get(f'{t}/{p}', 0)} of {high}"
        marks = {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in ("page-views-1m", "sessions", "top-pages-1m") for p in topics[t].partitions
        }
        if marks != outputs or pending is not None:
            outputs, since = marks, time.time()
        elif time.time() - since >= args.settle:
            print(f"wait: {args.group} has read all its input and its outputs have not grown for {args.settle} s")
            if args.stamp:
                with open(args.stamp, "w") as f:
                    f.write(f"{since}\n")
            consumer.close()
            return
        time.sleep(0.5)
    sys.exit(f"wait: timed out after {args.timeout} s; {pending or 'outputs still growing'}")


def wait(args):
    """Waits until the group has processed every record there is and no
    transaction is open: on every partition of the non-internal topics the
    last stable offset is the high watermark, the group's committed offset on
    the input is its end, and a read_committed read of each repartition
    partition from the group's committed offset finds nothing."""
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    committed_view = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False,
        "isolation.level": "read_committed", "enable.partition.eof": True,
    })
    uncommitted_view = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": "clickstream-wait", "isolation.level": "read_uncommitted",
    })
    deadline = time.time() + args.timeout
    pending = "nothing checked yet"
    while time.time() < deadline:
        pending = wait_pending(args, admin, committed_view, uncommitted_view)
        if pending is None:
            print(f"wait: group {args.group} has processed everything and no transaction is open")
            committed_view.close()
            uncommitted_view.close()
            return
        time.sleep(0.5)
    sys.exit(f"wait: timed out after {args.timeout} s; {pending}")


def wait_pending(args, admin, committed_view, uncommitted_view):
    """What is left to wait for, in words, or None."""
    topics = admin.list_topics(timeout=10).topics
    repartition = sorted(t for t in topics if t.startswith(f"repartition__{args.group}--"))
    for t in sorted(topics):
        if t.startswith("__"):
            continue
        for p in topics[t].partitions:
            tp = TopicPartition(t, p)
            lso = committed_view.get_watermark_offsets(tp, timeout=10)[1]
            high = uncommitted_view.get_watermark_offsets(tp, timeout=10)[1]
            if lso != high:
                return f"an open transaction on {t}[{p}] (last stable offset {lso}, high watermark {high})"
    sources = args.input.split(",")
    inputs = [TopicPartition(t, p) for t in sources for p in topics[t].partitions]
    inputs += [TopicPartition(t, p) for t in repartition for p in topics[t].partitions]
    committed = committed_view.committed(inputs, timeout=10)
    for tp in committed:
        if tp.topic != sources[0]:
            continue
        high = uncommitted_view.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
        if tp.offset < high:
            return f"{tp.topic}[{tp.partition}] committed at {tp.offset} of {high}"
    # Repartition topics are transactional: commit markers follow the last
    # record, so compare by reading what is left.
    # So are the further inputs (page-views-1m, which the top-N branch reads
    # back).
    rest = [TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)) for tp in committed if tp.topic != sources[0]]
    if rest:
        committed_view.assign(rest)
        at_end, left = set(), 0
        read_until = time.time() + 10
        while len(at_end) < len(rest) and time.time() < read_until:
            m = committed_view.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add((m.topic(), m.partition()))
                continue
            left += 1
        committed_view.unassign()
        if left or len(at_end) < len(rest):
            return f"{left} records beyond the committed offsets of {', '.join(repartition + sources[1:])}"
    if not repartition and len(topics[sources[0]].partitions) > 1:
        return "no repartition topic yet"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--bootstrap", required=True)
    v.add_argument("--input", default="clicks.jsonl")
    v.add_argument("--group", default="clickstream-quix")
    w = sub.add_parser("wait")
    w.add_argument("--bootstrap", required=True)
    w.add_argument("--group", default="clickstream-quix")
    w.add_argument("--input", default="clicks,page-views-1m",
                   help="the group's input topics, comma-separated; those after the first are transactional outputs")
    w.add_argument("--timeout", type=float, default=300)
    w.add_argument("--progress", help="a progress file (pipeline_bytewax.py --progress) instead of group offsets")
    w.add_argument("--settle", type=float, default=3, help="with --progress: seconds the outputs must stay still")
    w.add_argument("--stamp", help="with --progress: write there the time the outputs last grew (or it saw them first)")
    args = ap.parse_args()
    if args.command == "verify":
        verify(args)
    elif args.progress:
        wait_progress(args)
    else:
        wait(args)


if __name__ == "__main__":
    main()
