"""Alembic environment: always run programmatically by ``asgate.store.migrate`` on a live connection."""

from alembic import context

import asgate.store  # noqa: F401 - loads every schema module, so the metadata is complete
from asgate.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
