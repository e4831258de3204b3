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

from .service.app import create_app
from .service.settings import Settings

__all__ = ["create_app", "Settings"]
__version__ = "0.1.0"
