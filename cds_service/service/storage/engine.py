"""Database URLs and engines: an SQLite file by default, PostgreSQL (psycopg 3) in production.

SQLite needs two things SQLAlchemy leaves to the application. Write transactions start with BEGIN IMMEDIATE, so a
writer waits for the lock up front (busy timeout) instead of failing with "database is locked" when two deferred
transactions both try to upgrade to writing; reads start a plain deferred BEGIN and, in WAL mode, never wait for a
writer. And foreign keys are off unless asked for, per connection.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DATABASE_FILE = "calcinosis-cds.sqlite3"
SQLITE_BUSY_SECONDS = 30.0
READ_ONLY = "cds_read_only"  # execution option: this connection's transactions only read


def sqlite_url(data_dir: str | Path) -> str:
    """The default database: one SQLite file in the service's data directory."""
    return f"sqlite:///{Path(data_dir).resolve() / DATABASE_FILE}"


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// URLs (libpq's, Heroku's) mean psycopg 3, the driver this project installs;
    SQLAlchemy would otherwise look for psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL and for an in-memory SQLite database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_engine(url: str, **options) -> Engine:
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        database = sqlite_path(url)
        if database is not None:
            # The default file lives in a data directory that a first start may have to make (private: 0700).
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, **options)
        _sqlite_transactions(engine)
        return engine
    if backend == "postgresql":
        # pre-ping: a replica outlives database restarts and fail-overs; a dead pooled connection is replaced.
        return create_engine(url, pool_pre_ping=True, **options)
    raise ValueError(f"unsupported database {backend!r}: use an sqlite:/// or postgresql:// URL")


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below say how a transaction starts, not the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if sqlite_path(str(engine.url)) is not None:
                # WAL: readers do not block the writer nor it them (several gunicorn workers share the file).
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def insert_for(connection_or_session, model):
    """INSERT with ON CONFLICT (both backends have it, but SQLAlchemy spells it per dialect). Whether a row went
    in is told by RETURNING (SQLite 3.35+): psycopg's rowcount for it is -1."""
    bind = connection_or_session if hasattr(connection_or_session, "dialect") else connection_or_session.get_bind()
    name = bind.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)
