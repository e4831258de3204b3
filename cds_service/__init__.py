"""calcinosis-cds: a CDS Hooks 2.0 service for the treatment and management of calcinosis cutis."""

from .app import create_app
from .settings import Settings

__all__ = ["create_app", "Settings"]
__version__ = "0.1.0"
