#!/usr/bin/env python3
"""Checks a history of Kafka sends and polls against what a replicated log
promises, in the manner of Jepsen's Kafka workload (written here from its
published description, not from its code).

Usage: checker.py HISTORY.jsonl [--cap N]
Exits 0 when the history is clean, 1 with a report when it is not, 2 when the
history cannot be read.

History format: JSON lines, one operation each, in the order they happened
(a completion always after its invocation). Every op has

    time      float, seconds since the run started (for the reader of a report)
    process   string naming one client (a producer or a consumer)
    type      "invoke" | "ok" | "fail" | "info"
    f         "open" | "send" | "txn" | "assign" | "poll" | "final-read" | "kill" | "start" |
              "pause" | "resume"

and by f:

    open        type ok, once per process before its other ops: role "producer" with
                idempotent (bool), or role "consumer" with isolation
                ("read_committed" | "read_uncommitted"). Absent: not idempotent,
                read_uncommitted (the weaker claims, so fewer checks apply).
    send        an invoke and one completion sharing `id`: topic, partition, key, value
                (values are unique in a history: they name the send). ok adds offset;
                fail means it was certainly not written; info means unknown (it may or
                may not be in the log); error (string) on fail and info. An invoke
                with no completion counts as info.
    txn         an invoke and one completion sharing `id`; sends: a list of
                {topic, partition, key, value} (ok may add offset to each). ok is
                committed, fail is aborted (its values must never be read committed),
                info is unknown.
    assign      type ok: the consumer's assignment from now on (replaces the last one,
                and its positions: a rebalance or seek is an assign);
                partitions: a list of {topic, partition, offset}, offset being where
                it starts reading, or null when unknown (a committed offset, say).
    poll        type ok: records, a list of {topic, partition, offset, value}, in the
                order the client returned them.
    final-read  type ok, after the workload: topic, partition, isolation, records (a list
                of {offset, value}): everything in the partition from its log start to
                its end, read once the cluster was healthy.
    kill, start, pause, resume
                type info, process "nemesis": a broker (id in broker) killed, started,
                stopped (SIGSTOP) or continued; for the reader of a history, the
                checker passes over them.

Checks (each a kind of violation in the report):

    lost-write           an acknowledged send (send ok, or a send of a committed txn) is
                         not in the final read of its partition
    incomplete-history   a partition that was written to has no final read
    inconsistent-offset  one (topic, partition, offset) seen holding two values, across
                         acknowledgements, polls and final reads
    duplicate            a value of an idempotent producer at two offsets
    misplaced-value      a value read from a partition it was not sent to
    unknown-value        a value read that no send or txn ever invoked
    failed-write-read    a value of a failed send read
    aborted-read         a value of an aborted (failed) txn read under read_committed
    poll-skip            a consumer read offset b right after offset a of a partition in
                         one assignment, and the final read has offsets between them
                         (or between the assigned start and its first read)
    poll-nonmonotonic    a consumer read offset b at or below a, read before in the same
                         assignment
    producer-reorder     of one producer's acknowledged sends to one partition, a later
                         send got a lower offset than an earlier one
"""
import argparse
import bisect
import json
import sys
from collections import defaultdict

# What the nemesis did, recorded for the reader.
NEMESIS_OPS = ("kill", "start", "pause", "resume", "partition", "heal", "wipe", "restart")

KINDS = (
    "lost-write",
    "incomplete-history",
    "inconsistent-offset",
    "duplicate",
    "misplaced-value",
    "unknown-value",
    "failed-write-read",
    "aborted-read",
    "poll-skip",
    "poll-nonmonotonic",
    "producer-reorder",
)


class HistoryError(Exception):
    """The history does not follow the format (not a violation by the broker)."""


class Write:
    """One value sent: alone, or as part of a txn."""

    def __init__(self, process, tp, value, order, txn):
        self.process = process
        self.tp = tp
        self.value = value
        self.order = order  # position of its invoke in the history: the send order
        self.txn = txn
        self.outcome = "info"  # until a completion says otherwise
        self.offset = None


