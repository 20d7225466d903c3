"""The click-stream pipeline on quixstreams, exactly-once.

Reads JSON clicks keyed by user_id from `clicks` and writes
  (a) `page-views-1m`: page views per page per 1-minute tumbling event-time
      window (grace PAGE_VIEWS_GRACE_MS), emitted once when the window closes;
      key: the page; value: {page, window_start, window_end, views};
  (b) `sessions`: user sessions with a 30-minute inactivity gap, emitted once
      when the session closes; key: the user_id; value: {user_id, start, end,
      pages, entry_page, exit_page} where end is the last click's time + 1 ms
      (half-open, as quixstreams gives it);
  (c) `top-pages-1m`: a table (compacted topic) of the TOP_N most viewed pages
      of each 1-minute window, keyed by the window start (ms, as a string),
      updated each time a page's window of (a) closes; value: {window_start,
      window_end, added: the page whose window this update adds, top: [{page,
      views}, ...] (views descending, then page ascending), pages: closed
      page windows counted so far, views: their views}. The last update of a key is the top-N of the window's closed
      page windows; each update appears once (exactly-once).

Both use quixstreams' closing strategy "key": a window or session closes when
a later event of the same key (page, user) moves that key's event time past
it, so the last windows of each key stay open at the end of the input.

Usage: pipeline_quix.py --bootstrap HOST:PORT [--state-dir DIR]
Runs until SIGTERM/SIGINT (run.sh stops it once everything is consumed).
"""

import argparse
import collections
import os

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Earliest, Latest

from common import PAGE_VIEWS_GRACE_MS, SESSION_GAP_MS, SESSION_GRACE_MS, WINDOW_MS, top_pages_row


def click_time(value, headers, timestamp, timestamp_type):
    return value["ts"]


LATE = collections.Counter()


def count_late(value, key, timestamp_ms, late_by_ms, start, end, name, topic, partition, offset):
    """on_late callback: counts late events instead of logging each one
    (the count is logged every 1000 and at shutdown)."""
    LATE[name] += 1
    if LATE[name] % 1000 == 0:
        print(f"clickstream: late events dropped so far: {dict(LATE)}", flush=True)
    return False


def page_view_row(value, key, timestamp, headers):
    return {"page": key, "window_start": value["start"], "window_end": value["end"], "views": value["views"]}


def top_pages_update(value, state):
    """Adds one closed page window to its minute's table row (state: that
    minute's {page: views}) and returns the row."""
    views = state.get("views", {})
    views[value["page"]] = value["views"]
    state.set("views", views)
    return top_pages_row(value, views)


def session_row(value, key, timestamp, headers):
    return {
        "user_id": key,
        "start": value["start"],
        "end": value["end"],
        "pages": value["pages"],
        "entry_page": value["entry_page"],
        "exit_page": value["exit_page"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--group", default="clickstream-quix")
    ap.add_argument("--state-dir", default="state")
    ap.add_argument("--input", default="clicks")
    args = ap.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        # GUARANTEE=at-least-once shows what the checker finds without
        # transactions (run.sh passes it through).
        processing_guarantee=os.environ.get("GUARANTEE", "exactly-once"),
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=float(os.environ.get("COMMIT_INTERVAL", "1.0")),
        loglevel=os.environ.get("QUIX_LOGLEVEL", "INFO"),
        # A processor that is SIGKILLed leaves its consumer-group membership
        # and its open transaction behind (quixstreams picks a fresh random
        # transactional.id per process, so a restart does not fence it): the
        # broker ends them after these timeouts (defaults 45 s and 60 s).
        consumer_extra_config={
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            # Small fetches interleave the input partitions finely, which
            # keeps the re-keyed page-view stream nearly in event-time order.
            "max.partition.fetch.bytes": int(os.environ.get("FETCH_BYTES", "4096")),
        },
        producer_extra_config={"transaction.timeout.ms": 10_000},
    )
    clicks = app.topic(args.input, value_deserializer="json", key_deserializer="str", timestamp_extractor=click_time)
    page_views = app.topic(
        "page-views-1m", value_serializer="json", key_serializer="str", value_deserializer="json", key_deserializer="str"
    )
    sessions = app.topic("sessions", value_serializer="json", key_serializer="str")
    top_pages = app.topic("top-pages-1m", value_serializer="json", key_serializer="str")

    sdf = app.dataframe(clicks)

    # (b) sessions, keyed by user as the input is.
    (
        sdf.session_window(inactivity_gap_ms=SESSION_GAP_MS, grace_ms=SESSION_GRACE_MS, name="sessions", on_late=count_late)
        .agg(pages=Count(), entry_page=Earliest("page"), exit_page=Latest("page"))
        .final()
        .apply(session_row, metadata=True)
        .to_topic(sessions)
    )

    # (a) page views per page per minute: re-key by page (a repartition
    # topic), then a tumbling window.
    (
        sdf.group_by("page", name="by-page")
        .tumbling_window(duration_ms=WINDOW_MS, grace_ms=PAGE_VIEWS_GRACE_MS, name="page-views-1m", on_late=count_late)
        .agg(views=Count())
        .final()
        .apply(page_view_row, metadata=True)
        .to_topic(page_views)
    )

    # (c) the top-N pages of each minute, from the closed page windows of (a)
    # read back from `page-views-1m` (read_committed; quixstreams allows no
    # group_by after a group_by): re-key them by their window start (a second
    # repartition topic) and keep each minute's {page: views} in state.
    (
        app.dataframe(page_views)
        .group_by(lambda v: str(v["window_start"]), name="by-window")
        .apply(top_pages_update, stateful=True)
        .to_topic(top_pages)
    )

    print(f"clickstream: pipeline starting (pid {os.getpid()})", flush=True)
    try:
        app.run()
    finally:
        print(f"clickstream: late events dropped by this process: {dict(LATE)}", flush=True)


if __name__ == "__main__":
    main()
