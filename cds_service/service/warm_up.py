"""What the first call would otherwise load on a clinician's time (about 0.3 s), loaded at start-up instead."""

from __future__ import annotations

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
