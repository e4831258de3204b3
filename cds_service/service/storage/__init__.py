"""The service's database: issued cards, feedback, remembered dismissals (A22), no double alerts (A21), analytics,
retention, and the JWT replay store. SQLite by default, PostgreSQL for production and replicas."""

from .engine import make_engine, normalise_url, sqlite_url
from .keys import PatientKey
from .migrate import MigrationStatus, at_head, current_revision, head_revision, upgrade
from .records import (
    HELD_BACK,
    INDICATOR_RANK,
    ActiveDismissal,
    CardRecord,
    FeedbackEntry,
    FeedbackResult,
    Finding,
    PurgeCounts,
    ReplayVerdict,
    RuleWeek,
    ShownKey,
    WeeklyStats,
)
from .store import DISMISSIBLE_RULES, Store

__all__ = [
    "HELD_BACK",
    "INDICATOR_RANK",
    "DISMISSIBLE_RULES",
    "ActiveDismissal",
    "CardRecord",
    "FeedbackEntry",
    "FeedbackResult",
    "Finding",
    "MigrationStatus",
    "PatientKey",
    "PurgeCounts",
    "ReplayVerdict",
    "RuleWeek",
    "ShownKey",
    "Store",
    "WeeklyStats",
    "at_head",
    "current_revision",
    "head_revision",
    "make_engine",
    "normalise_url",
    "sqlite_url",
    "upgrade",
]
