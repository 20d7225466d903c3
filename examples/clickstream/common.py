"""What pipeline_quix.py and pipeline_bytewax.py share, so that the two
processors compute the same outputs: the window and session parameters and
the shape of a top-pages-1m row. (check.py keeps its own copy of the
parameters: it recomputes the results independently of the pipelines.)"""

WINDOW_MS = 60_000
PAGE_VIEWS_GRACE_MS = 10_000
SESSION_GAP_MS = 30 * 60_000
SESSION_GRACE_MS = 0
TOP_N = 5


def top_pages_row(window, views):
    """The top-pages-1m row of a minute once `window` (a page-views-1m
    value) has closed, `views` being that minute's {page: views} of the
    closed page windows, this one included."""
    top = sorted(views.items(), key=lambda pv: (-pv[1], pv[0]))[:TOP_N]
    return {
        "window_start": window["window_start"],
        "window_end": window["window_end"],
        "added": window["page"],
        "top": [{"page": p, "views": v} for p, v in top],
        "pages": len(views),
        "views": sum(views.values()),
    }
