"""The checker passes a clean history and catches each kind of violation in a
history doctored the way a broken broker would write it.

Run: python3 -m unittest (in this directory)
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

from checker import HistoryError, check

HERE = os.path.dirname(os.path.abspath(__file__))


class History:
    """Builds histories op by op, as driver.py writes them."""

    def __init__(self):
        self.ops = []
        self.next_id = 0

    def op(self, process, type, f, **fields):
        self.ops.append({"time": len(self.ops) * 0.01, "process": process, "type": type, "f": f, **fields})

    def producer(self, process, idempotent=True):
        self.op(process, "ok", "open", role="producer", idempotent=idempotent)

    def consumer(self, process, isolation="read_committed"):
        self.op(process, "ok", "open", role="consumer", isolation=isolation)

    def invoke_send(self, process, value, partition=0, topic="t"):
        self.next_id += 1
        self.op(process, "invoke", "send", id=self.next_id, topic=topic, partition=partition, key=None, value=value)
        return self.next_id

    def complete_send(self, id, type, offset=None, error=None):
        invoke = next(op for op in self.ops if op.get("id") == id and op["type"] == "invoke")
        fields = {k: invoke[k] for k in ("process", "id", "topic", "partition", "key", "value")}
        process = fields.pop("process")
        if type == "ok":
            fields["offset"] = offset
        else:
            fields["error"] = error or "timed out"
        self.op(process, type, "send", **fields)

    def send(self, process, value, offset, partition=0):
        self.complete_send(self.invoke_send(process, value, partition), "ok", offset)

    def txn(self, process, values, type, partition=0):
        self.next_id += 1
        sends = [{"topic": "t", "partition": partition, "key": None, "value": v} for v in values]
        self.op(process, "invoke", "txn", id=self.next_id, sends=sends)
        self.op(process, type, "txn", id=self.next_id, sends=sends)

    def assign(self, process, start=0, partitions=(0,)):
        self.op(process, "ok", "assign", partitions=[{"topic": "t", "partition": p, "offset": start} for p in partitions])

    def poll(self, process, records, partition=0):
        self.op(process, "ok", "poll",
                records=[{"topic": "t", "partition": partition, "offset": o, "value": v} for o, v in records])

    def final(self, records, partition=0, isolation="read_committed"):
        self.op("final", "ok", "final-read", topic="t", partition=partition, isolation=isolation,
                records=[{"offset": o, "value": v} for o, v in records])


def clean():
    """Two producers, one consumer reading everything, an unknown send that
    landed, one that did not, and a final read: every check has something to
    look at and nothing to find."""
    h = History()
    h.producer("p0")
    h.producer("p1")
    h.consumer("c0")
    h.assign("c0", start=0)
    a = h.invoke_send("p0", "a")
    b = h.invoke_send("p1", "b")
    h.complete_send(a, "ok", 0)
    h.complete_send(b, "ok", 1)
    unknown_landed = h.invoke_send("p0", "c")
    unknown_lost = h.invoke_send("p1", "x")
    h.complete_send(unknown_landed, "info")
    h.complete_send(unknown_lost, "info")
    h.poll("c0", [(0, "a"), (1, "b")])
    h.op("nemesis", "info", "kill", broker=2)
    h.send("p0", "d", 3)
    h.send("p1", "e", 4)
    h.poll("c0", [(2, "c"), (3, "d")])
    h.poll("c0", [(4, "e")])
    # A second partition, read from the middle after a re-assignment.
    h.send("p0", "f", 0, partition=1)
    h.send("p0", "g", 1, partition=1)
    h.assign("c0", start=1, partitions=(0, 1))
    h.poll("c0", [(1, "g")], partition=1)
    h.final([(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")])
    h.final([(0, "f"), (1, "g")], partition=1)
    return h


def final_of(h, partition):
    return next(op for op in h.ops if op["f"] == "final-read" and op["partition"] == partition)


def kinds(h):
    result = check(h.ops)
    return {kind for kind, found in result.violations.items() if found}


class Clean(unittest.TestCase):
    def test_a_clean_history_passes(self):
        result = check(clean().ops)
        self.assertTrue(result.ok, result.report())
        self.assertEqual(result.stats["acked"], 6)
        self.assertEqual(result.stats["unknown-sends-present"], 1)

    def test_committed_transactions_and_skipped_aborted_ones_pass(self):
        h = History()
        h.producer("p0")
        h.consumer("c0")
        h.assign("c0")
        h.txn("p0", ["a1", "a2"], "fail")
        h.txn("p0", ["b1", "b2"], "ok")
        # Offsets 2 and 5 are transaction markers, absent from every read.
        h.poll("c0", [(3, "b1"), (4, "b2")])
        h.final([(3, "b1"), (4, "b2")])
        self.assertEqual(kinds(h), set())

    def test_the_command_line_exits_0_on_a_clean_history_and_1_on_a_violation(self):
        for history, code in ((clean(), 0), (self.lost(), 1)):
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
                f.writelines(json.dumps(op) + "\n" for op in history.ops)
            try:
                run = subprocess.run([sys.executable, os.path.join(HERE, "checker.py"), f.name],
                                     capture_output=True, text=True)
            finally:
                os.remove(f.name)
            self.assertEqual(run.returncode, code, run.stdout + run.stderr)

    @staticmethod
    def lost():
        h = clean()
        h.send("p1", "lost", 5)
        return h


class Violations(unittest.TestCase):
    def test_a_lost_acknowledged_send(self):
        h = Clean.lost()
        self.assertEqual(kinds(h), {"lost-write"})
        self.assertIn("'lost' from p1 to t/0 (acknowledged at offset 5)", check(h.ops).report())

    def test_a_written_partition_without_a_final_read(self):
        h = clean()
        h.send("p0", "z", 0, partition=2)
        self.assertEqual(kinds(h), {"incomplete-history"})

    def test_two_values_at_one_offset(self):
        h = clean()
        # The ack said offset 3, a consumer saw another value there: a leader
        # that overwrote an acknowledged offset.
        final_of(h, 0)["records"][3]["value"] = "e"
        final_of(h, 0)["records"][4]["value"] = "d"
        found = kinds(h)
        self.assertIn("inconsistent-offset", found)
        self.assertIn("duplicate", found)  # d and e each sit at two offsets now

    def test_a_duplicate_of_an_idempotent_producers_send(self):
        h = clean()
        final_of(h, 0)["records"].append({"offset": 5, "value": "d"})
        self.assertEqual(kinds(h), {"duplicate"})

    def test_duplicates_of_a_producer_without_idempotence_are_allowed(self):
        h = History()
        h.producer("p0", idempotent=False)
        h.send("p0", "a", 0)
        h.final([(0, "a"), (1, "a")])
        self.assertEqual(kinds(h), set())

    def test_a_consumer_skipping_an_offset(self):
        h = clean()
        poll = next(op for op in h.ops if op["f"] == "poll" and op["records"][0]["value"] == "c")
        del poll["records"][0]  # read 1, then 3: offset 2 ("c") exists
        self.assertEqual(kinds(h), {"poll-skip"})

    def test_a_consumer_skipping_the_start_of_its_assignment(self):
        h = clean()
        poll = next(op for op in h.ops if op["f"] == "poll")
        del poll["records"][0]  # assigned at 0, first read 1
        self.assertEqual(kinds(h), {"poll-skip"})

    def test_a_consumer_going_backwards_without_a_seek(self):
        h = clean()
        h.poll("c0", [(0, "f")], partition=1)
        self.assertEqual(kinds(h), {"poll-nonmonotonic"})

    def test_a_consumer_going_backwards_after_a_seek_is_fine(self):
        h = clean()
        h.assign("c0", start=0, partitions=(1,))
        h.poll("c0", [(0, "f"), (1, "g")], partition=1)
        self.assertEqual(kinds(h), set())

    def test_reading_an_aborted_transactions_value(self):
        h = History()
        h.producer("p0")
        h.consumer("c0")
        h.assign("c0")
        h.txn("p0", ["a1", "a2"], "fail")
        h.txn("p0", ["b1"], "ok")
        h.poll("c0", [(0, "a1"), (1, "a2"), (3, "b1")])
        h.final([(0, "a1"), (1, "a2"), (3, "b1")], isolation="read_uncommitted")
        self.assertEqual(kinds(h), {"aborted-read"})
        self.assertEqual(len(check(h.ops).violations["aborted-read"]), 2)

    def test_read_uncommitted_may_see_aborted_values(self):
        h = History()
        h.producer("p0")
        h.consumer("c0", isolation="read_uncommitted")
        h.assign("c0")
        h.txn("p0", ["a1"], "fail")
        h.poll("c0", [(0, "a1")])
        h.final([(0, "a1")], isolation="read_uncommitted")
        self.assertEqual(kinds(h), set())

    def test_a_lost_committed_transaction(self):
        h = History()
        h.producer("p0")
        h.txn("p0", ["b1"], "ok")
        h.final([])
        self.assertEqual(kinds(h), {"lost-write"})

    def test_a_failed_send_that_was_written(self):
        h = clean()
        h.complete_send(h.invoke_send("p0", "no"), "fail", error="NOT_ENOUGH_REPLICAS")
        final_of(h, 0)["records"].append({"offset": 5, "value": "no"})
        self.assertEqual(kinds(h), {"failed-write-read"})

    def test_producer_order_reversed(self):
        h = History()
        h.producer("p0")
        first = h.invoke_send("p0", "first")
        second = h.invoke_send("p0", "second")
        h.complete_send(second, "ok", 0)
        h.complete_send(first, "ok", 1)
        h.final([(0, "second"), (1, "first")])
        self.assertEqual(kinds(h), {"producer-reorder"})

    def test_producer_order_is_checked_from_the_final_read_when_acks_carry_no_offset(self):
        h = History()
        h.producer("p0")
        h.send("p0", "first", None)
        h.send("p0", "second", None)
        h.final([(0, "second"), (1, "first")])
        self.assertEqual(kinds(h), {"producer-reorder"})

    def test_a_value_never_sent_or_in_the_wrong_partition(self):
        h = clean()
        final_of(h, 1)["records"].append({"offset": 2, "value": "a"})  # "a" went to partition 0
        final_of(h, 1)["records"].append({"offset": 3, "value": "ghost"})
        self.assertEqual(kinds(h), {"misplaced-value", "unknown-value", "duplicate"})

    def test_violations_are_capped_in_the_report(self):
        h = History()
        h.producer("p0")
        for n in range(30):
            h.send("p0", f"v{n}", n)
        h.final([])
        report = check(h.ops).report(cap=3)
        self.assertIn("lost-write: 30", report)
        self.assertIn("... and 27 more", report)
        self.assertEqual(report.count("is not in the final read"), 3)


class Format(unittest.TestCase):
    def test_a_value_sent_twice_is_a_bad_history(self):
        h = History()
        h.invoke_send("p0", "a")
        h.invoke_send("p0", "a")
        with self.assertRaises(HistoryError):
            check(h.ops)

    def test_a_completion_without_an_invoke_is_a_bad_history(self):
        h = History()
        h.op("p0", "ok", "send", id=7, topic="t", partition=0, key=None, value="a", offset=0)
        with self.assertRaises(HistoryError):
            check(h.ops)


if __name__ == "__main__":
    unittest.main()
