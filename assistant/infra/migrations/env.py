"""Alembic's environment: runs on the connection ``Store.migrate`` passes in, inside the
transaction it holds (one lock for the whole upgrade; a failed upgrade rolls back whole)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