class Result:
    def __init__(self):
        self.violations = {kind: [] for kind in KINDS}
        self.stats = defaultdict(int)

    def add(self, kind, message):
        self.violations[kind].append(message)

    @property
    def ok(self):
        return not any(self.violations.values())

    def report(self, cap=10):
        lines = [" ".join(f"{name}={count}" for name, count in sorted(self.stats.items()))]
        for kind in KINDS:
            found = self.violations[kind]
            if not found:
                continue
            lines.append(f"{kind}: {len(found)}")
            lines.extend(f"  {message}" for message in found[:cap])
            if len(found) > cap:
                lines.append(f"  ... and {len(found) - cap} more")
        lines.append("clean" if self.ok else f"{sum(map(len, self.violations.values()))} violations")
        return "\n".join(lines)


def tp_name(tp):
    return f"{tp[0]}/{tp[1]}"


def read_history(path):
    ops = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ops.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise HistoryError(f"{path}:{number}: {e}") from None
    return ops


def check(ops):
    result = Result()
    stats = result.stats
    idempotent = {}
    isolation = {}
    writes = {}  # value -> Write
    by_id = {}  # op id -> the Writes of its invoke
    final = {}  # tp -> (sorted offsets, {offset: value}, isolation)
    seen = defaultdict(set)  # (tp, offset) -> values observed there
    places = defaultdict(set)  # value -> (tp, offset) it was observed at
    reads = []  # ("assign", process, {tp: start}) and ("poll", process, [(tp, offset, value)]), in order

    for number, op in enumerate(ops):
        try:
            f, kind, process = op["f"], op["type"], op["process"]
        except KeyError as e:
            raise HistoryError(f"op {number} has no {e}: {op}") from None
        if f == "open":
            idempotent[process] = bool(op.get("idempotent", False))
            isolation[process] = op.get("isolation", "read_uncommitted")
        elif f in ("send", "txn"):
            if kind == "invoke":
                sends = [op] if f == "send" else op["sends"]
                group = []
                for send in sends:
                    if send["value"] in writes:
                        raise HistoryError(f"value {send['value']!r} sent twice (values must be unique)")
                    write = Write(process, (send["topic"], send["partition"]), send["value"], number,
                                  op["id"] if f == "txn" else None)
                    writes[write.value] = write
                    group.append(write)
                by_id[op["id"]] = group
                stats[f"{f}s"] += 1
            else:
                group = by_id.get(op["id"])
                if group is None:
                    raise HistoryError(f"op {number}: completion of id {op['id']} that was never invoked")
                stats[f"{f}-{kind}"] += 1
                offsets = {s["value"]: s.get("offset") for s in ([op] if f == "send" else op.get("sends", []))}
                for write in group:
                    write.outcome = kind
                    if kind == "ok" and offsets.get(write.value) is not None:
                        write.offset = offsets[write.value]
                        seen[(write.tp, write.offset)].add(write.value)
                        places[write.value].add((write.tp, write.offset))
        elif f == "assign":
            reads.append(("assign", process, {(p["topic"], p["partition"]): p.get("offset")
                                              for p in op["partitions"]}))
            stats["assigns"] += 1
        elif f == "poll":
            records = [((r["topic"], r["partition"]), r["offset"], r["value"]) for r in op["records"]]
            reads.append(("poll", process, records))
            stats["polls"] += 1
            stats["polled-records"] += len(records)
            for tp, offset, value in records:
                seen[(tp, offset)].add(value)
                places[value].add((tp, offset))
        elif f == "final-read":
            tp = (op["topic"], op["partition"])
            values = {r["offset"]: r["value"] for r in op["records"]}
            final[tp] = (sorted(values), values, op.get("isolation", "read_uncommitted"))
            stats["final-records"] += len(values)
            for offset, value in values.items():
                seen[(tp, offset)].add(value)
                places[value].add((tp, offset))
        elif f not in NEMESIS_OPS:
            raise HistoryError(f"op {number}: unknown f {f!r}")

    aborted = {v for v, w in writes.items() if w.txn is not None and w.outcome == "fail"}
    stats["acked"] = sum(1 for w in writes.values() if w.outcome == "ok")

    # Acknowledged writes are in the final read.
    for tp in sorted({w.tp for w in writes.values() if w.outcome == "ok"} - final.keys()):
        result.add("incomplete-history", f"{tp_name(tp)} was written to but has no final read")
    in_final = {tp: set(values.values()) for tp, (_, values, _) in final.items()}
    for w in sorted(writes.values(), key=lambda w: w.order):
        if w.outcome == "ok" and w.tp in final and w.value not in in_final[w.tp]:
            at = f" (acknowledged at offset {w.offset})" if w.offset is not None else ""
            result.add("lost-write", f"{w.value!r} from {w.process} to {tp_name(w.tp)}{at} is not in the final read")
        if w.outcome == "info" and w.tp in final and w.value in in_final[w.tp]:
            stats["unknown-sends-present"] += 1

    # One value per offset.
    for (tp, offset), values in sorted(seen.items(), key=lambda item: (item[0][0], item[0][1])):
        if len(values) > 1:
            result.add("inconsistent-offset", f"{tp_name(tp)} offset {offset} held {sorted(values)}")

    # What was read was written, to that partition, and not refused.
    for value, where in sorted(places.items(), key=lambda item: str(item[0])):
        w = writes.get(value)
        if w is None:
            result.add("unknown-value", f"{value!r} read at {sorted((tp_name(tp), o) for tp, o in where)}, never sent")
            continue
        for tp, offset in sorted(where):
            if tp != w.tp:
                result.add("misplaced-value", f"{value!r} sent to {tp_name(w.tp)} read at {tp_name(tp)} offset {offset}")
        if w.txn is None and w.outcome == "fail":
            result.add("failed-write-read", f"{value!r} from {w.process} failed but was read at "
                       f"{sorted((tp_name(tp), o) for tp, o in where)}")
        if len(where) > 1 and idempotent.get(w.process, False):
            result.add("duplicate", f"{value!r} from idempotent {w.process} at "
                       f"{sorted((tp_name(tp), o) for tp, o in where)}")

    # Aborted values stay invisible to read_committed readers.
    for tp, (_, values, level) in sorted(final.items()):
        if level == "read_committed":
            for offset, value in sorted(values.items()):
                if value in aborted:
                    result.add("aborted-read", f"final read of {tp_name(tp)} has aborted {value!r} at offset {offset}")

    # Each consumer reads each assigned partition in order, skipping nothing.
    last = defaultdict(dict)  # process -> tp -> last offset read in this assignment
    for what, process, read in reads:
        if what == "assign":
            # The offset before the start: the first read must be the next one present.
            last[process] = {tp: start - 1 for tp, start in read.items() if start is not None}
            continue
        committed = isolation.get(process) == "read_committed"
        for tp, offset, value in read:
            if committed and value in aborted:
                result.add("aborted-read", f"{process} read aborted {value!r} at {tp_name(tp)} offset {offset}")
            before = last[process].get(tp)
            last[process][tp] = offset
            if before is None:
                continue
            if offset <= before:
                result.add("poll-nonmonotonic", f"{process} read {tp_name(tp)} offset {offset} after {before}")
            elif tp in final:
                offsets, values, _ = final[tp]
                between = offsets[bisect.bisect_right(offsets, before):bisect.bisect_left(offsets, offset)]
                # A read_committed consumer rightly passes over aborted values.
                missed = [o for o in between if not (committed and values[o] in aborted)]
                if missed:
                    shown = ", ".join(map(str, missed[:5])) + (", ..." if len(missed) > 5 else "")
                    result.add("poll-skip", f"{process} read {tp_name(tp)} offset {offset} after {before}, "
                               f"skipping {len(missed)} present in the final read ({shown})")

    # One producer's acknowledged sends to one partition keep their send order.
    positions = {value: (tp, offset) for tp, (_, values, _) in final.items() for offset, value in values.items()}
    sent = defaultdict(list)  # (process, tp) -> [(offset, value)] in send order
    for w in sorted(writes.values(), key=lambda w: w.order):
        if w.outcome != "ok":
            continue
        offset = w.offset if w.offset is not None else positions.get(w.value, (None, None))[1]
        if offset is not None:
            sent[(w.process, w.tp)].append((offset, w.value))
    for (process, tp), acked in sorted(sent.items()):
        highest = None  # (offset, value) of the earlier send with the highest offset
        for offset, value in acked:
            if highest is not None and offset < highest[0]:
                result.add("producer-reorder", f"{process} sent {highest[1]!r} before {value!r} to {tp_name(tp)}, "
                           f"but they are at offsets {highest[0]} and {offset}")
            if highest is None or offset > highest[0]:
                highest = (offset, value)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("history")
    parser.add_argument("--cap", type=int, default=10, help="examples shown per kind of violation")
    args = parser.parse_args()
    try:
        result = check(read_history(args.history))
    except (HistoryError, KeyError, TypeError) as e:
        print(f"cannot check {args.history}: {e!r}", file=sys.stderr)
        return 2
    print(result.report(args.cap))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
