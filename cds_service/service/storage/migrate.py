"""Schema migrations (Alembic), safe when every worker of every replica runs them at start-up at once.

The scripts live in migrations/ inside the package and are configured here, so no alembic.ini is needed. upgrade()
first reads the current revision without any lock (every start after the first finds the database at head and
returns); otherwise it takes the migration lock, and inside it Alembic reads the revision again and does only what
is still missing, in one transaction:

- PostgreSQL: a transaction-level advisory lock (released by the commit or by the connection's death, never left
  behind by a crashed process); the DDL is transactional, so a failed upgrade leaves nothing half done;
- SQLite: an exclusive flock on a file beside the database (waits as long as it takes, unlike SQLite's busy
  timeout, and goes with the process), then BEGIN IMMEDIATE around the whole upgrade.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from .engine import READ_ONLY, make_engine, sqlite_path

log = logging.getLogger("cds_service.storage")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock keys of this application (advisory locks are per database): "CDS" and a purpose.
LOCK_CLASS = 0x434453
MIGRATION_LOCK = 1


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the package ships at least one revision"
    return head


def _current(engine: Engine) -> str | None:
    with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def status(engine: Engine) -> MigrationStatus:
    return MigrationStatus(current=_current(engine), head=head_revision())


@contextlib.contextmanager
def _engine_for(target: str | Engine) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def current_revision(target: str | Engine) -> str | None:
    with _engine_for(target) as engine:
        return _current(engine)


def at_head(target: str | Engine) -> bool:
    with _engine_for(target) as engine:
        return status(engine).at_head


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("migration lock held by another process; waiting", extra={"lock": str(path)})
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _advisory_lock(connection: Connection) -> None:
    arguments = {"kind": LOCK_CLASS, "key": MIGRATION_LOCK}
    if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:kind, :key)"), arguments).scalar_one():
        log.info("migration lock held by another process; waiting")
        connection.execute(text("SELECT pg_advisory_xact_lock(:kind, :key)"), arguments)


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """Hold the migration lock; yields a connection in the transaction the lock belongs to (committed on exit)."""
    with contextlib.ExitStack() as stack:
        database = sqlite_path(engine.url)
        if database is not None:
            stack.enter_context(_file_lock(database.with_name(database.name + ".migration-lock")))
        connection = stack.enter_context(engine.connect())
        stack.enter_context(connection.begin())
        if engine.dialect.name == "postgresql":
            _advisory_lock(connection)
        yield connection


def upgrade(target: str | Engine) -> str:
    """Bring the database to the newest revision; returns it. Idempotent and safe to run concurrently."""
    head = head_revision()
    with _engine_for(target) as engine:
        if _current(engine) == head:
            return head
        with migration_lock(engine) as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(_config(connection), "head")
        if before != head:
            log.info("database migrated", extra={"from_revision": before, "to_revision": head})
    return head
