"""gunicorn server hooks shared by the image's config (docker/gunicorn.conf.py) and `calcinosis-cds serve`."""

from __future__ import annotations

import gc


def pre_fork(server, worker) -> None:
    """Freeze what start-up built (the R4B model classes, code tables, rules: ~90,000 objects) before a worker is
    forked, so that the worker's garbage collector never walks it again. Without this, a full collection every ten
    calls or so walked all of it and paused that call for 20-40 ms (docs/performance.md); the pages stay shared
    between workers, too, since collections no longer write to them."""
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    """A worker is gone (exited, killed, recycled): its live metrics files are dropped, its counters kept
    (prometheus-client's multiprocess mode; metrics.py)."""
    from .metrics import mark_process_dead

    mark_process_dead(worker.pid)
