"""Alembic's environment, run by migrate.upgrade: always on a connection it hands over (config.attributes), inside
the lock it holds, so there is no alembic.ini and no URL to read here."""

from alembic import context

from cds_service.service.storage.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cds_service.service.storage.migrate, which holds the migration lock")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead, for the revisions to come.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
