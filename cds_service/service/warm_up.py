"""What the first call would otherwise load on a clinician's time (about 0.3 s), loaded at start-up instead."""

from __future__ import annotations

import gc
from functools import lru_cache

import cards
from cds_service.record.validation import load_models

from .discovery import services


@lru_cache(maxsize=1)
def warm_up() -> None:
    """The knowledge (rules, code tables), the services, and the R4B models with every element model they can hold.
    Under gunicorn's preload_app this runs once in the master, and every worker starts warm; once per process in any
    case."""
    cards.knowledge()
    services()
    load_models()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


# The cyclic garbage collector's thresholds (Python's default: 700, 10, 10). A call parses its request body into tens
# of thousands of dicts and lists (a 3 MB record: about 300,000), none of them in a reference cycle, all freed by
# reference counting when the call ends. With the default, the collector runs every 700 new containers and walks the
# bodies of every call in flight again and again: it doubled the CPU time of parsing the dense benchmark patient (25 to
# 50 ms; docs/performance.md). Every 100,000 new containers costs as much as not collecting at all, and what cycles the
# service makes (exceptions with their tracebacks, mostly) are still collected: a generation-1 pass every 5 million
# allocations (about every 15 calls of a 3 MB record), a full one after 20 of those.
COLLECTOR_THRESHOLDS = (100_000, 50, 20)
