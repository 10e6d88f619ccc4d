"""Alembic environment: runs on the connection Valt hands over (see valt_core.db.Database)."""

from alembic import context
from sqlmodel import SQLModel

from valt_core.db import models  # noqa: F401 - registers the tables on SQLModel.metadata

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `valt db upgrade`, which passes the connection")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
