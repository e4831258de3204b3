"""calcinosis-cds: a CDS Hooks 2.0 service for the treatment and management of calcinosis cutis.

The machinery, in layers that import one way (an import-linter contract in pyproject.toml keeps them so):

- service/  the HTTP service: app factory and CDS Hooks blueprint, protocol, prefetch and FHIR fetching, security,
            feedback, settings, logging, the command line. It reaches the rules only through cards.knowledge().
- engine/   evaluates the rules on the facts (gate, precedence, grouping, deduplication), builds typed cards, and
            offers the rule authoring API (engine/authoring.py) that the knowledge layer (the top-level `cards`
            package) is written in.
- record/   turns a patient's FHIR record into typed facts: selection and validation, conditions, labs and units,
            medications, draft orders, terminology look-ups.
"""

from typing import Any

__all__ = ["create_app", "Settings"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, not with the package: `calcinosis-cds serve` must choose prometheus-client's
    # multiprocess mode (service/metrics.py) before anything imports it, and the command line starts here.
    if name == "create_app":
        from .service.app import create_app

        return create_app
    if name == "Settings":
        from .service.settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
